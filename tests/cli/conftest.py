"""The `cairn` command run in this process against a live node, for tests that also reach into
the node itself (its chain's clock, its store) while the commands talk to it over HTTP."""

from __future__ import annotations

from typing import NamedTuple

import pytest
from typer.testing import CliRunner

from cairn.cli.main import app
from cairn.core.errors import CairnError
from tests.conftest import LiveServer


class Ran(NamedTuple):
    exit_code: int
    text: str  # stdout and stderr, with Rich's line wrapping undone


class InProcess:
    """`cairn ARGS` with the node's data folder (its dev accounts) and URL, as a user runs it."""

    def __init__(self, live: LiveServer, **env: str) -> None:
        self.env = {
            "CAIRN_DATA_DIR": str(live.node.data_dir),
            "CAIRN_NODE": live.url,
            "COLUMNS": "250",
            **env,
        }
        self.runner = CliRunner()

    def __call__(self, *args: str, ok: bool = True) -> Ran:
        result = self.runner.invoke(app, list(args), env=self.env)
        text = result.output
        if isinstance(result.exception, CairnError):  # what `cairn.cli.main.main` prints
            text += f"error: {result.exception.message}"
        elif result.exception is not None and not isinstance(result.exception, SystemExit):
            raise result.exception
        ran = Ran(result.exit_code, " ".join(text.split()))
        assert (ran.exit_code == 0) == ok, ran.text
        return ran


@pytest.fixture
def cairn(live: LiveServer) -> InProcess:
    """The `cairn` command against the `live` dev node."""
    return InProcess(live)
