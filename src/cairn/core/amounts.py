"""Token amounts between people and contracts: decimal text <-> integers in the smallest unit.

The one place amounts are read and written, on every face alike:

- a person types whole tokens (`2.5`, `0.000000000000000001`): `parse_units`;
- the API and stored documents carry the smallest unit as decimal digits (`"2500"`):
  `parse_smallest_units`;
- an amount is shown in whole tokens, exactly or rounded for a page: `units`.

Every amount is an integer in the token's smallest unit, from 0 to what a contract can hold
(a uint256), so `1e100` or 79 nines is an error that says so rather than an overflow on chain.
The arithmetic is on integers: `Decimal` would round past 28 digits and overflow on `1e1000000`.
"""

from __future__ import annotations

import re
from decimal import Decimal

from cairn.core.errors import InvalidInput

TOKEN_DECIMALS = 18  # CairnToken's, as most ERC-20s: what every face assumes unless a token says
TOKEN = 10**TOKEN_DECIMALS  # one whole token in the smallest unit
MAX_AMOUNT = 2**256 - 1  # a uint256: the most any Cairn contract holds or moves
MAX_PRICE = 10**36  # per 1,000 tokens of a model's use; keeps every cost far below 2**128
_DIGITS = len(str(MAX_AMOUNT))  # 78
# A plain decimal number in ASCII digits: no NaN, Infinity, `_` separators or other scripts' digits
_NUMBER = re.compile(r"\s*[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?\s*")
_SHOWN = 40  # characters of a refused amount quoted back


def units(
    amount: str | int,
    decimals: int = TOKEN_DECIMALS,
    *,
    places: int | None = None,
    grouped: bool = False,
) -> str:
    """A smallest-unit integer as a decimal token amount, e.g. 1500000000000000000 -> 1.5.

    Exact unless `places` is given: then rounded half to even to at most that many decimals.
    `grouped` writes the whole part with thousands commas (1,234.5), as pages show amounts.
    """
    value = int(amount)
    magnitude = abs(value)
    if places is not None and places < decimals:
        step = 10 ** (decimals - places)
        magnitude, rest = divmod(magnitude, step)
        if 2 * rest > step or (2 * rest == step and magnitude % 2):
            magnitude += 1
        decimals = places
    whole, fraction = divmod(magnitude, 10**decimals)
    text = f"{whole:,}" if grouped else str(whole)
    if fraction:
        text += f".{fraction:0{decimals}d}".rstrip("0")
    return f"-{text}" if value < 0 and magnitude else text


def parse_units(
    text: str, decimals: int = TOKEN_DECIMALS, *, what: str = "amount", zero: bool = False
) -> int:
    """A decimal token amount (`1.5`) in smallest units: positive (or zero, with `zero`), with at
    most `decimals` decimals, and at most MAX_AMOUNT smallest units. `what` names the field in
    the error."""
    if not _NUMBER.fullmatch(text):
        raise InvalidInput(f"{what} {_shown(text)!r} is not a number")
    value = Decimal(text.strip())
    sign, digits, exponent = value.as_tuple()
    assert isinstance(exponent, int)  # a finite number's exponent: the pattern admits no other
    coefficient, shift = int("".join(map(str, digits))), exponent + decimals
    if sign and coefficient:
        raise _below_least(text, decimals, what, zero)
    if coefficient and value.adjusted() + decimals >= _DIGITS:  # checked before 10**shift
        raise _too_large(text, decimals, what)
    if coefficient == 0:
        scaled, exact = 0, True
    elif shift >= 0:
        scaled, exact = coefficient * 10**shift, True
    elif -shift > len(digits):  # below the smallest unit: no need to build 10**-shift
        scaled, exact = 0, False
    else:
        scaled, rest = divmod(coefficient, 10**-shift)
        exact = rest == 0
    if not exact or (scaled == 0 and not zero):
        raise _below_least(text, decimals, what, zero)
    if scaled > MAX_AMOUNT:
        raise _too_large(text, decimals, what)
    return scaled


def parse_smallest_units(text: str, what: str) -> int:
    """An amount sent in the token's smallest unit as decimal digits (`"1500"`): 0 to MAX_AMOUNT."""
    if not re.fullmatch(r"[0-9]{1,78}", text):
        raise InvalidInput(f"{what} must be a non-negative integer in the token's smallest unit")
    value = int(text)
    if value > MAX_AMOUNT:
        raise InvalidInput(
            f"{what} must be at most 2^256-1 = {MAX_AMOUNT} in the token's smallest unit"
        )
    return value


def _shown(text: str) -> str:
    text = text.strip()
    return text if len(text) <= _SHOWN else text[: _SHOWN - 3] + "..."


def _below_least(text: str, decimals: int, what: str, zero: bool) -> InvalidInput:
    least = "zero or more" if zero else "positive"
    return InvalidInput(f"{what} {_shown(text)!r} must be {least} with at most {decimals} decimals")


def _too_large(text: str, decimals: int, what: str) -> InvalidInput:
    return InvalidInput(
        f"{what} {_shown(text)!r} is too large: the most a token amount can be is "
        f"{units(MAX_AMOUNT, decimals)} (2^256-1 in the smallest unit)"
    )
