"""RevenueDistributor: funding epochs, claiming with proofs, never paying twice or past funding."""

from __future__ import annotations

import os
import random

import pytest
from web3.contract import Contract
from web3.logs import DISCARD

from cairn.core.merkle import StandardMerkleTree, process_proof, standard_leaf_hash

from .conftest import CID, MINTED, Deploy, reverts, send

LEAF = ["address", "uint256"]
PROOF_DEPTH = 17  # a tree of up to 131,072 recipients
# Pinned claim gas with a 17-element proof, a little above what was measured (see
# test_claim_gas_with_17_element_proof); a rise past these is a regression to look at.
# A claim writes two slots that are zero for a newcomer (its claimed-epochs word here, its
# balance in the token), 17,100 gas each over a slot already in use.
CLAIM_GAS_FRESH_CEILING = 94_000  # holds no tokens, never claimed
CLAIM_GAS_HOLDER_CEILING = 77_000  # holds tokens, never claimed
CLAIM_GAS_REPEAT_CEILING = 60_000  # holds tokens, claimed an earlier epoch


def fund(
    token: Contract, distributor: Contract, funder: str, root: bytes | str, amount: int
) -> int:
    """Approve and fund an epoch from `funder`; return the epoch number."""
    send(token.functions.approve(distributor.address, amount), funder)
    receipt = send(distributor.functions.fund_epoch(root, amount, CID), funder)
    (event,) = distributor.events.EpochFunded().process_receipt(receipt, errors=DISCARD)
    return event.args.epoch


def payouts(accounts: list[str], amounts: list[int]) -> StandardMerkleTree:
    """The distribution tree paying `amounts[i]` to `accounts[i]`."""
    return StandardMerkleTree.of([[a, n] for a, n in zip(accounts, amounts, strict=False)], LEAF)


def balance(token: Contract, account: str) -> int:
    """The token balance of `account`."""
    return token.functions.balanceOf(account).call()


# ------------------------------------------------------------------------------ funding


def test_fund_epoch_pulls_tokens_and_records(
    token: Contract, distributor: Contract, accounts: list[str]
) -> None:
    assert distributor.functions.token().call() == token.address
    assert distributor.functions.epoch_count().call() == 0
    root = os.urandom(32)
    send(token.functions.approve(distributor.address, 1_000), accounts[0])
    receipt = send(distributor.functions.fund_epoch(root, 1_000, CID), accounts[0])
    (event,) = distributor.events.EpochFunded().process_receipt(receipt, errors=DISCARD)
    assert event.args == {
        "epoch": 1,
        "root": root,
        "amount": 1_000,
        "tree_cid": CID,
        "funder": accounts[0],
    }
    assert balance(token, distributor.address) == 1_000
    assert balance(token, accounts[0]) == MINTED - 1_000
    assert distributor.functions.epoch_count().call() == 1
    assert distributor.functions.epoch_root(1).call() == root
    assert distributor.functions.epoch_funded(1).call() == 1_000
    assert distributor.functions.epoch_claimed(1).call() == 0
    assert fund(token, distributor, accounts[0], os.urandom(32), 5) == 2


def test_fund_without_allowance_reverts_and_changes_nothing(
    token: Contract, distributor: Contract, accounts: list[str]
) -> None:
    send(token.functions.approve(distributor.address, 999), accounts[0])
    with reverts("cairn_token: insufficient allowance"):
        send(distributor.functions.fund_epoch(os.urandom(32), 1_000, CID), accounts[0])
    assert distributor.functions.epoch_count().call() == 0
    assert distributor.functions.epoch_funded(1).call() == 0
    assert balance(token, distributor.address) == 0


@pytest.mark.parametrize(
    ("root", "amount", "reason"),
    [
        (b"\x00" * 32, 10, "cairn_distributor: empty root"),
        (b"\x01" * 32, 0, "cairn_distributor: zero amount"),
        (b"\x01" * 32, 2**128, "cairn_distributor: amount too large"),
    ],
)
def test_bad_epochs_revert(
    token: Contract,
    distributor: Contract,
    accounts: list[str],
    root: bytes,
    amount: int,
    reason: str,
) -> None:
    send(token.functions.approve(distributor.address, 2**256 - 1), accounts[0])
    with reverts(reason):
        send(distributor.functions.fund_epoch(root, amount, CID), accounts[0])
    assert distributor.functions.epoch_count().call() == 0
    assert balance(token, accounts[0]) == MINTED


