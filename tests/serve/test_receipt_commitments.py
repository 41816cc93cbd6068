"""Verified inference on a real node: a charged chat's receipt signs a commitment to the model's
hidden states and its transcript's CID; the paying account alone reads the transcript; a replay
on the advertised model passes, and one after a gateway served another model fails."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
from eth_account import Account
from eth_account.messages import encode_defunct

from cairn.api.client import NodeClient
from cairn.core.cid import canonical_json, cid_of
from cairn.core.errors import Forbidden, InvalidInput, Unauthorized
from cairn.serve.resolver import Served as ServedModelRef
from cairn.verify.inference import CHUNK, Commitment
from tests.serve.test_gateway import Served, served  # noqa: F401  (the module's node)

pytestmark = pytest.mark.node


def chat(served: Served, api: NodeClient, tokens: int = 40) -> str:  # noqa: F811
    key = api.request("POST", "/keys", json={"name": "verify"})
    answer = served.client(key["secret"]).chat.completions.create(
        model=served.chat,
        messages=[{"role": "user", "content": "Tell me a story"}],
        max_tokens=tokens,
        temperature=1.0,
        seed=5,
    )
    return str(answer.model_extra["cairn"]["receipt"])  # type: ignore[index]


def test_a_chat_receipt_signs_a_commitment_the_payer_can_replay(served: Served) -> None:  # noqa: F811
    api = NodeClient(served.url)
    api.sign_in(served.carol)
    receipt_id = chat(served, api)
    published = api.request("GET", f"/receipts/{receipt_id}")
    fields = json.loads(published["signed"])
    signer = Account.recover_message(
        encode_defunct(text=published["signed"]), signature=published["signature"]
    )
    assert signer == fields["gateway"]
    commitment = Commitment.decode(fields["commitment"])
    assert commitment.tokens == fields["completion_tokens"] > 0
    assert len(commitment.chunks) == -(-fields["completion_tokens"] // CHUNK)

    transcript = api.request("GET", f"/receipts/{receipt_id}/transcript")
    document = transcript["document"]
    assert transcript["cid"] == fields["transcript"] == cid_of(canonical_json(document))
    assert len(document["prompt"]) == fields["prompt_tokens"]
    assert len(document["completion"]) == fields["completion_tokens"]
    assert len(document["salt"]) == 32  # the public CID does not let a guessed prompt be tested
    other = NodeClient(served.url)
    other.sign_in(served.alice)
    with pytest.raises(Forbidden, match="another account's"):
        other.request("GET", f"/receipts/{receipt_id}/transcript")
    with pytest.raises(Forbidden, match="another account's"):
        other.request("POST", f"/receipts/{receipt_id}/verify")
    with pytest.raises(Unauthorized):
        NodeClient(served.url).request("GET", f"/receipts/{receipt_id}/transcript")

    check = api.request("POST", f"/receipts/{receipt_id}/verify")
    assert check["ok"] is True and check["model"] == int(served.chat), check
    assert check["tokens"] == fields["completion_tokens"]


def test_a_gateway_that_served_another_model_is_caught(
    served: Served,  # noqa: F811
    folders: dict[str, Path],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    api = NodeClient(served.url)
    api.sign_in(served.carol)
    gateway = served.node.gateway
    honest = gateway.resolver.resolve

    def cheaper(ref: str) -> ServedModelRef:  # the chat asset, served from another checkpoint
        found = honest(ref)
        model = dataclasses.replace(found.model, folder=folders["plain"])
        return dataclasses.replace(found, model=model)

    with monkeypatch.context() as patched:
        patched.setattr(gateway.resolver, "resolve", cheaper)
        receipt_id = chat(served, api)
    check = served.node.validator.check(receipt_id)
    assert not check.ok and "differ" in check.reason, check
    assert api.request("POST", f"/receipts/{receipt_id}/verify")["ok"] is False


def test_a_receipt_without_a_commitment_says_why_it_cannot_be_replayed(served: Served) -> None:  # noqa: F811
    api = NodeClient(served.url)
    api.sign_in(served.carol)
    key = api.request("POST", "/keys", json={"name": "embed"})
    answer = served.client(key["secret"]).embeddings.create(model=served.encoder, input=["hi"])
    receipt_id = answer.model_extra["cairn"]["receipt"]  # type: ignore[index]
    with pytest.raises(InvalidInput, match="commits to no hidden states"):
        api.request("POST", f"/receipts/{receipt_id}/verify")
    assert "commitment" not in json.loads(api.request("GET", f"/receipts/{receipt_id}")["signed"])


def test_the_node_replays_a_sample_of_each_anchored_batch(
    served: Served,  # noqa: F811
    folders: dict[str, Path],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    node, api = served.node, NodeClient(served.url)
    api.sign_in(served.carol)
    honest = [chat(served, api), chat(served, api)]
    gateway = node.gateway
    served_by = gateway.resolver.resolve

    def cheaper(ref: str) -> ServedModelRef:
        found = served_by(ref)
        return dataclasses.replace(
            found, model=dataclasses.replace(found.model, folder=folders["plain"])
        )

    with monkeypatch.context() as patched:
        patched.setattr(gateway.resolver, "resolve", cheaper)
        cheated = chat(served, api)
    operator = NodeClient(served.url)
    operator.sign_in(node.operator)
    operator.request("POST", "/receipts/anchor")
    assert node.economy.receipts.has_unchecked()
    checks = []
    while node.economy.receipts.has_unchecked():  # this module's batches, oldest first
        checks += node.validator.check_sampled(per_batch=100)
    found = {c.receipt_id: c for c in checks}
    assert all(found[r].ok for r in honest) and found[cheated].ok is False
    assert node.validator.check_sampled() == []  # every batch is sampled once
    shown = api.request("GET", f"/receipts/{cheated}")["check"]
    assert shown["ok"] is False and "differ" in shown["reason"] and shown["checked_at"] > 0
    assert api.request("GET", f"/receipts/{honest[0]}")["check"]["ok"] is True
    listed = {
        r.receipt_id: r.replayed for r in node.economy.receipts.of_account(served.carol.address)
    }
    assert listed[cheated] is False and listed[honest[0]] is True  # the earnings page's column
