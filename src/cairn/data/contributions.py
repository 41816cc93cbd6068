"""Contributions: signed uploads of JSONL records, validated record by record, stored atomically.

One EIP-712 signature covers an upload. The upload, its verdicts and its records enter the index
in one transaction: a crash half-way leaves nothing, and sending the same signed upload again
returns the first answer instead of storing anything twice.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from sqlalchemy import insert, select
from sqlalchemy.exc import IntegrityError as DbIntegrityError
from sqlalchemy.orm import Session

from cairn.assets.content import ContentRefs, Scope
from cairn.chain.contracts import Chain
from cairn.core.data_policy import DatasetSpec
from cairn.core.errors import Conflict, InvalidInput, Unauthorized
from cairn.core.evm import checksum
from cairn.data.datasets import Datasets
from cairn.data.dedup import NearDuplicateIndex, signature_from_bytes, signature_to_bytes
from cairn.data.models import RecordRow, UploadRow
from cairn.data.signing import (
    ContributionTypedData,
    contribution_typed_data,
    records_root,
    recover_signer,
)
from cairn.data.validate import RecordValidator, Verdict
from cairn.db.engine import Database
from cairn.store.base import BlobStore

INSERT_CHUNK = 500  # rows per INSERT statement
MAX_NONCE = 2**256 - 1


@dataclass(frozen=True)
class StoredVerdict:
    """A record's verdict as stored with its upload and answered to the contributor."""

    line: int  # 1-based line number in the upload
    ok: bool
    code: str  # one of cairn.data.validate.CODES
    reason: str | None
    record_hash: str | None
    duplicate_of: str | None
    pii: tuple[str, ...]  # kinds of personal data found
    status: str | None  # what became of a kept record: accepted, review or held

    @classmethod
    def of(cls, verdict: Verdict, status: str | None) -> StoredVerdict:
        """A validator's verdict, without the record and its signature."""
        return cls(
            verdict.line,
            verdict.ok,
            verdict.code,
            verdict.reason,
            verdict.record_hash,
            verdict.duplicate_of,
            tuple(verdict.pii),
            status,
        )

    @classmethod
    def from_document(cls, doc: dict[str, Any]) -> StoredVerdict:
        """A verdict as the upload's verdicts document stores it."""
        return cls(**{**doc, "pii": tuple(doc["pii"])})


@dataclass(frozen=True)
class UploadResult:
    """What happened to an upload: one verdict per record."""

    upload_id: int
    dataset_id: int
    contributor: str
    nonce: int
    root: str
    total: int
    accepted: int
    verdicts: tuple[StoredVerdict, ...]
    replayed: bool  # True when this exact signed upload had been received before
    # what the contributor signed, and its signature: anyone checks it with any wallet library
    typed_data: ContributionTypedData
    signature: str

    @property
    def rejected(self) -> int:
        """Records refused."""
        return self.total - self.accepted


def review_sampled(record_hash: str, share: float) -> bool:
    """Whether a record is picked for review: a fixed function of its hash, so retries agree."""
    return int(record_hash[:8], 16) / 2**32 < share


def insert_records(session: Session, rows: Sequence[dict[str, Any]]) -> None:
    """Insert record rows in chunks (one statement per chunk, within the caller's transaction)."""
    table = RecordRow.__table__
    for start in range(0, len(rows), INSERT_CHUNK):
        # Core executemany within the ORM session's transaction: no per-row ORM bookkeeping.
        session.connection().execute(insert(table), list(rows[start : start + INSERT_CHUNK]))  # type: ignore[arg-type]


