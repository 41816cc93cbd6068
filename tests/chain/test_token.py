"""CairnToken: standard ERC-20 behaviour, the owner role and the minter role."""

from __future__ import annotations

from web3.contract import Contract
from web3.logs import DISCARD

from .conftest import MINTED, Deploy, reverts, send

ZERO = "0x" + "00" * 20
MAX = 2**256 - 1


def balances(token: Contract, *holders: str) -> list[int]:
    """The token balance of each holder."""
    return [token.functions.balanceOf(h).call() for h in holders]


def test_metadata_and_initial_roles(deploy: Deploy, accounts: list[str]) -> None:
    token = deploy("CairnToken", "Cairn", "CAIRN")
    assert token.functions.name().call() == "Cairn"
    assert token.functions.symbol().call() == "CAIRN"
    assert token.functions.decimals().call() == 18
    assert token.functions.totalSupply().call() == 0
    assert token.functions.owner().call() == accounts[0]
    assert token.functions.is_minter(accounts[0]).call()
    assert not token.functions.is_minter(accounts[1]).call()


def test_mint_by_minter_credits_and_emits(token: Contract, accounts: list[str]) -> None:
    receipt = send(token.functions.mint(accounts[1], 500), accounts[0])
    assert balances(token, accounts[1]) == [500]
    assert token.functions.totalSupply().call() == MINTED + 500
    (event,) = token.events.Transfer().process_receipt(receipt, errors=DISCARD)
    assert event.args == {"sender": ZERO, "receiver": accounts[1], "value": 500}


def test_mint_by_non_minter_reverts_and_changes_nothing(
    token: Contract, accounts: list[str]
) -> None:
    with reverts("cairn_token: caller is not a minter"):
        send(token.functions.mint(accounts[1], 500), accounts[1])
    assert balances(token, accounts[1]) == [0]
    assert token.functions.totalSupply().call() == MINTED


def test_mint_to_zero_address_reverts(token: Contract, accounts: list[str]) -> None:
    with reverts("cairn_token: mint to the zero address"):
        send(token.functions.mint(ZERO, 1), accounts[0])
    assert token.functions.totalSupply().call() == MINTED


def test_mint_overflowing_total_supply_reverts(token: Contract, accounts: list[str]) -> None:
    with reverts("execution reverted"):
        send(token.functions.mint(accounts[1], MAX), accounts[0])
    assert token.functions.totalSupply().call() == MINTED


def test_transfer_moves_tokens_and_emits(token: Contract, accounts: list[str]) -> None:
    receipt = send(token.functions.transfer(accounts[1], 300), accounts[0])
    assert balances(token, accounts[0], accounts[1]) == [MINTED - 300, 300]
    (event,) = token.events.Transfer().process_receipt(receipt, errors=DISCARD)
    assert event.args == {"sender": accounts[0], "receiver": accounts[1], "value": 300}
    assert token.functions.transfer(accounts[2], 1).call({"from": accounts[1]}) is True


def test_transfer_to_self_keeps_balance(token: Contract, accounts: list[str]) -> None:
    send(token.functions.transfer(accounts[0], 300), accounts[0])
    assert balances(token, accounts[0]) == [MINTED]


def test_transfer_above_balance_reverts_and_changes_nothing(
    token: Contract, accounts: list[str]
) -> None:
    send(token.functions.transfer(accounts[1], 100), accounts[0])
    with reverts("cairn_token: transfer amount exceeds balance"):
        send(token.functions.transfer(accounts[2], 101), accounts[1])
    assert balances(token, accounts[1], accounts[2]) == [100, 0]


def test_transfer_to_zero_address_reverts(token: Contract, accounts: list[str]) -> None:
    with reverts("cairn_token: transfer to the zero address"):
        send(token.functions.transfer(ZERO, 1), accounts[0])
    assert balances(token, accounts[0]) == [MINTED]
    assert token.functions.totalSupply().call() == MINTED


def test_approve_sets_allowance_and_emits(token: Contract, accounts: list[str]) -> None:
    receipt = send(token.functions.approve(accounts[1], 250), accounts[0])
    assert token.functions.allowance(accounts[0], accounts[1]).call() == 250
    (event,) = token.events.Approval().process_receipt(receipt, errors=DISCARD)
    assert event.args == {"owner": accounts[0], "spender": accounts[1], "value": 250}
    send(token.functions.approve(accounts[1], 7), accounts[0])  # replaces, does not add
    assert token.functions.allowance(accounts[0], accounts[1]).call() == 7


def test_approve_zero_address_reverts(token: Contract, accounts: list[str]) -> None:
    with reverts("cairn_token: approve to the zero address"):
        send(token.functions.approve(ZERO, 1), accounts[0])


