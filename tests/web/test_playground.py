"""The playground page on a real node and HTTP server: a chat or a classification through the
page is charged like an API call (price x tokens, a signed receipt, the header's balance falls),
an empty balance gets the 402 and nothing is served, and deposits top the balance up."""

from __future__ import annotations

import html
import re
from collections.abc import Callable
from pathlib import Path

import httpx
from eth_account import Account
from eth_account.messages import encode_defunct

from cairn.economy.balances import cost
from cairn.node import Node
from cairn.train.tiny import tiny_encoder
from cairn.web.render import units
from tests.compute.conftest import register_tiny
from tests.data.conftest import dev
from tests.economy.conftest import TOKEN, World, build_world

PRICE = TOKEN  # 1 CAIRN per 1,000 tokens: a short call costs enough to show in the header


def _testid(page: str, name: str) -> str:
    """The text of the first element with data-testid=`name`, tags stripped."""
    match = re.search(rf'<(\w+)[^>]*data-testid="{name}"[^>]*>(.*?)</\1>', page, re.S)
    assert match, f"no {name} in the page"
    return " ".join(html.unescape(re.sub(r"<[^>]+>", "", match.group(2))).split())


def _priced_world(node: Node, tmp_path: Path) -> World:
    world = build_world(node, tmp_path)
    node.economy.prices.set(world.alice.address, world.model, PRICE)
    return world


def test_a_chat_through_the_page_is_charged_like_an_api_call(
    node: Node, tmp_path: Path, signed_in: Callable[[str], httpx.Client]
) -> None:
    world = _priced_world(node, tmp_path)
    carol = world.carol.address
    web = signed_in("carol")
    opened = web.get(f"/playground?model={world.model}")
    assert opened.status_code == 200
    assert f"#{world.model} reverser" in opened.text
    assert _testid(opened.text, "model-price") == "1 CAIRN per 1k tokens"
    before = node.economy.balances.get(carol).available

    reply = web.post(
        "/playground/chat",
        data={
            "model": str(world.model),
            "message": "reverse abc",
            "max_tokens": "6",
            "temperature": "0",
        },
    )
    assert reply.status_code == 200, reply.text
    [receipt] = node.economy.receipts.of_account(carol)
    tokens = receipt.prompt_tokens + receipt.completion_tokens
    assert receipt.endpoint == "chat.completions" and receipt.model == world.model
    assert 1 <= receipt.completion_tokens <= 6
    assert int(receipt.amount) == cost(PRICE, tokens) > 0
    after = node.economy.balances.get(carol).available
    assert after == before - int(receipt.amount)
    # the page shows the tokens, the cost, and the balance after the call in the header
    shown = _testid(reply.text, "call-cost")
    assert f"used {tokens} tokens" in shown and f"cost {units(receipt.amount, 18)} CAIRN" in shown
    assert _testid(reply.text, "prepaid-balance") == f"{units(after, 4)} prepaid"
    assert units(after, 4) != units(before, 4)
    assert 'aria-live="polite"' in reply.text
    assert "<strong>You:</strong>" in reply.text and "<strong>Model:</strong>" in reply.text
    answer = html.unescape(
        re.search(
            r'data-testid="chat-answer"><strong>Model:</strong> <span class="text">(.*?)</span>',
            reply.text,
            re.S,
        ).group(1)  # type: ignore[union-attr]
    )

    # the conversation travels in the form: the next turn sends it all, and pays for it all
    again = web.post(
        "/playground/chat",
        data={
            "model": str(world.model),
            "message": "and again",
            "max_tokens": "4",
            "temperature": "0",
            "role": ["user", "assistant"],
            "content": ["reverse abc", answer],
        },
    )
    assert again.status_code == 200, again.text
    second = node.economy.receipts.of_account(carol)[0]
    assert second.prompt_tokens > receipt.prompt_tokens
    assert again.text.count("<strong>You:</strong>") == 2
    assert again.text.count('name="role"') == 4  # both turns and the new answer go back next time
    assert node.economy.balances.get(carol).available == after - int(second.amount)
    # both calls were charged to the account's one key for the web pages
    [key] = [k for k in node.economy.keys.list(carol) if k.name == "web playground"]
    assert receipt.key_id == second.key_id == key.key_id


