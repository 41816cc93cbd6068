"""The coordinator's side of a job: DiLoCo rounds over Flower, run by the node's ServerApp.

Each round: find the providers to train (SuperNodes that proved which account they train for
and whose stake is high enough), send each the global parameters and its shard, wait up to the
round timeout, keep the replies whose signed work report checks out, apply
`cairn.core.diloco.outer_step` with the recipe's aggregator, evaluate, checkpoint, and log the
round. A worker that errs or times out drops out of that round; a round with fewer replies than
`min_workers` is tried again (a few times, then the job fails). Screens flag suspect updates, and
sampled rounds are replayed once the model is written (`Verification`); all of it goes into the
job folder (`JobDir`): the coordinator touches no chain and no index.

A checkpoint after every round makes the job resumable: a new run of the same job starts after
the newest checkpoint. A coordinator whose job was taken over by a newer run stops.
"""

from __future__ import annotations

import contextlib
import logging
import time
from pathlib import Path
from typing import Any

import httpx
import torch
from eth_account import Account
from eth_account.messages import encode_defunct
from flwr.app import ConfigRecord, Message, RecordDict
from flwr.serverapp import Grid

from cairn.compute import reports
from cairn.compute.checkpoints import latest_checkpoint, save_checkpoint
from cairn.compute.exchange import exchange
from cairn.compute.jobdir import JobDir, JobSpec
from cairn.compute.records import (
    IDENTIFY,
    RoundTask,
    WorkerReply,
    array_bytes,
    parse_reply,
    task_message,
)
from cairn.compute.reports import check_round_inputs, json_digest, params_digest, verify_report
from cairn.compute.verification import Verification
from cairn.core.aggregation import make_aggregator
from cairn.core.diloco import OuterState, outer_step
from cairn.core.errors import CairnError, InvalidInput
from cairn.train.adapters import AdapterBase
from cairn.train.inner import evaluate, load_params
from cairn.train.models import hyperparameters, initial_params, load_for_method, save_result
from cairn.verify.screens import RoundScreens

log = logging.getLogger("cairn.coordinator")
TTL_MARGIN = 30.0  # seconds a round's messages outlive its time limit: the reply's way back
ROUND_RETRIES = 3  # a round short of min_workers is tried this many more times
POLL_SECONDS = 1.0  # between looks for workers to come online
WAIT_FOR_ALL = 30.0  # seconds a round waits for all its workers before taking fewer
SILENT_BACKOFF = 120.0  # seconds before asking a node that did not answer who it is again


class Superseded(Exception):
    """A newer run owns the job: this coordinator must stop without touching it."""


