"""The asset index in step with the chain, at few requests: a registration reads its block's
logs once, a sync with an unmoved head reads nothing but the head, and what the chain did
between two syncs (an asset registered and given away at once) comes out as the chain has it."""

from __future__ import annotations

from cairn.assets.service import AssetService
from cairn.core.policy import AssetKind, RevenueSplit
from cairn.node import Node
from tests.chain.test_simulation import requests
from tests.data.conftest import dev

CID = "bafkreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy"


def test_a_registration_reads_the_head_and_its_logs_once(node: Node) -> None:
    alice = dev(node, "alice")
    node.assets.sync()
    with requests(node) as sent:
        asset = node.assets.register(alice, kind="dataset", name="tides", licence="CC0-1.0")
    assert asset.owner == alice.address and asset.name == "tides"
    assert sent["eth_sendRawTransaction"] == 1
    assert sent["eth_blockNumber"] == 1  # one sync after the transaction, not three
    assert sent["eth_getLogs"] == 1  # the registry's three events in one request
    # The record's view call: no parents to check (total_assets), the owner from the event.
    assert sent["eth_call"] == 1


def test_a_sync_with_an_unmoved_head_reads_only_the_head(node: Node) -> None:
    node.assets.register(dev(node, "alice"), kind="dataset", name="tides", licence="CC0-1.0")
    with requests(node) as sent:
        assert node.assets.sync() == 0
        node.assets.get(1)
        node.assets.list()
    assert dict(sent) == {"eth_blockNumber": 3}


def test_an_asset_given_away_before_a_sync_is_indexed_with_its_new_owner(node: Node) -> None:
    alice, bob = dev(node, "alice"), dev(node, "bob")
    node.assets.sync()
    registry = node.chain.registry  # from a wallet: the node's index has not seen it
    asset_id, _ = registry.register(
        alice, AssetKind.MODEL, CID, "MIT", [], RevenueSplit.owner_only()
    )
    registry.transfer(alice, bob.address, asset_id)
    asset = node.assets.get(asset_id)
    assert (asset.owner, asset.kind, asset.metadata_cid) == (bob.address, "model", CID)
    assert [a.asset_id for a in node.assets.list(owner=bob.address)] == [asset_id]


def test_a_restarted_service_reads_on_from_the_index_cursor(node: Node) -> None:
    alice = dev(node, "alice")
    first = node.assets.register(alice, kind="dataset", name="one", licence="CC0-1.0")
    asset_id, _ = node.chain.registry.register(
        alice, AssetKind.DATASET, CID, "MIT", [first.asset_id], RevenueSplit.owner_only()
    )
    restarted = AssetService(node.chain, node.store, node.db, node.refs)
    assert restarted.sync() == 1  # the wallet's asset: the node's own was indexed already
    assert restarted.get(asset_id).parents == [first.asset_id]
    assert restarted.sync() == 0


def test_a_reset_index_is_read_again_from_the_deployment(node: Node) -> None:
    alice = dev(node, "alice")
    node.assets.register(alice, kind="dataset", name="one", licence="CC0-1.0")
    node.assets.register(alice, kind="dataset", name="two", licence="CC0-1.0")
    total = len(node.assets.list())
    node.assets.reset_index()
    assert node.assets.sync() >= total  # every asset again (and each mint's transfer)
    assert len(node.assets.list()) == total
