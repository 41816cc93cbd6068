"""One round of a job on a provider's machine, with what it loads kept for the next round.

`RoundRunner.run` is the work behind the ClientApp's `train`: fetch the base model and the
training records by CID (verified, cached on disk), build the model as the coordinator did, load
the round's global parameters, run `inner_train` for H steps on this worker's shard carrying
its AdamW state from its last round, and answer with the new parameters, the metrics and a
`WorkReport` signed by the provider's key.

A runner that lives across rounds (the resident trainer of `cairn worker start`,
`cairn.provider.trainer`) keeps the built model and tokenizer of the last few jobs, their
records and the optimizer state in memory, so a round pays for loading only once per job. A
model reused across rounds is the same as one built afresh: every weight training changes is
overwritten by the round's global parameters, and the rest is the base model's. The AdamW
state is also written to the work folder after every round, so a restarted worker resumes it.

A job whose task asks for an int8 or int4 update gets this worker's pseudo-gradient encoded
with error feedback (`cairn.core.quantize.ErrorFeedback`): what rounding left out of one round
is added to the next. That residual is the worker's to keep, per job, in memory and in the
work folder, like the optimizer state.

The AdamW state each round resumed is kept too (`resumed_path`: a hard link to the file the
round before wrote, so no copy), for `KEEP_RESUMED_SECONDS`: a coordinator or validator may ask
for it after the job to replay the round (`resumed_state`, the ClientApp's `reveal`), and a
worker that cannot show the state its report signed fails the replay.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import time
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from safetensors.torch import load_file, save_file

from cairn.compute.records import EncodedUpdate, RoundTask, reply_content
from cairn.compute.reports import (
    WorkReport,
    json_digest,
    params_digest,
    sign_report,
    state_digest,
)
from cairn.core.diloco import pseudo_gradient
from cairn.core.errors import InvalidInput
from cairn.core.quantize import ENCODINGS, ErrorFeedback
from cairn.provider.blobs import BlobCache
from cairn.train.inner import inner_train, load_params
from cairn.train.models import hyperparameters, load_for_method

if TYPE_CHECKING:
    from eth_account.signers.local import LocalAccount
    from flwr.app import RecordDict

log = logging.getLogger("cairn.provider.rounds")

KEEP_JOBS = 2  # built models kept in memory: a provider rarely trains more jobs at once
KEEP_RESUMED_SECONDS = 14 * 86_400  # how long a round's resumed AdamW state stays revealable


@dataclass
class _Loaded:
    """A job's model as built for its method, and its tokenizer."""

    model: Any
    tokenizer: Any


