"""Every `cairn` command in README.md works as written on the node `make run` starts.

The commands of each ```sh block run top to bottom on this package's demo node, which is what
`make run` starts, before the other browser tests change it (conftest orders this module first:
the README numbers what it registers from the ids a fresh demo node hands out next). Each must
exit 0. What the commands read comes from the README too: its ```LANG FILE blocks are written
to FILE, and `./my-model` is a model folder as `save_pretrained` writes one. Placeholders are
filled in from the node (`JOB_ID`, `RECORD_HASH`, `0x…`, `key_…`), and `[...]`, what a reader
may leave out, is left out. Commands that would run for minutes, or that need what such a
command makes, are in NOT_RUN with the reason.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from cairn.cli.main import app
from tests.browser.conftest import ROOT, DemoNode
from tests.compute.conftest import save_tiny_model

pytestmark = [pytest.mark.slow, pytest.mark.browser, pytest.mark.timeout(1200)]

README = ROOT / "README.md"
NOT_RUN = {
    "cairn node start": "starts a node; the demo node is running already",
    "cairn demo": "tells the whole story on a node of its own, for minutes",
    "cairn worker start": "runs a provider until Ctrl-C",
    "cairn worker unbond": "needs a stake, which `cairn worker start` puts up",
    "cairn worker withdraw": "needs a stake whose unbonding period (a day) is over",
    "cairn balance withdraw --take": "needs the vault's notice period (5 minutes) to pass",
    "cairn train": "keeps the demo's two providers training for minutes",
    "cairn job cancel": "needs the running job that `cairn train` starts",
    # TLS for the Fleet API of a node on a public address, not of a dev node on 127.0.0.1
    "cairn node fleet-tls": "sets up a public node's Fleet API TLS",
    "cairn node supernode-key": "writes a provider's key pair in its home folder",
    "cairn node admit-supernode": "needs the key `cairn node supernode-key` writes",
}
PASSWORD = "correct horse battery staple"  # typed at `cairn account create`'s prompt, twice


@dataclass
class Readme:
    """The README's commands, in order, and the files its blocks spell out."""

    commands: list[str] = field(default_factory=list)
    files: dict[str, str] = field(default_factory=dict)


def read_readme(text: str) -> Readme:
    """Each ```sh block's commands (continuation lines joined, comments and `[...]` removed)
    and each ```LANG FILE block's text."""
    found = Readme()
    fence: list[str] | None = None
    lines: list[str] = []
    for line in text.splitlines():
        if fence is None:
            if line.startswith("```"):
                fence, lines = line[3:].split(), []
            continue
        if line.startswith("```"):
            if fence[:1] == ["sh"]:
                found.commands += _commands(lines)
            elif len(fence) == 2:
                found.files[fence[1]] = "\n".join(lines) + "\n"
            fence = None
            continue
        lines.append(line)
    return found


def _commands(lines: list[str]) -> list[str]:
    joined = "\n".join(lines).replace("\\\n", " ")
    out = []
    for line in joined.splitlines():
        words = shlex.split(re.sub(r"\s*\[[^\]]*\]", "", line), comments=True)
        if words and words[0] in ("cairn", ".venv/bin/cairn"):
            out.append(shlex.join(["cairn", *words[1:]]))
    return out


def skipped(command: str) -> str | None:
    """Why `command` is not run, or None."""
    return next((why for head, why in NOT_RUN.items() if command.startswith(head)), None)


def test_the_readme_is_read_whole() -> None:
    readme = read_readme(README.read_text())
    assert len(readme.commands) >= 50, readme.commands
    assert {"replies.jsonl", "gold.jsonl", "policy.json"} <= set(readme.files)
    assert "cairn review next 8 --from carol" in readme.commands  # `[--answer approve]` left out
    assert (
        "cairn asset register --kind model --name 'Polite bot' --licence MIT --parent 1 "
        "--split 7000,2000,1000,0 --from alice" in readme.commands
    )


def test_every_command_in_the_readme_runs_on_the_demo_node(
    demo_node: DemoNode, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    if demo_node.process is None:
        pytest.skip("the README's ids are a fresh demo node's; CAIRN_BROWSER_NODE's has moved on")
    readme = read_readme(README.read_text())
    for name, content in readme.files.items():
        (tmp_path / name).write_text(content)
    save_tiny_model(tmp_path / "my-model", "causal-lm")
    monkeypatch.chdir(tmp_path)  # where the commands find their files and write theirs
    env = {
        "CAIRN_DATA_DIR": str(demo_node.data_dir),
        "CAIRN_NODE": demo_node.url,
        "CAIRN_PASSWORD": None,  # dev accounts need none; `account create` asks for one
        "COLUMNS": "200",
    }
    runner = CliRunner()
    filled = Placeholders(demo_node)
    ran = []
    for command in readme.commands:
        if skipped(command):
            continue
        args = filled.fill(shlex.split(command)[1:])
        result = runner.invoke(app, args, env=env, input=f"{PASSWORD}\n{PASSWORD}\n")
        failure = result.exception if not isinstance(result.exception, SystemExit) else None
        assert result.exit_code == 0 and failure is None, (
            f"`{shlex.join(['cairn', *args])}` exited {result.exit_code}: "
            f"{getattr(failure, 'message', failure)}\n{result.output[-3000:]}"
        )
        filled.learn(result.output)
        ran.append(command)
    assert len(ran) >= 45, ran


class Placeholders:
    """Values for the README's placeholders, from the demo node and from earlier output."""

    def __init__(self, node: DemoNode) -> None:
        self.node = node
        self.key: str | None = None  # the API key the README's `cairn key create` made

    def learn(self, output: str) -> None:
        """Note the values a command printed that later commands name."""
        made = re.search(r"│ id\s+│ (key_[0-9a-f]+)", output)
        if made:
            self.key = made.group(1)

    def fill(self, args: list[str]) -> list[str]:
        """`args` with each placeholder replaced."""
        out = []
        for i, arg in enumerate(args):
            if arg == "JOB_ID":
                arg = str(self.node.facts["job"]["id"])  # the demo's training job
            elif arg == "RECORD_HASH":
                arg = self._anchored_record(int(args[i - 1]))
            elif arg == "key_…":
                assert self.key, "no `cairn key create` before `cairn key revoke`"
                arg = self.key
            elif arg == "0x…":
                arg = self.node.address("carol")
            assert "…" not in arg, f"an unknown placeholder in {args}"
            out.append(arg)
        return out

    def _anchored_record(self, dataset: int) -> str:
        records = httpx.get(f"{self.node.url}/api/v1/datasets/{dataset}/records", timeout=30).json()
        return str(next(r["record_hash"] for r in records if r["status"] == "anchored"))