def test_with_too_little_balance_the_page_says_so_and_serves_nothing(
    node: Node, tmp_path: Path, signed_in: Callable[[str], httpx.Client]
) -> None:
    world = _priced_world(node, tmp_path)
    bob = world.bob.address  # has tokens in his wallet but never deposited
    web = signed_in("bob")
    reply = web.post(
        "/playground/chat",
        data={"model": str(world.model), "message": "reverse xyz", "max_tokens": "8"},
    )
    assert reply.status_code == 402
    error = _testid(reply.text, "call-error")
    assert "Not enough prepaid balance: nothing was served or charged." in error
    # in CAIRN (what the call may cost, what is prepaid), and the deposit form on this page
    most = re.search(r"This call may cost up to ([0-9]+\.[0-9]+) CAIRN, and your prepaid", error)
    assert most and 0 < float(most.group(1)) < 1, error
    assert "prepaid balance has 0 CAIRN available" in error
    assert not re.search(r"[0-9]{10}", error) and "smallest" not in error and "cairn " not in error
    assert 'href="#deposit"' in reply.text and 'action="/playground/deposit"' in reply.text
    assert "reverse xyz</textarea>" in reply.text  # the message is kept to send again
    assert 'data-testid="chat-answer"' not in reply.text
    assert node.economy.receipts.of_account(bob) == []
    balance = node.economy.balances.get(bob)
    assert (balance.spent, balance.held, balance.available) == (0, 0, 0)


def test_a_setting_out_of_range_comes_back_on_the_form_with_the_conversation(
    node: Node, tmp_path: Path, signed_in: Callable[[str], httpx.Client]
) -> None:
    world = _priced_world(node, tmp_path)
    web = signed_in("carol")
    for field, value, why in (
        ("max_tokens", "abc", "max answer tokens: 'abc' is not a number"),
        ("max_tokens", "99999", "max answer tokens must be 1..2048; got 99999"),
        ("temperature", "nan", "temperature: 'nan' is not a number"),
        ("temperature", "3", "temperature must be 0..2; got 3"),
    ):
        reply = web.post(
            "/playground/chat",
            data={
                "model": str(world.model),
                "message": "reverse abc",
                field: value,
                "role": ["user", "assistant"],
                "content": ["reverse xy", "yx"],
            },
        )
        assert reply.status_code == 422, reply.text
        assert why in _testid(reply.text, "call-error")
        assert f'name="{field}"' in reply.text and f'value="{value}"' in reply.text
        assert "reverse abc</textarea>" in reply.text  # the message is kept to send again
        assert reply.text.count('name="role"') == 2  # and the conversation so far
    assert node.economy.receipts.of_account(world.carol.address) == []


def test_a_classifier_labels_texts_and_is_charged_by_their_tokens(
    node: Node, tmp_path: Path, signed_in: Callable[[str], httpx.Client]
) -> None:
    world = build_world(node, tmp_path)
    classifier = register_tiny(node, world.alice, tmp_path, "encoder").asset_id
    node.economy.prices.set(world.alice.address, classifier, PRICE)
    web = signed_in("carol")
    opened = web.get(f"/playground?model={classifier}")
    assert (
        "Classifier" in opened.text and 'action="/playground/classify#model-title"' in opened.text
    )
    assert '<label for="text">Texts to label</label>' in opened.text

    reply = web.post(
        "/playground/classify", data={"model": str(classifier), "text": "great day\n\nawful day\n"}
    )
    assert reply.status_code == 200, reply.text
    assert reply.text.count('data-testid="label-row"') == 2
    [receipt] = node.economy.receipts.of_account(world.carol.address)
    assert receipt.endpoint == "classifications" and receipt.completion_tokens == 0
    # charged as /v1/classifications charges: by every token read, special ones included
    assert int(receipt.amount) == cost(PRICE, receipt.prompt_tokens) > 0
    assert node.economy.balances.get(world.carol.address).spent == int(receipt.amount)
    assert f"cost {units(receipt.amount, 18)} CAIRN" in _testid(reply.text, "call-cost")

    # a chat model does not classify: the page says why and charges nothing
    wrong = web.post("/playground/classify", data={"model": str(world.model), "text": "hi"})
    assert wrong.status_code == 422 and "not classifications" in wrong.text
    assert len(node.economy.receipts.of_account(world.carol.address)) == 1


