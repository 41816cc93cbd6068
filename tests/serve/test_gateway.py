"""The OpenAI-compatible gateway on a real node and HTTP server, driven by the official
`openai` client: chat (streamed and not), completions, embeddings, classifications, errors,
402 on an empty balance, revoked keys, receipts anchored and provable, settle and claim."""

from __future__ import annotations

import hashlib
import json
import math
import re
import shutil
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from eth_account import Account
from eth_account.messages import encode_typed_data
from eth_account.signers.local import LocalAccount
from pydantic import BaseModel

from cairn.api import gateway_schemas as schemas
from cairn.api.client import NodeClient
from cairn.chain.anvil import free_port
from cairn.core.errors import Forbidden, Unavailable
from cairn.node import Node, open_node
from tests.conftest import LiveServer
from tests.data.conftest import dev

pytestmark = pytest.mark.node  # its module fixture opens a node: the node tier

TOKEN = 10**18
PRICE = TOKEN // 10  # 0.1 CAIRN per 1,000 tokens


@dataclass
class Served:
    node: Node
    url: str
    alice: LocalAccount  # owns the models
    carol: LocalAccount  # pays
    secret: str  # carol's API key
    chat: str
    encoder: str
    classifier: str

    def client(self, key: str | None = None) -> openai.OpenAI:
        return openai.OpenAI(base_url=self.url + "/v1", api_key=key or self.secret, max_retries=0)


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory, folders: dict[str, Path]) -> Iterator[Served]:
    root = tmp_path_factory.mktemp("gateway")
    node = open_node(
        root / "node", chain="memory", dev=True, port=free_port(), fleet_port=free_port()
    )
    server = LiveServer(node).start()
    try:
        alice, carol = dev(node, "alice"), dev(node, "carol")
        ids = {}
        for name, family in (
            ("chat", "causal-lm"),
            ("encoder", "encoder"),
            ("classifier", "encoder"),
        ):
            asset = node.catalog.register_folder(
                alice, folders[name], name=f"tiny {name}", licence="Apache-2.0", family=family
            )
            node.economy.prices.set(alice.address, asset.asset_id, PRICE)
            ids[name] = str(asset.asset_id)
        node.chain.token.transfer(carol, node.economy.treasury, 10 * TOKEN)
        _, secret = node.economy.keys.create(carol.address, "tests")
        yield Served(
            node, server.url, alice, carol, secret, ids["chat"], ids["encoder"], ids["classifier"]
        )
    finally:
        server.stop()
        node.close()


def _spent(served: Served) -> int:
    return served.node.economy.balances.get(served.carol.address).spent


def test_models_are_listed_with_capabilities_and_prices(served: Served) -> None:
    models = {m.id: m for m in served.client().models.list().data}
    assert {served.chat, served.encoder, served.classifier} <= set(models)
    chat = models[served.chat].model_dump()
    assert chat["capabilities"] == ["chat", "completions"]
    assert chat["price_per_1k"] == str(PRICE)
    assert models[served.classifier].model_dump()["capabilities"] == [
        "classifications",
        "embeddings",
    ]


def test_chat_completion_is_charged_by_its_usage(served: Served) -> None:
    before = _spent(served)
    answer = served.client().chat.completions.create(
        model=served.chat,
        messages=[{"role": "system", "content": "be brief"}, {"role": "user", "content": "hello"}],
        max_tokens=12,
        temperature=0,
    )
    usage = answer.usage
    assert usage is not None and usage.completion_tokens <= 12 and usage.prompt_tokens > 0
    assert answer.choices[0].finish_reason in ("stop", "length")
    assert answer.choices[0].message.role == "assistant"
    charged = math.ceil(PRICE * usage.total_tokens / 1000)
    assert _spent(served) - before == charged
    receipt = answer.model_extra["cairn"]  # type: ignore[index]
    assert int(receipt["amount"]) == charged


def test_streaming_yields_the_same_text_and_reports_usage(served: Served) -> None:
    client = served.client()
    kwargs = {
        "model": served.chat,
        "messages": [{"role": "user", "content": "count"}],
        "max_tokens": 10,
        "temperature": 0,
    }
    whole = client.chat.completions.create(**kwargs)  # type: ignore[call-overload]
    chunks = list(
        client.chat.completions.create(
            stream=True, stream_options={"include_usage": True}, **kwargs
        )
    )  # type: ignore[call-overload]
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == whole.choices[0].message.content
    assert chunks[0].choices[0].delta.role == "assistant"
    finishes = [
        c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason
    ]
    assert finishes == [whole.choices[0].finish_reason]
    assert chunks[-1].usage is not None
    assert chunks[-1].usage.completion_tokens == whole.usage.completion_tokens  # type: ignore[union-attr]


