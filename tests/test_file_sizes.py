"""Files hold one idea each (STYLE.md): no source file over 600 lines, and one over 400 only
with a reason in its docstring (a paragraph beginning "Over 400 lines because")."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "cairn"
SOURCES = sorted([*SRC.rglob("*.py"), *SRC.rglob("*.vy")])
LIMIT, LONG = 600, 400
REASON = "Over 400 lines because"


def docstring(path: Path) -> str:
    """A Python module's docstring, or a Vyper contract's leading NatSpec block."""
    text = path.read_text(encoding="utf-8")
    if path.suffix == ".py":
        return ast.get_docstring(ast.parse(text)) or ""
    found = re.search(r'"""(.*?)"""', text, re.DOTALL)
    return found.group(1) if found else ""


def lines(path: Path) -> int:
    return len(path.read_text(encoding="utf-8").splitlines())


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: str(p.relative_to(SRC)))
def test_a_source_file_is_short_or_says_why_it_is_not(path: Path) -> None:
    count = lines(path)
    assert count <= LIMIT, f"{path.relative_to(SRC)} has {count} lines; split it (at most {LIMIT})"
    if count > LONG:
        assert REASON in " ".join(docstring(path).split()), (
            f"{path.relative_to(SRC)} has {count} lines: its docstring should say why, in a "
            f"paragraph beginning {REASON!r}, or the file should be split"
        )


def test_the_check_reads_both_languages() -> None:
    assert any(p.suffix == ".vy" for p in SOURCES) and any(p.suffix == ".py" for p in SOURCES)
    assert REASON in " ".join(docstring(SRC / "data" / "anchoring.py").split())
    assert "@title" in docstring(SRC / "chain" / "contracts" / "DataBounty.vy")
