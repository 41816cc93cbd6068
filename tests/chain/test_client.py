"""The typed chain client over a node's deployment: every wrapper, and reverts as ChainError."""

from __future__ import annotations

import pytest
from eth_account import Account
from eth_account.signers.local import LocalAccount
from eth_tester.exceptions import TransactionFailed
from web3.exceptions import ContractLogicError

from cairn.chain.client import revert_reason
from cairn.core.errors import ChainError, InvalidInput
from cairn.core.merkle import StandardMerkleTree
from cairn.core.policy import AssetKind, RevenueSplit
from cairn.node import DEV_TOKENS, Node

CID = "bafkreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy"


def dev(node: Node, label: str) -> LocalAccount:
    return node.signers.get(node.keystore.find_by_label(label).address)


def test_revert_reasons_from_every_backend_read_the_same() -> None:
    assert revert_reason(TransactionFailed("execution reverted: cairn_x: no")) == "cairn_x: no"
    assert revert_reason(ContractLogicError("execution reverted: cairn_x: no")) == "cairn_x: no"
    assert revert_reason(ContractLogicError("execution reverted")) == "execution reverted"
    assert revert_reason(ValueError("other")) is None


def test_token_wrappers(node: Node) -> None:
    token, alice, bob = node.chain.token, dev(node, "alice"), dev(node, "bob")
    assert (token.symbol(), token.decimals(), token.owner()) == ("CAIRN", 18, node.operator.address)
    token.approve(alice, bob.address, 5)
    assert token.allowance(alice.address, bob.address) == 5
    token.transfer_from(bob, alice.address, bob.address, 5)
    assert token.balance_of(bob.address) == DEV_TOKENS + 5
    with pytest.raises(ChainError, match="cairn_token"):
        token.transfer_from(bob, alice.address, bob.address, 1)
    with pytest.raises(ChainError, match="cairn_token"):
        token.mint(alice, alice.address, 1)
    token.set_minter(node.operator, alice.address, True)
    supply = token.total_supply()
    token.mint(alice, alice.address, 1)
    assert token.total_supply() == supply + 1
    token.transfer_ownership(node.operator, bob.address)
    assert token.owner() == bob.address


def test_approve_if_short_sends_an_approval_only_when_the_allowance_is_short(node: Node) -> None:
    token, alice, bob = node.chain.token, dev(node, "alice"), dev(node, "bob")
    token.approve_if_short(alice, bob.address, 5)
    assert token.allowance(alice.address, bob.address) == 5
    head = node.client.block_number()
    token.approve_if_short(alice, bob.address, 5)  # covered: no transaction
    token.approve_if_short(alice, bob.address, 0)
    assert node.client.block_number() == head
    token.approve_if_short(alice, bob.address, 8)
    assert token.allowance(alice.address, bob.address) == 8
    assert node.client.block_number() == head + 1


def test_first_event_reads_the_event_or_says_it_is_missing(node: Node) -> None:
    token, alice = node.chain.token, dev(node, "alice")
    receipt = token.set_minter(node.operator, alice.address, True)
    assert token.first_event(receipt, "MinterSet") == {"account": alice.address, "allowed": True}
    with pytest.raises(ChainError, match=r"CairnToken: .* emitted no OwnershipTransferred event"):
        token.first_event(receipt, "OwnershipTransferred")


def test_registry_wrappers(node: Node) -> None:
    registry, alice, bob, carol = (
        node.chain.registry,
        dev(node, "alice"),
        dev(node, "bob"),
        dev(node, "carol"),
    )
    asset_id, _ = registry.register(
        alice, AssetKind.DATASET, CID, "CC0-1.0", [], RevenueSplit(7_000, 3_000, 0, 0)
    )
    assert registry.token_uri(asset_id) == f"ipfs://{CID}"
    assert registry.supports_interface("0x80ac58cd") and registry.supports_interface("0x01ffc9a7")
    assert not registry.supports_interface("0xffffffff")
    with pytest.raises(InvalidInput):
        registry.supports_interface("0x80ac")
    assert registry.balance_of(alice.address) == 1
    registry.set_curator(alice, asset_id, carol.address, True)
    assert registry.is_curator(asset_id, carol.address) and registry.can_anchor(
        asset_id, carol.address
    )
    registry.approve(alice, bob.address, asset_id)
    assert registry.get_approved(asset_id) == bob.address
    registry.transfer_from(bob, alice.address, bob.address, asset_id)
    assert registry.owner_of(asset_id) == bob.address
    assert not registry.can_anchor(asset_id, carol.address)  # the old owner's curators retire
    registry.set_approval_for_all(bob, carol.address, True)
    assert registry.is_approved_for_all(bob.address, carol.address)
    registry.set_metadata(
        bob, asset_id, "bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku"
    )
    assert registry.get(asset_id).metadata_cid.startswith("bafkreihdw")
    with pytest.raises(ChainError, match="invalid token id"):
        registry.get(asset_id + 1)


def test_ledger_and_distributor_wrappers_with_python_trees(node: Node) -> None:
    alice, bob, carol = dev(node, "alice"), dev(node, "bob"), dev(node, "carol")
    asset_id, _ = node.chain.registry.register(
        alice, AssetKind.DATASET, CID, "MIT", [], RevenueSplit.owner_only()
    )
    records = StandardMerkleTree.of(
        [[bytes([i]) * 32, bob.address] for i in range(1, 6)], ["bytes32", "address"]
    )
    index, _ = node.chain.ledger.anchor(alice, asset_id, records.root, 5, CID)
    assert index == 0 and node.chain.ledger.batch_of(asset_id, records.root)[:2] == (0, 5)
    assert (
        node.chain.ledger.total_contributions(asset_id) == 5
        and node.chain.ledger.batch_count(asset_id) == 1
    )
    leaf = records.leaf_hash([bytes([3]) * 32, bob.address])
    proof = records.get_proof([bytes([3]) * 32, bob.address])
    assert node.chain.ledger.verify(asset_id, records.root, leaf, proof)
    assert not node.chain.ledger.verify(asset_id, records.root, leaf, proof[1:])
    with pytest.raises(ChainError, match="not owner or curator"):
        node.chain.ledger.anchor(bob, asset_id, "0x" + "11" * 32, 1, CID)

    shares = StandardMerkleTree.of(
        [[bob.address, 300], [carol.address, 700]], ["address", "uint256"]
    )
    epoch, _ = node.chain.distributor.fund_epoch(alice, node.chain.token, shares.root, 1_000, CID)
    assert node.chain.distributor.epoch_root(epoch) == shares.root
    assert node.chain.distributor.epoch_funded(epoch) == 1_000
    outsider = Account.create()
    node.backend.fund(outsider.address, 10**18)
    node.chain.distributor.claim(
        outsider, epoch, bob.address, 300, shares.get_proof([bob.address, 300])
    )
    assert node.chain.distributor.is_claimed(epoch, bob.address)
    assert node.chain.token.balance_of(bob.address) == DEV_TOKENS + 300
    with pytest.raises(ChainError, match="already claimed"):
        node.chain.distributor.claim(
            outsider, epoch, bob.address, 300, shares.get_proof([bob.address, 300])
        )
    with pytest.raises(ChainError, match="invalid proof"):
        node.chain.distributor.claim(
            outsider, epoch, carol.address, 701, shares.get_proof([carol.address, 700])
        )
    assert node.chain.distributor.epoch_claimed(epoch) == 300
