"""Token amounts between people and contracts: decimal text <-> integers in the smallest unit."""

from __future__ import annotations

from decimal import Decimal, InvalidOperation

from cairn.core.errors import InvalidInput


def units(amount: str | int, decimals: int) -> str:
    """A smallest-unit integer as a decimal token amount, e.g. 1500000000000000000 -> 1.5."""
    value = Decimal(int(amount)) / (Decimal(10) ** decimals)
    text = f"{value:f}"
    return text.rstrip("0").rstrip(".") if "." in text else text


def parse_units(text: str, decimals: int) -> int:
    """A decimal token amount (`1.5`) in smallest units; more decimals than the token has is an error."""
    try:
        value = Decimal(text)
    except InvalidOperation:
        raise InvalidInput(f"amount {text!r} is not a number") from None
    scaled = value * (Decimal(10) ** decimals)
    if not value.is_finite() or value <= 0 or scaled != scaled.to_integral_value():
        raise InvalidInput(f"amount {text!r} must be positive with at most {decimals} decimals")
    return int(scaled)
