"""How the CLI prints: Rich tables, token amounts, and errors a user can act on."""

from __future__ import annotations

import sys
from decimal import Decimal, InvalidOperation
from typing import Any, NoReturn

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from cairn.core.errors import CairnError, InvalidInput

console = Console()
errors = Console(stderr=True)


def fail(exc: CairnError) -> NoReturn:
    """Print a Cairn error and exit non-zero."""
    errors.print(f"[bold red]error:[/] {escape(exc.message)}", highlight=False)
    sys.exit(1)


def table(title: str, columns: list[str], rows: list[list[Any]]) -> None:
    """Print rows as a table."""
    # Names, descriptions and errors come from users: never read them as Rich markup.
    out = Table(title=escape(title), title_justify="left", header_style="bold")
    for column in columns:
        out.add_column(escape(column), overflow="fold")
    for row in rows:
        out.add_row(*(escape(str(cell)) for cell in row))
    console.print(out)


def fields(title: str, items: dict[str, Any]) -> None:
    """Print a record as a two-column table."""
    table(title, ["field", "value"], [[k, v] for k, v in items.items()])


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
