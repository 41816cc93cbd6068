"""Training jobs on the node, the compute domain's façade: launch, read, follow, cancel, resume.

`create` launches a job from a recipe (`cairn.compute.launch`: checked, its inputs stored, its
budget locked in JobEscrow, its folder and row written) and starts a Flower run for it. `tick`
(the node's scheduler calls it) reads each running job's events into the index
(`cairn.compute.follow`); a finished job is `finishing` until `cairn.compute.finish` has taken
all its steps. `resume` starts a new run for every job that was running when the node stopped
(the run continues after the job's newest checkpoint) and drives on every job left finishing;
`tick` retries finishing too. Every answer is a frozen record (`cairn.compute.job`).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from eth_account.signers.local import LocalAccount

from cairn.assets.service import AssetService
from cairn.chain.contracts import Chain
from cairn.compute.choices import (
    TrainableDataset,
    TrainableModel,
    trainable_datasets,
    trainable_models,
)
from cairn.compute.finish import Finisher
from cairn.compute.follow import Follower
from cairn.compute.job import (
    ACTIVE,
    FOLLOWED,
    Job,
    JobEvent,
    JobLog,
    JobSummary,
    check_job_id,
)
from cairn.compute.job_index import JobIndex, ProviderWork
from cairn.compute.jobdir import JobDir
from cairn.compute.launch import Launcher
from cairn.compute.models import WorkReportRow
from cairn.compute.network import ComputeInfo, ProviderStake, compute_info, provider_stake
from cairn.compute.pace import (
    DEFAULT_PACE,
    MEASURED_JOBS,
    MEASURED_ROUNDS,
    SIZE_SAMPLE,
    Pace,
    RoundSample,
    RunConditions,
    measured_pace,
    step_tokens,
    typical_tokens,
)
from cairn.compute.superlink import SuperLink
from cairn.core.errors import CairnError, Conflict, Forbidden
from cairn.core.recipe import Recipe, method_spec, parse_recipe
from cairn.data.service import DataService
from cairn.db.engine import Database
from cairn.economy.licences import LicenceBook
from cairn.identity.signers import Signers
from cairn.store.base import BlobStore
from cairn.train.catalog import ModelCatalog

log = logging.getLogger("cairn.jobs")
SERVERAPP_RESTARTS = 3  # times a job's run is started again after its ServerApp process died


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
        self.chain = chain
        self.assets = assets
        self.data = data
        self.catalog = catalog
        self.superlink = superlink
        self.signers = signers
        self.jobs_dir = jobs_dir
        self.index = JobIndex(db)
        self.launcher = Launcher(
            db, store, chain, assets, data, catalog, signers, licences, jobs_dir, node_url
        )
        self.finisher = Finisher(
            jobs=self.index,
            store=store,
            chain=chain,
            assets=assets,
            catalog=catalog,
            operator=operator,
            signers=signers,
        )
        self.follower = Follower(
            self.index, store, chain, assets, superlink, operator, signers, self.finisher
        )
        self._lock = threading.Lock()

    # -- launch ---------------------------------------------------------------------------------

    def create(self, builder: str, recipe: Recipe, *, job_id: str | None = None) -> Job:
        """Check and start a job for `builder`; returns the job.

        With a budget, either this node holds the builder's key and funds it in JobEscrow now,
        or the builder funded it already under `job_id` (checked on chain).
        """
        job_id = self.launcher.launch(builder, recipe, job_id)
        self._start_run(job_id)
        return self.get(job_id)

    def models(self) -> list[TrainableModel]:
        """Model assets a recipe can start from, newest first."""
        return trainable_models(self.assets, self.catalog)

    def datasets(self) -> list[TrainableDataset]:
        """Datasets a recipe can train on, with their anchored versions."""
        return trainable_datasets(self.data)

    # -- read -----------------------------------------------------------------------------------

    def job_dir(self, job_id: str) -> JobDir:
        """The job's folder."""
        return JobDir(self.jobs_dir / check_job_id(job_id))

    def get(self, job_id: str) -> Job:
        """A job with its status and metric history."""
        return self.index.get(job_id)

    def list_jobs(self, builder: str | None = None) -> list[JobSummary]:
        """Jobs, newest first (one builder's if given)."""
        return self.index.summaries(builder)

    def logs(self, job_id: str, start: int = 0) -> JobLog:
        """The job's events from byte offset `start`, and the next offset."""
        self.get(job_id)
        events, offset = self.job_dir(job_id).events(start)
        return JobLog(events=tuple(JobEvent.model_validate(e) for e in events), offset=offset)

    def reports(self, job_id: str) -> list[WorkReportRow]:
        """The job's accepted work reports, by round then account."""
        return self.index.reports(job_id)

    def work(self, account: str) -> list[ProviderWork]:
        """The jobs `account` took part in as a provider, newest first."""
        return self.index.provider_work(account)

    def network(self) -> ComputeInfo:
        """Where providers' workers connect, and what a provider must stake."""
        return compute_info(self.superlink, self.chain)

    def provider(self, account: str) -> ProviderStake:
        """A provider's stake and state in JobEscrow (zeros if it never registered)."""
        return provider_stake(self.chain, account)

    # -- control --------------------------------------------------------------------------------

    def cancel(self, job_id: str, by: str) -> Job:
        """Stop a job (its builder only); a finished job cannot be cancelled.

        When this node holds the builder's key an escrowed budget goes back to the builder at
        once; else the builder cancels the job in JobEscrow itself (`cairn job cancel` does).
        The job is marked cancelled only once the refund went through: if it fails, the job
        still shows running (asked to stop) and may be cancelled again.
        """
        job = self.get(job_id)
        if job.builder.lower() != by.lower():
            raise Forbidden(f"job {job_id} belongs to {job.builder}")
        if job.status not in ACTIVE:
            raise Conflict(f"job {job_id} is {job.status}; only a running job can be cancelled")
        self.job_dir(job_id).request_cancel()
        if job.run_id is not None:
            self.superlink.stop_run(job.run_id)
        with self._lock:  # not while a tick acts on the job's events
            self.finisher.refund(job_id, self.signers.find(job.builder))
            if self.get(job_id).status in ACTIVE:
                self.index.update(job_id, status="cancelled", finished_at=time.time())
        return self.get(job_id)

    def resume(self) -> list[str]:
        """Start a new Flower run for every job that was running, finish those left finishing."""
        jobs = self.index.ids(FOLLOWED)
        for job_id, status in jobs:
            log.info("resuming job %s (%s)", job_id, status)
            if status == "finishing":
                self._guarded(self._finish, job_id)
            else:
                self._start_run(job_id)
        return [job_id for job_id, _ in jobs]

    def _start_run(self, job_id: str) -> None:
        folder = self.job_dir(job_id)
        run_id = self.superlink.start_run(folder.path)
        folder.set_run(run_id)
        self.index.update(job_id, status="running", run_id=str(run_id))

    # -- follow ---------------------------------------------------------------------------------

    def tick(self) -> None:
        """Read every running job's new events into the index; finish the jobs that ended."""
        for job_id, _ in self.index.ids(FOLLOWED):
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
        gone = folder.serverapp_gone()  # before reading: all it wrote is then read below
        self.follower.follow(job_id, folder)
        status = self.get(job_id).status
        if status == "finishing":
            self._finish(job_id)
        elif status in ACTIVE and gone:
            self._restart(job_id, folder)

    def _restart(self, job_id: str, folder: JobDir) -> None:
        """The job's ServerApp process died under a node that did not (killed, out of memory)
        without writing its end: a new run takes the job up from its last checkpoint, as after a
        node restart; after `SERVERAPP_RESTARTS` of them the job fails and is refunded."""
        old_run = folder.run_id()
        restarts = sum(1 for e in folder.events()[0] if e["type"] == "serverapp_died")
        if restarts >= SERVERAPP_RESTARTS:
            folder.append(
                "failed",
                error=f"its ServerApp process died {restarts + 1} times; see the node's log",
            )
            self.follower.follow(job_id, folder)  # the refund, and the job marked failed
        else:
            folder.append("serverapp_died", run_id=old_run, restart=restarts + 1)
            log.warning("job %s: its ServerApp (run %s) died: starting it again", job_id, old_run)
            self._start_run(job_id)
        if old_run is not None:
            self.superlink.stop_run(old_run)

    def _finish(self, job_id: str) -> None:
        self.finisher.finish(job_id, self.job_dir(job_id))

    # -- pace: what a run takes on this node (the builder's time estimate) ----------------------

    def conditions(self, recipe: Recipe) -> RunConditions:
        """How fast `recipe` would train here: the pace this node's newest rounds on its base
        model (or the model that model adapts) show, a default rate without any; its records'
        typical tokens; the providers online now."""
        family = method_spec(recipe.method).family
        try:
            base = self._same_weights(self.catalog.resolve(recipe.base_model).asset_id)
        except CairnError:
            base = None
        refs = [(ref.dataset, ref.version) for ref in recipe.datasets]
        return RunConditions(
            pace=self._measured_pace(base) or DEFAULT_PACE[family],
            record_tokens=self._record_tokens(recipe.method, refs),
            online=self._providers_online(),
        )

    def _measured_pace(self, base: int | None) -> Pace | None:
        samples: list[RoundSample] = []
        started = [s for s in self.index.summaries() if s.round > 0]
        models = {a: self._same_weights(a) for a in {s.base_asset for s in started}}
        jobs = [s for s in started if base is not None and models[s.base_asset] == base]
        for summary in jobs[:MEASURED_JOBS]:
            job = self.get(summary.job_id)
            try:
                recipe = parse_recipe(job.recipe)
            except CairnError:
                continue  # a recipe this version of Cairn no longer reads: no measure
            refs = [(use.dataset, use.version) for use in job.datasets]
            step = step_tokens(recipe, self._record_tokens(job.method, refs))
            samples += [
                RoundSample(step * job.inner_steps, entry.compute_seconds, entry.seconds)
                for entry in job.history
            ]
        return measured_pace(samples[-MEASURED_ROUNDS:] if samples else [])

    def _same_weights(self, asset_id: int) -> int | None:
        """The model asset whose weights train at the same pace: an adapter's base, or itself."""
        try:
            adapter = self.catalog.adapter(self.assets.get(asset_id))
        except CairnError:
            return None
        return adapter.asset_id if adapter is not None else asset_id

    def _record_tokens(self, method: str, refs: Sequence[tuple[int, str | None]]) -> int | None:
        """A typical record's tokens over the datasets' versions (the newest where None)."""
        spec = method_spec(method)
        sizes: list[int] = []
        for dataset, version in refs:
            try:
                records = self.data.anchoring.records(dataset, version)
            except CairnError:
                continue  # no such dataset or version yet: the recipe's check says so
            sizes += [
                sum(len(str(record.get(name, "")).encode()) for name in spec.fields)
                for record in records[:SIZE_SAMPLE]
            ]
        return typical_tokens(sizes, spec.family)

    def _providers_online(self) -> int | None:
        """SuperNodes online at the SuperLink (0 when it is not running; None: it did not say)."""
        if not self.superlink.running:
            return 0
        try:
            return sum(1 for s in self.superlink.supernodes().values() if s == "online")
        except CairnError:
            return None
