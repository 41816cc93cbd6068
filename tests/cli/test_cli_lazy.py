"""`cairn`'s commands are imported when they run (`cairn.cli.lazy`): its help lists each with the
line the command itself would show, a subcommand's own help and a typo's suggestion work as
they did, and importing the CLI imports none of the commands' modules."""

from __future__ import annotations

import sys

import typer
from click.testing import CliRunner as ClickRunner
from typer.testing import CliRunner

from cairn.cli.main import Cairn, app

ENV = {"COLUMNS": "200"}


def test_each_line_of_cairn_help_is_the_one_its_loaded_command_shows() -> None:
    listed = CliRunner().invoke(app, ["--help"], env=ENV)
    assert listed.exit_code == 0, listed.output
    group = typer.main.get_command(app)
    assert isinstance(group, Cairn)
    with group.make_context("cairn", ["--help"], resilient_parsing=True) as ctx:
        for name in Cairn.lazy:  # import every command, as running each would
            assert group.get_command(ctx, name) is not None
    assert set(group.commands) == set(Cairn.lazy)
    loaded = ClickRunner().invoke(group, ["--help"], env=ENV, prog_name="cairn")
    assert loaded.exit_code == 0, loaded.output
    assert listed.output == loaded.output
    for name in Cairn.lazy:
        assert f" {name} " in listed.output


def test_a_subcommand_shows_its_own_help_and_a_typo_gets_a_suggestion() -> None:
    shown = CliRunner().invoke(app, ["model", "--help"], env=ENV)
    assert shown.exit_code == 0, shown.output
    assert "register" in shown.output and "price" in shown.output  # price comes from economy
    typo = CliRunner().invoke(app, ["jbo"], env=ENV)
    assert typo.exit_code == 2
    assert "No such command 'jbo'. Did you mean 'job'?" in typo.output
    assert CliRunner().invoke(app, ["nothing-like-it"], env=ENV).exit_code == 2


def test_a_command_module_is_imported_only_when_its_command_runs() -> None:
    modules = {entry.module for entry in Cairn.lazy.values()}
    saved = {name: sys.modules.pop(name) for name in modules if name in sys.modules}
    try:
        shown = CliRunner().invoke(app, ["--help"], env=ENV)
        assert shown.exit_code == 0
        assert modules.isdisjoint(sys.modules)
        CliRunner().invoke(app, ["recipe", "--help"], env=ENV)
        assert "cairn.cli.recipes" in sys.modules
        assert (modules - {"cairn.cli.recipes"}).isdisjoint(sys.modules)
    finally:  # the other tests' modules, as they imported them
        sys.modules.update(saved)
