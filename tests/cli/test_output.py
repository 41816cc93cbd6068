"""The CLI prints users' text literally: brackets in names are not Rich markup."""

from __future__ import annotations

import pytest

from cairn.cli import output
from cairn.core.errors import InvalidInput


def test_tables_and_errors_print_brackets_literally(capsys: pytest.CaptureFixture[str]) -> None:
    output.table("Assets [/]", ["name"], [["x[/]"], ["[bold]loud[/bold]"]])
    printed = capsys.readouterr().out
    assert "x[/]" in printed and "[bold]loud[/bold]" in printed and "Assets [/]" in printed
    with pytest.raises(SystemExit) as caught:
        output.fail(InvalidInput("field 'name[0]' [/] is wrong"))
    assert caught.value.code == 1
    assert "field 'name[0]' [/] is wrong" in capsys.readouterr().err


def test_token_units_round_trip() -> None:
    assert output.units(1_500_000_000_000_000_000, 18) == "1.5"
    assert output.parse_units("1.5", 18) == 1_500_000_000_000_000_000
    with pytest.raises(InvalidInput, match="at most 18 decimals"):
        output.parse_units("0.0000000000000000001", 18)
