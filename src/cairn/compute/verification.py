"""The coordinator's check of its providers' work: a sampled replay after the last round.

During the job the coordinator keeps every accepted reply (its signed report and a sketch of its
update, `cairn.verify.jobs.JobReplays`) and the rounds the screens flagged. Once the model is
written, it draws the rounds to replay from the kept reports, asks each drawn worker for the
AdamW state that round resumed (a `query.reveal` message; none for a round that started
afresh), fetches the training records by CID as the workers did, and trains each drawn round
again from the checkpoint it started from. The verdicts go into the job's events (`verified`),
a failure's evidence into `verify/`.

Not replayed (the verdicts say why): jobs whose updates travel quantised (the report signs the
integers, whose rounding the replay cannot compare at the tolerance) and distillation (the
teacher is not loaded on the coordinator). A worker that is offline or does not reveal its state
is `unrevealed`: not evidence of fraud, but not verified either. Nothing here fails the job: an
error while verifying is recorded as the verification's error.
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict
from typing import Any

import httpx
import torch
from flwr.serverapp import Grid
from safetensors.torch import load_file

from cairn.compute.blobs import JOB_TOKEN_HEADER
from cairn.compute.exchange import exchange
from cairn.compute.jobdir import JobDir, JobSpec
from cairn.compute.records import WorkerReply, reveal_message, state_from_content
from cairn.core.cid import CID, cid_of
from cairn.core.errors import CairnError, InvalidInput, Unavailable
from cairn.verify.jobs import JobReplays, KeptRound
from cairn.verify.replay import RoundInputs, Verdict

log = logging.getLogger("cairn.coordinator")

REVEAL_SECONDS = 60.0  # how long a drawn worker has to reveal a round's AdamW state


def not_replayable(spec: JobSpec) -> str | None:
    """Why this job's rounds cannot be replayed, or None."""
    if spec.outer_encoding != "float32":
        return f"updates travel as {spec.outer_encoding}: the replay compares float32 weights"
    if spec.method == "distill":
        return "distillation: the teacher is not loaded on the coordinator"
    return None


class Verification:
    """One job's kept replies, flagged rounds, and the replay of a sample at the end."""

    def __init__(self, grid: Grid, job: JobDir, spec: JobSpec) -> None:
        self.grid = grid
        self.job = job
        self.spec = spec
        self.replays = JobReplays(job.path / "verify")
        self.skipped = not_replayable(spec)
        self.flagged: list[tuple[int, int]] = []  # (node, round) a screen flagged

    def keep(
        self,
        round_: int,
        start: dict[str, torch.Tensor],
        replies: list[WorkerReply],
        screens: list[dict[str, Any]],
    ) -> None:
        """Keep the round's accepted replies and its flags for the replay at the end."""
        if self.skipped:
            return
        for reply in replies:
            self.replays.keep(start, reply.node_id, reply.report, reply.signature, reply.params)
        self.flagged += [(int(flag["node_id"]), round_) for flag in screens]

    def verify(self, model: Any, tokenizer: Any) -> dict[str, Any]:
        """Replay the drawn rounds on `model` (its weights are overwritten: call it once the
        result is written); the `verified` event's fields."""
        if self.skipped:
            return {"replays": [], "skipped": self.skipped}
        try:
            chosen = self.replays.draw(self.spec.job_id, self.flagged)
            records = self._records()
            online = {int(n) for n in self.grid.get_node_ids()}
            verdicts = self.replays.replay(
                chosen,
                reveal=lambda kept: self._reveal(kept, online),
                inputs=lambda kept, state: RoundInputs(
                    self.spec.method,
                    self.spec.hparams,
                    records,
                    self._checkpoint(kept.round - 1),
                    state,
                    labels=self.spec.labels,
                ),
                model=model,
                tokenizer=tokenizer,
            )
        except CairnError as exc:
            log.warning("job %s: verification failed: %s", self.spec.job_id, exc.message)
            return {"replays": [], "error": exc.message}
        except Exception as exc:  # verifying must never fail a job whose model is written
            log.exception("job %s: verification crashed", self.spec.job_id)
            return {"replays": [], "error": f"{type(exc).__name__}: {exc}"}
        for v in verdicts:
            log.info("job %s round %d %s: %s", v.job_id[:10], v.round, v.account, v.reason)
        return {"replays": [_json(v) for v in verdicts]}

    def _reveal(self, kept: KeptRound, online: set[int]) -> dict[str, Any] | None:
        if kept.node_id not in online:
            return None
        message = reveal_message(
            self.spec.job_id, kept.round, kept.report.shard, kept.node_id, ttl=REVEAL_SECONDS
        )
        replies = exchange(self.grid, [message], timeout=REVEAL_SECONDS)
        if not replies or replies[0].has_error():
            return None
        try:
            return state_from_content(replies[0].content)
        except InvalidInput as exc:
            log.warning("round %d: node %d revealed %s", kept.round, kept.node_id, exc.message)
            return None

    def _checkpoint(self, round_: int) -> dict[str, torch.Tensor]:
        return load_file(str(self.job.checkpoints / f"round-{round_:06d}.safetensors"))

    def _records(self) -> list[dict[str, Any]]:
        """The job's training records, fetched by CID from the node as its workers fetch them."""
        url = f"{self.spec.node_url.rstrip('/')}/api/v1/blobs/{self.spec.train_cid}"
        headers = {JOB_TOKEN_HEADER: self.spec.blob_token} if self.spec.blob_token else {}
        try:
            response = httpx.get(url, headers=headers, timeout=httpx.Timeout(30.0, read=300.0))
        except httpx.HTTPError as exc:
            raise Unavailable(f"cannot fetch the training records: {exc}") from None
        if response.status_code != 200:
            raise Unavailable(f"fetching the training records: HTTP {response.status_code}")
        if cid_of(response.content) != str(CID.parse(self.spec.train_cid)):
            raise InvalidInput("the node sent training records that are not the job's CID")
        text = response.content.decode("utf-8")
        return [json.loads(line) for line in text.splitlines() if line.strip()]


def _json(verdict: Verdict) -> dict[str, Any]:
    data = asdict(verdict)
    data["relative"] = verdict.relative if verdict.relative != float("inf") else None
    data["replay_seconds"] = round(verdict.replay_seconds, 3)
    return data
