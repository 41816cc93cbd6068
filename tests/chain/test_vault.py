"""PrepaidVault: deposits, draws against anchored spend roots, withdrawals after notice.

The epoch funding, the batch draw, the totals property, the gas figures and the wrapper are in
`test_vault_flows.py`; the bench both use is `vault_bench.py`.
"""

from __future__ import annotations

import os

import pytest
import vyper
from web3 import Web3
from web3.contract import Contract

from cairn.chain.compiler import CompiledContract

from .conftest import Deploy, reverts, send
from .test_bounty import FEE_TOKEN
from .vault_bench import (
    FUNDS,
    GATEWAY_ASSET,
    NOTICE,
    OTHER_ASSET,
    VaultBench,
    deploy_contract,
    event,
    vault_bench,
)

__all__ = ["vault_bench"]  # the fixture, imported for pytest

ZERO = "0x" + "00" * 20
ALL = 2**128 - 1


# -------------------------------------------------------------------------------- deployment


def test_deploys_with_its_settings(vault_bench: VaultBench) -> None:
    b, fn = vault_bench, vault_bench.fn
    assert fn.token().call() == b.token.address
    assert fn.ledger().call() == b.ledger.address
    assert fn.distributor().call() == b.distributor.address
    assert (fn.gateway().call(), fn.gateway_asset().call()) == (b.gateway, GATEWAY_ASSET)
    assert fn.notice_period().call() == NOTICE
    assert (b.pool(), fn.total_funded().call()) == (0, 0)
    assert b.account(b.users[0]) == (0, 0, [0, 0])


@pytest.mark.parametrize(
    "broken",
    ["token", "ledger", "distributor", "mismatch", "gateway", "asset", "notice", "long notice"],
)
def test_constructor_refusals(
    w3: Web3,
    vault_bench: VaultBench,
    compiled: dict[str, CompiledContract],
    deploy: Deploy,
    broken: str,
) -> None:
    b = vault_bench
    args: list[object] = [
        b.token.address,
        b.ledger.address,
        b.distributor.address,
        b.gateway,
        GATEWAY_ASSET,
        NOTICE,
    ]
    other_token = deploy("CairnToken", "Other", "OTH")
    index, value = {
        "token": (0, b.outsider),
        "ledger": (1, b.outsider),
        "distributor": (2, b.outsider),
        "mismatch": (2, deploy("RevenueDistributor", other_token.address).address),
        "gateway": (3, ZERO),
        "asset": (4, 0),
        "notice": (5, 0),
        "long notice": (5, 90 * 86_400 + 1),
    }[broken]
    args[index] = value
    with pytest.raises(AssertionError, match="deploying PrepaidVault failed"):
        deploy_contract(w3, compiled["PrepaidVault"], b.gateway, *args)
    if broken == "long notice":  # the longest notice allowed is fine
        args[5] = 90 * 86_400
        deploy_contract(w3, compiled["PrepaidVault"], b.gateway, *args)


# ----------------------------------------------------------------------------------- deposit


def test_deposit_credits_the_sender(vault_bench: VaultBench) -> None:
    b = vault_bench
    user = b.users[0]
    receipt = b.deposit(user, 1_000)
    assert event(b.vault, receipt, "Deposited") == {
        "account": user,
        "amount": 1_000,
        "sender": user,
        "balance": 1_000,
    }
    b.deposit(user, 500)
    assert b.account(user) == (1_500, 0, [0, 0])
    assert b.balance(user) == FUNDS - 1_500
    assert b.balance(b.vault.address) == 1_500
    b.assert_solvent()


def test_deposit_for_credits_another_account(vault_bench: VaultBench) -> None:
    b = vault_bench
    user = b.users[1]
    receipt = send(b.fn.deposit_for(user, 700), b.gateway)
    assert event(b.vault, receipt, "Deposited") == {
        "account": user,
        "amount": 700,
        "sender": b.gateway,
        "balance": 700,
    }
    assert b.account(user)[0] == 700 and b.account(b.gateway)[0] == 0
    assert (b.balance(user), b.balance(b.gateway)) == (FUNDS, FUNDS - 700)
    b.assert_solvent()


def test_deposit_refusals(vault_bench: VaultBench) -> None:
    b = vault_bench
    user = b.users[0]
    b.refused(b.fn.deposit(0), user, "cairn_vault: zero amount")
    b.refused(b.fn.deposit_for(user, 0), b.gateway, "cairn_vault: zero amount")
    b.refused(b.fn.deposit_for(ZERO, 5), b.gateway, "cairn_vault: no account")
    b.refused(b.fn.deposit(FUNDS + 1), user, "cairn_token: transfer amount exceeds balance")
    send(b.token.functions.approve(b.vault.address, 4), user)
    b.refused(b.fn.deposit(5), user, "cairn_token: insufficient allowance")
    send(b.token.functions.mint(user, 2**128), b.w3.eth.accounts[0])
    send(b.token.functions.approve(b.vault.address, 2**256 - 1), user)
    b.deposit(user, 2**128 - 1)
    b.refused(b.fn.deposit(1), user, "cairn_vault: balance too large")


