"""AssetRegistry: registering assets, ERC-721 ownership and approvals, safe transfers, curators."""

from __future__ import annotations

from collections.abc import Sequence
from typing import cast

import pytest
import vyper
from web3 import Web3
from web3.contract import Contract
from web3.logs import DISCARD

from .conftest import CID, SPLIT, reverts, send

ZERO = "0x" + "00" * 20
DATASET, MODEL, APP = 1, 2, 3
OTHER_CID = "bafkreidgvpkjawlxz6sffxzwgooowe5yt7i6wsyg236mfoks77nywkptdq"

RECEIVER = """
# pragma version ~=0.4.0
last_operator: public(address)
last_owner: public(address)
last_token_id: public(uint256)
last_data: public(Bytes[1024])

@external
def onERC721Received(
    operator: address, owner: address, token_id: uint256, data: Bytes[1024]
) -> bytes4:
    self.last_operator = operator
    self.last_owner = owner
    self.last_token_id = token_id
    self.last_data = data
    return method_id("onERC721Received(address,address,uint256,bytes)", output_type=bytes4)
"""

WRONG_RECEIVER = """
# pragma version ~=0.4.0
@external
def onERC721Received(
    operator: address, owner: address, token_id: uint256, data: Bytes[1024]
) -> bytes4:
    return 0x12345678
"""

NOT_A_RECEIVER = """
# pragma version ~=0.4.0
@external
def ping() -> uint256:
    return 1
"""

SAFE_TRANSFER = "safeTransferFrom(address,address,uint256)"
SAFE_TRANSFER_DATA = "safeTransferFrom(address,address,uint256,bytes)"


def deploy_source(w3: Web3, source: str, sender: str) -> Contract:
    """Compile and deploy a small test contract from Vyper source."""
    out = vyper.compile_code(source, output_formats=["abi", "bytecode"])
    factory = w3.eth.contract(abi=out["abi"], bytecode=out["bytecode"])
    receipt = w3.eth.get_transaction_receipt(
        factory.constructor().transact({"from": sender, "gas": 2_000_000})
    )
    return cast(Contract, w3.eth.contract(address=receipt["contractAddress"], abi=out["abi"]))


def register(
    registry: Contract,
    owner: str,
    kind: int = DATASET,
    parents: Sequence[int] = (),
    split: Sequence[int] = SPLIT,
) -> int:
    """Register an asset owned by `owner` and return its id."""
    receipt = send(registry.functions.register(kind, CID, "MIT", list(parents), list(split)), owner)
    (event,) = registry.events.AssetRegistered().process_receipt(receipt, errors=DISCARD)
    return event.args.asset_id


# ------------------------------------------------------------------------------ registering


def test_collection_metadata_and_erc165(registry: Contract) -> None:
    assert registry.functions.name().call() == "Cairn Assets"
    assert registry.functions.symbol().call() == "CAIRN"
    for interface_id in ("0x01ffc9a7", "0x80ac58cd", "0x5b5e139f"):
        assert registry.functions.supportsInterface(interface_id).call()
    for interface_id in ("0xffffffff", "0x780e9d63", "0x00000000"):
        assert not registry.functions.supportsInterface(interface_id).call()


def test_register_mints_sequential_ids_with_full_record(
    w3: Web3, registry: Contract, accounts: list[str]
) -> None:
    receipt = send(registry.functions.register(DATASET, CID, "CC-BY-4.0", [], SPLIT), accounts[1])
    (registered,) = registry.events.AssetRegistered().process_receipt(receipt, errors=DISCARD)
    assert registered.args == {
        "asset_id": 1,
        "owner": accounts[1],
        "kind": DATASET,
        "metadata_cid": CID,
        "licence": "CC-BY-4.0",
    }
    (minted,) = registry.events.Transfer().process_receipt(receipt, errors=DISCARD)
    assert minted.args == {"sender": ZERO, "receiver": accounts[1], "token_id": 1}

    model = register(registry, accounts[2], MODEL, parents=[1], split=[5000, 2000, 2000, 1000])
    assert model == 2
    assert registry.functions.total_assets().call() == 2
    assert registry.functions.ownerOf(2).call() == accounts[2]
    assert registry.functions.balanceOf(accounts[1]).call() == 1
    assert registry.functions.tokenURI(1).call() == "ipfs://" + CID
    block = w3.eth.get_block(receipt["blockNumber"])
    kind, cid, licence, parents, split, registered_at = registry.functions.get_asset(1).call()
    assert (kind, cid, licence, parents, split) == (DATASET, CID, "CC-BY-4.0", [], SPLIT)
    assert registered_at == block["timestamp"]
    assert registry.functions.get_asset(2).call()[3] == [1]