def test_distributor_needs_a_token_contract(deploy: Deploy, accounts: list[str]) -> None:
    with pytest.raises(AssertionError, match="deploying RevenueDistributor failed"):
        deploy("RevenueDistributor", accounts[1])


# ------------------------------------------------------------------------------ claiming


def test_anyone_claims_for_an_account_once(
    token: Contract, distributor: Contract, accounts: list[str]
) -> None:
    tree = payouts(accounts[1:5], [100, 200, 300, 400])
    epoch = fund(token, distributor, accounts[0], tree.root, 1_000)
    proof = tree.get_proof(1)
    receipt = send(distributor.functions.claim(epoch, accounts[2], 200, proof), accounts[7])
    (event,) = distributor.events.Claimed().process_receipt(receipt, errors=DISCARD)
    assert event.args == {"epoch": epoch, "account": accounts[2], "amount": 200}
    assert balance(token, accounts[2]) == 200
    assert balance(token, accounts[7]) == 0
    assert balance(token, distributor.address) == 800
    assert distributor.functions.is_claimed(epoch, accounts[2]).call()
    assert not distributor.functions.is_claimed(epoch, accounts[1]).call()
    assert distributor.functions.epoch_claimed(epoch).call() == 200

    with reverts("cairn_distributor: already claimed"):
        send(distributor.functions.claim(epoch, accounts[2], 200, proof), accounts[2])
    assert balance(token, accounts[2]) == 200
    assert distributor.functions.epoch_claimed(epoch).call() == 200


def test_every_leaf_claims_and_empties_the_epoch(
    token: Contract, distributor: Contract, accounts: list[str]
) -> None:
    amounts = [100, 200, 300, 400, 500]
    tree = payouts(accounts[1:6], amounts)
    epoch = fund(token, distributor, accounts[0], tree.root, sum(amounts))
    for i, (account, amount) in tree.entries():
        send(distributor.functions.claim(epoch, account, amount, tree.get_proof(i)), accounts[0])
        assert balance(token, account) == amount
    assert distributor.functions.epoch_claimed(epoch).call() == sum(amounts)
    assert balance(token, distributor.address) == 0


def test_wrong_amount_account_or_proof_reverts(
    token: Contract, distributor: Contract, accounts: list[str]
) -> None:
    tree = payouts(accounts[1:5], [100, 200, 300, 400])
    epoch = fund(token, distributor, accounts[0], tree.root, 1_000)
    proof = tree.get_proof(0)
    claim = distributor.functions.claim
    bad_claims = [
        claim(epoch, accounts[1], 101, proof),  # amount
        claim(epoch, accounts[1], 400, proof),  # another leaf's amount
        claim(epoch, accounts[2], 100, proof),  # account
        claim(epoch, accounts[1], 100, [proof[1], proof[0]]),  # order
        claim(epoch, accounts[1], 100, [proof[0], "0x" + "22" * 32]),  # element
        claim(epoch, accounts[1], 100, proof[:1]),  # too short
        claim(epoch, accounts[1], 100, []),
        claim(epoch + 1, accounts[1], 100, proof),  # no such epoch
        claim(0, accounts[1], 100, proof),
    ]
    for bad in bad_claims:
        with reverts("cairn_distributor: invalid proof"):
            send(bad, accounts[1])
    assert balance(token, accounts[1]) == 0
    assert not distributor.functions.is_claimed(epoch, accounts[1]).call()
    assert distributor.functions.epoch_claimed(epoch).call() == 0
    send(claim(epoch, accounts[1], 100, proof), accounts[1])
    assert balance(token, accounts[1]) == 100


def test_proof_from_another_epoch_reverts(
    token: Contract, distributor: Contract, accounts: list[str]
) -> None:
    first = payouts(accounts[1:3], [10, 20])
    second = payouts(accounts[1:3], [30, 40])
    fund(token, distributor, accounts[0], first.root, 30)
    fund(token, distributor, accounts[0], second.root, 70)
    with reverts("cairn_distributor: invalid proof"):
        send(distributor.functions.claim(2, accounts[1], 10, first.get_proof(0)), accounts[1])
    send(distributor.functions.claim(1, accounts[1], 10, first.get_proof(0)), accounts[1])
    send(distributor.functions.claim(2, accounts[1], 30, second.get_proof(0)), accounts[1])
    assert balance(token, accounts[1]) == 40