def test_a_token_that_delivers_less_is_refused(
    w3: Web3, vault_bench: VaultBench, compiled: dict[str, CompiledContract], deploy: Deploy
) -> None:
    b = vault_bench
    out = vyper.compile_code(FEE_TOKEN, output_formats=["abi", "bytecode"])
    fee_token = deploy_contract(
        w3, CompiledContract("FeeToken", out["abi"], out["bytecode"], ""), b.gateway
    )
    distributor = deploy("RevenueDistributor", fee_token.address)
    args = (
        fee_token.address,
        b.ledger.address,
        distributor.address,
        b.gateway,
        GATEWAY_ASSET,
        NOTICE,
    )
    vault = deploy_contract(w3, compiled["PrepaidVault"], b.gateway, *args)
    alice = b.users[0]
    send(fee_token.functions.mint(alice, 1_000), b.gateway)
    send(fee_token.functions.approve(vault.address, 1_000), alice)
    with reverts("cairn_vault: received less than amount"):
        send(vault.functions.deposit(1_000), alice)
    assert vault.functions.balance_of(alice).call() == 0
    assert fee_token.functions.balanceOf(alice).call() == 1_000


# -------------------------------------------------------------------------------------- draw


def test_a_draw_pays_exactly_what_was_spent_since_the_last(vault_bench: VaultBench) -> None:
    b = vault_bench
    alice, bob = b.users[:2]
    b.deposit(alice, 1_000)
    b.deposit(bob, 1_000)
    first = b.anchor({alice: 300, bob: 40})
    receipt = b.draw(first, alice)
    assert event(b.vault, receipt, "Drawn") == {
        "account": alice,
        "root": bytes.fromhex(first.root[2:]),
        "cumulative": 300,
        "amount": 300,
    }
    assert b.account(alice) == (700, 300, [0, 0])
    assert b.pool() == 300
    # the same cumulative again draws nothing: it is refused
    b.refused(b.draw_call(first, alice), b.gateway, "cairn_vault: nothing to draw")
    # a later root with a bigger cumulative pays the difference only
    second = b.anchor({alice: 450, bob: 40})
    b.draw(second, alice)
    assert b.account(alice) == (550, 450, [0, 0])
    assert b.pool() == 450
    # the earlier root can no longer draw anything (cumulative never goes down)
    b.refused(b.draw_call(first, alice), b.gateway, "cairn_vault: nothing to draw")
    # bob's leaf of the first root is still good, even after the second was anchored
    b.draw(first, bob)
    b.refused(b.draw_call(second, bob), b.gateway, "cairn_vault: nothing to draw")
    assert b.account(bob) == (960, 40, [0, 0])
    assert b.pool() == 490
    assert b.balance(b.vault.address) == 2_000
    b.assert_solvent()


def test_draw_refusals_change_nothing(vault_bench: VaultBench) -> None:
    b = vault_bench
    alice, bob = b.users[:2]
    b.deposit(alice, 1_000)
    tree = b.anchor({alice: 300, bob: 10})
    index = next(i for i, v in tree.entries() if v[0] == alice)
    proof = tree.get_proof(index)
    draw = b.fn.draw
    b.refused(draw(tree.root, alice, 300, proof), b.outsider, "cairn_vault: not the gateway")
    b.refused(draw(tree.root, alice, 300, proof), alice, "cairn_vault: not the gateway")
    # the same tree, never anchored (or anchored under another asset)
    b.refused(draw(os.urandom(32), alice, 300, proof), b.gateway, "cairn_vault: root not anchored")
    elsewhere = b.anchor({alice: 300, bob: 10}, asset_id=OTHER_ASSET)
    other_proof = elsewhere.get_proof(next(i for i, v in elsewhere.entries() if v[0] == alice))
    b.refused(
        draw(elsewhere.root, alice, 300, other_proof), b.gateway, "cairn_vault: root not anchored"
    )
    # a leaf the root does not hold: another amount, another account, another proof
    b.refused(draw(tree.root, alice, 301, proof), b.gateway, "cairn_vault: invalid proof")
    b.refused(draw(tree.root, bob, 300, proof), b.gateway, "cairn_vault: invalid proof")
    b.refused(draw(tree.root, alice, 300, proof[1:]), b.gateway, "cairn_vault: invalid proof")
    b.refused(draw(tree.root, alice, 300, []), b.gateway, "cairn_vault: invalid proof")
    # bob spent 10 and deposited nothing: beyond the balance
    b.refused(b.draw_call(tree, bob), b.gateway, "cairn_vault: exceeds balance")
    big = b.anchor({alice: 1_001})
    b.refused(b.draw_call(big, alice), b.gateway, "cairn_vault: exceeds balance")
    # ... and once the balance covers it, the same leaf draws
    b.deposit(alice, 1)
    b.draw(big, alice)
    assert b.account(alice) == (0, 1_001, [0, 0])
    b.assert_solvent()


