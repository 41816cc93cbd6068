"""How the CLI prints: Rich tables, token amounts, and errors a user can act on."""

from __future__ import annotations

import sys
from typing import Any, NoReturn

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from cairn.core.amounts import parse_units, units
from cairn.core.errors import CairnError

__all__ = ["console", "errors", "fail", "fields", "parse_units", "table", "units"]

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
