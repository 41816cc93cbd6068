"""Training jobs on the node: create from a recipe, run on Flower, follow, cancel, resume.

`create` checks a recipe against what the node has (the base model, the dataset versions, the
method's fields in their records), holds out the evaluation split, stores the training records
and the recipe by CID, funds the budget in `JobEscrow` (or checks a budget the builder funded
itself), writes the job folder and starts a Flower run. `tick` (the node's scheduler calls it)
reads each running job's events into the index: providers are enlisted on chain, accepted work
reports kept, each round's checkpoint stored by CID and its metrics added to the history; a
finished job is `finishing` until `cairn.compute.finish` has taken all its steps. Each event's
effect is written with the offset past it in one transaction, and what it does outside the index
is idempotent, so a crash replays no event's effect twice. `resume` starts a new run for every job
that was running when the node stopped (the run continues after the job's newest checkpoint) and
drives on every job left finishing; `tick` retries finishing too.
"""

from __future__ import annotations

import json
import logging
import secrets
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from eth_account.signers.local import LocalAccount
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from cairn.assets.content import Scope
from cairn.assets.service import AssetService
from cairn.chain.contracts import Chain
from cairn.chain.escrow import Enlistment, JobState
from cairn.compute.finish import Finisher
from cairn.compute.inputs import held_out_split, training_records
from cairn.compute.jobdir import JobDir, JobSpec
from cairn.compute.models import JobRow, WorkReportRow
from cairn.compute.reports import report_from_json, report_leaf, verify_report
from cairn.compute.superlink import SuperLink
from cairn.core.errors import CairnError, Conflict, Forbidden, InvalidInput, NotFound
from cairn.core.licensing import Use
from cairn.core.recipe import DEADLINE_SLACK, Recipe, recipe_to_yaml
from cairn.data.service import DataService
from cairn.db.engine import Database
from cairn.economy.licences import LicenceBook
from cairn.identity.signers import Signers
from cairn.store.base import BlobStore
from cairn.train.catalog import ModelCatalog
from cairn.train.inner import check_inputs
from cairn.train.models import FAMILY_OF, hyperparameters

log = logging.getLogger("cairn.jobs")

ACTIVE = ("queued", "running")
FOLLOWED = (*ACTIVE, "finishing")  # what `tick` and `resume` drive on
JOB_STATES = ("queued", "running", "finishing", "finished", "failed", "cancelled")