def test_every_kind_registers(registry: Contract, accounts: list[str]) -> None:
    ids = [register(registry, accounts[1], kind) for kind in (DATASET, MODEL, APP)]
    assert ids == [1, 2, 3]
    assert [registry.functions.get_asset(i).call()[0] for i in ids] == [DATASET, MODEL, APP]


@pytest.mark.parametrize("kind", [0, 4, 255])
def test_unknown_kind_reverts_and_registers_nothing(
    registry: Contract, accounts: list[str], kind: int
) -> None:
    with reverts("cairn_registry: invalid kind"):
        send(registry.functions.register(kind, CID, "MIT", [], SPLIT), accounts[1])
    assert registry.functions.total_assets().call() == 0
    assert registry.functions.balanceOf(accounts[1]).call() == 0


def test_empty_metadata_cid_reverts(registry: Contract, accounts: list[str]) -> None:
    with reverts("cairn_registry: empty metadata cid"):
        send(registry.functions.register(DATASET, "", "MIT", [], SPLIT), accounts[1])
    assert registry.functions.total_assets().call() == 0


def test_parents_must_exist(registry: Contract, accounts: list[str]) -> None:
    register(registry, accounts[1])
    for parents in ([0], [2], [1, 7]):
        with reverts("cairn_registry: parent does not exist"):
            send(registry.functions.register(MODEL, CID, "MIT", parents, SPLIT), accounts[1])
    assert registry.functions.total_assets().call() == 1


def test_parents_must_not_repeat(registry: Contract, accounts: list[str]) -> None:
    register(registry, accounts[1])
    register(registry, accounts[1])
    with reverts("cairn_registry: duplicate parent"):
        send(registry.functions.register(MODEL, CID, "MIT", [1, 2, 1], SPLIT), accounts[1])
    assert registry.functions.total_assets().call() == 2
    assert register(registry, accounts[1], MODEL, parents=[2, 1]) == 3


def test_sixteen_parents_fit(registry: Contract, accounts: list[str]) -> None:
    for _ in range(16):
        register(registry, accounts[1])
    model = register(registry, accounts[1], MODEL, parents=list(range(16, 0, -1)))
    assert registry.functions.get_asset(model).call()[3] == list(range(16, 0, -1))


@pytest.mark.parametrize(
    "split",
    [[7000, 1000, 1000, 999], [7000, 1000, 1000, 1001], [0, 0, 0, 0], [65535, 65535, 65535, 65535]],
)
def test_split_must_sum_to_10000(registry: Contract, accounts: list[str], split: list[int]) -> None:
    with reverts("cairn_registry: split must sum to 10000"):
        send(registry.functions.register(DATASET, CID, "MIT", [], split), accounts[1])
    assert registry.functions.total_assets().call() == 0


def test_split_may_give_everything_to_one_share(registry: Contract, accounts: list[str]) -> None:
    asset = register(registry, accounts[1], split=[0, 0, 0, 10000])
    assert registry.functions.get_asset(asset).call()[4] == [0, 0, 0, 10000]


def test_queries_about_missing_tokens_revert(registry: Contract, accounts: list[str]) -> None:
    register(registry, accounts[1])
    for token_id in (0, 2):
        for query in (
            registry.functions.ownerOf(token_id),
            registry.functions.getApproved(token_id),
            registry.functions.tokenURI(token_id),
            registry.functions.get_asset(token_id),
        ):
            with reverts("cairn_registry: invalid token id"):
                query.call()
    with reverts("cairn_registry: invalid owner"):
        registry.functions.balanceOf(ZERO).call()


