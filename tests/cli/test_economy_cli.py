"""Paying for a model and being paid for it, from the command line against a node process."""

from __future__ import annotations

import re
from pathlib import Path

import openai
import pytest

from tests.cli.test_cli import Cli, cli  # noqa: F401  (the fixture)
from tests.compute.conftest import save_tiny_model

pytestmark = [pytest.mark.process, pytest.mark.slow]


def test_keys_deposits_prices_settlement_and_claims(cli: Cli, tmp_path: Path) -> None:  # noqa: F811
    folder = save_tiny_model(tmp_path / "tiny", "causal-lm")
    registered = cli(
        "model",
        "register",
        str(folder),
        "--name",
        "tiny chat",
        "--licence",
        "MIT",
        "--from",
        "alice",
        "--split",
        "5000,0,0,5000",
    ).stdout
    model = re.search(r"Registered model (\d+)", registered)
    assert model, registered
    model_id = model.group(1)

    refused = cli("model", "price", model_id, "1", "--account", "bob", ok=False)
    assert "only the owner" in refused.stderr
    assert (
        "0.5 CAIRN per 1,000 tokens"
        in cli("model", "price", model_id, "0.5", "--account", "alice").stdout
    )

    deposited = cli("balance", "deposit", "5", "--account", "carol").stdout
    assert "available: 5 CAIRN" in deposited
    created = cli("key", "create", "--account", "carol", "--name", "laptop").stdout
    secret = re.search(r"cairn-sk-\S+", created)
    key_id = re.search(r"key_[0-9a-f]+", created)
    assert secret and key_id, created
    assert "active" in cli("key", "list", "--account", "carol").stdout

    url = cli.env["CAIRN_NODE"] + "/v1"
    client = openai.OpenAI(base_url=url, api_key=secret.group(0), max_retries=0)
    answer = client.chat.completions.create(
        model=model_id, messages=[{"role": "user", "content": "hi"}], max_tokens=8
    )
    assert answer.usage is not None
    shown = cli("balance", "show", "carol").stdout
    assert re.search(r"spent\s+│\s+0\.0\d+", shown), shown

    refused = cli("settle", "--account", "alice", ok=False)
    assert "only the node's operator" in refused.stderr
    settled = cli("settle").stdout  # as the node's operator
    assert "Epoch 1" in settled and "funded" in settled
    assert "nothing to settle" in cli("settle").stdout
    earned = cli("earnings", "alice").stdout
    assert "tiny chat" in earned and "owner" in earned and "unclaimed: 0.0" in earned
    claimed = cli("claim", "alice").stdout
    assert "total: 0.0" in claimed
    assert "nothing to claim" in cli("claim", "alice").stdout
    assert "unclaimed: 0 CAIRN" in cli("earnings", "alice").stdout
    assert "nothing to claim" in cli("claim").stdout  # every local account, none owed now
    # leaving (after settling: a request for more than is free makes the node draw at once):
    # the vault sets it all aside at once, and pays it only after the notice period
    asked = cli("balance", "withdraw", "--account", "carol").stdout
    assert "asked to withdraw all CAIRN" in asked and "available: 0 CAIRN" in asked, asked
    assert re.search(r"withdrawing\s+│\s+all, from", cli("balance", "show", "carol").stdout)
    early = cli("balance", "withdraw", "--take", "--account", "carol", ok=False)
    assert "notice period not over" in early.stderr, early.stderr
    back = cli("balance", "withdraw", "--cancel", "--account", "carol").stdout
    assert "withdrawal cancelled" in back and "available: 4.9" in back, back

    cli("key", "revoke", key_id.group(0), "--account", "carol")
    assert "revoked" in cli("key", "list", "--account", "carol").stdout
    with pytest.raises(openai.AuthenticationError):
        client.models.list()