class JobService:
    """Create, follow, cancel and resume training jobs."""

    def __init__(
        self,
        *,
        db: Database,
        store: BlobStore,
        chain: Chain,
        assets: AssetService,
        data: DataService,
        catalog: ModelCatalog,
        superlink: SuperLink,
        operator: LocalAccount,
        signers: Signers,
        licences: LicenceBook,
        jobs_dir: Path,
        node_url: str,
    ) -> None:
        self.db = db
        self.store = store
        self.chain = chain
        self.assets = assets
        self.data = data
        self.catalog = catalog
        self.superlink = superlink
        self.operator = operator
        self.signers = signers
        self.licences = licences
        self.jobs_dir = jobs_dir
        self.node_url = node_url
        self.finisher = Finisher(
            jobs=self,
            store=store,
            chain=chain,
            assets=assets,
            catalog=catalog,
            operator=operator,
            signers=signers,
        )
        self._lock = threading.Lock()

    # -- create ---------------------------------------------------------------------------------

    def create(
        self,
        builder: str,
        recipe: Recipe,
        *,
        signer: LocalAccount | None = None,
        job_id: str | None = None,
    ) -> dict[str, Any]:
        """Check and start a job for `builder`; returns the job.

        With a budget, either `signer` (the builder's key, held by this node) funds it in
        JobEscrow now, or the builder funded it already under `job_id` (checked on chain).
        """
        method = recipe.method
        hparams = recipe.hyperparameters
        base = self.catalog.resolve(recipe.base_model)
        self.licences.require(Use.TRAIN, base.asset_id, builder)
        for ref in recipe.datasets:
            self.licences.require(Use.TRAIN, ref.dataset, builder)
        family = self.catalog.family(base)
        if family != FAMILY_OF[method]:
            raise InvalidInput(
                f"base_model: {method} trains a {FAMILY_OF[method]} model, but "
                f"asset {base.asset_id} ({base.name}) is a {family}"
            )
        teacher_folder = teacher_manifest = None
        if method == "distill":
            teacher = self.catalog.resolve(hparams.teacher_model)  # type: ignore[attr-defined]
            self.licences.require(Use.TRAIN, teacher.asset_id, builder)
            teacher_folder = str(self.catalog.folder(teacher))
            teacher_manifest = self.catalog.manifest(teacher)

        records, labels, datasets = training_records(self.data, recipe)
        check_inputs(method, records, hyperparameters(method, hparams.model_dump()), labels)
        train, held_out = held_out_split(records, recipe.evaluation.split, recipe.evaluation.seed)

        yaml_text = recipe_to_yaml(recipe)
        recipe_cid = self.store.put(yaml_text.encode())
        train_cid = self.store.put(
            "".join(json.dumps(r, sort_keys=True) + "\n" for r in train).encode()
        )
        budget = int(recipe.budget.max_tokens)
        job_id = self._fund(builder, recipe, budget, base.asset_id, recipe_cid, signer, job_id)
        self.assets.refs.add(recipe_cid, Scope.PUBLIC)  # named on chain by JobEscrow
        base_manifest = self.catalog.manifest(base)
        self._share_with_workers(job_id, builder, train_cid, base_manifest, teacher_manifest)

        spec = JobSpec(
            job_id=job_id,
            method=method,
            hparams=hparams.model_dump(mode="json"),
            base_folder=str(self.catalog.folder(base)),
            base_manifest=base_manifest,
            train_cid=train_cid,
            train_count=len(train),
            node_url=self.node_url,
            workers=recipe.distributed.workers,
            min_workers=recipe.distributed.min_workers,
            rounds=recipe.distributed.rounds,
            inner_steps=recipe.distributed.inner_steps,
            outer_lr=recipe.distributed.outer_lr,
            outer_momentum=recipe.distributed.outer_momentum,
            nesterov=recipe.distributed.nesterov,
            aggregation=recipe.distributed.aggregation,
            trim_ratio=recipe.distributed.trim_ratio,
            byzantine=recipe.distributed.byzantine,
            round_timeout_s=recipe.distributed.round_timeout_s,
            seed=int(getattr(hparams, "seed", 0)),
            min_stake=self.chain.escrow.min_stake(),
            labels=labels,
            teacher_folder=teacher_folder,
            teacher_manifest=teacher_manifest,
            blob_token=self.assets.refs.job_token(job_id),
        )
        folder = self.job_dir(job_id)
        folder.write_spec(spec, held_out)
        now = time.time()
        row = JobRow(
            job_id=job_id,
            builder=builder,
            name=recipe.name,
            method=method,
            status="queued",
            recipe=recipe.model_dump(mode="json"),
            recipe_cid=recipe_cid,
            base_asset=base.asset_id,
            datasets=datasets,
            budget=str(budget),
            escrowed=int(budget > 0),
            round=0,
            rounds=recipe.distributed.rounds,
            run_id=None,
            events_offset=0,
            history=[],
            metrics={},
            providers={},
            error=None,
            model_asset=None,
            model_cid=None,
            shares_cid=None,
            reports_root=None,
            payouts={},
            created_at=now,
            updated_at=now,
            finished_at=None,
        )
        with self.db.session() as session, session.begin():
            session.add(row)
        self._start_run(job_id)
        return self.get(job_id)

    def _fund(
        self,
        builder: str,
        recipe: Recipe,
        budget: int,
        base_asset: int,
        recipe_cid: str,
        signer: LocalAccount | None,
        job_id: str | None,
    ) -> str:
        """The job id, with the budget in escrow (funded now, or checked if funded already)."""
        if job_id is not None:
            job_id = _check_job_id(job_id)
            if budget == 0:
                raise InvalidInput("job_id names an escrowed job, but the recipe's budget is 0")
            on_chain = self.chain.escrow.job(job_id)
            if on_chain.state != JobState.OPEN:
                raise NotFound(f"JobEscrow holds no open job {job_id}: fund it first")
            if on_chain.builder.lower() != builder.lower():
                raise Forbidden(f"escrowed job {job_id} belongs to {on_chain.builder}")
            if on_chain.budget != budget:
                raise InvalidInput(
                    f"escrowed budget {on_chain.budget} differs from the recipe's {budget}"
                )
        else:
            job_id = "0x" + secrets.token_hex(32)
            if budget > 0:
                if signer is None:
                    raise Forbidden(
                        "this node does not hold the builder's key: fund the budget in JobEscrow "
                        "yourself (cairn train does) and pass its job_id"
                    )
                deadline = int(time.time()) + recipe.budget.max_seconds + DEADLINE_SLACK
                self.chain.escrow.create_job(
                    signer, self.chain.token, job_id, budget, base_asset, recipe_cid, deadline
                )
        with self.db.session() as session:
            if session.get(JobRow, job_id) is not None:
                raise Conflict(f"job {job_id} exists")
        return job_id

    # -- read -----------------------------------------------------------------------------------

    def job_dir(self, job_id: str) -> JobDir:
        """The job's folder."""
        return JobDir(self.jobs_dir / _check_job_id(job_id))

    def get(self, job_id: str) -> dict[str, Any]:
        """A job with its status and metric history."""
        with self.db.session() as session:
            row = session.get(JobRow, _check_job_id(job_id))
            if row is None:
                raise NotFound(f"no job {job_id}")
            return job_to_dict(row)

    def list_jobs(self, builder: str | None = None) -> list[dict[str, Any]]:
        """Jobs, newest first (one builder's if given)."""
        with self.db.session() as session:
            query = select(JobRow).order_by(JobRow.created_at.desc())
            if builder:
                query = query.where(JobRow.builder == builder)
            return [job_to_dict(r, history=False) for r in session.scalars(query)]

    def logs(self, job_id: str, start: int = 0) -> tuple[list[dict[str, Any]], int]:
        """The job's events from byte offset `start`, and the next offset."""
        self.get(job_id)
        return self.job_dir(job_id).events(start)

    # -- control --------------------------------------------------------------------------------

    def cancel(self, job_id: str, by: str, signer: LocalAccount | None = None) -> dict[str, Any]:
        """Stop a job (its builder only); a finished job cannot be cancelled.

        With the builder's key (`signer`) an escrowed budget goes back to the builder at once;
        without it the builder cancels the job in JobEscrow itself (`cairn job cancel` does).
        """
        job = self.get(job_id)
        if job["builder"].lower() != by.lower():
            raise Forbidden(f"job {job_id} belongs to {job['builder']}")
        if job["status"] not in ACTIVE:
            raise Conflict(f"job {job_id} is {job['status']}; only a running job can be cancelled")
        self.job_dir(job_id).request_cancel()
        if job["run_id"] is not None:
            self.superlink.stop_run(int(job["run_id"]))
        self.update(job_id, status="cancelled", finished_at=time.time())
        self.finisher.refund(job_id, signer)
        return self.get(job_id)

    def resume(self) -> list[str]:
        """Start a new Flower run for every job that was running, finish those left finishing."""
        with self.db.session() as session:
            query = select(JobRow.job_id, JobRow.status).where(JobRow.status.in_(FOLLOWED))
            jobs = session.execute(query).all()
        for job_id, status in jobs:
            log.info("resuming job %s (%s)", job_id, status)
            if status == "finishing":
                self._guarded(self._finish, job_id)
            else:
                self._start_run(job_id)
        return [job_id for job_id, _ in jobs]

    def _share_with_workers(
        self,
        job_id: str,
        builder: str,
        train_cid: str,
        base_manifest: str,
        teacher_manifest: str | None,
    ) -> None:
        """Let the job's builder, and its workers by the job's token, read what it trains on."""
        refs = self.assets.refs
        cids = [train_cid, *refs.folder_cids(base_manifest)]
        if teacher_manifest:
            cids += refs.folder_cids(teacher_manifest)
        refs.add(cids, Scope.JOB, job_id, account=builder)

    def _start_run(self, job_id: str) -> None:
        folder = self.job_dir(job_id)
        run_id = self.superlink.start_run(folder.path)
        folder.set_run(run_id)
        self.update(job_id, status="running", run_id=str(run_id))

    # -- follow ---------------------------------------------------------------------------------

    def tick(self) -> None:
        """Read every running job's new events into the index; finish the jobs that ended."""
        with self.db.session() as session:
            ids = list(session.scalars(select(JobRow.job_id).where(JobRow.status.in_(FOLLOWED))))
        for job_id in ids:
            self._guarded(self._follow, job_id)

    def _guarded(self, step: Callable[[str], None], job_id: str) -> None:
        """Take a step for one job, one at a time; an error is logged, the job tried again later."""
        with self._lock:
            try:
                step(job_id)
            except CairnError as exc:
                log.warning("job %s: %s", job_id, exc.message)

    def _follow(self, job_id: str) -> None:
        folder = self.job_dir(job_id)
        job = self.get(job_id)
        if job["status"] in ACTIVE:
            # Every line was written by the run that owned the job at the time (a coordinator
            # checks `run.json` before each write), so events of an earlier run still count.
            for event, end in folder.entries(int(job["events_offset"])):
                if self._apply(job_id, folder, event, end) not in ACTIVE:
                    break
            max_seconds = int(job["recipe"]["budget"]["max_seconds"])
            job = self.get(job_id)
            if job["status"] in ACTIVE and time.time() - job["created_at"] > max_seconds:
                folder.request_cancel()
                if job["run_id"] is not None:
                    self.superlink.stop_run(int(job["run_id"]))
                # the refund first: if it breaks off, the job is still running, and stopped again
                self.finisher.refund(job_id, self._builder_key(job_id))
                error = f"exceeded max_seconds={max_seconds}"
                self.update(job_id, status="failed", error=error, finished_at=time.time())
        if self.get(job_id)["status"] == "finishing":
            self._finish(job_id)

    def _finish(self, job_id: str) -> None:
        self.finisher.finish(job_id, self.job_dir(job_id))

    def _apply(self, job_id: str, folder: JobDir, event: dict[str, Any], end: int) -> str:
        """Act on one event and write its effect with `end`, the offset past it, in one
        transaction; returns the job's status. What reaches beyond the index (a transaction, a
        stored blob, a refund) comes first and is idempotent: a replayed event acts once."""
        job = self.get(job_id)
        kind = event["type"]
        fields: dict[str, Any] = {}
        report = None
        if kind == "provider":
            fields["providers"] = self._enlist(job, event["account"], int(event["node_id"]))
        elif kind == "report":
            report = self._checked_report(job_id, event["report"], event["signature"])
        elif kind == "round":
            entry = self._round_entry(job, folder, event)
            others = [h for h in job["history"] if h["round"] != entry["round"]]
            history = sorted([*others, entry], key=lambda h: int(h["round"]))
            fields.update(round=entry["round"], history=history)  # a round is in it once
        elif kind == "failed":
            self.finisher.refund(job_id, self._builder_key(job_id))
            fields.update(status="failed", error=event["error"], finished_at=time.time())
        elif kind == "cancelled":
            fields.update(status="cancelled", finished_at=time.time())
        elif kind == "finished":
            fields.update(status="finishing", metrics=event["metrics"])
        with self.db.session() as session, session.begin():
            if report is not None and not _has_report(session, report):
                session.add(report)
            return _write(session, job_id, {**fields, "events_offset": end}).status

    def _builder_key(self, job_id: str) -> LocalAccount | None:
        """The builder's key when this node holds it unlocked."""
        return self.signers.find(self.get(job_id)["builder"])

    def _enlist(self, job: dict[str, Any], account: str, node_id: int) -> dict[str, Any]:
        """Enlist a provider in the job's escrow unless the chain shows it enlisted; returns the
        job's providers with it."""
        enlisted = False
        if job["escrowed"]:
            escrow = self.chain.escrow
            if escrow.enlistment(job["job_id"], account) == Enlistment.NONE:
                escrow.enlist(self.operator, job["job_id"], account)
            enlisted = True
        return {**job["providers"], account: {"node_id": node_id, "enlisted": enlisted}}

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

    def _round_entry(
        self, job: dict[str, Any], folder: JobDir, event: dict[str, Any]
    ) -> dict[str, Any]:
        """A round's history entry, with its checkpoint stored by CID."""
        entry = {k: event[k] for k in ("round", "train_loss", "eval", "seconds", "dropped")}
        entry["workers"] = [w["account"] for w in event["workers"]]
        entry["compute_seconds"] = event["compute_seconds"]
        checkpoint = folder.checkpoints / f"round-{int(event['round']):06d}.safetensors"
        if checkpoint.exists():
            with checkpoint.open("rb") as fh:
                cid = entry["checkpoint_cid"] = self.store.put_stream(fh)
            # weights trained from the job's data: the job's
            self.assets.refs.add(cid, Scope.JOB, job["job_id"], account=job["builder"])
        return entry

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

    def work_of(self, account: str) -> list[dict[str, Any]]:
        """The jobs `account` took part in as a provider, newest first: the rounds and samples
        of its accepted work reports, and what the job's budget paid it."""
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
                    {
                        "job_id": row.job_id,
                        "name": row.name,
                        "method": row.method,
                        "status": row.status,
                        "model_asset": row.model_asset,
                        "rounds": rounds,  # rounds with an accepted report of this account
                        "samples": samples,
                        "enlisted": bool(enlisted and enlisted.get("enlisted")),
                        "paid": paid or "0",  # from the job's budget in JobEscrow
                    }
                )
        return out

    def update(self, job_id: str, **fields: Any) -> None:
        """Set fields of the job's row."""
        with self.db.session() as session, session.begin():
            _write(session, job_id, fields)