class Contributions:
    """Receive, validate and store signed uploads."""

    def __init__(
        self,
        chain: Chain,
        store: BlobStore,
        db: Database,
        datasets: Datasets,
        held_accounts: Callable[[int], set[str]],
        refs: ContentRefs,
    ) -> None:
        self.chain = chain
        self.refs = refs
        self.store = store
        self.db = db
        self.datasets = datasets
        self._held_accounts = held_accounts  # accounts below the reputation floor, per dataset
        self._locks: dict[int, threading.Lock] = {}
        self._near: dict[int, NearDuplicateIndex] = {}
        self._guard = threading.Lock()

    def typed_data(self, dataset_id: int, root: str, nonce: int) -> ContributionTypedData:
        """The EIP-712 document a contributor signs for an upload."""
        return contribution_typed_data(
            chain_id=self.chain.client.chain_id,
            ledger=self.chain.ledger.address,
            dataset_id=dataset_id,
            root=root,
            nonce=nonce,
        )

    def contribute(
        self, dataset_id: int, *, contributor: str, nonce: int, signature: str, lines: Sequence[str]
    ) -> UploadResult:
        """Verify the upload's signature, judge every record, and store the upload atomically."""
        account = checksum(contributor)
        if isinstance(nonce, bool) or not isinstance(nonce, int) or not 0 <= nonce <= MAX_NONCE:
            raise InvalidInput("nonce must be an integer between 0 and 2**256-1")
        spec = self.datasets.spec(dataset_id)
        limit = spec.validation.max_records_per_upload
        if not lines:
            raise InvalidInput("the upload holds no records")
        if len(lines) > limit:
            raise InvalidInput(
                f"the upload holds {len(lines)} records; this dataset takes at most {limit} per upload"
            )
        root = records_root(lines)
        signer = recover_signer(self.typed_data(dataset_id, root, nonce), signature)
        if signer != account:
            raise Unauthorized(
                f"the signature is not {account}'s over these records, dataset {dataset_id} and nonce {nonce} "
                f"(it recovers to {signer}); sign the upload again"
            )
        previous = self._previous(account, nonce, dataset_id, root)
        if previous is not None:
            return previous
        with self._lock(dataset_id):
            previous = self._previous(account, nonce, dataset_id, root)
            if previous is not None:
                return previous
            return self._store(dataset_id, spec, account, nonce, signature, root, lines)

    def _store(
        self,
        dataset_id: int,
        spec: DatasetSpec,
        account: str,
        nonce: int,
        signature: str,
        root: str,
        lines: Sequence[str],
    ) -> UploadResult:
        near = self._near_index(dataset_id, spec)
        validator = RecordValidator(
            spec.task,
            spec.record_schema,
            spec.validation,
            known_hashes=lambda hashes: self._known(dataset_id, hashes),
            near_index=near if spec.validation.near_dedup else None,
        )
        verdicts = validator.validate(list(lines))
        held = account.lower() in {a.lower() for a in self._held_accounts(dataset_id)}
        now = int(time.time())
        rows: list[dict[str, Any]] = []
        stored: list[StoredVerdict] = []
        for verdict in verdicts:
            status = None
            if verdict.ok and verdict.record is not None and verdict.record_hash is not None:
                if held:
                    status = "held"
                elif review_sampled(verdict.record_hash, spec.review.review_share):
                    status = "review"
                else:
                    status = "accepted"
                rows.append(
                    {
                        "dataset_id": dataset_id,
                        "line": verdict.line,
                        "record_hash": verdict.record_hash,
                        "content": verdict.record,
                        "contributor": account,
                        "status": status,
                        "reason": "contributor's reputation is below the floor" if held else None,
                        "quality": 1.0,
                        "pii": list(verdict.pii),
                        "signature": None
                        if verdict.signature is None
                        else signature_to_bytes(verdict.signature),
                        "created_at": now,
                        "decided_at": now if status == "accepted" else None,
                    }
                )
            stored.append(StoredVerdict.of(verdict, status))
        verdicts_cid = self.store.put_json(
            {
                "schema": "cairn.verdicts/v1",
                "dataset_id": dataset_id,
                "root": root,
                "verdicts": [asdict(v) for v in stored],
            }
        )
        # The verdicts quote records: the dataset's gate, and the contributor's own.
        self.refs.add(verdicts_cid, Scope.DATASET, dataset_id)
        self.refs.add(verdicts_cid, Scope.ACCOUNT, account, account=account)
        try:
            with self.db.session() as session:
                upload = UploadRow(
                    dataset_id=dataset_id,
                    contributor=account,
                    nonce=str(nonce),
                    root=root,
                    signature=signature,
                    verdicts_cid=verdicts_cid,
                    total=len(verdicts),
                    accepted=len(rows),
                    received_at=now,
                )
                session.add(upload)
                session.flush()
                for row in rows:
                    row["upload_id"] = upload.id
                insert_records(session, rows)
                upload_id = upload.id
        except DbIntegrityError:
            # Another request stored the same (contributor, nonce) first: answer as for a retry.
            previous = self._previous(account, nonce, dataset_id, root)
            if previous is None:
                raise
            return previous
        if spec.validation.near_dedup:
            signed = [
                v
                for v in verdicts
                if v.ok and v.signature is not None and v.record_hash is not None
            ]
            if signed:
                sigs = [v.signature for v in signed if v.signature is not None]
                near.add_many([str(v.record_hash) for v in signed], np.stack(sigs))
        return UploadResult(
            upload_id,
            dataset_id,
            account,
            nonce,
            root,
            len(verdicts),
            len(rows),
            tuple(stored),
            False,
            self.typed_data(dataset_id, root, nonce),
            signature,
        )

    def _previous(
        self, account: str, nonce: int, dataset_id: int, root: str
    ) -> UploadResult | None:
        with self.db.session() as session:
            upload = session.scalars(
                select(UploadRow).where(
                    UploadRow.contributor == account, UploadRow.nonce == str(nonce)
                )
            ).first()
        if upload is None:
            return None
        if upload.dataset_id != dataset_id or upload.root != root:
            raise Conflict(
                f"nonce {nonce} of {account} was already used for another upload; sign this one with a new nonce"
            )
        stored = self.store.get_json(upload.verdicts_cid)["verdicts"]
        return UploadResult(
            upload.id,
            dataset_id,
            account,
            nonce,
            root,
            upload.total,
            upload.accepted,
            tuple(StoredVerdict.from_document(v) for v in stored),
            True,
            self.typed_data(dataset_id, root, nonce),
            upload.signature,
        )

    def _known(self, dataset_id: int, hashes: Any) -> set[str]:
        wanted = list(hashes)
        found: set[str] = set()
        with self.db.session() as session:
            for start in range(0, len(wanted), INSERT_CHUNK):
                chunk = wanted[start : start + INSERT_CHUNK]
                found.update(
                    session.scalars(
                        select(RecordRow.record_hash).where(
                            RecordRow.dataset_id == dataset_id, RecordRow.record_hash.in_(chunk)
                        )
                    )
                )
        return found

    def _lock(self, dataset_id: int) -> threading.Lock:
        with self._guard:
            return self._locks.setdefault(dataset_id, threading.Lock())

    def _near_index(self, dataset_id: int, spec: DatasetSpec) -> NearDuplicateIndex:
        """The dataset's MinHash LSH index, rebuilt from the stored signatures on first use."""
        index = self._near.get(dataset_id)
        if index is None:
            index = NearDuplicateIndex(threshold=spec.validation.near_dup_threshold)
            with self.db.session() as session:
                stored = session.execute(
                    select(RecordRow.record_hash, RecordRow.signature).where(
                        RecordRow.dataset_id == dataset_id,
                        RecordRow.signature.is_not(None),
                        RecordRow.status != "rejected",
                    )
                ).all()
            if stored:
                index.add_many(
                    [h for h, _ in stored],
                    np.stack([signature_from_bytes(s) for _, s in stored if s is not None]),
                )
            self._near[dataset_id] = index
        return index

    def forget(self) -> None:
        """Drop in-memory indexes (the index they mirror was reset)."""
        with self._guard:
            self._near.clear()
