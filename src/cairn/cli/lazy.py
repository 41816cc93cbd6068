"""Subcommands loaded when they run: `cairn --help` imports none of them.

Each of `cairn`'s commands lives in a module that imports what it works with (the job records'
pydantic models, the recipe parser, the HTTP client): together a second of a start-up spent on
commands that will not run. `LazyGroup` knows each command's module, its attribute (a Typer app
or a command function) and the line `cairn --help` shows for it, and imports the module only
when the command is resolved to run (or asked for its own help). tests/cli/test_cli_lazy.py
checks that each line is the one the loaded command would show.
"""

from __future__ import annotations

import importlib
from difflib import get_close_matches
from typing import Any, ClassVar, NamedTuple

import click
import typer
from typer.core import TyperGroup


class Lazy(NamedTuple):
    """Where a subcommand lives, and the line `cairn --help` shows for it."""

    module: str  # e.g. "cairn.cli.compute"
    attribute: str  # a typer.Typer app, or a function that is one command
    help: str


def load(name: str, entry: Lazy) -> click.Command:
    """The Click command `entry` names, under `name`."""
    found = getattr(importlib.import_module(entry.module), entry.attribute)
    if isinstance(found, typer.Typer):
        command: click.Command = typer.main.get_group(found)
    else:
        single = typer.Typer()
        single.command(name)(found)
        command = typer.main.get_command(single)
    command.name = name
    return command


class LazyGroup(TyperGroup):
    """A Typer group whose subcommands named in `lazy` are imported on first use."""

    lazy: ClassVar[dict[str, Lazy]] = {}

    def __init__(self, **attrs: Any) -> None:
        super().__init__(**attrs)
        self.listing = False  # while the group's own help lists its commands

    def list_commands(self, ctx: click.Context) -> list[str]:
        eager = super().list_commands(ctx)
        return [*eager, *(name for name in self.lazy if name not in eager)]

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in self.commands or cmd_name not in self.lazy:
            return super().get_command(ctx, cmd_name)
        entry = self.lazy[cmd_name]
        if self.listing:  # a line in a list: no import
            return click.Command(cmd_name, help=entry.help)
        command = load(cmd_name, entry)
        self.add_command(command, cmd_name)
        return command

    def format_help(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        self.listing = True
        try:
            super().format_help(ctx, formatter)
        finally:
            self.listing = False

    def resolve_command(
        self, ctx: click.Context, args: list[str]
    ) -> tuple[str | None, click.Command | None, list[str]]:
        try:
            return click.Group.resolve_command(self, ctx, args)
        except click.UsageError as exc:  # a typo: suggest the nearest names, loaded or not
            matches = get_close_matches(args[0], self.list_commands(ctx)) if args else []
            if not matches:
                raise
            names = ", ".join(f"{m!r}" for m in matches)
            message = f"{exc.message.rstrip('.')}. Did you mean {names}?"
            raise click.UsageError(message, exc.ctx) from None
