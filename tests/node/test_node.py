"""A node on the in-process chain: deployment, dev accounts, assets, and bad input."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from eth_account import Account

from cairn.core.errors import ChainError, ConfigError, Forbidden, InvalidInput, NotFound
from cairn.core.policy import AssetKind, RevenueSplit
from cairn.node import DEV_TOKENS, Node


def dev(node: Node, label: str) -> Account:
    return node.signers.get(node.keystore.find_by_label(label).address)


def test_fresh_dev_node_deploys_contracts_and_funds_dev_accounts(node: Node) -> None:
    assert set(node.chain.deployment.contracts) == {
        "CairnToken",
        "AssetRegistry",
        "ContributionLedger",
        "RevenueDistributor",
        "JobEscrow",
        "LicenseToken",
        "DataBounty",
        "PrepaidVault",  # the gateway's, deployed once its asset exists
    }
    for label in ("alice", "bob", "carol"):
        account = dev(node, label)
        assert node.chain.token.balance_of(account.address) == DEV_TOKENS
        assert node.client.balance(account.address) > 0
    assert node.chain.token.is_minter(node.operator.address)
    assert node.rpc_url is None  # the memory chain lives in this process


def test_register_list_show_and_transfer_an_asset(node: Node) -> None:
    alice, bob = dev(node, "alice"), dev(node, "bob")
    data = node.assets.register(alice, kind="dataset", name="Polite replies", licence="CC-BY-4.0")
    model = node.assets.register(
        alice,
        kind="model",
        name="Polite model",
        licence="Apache-2.0",
        parents=[data.asset_id],
        split=RevenueSplit(6_000, 3_000, 1_000, 0),
        description="fine-tuned on polite replies",
    )
    assert model.parents == [data.asset_id]
    assert model.split == {"owner": 6_000, "data": 3_000, "compute": 1_000, "upstream": 0}
    assert node.store.get_json(model.metadata_cid)["name"] == "Polite model"
    on_chain = node.chain.registry.get(model.asset_id)
    assert on_chain.kind is AssetKind.MODEL and on_chain.parents == (data.asset_id,)

    gateway = node.economy.gateway_asset()  # registered at start, with the vault
    assert [a.asset_id for a in node.assets.list()] == [model.asset_id, data.asset_id, gateway]
    assert [a.asset_id for a in node.assets.list(kind="dataset")] == [data.asset_id]
    assert [a.asset_id for a in node.assets.list(query="polite m")] == [model.asset_id]
    assert node.assets.list(owner=bob.address) == []

    moved = node.assets.transfer(alice, data.asset_id, bob.address)
    assert moved.asset.owner == bob.address and moved.tx_hash != moved.asset.tx_hash
    receipt = node.client.w3.eth.get_transaction_receipt(moved.tx_hash)
    assert receipt["to"] == node.chain.registry.address  # the transfer's own transaction
    assert node.chain.registry.owner_of(data.asset_id) == bob.address
    assert [a.asset_id for a in node.assets.list(owner=bob.address)] == [data.asset_id]


def test_bad_asset_input_is_refused_and_changes_nothing(node: Node) -> None:
    alice, bob = dev(node, "alice"), dev(node, "bob")
    first = node.assets.register(alice, kind="dataset", name="d", licence="MIT")
    before = node.chain.registry.total_assets()
    cases: list[tuple[dict[str, object], str]] = [
        ({"kind": "spreadsheet"}, "unknown asset kind"),
        ({"licence": ""}, "licence must be"),
        ({"licence": "x" * 65}, "licence must be"),
        ({"name": "  "}, "name must be"),
        ({"parents": [first.asset_id + 5]}, "not a registered asset id"),
        ({"parents": [first.asset_id, first.asset_id]}, "must not repeat"),
    ]
    for override, message in cases:
        args: dict[str, object] = {"kind": "model", "name": "m", "licence": "MIT", **override}
        with pytest.raises(InvalidInput, match=message):
            node.assets.register(alice, **args)  # type: ignore[arg-type]
    with pytest.raises(InvalidInput, match="must sum to 10000"):
        RevenueSplit(5_000, 1_000, 0, 0)
    with pytest.raises(Forbidden, match="is owned by"):
        node.assets.transfer(bob, first.asset_id, bob.address)
    with pytest.raises(InvalidInput, match="not an Ethereum address"):
        node.assets.transfer(alice, first.asset_id, "0x1234")
    with pytest.raises(NotFound, match="no asset with id 99"):
        node.assets.get(99)
    assert node.chain.registry.total_assets() == before
    assert node.chain.registry.owner_of(first.asset_id) == alice.address


def test_a_revert_surfaces_its_reason_and_moves_nothing(node: Node) -> None:
    alice, bob = dev(node, "alice"), dev(node, "bob")
    nonce = node.client.nonce(alice.address)
    with pytest.raises(ChainError) as caught:
        node.chain.token.transfer(alice, bob.address, DEV_TOKENS + 1)
    assert caught.value.reason is not None and caught.value.reason.startswith("cairn_token:")
    assert node.chain.token.balance_of(alice.address) == DEV_TOKENS
    assert node.client.nonce(alice.address) == nonce  # simulated, never sent


def test_an_asset_registered_from_a_wallet_is_indexed(node: Node) -> None:
    wallet = Account.create()
    node.backend.fund(wallet.address, 10**18)
    asset_id, _ = node.chain.registry.register(
        wallet,
        AssetKind.APP,
        "bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku",
        "MIT",
        [],
        RevenueSplit.owner_only(),
    )
    shown = node.assets.get(asset_id)
    assert shown.owner == wallet.address and shown.kind == "app"
    assert shown.name == ""  # its metadata is not JSON this node holds


def test_a_new_memory_chain_gets_a_new_deployment_and_a_clean_index(
    make_node: Callable[..., Node], tmp_path
) -> None:  # type: ignore[no-untyped-def]
    first = make_node(tmp_path / "n")
    alice = dev(first, "alice")
    first.assets.register(alice, kind="dataset", name="d", licence="MIT")
    first.close()
    second = make_node(tmp_path / "n")
    # only what starting it registers: the gateway's asset, which its vault anchors under
    assert [a.asset_id for a in second.assets.list()] == [second.economy.gateway_asset()]
    assert second.chain.token.balance_of(alice.address) == DEV_TOKENS


def test_the_data_folder_remembers_its_chain(make_node: Callable[..., Node], tmp_path) -> None:  # type: ignore[no-untyped-def]
    make_node(tmp_path / "n").close()
    with pytest.raises(ConfigError, match="was created with --chain memory"):
        make_node(tmp_path / "n", chain="anvil")
    again = make_node(tmp_path / "n", chain=None)
    assert again.backend.kind == "memory"


def test_a_production_node_needs_a_password(make_node: Callable[..., Node], tmp_path) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ConfigError, match="CAIRN_PASSWORD"):
        make_node(tmp_path / "p", dev=False)
    secured = make_node(tmp_path / "p2", dev=False, password="correct horse")
    assert not secured.keystore.find_by_label("operator").dev
    assert secured.keystore.list()[0].label == "operator"


@pytest.mark.process
@pytest.mark.slow
def test_a_deployment_from_an_older_cairn_gets_the_new_contracts(
    make_node: Callable[..., Node], tmp_path
) -> None:  # type: ignore[no-untyped-def]
    import json

    first = make_node(tmp_path / "n", chain="anvil")
    path = tmp_path / "n" / "chain" / f"deployment-{first.client.chain_id}.json"
    registry = first.chain.registry.address
    first.close()
    saved = json.loads(path.read_text())
    del saved["contracts"]["JobEscrow"]  # as written before JobEscrow existed
    path.write_text(json.dumps(saved))
    again = make_node(tmp_path / "n", chain=None)
    assert again.chain.registry.address == registry  # kept
    assert "JobEscrow" in json.loads(path.read_text())["contracts"]  # added and saved