# ------------------------------------------------------------------------------ metadata


def test_owner_and_operator_update_metadata(registry: Contract, accounts: list[str]) -> None:
    asset = register(registry, accounts[1])
    receipt = send(registry.functions.set_metadata(asset, OTHER_CID), accounts[1])
    (event,) = registry.events.MetadataUpdated().process_receipt(receipt, errors=DISCARD)
    assert event.args == {"asset_id": asset, "metadata_cid": OTHER_CID}
    assert registry.functions.tokenURI(asset).call() == "ipfs://" + OTHER_CID

    send(registry.functions.setApprovalForAll(accounts[2], True), accounts[1])
    send(registry.functions.set_metadata(asset, CID), accounts[2])
    assert registry.functions.get_asset(asset).call()[1] == CID


def test_others_cannot_update_metadata(registry: Contract, accounts: list[str]) -> None:
    asset = register(registry, accounts[1])
    send(registry.functions.approve(accounts[2], asset), accounts[1])
    send(registry.functions.set_curator(asset, accounts[3], True), accounts[1])
    for caller in (accounts[2], accounts[3], accounts[4]):  # approved, curator, stranger
        with reverts("cairn_registry: caller is not owner or approved for all"):
            send(registry.functions.set_metadata(asset, OTHER_CID), caller)
    with reverts("cairn_registry: empty metadata cid"):
        send(registry.functions.set_metadata(asset, ""), accounts[1])
    with reverts("cairn_registry: invalid token id"):
        send(registry.functions.set_metadata(9, OTHER_CID), accounts[1])
    assert registry.functions.tokenURI(asset).call() == "ipfs://" + CID


# ------------------------------------------------------------------------------ transfers


def test_owner_transfers(registry: Contract, accounts: list[str]) -> None:
    asset = register(registry, accounts[1])
    receipt = send(registry.functions.transferFrom(accounts[1], accounts[2], asset), accounts[1])
    (event,) = registry.events.Transfer().process_receipt(receipt, errors=DISCARD)
    assert event.args == {"sender": accounts[1], "receiver": accounts[2], "token_id": asset}
    assert registry.functions.ownerOf(asset).call() == accounts[2]
    assert registry.functions.balanceOf(accounts[1]).call() == 0
    assert registry.functions.balanceOf(accounts[2]).call() == 1


def test_stranger_cannot_transfer(registry: Contract, accounts: list[str]) -> None:
    asset = register(registry, accounts[1])
    with reverts("cairn_registry: caller is not token owner or approved"):
        send(registry.functions.transferFrom(accounts[1], accounts[3], asset), accounts[3])
    assert registry.functions.ownerOf(asset).call() == accounts[1]
    assert registry.functions.balanceOf(accounts[3]).call() == 0


def test_transfer_from_wrong_owner_or_to_zero_reverts(
    registry: Contract, accounts: list[str]
) -> None:
    asset = register(registry, accounts[1])
    with reverts("cairn_registry: transfer from incorrect owner"):
        send(registry.functions.transferFrom(accounts[2], accounts[3], asset), accounts[1])
    with reverts("cairn_registry: transfer to the zero address"):
        send(registry.functions.transferFrom(accounts[1], ZERO, asset), accounts[1])
    with reverts("cairn_registry: invalid token id"):
        send(registry.functions.transferFrom(accounts[1], accounts[2], 5), accounts[1])
    assert registry.functions.ownerOf(asset).call() == accounts[1]
    assert registry.functions.balanceOf(accounts[1]).call() == 1


