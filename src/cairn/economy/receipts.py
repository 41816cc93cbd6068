"""Usage receipts: what the gateway signs for every charged request, anchored in batches.

A receipt names the gateway, the chain, the paying account and its API key, the model, the
endpoint, the tokens used, the price and the amount charged. The gateway signs it as EIP-712
typed data (receipts made before: EIP-191 over their canonical JSON), and the API publishes
exactly what was signed beside the signature (`cairn.economy.receipt_signing`); its leaf is the
SHA-256 of its canonical JSON with the signature.
Receipts not yet anchored are stored as one batch document by CID, and the batch's Merkle root
is anchored on ContributionLedger under the gateway's own asset: anyone holding a receipt can
check it was counted, with its proof against the root on chain. Only anchored receipts are
settled, so nothing earns money before it is anchored.
"""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass
from typing import Any

from eth_account.signers.local import LocalAccount
from sqlalchemy import func, select

from cairn.assets.content import ContentRefs, Scope
from cairn.chain.contracts import Chain
from cairn.core.errors import NotFound
from cairn.core.merkle import StandardMerkleTree
from cairn.db.engine import Database
from cairn.economy.models import ReceiptBatchRow, ReceiptRow
from cairn.economy.receipt_signing import (
    SCHEMA,
    TYPED_SCHEMA,
    ReceiptTypedData,
    UsageReceipt,
    receipt_from_json,
    receipt_leaf,
    sign_receipt,
    signed_payload,
    verify_receipt,
)
from cairn.store.base import BlobStore
from cairn.verify.transcript import TRANSCRIPT_SCHEMA, transcript_ids

__all__ = [  # the receipt and its signing live in receipt_signing; callers import them here too
    "SCHEMA",
    "TYPED_SCHEMA",
    "AnchoredReceipts",
    "BatchRef",
    "ListedReceipt",
    "ReceiptBook",
    "ReceiptProof",
    "ServedTokens",
    "StoredReceipt",
    "Transcripts",
    "UsageReceipt",
    "receipt_from_json",
    "receipt_leaf",
    "sign_receipt",
    "verify_receipt",
]
BATCH_SCHEMA = "cairn.usage-batch/v1"
MAX_BATCH = 10_000  # receipts per anchored batch


@dataclass(frozen=True)
class ServedTokens:
    """What a committed generation read and wrote, and its encoded commitment."""

    prompt: tuple[int, ...]
    completion: tuple[int, ...]
    commitment: str


class Transcripts:
    """The token ids behind committed receipts, kept for validators: one document per call,
    salted (its CID, public in the receipt, does not let anyone test a guessed prompt) and
    readable by the paying account only."""

    def __init__(self, store: BlobStore, refs: ContentRefs) -> None:
        self.store, self.refs = store, refs

    def keep(self, account: str, served: ServedTokens) -> str:
        """Store a call's transcript for `account`; its CID."""
        doc = {
            "schema": TRANSCRIPT_SCHEMA,
            "salt": secrets.token_hex(16),
            "prompt": list(served.prompt),
            "completion": list(served.completion),
        }
        cid = self.store.put_json(doc)
        self.refs.add(cid, Scope.ACCOUNT, account, account=account)
        return cid

    def get(self, cid: str) -> tuple[tuple[int, ...], tuple[int, ...]]:
        """A transcript's prompt and completion token ids."""
        return transcript_ids(self.document(cid))

    def document(self, cid: str) -> dict[str, Any]:
        """A transcript's stored document (schema, salt, prompt, completion), checked."""
        doc = self.store.get_json(cid)
        transcript_ids(doc)
        return dict(doc)


@dataclass(frozen=True, kw_only=True)
class ListedReceipt(UsageReceipt):
    """A stored receipt's signed fields, whether its batch is anchored yet, and what the node's
    replay of it found (None: not replayed, or nothing to replay)."""

    anchored: bool
    replayed: bool | None = None


@dataclass(frozen=True)
class BatchRef:
    """The anchored batch a receipt belongs to: its Merkle root and its document's CID."""

    root: str
    cid: str