def test_seeded_sampling_repeats_and_stop_strings_cut(served: Served) -> None:
    client = served.client()
    ask = {"model": served.chat, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 16}
    first = client.chat.completions.create(temperature=1.0, seed=7, **ask)  # type: ignore[call-overload]
    again = client.chat.completions.create(temperature=1.0, seed=7, **ask)  # type: ignore[call-overload]
    assert first.choices[0].message.content == again.choices[0].message.content
    text = first.choices[0].message.content or ""
    if len(text) >= 4:
        stop = text[2:4]
        cut = client.chat.completions.create(temperature=1.0, seed=7, stop=[stop], **ask)  # type: ignore[call-overload]
        assert cut.choices[0].message.content == text[: text.index(stop)]
        assert cut.choices[0].finish_reason == "stop"


def test_text_completions(served: Served) -> None:
    answer = served.client().completions.create(
        model=served.chat, prompt="abc", max_tokens=5, temperature=0
    )
    assert answer.usage is not None and answer.usage.completion_tokens <= 5
    assert isinstance(answer.choices[0].text, str)


def test_embeddings_in_both_encodings(served: Served) -> None:
    client = served.client()
    as_base64 = client.embeddings.create(
        model=served.encoder, input=["a cat", "a dog"]
    )  # client default
    as_floats = client.embeddings.create(
        model=served.encoder, input=["a cat", "a dog"], encoding_format="float"
    )
    assert len(as_base64.data) == 2
    for a, b in zip(as_base64.data, as_floats.data, strict=True):
        assert len(a.embedding) == len(b.embedding) > 0
        assert max(abs(x - y) for x, y in zip(a.embedding, b.embedding, strict=True)) < 1e-6
        assert abs(sum(x * x for x in b.embedding) - 1.0) < 1e-4
    assert as_floats.usage.prompt_tokens > 0


def test_the_last_embedding_and_classification_a_balance_covers_are_served(
    served: Served,
) -> None:
    """The hold is the tokens the encoder reads ([CLS] and [SEP] included), not more."""
    node, alice = served.node, served.alice  # she owns the models, and here pays for them too
    texts = ["the last call", "that a balance covers"]
    read = served.client().embeddings.create(model=served.encoder, input=texts).usage.prompt_tokens
    price = math.ceil(PRICE * read / 1000)  # the classifier shares the encoder's tokenizer
    assert node.economy.balances.get(alice.address).available == 0
    node.chain.token.transfer(alice, node.economy.treasury, 2 * price)  # exactly two calls
    _, secret = node.economy.keys.create(alice.address, "two calls")

    embedded = served.client(secret).embeddings.create(model=served.encoder, input=texts)
    assert embedded.usage.prompt_tokens == read
    classified = httpx.post(
        served.url + "/v1/classifications",
        json={"model": served.classifier, "input": texts},
        headers={"Authorization": f"Bearer {secret}"},
    )
    assert classified.status_code == 200, classified.text  # the last call it covers
    assert classified.json()["usage"]["prompt_tokens"] == read
    balance = node.economy.balances.get(alice.address)
    assert (balance.available, balance.held, balance.spent) == (0, 0, 2 * price)
    with pytest.raises(openai.APIStatusError) as caught:
        served.client(secret).embeddings.create(model=served.encoder, input=texts)
    assert caught.value.status_code == 402


def test_classifications(served: Served) -> None:
    response = httpx.post(
        served.url + "/v1/classifications",
        json={"model": served.classifier, "input": ["good", "bad"]},
        headers={"Authorization": f"Bearer {served.secret}"},
    )
    assert response.status_code == 200, response.text
    data = response.json()["data"]
    assert len(data) == 2
    for item in data:
        assert item["label"] in ("negative", "neutral", "positive")
        assert abs(sum(item["scores"].values()) - 1.0) < 1e-5
        assert item["score"] == max(item["scores"].values())


