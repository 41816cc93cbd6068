"""The memory chain's gas estimate (`cairn.chain.memory.estimate_gas`): two runs of the
transaction instead of py-evm's bisection, a limit that is enough and near what the transaction
uses, through calls into other contracts too, and a revert's reason as before."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from eth_account.signers.local import LocalAccount
from web3.contract.contract import ContractFunction

from cairn.chain import memory
from cairn.node import DEV_TOKENS, Node


def dev(node: Node, label: str) -> LocalAccount:
    return node.signers.get(node.keystore.find_by_label(label).address)


@pytest.fixture
def runs(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The gas limit of each run of a transaction the estimator makes."""
    seen: list[int] = []
    real: Callable[..., Any] = memory._with_gas

    def counted(transaction: Any, gas: int) -> Any:
        seen.append(gas)
        return real(transaction, gas)

    monkeypatch.setattr(memory, "_with_gas", counted)
    return seen


def estimate_then_send(node: Node, sender: LocalAccount, fn: ContractFunction) -> tuple[int, int]:
    """Estimate `fn`'s gas, send it with exactly that limit; (estimate, gas the receipt used)."""
    w3 = node.backend.w3
    nonce = w3.eth.get_transaction_count(sender.address)  # type: ignore[arg-type]
    built = fn.build_transaction({"from": sender.address, "gas": 1, "nonce": nonce})
    del built["gas"]  # set so that building did not estimate already
    estimate = w3.eth.estimate_gas(built)
    built["gas"] = estimate
    raw = sender.sign_transaction(built).raw_transaction  # type: ignore[arg-type]
    receipt = w3.eth.wait_for_transaction_receipt(w3.eth.send_raw_transaction(raw))
    assert receipt["status"] == 1, f"a transaction sent with its estimate of {estimate} reverted"
    return estimate, receipt["gasUsed"]


def test_a_transfer_is_estimated_in_two_runs_and_goes_through_with_that_limit(
    node: Node, runs: list[int]
) -> None:
    alice, bob = dev(node, "alice"), dev(node, "bob")
    token = node.chain.token
    estimate, used = estimate_then_send(
        node, alice, token.contract.functions.transfer(bob.address, 5)
    )
    assert len(runs) == 2 and runs[0] > 20 * runs[1] and runs[1] == estimate  # the block's limit
    assert used <= estimate <= used * 64 // 63 + 30_000  # enough, and near what it needed
    assert token.balance_of(bob.address) == DEV_TOKENS + 5


def test_a_call_into_another_contract_is_estimated_enough(node: Node, runs: list[int]) -> None:
    alice = dev(node, "alice")
    dataset = node.assets.register(alice, kind="dataset", name="d", licence="MIT").asset_id
    bounties, token = node.chain.bounties, node.chain.token
    token.approve(alice, bounties.address, 10**18)
    runs.clear()
    # DataBounty.open pulls the budget with the token's transferFrom: a call one level down
    fn = bounties.contract.functions.open(dataset, 10**18, 10**17, 10**16)
    estimate, used = estimate_then_send(node, alice, fn)
    assert len(runs) == 2
    assert used <= estimate <= used * 64 // 63 + 30_000
    assert bounties.count() == 1


def test_a_transaction_that_reverts_is_refused_with_its_reason(node: Node) -> None:
    alice, bob = dev(node, "alice"), dev(node, "bob")
    fn = node.chain.token.contract.functions.transfer(bob.address, DEV_TOKENS + 1)
    with pytest.raises(Exception, match="cairn_token"):
        node.backend.w3.eth.estimate_gas(fn.build_transaction({"from": alice.address}))  # type: ignore[arg-type]
    assert node.chain.token.balance_of(bob.address) == DEV_TOKENS
