"""Typed wrappers for every Cairn contract call, over one `ChainClient` and `Deployment`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from eth_account.signers.local import LocalAccount
from hexbytes import HexBytes
from web3 import Web3
from web3.contract import Contract
from web3.logs import DISCARD
from web3.types import TxReceipt

from cairn.chain.client import ChainClient
from cairn.chain.deployment import Deployment
from cairn.core.errors import ChainError, InvalidInput
from cairn.core.policy import AssetKind, RevenueSplit


def checksum(address: str) -> str:
    """A checksummed address; anything that is not 20 bytes of hex is `InvalidInput`."""
    if not isinstance(address, str) or not Web3.is_address(address):
        raise InvalidInput(f"not an Ethereum address: {address!r}")
    return Web3.to_checksum_address(address)


def to_bytes32(value: str | bytes) -> bytes:
    """A 32-byte value from 0x-hex or bytes; anything else is `InvalidInput`."""
    try:
        data = HexBytes(value)
    except (ValueError, TypeError) as exc:
        raise InvalidInput(f"not 32 bytes of hex: {value!r}") from exc
    if len(data) != 32:
        raise InvalidInput(f"expected 32 bytes, got {len(data)}: {value!r}")
    return bytes(data)


class _Wrapper:
    name: str = ""

    def __init__(self, client: ChainClient, deployment: Deployment) -> None:
        self.client = client
        deployed = deployment.contracts[self.name]
        self.address = deployed.address
        self.contract: Contract = client.w3.eth.contract(address=deployed.address, abi=deployed.abi)  # type: ignore[call-overload]

    def _events(self, receipt: TxReceipt, event: str) -> list[dict[str, Any]]:
        handler = getattr(self.contract.events, event)()
        return [dict(log["args"]) for log in handler.process_receipt(receipt, errors=DISCARD)]


class Token(_Wrapper):
    """CairnToken: the ERC-20 payment token."""

    name = "CairnToken"

    def balance_of(self, account: str) -> int:
        """Token balance in the smallest unit."""
        return int(self.client.call(self.contract.functions.balanceOf(checksum(account))))

    def total_supply(self) -> int:
        """All tokens in existence."""
        return int(self.client.call(self.contract.functions.totalSupply()))

    def allowance(self, owner: str, spender: str) -> int:
        """What `spender` may still move from `owner`."""
        fn = self.contract.functions.allowance(checksum(owner), checksum(spender))
        return int(self.client.call(fn))

    def symbol(self) -> str:
        """The token's ticker."""
        return str(self.client.call(self.contract.functions.symbol()))

    def decimals(self) -> int:
        """Decimal places of one whole token."""
        return int(self.client.call(self.contract.functions.decimals()))

    def transfer(self, sender: LocalAccount, to: str, amount: int) -> TxReceipt:
        """Send `amount` from `sender` to `to`."""
        return self.client.transact(sender, self.contract.functions.transfer(checksum(to), amount))

    def approve(self, sender: LocalAccount, spender: str, amount: int) -> TxReceipt:
        """Let `spender` move up to `amount` of `sender`'s tokens."""
        fn = self.contract.functions.approve(checksum(spender), amount)
        return self.client.transact(sender, fn)

    def mint(self, minter: LocalAccount, to: str, amount: int) -> TxReceipt:
        """Create `amount` new tokens for `to` (minters only)."""
        return self.client.transact(minter, self.contract.functions.mint(checksum(to), amount))

    def is_minter(self, account: str) -> bool:
        """Whether `account` may mint."""
        return bool(self.client.call(self.contract.functions.is_minter(checksum(account))))

    def transfer_from(self, spender: LocalAccount, owner: str, to: str, amount: int) -> TxReceipt:
        """Move `amount` of `owner`'s tokens to `to` under `spender`'s allowance."""
        fn = self.contract.functions.transferFrom(checksum(owner), checksum(to), amount)
        return self.client.transact(spender, fn)

    def set_minter(self, owner: LocalAccount, account: str, allowed: bool) -> TxReceipt:
        """Grant or revoke the minter role (token owner only)."""
        fn = self.contract.functions.set_minter(checksum(account), allowed)
        return self.client.transact(owner, fn)

    def owner(self) -> str:
        """The token's owner, who names minters."""
        return str(self.client.call(self.contract.functions.owner()))

    def transfer_ownership(self, owner: LocalAccount, new_owner: str) -> TxReceipt:
        """Hand the token's ownership to `new_owner`."""
        fn = self.contract.functions.transfer_ownership(checksum(new_owner))
        return self.client.transact(owner, fn)


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


class Registry(_Wrapper):
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
        events = self._events(receipt, "AssetRegistered")
        if not events:
            raise ChainError("register succeeded but emitted no AssetRegistered event")
        return int(events[0]["asset_id"]), receipt

    def get(self, asset_id: int) -> OnChainAsset:
        """The asset's on-chain record; an unknown id is a `ChainError`."""
        raw = self.client.call(self.contract.functions.get_asset(asset_id))
        owner = self.owner_of(asset_id)
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