def test_errors_reach_the_client_in_openai_shape(served: Served) -> None:
    client = served.client()
    with pytest.raises(openai.NotFoundError, match="does not exist"):
        client.chat.completions.create(model="999", messages=[{"role": "user", "content": "x"}])
    with pytest.raises(openai.AuthenticationError):
        served.client("cairn-sk-not-a-real-key").models.list()
    with pytest.raises(openai.BadRequestError, match="temperature"):
        client.chat.completions.create(
            model=served.chat, messages=[{"role": "user", "content": "x"}], temperature=3
        )
    with pytest.raises(openai.BadRequestError, match="not embeddings"):
        client.embeddings.create(model=served.chat, input="x")
    with pytest.raises(openai.BadRequestError, match="context"):
        client.completions.create(model=served.chat, prompt="a" * 5000, max_tokens=5)


def test_an_empty_balance_answers_402_and_serves_nothing(served: Served) -> None:
    node = served.node
    bob = dev(node, "bob")
    _, secret = node.economy.keys.create(bob.address)
    with pytest.raises(openai.APIStatusError) as caught:
        served.client(secret).chat.completions.create(
            model=served.chat, messages=[{"role": "user", "content": "x"}], max_tokens=5
        )
    assert caught.value.status_code == 402
    assert "insufficient balance" in caught.value.message
    assert node.economy.receipts.of_account(bob.address) == []
    assert node.economy.balances.get(bob.address).held == 0


def test_a_revoked_key_is_refused(served: Served) -> None:
    node = served.node
    key, secret = node.economy.keys.create(served.carol.address, "short-lived")
    served.client(secret).models.list()
    node.economy.keys.revoke(served.carol.address, key.key_id)
    with pytest.raises(openai.AuthenticationError, match="revoked"):
        served.client(secret).models.list()


def test_keys_receipts_settlement_and_claims_over_the_api(served: Served) -> None:
    api = NodeClient(served.url)
    api.sign_in(served.carol)
    key = api.request("POST", "/keys", json={"name": "api"})
    assert key["secret"].startswith("cairn-sk-")
    assert key["key_id"] in {k["key_id"] for k in api.request("GET", "/keys")}
    answer = served.client(key["secret"]).chat.completions.create(
        model=served.chat, messages=[{"role": "user", "content": "hi"}], max_tokens=4
    )
    receipt_id = answer.model_extra["cairn"]["receipt"]  # type: ignore[index]
    with pytest.raises(Forbidden, match="only the node's operator"):
        api.request("POST", "/receipts/anchor")
    with pytest.raises(Forbidden, match="only the node's operator"):
        api.request("POST", "/epochs/settle")
    operator = NodeClient(served.url)
    operator.sign_in(served.node.operator)
    operator.request("POST", "/receipts/anchor")
    proof = api.request("GET", f"/receipts/{receipt_id}/proof")
    assert proof["verified_on_chain"] is True

    first = operator.request("POST", "/epochs/settle")
    assert first["settled"] and first["epoch"]["status"] == "funded"
    assert operator.request("POST", "/epochs/settle") == {"settled": False, "epoch": None}
    alice = served.alice.address
    owed = api.request("GET", f"/earnings/{alice}")
    assert int(owed["unclaimed"]) > 0
    paid = api.request("POST", "/claims", json={"account": alice})
    assert paid["total"] == owed["unclaimed"]
    again = api.request("POST", "/claims", json={"account": alice})
    assert again["claims"] == [] and again["total"] == "0"
    assert api.request("GET", f"/earnings/{alice}")["unclaimed"] == "0"
    api.request("DELETE", f"/keys/{key['key_id']}")
    with pytest.raises(openai.AuthenticationError):
        served.client(key["secret"]).models.list()


def test_a_receipt_is_checked_from_what_the_api_publishes_with_a_wallet_library_alone(
    served: Served,
) -> None:
    """No Cairn code: the EIP-712 typed data and its signature by the gateway, its fields, its
    leaf."""
    api = NodeClient(served.url)
    api.sign_in(served.carol)
    key = api.request("POST", "/keys", json={"name": "audit"})
    answer = served.client(key["secret"]).chat.completions.create(
        model=served.chat, messages=[{"role": "user", "content": "hi"}], max_tokens=4
    )
    published = api.request("GET", f"/receipts/{answer.model_extra['cairn']['receipt']}")  # type: ignore[index]
    typed, signature = published["typed_data"], published["signature"]
    signer = Account.recover_message(encode_typed_data(full_message=typed), signature=signature)
    assert signer == published["receipt"]["gateway"] == typed["message"]["gateway"]
    shown = dict(published["receipt"])
    assert shown.pop("schema") == "cairn.usage-receipt/v2" and published["signing"] == "eip712"
    assert typed["domain"] == {"name": "Cairn", "version": "1", "chainId": shown.pop("chain_id")}
    camel = {k.replace("_1k", "1k"): v for k, v in shown.items()}  # price_per_1k: pricePer1k
    camel = {re.sub(r"_([a-z])", lambda m: m[1].upper(), k): v for k, v in camel.items()}
    assert typed["message"] == camel
    # the leaf: SHA-256 of the receipt's JSON (every field, its schema) with the signature
    leaf_body = json.dumps(
        {**published["receipt"], "signature": signature}, sort_keys=True, separators=(",", ":")
    )
    assert published["leaf"] == "0x" + hashlib.sha256(leaf_body.encode()).hexdigest()
    tampered = json.loads(json.dumps(typed))
    tampered["message"]["amount"] = str(int(typed["message"]["amount"]) + 1)
    assert (
        Account.recover_message(encode_typed_data(full_message=tampered), signature=signature)
        != signer
    )