# -------------------------------------------------------------------------------- withdrawal


def test_a_withdrawal_waits_for_the_notice(vault_bench: VaultBench) -> None:
    b = vault_bench
    alice = b.users[0]
    b.deposit(alice, 1_000)
    b.refused(b.fn.withdraw(), alice, "cairn_vault: no withdrawal requested")
    receipt = send(b.fn.request_withdrawal(400), alice)
    requested_at = int(b.w3.eth.get_block(receipt["blockNumber"])["timestamp"])
    assert event(b.vault, receipt, "WithdrawalRequested") == {
        "account": alice,
        "amount": 400,
        "available_at": requested_at + NOTICE,
    }
    assert b.account(alice) == (1_000, 0, [400, requested_at + NOTICE])
    b.travel(requested_at + NOTICE - 2)
    b.refused(b.fn.withdraw(), alice, "cairn_vault: notice period not over")
    b.travel(requested_at + NOTICE)
    receipt = send(b.fn.withdraw(), alice)
    assert event(b.vault, receipt, "Withdrawn") == {"account": alice, "amount": 400}
    assert b.account(alice) == (600, 0, [0, 0])
    assert b.balance(alice) == FUNDS - 600
    b.refused(b.fn.withdraw(), alice, "cairn_vault: no withdrawal requested")
    b.assert_solvent()


def test_a_draw_during_the_notice_reduces_what_is_paid(vault_bench: VaultBench) -> None:
    b = vault_bench
    alice = b.users[0]
    b.deposit(alice, 1_000)
    send(b.fn.request_withdrawal(ALL), alice)  # everything there will be
    tree = b.anchor({alice: 250})
    b.draw(tree, alice)  # the gateway still draws what alice spent before leaving
    b.travel(b.now() + NOTICE)
    receipt = send(b.fn.withdraw(), alice)
    assert event(b.vault, receipt, "Withdrawn")["amount"] == 750
    assert b.account(alice) == (0, 250, [0, 0])
    assert (b.balance(alice), b.pool()) == (FUNDS - 250, 250)
    b.assert_solvent()


def test_a_request_beyond_the_balance_pays_the_balance(vault_bench: VaultBench) -> None:
    b = vault_bench
    alice = b.users[0]
    b.deposit(alice, 100)
    send(b.fn.request_withdrawal(500), alice)
    b.draw(b.anchor({alice: 30}), alice)
    b.travel(b.now() + NOTICE)
    assert event(b.vault, send(b.fn.withdraw(), alice), "Withdrawn")["amount"] == 70
    # with nothing left, a request after notice pays nothing: refused, and kept
    send(b.fn.request_withdrawal(10), alice)
    b.travel(b.now() + NOTICE)
    b.refused(b.fn.withdraw(), alice, "cairn_vault: nothing to withdraw")
    assert b.account(alice)[2][0] == 10


def test_a_new_request_replaces_the_old_and_restarts_the_notice(vault_bench: VaultBench) -> None:
    b = vault_bench
    alice = b.users[0]
    b.deposit(alice, 1_000)
    send(b.fn.request_withdrawal(100), alice)
    b.travel(b.now() + NOTICE - 10)
    receipt = send(b.fn.request_withdrawal(300), alice)
    again_at = int(b.w3.eth.get_block(receipt["blockNumber"])["timestamp"])
    assert b.account(alice)[2] == [300, again_at + NOTICE]
    b.travel(again_at + NOTICE - 5)  # the first request's notice is long over
    b.refused(b.fn.withdraw(), alice, "cairn_vault: notice period not over")
    # a request of 0 withdraws the request
    receipt = send(b.fn.request_withdrawal(0), alice)
    assert event(b.vault, receipt, "WithdrawalRequested") == {
        "account": alice,
        "amount": 0,
        "available_at": 0,
    }
    b.travel(again_at + NOTICE + 10)
    b.refused(b.fn.withdraw(), alice, "cairn_vault: no withdrawal requested")
    assert b.account(alice) == (1_000, 0, [0, 0])


def test_withdrawals_are_per_account(vault_bench: VaultBench, token: Contract) -> None:
    b = vault_bench
    alice, bob = b.users[:2]
    b.deposit(alice, 100)
    b.deposit(bob, 100)
    send(b.fn.request_withdrawal(100), alice)
    b.travel(b.now() + NOTICE)
    b.refused(b.fn.withdraw(), bob, "cairn_vault: no withdrawal requested")
    send(b.fn.withdraw(), alice)
    assert (b.account(alice)[0], b.account(bob)[0]) == (0, 100)
    assert token.functions.balanceOf(b.vault.address).call() == 100
