"""Paid tasks and apps from the command line against a node process."""

from __future__ import annotations

import json
import re
from pathlib import Path

import openai
import pytest

from tests.cli.test_cli import Cli, cli  # noqa: F401  (the fixture)
from tests.compute.conftest import save_tiny_model
from tests.data.conftest import pair

pytestmark = [pytest.mark.process, pytest.mark.slow]


def test_a_paid_task_pays_on_anchoring_and_refunds_on_close(cli: Cli, tmp_path: Path) -> None:  # noqa: F811
    policy = tmp_path / "policy.json"
    policy.write_text(json.dumps({"review": {"review_share": 0.0}}))
    cli(
        "dataset", "create", "--name", "Tasks", "--licence", "CC0-1.0", "--task", "instruction",
        "--policy", str(policy), "--from", "alice",
    )  # fmt: skip
    refused = cli(
        "bounty", "open", "1", "--from", "bob", "--budget", "5", "--per-record", "1", ok=False
    )
    assert "not the dataset owner" in refused.stderr
    opened = cli(
        "bounty", "open", "1", "--from", "alice", "--budget", "10", "--per-record", "0.5"
    ).stdout
    assert "Bounty 1" in opened and "0.5 CAIRN" in opened
    assert "0.5 CAIRN" in cli("bounty", "list", "--dataset", "1").stdout

    upload = tmp_path / "records.jsonl"
    upload.write_text("".join(json.dumps(pair(i)) + "\n" for i in range(4)))
    cli("contribute", "1", str(upload), "--from", "bob")
    cli("dataset", "anchor", "1", "--from", "alice")  # the node pays the batch at once
    shown = cli("bounty", "show", "1").stdout
    assert re.search(r"remaining\s+│\s+8 CAIRN", shown) and "paid" in shown, shown
    assert "total: 2 CAIRN" in cli("claim", "bob").stdout

    closed = cli("bounty", "close", "1", "--from", "alice").stdout
    assert "refunded 8 CAIRN" in closed
    assert "closed" in cli("bounty", "list").stdout


def test_an_app_is_published_listed_and_called(cli: Cli, tmp_path: Path) -> None:  # noqa: F811
    folder = save_tiny_model(tmp_path / "tiny", "causal-lm")
    cli("model", "register", str(folder), "--name", "tiny", "--licence", "MIT", "--from", "alice")
    published = cli(
        "app", "create", "--name", "Echo", "--model", "1", "--prompt", "Be brief.",
        "--price", "0.5", "--max-tokens", "4", "--from", "alice",
    ).stdout  # fmt: skip
    found = re.search(r"Published app (\d+)", published)
    assert found, published
    app = found.group(1)
    assert "Echo" in cli("app", "list").stdout
    shown = cli("app", "show", app).stdout
    assert "Be brief." in shown and "0.5 CAIRN" in shown

    cli("balance", "deposit", "2", "--account", "carol")
    created = cli("key", "create", "--account", "carol").stdout
    secret = re.search(r"cairn-sk-\S+", created)
    assert secret, created
    client = openai.OpenAI(
        base_url=cli.env["CAIRN_NODE"] + "/v1", api_key=secret.group(0), max_retries=0
    )
    answer = client.chat.completions.create(model=app, messages=[{"role": "user", "content": "hi"}])
    assert answer.usage is not None and answer.usage.completion_tokens <= 4
    assert re.search(r"spent\s+│\s+0\.5", cli("balance", "show", "carol").stdout)
