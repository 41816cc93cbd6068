"""Index tables of the data domain: datasets, uploads, records, reviews, gold, batches, versions."""

from __future__ import annotations

from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Float,
    ForeignKey,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from cairn.db.engine import Base


class DatasetRow(Base):
    """A dataset: an AssetRegistry asset of kind dataset, with its task and policies."""

    __tablename__ = "datasets"

    asset_id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    name: Mapped[str] = mapped_column(String(200))
    owner: Mapped[str] = mapped_column(String(42), index=True)
    licence: Mapped[str] = mapped_column(String(64))
    metadata_cid: Mapped[str] = mapped_column(String(128))
    spec: Mapped[dict[str, Any]] = mapped_column(JSON)  # task, record schema and every policy
    created_at: Mapped[int] = mapped_column(BigInteger)


class UploadRow(Base):
    """One signed upload; (contributor, nonce) is unique, which makes replays detectable."""

    __tablename__ = "uploads"
    __table_args__ = (UniqueConstraint("contributor", "nonce", name="uq_upload_nonce"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    dataset_id: Mapped[int] = mapped_column(ForeignKey("datasets.asset_id"), index=True)
    contributor: Mapped[str] = mapped_column(String(42), index=True)
    nonce: Mapped[str] = mapped_column(String(80))
    root: Mapped[str] = mapped_column(String(66))
    signature: Mapped[str] = mapped_column(String(140))
    verdicts_cid: Mapped[str] = mapped_column(String(128))
    total: Mapped[int] = mapped_column(Integer)
    accepted: Mapped[int] = mapped_column(Integer)
    received_at: Mapped[int] = mapped_column(BigInteger)


class RecordRow(Base):
    """A record that passed validation; its status moves review -> accepted -> anchored."""

    __tablename__ = "records"
    __table_args__ = (UniqueConstraint("dataset_id", "record_hash", name="uq_record_hash"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    dataset_id: Mapped[int] = mapped_column(ForeignKey("datasets.asset_id"), index=True)
    upload_id: Mapped[int] = mapped_column(ForeignKey("uploads.id"), index=True)
    line: Mapped[int] = mapped_column(Integer)
    record_hash: Mapped[str] = mapped_column(String(64))
    content: Mapped[dict[str, Any]] = mapped_column(JSON)
    contributor: Mapped[str] = mapped_column(String(42), index=True)
    # review: waiting for votes; accepted: waiting for a batch; anchored; rejected; held
    status: Mapped[str] = mapped_column(String(16), index=True)
    reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    decision: Mapped[str | None] = mapped_column(
        String(200), nullable=True
    )  # label review settled on
    quality: Mapped[float] = mapped_column(Float, default=1.0)
    pii: Mapped[list[str]] = mapped_column(JSON, default=list)
    signature: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    batch_id: Mapped[int | None] = mapped_column(
        ForeignKey("batches.id"), nullable=True, index=True
    )
    created_at: Mapped[int] = mapped_column(BigInteger)
    decided_at: Mapped[int | None] = mapped_column(BigInteger, nullable=True)


class GoldRow(Base):
    """A gold question: an item with a known answer, mixed unmarked into review queues."""

    __tablename__ = "gold_items"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    dataset_id: Mapped[int] = mapped_column(ForeignKey("datasets.asset_id"), index=True)
    content: Mapped[dict[str, Any]] = mapped_column(JSON)
    answer: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[int] = mapped_column(BigInteger)


class ReviewTaskRow(Base):
    """One review asked of one account: of a record, or of a gold item (the reviewer can't tell)."""

    __tablename__ = "review_tasks"
    __table_args__ = (
        UniqueConstraint("record_id", "reviewer", name="uq_task_record_reviewer"),
        UniqueConstraint("gold_id", "reviewer", name="uq_task_gold_reviewer"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    dataset_id: Mapped[int] = mapped_column(ForeignKey("datasets.asset_id"), index=True)
    record_id: Mapped[int | None] = mapped_column(
        ForeignKey("records.id"), nullable=True, index=True
    )
    gold_id: Mapped[int | None] = mapped_column(ForeignKey("gold_items.id"), nullable=True)
    reviewer: Mapped[str] = mapped_column(String(42), index=True)
    answer: Mapped[str | None] = mapped_column(String(200), nullable=True)
    created_at: Mapped[int] = mapped_column(BigInteger)
    answered_at: Mapped[int | None] = mapped_column(BigInteger, nullable=True)


class BatchRow(Base):
    """A batch of accepted records anchored in ContributionLedger by its Merkle root."""

    __tablename__ = "batches"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    dataset_id: Mapped[int] = mapped_column(ForeignKey("datasets.asset_id"), index=True)
    batch_index: Mapped[int] = mapped_column(Integer)
    root: Mapped[str] = mapped_column(String(66), unique=True)
    count: Mapped[int] = mapped_column(Integer)
    cid: Mapped[str] = mapped_column(String(128))
    tx_hash: Mapped[str] = mapped_column(String(66))
    anchored_at: Mapped[int] = mapped_column(BigInteger)


class VersionRow(Base):
    """An anchored state of a dataset, named by the CID of its manifest."""

    __tablename__ = "dataset_versions"

    manifest_cid: Mapped[str] = mapped_column(String(128), primary_key=True)
    dataset_id: Mapped[int] = mapped_column(ForeignKey("datasets.asset_id"), index=True)
    number: Mapped[int] = mapped_column(Integer)
    records: Mapped[int] = mapped_column(Integer)
    batches: Mapped[int] = mapped_column(Integer)
    attribution_cid: Mapped[str] = mapped_column(String(128))
    created_at: Mapped[int] = mapped_column(BigInteger)
