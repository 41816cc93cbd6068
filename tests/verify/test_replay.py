"""Replaying a worker-round from its report's inputs: honest rounds match bit for bit (whatever
the thread count), and every way of returning other weights, or naming other inputs, fails."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pytest
import torch
from eth_account import Account
from hypothesis import example, given, settings
from hypothesis import strategies as st

from cairn.compute.reports import (
    WorkReport,
    json_digest,
    params_digest,
    sign_report,
    state_digest,
    verify_report,
)
from cairn.core.errors import InvalidInput
from cairn.core.recipe import SftHyperparameters
from cairn.train.inner import inner_train, load_params, trainable_params
from cairn.train.models import hyperparameters, load_for_method
from cairn.train.tiny import tiny_causal_lm
from cairn.verify.replay import (
    EVIDENCE_SCHEMA,
    TOLERANCE,
    RoundInputs,
    compare,
    evidence,
    replay_round,
    verify_round,
)
from tests.signatures import published_signer

RECORDS = [{"prompt": f"{a}+{b}=", "response": str(a + b)} for a in range(6) for b in range(6)]
HPARAMS = {"learning_rate": 1e-2, "batch_size": 4, "warmup_ratio": 0.25}
STEPS, SHARDS, SHARD = 3, 2, 1
PROVIDER = Account.from_key("0x" + "11" * 32)
# peft asks transformers a deprecated question; nothing of ours
pytestmark = pytest.mark.filterwarnings("ignore:`is_gradient_checkpointing` is deprecated")


def saved(state: Any) -> Any:
    """The state as a worker keeps it on disk and reveals it."""
    buffer = io.BytesIO()
    torch.save(state, buffer)
    buffer.seek(0)
    return torch.load(buffer, weights_only=True)


class Round:
    """Round 2 of one worker, trained honestly after a round 1 that made its AdamW state."""

    def __init__(self) -> None:
        hp = SftHyperparameters.model_validate(HPARAMS)
        model, self.tokenizer = tiny_causal_lm(hidden_size=32, layers=2)
        shard = RECORDS[SHARD::SHARDS]
        first = inner_train(
            "sft", model, self.tokenizer, shard, hp, steps=STEPS, seed=1, total_steps=2 * STEPS
        )
        self.start = first.params  # the round's global weights (one worker: its own)
        self.state = saved(first.optimizer_state)
        second = inner_train(
            "sft", model, self.tokenizer, shard, hp, steps=STEPS, seed=2, start_step=STEPS,
            total_steps=2 * STEPS, optimizer_state=saved(self.state),
        )  # fmt: skip
        self.returned = second.params

    def report(self, returned: dict[str, torch.Tensor] | None = None, **changes: Any) -> WorkReport:
        fields: dict[str, Any] = dict(
            job_id="j1", round=2, account=PROVIDER.address, node_id=7, shard=SHARD, steps=STEPS,
            samples=STEPS * 4, loss=1.0,
            params_digest=params_digest(self.returned if returned is None else returned),
            compute_seconds=0.1, start_digest=params_digest(self.start), seed=2,
            train_cid="cid", shards=SHARDS, hparams_digest=json_digest(HPARAMS),
            start_step=STEPS, total_steps=2 * STEPS, optimizer_digest=state_digest(self.state),
        )  # fmt: skip
        return WorkReport(**(fields | changes))

    def inputs(self, **changes: Any) -> RoundInputs:
        fields: dict[str, Any] = dict(
            method="sft", hparams=HPARAMS, records=RECORDS, start=self.start,
            optimizer_state=saved(self.state),
        )  # fmt: skip
        return RoundInputs(**(fields | changes))

    def verify(self, returned: dict[str, torch.Tensor] | None, report: WorkReport, **inputs: Any):  # type: ignore[no-untyped-def]
        model, _ = tiny_causal_lm(seed=5, hidden_size=32, layers=2)  # any weights: the start's load
        return verify_round(model, self.tokenizer, report, self.inputs(**inputs), returned)


@pytest.fixture(scope="module")
def honest() -> Round:
    return Round()


@pytest.mark.parametrize("threads", [1, 2])
def test_an_honest_round_replays_on_any_thread_count(honest: Round, threads: int) -> None:
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        verdict = honest.verify(honest.returned, honest.report())
    finally:
        torch.set_num_threads(before)
    assert verdict.ok, verdict.reason
    if threads == 1:  # the worker's own thread count: bit for bit
        assert verdict.exact and verdict.relative == 0.0
        assert verdict.replayed_digest == honest.report().params_digest
    else:  # kernels split the sums otherwise: a rounding apart, far inside the tolerance
        assert verdict.relative < TOLERANCE / 100
    assert (verdict.job_id, verdict.round, verdict.node_id) == ("j1", 2, 7)


def test_without_the_returned_weights_the_signed_digest_is_compared(honest: Round) -> None:
    assert honest.verify(None, honest.report()).ok
    lazy = {k: v + 1e-7 for k, v in honest.returned.items()}
    verdict = honest.verify(None, honest.report(lazy))
    assert not verdict.ok and "digest differs" in verdict.reason


def cheats(r: Round) -> dict[str, dict[str, torch.Tensor]]:
    model, _ = tiny_causal_lm(hidden_size=32, layers=2)
    load_params(model, r.start)
    hp = SftHyperparameters.model_validate(HPARAMS)
    fewer = inner_train(
        "sft", model, r.tokenizer, RECORDS[SHARD::SHARDS], hp, steps=1, seed=2,
        start_step=STEPS, total_steps=2 * STEPS, optimizer_state=saved(r.state),
    ).params  # fmt: skip
    update = {k: r.returned[k] - r.start[k] for k in r.start}
    g = torch.Generator().manual_seed(0)
    noise = {k: torch.randn(v.shape, generator=g) for k, v in update.items()}
    norm = torch.cat([v.flatten() for v in update.values()]).norm()
    scale = 0.01 * norm / torch.cat([v.flatten() for v in noise.values()]).norm()
    return {
        "fewer steps": fewer,
        "the start weights": {k: v.clone() for k, v in r.start.items()},
        "1 % noise": {k: r.returned[k] + scale * noise[k] for k in r.start},
        "a scaled update": {k: r.start[k] + 2 * update[k] for k in r.start},
        "a flipped update": {k: r.start[k] - update[k] for k in r.start},
    }


def test_every_other_weight_fails_the_replay(honest: Round) -> None:
    for name, returned in cheats(honest).items():
        verdict = honest.verify(returned, honest.report(returned))
        assert not verdict.ok, name
        assert verdict.relative > 10 * TOLERANCE, name
        assert "away from the replay" in verdict.reason


def test_weights_that_are_not_the_signed_ones_fail(honest: Round) -> None:
    other = {k: v.clone() for k, v in honest.returned.items()}
    next(iter(other.values())).view(-1)[0] += 1.0
    verdict = honest.verify(other, honest.report())
    assert not verdict.ok and "not the ones the report signs" in verdict.reason


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"optimizer_state": None}, "optimizer state"),
        ({"hparams": {**HPARAMS, "learning_rate": 2e-2}}, "hyperparameters"),
        ({"start": "zeros"}, "start weights"),
    ],
)
def test_inputs_that_are_not_the_reports_fail_and_say_which(
    honest: Round, change: dict[str, Any], message: str
) -> None:
    if change.get("start") == "zeros":
        change = {"start": {k: torch.zeros_like(v) for k, v in honest.start.items()}}
    verdict = honest.verify(honest.returned, honest.report(), **change)
    assert not verdict.ok and message in verdict.reason


def test_a_v1_report_cannot_be_replayed(honest: Round) -> None:
    v1 = honest.report(
        start_digest=None, seed=None, train_cid=None, shards=None, hparams_digest=None,
        start_step=None, total_steps=None, optimizer_digest=None,
    )  # fmt: skip
    model, _ = tiny_causal_lm(hidden_size=32, layers=2)
    with pytest.raises(InvalidInput, match="cannot be replayed"):
        replay_round(model, honest.tokenizer, v1, honest.inputs())


def test_the_evidence_carries_the_signed_report_anyone_can_check(honest: Round) -> None:
    returned = cheats(honest)["1 % noise"]
    report = honest.report(returned)
    signature = sign_report(report, PROVIDER)
    verdict = honest.verify(returned, report)
    document = json.loads(json.dumps(evidence(report, signature, verdict)))
    assert document["schema"] == EVIDENCE_SCHEMA and document["account"] == PROVIDER.address
    signed = {k: v for k, v in document["report"].items() if k not in ("schema", "signature")}
    verify_report(WorkReport(**signed), document["report"]["signature"])  # it is the provider's
    checked = {"signed": document["signed"], "signature": document["report"]["signature"]}
    assert published_signer(checked) == PROVIDER.address  # with eth_account alone
    assert document["relative_distance"] > TOLERANCE and document["tolerance"] == TOLERANCE


@given(st.floats(1e-6, 1e3), st.floats(0.0, 0.5) | st.just(TOLERANCE))
@settings(max_examples=50, deadline=None)
@example(scale=1.0, off=TOLERANCE)  # the threshold itself: measured a hair above it
def test_the_comparison_is_relative_to_the_update(scale: float, off: float) -> None:
    start = {"w": torch.zeros(8, dtype=torch.float64)}
    replayed = {"w": scale * torch.arange(1, 9, dtype=torch.float64)}
    direction = torch.tensor([1.0, -1, 1, -1, 1, -1, 1, -1], dtype=torch.float64)
    returned = {
        "w": replayed["w"] + off * float(replayed["w"].norm()) * direction / direction.norm()
    }
    c = compare(start, returned, replayed)
    assert c.relative == pytest.approx(off, rel=1e-9, abs=1e-12)
    assert c.within() == (c.relative <= TOLERANCE)  # the threshold is on what was measured
    if abs(off - TOLERANCE) > 1e-9:  # away from the threshold, where rounding cannot flip it
        assert c.within() == (off < TOLERANCE)
    assert compare(start, {"w": torch.ones(8, dtype=torch.float64)}, start).relative == float("inf")


def test_trainable_params_of_a_replay_are_the_workers_names(honest: Round) -> None:
    model, _ = tiny_causal_lm(hidden_size=32, layers=2)
    replayed = replay_round(model, honest.tokenizer, honest.report(), honest.inputs())
    assert set(replayed) == set(trainable_params(model)) == set(honest.returned)


METHODS = {  # family, hyperparameters, records, labels
    "lora": ("causal-lm", {"learning_rate": 3e-2, "batch_size": 2, "lora_dropout": 0.1},
             [{"prompt": f"reverse {w}", "response": w[::-1]} for w in ("abc", "fed", "hgab")],
             None),
    "grpo": ("causal-lm", {"learning_rate": 1e-2, "batch_size": 2, "num_generations": 2,
             "max_completion_length": 3, "rewards": ["numeric_answer"]},
             [{"prompt": f"{a}+1=", "answer": str(a + 1)} for a in range(4)], None),
    "classify": ("encoder", {"learning_rate": 1e-3, "batch_size": 2},
                 [{"text": t, "label": lab} for t, lab in (("great day", "pos"), ("awful", "neg"),
                  ("lovely", "pos"), ("poor", "neg"))], ["neg", "pos"]),
}  # fmt: skip


@pytest.mark.parametrize("method", sorted(METHODS))
def test_every_replayable_method_replays_a_resumed_round_on_the_coordinators_model(
    method: str, tmp_path: Path
) -> None:
    """Built as the coordinator and the workers build it (`load_for_method` on the base folder):
    a worker's round 2, resumed from its AdamW state, replays bit for bit (dropout, sampling and
    LoRA included)."""
    from tests.compute.conftest import save_tiny_model

    family, hparams, records, labels = METHODS[method]
    folder = save_tiny_model(tmp_path / "base", family)
    hp = hyperparameters(method, hparams)

    def build() -> tuple[Any, Any]:
        return load_for_method(method, folder, hp, labels=labels, seed=0)

    worker, tokenizer = build()
    start = trainable_params(worker)
    first = inner_train(method, worker, tokenizer, records, hp, steps=2, seed=1, labels=labels,
                        total_steps=4)  # fmt: skip
    state = saved(first.optimizer_state)
    second = inner_train(method, worker, tokenizer, records, hp, steps=2, seed=2, labels=labels,
                         start_step=2, total_steps=4, optimizer_state=saved(state))  # fmt: skip
    report = WorkReport(
        job_id="j", round=2, account=PROVIDER.address, node_id=1, shard=0, steps=2,
        samples=4, loss=1.0, params_digest=params_digest(second.params), compute_seconds=0.1,
        start_digest=params_digest(first.params), seed=2, train_cid="c", shards=1,
        hparams_digest=json_digest(hparams), start_step=2, total_steps=4,
        optimizer_digest=state_digest(state),
    )  # fmt: skip
    assert set(start) == set(first.params)
    coordinator, tokenizer = build()
    inputs = RoundInputs(method, hparams, records, first.params, saved(state), labels=labels)
    verdict = verify_round(coordinator, tokenizer, report, inputs, second.params)
    assert verdict.ok and verdict.exact, verdict.reason
