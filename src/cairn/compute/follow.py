"""Following a job: its run's events read into the index, and their effects taken once.

A running job's coordinator appends events to the job's folder (`cairn.compute.jobdir`);
`Follower.follow` reads the ones past the job's `events_offset` and acts on each: a provider is
enlisted on chain, an accepted work report kept, a round's checkpoint stored by CID and its
metrics added to the history, a failed or cancelled job's budget given back, a finished job made
`finishing` (its metrics recorded) for `cairn.compute.finish` to end. Each event's effect is
written with the offset past it in one transaction, and what it does outside the index (a
transaction, a stored blob, a refund) comes first and is idempotent, so a crash replays no
event's effect twice. A job running past its recipe's `max_seconds` is stopped and fails.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from eth_account.signers.local import LocalAccount
from sqlalchemy import select
from sqlalchemy.orm import Session

from cairn.assets.content import Scope
from cairn.assets.service import AssetService
from cairn.chain.contracts import Chain
from cairn.chain.escrow import Enlistment
from cairn.compute.finish import Finisher
from cairn.compute.job import ACTIVE, Job
from cairn.compute.job_index import JobIndex, write
from cairn.compute.jobdir import JobDir
from cairn.compute.models import WorkReportRow
from cairn.compute.reports import report_from_json, report_leaf, verify_report
from cairn.compute.superlink import SuperLink
from cairn.core.errors import InvalidInput
from cairn.identity.signers import Signers
from cairn.store.base import BlobStore


@dataclass(frozen=True)
class Follower:
    """Reads running jobs' events into the index and acts on them."""

    index: JobIndex
    store: BlobStore
    chain: Chain
    assets: AssetService
    superlink: SuperLink
    operator: LocalAccount  # enlists providers in JobEscrow
    signers: Signers  # the builder's key, where this node holds it, cancels an escrowed job
    finisher: Finisher

    def follow(self, job_id: str, folder: JobDir) -> None:
        """Read the job's new events into the index; stop it past its time limit."""
        job = self.index.get(job_id)
        if job.status not in ACTIVE:
            return
        # Every line was written by the run that owned the job at the time (a coordinator
        # checks `run.json` before each write), so events of an earlier run still count.
        for event, end in folder.entries(job.events_offset):
            if self.apply(job_id, folder, event, end) not in ACTIVE:
                break
        job = self.index.get(job_id)
        if job.status in ACTIVE and time.time() - job.created_at > job.max_seconds:
            folder.request_cancel()
            if job.run_id is not None:
                self.superlink.stop_run(job.run_id)
            # the refund first: if it breaks off, the job is still running, and stopped again
            self.finisher.refund(job_id, self.builder_key(job))
            error = f"exceeded max_seconds={job.max_seconds}"
            self.index.update(job_id, status="failed", error=error, finished_at=time.time())

    def apply(self, job_id: str, folder: JobDir, event: dict[str, Any], end: int) -> str:
        """Act on one event and write its effect with `end`, the offset past it, in one
        transaction; returns the job's status. What reaches beyond the index (a transaction, a
        stored blob, a refund) comes first and is idempotent: a replayed event acts once."""
        job = self.index.get(job_id)
        kind = event["type"]
        fields: dict[str, Any] = {}
        report = None
        if kind == "provider":
            fields["providers"] = self._enlist(job, event["account"], int(event["node_id"]))
        elif kind == "report":
            report = self._checked_report(job_id, event["report"], event["signature"])
        elif kind == "round":
            entry = self._round_entry(job, folder, event)
            others = [h.model_dump(mode="json") for h in job.history if h.round != entry["round"]]
            history = sorted([*others, entry], key=lambda h: int(h["round"]))
            fields.update(round=entry["round"], history=history)  # a round is in it once
        elif kind in ("failed", "cancelled"):
            self.finisher.refund(job_id, self.builder_key(job))
            fields.update(status=kind, error=event.get("error"), finished_at=time.time())
        elif kind == "verified":
            fields["verification"] = {
                k: event[k] for k in ("replays", "skipped", "error") if k in event
            }
        elif kind == "finished":
            fields.update(status="finishing", metrics=event["metrics"])
        with self.index.db.session() as session, session.begin():
            if report is not None and not _has_report(session, report):
                session.add(report)
            return write(session, job_id, {**fields, "events_offset": end}).status

    def builder_key(self, job: Job) -> LocalAccount | None:
        """The builder's key when this node holds it unlocked."""
        return self.signers.find(job.builder)

    def _enlist(self, job: Job, account: str, node_id: int) -> dict[str, Any]:
        """Enlist a provider in the job's escrow unless the chain shows it enlisted; returns the
        job's providers with it, as the row keeps them."""
        enlisted = False
        if job.escrowed:
            escrow = self.chain.escrow
            if escrow.enlistment(job.job_id, account) == Enlistment.NONE:
                escrow.enlist(self.operator, job.job_id, account)
            enlisted = True
        providers = {a: p.model_dump(mode="json") for a, p in job.providers.items()}
        return {**providers, account: {"node_id": node_id, "enlisted": enlisted}}

    def _checked_report(self, job_id: str, data: dict[str, Any], signature: str) -> WorkReportRow:
        """The report's index row, once its signature and job are checked."""
        report = report_from_json(data)
        verify_report(report, signature)  # the coordinator checked it; the index checks again
        if report.job_id != job_id:
            raise InvalidInput(f"a report of job {report.job_id} in job {job_id}'s events")
        return WorkReportRow(
            job_id=job_id,
            round=report.round,
            account=report.account,
            samples=report.samples,
            leaf=report_leaf(report, signature),
            report=data,
            signature=signature,
        )

    def _round_entry(self, job: Job, folder: JobDir, event: dict[str, Any]) -> dict[str, Any]:
        """A round's history entry as the row keeps it, with its checkpoint stored by CID."""
        entry = {k: event[k] for k in ("round", "train_loss", "eval", "seconds", "dropped")}
        entry["workers"] = [w["account"] for w in event["workers"]]
        entry["screens"] = list(event.get("screens", ()))  # none in events written before them
        entry["compute_seconds"] = event["compute_seconds"]
        entry["update_bytes"] = sum(int(w.get("update_bytes", 0)) for w in event["workers"])
        entry["received_bytes"] = sum(int(w.get("received_bytes", 0)) for w in event["workers"])
        entry["sent_bytes"] = int(event.get("sent_bytes", 0))
        checkpoint = folder.checkpoints / f"round-{int(event['round']):06d}.safetensors"
        if checkpoint.exists():
            with checkpoint.open("rb") as fh:
                cid = entry["checkpoint_cid"] = self.store.put_stream(fh)
            # weights trained from the job's data: the job's
            self.assets.refs.add(cid, Scope.JOB, job.job_id, account=job.builder)
        return entry


def _has_report(session: Session, report: WorkReportRow) -> bool:
    """Whether the index keeps a report of this job, round and account (a replay keeps one)."""
    query = select(WorkReportRow.id).where(
        WorkReportRow.job_id == report.job_id,
        WorkReportRow.round == report.round,
        WorkReportRow.account == report.account,
    )
    return session.scalars(query).first() is not None
