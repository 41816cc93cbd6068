"""Jobs in the node's index: reading a job's row as a record, writing its fields, its reports.

The one place that opens `JobRow` and `WorkReportRow` for the job service, the event follower
and the finisher (`cairn.compute.finish.JobBook`). Fields are written as the row keeps them
(JSON for the history, providers and payouts).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from cairn.compute.job import Job, JobSummary, check_job_id, job_of, summary_of
from cairn.compute.models import JobRow, WorkReportRow
from cairn.core.errors import NotFound
from cairn.db.engine import Database


@dataclass(frozen=True)
class ProviderWork:
    """A job a provider took part in: its accepted work and what the job's budget paid it."""

    job_id: str
    name: str
    method: str
    status: str
    model_asset: int | None
    rounds: int  # rounds with an accepted report of this provider
    samples: int
    enlisted: bool
    paid: str  # smallest units from the job's budget in JobEscrow


@dataclass(frozen=True)
class JobIndex:
    """Jobs and their accepted work reports in the index."""

    db: Database

    def get(self, job_id: str) -> Job:
        """A job with its status and round history; `NotFound` if there is none."""
        with self.db.session() as session:
            row = session.get(JobRow, check_job_id(job_id))
            if row is None:
                raise NotFound(f"no job {job_id}")
            return job_of(row)

    def summaries(self, builder: str | None = None) -> list[JobSummary]:
        """Jobs, newest first (one builder's if given)."""
        with self.db.session() as session:
            query = select(JobRow).order_by(JobRow.created_at.desc())
            if builder:
                query = query.where(JobRow.builder == builder)
            return [summary_of(r) for r in session.scalars(query)]

    def ids(self, statuses: tuple[str, ...]) -> list[tuple[str, str]]:
        """(job id, status) of every job in one of `statuses`."""
        with self.db.session() as session:
            query = select(JobRow.job_id, JobRow.status).where(JobRow.status.in_(statuses))
            return [(job_id, status) for job_id, status in session.execute(query)]

    def update(self, job_id: str, **fields: Any) -> None:
        """Set fields of the job's row."""
        with self.db.session() as session, session.begin():
            write(session, job_id, fields)

    def reports(self, job_id: str) -> list[WorkReportRow]:
        """The job's accepted work reports, by round then account."""
        with self.db.session() as session:
            rows = session.scalars(
                select(WorkReportRow)
                .where(WorkReportRow.job_id == job_id)
                .order_by(WorkReportRow.round, WorkReportRow.account)
            ).all()
            session.expunge_all()
            return list(rows)

    def provider_work(self, account: str) -> list[ProviderWork]:
        """The jobs `account` took part in as a provider, newest first."""
        address = account.lower()
        with self.db.session() as session:
            work = {
                job_id: (rounds, int(samples or 0))
                for job_id, rounds, samples in session.execute(
                    select(
                        WorkReportRow.job_id,
                        func.count(WorkReportRow.id),
                        func.sum(WorkReportRow.samples),
                    )
                    .where(func.lower(WorkReportRow.account) == address)
                    .group_by(WorkReportRow.job_id)
                )
            }
            rows = session.execute(  # not the recipes and histories: only what is shown
                select(
                    JobRow.job_id,
                    JobRow.name,
                    JobRow.method,
                    JobRow.status,
                    JobRow.model_asset,
                    JobRow.providers,
                    JobRow.payouts,
                ).order_by(JobRow.created_at.desc())
            ).all()
        out = []
        for row in rows:
            enlisted = {a.lower(): info for a, info in row.providers.items()}.get(address)
            paid = {a.lower(): amount for a, amount in row.payouts.items()}.get(address)
            if row.job_id not in work and enlisted is None and paid is None:
                continue
            rounds, samples = work.get(row.job_id, (0, 0))
            out.append(
                ProviderWork(
                    job_id=row.job_id,
                    name=row.name,
                    method=row.method,
                    status=row.status,
                    model_asset=row.model_asset,
                    rounds=rounds,
                    samples=samples,
                    enlisted=bool(enlisted and enlisted.get("enlisted")),
                    paid=paid or "0",
                )
            )
        return out


def write(session: Session, job_id: str, fields: dict[str, Any]) -> JobRow:
    """Set fields of the job's row in `session`; returns the row."""
    row = session.get(JobRow, job_id)
    if row is None:
        raise NotFound(f"no job {job_id}")
    for key, value in fields.items():
        setattr(row, key, value)
    row.updated_at = time.time()
    return row