class RoundRunner:
    """Runs rounds for one provider, keeping loaded models, records and optimizer state."""

    def __init__(
        self, work_dir: Path, keep_jobs: int = KEEP_JOBS, blob_source: Path | None = None
    ) -> None:
        self.work_dir = work_dir
        self.blob_source = blob_source  # a node's blob folder on this machine, to link from
        self.keep_jobs = keep_jobs
        self._models: OrderedDict[tuple[Any, ...], _Loaded] = OrderedDict()
        self._records: OrderedDict[str, list[dict[str, Any]]] = OrderedDict()
        self._optimizer: dict[tuple[str, int], tuple[int, dict[str, Any]]] = {}
        self._feedback: dict[str, ErrorFeedback] = {}  # job -> its update encoder

    def run(
        self,
        task: RoundTask,
        global_params: dict[str, torch.Tensor],
        account: LocalAccount,
        node_id: int,
    ) -> RecordDict:
        """Train `task` from `global_params`; the reply's content, its report signed."""
        began = time.perf_counter()
        hparams = hyperparameters(task.method, task.hparams)
        cache = BlobCache(
            task.node_url, self.work_dir / "blobs", task.blob_token, source=self.blob_source
        )
        records = self._all_records(cache, task.train_cid)[task.shard :: task.shards]
        start_digest = params_digest(global_params)  # what the round starts from, for replay
        loaded = self._model(cache, task, hparams)
        load_params(loaded.model, global_params)
        teacher = None
        if task.teacher_manifest:
            teacher = self._teacher(cache, task, hparams)

        state_file = self.work_dir / "jobs" / task.job_id / f"optimizer-{task.shard}.pt"
        kept_state = self._load_state(task, state_file)
        optimizer_digest = state_digest(kept_state)  # before training moves it in place
        if kept_state is not None:  # the file of the round before holds it: keep it revealable
            _keep_resumed(
                state_file, resumed_path(self.work_dir, task.job_id, task.round, task.shard)
            )
        self._optimizer.pop((task.job_id, task.shard), None)  # training moves it in place
        started = time.perf_counter()
        result = inner_train(
            task.method,
            loaded.model,
            loaded.tokenizer,
            records,
            hparams,
            steps=task.steps,
            seed=task.seed,
            teacher=teacher,
            labels=task.labels,
            start_step=task.start_step,
            total_steps=task.total_steps,
            optimizer_state=kept_state,
        )
        compute_seconds = time.perf_counter() - started
        self._save_state(task, state_file, result.optimizer_state)
        update: dict[str, torch.Tensor] | EncodedUpdate = result.params
        digest = params_digest(result.params)
        if task.encoding != "float32":
            update = self._encode(task, pseudo_gradient(global_params, result.params))
            digest = update.digest()

        report = WorkReport(
            job_id=task.job_id,
            round=task.round,
            account=account.address,
            node_id=node_id,
            shard=task.shard,
            steps=result.steps,
            samples=result.samples,
            loss=float(result.loss),
            params_digest=digest,
            compute_seconds=round(compute_seconds, 4),
            start_digest=start_digest,
            seed=task.seed,
            train_cid=task.train_cid,
            shards=task.shards,
            hparams_digest=json_digest(task.hparams),
            start_step=task.start_step,
            total_steps=task.total_steps,
            optimizer_digest=optimizer_digest,
        )
        metrics = {"loss": result.loss, "compute_seconds": compute_seconds, **result.metrics}
        content = reply_content(update, report, sign_report(report, account), metrics)
        log.info(
            "round %d of job %s: set-up %.2f s, training %.2f s, reply %.2f s",
            task.round,
            task.job_id[:10],
            started - began,
            compute_seconds,
            time.perf_counter() - started - compute_seconds,
        )
        return content

    def _encode(self, task: RoundTask, delta: dict[str, torch.Tensor]) -> EncodedUpdate:
        """This round's pseudo-gradient encoded as the task asks, with the job's residual."""
        if task.encoding not in ENCODINGS:
            raise InvalidInput(f"unknown update encoding {task.encoding!r}")
        path = self.work_dir / "jobs" / task.job_id / "residual.safetensors"
        feedback = self._feedback.get(task.job_id)
        if feedback is None or feedback.encoding != task.encoding:
            feedback = ErrorFeedback(task.encoding)  # type: ignore[arg-type]
            if path.exists():
                feedback.residual = load_file(path)  # a restarted worker still owes it
            self._feedback = {k: v for k, v in self._feedback.items() if k in self._jobs()}
            self._feedback[task.job_id] = feedback
        update = EncodedUpdate.of(feedback.encode(delta))
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        save_file({k: v.contiguous() for k, v in feedback.residual.items()}, str(tmp))
        os.replace(tmp, path)
        return update

    def _jobs(self) -> set[str]:
        """The jobs whose models are kept in memory."""
        return {key[0] for key in self._models}

    # -- what is kept ----------------------------------------------------------------------------

    def _all_records(self, cache: BlobCache, cid: str) -> list[dict[str, Any]]:
        if cid not in self._records:
            self._records[cid] = cache.records(cid)
            _trim(self._records, self.keep_jobs)
        self._records.move_to_end(cid)
        return self._records[cid]

    def _model(self, cache: BlobCache, task: RoundTask, hparams: Any) -> _Loaded:
        labels = tuple(task.labels) if task.labels is not None else None
        key = (task.job_id, task.method, task.base_manifest, labels)
        if key not in self._models:
            folder = cache.model_folder(task.base_manifest)
            model, tokenizer = load_for_method(task.method, folder, hparams, labels=task.labels)
            self._models[key] = _Loaded(model, tokenizer)
            _trim(self._models, self.keep_jobs)
        self._models.move_to_end(key)
        return self._models[key]

    def _teacher(self, cache: BlobCache, task: RoundTask, hparams: Any) -> Any:
        assert task.teacher_manifest is not None
        key = ("teacher", task.job_id, task.teacher_manifest)
        if key not in self._models:
            folder = cache.model_folder(task.teacher_manifest)
            teacher, tokenizer = load_for_method("sft", folder, hparams)
            teacher.eval()
            self._models[key] = _Loaded(teacher, tokenizer)
            _trim(self._models, 2 * self.keep_jobs)
        self._models.move_to_end(key)
        return self._models[key].model

    def _load_state(self, task: RoundTask, path: Path) -> dict[str, Any] | None:
        """This shard's AdamW state, if it was kept after the round just before this one."""
        kept = self._optimizer.get((task.job_id, task.shard))
        if kept is not None and kept[0] == task.round - 1:
            return kept[1]
        if not path.exists():
            return None
        saved = torch.load(path, weights_only=True)
        if saved.get("round") != task.round - 1:
            return None  # a gap (the worker missed rounds): start the moments afresh
        state: dict[str, Any] = saved["state"]
        return state

    def _save_state(self, task: RoundTask, path: Path, state: dict[str, Any] | None) -> None:
        if state is None:
            return
        jobs = {key[0] for key in self._models} | {task.job_id}
        for key in [k for k in self._optimizer if k[0] not in jobs]:
            del self._optimizer[key]  # a job whose model is no longer kept
        self._optimizer[(task.job_id, task.shard)] = (task.round, state)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        torch.save({"round": task.round, "state": state}, tmp)
        os.replace(tmp, path)


