"""Typed wrapper for AssetRegistry: ERC-721 assets with kind, metadata, licence, lineage and
revenue-split policy."""

from __future__ import annotations

from dataclasses import dataclass

from eth_account.signers.local import LocalAccount
from hexbytes import HexBytes
from web3.types import TxReceipt

from cairn.chain.wrapper import ContractWrapper
from cairn.core.errors import InvalidInput
from cairn.core.evm import checksum
from cairn.core.policy import AssetKind, RevenueSplit


@dataclass(frozen=True)
class OnChainAsset:
    """An asset as AssetRegistry stores it."""

    asset_id: int
    owner: str
    kind: AssetKind
    metadata_cid: str
    licence: str
    parents: tuple[int, ...]
    split: RevenueSplit
    registered_at: int


class Registry(ContractWrapper):
    """AssetRegistry: ERC-721 assets with kind, metadata, licence, lineage and split policy."""

    name = "AssetRegistry"

    def register(
        self,
        owner: LocalAccount,
        kind: AssetKind,
        metadata_cid: str,
        licence: str,
        parents: list[int],
        split: RevenueSplit,
    ) -> tuple[int, TxReceipt]:
        """Register a new asset owned by `owner`; returns its id and the receipt."""
        fn = self.contract.functions.register(
            int(kind), metadata_cid, licence, list(parents), list(split.as_tuple())
        )
        receipt = self.client.transact(owner, fn)
        return int(self.first_event(receipt, "AssetRegistered")["asset_id"]), receipt

    def get(self, asset_id: int, *, owner: str | None = None) -> OnChainAsset:
        """The asset's on-chain record; an unknown id is a `ChainError`.

        `owner`: the owner the caller already knows (an indexer, from the event it applies),
        which saves asking the chain for it.
        """
        raw = self.client.call(self.contract.functions.get_asset(asset_id))
        owner = checksum(owner) if owner is not None else self.owner_of(asset_id)
        kind, cid, licence, parents, split, registered_at = raw
        return OnChainAsset(
            asset_id=asset_id,
            owner=owner,
            kind=AssetKind(kind),
            metadata_cid=cid,
            licence=licence,
            parents=tuple(int(p) for p in parents),
            split=RevenueSplit(*(int(s) for s in split)),
            registered_at=int(registered_at),
        )

    def owner_of(self, asset_id: int) -> str:
        """Current owner of the asset."""
        return str(self.client.call(self.contract.functions.ownerOf(asset_id)))

    def total_assets(self) -> int:
        """How many assets have been registered."""
        return int(self.client.call(self.contract.functions.total_assets()))

    def transfer(self, owner: LocalAccount, to: str, asset_id: int) -> TxReceipt:
        """Transfer the asset from `owner` to `to` (ERC-721 safeTransferFrom)."""
        fn = self.contract.functions.safeTransferFrom(owner.address, checksum(to), asset_id)
        return self.client.transact(owner, fn)

    def set_curator(
        self, owner: LocalAccount, asset_id: int, account: str, allowed: bool
    ) -> TxReceipt:
        """Let (or stop) `account` anchor batches for the asset."""
        fn = self.contract.functions.set_curator(asset_id, checksum(account), allowed)
        return self.client.transact(owner, fn)

    def can_anchor(self, asset_id: int, account: str) -> bool:
        """Whether `account` is the asset's owner or one of its curators."""
        return bool(
            self.client.call(self.contract.functions.can_anchor(asset_id, checksum(account)))
        )

    def is_curator(self, asset_id: int, account: str) -> bool:
        """Whether the asset's current owner named `account` a curator."""
        fn = self.contract.functions.is_curator(asset_id, checksum(account))
        return bool(self.client.call(fn))

    def balance_of(self, owner: str) -> int:
        """How many assets `owner` holds."""
        return int(self.client.call(self.contract.functions.balanceOf(checksum(owner))))

    def approve(self, owner: LocalAccount, spender: str, asset_id: int) -> TxReceipt:
        """Let `spender` transfer this one asset."""
        fn = self.contract.functions.approve(checksum(spender), asset_id)
        return self.client.transact(owner, fn)

    def get_approved(self, asset_id: int) -> str:
        """The account approved for this asset (the zero address if none)."""
        return str(self.client.call(self.contract.functions.getApproved(asset_id)))

    def set_approval_for_all(self, owner: LocalAccount, operator: str, approved: bool) -> TxReceipt:
        """Let (or stop) `operator` manage all of `owner`'s assets."""
        fn = self.contract.functions.setApprovalForAll(checksum(operator), approved)
        return self.client.transact(owner, fn)

    def is_approved_for_all(self, owner: str, operator: str) -> bool:
        """Whether `operator` manages all of `owner`'s assets."""
        fn = self.contract.functions.isApprovedForAll(checksum(owner), checksum(operator))
        return bool(self.client.call(fn))

    def transfer_from(self, sender: LocalAccount, owner: str, to: str, asset_id: int) -> TxReceipt:
        """ERC-721 transferFrom, sent by the owner or an approved account."""
        fn = self.contract.functions.transferFrom(checksum(owner), checksum(to), asset_id)
        return self.client.transact(sender, fn)

    def supports_interface(self, interface_id: str | bytes) -> bool:
        """ERC-165: whether the registry implements the 4-byte interface id."""
        data = HexBytes(interface_id)
        if len(data) != 4:
            raise InvalidInput(f"an interface id is 4 bytes; got {interface_id!r}")
        return bool(self.client.call(self.contract.functions.supportsInterface(bytes(data))))

    def token_uri(self, asset_id: int) -> str:
        """`ipfs://<metadata CID>` of the asset."""
        return str(self.client.call(self.contract.functions.tokenURI(asset_id)))

    def set_metadata(self, owner: LocalAccount, asset_id: int, metadata_cid: str) -> TxReceipt:
        """Point the asset at new metadata (a new version)."""
        return self.client.transact(
            owner, self.contract.functions.set_metadata(asset_id, metadata_cid)
        )
