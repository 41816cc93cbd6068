"""The data domain's one entry point: datasets, contributions, reviews, anchoring and export."""

from __future__ import annotations

import io
import json
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
from eth_account.signers.local import LocalAccount
from sqlalchemy import delete, select

from cairn.assets.service import AssetService
from cairn.chain.contracts import Chain
from cairn.core.errors import InvalidInput
from cairn.core.evm import checksum
from cairn.data.anchoring import Anchoring
from cairn.data.contributions import Contributions
from cairn.data.datasets import Datasets
from cairn.data.models import (
    BatchRow,
    DatasetRow,
    GoldRow,
    RecordRow,
    ReviewTaskRow,
    UploadRow,
    VersionRow,
)
from cairn.data.review import Reviews
from cairn.db.engine import Database
from cairn.store.base import BlobStore

EXPORT_FORMATS = ("jsonl", "parquet")
RECORD_STATUSES = ("review", "accepted", "anchored", "rejected", "held")


class DataService:
    """Everything about datasets, wired to one chain, store and index."""

    def __init__(
        self,
        chain: Chain,
        store: BlobStore,
        db: Database,
        assets: AssetService,
        operator: LocalAccount,
    ) -> None:
        self.db = db
        self.datasets = Datasets(chain, store, db, assets, operator.address)
        self.reviews = Reviews(db, self.datasets)
        self.contributions = Contributions(
            chain, store, db, self.datasets, self.reviews.held_accounts, assets.refs
        )
        self.anchoring = Anchoring(
            chain, store, db, self.datasets, self.reviews, operator, assets.refs
        )

    def export(self, dataset_id: int, fmt: str, version: str | None = None) -> bytes:
        """A version's records as JSONL or Parquet bytes (both load with the `datasets` library)."""
        if fmt not in EXPORT_FORMATS:
            raise InvalidInput(
                f"export format must be one of {', '.join(EXPORT_FORMATS)}; got {fmt!r}"
            )
        records = self.anchoring.records(dataset_id, version)
        if fmt == "jsonl":
            return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records).encode(
                "utf-8"
            )
        table = pa.Table.from_pylist(records)
        sink = io.BytesIO()
        pq.write_table(table, sink)
        return sink.getvalue()

    def list_records(
        self,
        dataset_id: int,
        *,
        status: str | None = None,
        contributor: str | None = None,
        limit: int = 100,
        offset: int = 0,
    ) -> list[dict[str, Any]]:
        """Stored records of a dataset, oldest first, filtered by status and contributor."""
        self.datasets.get(dataset_id)
        if status is not None and status not in RECORD_STATUSES:
            raise InvalidInput(
                f"status must be one of {', '.join(RECORD_STATUSES)}; got {status!r}"
            )
        if not 1 <= limit <= 1000 or offset < 0:
            raise InvalidInput("limit must be 1-1000 and offset non-negative")
        stmt = select(RecordRow).where(RecordRow.dataset_id == dataset_id).order_by(RecordRow.id)
        if status:
            stmt = stmt.where(RecordRow.status == status)
        if contributor:
            stmt = stmt.where(RecordRow.contributor == checksum(contributor))
        with self.db.session() as session:
            rows = session.scalars(stmt.limit(limit).offset(offset)).all()
        return [
            {
                "id": r.id,
                "record_hash": r.record_hash,
                "contributor": r.contributor,
                "status": r.status,
                "reason": r.reason,
                "quality": r.quality,
                "label": r.decision,
                "pii": r.pii,
                "content": r.content,
            }
            for r in rows
        ]

    def reset_index(self) -> None:
        """Forget everything indexed about datasets (the chain behind the index was replaced)."""
        with self.db.session() as session:
            for table in (
                ReviewTaskRow,
                GoldRow,
                RecordRow,
                BatchRow,
                VersionRow,
                UploadRow,
                DatasetRow,
            ):
                session.execute(delete(table))
        self.contributions.forget()

    def summary(self, dataset_id: int) -> dict[str, Any]:
        """The dataset with its versions."""
        out = self.datasets.get(dataset_id).to_dict()
        out["version_list"] = self.anchoring.versions(dataset_id)
        return out