class Coordinator:
    """Runs one job's rounds on a Flower grid, writing everything into its job folder."""

    def __init__(self, grid: Grid, job: JobDir, run_id: int) -> None:
        self.grid = grid
        self.job = job
        self.run_id = run_id
        self.spec: JobSpec = job.spec()
        self.hparams = hyperparameters(self.spec.method, self.spec.hparams)
        self.providers: dict[int, str] = {}  # Flower node id -> provider account
        self.stakes: dict[int, int] = {}  # what each identified provider staked
        self.announced: set[int] = set()  # providers given work (the node enlists them)
        self.refused: set[int] = set()
        self.silent: dict[int, float] = {}  # node -> when it may be asked again
        self.screens = RoundScreens()  # suspicions on each round's updates, for the replay
        self.verification = Verification(grid, job, self.spec)  # the replay after the last round

    # -- the job ------------------------------------------------------------------------------

    def run(self) -> None:
        """Train every remaining round, then evaluate and write the model."""
        try:
            self._run()
        except Superseded:
            log.info("job %s is owned by a newer run; run %d stops", self.spec.job_id, self.run_id)
        except CairnError as exc:
            self._fail(exc.message)
        except Exception as exc:  # the node must learn of any crash, not find a silent run
            log.exception("job %s crashed", self.spec.job_id)
            self._fail(f"{type(exc).__name__}: {exc}")

    def _fail(self, error: str) -> None:
        with contextlib.suppress(Superseded):
            self._event("failed", error=error)

    def _run(self) -> None:
        spec = self.spec
        model, tokenizer = load_for_method(
            spec.method, Path(spec.base_folder), self.hparams, labels=spec.labels, seed=spec.seed
        )
        checkpoint = latest_checkpoint(self.job)
        if checkpoint is None:
            done, params, outer = 0, initial_params(model), OuterState()
            save_checkpoint(self.job, 0, params, outer)
        else:
            done, params, outer = checkpoint
            load_params(model, params)
        self._event("started", resumed_after=done)
        eval_records = self.job.eval_records()
        aggregator = make_aggregator(
            spec.aggregation, trim_ratio=spec.trim_ratio, byzantine=spec.byzantine
        )

        round_, failures = done + 1, 0
        while round_ <= spec.rounds:
            self._check_owner()
            if self.job.cancel_requested():
                self._event("cancelled", round=round_ - 1)
                return
            started = time.perf_counter()
            replies, dropped, sent_bytes = self._train_round(round_, params)
            exchanged = time.perf_counter() - started  # sent, trained, replied and verified
            if len(replies) < spec.min_workers:
                failures += 1
                self._event(
                    "round_failed",
                    round=round_,
                    replies=len(replies),
                    needed=spec.min_workers,
                    dropped=dropped,
                )
                if failures > ROUND_RETRIES:
                    raise InvalidInput(
                        f"round {round_}: fewer than min_workers={spec.min_workers} replies "
                        f"{failures} times; start more workers and resume the job"
                    )
                continue
            failures = 0
            screens = self.screens.screen(
                round_, params, {r.node_id: (r.report.account, r.params) for r in replies}
            )
            self.verification.keep(round_, params, replies, screens)
            params, outer = outer_step(
                params,
                [r.params for r in replies],
                [float(r.report.samples) for r in replies],
                outer,
                lr=spec.outer_lr,
                momentum=spec.outer_momentum,
                nesterov=spec.nesterov,
                aggregator=aggregator,
            )
            load_params(model, params)
            metrics: dict[str, float] = {}
            if round_ % spec.eval_every == 0 or round_ == spec.rounds:
                limit = eval_records[: spec.eval_limit]
                metrics = evaluate(
                    spec.method, model, tokenizer, limit, self.hparams, labels=spec.labels
                )
            self._check_owner()
            save_checkpoint(self.job, round_, params, outer)
            wall = time.perf_counter() - started
            compute = max(r.report.compute_seconds for r in replies)
            samples = sum(r.report.samples for r in replies)
            for r in replies:
                self._event("report", **reports.published_report(r.report, r.signature))
            self._event(
                "round",
                round=round_,
                rounds=spec.rounds,
                workers=[
                    {
                        "node_id": r.node_id,
                        "account": r.report.account,
                        **r.metrics,
                        "update_bytes": r.update_bytes(),
                        "received_bytes": r.wire_bytes,
                    }
                    for r in replies
                ],
                dropped=dropped,
                screens=screens,
                sent_bytes=sent_bytes * (len(replies) + len(dropped)),
                train_loss=sum(r.report.loss * r.report.samples for r in replies) / max(samples, 1),
                eval=metrics,
                seconds=wall,
                compute_seconds=compute,
                overhead_seconds=max(wall - compute, 0.0),
                exchange_seconds=exchanged,  # the rest of the wall: outer step, eval, checkpoint
            )
            round_ += 1

        final = evaluate(
            spec.method, model, tokenizer, eval_records, self.hparams, labels=spec.labels
        )
        self._check_owner()
        labels = tuple(spec.labels) if spec.method == "classify" and spec.labels else None
        base = AdapterBase(spec.base_asset, spec.base_manifest, labels)
        save_result(model, tokenizer, Path(self.job.model), base)
        self._event("verified", **self.verification.verify(model, tokenizer))  # moves `model`
        self._event("finished", metrics=final, rounds=spec.rounds)

    # -- one round -----------------------------------------------------------------------------

    def _train_round(
        self, round_: int, params: dict[str, torch.Tensor]
    ) -> tuple[list[WorkerReply], list[dict[str, Any]], int]:
        """Send the round to the selected workers; the verified replies, the dropped, and the
        bytes of arrays sent to each worker."""
        spec = self.spec
        nodes = self._select_workers()
        if not nodes:
            return [], [], 0
        for node_id in nodes:  # only a provider given work is enlisted (its stake locked)
            if node_id not in self.announced:
                account, stake = self.providers[node_id], self.stakes[node_id]
                self._event("provider", node_id=node_id, account=account, stake=stake)
                self.announced.add(node_id)
        messages = []
        sent: dict[int, dict[str, Any]] = {}  # each node's round inputs, as its report must name
        start = params_digest(params)
        for shard, node_id in enumerate(nodes):
            task = RoundTask(
                job_id=spec.job_id,
                method=spec.method,
                hparams=spec.hparams,
                base_manifest=spec.base_manifest,
                train_cid=spec.train_cid,
                node_url=spec.node_url,
                round=round_,
                shard=shard,
                shards=len(nodes),
                steps=spec.inner_steps,
                seed=(spec.seed * 1_000_003 + round_ * 1_009 + shard) % 2**31,
                start_step=(round_ - 1) * spec.inner_steps,
                total_steps=spec.rounds * spec.inner_steps,
                labels=spec.labels,
                teacher_manifest=spec.teacher_manifest,
                blob_token=spec.blob_token,
                encoding=spec.outer_encoding,
            )
            messages.append(
                task_message(task, params, node_id, ttl=spec.round_timeout_s + TTL_MARGIN)
            )
            sent[node_id] = {
                "shard": shard,
                "start_digest": start,
                "seed": task.seed,
                "train_cid": task.train_cid,
                "shards": task.shards,
                "hparams_digest": json_digest(task.hparams),
                "start_step": task.start_step,
                "total_steps": task.total_steps,
            }
        answered = exchange(self.grid, messages, timeout=spec.round_timeout_s)
        replies: list[WorkerReply] = []
        dropped: list[dict[str, Any]] = []
        seen = set()
        for message in answered:
            node_id = message.metadata.src_node_id
            seen.add(node_id)
            try:
                reply = parse_reply(message)
                check_round_inputs(reply.report, sent.get(reply.report.node_id, {"node_id": -1}))
                self._check_reply(reply, round_, params)
                replies.append(reply)
            except InvalidInput as exc:
                dropped.append({"node_id": node_id, "reason": exc.message})
        for node_id in nodes:
            if node_id not in seen:
                dropped.append(
                    {"node_id": node_id, "reason": f"no reply within {spec.round_timeout_s} s"}
                )
                self.providers.pop(node_id, None)  # ask again before trusting it with work
        return replies, dropped, array_bytes(messages[0].content)

    def _check_reply(
        self, reply: WorkerReply, round_: int, global_params: dict[str, torch.Tensor]
    ) -> None:
        """Refuse a reply whose report is not for this job, round, node and these weights."""
        report = reply.report
        expected = self.providers.get(reply.node_id)
        if expected is None or report.account.lower() != expected.lower():
            raise InvalidInput(f"report names {report.account}, not the node's provider")
        if report.job_id != self.spec.job_id or report.round != round_:
            raise InvalidInput("report is for another job or round")
        if report.node_id != reply.node_id:
            raise InvalidInput("report names another node")
        verify_report(report, reply.signature)
        update = reply.encoded
        if (update.encoding if update is not None else "float32") != self.spec.outer_encoding:
            raise InvalidInput(f"the update is not sent as {self.spec.outer_encoding}")
        digest = params_digest(reply.params) if update is None else update.digest()
        if digest != report.params_digest:
            raise InvalidInput("the weights sent are not the weights the report signs")
        if update is not None:
            reply.params = update.params(global_params)  # InvalidInput if they do not fit
        if set(reply.params) != set(global_params):
            raise InvalidInput("the weights sent do not have the job's parameter names")

    # -- providers -----------------------------------------------------------------------------

    def _select_workers(self) -> list[int]:
        """Up to `workers` identified, staked providers, in node-id order.

        Waits for all `workers` for up to half the round timeout (at most WAIT_FOR_ALL), then
        takes `min_workers` or more; after the whole timeout takes whatever is ready.
        """
        started = time.monotonic()
        patience = min(WAIT_FOR_ALL, self.spec.round_timeout_s / 2)
        while True:
            online = sorted(int(n) for n in self.grid.get_node_ids())
            now = time.monotonic()
            unknown = [
                n
                for n in online
                if n not in self.providers
                and n not in self.refused
                and self.silent.get(n, 0.0) <= now
            ]
            if unknown:
                self._identify(unknown)
            ready = [n for n in online if n in self.providers]
            waited = time.monotonic() - started
            if (
                len(ready) >= self.spec.workers
                or (len(ready) >= self.spec.min_workers and waited >= patience)
                or waited >= self.spec.round_timeout_s
            ):
                return ready[: self.spec.workers]
            time.sleep(POLL_SECONDS)

    def _identify(self, nodes: list[int]) -> None:
        """Ask `nodes` which account they train for; keep those that prove it and have stake."""
        challenges = {n: f"cairn-worker:{self.spec.job_id}:{self.run_id}:{n}" for n in nodes}
        messages = [
            Message(RecordDict({"challenge": ConfigRecord({"challenge": c})}), n, IDENTIFY)
            for n, c in challenges.items()
        ]
        timeout = min(60.0, float(self.spec.round_timeout_s))
        answered = set()
        for reply in exchange(self.grid, messages, timeout=timeout):
            node_id = reply.metadata.src_node_id
            answered.add(node_id)
            if reply.has_error():
                self._refuse(node_id, f"identify failed: {reply.error.reason}")
                continue
            try:
                identity = reply.content["identity"]
                account = str(identity["account"])
                signature = str(identity["signature"])
                signer = Account.recover_message(
                    encode_defunct(text=challenges[node_id]), signature=signature
                )
            except Exception as exc:  # a malformed answer from an untrusted node
                self._refuse(node_id, f"malformed identity: {exc}")
                continue
            if signer.lower() != account.lower():
                self._refuse(node_id, f"signature is by {signer}, not {account}")
                continue
            stake = self._stake(account)
            if stake < self.spec.min_stake:
                self._refuse(node_id, f"{account} stakes {stake}, below {self.spec.min_stake}")
                continue
            self.providers[node_id] = account
            self.stakes[node_id] = stake
            self.announced.discard(node_id)  # announced again when next given work
            self.silent.pop(node_id, None)
        for node_id in set(nodes) - answered:  # dead, or busy: ask again later, not every poll
            self.silent[node_id] = time.monotonic() + SILENT_BACKOFF

    def _refuse(self, node_id: int, reason: str) -> None:
        self.refused.add(node_id)
        self._event("provider_refused", node_id=node_id, reason=reason)

    def _stake(self, account: str) -> int:
        """The account's stake in JobEscrow, as the node reports it (0 unless an active provider)."""
        try:
            response = httpx.get(f"{self.spec.node_url}/api/v1/providers/{account}", timeout=10)
        except httpx.HTTPError:
            return 0
        if response.status_code != 200:
            return 0
        body = response.json()
        return int(body.get("stake", "0")) if body.get("active") else 0

    # -- the job folder ------------------------------------------------------------------------

    def _check_owner(self) -> None:
        if self.job.run_id() != self.run_id:
            raise Superseded

    def _event(self, kind: str, **fields: Any) -> None:
        if self.job.run_id() not in (None, self.run_id):
            raise Superseded
        self.job.append(kind, run_id=self.run_id, **fields)
