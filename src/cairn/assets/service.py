"""The assets domain: register, transfer and look up datasets, models and apps.

AssetRegistry on chain is the truth; the index is a mirror built from its events, so assets
registered straight from a wallet show up exactly like those registered through the node.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

from eth_account.signers.local import LocalAccount
from sqlalchemy import delete, or_, select

from cairn.assets.content import ContentRefs, Scope
from cairn.assets.metadata import asset_metadata, validate_parents
from cairn.assets.models import AssetRow
from cairn.chain.contracts import Chain
from cairn.chain.cursors import advance, start_block
from cairn.chain.models import SyncCursor
from cairn.core.errors import CairnError, Forbidden, InvalidInput, NotFound
from cairn.core.evm import checksum
from cairn.core.policy import AssetKind, RevenueSplit
from cairn.db.engine import Database
from cairn.store.base import BlobStore

CURSOR = "assets"
LOG_CHUNK = 5_000  # blocks per eth_getLogs call; public RPC nodes cap ranges


@dataclass(frozen=True)
class Asset:
    """An asset as the node shows it: on-chain facts plus its metadata's name and description."""

    asset_id: int
    kind: str
    owner: str
    name: str
    description: str
    metadata_cid: str
    licence: str
    parents: list[int]
    split: dict[str, int]
    registered_at: int
    block_number: int
    tx_hash: str

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready fields."""
        return asdict(self)


@dataclass(frozen=True)
class Transfer:
    """An asset just given to someone else, and the transaction that gave it."""

    asset: Asset
    tx_hash: str


def _row_to_asset(row: AssetRow) -> Asset:
    return Asset(
        asset_id=row.asset_id,
        kind=row.kind,
        owner=row.owner,
        name=row.name,
        description=row.description,
        metadata_cid=row.metadata_cid,
        licence=row.licence,
        parents=list(row.parents),
        split=dict(row.split),
        registered_at=row.registered_at,
        block_number=row.block_number,
        tx_hash=row.tx_hash,
    )


class AssetService:
    """Register, transfer, list and show assets; keeps the index in step with the chain."""

    def __init__(self, chain: Chain, store: BlobStore, db: Database, refs: ContentRefs) -> None:
        self.chain = chain
        self.store = store
        self.db = db
        self.refs = refs  # what each stored blob belongs to (who may read it)
        self._sync_lock = threading.Lock()
        # The newest block the index has applied, once this service has read or moved its
        # cursor: a sync while the chain's head is not past it has nothing to read.
        self._synced: int | None = None
        # Told of each asset indexed (registered or with new metadata), with its metadata:
        # the node claims the blobs it names (`ContentAccess.claim_asset`).
        self.on_indexed: Callable[[Asset, dict[str, Any]], None] | None = None

    @property
    def registry_address(self) -> str:
        """AssetRegistry's address: each asset is its ERC-721 token, the token id its id."""
        return self.chain.registry.address

    def register(
        self,
        owner: LocalAccount,
        *,
        kind: str | int,
        name: str,
        licence: str,
        description: str = "",
        parents: list[int] | None = None,
        split: RevenueSplit | None = None,
        extra: dict[str, Any] | None = None,
    ) -> Asset:
        """Store the asset's metadata, register it on chain for `owner`, and index it."""
        asset_kind = AssetKind.parse(kind)
        lineage = validate_parents(
            parents or [], self.chain.registry.total_assets() if parents else None
        )
        policy = split or RevenueSplit.owner_only()
        metadata = asset_metadata(
            kind=asset_kind,
            name=name,
            licence=licence,
            description=description,
            parents=lineage,
            split=policy,
            created_by=owner.address,
            extra=extra,
        )
        cid = self.store.put_json(metadata)
        self.refs.add(cid, Scope.PUBLIC)
        asset_id, _ = self.chain.registry.register(
            owner, asset_kind, cid, metadata["licence"], lineage, policy
        )
        self.sync()  # the transaction moved the head: this reads its block
        return self._indexed(asset_id) or self.get(asset_id)

    def transfer(self, owner: LocalAccount, asset_id: int, to: str) -> Transfer:
        """Give asset `asset_id` from `owner` to `to`; returns the asset and the transfer's tx."""
        recipient = checksum(to)
        current = self.get(asset_id).owner
        if current.lower() != owner.address.lower():
            raise Forbidden(f"asset {asset_id} is owned by {current}, not by {owner.address}")
        if recipient.lower() == current.lower():
            raise InvalidInput(f"asset {asset_id} already belongs to {recipient}")
        receipt = self.chain.registry.transfer(owner, recipient, asset_id)
        self.sync()  # the transaction moved the head: this reads its block
        return Transfer(self.get(asset_id), receipt["transactionHash"].to_0x_hex())

    def get(self, asset_id: int) -> Asset:
        """One asset by id; unknown ids are `NotFound`."""
        self.sync()
        asset = self._indexed(asset_id)
        if asset is None:
            raise NotFound(f"no asset with id {asset_id}")
        return asset

    def _indexed(self, asset_id: int) -> Asset | None:
        """The asset as the index has it now (no sync first), or None."""
        with self.db.session() as session:
            row = session.get(AssetRow, asset_id)
            return None if row is None else _row_to_asset(row)

    def list(
        self,
        *,
        kind: str | None = None,
        owner: str | None = None,
        query: str | None = None,
        limit: int = 100,
        offset: int = 0,
    ) -> list[Asset]:
        """Assets, newest first, filtered by kind, owner and a text query on name/description."""
        self.sync()
        stmt = select(AssetRow).order_by(AssetRow.asset_id.desc())
        if kind:
            stmt = stmt.where(AssetRow.kind == AssetKind.parse(kind).label)
        if owner:
            stmt = stmt.where(AssetRow.owner == checksum(owner))
        if query:
            pattern = f"%{query.strip()}%"
            stmt = stmt.where(
                or_(AssetRow.name.ilike(pattern), AssetRow.description.ilike(pattern))
            )
        if not 1 <= limit <= 1000 or offset < 0:
            raise InvalidInput("limit must be 1-1000 and offset non-negative")
        with self.db.session() as session:
            return [_row_to_asset(r) for r in session.scalars(stmt.limit(limit).offset(offset))]

    # -- the index ------------------------------------------------------------------------

    def sync(self) -> int:
        """Apply AssetRegistry events not yet indexed; returns how many were applied.

        One request when the chain's head has not moved past the newest block applied (each
        transaction moves it, so whoever sent one reads its block here). The cursor moves with
        the rows of its blocks, in one database transaction per chunk: a crash leaves the index
        at a block it has wholly applied, and the next start reads on from there.
        """
        applied, indexed = self._apply_new_events()
        if self.on_indexed is not None:  # outside the lock: the hook reads assets itself
            for asset_id in dict.fromkeys(indexed):
                asset = self._indexed(asset_id)  # just applied: the index has it
                if asset is not None:
                    self.on_indexed(asset, self.metadata(asset.metadata_cid))
        return applied

    def _apply_new_events(self) -> tuple[int, tuple[int, ...]]:
        """(events applied, ids of the assets registered or given new metadata)."""
        with self._sync_lock:
            client = self.chain.client
            head = client.block_number()
            if self._synced is not None and head <= self._synced:
                return 0, ()
            with self.db.session() as session:
                start = start_block(session, CURSOR, self.chain.deployment.block)
            if start > head:
                self._synced = start - 1
                return 0, ()
            applied = 0
            indexed: list[int] = []
            events = self.chain.registry.contract.events
            kinds = (events.AssetRegistered, events.Transfer, events.MetadataUpdated)
            for lo in range(start, head + 1, LOG_CHUNK):
                hi = min(lo + LOG_CHUNK - 1, head)
                logs = client.contract_logs(kinds, lo, hi)  # in chain order
                block_hash = client.block_hash(hi)
                with self.db.session() as session:
                    for log in logs:
                        applied += self._apply(session, log)
                        if log["event"] != "Transfer":
                            indexed.append(int(log["args"]["asset_id"]))
                        session.flush()
                    advance(session, CURSOR, hi, block_hash)
                self._synced = hi  # committed with the rows of its blocks
            return applied, tuple(indexed)

    def reset_index(self) -> None:
        """Forget every indexed asset (the chain behind the index was replaced)."""
        with self._sync_lock, self.db.session() as session:
            session.execute(delete(AssetRow))
            session.execute(delete(SyncCursor).where(SyncCursor.name == CURSOR))
            self._synced = None

    def _apply(self, session: Any, log: Any) -> int:
        args = log["args"]
        if log["event"] == "Transfer":
            # ERC-721 Transfer(from, to, tokenId): read by position, whatever the names.
            _, receiver, token = list(args.values())
            row = session.get(AssetRow, int(token))
            if row is None:  # a mint's Transfer comes before its AssetRegistered
                return 0
            row.owner = checksum(receiver)
            return 1
        asset_id = int(args["asset_id"])
        if log["event"] == "AssetRegistered":
            # The owner it was registered to: a later Transfer's log, applied after this one,
            # moves it on (as it did when the owner was read from the chain).
            on_chain = self.chain.registry.get(asset_id, owner=args["owner"])
            name, description = self._read_metadata(on_chain.metadata_cid)
            session.merge(
                AssetRow(
                    asset_id=asset_id,
                    kind=on_chain.kind.label,
                    owner=on_chain.owner,
                    name=name,
                    description=description,
                    metadata_cid=on_chain.metadata_cid,
                    licence=on_chain.licence,
                    parents=list(on_chain.parents),
                    split=on_chain.split.as_dict(),
                    registered_at=on_chain.registered_at,
                    block_number=int(log["blockNumber"]),
                    tx_hash=log["transactionHash"].to_0x_hex(),
                )
            )
            return 1
        row = session.get(AssetRow, asset_id)
        if row is None:
            return 0
        row.metadata_cid = args["metadata_cid"]
        row.name, row.description = self._read_metadata(row.metadata_cid)
        return 1

    def metadata(self, cid: str) -> dict[str, Any]:
        """An asset's metadata document ({} when this node's store does not hold it)."""
        try:
            doc = self.store.get_json(cid)
        except CairnError:  # registered from a wallet with metadata stored elsewhere
            return {}
        return doc if isinstance(doc, dict) else {}

    def _read_metadata(self, cid: str) -> tuple[str, str]:
        doc = self.metadata(cid)
        if not doc:
            return "", ""
        return str(doc.get("name", ""))[:200], str(doc.get("description", ""))