def test_an_account_is_paid_once_per_epoch_even_with_two_leaves(
    token: Contract, distributor: Contract, accounts: list[str]
) -> None:
    # claims are keyed by (epoch, account): a tree must hold one leaf per account
    tree = payouts([accounts[1], accounts[1], accounts[2]], [100, 50, 10])
    epoch = fund(token, distributor, accounts[0], tree.root, 160)
    send(distributor.functions.claim(epoch, accounts[1], 100, tree.get_proof(0)), accounts[1])
    with reverts("cairn_distributor: already claimed"):
        send(distributor.functions.claim(epoch, accounts[1], 50, tree.get_proof(1)), accounts[1])
    assert balance(token, accounts[1]) == 100
    assert distributor.functions.epoch_claimed(epoch).call() == 100


def test_claims_never_exceed_funding(
    token: Contract, distributor: Contract, accounts: list[str]
) -> None:
    # a root whose leaves sum to 600, funded with 400: claims are paid until the next would
    # pass 400, and that one reverts
    tree = payouts(accounts[1:4], [300, 100, 200])
    epoch = fund(token, distributor, accounts[0], tree.root, 400)
    other = fund(token, distributor, accounts[0], os.urandom(32), 1_000)  # must stay untouched
    send(distributor.functions.claim(epoch, accounts[1], 300, tree.get_proof(0)), accounts[0])
    send(distributor.functions.claim(epoch, accounts[2], 100, tree.get_proof(1)), accounts[0])
    with reverts("cairn_distributor: exceeds funding"):
        send(distributor.functions.claim(epoch, accounts[3], 200, tree.get_proof(2)), accounts[0])
    assert balance(token, accounts[3]) == 0
    assert not distributor.functions.is_claimed(epoch, accounts[3]).call()
    assert distributor.functions.epoch_claimed(epoch).call() == 400
    assert distributor.functions.epoch_funded(other).call() == 1_000
    assert balance(token, distributor.address) == 1_000


def test_claimed_flags_are_per_epoch_across_bitmap_words(
    token: Contract, distributor: Contract, accounts: list[str]
) -> None:
    # epochs 1, 256 and 257 sit in words 0, 1, 1 of an account's claimed bitmap
    tree = payouts(accounts[1:3], [1, 2])
    send(token.functions.approve(distributor.address, 2**256 - 1), accounts[0])
    for _ in range(257):
        send(distributor.functions.fund_epoch(tree.root, 3, CID), accounts[0])
    proof = tree.get_proof(0)
    for epoch in (257, 1, 256):
        assert not distributor.functions.is_claimed(epoch, accounts[1]).call()
        send(distributor.functions.claim(epoch, accounts[1], 1, proof), accounts[0])
        assert distributor.functions.is_claimed(epoch, accounts[1]).call()
    claimed = [e for e in range(1, 258) if distributor.functions.is_claimed(e, accounts[1]).call()]
    assert claimed == [1, 256, 257]
    assert not distributor.functions.is_claimed(257, accounts[2]).call()
    assert balance(token, accounts[1]) == 3


def test_claim_gas_with_17_element_proof(
    token: Contract, distributor: Contract, accounts: list[str]
) -> None:
    # a path of 17 siblings is as dear to verify as a path in a 2**17-leaf tree; seeded, so
    # calldata (zero bytes cost less) and the pair order at each step are the same every run
    rng = random.Random(17)
    fresh, holder = accounts[8], accounts[9]
    send(token.functions.transfer(holder, 1), accounts[0])

    def claim_gas(account: str) -> int:
        amount = 10**18
        proof = [rng.randbytes(32) for _ in range(PROOF_DEPTH)]
        root = process_proof(standard_leaf_hash(LEAF, [account, amount]), proof)
        epoch = fund(token, distributor, accounts[0], root, amount)
        return send(distributor.functions.claim(epoch, account, amount, proof), account)["gasUsed"]

    fresh_gas, holder_gas, repeat_gas = claim_gas(fresh), claim_gas(holder), claim_gas(holder)
    print(
        f"\nclaim gas, 17-element proof: fresh recipient {fresh_gas}, "
        f"holder's first claim {holder_gas}, holder claiming again {repeat_gas}"
    )
    assert fresh_gas <= CLAIM_GAS_FRESH_CEILING
    assert holder_gas <= CLAIM_GAS_HOLDER_CEILING
    assert repeat_gas <= CLAIM_GAS_REPEAT_CEILING