def test_a_model_served_by_an_upstream_openai_server(
    served: Served, make_node: Callable[..., Node], tmp_path: Path, folders: dict[str, Path]
) -> None:
    """Node B answers for its asset by calling node A's /v1 (as it would call vLLM), and
    charges its own user by the upstream's usage."""
    _, upstream_key = served.node.economy.keys.create(served.carol.address, "node B")
    front = make_node(
        tmp_path / "front",
        upstreams=(f"2={served.url}/v1#{served.chat}",),  # 1 is the gateway's own asset
        upstream_api_key=upstream_key,
    )
    alice = dev(front, "alice")
    asset = front.catalog.register_folder(
        alice, folders["chat"], name="tiny chat, served upstream", licence="MIT", family="causal-lm"
    )
    assert asset.asset_id == 2
    front.economy.prices.set(alice.address, 2, PRICE)
    bob = dev(front, "bob")
    front.chain.token.transfer(bob, front.economy.treasury, TOKEN)
    _, secret = front.economy.keys.create(bob.address)
    server = LiveServer(front).start()
    try:
        ask = {
            "messages": [{"role": "user", "content": "hello"}],
            "max_tokens": 8,
            "temperature": 0,
        }
        direct = served.client().chat.completions.create(model=served.chat, **ask)  # type: ignore[call-overload]
        client = openai.OpenAI(base_url=server.url + "/v1", api_key=secret, max_retries=0)
        proxied = client.chat.completions.create(model="2", **ask)  # type: ignore[call-overload]
        assert proxied.choices[0].message.content == direct.choices[0].message.content
        assert proxied.usage == direct.usage
        streamed = client.chat.completions.create(model="2", stream=True, **ask)  # type: ignore[call-overload]
        text = "".join(c.choices[0].delta.content or "" for c in streamed if c.choices)
        assert text == direct.choices[0].message.content
        spent = front.economy.balances.get(bob.address).spent
        assert spent == 2 * math.ceil(PRICE * direct.usage.total_tokens / 1000)  # type: ignore[union-attr]
    finally:
        server.stop()


def test_a_client_that_leaves_mid_stream_pays_for_what_was_generated(served: Served) -> None:
    node = served.node
    before = node.economy.balances.get(served.carol.address)
    body = {
        "model": served.chat,
        "messages": [{"role": "user", "content": "a long answer"}],
        "max_tokens": 200,
        "stream": True,
    }
    headers = {"Authorization": f"Bearer {served.secret}"}
    with httpx.stream("POST", served.url + "/v1/chat/completions", json=body, headers=headers) as r:
        lines = r.iter_lines()
        assert next(lines).startswith("data: ")  # the role chunk; then the client hangs up
    deadline = time.monotonic() + 20
    while node.economy.balances.get(served.carol.address).held and time.monotonic() < deadline:
        time.sleep(0.1)
    after = node.economy.balances.get(served.carol.address)
    assert after.held == 0
    receipts = node.economy.receipts.of_account(served.carol.address)
    newest = max(receipts, key=lambda r: r.created_at)
    assert newest.completion_tokens < 200  # stopped early, charged for what it made
    assert after.spent - before.spent == int(newest.amount)