def test_transfer_from_spends_allowance(token: Contract, accounts: list[str]) -> None:
    send(token.functions.approve(accounts[1], 250), accounts[0])
    receipt = send(token.functions.transferFrom(accounts[0], accounts[2], 200), accounts[1])
    assert balances(token, accounts[0], accounts[2]) == [MINTED - 200, 200]
    assert token.functions.allowance(accounts[0], accounts[1]).call() == 50
    (event,) = token.events.Transfer().process_receipt(receipt, errors=DISCARD)
    assert event.args == {"sender": accounts[0], "receiver": accounts[2], "value": 200}


def test_transfer_from_above_allowance_reverts_and_changes_nothing(
    token: Contract, accounts: list[str]
) -> None:
    send(token.functions.approve(accounts[1], 250), accounts[0])
    with reverts("cairn_token: insufficient allowance"):
        send(token.functions.transferFrom(accounts[0], accounts[2], 251), accounts[1])
    assert balances(token, accounts[0], accounts[2]) == [MINTED, 0]
    assert token.functions.allowance(accounts[0], accounts[1]).call() == 250


def test_transfer_from_without_allowance_reverts(token: Contract, accounts: list[str]) -> None:
    with reverts("cairn_token: insufficient allowance"):
        send(token.functions.transferFrom(accounts[0], accounts[1], 1), accounts[1])
    assert balances(token, accounts[0], accounts[1]) == [MINTED, 0]


def test_transfer_from_above_balance_reverts(token: Contract, accounts: list[str]) -> None:
    send(token.functions.transfer(accounts[1], 10), accounts[0])
    send(token.functions.approve(accounts[2], 100), accounts[1])
    with reverts("cairn_token: transfer amount exceeds balance"):
        send(token.functions.transferFrom(accounts[1], accounts[2], 11), accounts[2])
    assert token.functions.allowance(accounts[1], accounts[2]).call() == 100
    assert balances(token, accounts[1], accounts[2]) == [10, 0]


def test_infinite_allowance_is_not_decreased(token: Contract, accounts: list[str]) -> None:
    send(token.functions.approve(accounts[1], MAX), accounts[0])
    receipt = send(token.functions.transferFrom(accounts[0], accounts[2], 10**20), accounts[1])
    assert token.functions.allowance(accounts[0], accounts[1]).call() == MAX
    assert len(receipt["logs"]) == 1  # the Transfer; no Approval for an infinite allowance


def test_set_minter_by_owner_grants_and_revokes(token: Contract, accounts: list[str]) -> None:
    receipt = send(token.functions.set_minter(accounts[1], True), accounts[0])
    (event,) = token.events.MinterSet().process_receipt(receipt, errors=DISCARD)
    assert event.args == {"account": accounts[1], "allowed": True}
    send(token.functions.mint(accounts[1], 5), accounts[1])
    assert balances(token, accounts[1]) == [5]

    send(token.functions.set_minter(accounts[1], False), accounts[0])
    assert not token.functions.is_minter(accounts[1]).call()
    with reverts("cairn_token: caller is not a minter"):
        send(token.functions.mint(accounts[1], 5), accounts[1])
    assert balances(token, accounts[1]) == [5]


def test_set_minter_by_non_owner_reverts(token: Contract, accounts: list[str]) -> None:
    send(token.functions.set_minter(accounts[1], True), accounts[0])
    with reverts("cairn_token: caller is not the owner"):
        send(token.functions.set_minter(accounts[2], True), accounts[1])
    assert not token.functions.is_minter(accounts[2]).call()


def test_transfer_ownership_moves_the_owner_role(token: Contract, accounts: list[str]) -> None:
    receipt = send(token.functions.transfer_ownership(accounts[1]), accounts[0])
    assert token.functions.owner().call() == accounts[1]
    (event,) = token.events.OwnershipTransferred().process_receipt(receipt, errors=DISCARD)
    assert event.args == {"previous_owner": accounts[0], "new_owner": accounts[1]}
    send(token.functions.set_minter(accounts[2], True), accounts[1])
    with reverts("cairn_token: caller is not the owner"):
        send(token.functions.set_minter(accounts[3], True), accounts[0])
    # the minter role is separate from ownership
    assert token.functions.is_minter(accounts[0]).call()


def test_transfer_ownership_by_non_owner_or_to_zero_reverts(
    token: Contract, accounts: list[str]
) -> None:
    with reverts("cairn_token: caller is not the owner"):
        send(token.functions.transfer_ownership(accounts[1]), accounts[1])
    with reverts("cairn_token: new owner is the zero address"):
        send(token.functions.transfer_ownership(ZERO), accounts[0])
    assert token.functions.owner().call() == accounts[0]
