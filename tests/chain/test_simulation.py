"""A write is simulated before it is sent: by one run of the transaction when it goes through,
and a revert (or a sender the chain refuses) is the call's clear error with nothing sent. What
a contract fixes for good (the token's symbol and decimals) is asked of the chain once."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from eth_account import Account
from eth_tester.exceptions import TransactionFailed

from cairn.core.errors import ChainError
from cairn.node import Node
from tests.data.conftest import dev


@contextmanager
def requests(node: Node) -> Iterator[Counter[str]]:
    """The JSON-RPC requests the node's Web3 makes inside the block, by method."""
    counts: Counter[str] = Counter()
    manager = node.backend.w3.manager
    original = manager.request_blocking

    def counting(method: Any, params: Any, *args: Any, **kwargs: Any) -> Any:
        counts[str(method)] += 1
        return original(method, params, *args, **kwargs)

    manager.request_blocking = counting  # type: ignore[method-assign]
    try:
        yield counts
    finally:
        del manager.request_blocking


def test_a_transaction_that_goes_through_is_run_once_before_it_is_sent(node: Node) -> None:
    token, alice, bob = node.chain.token, dev(node, "alice"), dev(node, "bob")
    with requests(node) as sent:
        token.transfer(alice, bob.address, 5)
    assert sent["eth_estimateGas"] == 1 and sent["eth_call"] == 0  # the estimate runs it
    assert sent["eth_sendRawTransaction"] == 1


def test_a_revert_is_the_calls_error_and_nothing_is_sent(node: Node) -> None:
    token, alice, bob = node.chain.token, dev(node, "alice"), dev(node, "bob")
    head, nonce = node.client.block_number(), node.client.nonce(alice.address)
    with requests(node) as sent, pytest.raises(ChainError) as raised:
        token.transfer(alice, bob.address, token.balance_of(alice.address) + 1)
    assert str(raised.value) == "transfer reverted: cairn_token: transfer amount exceeds balance"
    assert raised.value.reason == "cairn_token: transfer amount exceeds balance"
    assert sent["eth_sendRawTransaction"] == 0
    assert (node.client.block_number(), node.client.nonce(alice.address)) == (head, nonce)


def test_a_sender_without_ether_is_refused_before_anything_is_sent(node: Node) -> None:
    stranger, token = Account.create(), node.chain.token
    with requests(node) as sent, pytest.raises(ChainError, match="the sender holds 0 wei"):
        token.transfer(stranger, dev(node, "bob").address, 0)
    assert sent["eth_sendRawTransaction"] == 0


def test_an_estimate_that_fails_where_the_call_does_not_raises_its_own_error(
    node: Node, monkeypatch: pytest.MonkeyPatch
) -> None:
    def odd(*_: object, **__: object) -> int:
        raise TransactionFailed("execution reverted: odd")

    monkeypatch.setattr(node.client.w3.eth, "estimate_gas", odd)
    token, alice, bob = node.chain.token, dev(node, "alice"), dev(node, "bob")
    with pytest.raises(ChainError, match=r"^transfer reverted: odd$"):
        token.transfer(alice, bob.address, 5)


def test_the_tokens_symbol_and_decimals_are_asked_of_the_chain_once(node: Node) -> None:
    token = node.chain.token
    with requests(node) as sent:
        assert [token.symbol(), token.decimals()] * 3 == ["CAIRN", 18] * 3
    assert sent["eth_call"] == 2  # immutable and constant in CairnToken
