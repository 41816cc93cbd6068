"""ContributionLedger: who may anchor, what an anchor records, and inclusion proofs."""

from __future__ import annotations

import os

import pytest
from web3 import Web3
from web3.contract import Contract
from web3.logs import DISCARD

from cairn.core.merkle import StandardMerkleTree

from .conftest import CID, SPLIT, Deploy, reverts, send

ANCHOR_GAS_CEILING = 90_000  # 10,000 contributions per batch at under 10 gas each


def root() -> bytes:
    """A random nonzero 32-byte root."""
    return os.urandom(31) + b"\x01"


def contributions(n: int) -> StandardMerkleTree:
    """A tree over `n` contribution ids (each leaf value one bytes32)."""
    return StandardMerkleTree.of([[os.urandom(32)] for _ in range(n)], ["bytes32"])


def anchored_state(ledger: Contract, asset: int) -> tuple[int, int]:
    """(batch count, total contributions) of `asset`."""
    return (
        ledger.functions.batch_count(asset).call(),
        ledger.functions.total_contributions(asset).call(),
    )


# ------------------------------------------------------------------------------ anchoring


def test_owner_anchors_batches_in_order(
    w3: Web3, ledger: Contract, dataset: int, accounts: list[str]
) -> None:
    first = root()
    assert ledger.functions.anchor(dataset, first, 10_000, CID).call({"from": accounts[1]}) == 0
    receipt = send(ledger.functions.anchor(dataset, first, 10_000, CID), accounts[1])
    (event,) = ledger.events.Anchored().process_receipt(receipt, errors=DISCARD)
    assert event.args == {
        "asset_id": dataset,
        "batch_index": 0,
        "root": first,
        "count": 10_000,
        "batch_cid": CID,
        "anchored_by": accounts[1],
    }
    timestamp = w3.eth.get_block(receipt["blockNumber"])["timestamp"]
    assert ledger.functions.is_anchored(dataset, first).call()
    assert ledger.functions.batch_of(dataset, first).call() == [0, 10_000, timestamp]

    second = root()
    receipt = send(ledger.functions.anchor(dataset, second, 25, "bafy-second"), accounts[1])
    (event,) = ledger.events.Anchored().process_receipt(receipt, errors=DISCARD)
    assert event.args.batch_index == 1
    assert ledger.functions.batch_of(dataset, second).call()[:2] == [1, 25]
    assert anchored_state(ledger, dataset) == (2, 10_025)


def test_anchor_gas_is_under_ten_per_contribution(
    ledger: Contract, dataset: int, accounts: list[str]
) -> None:
    assert len(CID) == 59
    # the first batch of an asset writes its counter slot from zero: the dearest case
    first = send(ledger.functions.anchor(dataset, root(), 10_000, CID), accounts[1])
    later = send(ledger.functions.anchor(dataset, root(), 10_000, CID), accounts[1])
    print(f"\nanchor gas: first batch {first['gasUsed']}, later batch {later['gasUsed']}")
    assert first["gasUsed"] < ANCHOR_GAS_CEILING
    assert later["gasUsed"] < first["gasUsed"]


def test_curator_anchors(
    registry: Contract, ledger: Contract, dataset: int, accounts: list[str]
) -> None:
    send(registry.functions.set_curator(dataset, accounts[2], True), accounts[1])
    receipt = send(ledger.functions.anchor(dataset, root(), 3, CID), accounts[2])
    (event,) = ledger.events.Anchored().process_receipt(receipt, errors=DISCARD)
    assert event.args.anchored_by == accounts[2]
    assert anchored_state(ledger, dataset) == (1, 3)


def test_stranger_cannot_anchor(
    registry: Contract, ledger: Contract, dataset: int, accounts: list[str]
) -> None:
    send(registry.functions.setApprovalForAll(accounts[3], True), accounts[1])
    for caller in (accounts[0], accounts[3]):  # deployer, operator
        with reverts("cairn_ledger: not owner or curator"):
            send(ledger.functions.anchor(dataset, root(), 3, CID), caller)
    with reverts("cairn_ledger: not owner or curator"):
        send(ledger.functions.anchor(dataset + 1, root(), 3, CID), accounts[1])  # no such asset
    assert anchored_state(ledger, dataset) == (0, 0)


def test_transfer_moves_anchoring_rights(
    registry: Contract, ledger: Contract, dataset: int, accounts: list[str]
) -> None:
    send(registry.functions.set_curator(dataset, accounts[2], True), accounts[1])
    send(registry.functions.transferFrom(accounts[1], accounts[3], dataset), accounts[1])
    for former in (accounts[1], accounts[2]):
        with reverts("cairn_ledger: not owner or curator"):
            send(ledger.functions.anchor(dataset, root(), 3, CID), former)
    send(ledger.functions.anchor(dataset, root(), 3, CID), accounts[3])
    assert anchored_state(ledger, dataset) == (1, 3)


