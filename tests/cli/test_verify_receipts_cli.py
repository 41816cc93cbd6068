"""`cairn verify receipts`: a user replays their own charged chats on their own machine (the
model downloaded from the node) or on the node, and sees each pass; a call a dishonest gateway
served from another checkpoint fails, and the command exits 1."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import openai
import pytest

from cairn.serve.resolver import Served
from cairn.train.tiny import tiny_causal_lm
from tests.api.test_api import dev_account
from tests.cli.conftest import InProcess
from tests.conftest import LiveServer

pytestmark = pytest.mark.node

TOKEN = 10**18


def save_tiny(folder: Path, seed: int) -> Path:
    model, tokenizer = tiny_causal_lm(seed=seed, hidden_size=32, layers=2, heads=2)
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def test_a_user_replays_their_receipts_here_and_on_the_node(
    live: LiveServer, cairn: InProcess, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    node = live.node
    alice, carol = dev_account(node, "alice"), dev_account(node, "carol")
    asset = node.catalog.register_folder(
        alice, save_tiny(tmp_path / "chat", 0), name="tiny chat", licence="MIT", family="causal-lm"
    )
    node.economy.prices.set(alice.address, asset.asset_id, TOKEN // 10)
    node.chain.token.transfer(carol, node.economy.treasury, TOKEN)
    _, secret = node.economy.keys.create(carol.address, "tests")
    client = openai.OpenAI(base_url=live.url + "/v1", api_key=secret, max_retries=0)

    def ask(seed: int) -> None:
        client.chat.completions.create(
            model=str(asset.asset_id),
            messages=[{"role": "user", "content": "Tell me a story"}],
            max_tokens=40,
            temperature=1.0,
            seed=seed,
        )

    ask(1)
    ask(2)
    here = cairn("verify", "receipts", "--as", "carol", "--limit", "2")
    assert here.text.count("passed") == 2 and "FAILED" not in here.text, here.text
    assert "Receipts replayed here" in here.text
    on_node = cairn("verify", "receipts", "--as", "carol", "--limit", "2", "--on-node")
    assert on_node.text.count("passed") == 2, on_node.text

    other = save_tiny(tmp_path / "other", 1)
    honest = node.gateway.resolver.resolve

    def cheaper(ref: str) -> Served:  # the same asset, served from another checkpoint
        found = honest(ref)
        return dataclasses.replace(found, model=dataclasses.replace(found.model, folder=other))

    with monkeypatch.context() as patched:
        patched.setattr(node.gateway.resolver, "resolve", cheaper)
        ask(3)
    caught = cairn("verify", "receipts", "--as", "carol", "--limit", "3", ok=False)
    assert caught.exit_code == 1
    assert caught.text.count("passed") == 2 and caught.text.count("FAILED") == 1, caught.text
    assert "differ" in caught.text


def test_bad_input_is_refused_clearly(live: LiveServer, cairn: InProcess, tmp_path: Path) -> None:
    assert (
        "--limit must be between 1 and 1000"
        in cairn("verify", "receipts", "--as", "carol", "--limit", "0", ok=False).text
    )
    assert (
        "not a Hugging Face model folder"
        in cairn(
            "verify", "receipts", "--as", "carol", "--model-folder", str(tmp_path), ok=False
        ).text
    )
    assert "no committed receipts" in cairn("verify", "receipts", "--as", "bob").text