@dataclass(frozen=True)
class StoredReceipt:
    """A stored receipt with the gateway's signature, its leaf and its anchoring."""

    receipt: dict[str, Any]  # the signed fields, with their schema
    # Exactly what the gateway signed, so any wallet library checks the signature without
    # Cairn's code: "eip712" (v2) and `typed_data`, the whole EIP-712 document (types with
    # EIP712Domain, domain, primaryType, message) for `eth_signTypedData_v4`; or "eip191" (v1)
    # and `signed`, the text it signed with personal_sign (the UTF-8 bytes of the fields with
    # the schema's name, sorted and compact).
    signing: str
    signed: str | None
    typed_data: ReceiptTypedData | None
    signature: str
    leaf: str
    batch: BatchRef | None  # None until anchored
    epoch_id: int | None  # the epoch that settled it
    # the node's own replay of it (ok, relative, reason, checked_at) when its batch's sample drew
    # it; None otherwise
    check: dict[str, Any] | None


@dataclass(frozen=True)
class ReceiptProof(StoredReceipt):
    """A receipt's inclusion proof against its batch's root on ContributionLedger."""

    asset_id: int  # the gateway's asset the batch is anchored under
    root: str
    leaf_encoding: tuple[str, ...]
    tree_leaf: str  # the receipt's leaf hashed again, as the tree's leaf
    proof: tuple[str, ...]
    ledger: str  # ContributionLedger's address
    verified_on_chain: bool


@dataclass(frozen=True)
class AnchoredReceipts:
    """One batch of receipts anchored on ContributionLedger."""

    root: str
    count: int
    cid: str
    tx_hash: str


