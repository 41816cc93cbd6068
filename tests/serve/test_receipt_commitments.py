"""Verified inference on a real node: a charged chat's receipt signs a commitment to the model's
hidden states and its transcript's CID; the paying account alone reads the transcript; a replay
on the advertised model passes, and one after a gateway served another model fails."""

from __future__ import annotations

import dataclasses
import time
import uuid
from pathlib import Path

import pytest

from cairn.api.client import NodeClient
from cairn.core.cid import canonical_json, cid_of
from cairn.core.errors import Forbidden, InvalidInput, Unauthorized
from cairn.economy.models import ReceiptRow
from cairn.economy.receipts import (
    SCHEMA,
    TYPED_SCHEMA,
    UsageReceipt,
    receipt_leaf,
    sign_receipt,
)
from cairn.serve.resolver import Served as ServedModelRef
from cairn.verify.inference import CHUNK, Commitment
from tests.serve.test_gateway import Served, served  # noqa: F401  (the module's node)
from tests.signatures import published_signer

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
    fields = published["receipt"]
    assert published["signing"] == "eip712" and published["signed"] is None
    assert fields["schema"] == TYPED_SCHEMA
    message = published["typed_data"]["message"]
    assert (message["commitment"], message["promptTokens"]) == (
        fields["commitment"],
        fields["prompt_tokens"],
    )
    # a program with eth_account alone (the README's) recovers the gateway from the answer
    assert (
        published_signer(published)
        == fields["gateway"]
        == served.node.economy.meter.gateway.address
    )
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
    published = api.request("GET", f"/receipts/{receipt_id}")
    assert (
        published["typed_data"]["message"]["commitment"] == "" == published["receipt"]["commitment"]
    )
    assert published_signer(published) == published["receipt"]["gateway"]


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


def test_a_receipt_signed_before_eip712_is_published_with_its_signed_text(served: Served) -> None:  # noqa: F811
    node, api = served.node, NodeClient(served.url)
    gateway = node.economy.meter.gateway
    old = UsageReceipt(  # schema v1: as the gateway signed receipts before EIP-712
        receipt_id="old-" + uuid.uuid4().hex,
        gateway=gateway.address,
        chain_id=node.chain.client.chain_id,
        account=served.carol.address,
        key_id="key_old",
        model=int(served.chat),
        endpoint="chat.completions",
        prompt_tokens=3,
        completion_tokens=4,
        price_per_1k="0",
        amount="0",
        created_at=int(time.time() * 1000),
    )
    signature = sign_receipt(old, gateway)
    body = {k: v for k, v in old.to_dict().items() if k != "schema"}  # stored without one
    with node.db.session() as session:
        session.add(
            ReceiptRow(
                receipt_id=old.receipt_id,
                account=old.account,
                key_id=old.key_id,
                model=old.model,
                amount=old.amount,
                body=body,
                signature=signature,
                leaf=receipt_leaf(old, signature),
                created_at=old.created_at / 1000,
            )
        )
    published = api.request("GET", f"/receipts/{old.receipt_id}")
    assert published["signing"] == "eip191" and published["typed_data"] is None
    assert published["signed"] == old.canonical().decode()
    assert published["receipt"]["schema"] == SCHEMA
    assert published["leaf"] == receipt_leaf(old, signature)
    assert published_signer(published) == gateway.address