def test_a_backend_failure_charges_nothing(served: Served, monkeypatch: pytest.MonkeyPatch) -> None:
    from cairn.serve.backends.transformers import TransformersGeneration

    def broken(self: TransformersGeneration) -> Iterator[int]:
        yield 5
        raise Unavailable("the model's device went away")

    monkeypatch.setattr(TransformersGeneration, "_tokens", broken)
    node = served.node
    before = node.economy.balances.get(served.carol.address)
    count = len(node.economy.receipts.of_account(served.carol.address, limit=1000))
    client = served.client()
    ask = {"model": served.chat, "messages": [{"role": "user", "content": "x"}], "max_tokens": 20}
    with pytest.raises(openai.APIStatusError) as caught:
        client.chat.completions.create(**ask)  # type: ignore[call-overload]
    assert caught.value.status_code == 503
    with pytest.raises(openai.APIError, match="went away"):
        list(client.chat.completions.create(stream=True, **ask))  # type: ignore[call-overload]
    after = node.economy.balances.get(served.carol.address)
    assert (after.spent, after.held) == (before.spent, 0)
    assert len(node.economy.receipts.of_account(served.carol.address, limit=1000)) == count


def test_a_model_id_past_any_stored_id_is_not_found_in_openai_shape(served: Served) -> None:
    reply = httpx.post(
        served.url + "/v1/embeddings",
        json={"model": "9" * 20, "input": "x"},
        headers={"Authorization": f"Bearer {served.secret}"},
    )
    assert reply.status_code == 404, reply.text
    error = reply.json()["error"]
    assert error["code"] == "model_not_found" and "does not exist" in error["message"]


def test_a_model_whose_weights_are_damaged_is_a_400_that_says_so(
    served: Served, folders: dict[str, Path], tmp_path: Path
) -> None:
    damaged = tmp_path / "damaged"
    shutil.copytree(folders["encoder"], damaged)
    weights = damaged / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:100])  # cut short, as a broken upload would be
    asset = served.node.catalog.register_folder(
        served.alice, damaged, name="damaged encoder", licence="Apache-2.0", family="encoder"
    )
    spent = _spent(served)
    reply = httpx.post(
        served.url + "/v1/embeddings",
        json={"model": str(asset.asset_id), "input": "x"},
        headers={"Authorization": f"Bearer {served.secret}"},
    )
    assert reply.status_code == 400, reply.text
    error = reply.json()["error"]
    assert error["type"] == "invalid_request_error"
    assert f"model {asset.asset_id} cannot be served: its weights do not load" in error["message"]
    assert _spent(served) == spent


def _as_documented(model: type[BaseModel], body: dict[str, Any]) -> None:
    """`body` is exactly what `model` documents in /openapi.json: every field named there, in
    its order, and nothing else."""
    again = model.model_validate(body).model_dump(mode="json", exclude_unset=True)
    assert json.dumps(again) == json.dumps(body)


def _events(response: httpx.Response) -> list[dict[str, Any]]:
    lines = [line for line in response.text.split("\n\n") if line]
    assert lines[-1] == "data: [DONE]"
    return [json.loads(line.removeprefix("data: ")) for line in lines[:-1]]


def test_every_answer_is_the_body_its_schema_documents(served: Served) -> None:
    headers = {"Authorization": f"Bearer {served.secret}"}
    with httpx.Client(base_url=served.url + "/v1", headers=headers, timeout=60) as http:
        listed = http.get("/models").json()
        _as_documented(schemas.ModelList, listed)
        _as_documented(schemas.ModelCard, http.get(f"/models/{served.chat}").json())
        ask = {"model": served.chat, "max_tokens": 4, "temperature": 0}
        chat = {**ask, "messages": [{"role": "user", "content": "hi"}]}
        _as_documented(schemas.ChatCompletion, http.post("/chat/completions", json=chat).json())
        text = {**ask, "prompt": "one two"}
        _as_documented(schemas.Completion, http.post("/completions", json=text).json())
        streamed = {"stream": True, "stream_options": {"include_usage": True}}
        chunks = _events(http.post("/chat/completions", json={**chat, **streamed}))
        for chunk in chunks:
            _as_documented(schemas.ChatCompletionChunk, chunk)
        assert chunks[-1]["choices"] == [] and chunks[-1]["usage"]["total_tokens"] > 0
        for chunk in _events(http.post("/completions", json={**text, **streamed})):
            _as_documented(schemas.CompletionChunk, chunk)
        for encoding in ("float", "base64"):
            embed = {"model": served.encoder, "input": ["a"], "encoding_format": encoding}
            _as_documented(schemas.EmbeddingList, http.post("/embeddings", json=embed).json())
        labels = {"model": served.classifier, "input": ["good"]}
        _as_documented(
            schemas.ClassificationList, http.post("/classifications", json=labels).json()
        )
