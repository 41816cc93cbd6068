"""Token amounts between people and contracts: decimal text <-> integers in the smallest unit.

Every amount a caller types or sends is parsed here, bounded by what a contract can hold (a
uint256), so that `1e100` or 79 nines is an error that says so, on every face alike.
"""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation

from cairn.core.errors import InvalidInput

MAX_AMOUNT = 2**256 - 1  # a uint256: the most any Cairn contract holds or moves
_DIGITS = len(str(MAX_AMOUNT))  # 78


def units(amount: str | int, decimals: int) -> str:
    """A smallest-unit integer as a decimal token amount, e.g. 1500000000000000000 -> 1.5."""
    value = int(amount)
    whole, fraction = divmod(abs(value), 10**decimals)  # exact: Decimal rounds past 28 digits
    sign = "-" if value < 0 else ""
    if not fraction:
        return f"{sign}{whole}"
    return f"{sign}{whole}.{fraction:0{decimals}d}".rstrip("0")


def parse_units(text: str, decimals: int) -> int:
    """A decimal token amount (`1.5`) in smallest units: positive, with at most `decimals`
    decimals, and at most MAX_AMOUNT smallest units."""
    try:
        value = Decimal(text)
    except InvalidOperation:
        raise InvalidInput(f"amount {text!r} is not a number") from None
    if not value.is_finite() or value <= 0:
        raise InvalidInput(f"amount {text!r} must be positive with at most {decimals} decimals")
    # Exact integer arithmetic: Decimal's own would round past 28 digits, and overflow on 1e1000000.
    if value.adjusted() + decimals >= _DIGITS:
        raise _too_large(text, decimals)
    _, digits, exponent = value.as_tuple()
    assert isinstance(exponent, int)  # a finite number's exponent
    coefficient, shift = int("".join(map(str, digits))), exponent + decimals
    if shift < 0 and (-shift > len(digits) or coefficient % 10**-shift):
        raise InvalidInput(f"amount {text!r} must be positive with at most {decimals} decimals")
    scaled = coefficient * 10**shift if shift >= 0 else coefficient // 10**-shift
    if scaled > MAX_AMOUNT:
        raise _too_large(text, decimals)
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


def _too_large(text: str, decimals: int) -> InvalidInput:
    shown = text if len(text) <= 40 else text[:37] + "..."
    return InvalidInput(
        f"amount {shown!r} is too large: the most a token amount can be is "
        f"{units(MAX_AMOUNT, decimals)} (2^256-1 in the smallest unit)"
    )