def test_an_encoder_embeds_texts_through_the_page(
    node: Node, tmp_path: Path, signed_in: Callable[[str], httpx.Client]
) -> None:
    world = build_world(node, tmp_path)
    model, tokenizer = tiny_encoder(seed=0)
    model.bert.save_pretrained(tmp_path / "encoder", safe_serialization=True)
    tokenizer.save_pretrained(tmp_path / "encoder")
    encoder = node.catalog.register_folder(
        world.alice, tmp_path / "encoder", name="tiny embedder", licence="MIT", family="encoder"
    ).asset_id
    node.economy.prices.set(world.alice.address, encoder, PRICE)
    web = signed_in("carol")
    assert "Encoder (embeddings)" in web.get(f"/playground?model={encoder}").text
    reply = web.post("/playground/embed", data={"model": str(encoder), "text": "one\ntwo"})
    assert reply.status_code == 200, reply.text
    assert reply.text.count('data-testid="vector-row"') == 2
    [receipt] = node.economy.receipts.of_account(world.carol.address)
    assert receipt.endpoint == "embeddings" and int(receipt.amount) > 0
    assert node.economy.balances.get(world.carol.address).spent == int(receipt.amount)


def test_a_deposit_from_the_page_credits_the_prepaid_balance(
    node: Node, signed_in: Callable[[str], httpx.Client]
) -> None:
    bob = dev(node, "bob").address
    wallet = node.chain.token.balance_of(bob)
    web = signed_in("bob")
    page = web.get("/playground")
    assert (
        'action="/playground/deposit"' in page.text and '<label for="deposit-amount">' in page.text
    )

    reply = web.post("/playground/deposit", data={"amount": "2.5", "back": "/earnings#prepaid"})
    assert reply.status_code == 303 and reply.headers["location"] == "/earnings#prepaid"
    assert node.economy.balances.get(bob).available == 5 * TOKEN // 2
    assert node.chain.token.balance_of(bob) == wallet - 5 * TOKEN // 2
    after = web.get("/playground")
    assert "Deposited 2.5 CAIRN" in after.text and "prepaid balance now 2.5 CAIRN" in after.text
    assert _testid(after.text, "prepaid-balance") == "2.5 prepaid"

    elsewhere = web.post("/playground/deposit", data={"amount": "1", "back": "//evil.example"})
    assert elsewhere.headers["location"] == "/playground"  # only the node's own pages
    bad = web.post("/playground/deposit", data={"amount": "-1"})
    assert bad.status_code == 422 and "must be positive" in bad.text
    for huge in ("1e100", "1e1000000"):  # past any uint256 amount: a page that says so
        refused = web.post("/playground/deposit", data={"amount": huge})
        assert refused.status_code == 422 and "is too large" in refused.text, huge
    assert node.economy.balances.get(bob).available == 7 * TOKEN // 2


def test_a_wallet_the_node_does_not_hold_is_told_where_to_send(
    web: httpx.Client, node: Node
) -> None:
    wallet = Account.create()
    message = web.post("/signin/message", data={"address": wallet.address}).json()["message"]
    signature = wallet.sign_message(encode_defunct(text=message)).signature.to_0x_hex()
    assert web.post("/signin/wallet", json={"message": message, "signature": signature}).is_success
    page = web.get("/playground")
    assert _testid(page.text, "treasury-address") == node.economy.treasury
    assert 'action="/playground/deposit"' not in page.text
    refused = web.post("/playground/deposit", data={"amount": "1"})
    assert refused.status_code == 403
    # and how to leave: from the wallet, as the node cannot sign for it
    assert "request_withdrawal(amount)" in page.text
    assert 'action="/playground/withdraw"' not in page.text
    refused = web.post("/playground/withdraw", data={"action": "request", "amount": "1"})
    assert refused.status_code == 403


def test_signed_out_visitors_see_models_and_prices_but_cannot_call(
    web: httpx.Client, node: Node, tmp_path: Path
) -> None:
    world = _priced_world(node, tmp_path)
    page = web.get("/playground")
    assert page.status_code == 200
    assert f"Try #{world.model}" in page.text and "Sign in to call this model" in page.text
    reply = web.post("/playground/chat", data={"model": str(world.model), "message": "hi"})
    assert reply.status_code == 303 and reply.headers["location"].startswith("/signin?next=")
    missing = web.get("/playground?model=99999")
    assert "Model 99999 is not served here" in missing.text
