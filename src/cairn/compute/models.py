"""Index tables of the compute domain: jobs and the work reports they accepted."""

from __future__ import annotations

from typing import Any

from sqlalchemy import JSON, BigInteger, Float, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from cairn.db.engine import Base


class JobRow(Base):
    """A training job: its recipe, where its rounds are, what it measured and what it made."""

    __tablename__ = "jobs"

    job_id: Mapped[str] = mapped_column(String(66), primary_key=True)  # 0x + 64 hex
    builder: Mapped[str] = mapped_column(String(42), index=True)
    name: Mapped[str] = mapped_column(String(200))
    method: Mapped[str] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(16), index=True)  # JOB_STATES
    recipe: Mapped[dict[str, Any]] = mapped_column(JSON)
    recipe_cid: Mapped[str] = mapped_column(String(128))
    base_asset: Mapped[int] = mapped_column(BigInteger)
    datasets: Mapped[list[dict[str, Any]]] = mapped_column(JSON)  # versions and attribution
    budget: Mapped[str] = mapped_column(String(80))  # smallest token units, decimal
    escrowed: Mapped[int] = mapped_column(Integer)  # 1 if JobEscrow holds the budget
    round: Mapped[int] = mapped_column(Integer)  # rounds done
    rounds: Mapped[int] = mapped_column(Integer)
    run_id: Mapped[str | None] = mapped_column(String(20), nullable=True)  # Flower's uint64
    events_offset: Mapped[int] = mapped_column(BigInteger)  # bytes of events.jsonl read
    history: Mapped[list[dict[str, Any]]] = mapped_column(JSON)  # one entry per round
    metrics: Mapped[dict[str, Any]] = mapped_column(JSON)  # the final held-out evaluation
    providers: Mapped[dict[str, Any]] = mapped_column(JSON)  # account -> {node_id, enlisted}
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    model_asset: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    model_cid: Mapped[str | None] = mapped_column(String(128), nullable=True)
    shares_cid: Mapped[str | None] = mapped_column(String(128), nullable=True)
    reports_root: Mapped[str | None] = mapped_column(String(66), nullable=True)
    payouts: Mapped[dict[str, Any]] = mapped_column(JSON)  # account -> amount paid, decimal
    # the replay of sampled rounds after the last one (None: not verified, or not yet)
    verification: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    created_at: Mapped[float] = mapped_column(Float)
    updated_at: Mapped[float] = mapped_column(Float)
    finished_at: Mapped[float | None] = mapped_column(Float, nullable=True)


class WorkReportRow(Base):
    """One accepted, signed work report; (job, round, account) is unique."""

    __tablename__ = "work_reports"
    __table_args__ = (UniqueConstraint("job_id", "round", "account"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    job_id: Mapped[str] = mapped_column(String(66), index=True)
    round: Mapped[int] = mapped_column(Integer)
    account: Mapped[str] = mapped_column(String(42), index=True)
    samples: Mapped[int] = mapped_column(BigInteger)
    leaf: Mapped[str] = mapped_column(String(66))
    report: Mapped[dict[str, Any]] = mapped_column(JSON)
    signature: Mapped[str] = mapped_column(String(140))