class ReceiptBook:
    """Store signed receipts, anchor them in batches, prove any one of them."""

    def __init__(self, db: Database, store: BlobStore, chain: Chain, refs: ContentRefs) -> None:
        self.db = db
        self.refs = refs
        self.store = store
        self.chain = chain

    def get(self, receipt_id: str) -> StoredReceipt:
        """A stored receipt with its signature, leaf and anchoring state."""
        with self.db.session() as session:
            row = session.get(ReceiptRow, receipt_id)
            if row is None:
                raise NotFound(f"no usage receipt {receipt_id!r}")
            batch = session.get(ReceiptBatchRow, row.batch_id) if row.batch_id else None
        receipt = receipt_from_json(row.body)
        signed, typed_data = signed_payload(receipt)
        return StoredReceipt(
            receipt=receipt.to_dict(),
            signing="eip712" if receipt.typed else "eip191",
            signed=signed,
            typed_data=typed_data,
            signature=row.signature,
            leaf=row.leaf,
            batch=None if batch is None else BatchRef(batch.root, batch.cid),
            epoch_id=row.epoch_id,
            check=row.check,
        )

    def of_account(self, account: str, limit: int = 100) -> list[ListedReceipt]:
        """An account's newest receipts."""
        with self.db.session() as session:
            rows = session.scalars(
                select(ReceiptRow)
                .where(ReceiptRow.account == account)
                .order_by(ReceiptRow.created_at.desc())
                .limit(limit)
            ).all()
        return [
            ListedReceipt(
                **r.body,
                anchored=r.batch_id is not None,
                replayed=None if r.check is None else r.check.get("ok"),
            )
            for r in rows
        ]

    def has_unchecked(self) -> bool:
        """Whether an anchored batch waits for the node's sampled replay (one indexed read)."""
        with self.db.session() as session:
            found = session.scalar(
                select(ReceiptBatchRow.id).where(ReceiptBatchRow.checked_at.is_(None)).limit(1)
            )
        return found is not None

    def unchecked_batch(self) -> tuple[int, str, list[str]] | None:
        """The oldest anchored batch not sampled yet: its id, its root, and its receipts that
        carry a commitment."""
        with self.db.session() as session:
            batch = session.scalars(
                select(ReceiptBatchRow)
                .where(ReceiptBatchRow.checked_at.is_(None))
                .order_by(ReceiptBatchRow.id)
                .limit(1)
            ).first()
            if batch is None:
                return None
            rows = session.scalars(select(ReceiptRow).where(ReceiptRow.batch_id == batch.id))
            committed = sorted(r.receipt_id for r in rows if r.body.get("commitment"))
            return batch.id, batch.root, committed

    def record_checks(self, batch_id: int, checks: dict[str, dict[str, Any]]) -> None:
        """Store the node's replays of a batch's sampled receipts; the batch is checked."""
        now = time.time()
        with self.db.session() as session:
            for receipt_id, check in checks.items():
                row = session.get(ReceiptRow, receipt_id)
                if row is not None:
                    row.check = {**check, "checked_at": now}
            batch = session.get(ReceiptBatchRow, batch_id)
            if batch is not None:
                batch.checked_at = now

    def pending(self) -> tuple[int, float | None]:
        """How many receipts wait for anchoring, and when the oldest was made."""
        with self.db.session() as session:
            count, oldest = session.execute(
                select(func.count(), func.min(ReceiptRow.created_at)).where(
                    ReceiptRow.batch_id.is_(None)
                )
            ).one()
        return int(count), oldest

    def anchor(self, gateway: LocalAccount, asset_id: int) -> list[AnchoredReceipts]:
        """Anchor every receipt not yet anchored, up to MAX_BATCH per batch."""
        batches: list[AnchoredReceipts] = []
        while True:
            with self.db.session() as session:
                rows = session.scalars(
                    select(ReceiptRow)
                    .where(ReceiptRow.batch_id.is_(None))
                    .order_by(ReceiptRow.created_at, ReceiptRow.receipt_id)
                    .limit(MAX_BATCH)
                ).all()
            if not rows:
                return batches
            doc = {
                "schema": BATCH_SCHEMA,
                "gateway_asset": asset_id,
                "receipts": [{**r.body, "signature": r.signature, "leaf": r.leaf} for r in rows],
            }
            cid = self.store.put_json(doc)
            self.refs.add(cid, Scope.PUBLIC)  # receipts are what settlements are audited from
            tree = StandardMerkleTree.of([[r.leaf] for r in rows], ["bytes32"])
            ledger = self.chain.ledger
            if ledger.is_anchored(asset_id, tree.root):  # anchored before a crash: record it
                tx_hash = "anchored before a restart"
            else:
                _, receipt = ledger.anchor(gateway, asset_id, tree.root, len(rows), cid)
                tx_hash = receipt["transactionHash"].to_0x_hex()
            with self.db.session() as session:
                batch = ReceiptBatchRow(
                    asset_id=asset_id,
                    root=tree.root,
                    count=len(rows),
                    cid=cid,
                    tx_hash=tx_hash[:66],
                    anchored_at=time.time(),
                )
                session.add(batch)
                session.flush()
                for row in rows:
                    stored = session.get(ReceiptRow, row.receipt_id)
                    assert stored is not None
                    stored.batch_id = batch.id
            batches.append(AnchoredReceipts(tree.root, len(rows), cid, tx_hash[:66]))

    def proof(self, receipt_id: str) -> ReceiptProof:
        """A receipt's inclusion proof against its batch's anchored root, checked on chain."""
        found = self.get(receipt_id)
        if found.batch is None:
            raise NotFound(f"usage receipt {receipt_id} is not anchored yet")
        doc = self.store.get_json(found.batch.cid)
        tree = StandardMerkleTree.of([[r["leaf"]] for r in doc["receipts"]], ["bytes32"])
        proof = tree.get_proof([found.leaf])
        node = tree.leaf_hash([found.leaf])  # the tree's leaf: the receipt leaf hashed again
        asset_id = int(doc["gateway_asset"])
        return ReceiptProof(
            receipt=found.receipt,
            signing=found.signing,
            signed=found.signed,
            typed_data=found.typed_data,
            signature=found.signature,
            leaf=found.leaf,
            batch=found.batch,
            epoch_id=found.epoch_id,
            check=found.check,
            asset_id=asset_id,
            root=tree.root,
            leaf_encoding=("bytes32",),
            tree_leaf=node,
            proof=tuple(proof),
            ledger=self.chain.ledger.address,
            verified_on_chain=self.chain.ledger.verify(asset_id, tree.root, node, proof),
        )
