"""Leaving from the pages: ask the vault for prepaid tokens back, wait out the notice, take them,
or cancel; every refusal says why and changes nothing."""

from __future__ import annotations

import html
from collections.abc import Callable

import httpx

from cairn.node import Node
from tests.data.conftest import dev
from tests.economy.conftest import TOKEN
from tests.web.test_earnings import _testid


def _flash(web: httpx.Client) -> str:
    return html.unescape(web.get("/earnings").text)


def test_ask_wait_take_and_cancel_a_withdrawal_from_the_earnings_page(
    node: Node, signed_in: Callable[[str], httpx.Client]
) -> None:
    carol = dev(node, "carol")
    node.economy.balances.deposit(carol, 5 * TOKEN)
    wallet = node.chain.token.balance_of(carol.address)
    web = signed_in("carol")
    page = web.get("/earnings").text
    assert 'action="/playground/withdraw"' in page and 'data-testid="withdraw-button"' in page
    assert 'data-testid="withdrawal-pending"' not in page

    asked = web.post(
        "/playground/withdraw", data={"action": "request", "amount": "2", "back": "/earnings"}
    )
    assert asked.status_code == 303 and asked.headers["location"] == "/earnings"
    page = _flash(web)
    assert "Asked to withdraw 2 CAIRN" in page and "Prepaid balance now 3 CAIRN" in page
    assert node.economy.balances.get(carol.address).available == 3 * TOKEN  # set aside at once
    assert _testid(page, "withdrawal-pending").startswith("You asked to withdraw 2 CAIRN: yours")
    assert 'data-testid="withdraw-take"' not in page  # not before the notice passes

    early = web.post("/playground/withdraw", data={"action": "take"})
    assert early.status_code == 422 and "notice period ends in" in html.unescape(early.text)
    assert node.chain.token.balance_of(carol.address) == wallet  # nothing moved

    pending = node.economy.withdrawals.pending(carol.address)
    assert pending is not None and pending.amount == 2 * TOKEN
    node.backend.tester.time_travel(pending.available_at)  # type: ignore[attr-defined]
    page = web.get("/earnings").text
    assert 'data-testid="withdraw-take"' in page and "take it now" in page
    taken = web.post("/playground/withdraw", data={"action": "take", "back": "/earnings#prepaid"})
    assert taken.status_code == 303 and taken.headers["location"] == "/earnings#prepaid"
    assert "Withdrew 2 CAIRN into your wallet" in _flash(web)
    assert node.chain.token.balance_of(carol.address) == wallet + 2 * TOKEN
    assert node.economy.withdrawals.pending(carol.address) is None

    everything = web.post("/playground/withdraw", data={"action": "request", "amount": "all"})
    assert everything.status_code == 303
    page = _flash(web)
    assert "Asked to withdraw everything left" in page
    assert _testid(page, "withdrawal-pending").startswith("You asked to withdraw everything left")
    assert node.economy.balances.get(carol.address).available == 0
    cancelled = web.post("/playground/withdraw", data={"action": "cancel"})
    assert cancelled.status_code == 303
    assert "Withdrawal cancelled" in _flash(web)
    assert node.economy.balances.get(carol.address).available == 3 * TOKEN
    assert node.economy.withdrawals.pending(carol.address) is None


def test_bad_withdrawals_are_refused_in_words_and_change_nothing(
    node: Node, signed_in: Callable[[str], httpx.Client]
) -> None:
    dave = dev(node, "bob")
    web = signed_in("bob")
    empty = web.post("/playground/withdraw", data={"action": "request"})
    assert empty.status_code == 422 and "nothing in the vault" in html.unescape(empty.text)
    node.economy.balances.deposit(dave, TOKEN)
    refusals = {
        ("request", "-1"): "must be positive",
        ("request", "0"): "must be positive",
        ("request", "abc"): "not a number",
        ("request", "2"): "less than the",
        ("take", ""): "no withdrawal was asked for",
        ("cancel", ""): "nothing to cancel",
    }
    for (action, amount), why in refusals.items():
        reply = web.post("/playground/withdraw", data={"action": action, "amount": amount})
        assert reply.status_code == 422 and why in html.unescape(reply.text), (action, amount)
    odd = web.post("/playground/withdraw", data={"action": "steal"})
    assert odd.status_code == 422
    elsewhere = web.post(
        "/playground/withdraw",
        data={"action": "request", "amount": "0.5", "back": "//evil.example"},
    )
    assert elsewhere.status_code == 303 and elsewhere.headers["location"] == "/earnings"
    web.post("/playground/withdraw", data={"action": "cancel"})
    assert node.economy.balances.get(dave.address).available == TOKEN  # all refused or undone
