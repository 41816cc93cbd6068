"""Replaying a worker's round from what its report names, and comparing the weights.

A v2 work report (`cairn.compute.reports`) names every input of its round: the weights it
started from, the records and shard, the seed, the hyperparameters, the schedule's position, and
the AdamW state it resumed. Given those inputs (the start weights are the job's checkpoint of
the round before; the optimizer state is the one the worker revealed, checked against its
digest), anyone trains the round again with the same `inner_train` and compares the weights
with the ones the worker returned.

The inner loop is deterministic on the CPU for a given thread count: the same inputs give the
same weights bit for bit in repeated runs. Another thread count may not: a round of the tiny
model replayed on two threads instead of one lands 2e-7 of the update away (tests/verify), and
another CPU's kernels may round differently again. So the comparison allows `TOLERANCE`: the
distance between the returned and the replayed weights over the length of the replayed update
(`returned - start`). The cheapest cheat `bench/verify.py` tries (noise of 10 % of the update's
length) is at 0.1, a hundred times the tolerance; 1 % noise is caught too (tests/verify).
Without the returned weights only the signed digest is left to compare, which needs the
worker's thread count and kernels to match bit for bit.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from cairn.compute.reports import WorkReport, json_digest, params_digest, state_digest
from cairn.core.errors import InvalidInput
from cairn.train.inner import inner_train, load_params
from cairn.train.models import hyperparameters
from cairn.verify.screens import update_vector

TOLERANCE = 1e-3  # returned-vs-replayed distance over the replayed update's length
EVIDENCE_SCHEMA = "cairn.verify-evidence/v1"


@dataclass(frozen=True)
class RoundInputs:
    """Everything a replay of one worker-round needs, as its report names it."""

    method: str
    hparams: Mapping[str, Any]  # the hyperparameters as sent (their digest is in the report)
    records: Sequence[Any]  # the job's training records; the shard is every `shards`-th
    start: Mapping[str, torch.Tensor]  # the global weights the round started from
    optimizer_state: dict[str, Any] | None  # the AdamW state the worker revealed (None: fresh)
    labels: Sequence[str] | None = None
    teacher: Any = None  # distill: the teacher model


@dataclass(frozen=True)
class Comparison:
    """How far the returned weights are from the replayed ones."""

    distance: float  # ||returned - replayed||
    update_norm: float  # ||replayed - start||
    relative: float  # distance / update_norm (0 when both are 0; inf for any distance from 0)
    exact: bool  # bit for bit the same

    def within(self, tolerance: float = TOLERANCE) -> bool:
        """Whether the returned weights are the replayed ones, up to `tolerance`."""
        return self.exact or self.relative <= tolerance


@dataclass(frozen=True)
class Verdict:
    """The outcome of replaying one worker-round."""

    job_id: str
    round: int
    account: str
    node_id: int
    ok: bool
    relative: float
    exact: bool
    reason: str
    replay_seconds: float
    replayed_digest: str


def check_inputs(report: WorkReport, inputs: RoundInputs) -> None:
    """Raise `InvalidInput` unless `inputs` are the ones `report` signed (a replay from other
    inputs would prove nothing)."""
    if not report.replayable:
        raise InvalidInput("the report does not name its round's inputs, so it cannot be replayed")
    if params_digest(inputs.start) != report.start_digest:
        raise InvalidInput("the start weights are not the ones the report names")
    if json_digest(dict(inputs.hparams)) != report.hparams_digest:
        raise InvalidInput("the hyperparameters are not the ones the report names")
    if state_digest(inputs.optimizer_state) != report.optimizer_digest:
        raise InvalidInput("the optimizer state is not the one the report names")
    assert report.shards is not None  # replayable: every input is named
    if not 0 <= report.shard < report.shards:
        raise InvalidInput(f"shard {report.shard} is not one of {report.shards}")


def replay_round(
    model: Any, tokenizer: Any, report: WorkReport, inputs: RoundInputs
) -> dict[str, torch.Tensor]:
    """Train the round `report` names again on `model` (built for the job as its workers build
    it) from `inputs`; the weights it ends at. `check_inputs` first."""
    check_inputs(report, inputs)
    assert report.shards is not None and report.seed is not None
    load_params(model, inputs.start)
    shard = list(inputs.records)[report.shard :: report.shards]
    result = inner_train(
        inputs.method,
        model,
        tokenizer,
        shard,
        hyperparameters(inputs.method, dict(inputs.hparams)),
        steps=report.steps,
        seed=report.seed,
        teacher=inputs.teacher,
        labels=inputs.labels,
        start_step=report.start_step or 0,
        total_steps=report.total_steps,
        optimizer_state=_copy_state(inputs.optimizer_state),
    )
    return result.params


def compare(
    start: Mapping[str, torch.Tensor],
    returned: Mapping[str, torch.Tensor],
    replayed: Mapping[str, torch.Tensor],
) -> Comparison:
    """The distance of the returned weights from the replayed ones, against the update."""
    exact = set(returned) == set(replayed) and all(
        torch.equal(returned[k], replayed[k]) for k in replayed
    )
    update = update_vector(start, replayed)
    diff = update_vector(replayed, returned)  # raises for other names or shapes
    return _comparison(float(diff.norm()), float(update.norm()), exact)


def compare_sketches(returned: torch.Tensor, replayed: torch.Tensor) -> Comparison:
    """The same comparison on update sketches (`update_vector` with a size) of equal length."""
    if returned.shape != replayed.shape:
        raise InvalidInput("the kept sketch is not of the replayed update's length")
    exact = torch.equal(returned, replayed.to(returned.dtype))
    diff = returned.double() - replayed.double()
    return _comparison(float(diff.norm()), float(replayed.double().norm()), exact)


def _comparison(distance: float, norm: float, exact: bool) -> Comparison:
    if distance == 0.0:
        relative = 0.0
    elif norm == 0.0:
        relative = float("inf")
    else:
        relative = distance / norm
    return Comparison(distance, norm, relative, exact)


def verify_round(
    model: Any,
    tokenizer: Any,
    report: WorkReport,
    inputs: RoundInputs,
    returned: Mapping[str, torch.Tensor] | None,
    tolerance: float = TOLERANCE,
    *,
    sketch: tuple[torch.Tensor, int] | None = None,
) -> Verdict:
    """Replay the round and judge it: against the `returned` weights where they were kept, or
    the `sketch` of their update (the sketch and its size) that the coordinator kept of the
    weights it checked against the report, else against the digest the report signs (bit for
    bit only).

    Inputs that are not the report's are a failed verdict too: the worker named inputs it
    cannot show (its revealed optimizer state does not match, say).
    """
    started = time.perf_counter()
    try:
        replayed = replay_round(model, tokenizer, report, inputs)
    except InvalidInput as exc:
        return _verdict(report, False, float("inf"), False, exc.message, started, "")
    digest = params_digest(replayed)
    if sketch is not None:
        kept, size = sketch
        comparison = compare_sketches(kept, update_vector(inputs.start, replayed, size))
        return _judged(report, comparison, tolerance, started, digest)
    if returned is None:
        exact = digest == report.params_digest
        reason = "replayed bit for bit" if exact else "the replayed weights' digest differs"
        return _verdict(
            report, exact, 0.0 if exact else float("inf"), exact, reason, started, digest
        )
    if params_digest(returned) != report.params_digest:
        reason = "the kept weights are not the ones the report signs"
        return _verdict(report, False, float("inf"), False, reason, started, digest)
    return _judged(report, compare(inputs.start, returned, replayed), tolerance, started, digest)


def _judged(
    report: WorkReport, comparison: Comparison, tolerance: float, started: float, digest: str
) -> Verdict:
    ok = comparison.within(tolerance)
    if comparison.exact:
        reason = "replayed bit for bit"
    elif ok:
        reason = f"replayed within {comparison.relative:.2e} (tolerance {tolerance:.0e})"
    else:
        reason = (
            f"the returned weights are {comparison.relative:.3g} of the update away from the "
            f"replay (tolerance {tolerance:.0e})"
        )
    return _verdict(report, ok, comparison.relative, comparison.exact, reason, started, digest)


def evidence(report: WorkReport, signature: str, verdict: Verdict) -> dict[str, Any]:
    """The evidence of a failed replay, as stored by CID and named when the stake is slashed:
    the signed report (anyone checks the signature and replays it) and the replay's outcome."""
    return {
        "schema": EVIDENCE_SCHEMA,
        "job_id": verdict.job_id,
        "round": verdict.round,
        "account": verdict.account,
        "report": {**_report_json(report), "signature": signature},
        "signed": report.canonical().decode(),  # the exact text it signed (EIP-191)
        "replayed_digest": verdict.replayed_digest,
        "relative_distance": verdict.relative if verdict.relative != float("inf") else None,
        "tolerance": TOLERANCE,
        "reason": verdict.reason,
    }


def _report_json(report: WorkReport) -> dict[str, Any]:
    body: dict[str, Any] = json.loads(report.canonical())
    return body


def _verdict(
    report: WorkReport,
    ok: bool,
    relative: float,
    exact: bool,
    reason: str,
    started: float,
    digest: str,
) -> Verdict:
    return Verdict(
        job_id=report.job_id,
        round=report.round,
        account=report.account,
        node_id=report.node_id,
        ok=ok,
        relative=relative,
        exact=exact,
        reason=reason,
        replay_seconds=time.perf_counter() - started,
        replayed_digest=digest,
    )


def _copy_state(state: dict[str, Any] | None) -> dict[str, Any] | None:
    """A deep copy of an optimizer state: training moves the one it resumes in place."""
    if state is None:
        return None
    copied: dict[str, Any] = _clone(state)
    return copied


def _clone(value: Any) -> Any:
    if isinstance(value, torch.Tensor):
        return value.clone()
    if isinstance(value, dict):
        return {k: _clone(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_clone(v) for v in value]
    if isinstance(value, tuple):
        return tuple(_clone(v) for v in value)
    return value
