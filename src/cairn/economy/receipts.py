"""Usage receipts: what the gateway signs for every charged request, anchored in batches.

A receipt names the gateway, the chain, the paying account and its API key, the model, the
endpoint, the tokens used, the price and the amount charged. The gateway signs its canonical
JSON with EIP-191, as providers sign work reports; its leaf is the SHA-256 of the signed JSON.
Receipts not yet anchored are stored as one batch document by CID, and the batch's Merkle root
is anchored on ContributionLedger under the gateway's own asset: anyone holding a receipt can
check it was counted, with its proof against the root on chain. Only anchored receipts are
settled, so nothing earns money before it is anchored.
"""

from __future__ import annotations

import json
import secrets
import time
from dataclasses import asdict, dataclass
from typing import Any

from eth_account.signers.local import LocalAccount
from sqlalchemy import func, select

from cairn.assets.content import ContentRefs, Scope
from cairn.chain.contracts import Chain
from cairn.core.errors import InvalidInput, NotFound
from cairn.core.merkle import StandardMerkleTree
from cairn.db.engine import Database
from cairn.economy.models import ReceiptBatchRow, ReceiptRow
from cairn.identity.statements import check_signer, sign_statement, statement_leaf
from cairn.store.base import BlobStore
from cairn.verify.transcript import TRANSCRIPT_SCHEMA, transcript_ids

SCHEMA = "cairn.usage-receipt/v1"
BATCH_SCHEMA = "cairn.usage-batch/v1"
MAX_BATCH = 10_000  # receipts per anchored batch


@dataclass(frozen=True)
class UsageReceipt:
    """One charged request, as the gateway signs it."""

    receipt_id: str
    gateway: str  # the signing gateway's address
    chain_id: int
    account: str  # who paid
    key_id: str
    model: int  # the model asset
    endpoint: str  # chat.completions, completions, embeddings, classifications
    prompt_tokens: int
    completion_tokens: int
    price_per_1k: str  # smallest token units per 1,000 tokens, decimal
    amount: str  # charged, decimal
    created_at: int  # unix milliseconds
    price_per_call: str = "0"  # an app's price per call, decimal; "0" for per-token pricing
    # A generation's commitment to the model's hidden states (`cairn.verify.inference`) and the
    # CID of its transcript (the token ids, salted, readable by the paying account): what a
    # validator replays. Empty for a call that commits to nothing (embeddings, an upstream).
    commitment: str = ""
    transcript: str = ""

    def canonical(self) -> bytes:
        """The signed bytes: sorted-key compact JSON with the schema name (a per-call price, a
        commitment and a transcript only when there are, so older receipts still verify)."""
        body = {"schema": SCHEMA, **asdict(self)}
        for optional, absent in (("price_per_call", "0"), ("commitment", ""), ("transcript", "")):
            if body[optional] == absent:
                del body[optional]
        return json.dumps(body, sort_keys=True, separators=(",", ":")).encode()

    def to_dict(self) -> dict[str, Any]:
        """The receipt's fields."""
        return asdict(self)


def sign_receipt(receipt: UsageReceipt, gateway: LocalAccount) -> str:
    """The gateway's EIP-191 signature over the receipt, 0x-hex."""
    if gateway.address.lower() != receipt.gateway.lower():
        raise InvalidInput(f"receipt names gateway {receipt.gateway}, key is {gateway.address}")
    return sign_statement(gateway, receipt.canonical())


def verify_receipt(receipt: UsageReceipt, signature: str) -> None:
    """Raise `InvalidInput` unless the receipt's gateway signed it."""
    check_signer(receipt.canonical(), signature, receipt.gateway, "receipt")


def receipt_leaf(receipt: UsageReceipt, signature: str) -> str:
    """The anchored leaf: SHA-256 of the canonical JSON with the signature, 0x-hex."""
    return statement_leaf(receipt.canonical(), signature)


def receipt_from_json(data: dict[str, Any]) -> UsageReceipt:
    """A receipt from its fields (schema, signature and leaf ignored)."""
    fields = {k: v for k, v in data.items() if k not in ("schema", "signature", "leaf")}
    try:
        return UsageReceipt(**fields)
    except TypeError as exc:
        raise InvalidInput(f"usage receipt: {exc}") from None


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

    receipt: dict[str, Any]  # the signed fields (the schema's JSON)
    # the exact text the gateway signed (EIP-191 personal_sign of its UTF-8 bytes): the fields
    # with the schema's name, sorted and compact, so any wallet library checks the signature
    signed: str
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
        return StoredReceipt(
            receipt=row.body,
            signed=receipt_from_json(row.body).canonical().decode(),
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
            signed=found.signed,
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
