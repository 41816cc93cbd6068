"""Paid tasks and apps from the command line against a node process (one for the module)."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import openai
import pytest

from tests.cli.test_cli import Cli, balance, field, node_process, number, row, tokens
from tests.compute.conftest import save_tiny_model
from tests.data.conftest import pair

pytestmark = [pytest.mark.process, pytest.mark.slow]


@pytest.fixture(scope="module")
def cli(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cli]:
    """This module's own dev node process, which its tests share."""
    with node_process(tmp_path_factory.mktemp("market-node")) as run:
        yield run


def test_a_paid_task_pays_on_anchoring_and_refunds_on_close(cli: Cli, tmp_path: Path) -> None:
    policy = tmp_path / "policy.json"
    policy.write_text(json.dumps({"review": {"review_share": 0.0}}))
    created = cli(
        "dataset", "create", "--name", "Tasks", "--licence", "CC0-1.0", "--task", "instruction",
        "--policy", str(policy), "--from", "alice",
    ).stdout  # fmt: skip
    dataset = number(r"Dataset (\d+): Tasks", created)
    refused = cli(
        "bounty", "open", dataset, "--from", "bob", "--budget", "5", "--per-record", "1", ok=False
    )
    assert "not the dataset owner" in refused.stderr
    opened = cli(
        "bounty", "open", dataset, "--from", "alice", "--budget", "10", "--per-record", "0.5"
    ).stdout
    bounty = number(r"Bounty (\d+)", opened)
    assert field(opened, "dataset") == dataset and field(opened, "per record") == "0.5 CAIRN"
    assert row(cli("bounty", "list", "--dataset", dataset).stdout, bounty)[1:3] == [
        dataset,
        "0.5 CAIRN",
    ]

    owed = tokens(number(r"unclaimed: (\S+ CAIRN)", cli("earnings", "bob").stdout))
    held = balance(cli, "bob")
    upload = tmp_path / "records.jsonl"
    upload.write_text("".join(json.dumps(pair(i)) + "\n" for i in range(4)))
    cli("contribute", dataset, str(upload), "--from", "bob")
    cli("dataset", "anchor", dataset, "--from", "alice")  # the node pays the batch at once
    shown = cli("bounty", "show", bounty).stdout
    assert field(shown, "remaining") == "8 CAIRN" and field(shown, "paid out") == "2 CAIRN"
    assert "paid" in shown, shown
    claimed = tokens(number(r"total: (\S+ CAIRN)", cli("claim", "bob").stdout))
    assert claimed == owed + 2 and balance(cli, "bob") == held + claimed

    closed = cli("bounty", "close", bounty, "--from", "alice").stdout
    assert f"bounty {bounty} closed; refunded 8 CAIRN" in closed
    assert row(cli("bounty", "list").stdout, bounty)[5] == "closed"


def test_an_app_is_published_listed_and_called(cli: Cli, tmp_path: Path) -> None:
    folder = save_tiny_model(tmp_path / "tiny", "causal-lm")
    registered = cli(
        "model", "register", str(folder), "--name", "tiny", "--licence", "MIT", "--from", "alice"
    ).stdout
    model = number(r"Registered model (\d+)", registered)
    published = cli(
        "app", "create", "--name", "Echo", "--model", model, "--prompt", "Be brief.",
        "--price", "0.5", "--max-tokens", "4", "--from", "alice",
    ).stdout  # fmt: skip
    app = number(r"Published app (\d+)", published)
    assert row(cli("app", "list").stdout, app)[1] == "Echo"
    shown = cli("app", "show", app).stdout
    assert "Be brief." in shown and "0.5 CAIRN" in shown

    spent = Decimal(field(cli("balance", "show", "carol").stdout, "spent"))
    cli("balance", "deposit", "2", "--account", "carol")
    created = cli("key", "create", "--account", "carol").stdout
    secret = re.search(r"cairn-sk-\S+", created)
    assert secret, created
    client = openai.OpenAI(
        base_url=cli.env["CAIRN_NODE"] + "/v1", api_key=secret.group(0), max_retries=0
    )
    answer = client.chat.completions.create(model=app, messages=[{"role": "user", "content": "hi"}])
    assert answer.usage is not None and answer.usage.completion_tokens <= 4
    after = Decimal(field(cli("balance", "show", "carol").stdout, "spent"))
    assert after == spent + Decimal("0.5")