class Ledger(_Wrapper):
    """ContributionLedger: Merkle roots of accepted contribution batches per asset."""

    name = "ContributionLedger"

    def anchor(
        self, curator: LocalAccount, asset_id: int, root: str | bytes, count: int, batch_cid: str
    ) -> tuple[int, TxReceipt]:
        """Anchor a batch root for the asset; returns the batch index and the receipt."""
        fn = self.contract.functions.anchor(asset_id, to_bytes32(root), count, batch_cid)
        receipt = self.client.transact(curator, fn)
        events = self._events(receipt, "Anchored")
        return int(events[0]["batch_index"]), receipt

    def verify(self, asset_id: int, root: str | bytes, leaf: str | bytes, proof: list[str]) -> bool:
        """Whether `leaf` is in the anchored batch with `root`, by `proof`."""
        fn = self.contract.functions.verify(
            asset_id, to_bytes32(root), to_bytes32(leaf), [to_bytes32(p) for p in proof]
        )
        return bool(self.client.call(fn))

    def batch_count(self, asset_id: int) -> int:
        """Batches anchored for the asset."""
        return int(self.client.call(self.contract.functions.batch_count(asset_id)))

    def total_contributions(self, asset_id: int) -> int:
        """Records anchored for the asset over all batches."""
        return int(self.client.call(self.contract.functions.total_contributions(asset_id)))

    def batch_of(self, asset_id: int, root: str | bytes) -> tuple[int, int, int]:
        """(batch index, record count, anchored-at timestamp) of an anchored root."""
        raw = self.client.call(self.contract.functions.batch_of(asset_id, to_bytes32(root)))
        index, count, anchored_at = raw
        return int(index), int(count), int(anchored_at)

    def is_anchored(self, asset_id: int, root: str | bytes) -> bool:
        """Whether `root` is anchored for the asset."""
        return bool(
            self.client.call(self.contract.functions.is_anchored(asset_id, to_bytes32(root)))
        )


class Distributor(_Wrapper):
    """RevenueDistributor: funded Merkle distributions per epoch, claimed with proofs."""

    name = "RevenueDistributor"

    def fund_epoch(
        self, funder: LocalAccount, token: Token, root: str | bytes, amount: int, tree_cid: str
    ) -> tuple[int, TxReceipt]:
        """Approve and fund a new epoch; returns the epoch number and the receipt."""
        if token.allowance(funder.address, self.address) < amount:
            token.approve(funder, self.address, amount)
        fn = self.contract.functions.fund_epoch(to_bytes32(root), amount, tree_cid)
        receipt = self.client.transact(funder, fn)
        return int(self._events(receipt, "EpochFunded")[0]["epoch"]), receipt

    def claim(
        self, sender: LocalAccount, epoch: int, account: str, amount: int, proof: list[str]
    ) -> TxReceipt:
        """Pay `account` its `amount` for `epoch` (anyone may send the claim)."""
        fn = self.contract.functions.claim(
            epoch, checksum(account), amount, [to_bytes32(p) for p in proof]
        )
        return self.client.transact(sender, fn)

    def is_claimed(self, epoch: int, account: str) -> bool:
        """Whether `account` already claimed `epoch`."""
        return bool(self.client.call(self.contract.functions.is_claimed(epoch, checksum(account))))

    def epoch_count(self) -> int:
        """Epochs funded so far."""
        return int(self.client.call(self.contract.functions.epoch_count()))

    def epoch_root(self, epoch: int) -> str:
        """The Merkle root an epoch pays out by."""
        return HexBytes(self.client.call(self.contract.functions.epoch_root(epoch))).to_0x_hex()

    def epoch_funded(self, epoch: int) -> int:
        """Tokens the epoch was funded with."""
        return int(self.client.call(self.contract.functions.epoch_funded(epoch)))

    def epoch_claimed(self, epoch: int) -> int:
        """Tokens claimed from the epoch so far."""
        return int(self.client.call(self.contract.functions.epoch_claimed(epoch)))


class Chain:
    """The deployed contracts of one node, each behind its typed wrapper."""

    def __init__(self, client: ChainClient, deployment: Deployment) -> None:
        self.client = client
        self.deployment = deployment
        self.token = Token(client, deployment)
        self.registry = Registry(client, deployment)
        self.ledger = Ledger(client, deployment)
        self.distributor = Distributor(client, deployment)
        # escrow.py, licences.py and bounty.py build on this module's wrapper base
        from cairn.chain.bounty import Bounties
        from cairn.chain.escrow import Escrow
        from cairn.chain.licences import Licences

        self.escrow = Escrow(client, deployment)
        self.licences = Licences(client, deployment)
        self.bounties = Bounties(client, deployment)

    @property
    def addresses(self) -> set[str]:
        """Checksummed addresses of every Cairn contract."""
        return {c.address for c in self.deployment.contracts.values()}

    def decode_events(self, receipt: TxReceipt) -> list[dict[str, Any]]:
        """Every Cairn event in a receipt as {contract, event, args}, in log order."""
        by_address = {
            w.address.lower(): w
            for w in (
                self.token,
                self.registry,
                self.ledger,
                self.distributor,
                self.escrow,
                self.licences,
                self.bounties,
            )
        }
        decoded: list[tuple[int, dict[str, Any]]] = []
        for log in receipt["logs"]:
            wrapper = by_address.get(str(log["address"]).lower())
            if wrapper is None:
                continue
            for event in wrapper.contract.all_events():
                try:
                    parsed = event.process_log(log)
                except Exception:  # not this event's signature
                    continue
                args = {k: _jsonable(v) for k, v in parsed["args"].items()}
                decoded.append(
                    (
                        int(log["logIndex"]),
                        {"contract": wrapper.name, "event": parsed["event"], "args": args},
                    )
                )
                break
        return [d for _, d in sorted(decoded, key=lambda item: item[0])]


def _jsonable(value: Any) -> Any:
    if isinstance(value, bytes | bytearray):
        return HexBytes(value).to_0x_hex()
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) >= 2**53:
        return str(value)
    return value