def test_approved_account_transfers_once(registry: Contract, accounts: list[str]) -> None:
    asset = register(registry, accounts[1])
    receipt = send(registry.functions.approve(accounts[2], asset), accounts[1])
    (event,) = registry.events.Approval().process_receipt(receipt, errors=DISCARD)
    assert event.args == {"owner": accounts[1], "approved": accounts[2], "token_id": asset}
    assert registry.functions.getApproved(asset).call() == accounts[2]

    send(registry.functions.transferFrom(accounts[1], accounts[3], asset), accounts[2])
    assert registry.functions.ownerOf(asset).call() == accounts[3]
    assert registry.functions.getApproved(asset).call() == ZERO  # cleared by the transfer
    with reverts("cairn_registry: caller is not token owner or approved"):
        send(registry.functions.transferFrom(accounts[3], accounts[2], asset), accounts[2])
    assert registry.functions.ownerOf(asset).call() == accounts[3]


def test_approve_rules(registry: Contract, accounts: list[str]) -> None:
    asset = register(registry, accounts[1])
    with reverts("cairn_registry: approval to current owner"):
        send(registry.functions.approve(accounts[1], asset), accounts[1])
    with reverts("cairn_registry: caller is not token owner or approved for all"):
        send(registry.functions.approve(accounts[3], asset), accounts[3])
    assert registry.functions.getApproved(asset).call() == ZERO
    # an operator may approve for the owner; approving zero clears
    send(registry.functions.setApprovalForAll(accounts[2], True), accounts[1])
    send(registry.functions.approve(accounts[3], asset), accounts[2])
    assert registry.functions.getApproved(asset).call() == accounts[3]
    send(registry.functions.approve(ZERO, asset), accounts[1])
    assert registry.functions.getApproved(asset).call() == ZERO


def test_operator_transfers_until_revoked(registry: Contract, accounts: list[str]) -> None:
    first, second = register(registry, accounts[1]), register(registry, accounts[1])
    receipt = send(registry.functions.setApprovalForAll(accounts[2], True), accounts[1])
    (event,) = registry.events.ApprovalForAll().process_receipt(receipt, errors=DISCARD)
    assert event.args == {"owner": accounts[1], "operator": accounts[2], "approved": True}
    assert registry.functions.isApprovedForAll(accounts[1], accounts[2]).call()

    send(registry.functions.transferFrom(accounts[1], accounts[3], first), accounts[2])
    assert registry.functions.ownerOf(first).call() == accounts[3]
    send(registry.functions.setApprovalForAll(accounts[2], False), accounts[1])
    with reverts("cairn_registry: caller is not token owner or approved"):
        send(registry.functions.transferFrom(accounts[1], accounts[3], second), accounts[2])
    assert registry.functions.ownerOf(second).call() == accounts[1]


def test_approval_for_all_to_self_reverts(registry: Contract, accounts: list[str]) -> None:
    with reverts("cairn_registry: approve to caller"):
        send(registry.functions.setApprovalForAll(accounts[1], True), accounts[1])


def test_safe_transfer_to_account_and_receiver(
    w3: Web3, registry: Contract, accounts: list[str]
) -> None:
    first, second = register(registry, accounts[1]), register(registry, accounts[1])
    send(
        registry.get_function_by_signature(SAFE_TRANSFER)(accounts[1], accounts[2], first),
        accounts[1],
    )
    assert registry.functions.ownerOf(first).call() == accounts[2]

    receiver = deploy_source(w3, RECEIVER, accounts[0])
    send(registry.functions.setApprovalForAll(accounts[3], True), accounts[1])
    safe = registry.get_function_by_signature(SAFE_TRANSFER_DATA)
    send(safe(accounts[1], receiver.address, second, b"hello"), accounts[3])
    assert registry.functions.ownerOf(second).call() == receiver.address
    assert receiver.functions.last_operator().call() == accounts[3]
    assert receiver.functions.last_owner().call() == accounts[1]
    assert receiver.functions.last_token_id().call() == second
    assert receiver.functions.last_data().call() == b"hello"