@pytest.mark.parametrize(
    ("batch_root", "count", "reason"),
    [
        (b"\x00" * 32, 3, "cairn_ledger: empty root"),
        (b"\x01" * 32, 0, "cairn_ledger: empty batch"),
        (b"\x01" * 32, 2**128, "cairn_ledger: count too large"),
    ],
)
def test_bad_batches_revert(
    ledger: Contract, dataset: int, accounts: list[str], batch_root: bytes, count: int, reason: str
) -> None:
    with reverts(reason):
        send(ledger.functions.anchor(dataset, batch_root, count, CID), accounts[1])
    assert anchored_state(ledger, dataset) == (0, 0)
    assert not ledger.functions.is_anchored(dataset, batch_root).call()


def test_largest_count_is_accepted(ledger: Contract, dataset: int, accounts: list[str]) -> None:
    batch = root()
    send(ledger.functions.anchor(dataset, batch, 2**128 - 1, CID), accounts[1])
    assert ledger.functions.batch_of(dataset, batch).call()[:2] == [0, 2**128 - 1]
    assert anchored_state(ledger, dataset) == (1, 2**128 - 1)


def test_root_anchors_once_per_asset(
    registry: Contract, ledger: Contract, dataset: int, accounts: list[str]
) -> None:
    batch = root()
    send(ledger.functions.anchor(dataset, batch, 5, CID), accounts[1])
    with reverts("cairn_ledger: root already anchored"):
        send(ledger.functions.anchor(dataset, batch, 7, "bafy-other"), accounts[1])
    assert anchored_state(ledger, dataset) == (1, 5)
    assert ledger.functions.batch_of(dataset, batch).call()[:2] == [0, 5]

    send(registry.functions.register(1, CID, "MIT", [], SPLIT), accounts[1])
    send(ledger.functions.anchor(dataset + 1, batch, 7, CID), accounts[1])  # another asset
    assert anchored_state(ledger, dataset + 1) == (1, 7)


def test_batch_of_unknown_root_reverts(ledger: Contract, dataset: int) -> None:
    assert not ledger.functions.is_anchored(dataset, root()).call()
    with reverts("cairn_ledger: root not anchored"):
        ledger.functions.batch_of(dataset, root()).call()


def test_ledger_needs_a_registry_contract(deploy: Deploy, accounts: list[str]) -> None:
    with pytest.raises(AssertionError, match="deploying ContributionLedger failed"):
        deploy("ContributionLedger", accounts[1])


# ------------------------------------------------------------------------------ verifying


def test_every_contribution_verifies(ledger: Contract, dataset: int, accounts: list[str]) -> None:
    tree = contributions(13)
    send(ledger.functions.anchor(dataset, tree.root, len(tree), CID), accounts[1])
    for i, value in tree.entries():
        leaf, proof = tree.leaf_hash(value), tree.get_proof(i)
        assert ledger.functions.verify(dataset, tree.root, leaf, proof).call()


def test_single_contribution_batch_verifies_with_empty_proof(
    ledger: Contract, dataset: int, accounts: list[str]
) -> None:
    tree = contributions(1)
    send(ledger.functions.anchor(dataset, tree.root, 1, CID), accounts[1])
    assert ledger.functions.verify(dataset, tree.root, tree.root, []).call()


def test_wrong_leaf_proof_or_root_does_not_verify(
    registry: Contract, ledger: Contract, dataset: int, accounts: list[str]
) -> None:
    tree, other = contributions(8), contributions(8)
    send(ledger.functions.anchor(dataset, tree.root, 8, CID), accounts[1])
    leaf, proof = tree.leaf_hash(next(tree.entries())[1]), tree.get_proof(0)
    verify = ledger.functions.verify
    assert verify(dataset, tree.root, leaf, proof).call()
    assert not verify(dataset, tree.root, other.leaf_hash(next(other.entries())[1]), proof).call()
    assert not verify(dataset, tree.root, leaf, [proof[0], proof[2], proof[1]]).call()
    assert not verify(dataset, tree.root, leaf, [*proof[:-1], "0x" + "11" * 32]).call()
    assert not verify(dataset, tree.root, leaf, proof[:-1]).call()
    # a correct proof against a root that is not anchored for this asset
    send(registry.functions.register(1, CID, "MIT", [], SPLIT), accounts[1])
    assert not verify(dataset + 1, tree.root, leaf, proof).call()
    assert not verify(
        dataset, other.root, other.leaf_hash(next(other.entries())[1]), other.get_proof(0)
    ).call()
