"""End to end on a real anvil started by the test: assets and balances survive a restart."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from web3 import Web3

from cairn.chain.anvil import AnvilProcess
from cairn.core.errors import ChainUnavailable, ConfigError
from cairn.identity.keystore import Keystore
from cairn.node import DEV_TOKENS, Node

pytestmark = pytest.mark.process  # starts processes: the e2e tier


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


@pytest.mark.slow
def test_a_node_on_a_json_rpc_url_deploys_once_its_operator_is_funded(
    make_node: Callable[..., Node], tmp_path: Path
) -> None:
    external = AnvilProcess(tmp_path / "external" / "state.json")
    external.start()
    try:
        data_dir = tmp_path / "rpc-node"
        with pytest.raises(ConfigError, match="has no ether") as caught:
            make_node(data_dir, chain=external.url, dev=False, password="a long passphrase")
        operator = Keystore(data_dir / "accounts").find_by_label("operator").address
        assert operator in caught.value.message
        w3 = Web3(Web3.HTTPProvider(external.url))
        w3.provider.make_request("anvil_setBalance", [operator, hex(10**18)])  # type: ignore[arg-type]

        node = make_node(data_dir, chain=external.url, dev=False, password="a long passphrase")
        assert node.backend.kind == "rpc" and node.rpc_url == external.url
        asset = node.assets.register(node.operator, kind="model", name="On RPC", licence="MIT")
        deployment = node.chain.deployment
        node.close()
        with pytest.raises(ConfigError, match="CAIRN_PASSWORD"):
            make_node(data_dir, chain=None, dev=False)
        again = make_node(data_dir, chain=None, dev=False, password="a long passphrase")
        assert again.chain.deployment.contracts == deployment.contracts
        assert again.assets.get(asset.asset_id).name == "On RPC"
    finally:
        external.stop()


def test_a_withdrawal_is_taken_once_its_notice_passed_on_an_idle_chain(
    make_node: Callable[..., Node], tmp_path: Path
) -> None:
    """anvil mines only on demand, so an idle chain's newest block is as old as the request:
    a transaction is simulated in the block it would be mined in, at this time."""
    node = make_node(tmp_path / "n", chain="anvil", vault_notice_seconds=2)
    vault = node.chain.vault
    assert vault is not None and vault.notice_period() == 2
    alice = node.signers.get(node.keystore.find_by_label("alice").address)
    node.economy.balances.deposit(alice, 10**18)
    available_at, _ = vault.request_withdrawal(alice, 10**18)
    while time.time() < available_at + 1:  # no block is mined meanwhile
        time.sleep(0.2)
    paid, _ = vault.withdraw(alice)
    assert paid == 10**18 and node.economy.balances.get(alice.address).withdrawn == 10**18


@pytest.mark.slow
def test_a_node_restarted_with_its_own_payment_unmined_waits_for_it_before_deciding_again(
    make_node: Callable[..., Node], tmp_path: Path
) -> None:
    """Killed after broadcasting a payment and before its mining, a node would read the chain's
    events on restart, not find it, and pay again: it waits for its own pending transactions."""
    external = AnvilProcess(tmp_path / "external" / "state.json")
    external.start()
    w3 = Web3(Web3.HTTPProvider(external.url))
    rpc = w3.provider.make_request  # type: ignore[attr-defined]
    try:
        data_dir, password = tmp_path / "rpc-node", "a long passphrase"
        with pytest.raises(ConfigError, match="has no ether"):
            make_node(data_dir, chain=external.url, dev=False, password=password)
        operator = Keystore(data_dir / "accounts").find_by_label("operator").address
        rpc("anvil_setBalance", [operator, hex(10**18)])
        node = make_node(data_dir, chain=external.url, dev=False, password=password)
        gateway = node.gateway_account

        def broadcast_unmined() -> int:
            """A payment from the gateway, sent and not mined (as if the node died then)."""
            rpc("evm_setAutomine", [False])
            nonce = w3.eth.get_transaction_count(gateway.address, "pending")
            tx = {
                "to": operator, "value": 1, "gas": 21_000, "nonce": nonce, "type": 2,
                "maxFeePerGas": 10**11, "maxPriorityFeePerGas": 10**9, "chainId": w3.eth.chain_id,
            }  # fmt: skip
            w3.eth.send_raw_transaction(gateway.sign_transaction(tx).raw_transaction)
            return nonce

        def mine() -> None:
            rpc("evm_mine", [])
            rpc("evm_setAutomine", [True])

        nonce = broadcast_unmined()
        node.close()
        started: list[Node] = []
        restart = threading.Thread(
            target=lambda: started.append(
                make_node(data_dir, chain=None, dev=False, password=password)
            )
        )
        restart.start()
        restart.join(timeout=6.0)  # a restart takes about 3 s here
        assert restart.is_alive() and not started  # waiting for its payment to be mined
        mine()
        restart.join(timeout=60)
        (again,) = started
        assert w3.eth.get_transaction_count(gateway.address, "latest") == nonce + 1

        broadcast_unmined()
        with pytest.raises(ChainUnavailable, match=gateway.address):
            again.client.await_mined([gateway.address], timeout=0.5, poll=0.1)
        mine()
        again.client.await_mined([gateway.address], timeout=5)  # nothing pending: at once
    finally:
        external.stop()