def _write(session: Session, job_id: str, fields: dict[str, Any]) -> JobRow:
    row = session.get(JobRow, job_id)
    if row is None:
        raise NotFound(f"no job {job_id}")
    for key, value in fields.items():
        setattr(row, key, value)
    row.updated_at = time.time()
    return row


def _has_report(session: Session, report: WorkReportRow) -> bool:
    """Whether the index keeps a report of this job, round and account (a replay keeps one)."""
    query = select(WorkReportRow.id).where(
        WorkReportRow.job_id == report.job_id,
        WorkReportRow.round == report.round,
        WorkReportRow.account == report.account,
    )
    return session.scalars(query).first() is not None


def job_to_dict(row: JobRow, history: bool = True) -> dict[str, Any]:
    """A job as the API shows it."""
    out = {
        "job_id": row.job_id,
        "builder": row.builder,
        "name": row.name,
        "method": row.method,
        "status": row.status,
        "round": row.round,
        "rounds": row.rounds,
        "run_id": int(row.run_id) if row.run_id is not None else None,
        "base_asset": row.base_asset,
        "datasets": row.datasets,
        "budget": row.budget,
        "escrowed": bool(row.escrowed),
        "recipe": row.recipe,
        "recipe_cid": row.recipe_cid,
        "metrics": row.metrics,
        "providers": row.providers,
        "error": row.error,
        "model_asset": row.model_asset,
        "model_cid": row.model_cid,
        "shares_cid": row.shares_cid,
        "reports_root": row.reports_root,
        "payouts": row.payouts,
        "events_offset": row.events_offset,
        "created_at": row.created_at,
        "updated_at": row.updated_at,
        "finished_at": row.finished_at,
    }
    if history:
        out["history"] = row.history
    return out


def _check_job_id(job_id: str) -> str:
    text = job_id.lower()
    if (
        len(text) != 66
        or not text.startswith("0x")
        or any(c not in "0123456789abcdef" for c in text[2:])
    ):
        raise InvalidInput(f"a job id is 0x and 64 hex digits; got {job_id!r}")
    return text