@pytest.mark.parametrize("source", [NOT_A_RECEIVER, WRONG_RECEIVER])
def test_safe_transfer_to_non_receiver_reverts(
    w3: Web3, registry: Contract, accounts: list[str], source: str
) -> None:
    asset = register(registry, accounts[1])
    target = deploy_source(w3, source, accounts[0])
    send(registry.functions.approve(accounts[2], asset), accounts[1])
    for safe in (
        registry.get_function_by_signature(SAFE_TRANSFER)(accounts[1], target.address, asset),
        registry.get_function_by_signature(SAFE_TRANSFER_DATA)(
            accounts[1], target.address, asset, b"x"
        ),
    ):
        with reverts("cairn_registry: transfer to non-ERC721Receiver implementer"):
            send(safe, accounts[1])
    assert registry.functions.ownerOf(asset).call() == accounts[1]
    assert registry.functions.getApproved(asset).call() == accounts[2]  # not cleared
    assert registry.functions.balanceOf(target.address).call() == 0
    # a plain transferFrom does not ask the contract
    send(registry.functions.transferFrom(accounts[1], target.address, asset), accounts[1])
    assert registry.functions.ownerOf(asset).call() == target.address


# ------------------------------------------------------------------------------ curators


def test_owner_names_and_removes_curators(registry: Contract, accounts: list[str]) -> None:
    asset = register(registry, accounts[1])
    owner, curator = accounts[1], accounts[2]
    assert registry.functions.can_anchor(asset, owner).call()
    assert not registry.functions.can_anchor(asset, curator).call()

    receipt = send(registry.functions.set_curator(asset, curator, True), owner)
    (event,) = registry.events.CuratorSet().process_receipt(receipt, errors=DISCARD)
    assert event.args == {"asset_id": asset, "account": curator, "allowed": True}
    assert registry.functions.is_curator(asset, curator).call()
    assert registry.functions.can_anchor(asset, curator).call()
    assert not registry.functions.is_curator(asset, owner).call()

    send(registry.functions.set_curator(asset, curator, False), owner)
    assert not registry.functions.is_curator(asset, curator).call()
    assert not registry.functions.can_anchor(asset, curator).call()


def test_only_the_owner_sets_curators(registry: Contract, accounts: list[str]) -> None:
    asset = register(registry, accounts[1])
    send(registry.functions.set_curator(asset, accounts[2], True), accounts[1])
    send(registry.functions.setApprovalForAll(accounts[3], True), accounts[1])
    for caller in (accounts[2], accounts[3], accounts[4]):  # curator, operator, stranger
        with reverts("cairn_registry: caller is not the asset owner"):
            send(registry.functions.set_curator(asset, accounts[5], True), caller)
    with reverts("cairn_registry: curator is the zero address"):
        send(registry.functions.set_curator(asset, ZERO, True), accounts[1])
    with reverts("cairn_registry: invalid token id"):
        send(registry.functions.set_curator(2, accounts[5], True), accounts[1])
    assert not registry.functions.is_curator(asset, accounts[5]).call()
    assert not registry.functions.can_anchor(asset, accounts[3]).call()


def test_transfer_retires_curators(registry: Contract, accounts: list[str]) -> None:
    asset = register(registry, accounts[1])
    send(registry.functions.set_curator(asset, accounts[2], True), accounts[1])
    send(registry.functions.transferFrom(accounts[1], accounts[3], asset), accounts[1])
    assert not registry.functions.is_curator(asset, accounts[2]).call()
    assert not registry.functions.can_anchor(asset, accounts[2]).call()
    assert not registry.functions.can_anchor(asset, accounts[1]).call()
    assert registry.functions.can_anchor(asset, accounts[3]).call()
    # the new owner's own curators
    send(registry.functions.set_curator(asset, accounts[4], True), accounts[3])
    assert registry.functions.can_anchor(asset, accounts[4]).call()


def test_missing_asset_has_no_anchorers(registry: Contract, accounts: list[str]) -> None:
    assert not registry.functions.can_anchor(1, accounts[0]).call()
    assert not registry.functions.can_anchor(0, ZERO).call()
    assert not registry.functions.is_curator(1, accounts[0]).call()
