"""End to end on a real anvil started by the test: assets and balances survive a restart."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from web3 import Web3

from cairn.node import DEV_TOKENS, Node


@pytest.mark.slow
def test_a_restarted_anvil_node_keeps_its_state(
    make_node: Callable[..., Node], tmp_path: Path
) -> None:
    data_dir = tmp_path / "anvil-node"
    first = make_node(data_dir, chain="anvil")
    assert (
        first.backend.kind == "anvil"
        and first.rpc_url
        and first.rpc_url.startswith("http://127.0.0.1:")
    )
    alice = first.signers.get(first.keystore.find_by_label("alice").address)
    bob = first.keystore.find_by_label("bob").address
    asset = first.assets.register(
        alice, kind="dataset", name="Survives restarts", licence="CC0-1.0"
    )
    first.chain.token.transfer(alice, bob, 7 * 10**18)
    first.assets.transfer(alice, asset.asset_id, bob)
    deployment = first.chain.deployment
    # Any wallet can use the chain directly: plain web3 against the advertised RPC URL.
    external = Web3(Web3.HTTPProvider(first.rpc_url))
    assert external.eth.chain_id == first.client.chain_id
    registry = external.eth.contract(
        address=deployment.address("AssetRegistry"), abi=deployment.contracts["AssetRegistry"].abi
    )
    assert registry.functions.ownerOf(asset.asset_id).call() == bob
    first.close()
    assert not first.backend.process.running  # type: ignore[attr-defined]

    second = make_node(data_dir, chain=None)  # the data folder remembers anvil
    assert second.backend.kind == "anvil"
    assert second.chain.deployment.contracts == deployment.contracts  # reused, not redeployed
    assert second.chain.token.balance_of(bob) == DEV_TOKENS + 7 * 10**18
    assert second.chain.token.balance_of(alice.address) == DEV_TOKENS - 7 * 10**18
    kept = second.assets.get(asset.asset_id)
    assert kept.owner == bob and kept.name == "Survives restarts"
    again = second.assets.register(
        alice, kind="model", name="After restart", licence="MIT", parents=[asset.asset_id]
    )
    assert again.asset_id == asset.asset_id + 1
