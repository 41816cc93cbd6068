"""The data domain's one entry point: datasets, contributions, reviews, anchoring and export."""

from __future__ import annotations

import io
import json
from dataclasses import dataclass
from typing import Any, Protocol

from eth_account.signers.local import LocalAccount
from sqlalchemy import delete, func, select

from cairn.assets.service import AssetService
from cairn.chain.contracts import Chain
from cairn.core.errors import Forbidden, InvalidInput
from cairn.core.evm import checksum
from cairn.data.anchoring import Anchoring, DatasetVersion
from cairn.data.contributions import Contributions
from cairn.data.datasets import Dataset, Datasets
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

# Each export format with its media type.
EXPORT_MEDIA = {"jsonl": "application/x-ndjson", "parquet": "application/vnd.apache.parquet"}
EXPORT_FORMATS = tuple(EXPORT_MEDIA)
RECORD_STATUSES = ("review", "accepted", "anchored", "rejected", "held")
# What anyone (past the licence gate) may list of other accounts' records: the records review let
# into the dataset. A record still under review, held or rejected is listed only to its contributor
# and to the dataset's owner and curators: were the review queue public, a reviewer could tell a
# gold question (never a record) by its absence from it; a gold question never appears here either,
# but neither does any record that review has not let in.
PUBLIC_STATUSES = ("accepted", "anchored")


class LicenceGate(Protocol):
    """Refuses (`LicenceRequired`, naming what to buy) a reader who may not export a dataset:
    the economy's `LicenceBook.require` for `Use.EXPORT`. Licences belong to the economy, which
    stands on data, so the data domain is handed the check rather than importing it."""

    def __call__(self, dataset_id: int, reader: str | None) -> object: ...


@dataclass(frozen=True)
class StoredRecord:
    """A contributed record as the index holds it."""

    id: int
    record_hash: str
    contributor: str
    status: str  # one of RECORD_STATUSES
    reason: str | None  # why it was rejected, held or relabelled
    quality: float
    label: str | None  # the label review settled on
    pii: tuple[str, ...]  # kinds of personal data found in it
    content: dict[str, Any]  # the record itself: a JSON object of the dataset's shape


@dataclass(frozen=True)
class ContributorHistory:
    """A contributor's records in a dataset: the newest, and how many there are per status."""

    newest: tuple[StoredRecord, ...]  # newest first
    counts: dict[str, int]

    @property
    def total(self) -> int:
        """Every record of the contributor in the dataset."""
        return sum(self.counts.values())


@dataclass(frozen=True)
class DatasetSummary(Dataset):
    """A dataset with its versions, newest first."""

    version_list: tuple[DatasetVersion, ...] = ()


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
        self.chain = chain
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
        import pyarrow as pa  # loaded for a Parquet export only
        import pyarrow.parquet as pq

        table = pa.Table.from_pylist(records)
        sink = io.BytesIO()
        pq.write_table(table, sink)
        return sink.getvalue()

    def list_records(
        self,
        dataset_id: int,
        *,
        status: str | None = None,
        statuses: tuple[str, ...] = RECORD_STATUSES,
        contributor: str | None = None,
        limit: int = 100,
        offset: int = 0,
    ) -> list[StoredRecord]:
        """Stored records of a dataset, oldest first, filtered by status (one, or any of
        `statuses`) and contributor."""
        self.datasets.get(dataset_id)
        _check_status(status)
        if not 1 <= limit <= 1000 or offset < 0:
            raise InvalidInput("limit must be 1-1000 and offset non-negative")
        stmt = select(RecordRow).where(RecordRow.dataset_id == dataset_id).order_by(RecordRow.id)
        if status:
            stmt = stmt.where(RecordRow.status == status)
        stmt = stmt.where(RecordRow.status.in_(statuses))
        if contributor:
            stmt = stmt.where(RecordRow.contributor == checksum(contributor))
        with self.db.session() as session:
            rows = session.scalars(stmt.limit(limit).offset(offset)).all()
        return [_stored(r) for r in rows]

    def history(self, dataset_id: int, contributor: str, newest: int) -> ContributorHistory:
        """The contributor's `newest` records in the dataset and its count of records per status."""
        account = checksum(contributor)
        mine = (RecordRow.dataset_id == dataset_id, RecordRow.contributor == account)
        with self.db.session() as session:
            rows = session.scalars(
                select(RecordRow).where(*mine).order_by(RecordRow.id.desc()).limit(newest)
            ).all()
            counts = session.execute(
                select(RecordRow.status, func.count()).where(*mine).group_by(RecordRow.status)
            ).all()
        return ContributorHistory(
            tuple(_stored(r) for r in rows), {str(s): int(n) for s, n in counts}
        )

    def records_for(
        self,
        reader: str | None,
        dataset_id: int,
        *,
        gate: LicenceGate,
        status: str | None = None,
        contributor: str | None = None,
        limit: int = 100,
        offset: int = 0,
    ) -> list[StoredRecord]:
        """The records `reader` may list: anyone's own; others' only past the licence gate (a
        licensed dataset's records are its content), and of those only the ones review let into
        the dataset (`PUBLIC_STATUSES`) unless `reader` is the dataset's owner or a curator."""
        if reader and contributor and contributor.lower() == reader.lower():
            return self.list_records(
                dataset_id, status=status, contributor=contributor, limit=limit, offset=offset
            )
        gate(dataset_id, reader)
        self.datasets.get(dataset_id)
        if reader and self.chain.registry.can_anchor(dataset_id, reader):
            return self.list_records(
                dataset_id, status=status, contributor=contributor, limit=limit, offset=offset
            )
        if status is not None and status not in PUBLIC_STATUSES:
            _check_status(status)  # a status that does not exist is a 422, not a 403
            raise Forbidden(
                f"records with status {status!r} are listed only to their contributor and to the "
                f"dataset's owner and curators; others see {' and '.join(PUBLIC_STATUSES)} records"
            )
        return self.list_records(
            dataset_id,
            status=status,
            statuses=PUBLIC_STATUSES,
            contributor=contributor,
            limit=limit,
            offset=offset,
        )

    def export_for(
        self,
        reader: str | None,
        dataset_id: int,
        fmt: str,
        version: str | None,
        *,
        gate: LicenceGate,
    ) -> bytes:
        """A version's records as JSONL or Parquet, for a reader past the licence gate."""
        gate(dataset_id, reader)
        return self.export(dataset_id, fmt, version)

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

    def summary(self, dataset_id: int) -> DatasetSummary:
        """The dataset with its versions."""
        dataset = self.datasets.get(dataset_id)
        versions = tuple(self.anchoring.versions(dataset_id))
        return DatasetSummary(**vars(dataset), version_list=versions)


def _check_status(status: str | None) -> None:
    if status is not None and status not in RECORD_STATUSES:
        raise InvalidInput(f"status must be one of {', '.join(RECORD_STATUSES)}; got {status!r}")


def _stored(row: RecordRow) -> StoredRecord:
    return StoredRecord(
        id=row.id,
        record_hash=row.record_hash,
        contributor=row.contributor,
        status=row.status,
        reason=row.reason,
        quality=row.quality,
        label=row.decision,
        pii=tuple(row.pii),
        content=row.content,
    )