def resumed_path(work_dir: Path, job_id: str, round_: int, shard: int) -> Path:
    """Where a worker keeps the AdamW state round `round_` of `job_id` resumed as `shard`."""
    return work_dir / "jobs" / job_id / "resumed" / f"round-{round_:06d}-shard-{shard}.pt"


def resumed_state(work_dir: Path, job_id: str, round_: int, shard: int) -> dict[str, Any] | None:
    """The AdamW state that round resumed, as its report's `optimizer_digest` signs it; None
    where it started afresh (or this worker keeps no state of it: then its digest is not "")."""
    path = resumed_path(work_dir, job_id, round_, shard)
    if not path.exists():
        return None
    saved = torch.load(path, weights_only=True)
    state: dict[str, Any] = saved["state"]
    return state


def _keep_resumed(source: Path, path: Path) -> None:
    """Link the optimizer file the round before wrote to `path`; drop states kept too long."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.exists() and source.exists():
        tmp = path.with_suffix(".tmp")
        tmp.unlink(missing_ok=True)
        try:
            os.link(source, tmp)  # the next save replaces `source` by a new file: this one stays
        except OSError:  # a file system without hard links: a copy then
            shutil.copyfile(source, tmp)
        os.replace(tmp, path)
    cutoff = time.time() - KEEP_RESUMED_SECONDS
    for old in path.parents[2].glob("*/resumed/round-*.pt"):
        with contextlib.suppress(FileNotFoundError):
            if old.stat().st_mtime < cutoff:
                old.unlink()


def _trim(kept: OrderedDict[Any, Any], size: int) -> None:
    while len(kept) > size:
        kept.popitem(last=False)
