"""A worker keeps the AdamW state each round resumed and reveals it: the round then replays
from its report alone, bit for bit, and a state that is not the signed one fails the replay."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch
from flwr.app import ConfigRecord, Context, Message, RecordDict

from cairn.compute.records import (
    REVEAL,
    reveal_message,
    reveal_request,
    state_content,
    state_from_content,
    unpacked,
)
from cairn.compute.reports import report_from_json, state_digest
from cairn.core.errors import InvalidInput
from cairn.provider import clientapp
from cairn.provider.rounds import RoundRunner, resumed_path, resumed_state
from cairn.verify.replay import RoundInputs, verify_round
from tests.provider.test_trainer import HPARAMS, PROVIDER, job, task, work_dir

__all__ = ["job"]  # the module's fixture, shared


def reveal(folder: Path, job_id: str, round_: int, shard: int) -> dict[str, Any] | None:
    """What the ClientApp answers a coordinator's reveal message with, read back."""
    message = reveal_message(job_id, round_, shard, node_id=5, ttl=60)
    assert message.metadata.message_type == REVEAL
    context = Context(run_id=1, node_id=5, node_config={"work-dir": str(folder)},
                      state=RecordDict(), run_config={})  # fmt: skip
    incoming = Message(message.content, 5, REVEAL)
    return state_from_content(clientapp.reveal(incoming, context).content)


def test_a_revealed_state_replays_its_round_from_the_report(
    job: dict[str, Any], tmp_path: Path
) -> None:
    folder = work_dir(job, tmp_path / "w")
    runner = RoundRunner(folder)
    params, replies = job["params"], []
    for round_ in (1, 2, 3):
        reply = runner.run(task(job, round_), params, PROVIDER, 5)
        replies.append((params, reply))
        params = unpacked(reply, "params")
    assert reveal(folder, "job-1", 1, 1) is None  # round 1 started afresh
    for round_ in (2, 3):
        start, reply = replies[round_ - 1]
        report = report_from_json(json.loads(str(reply["report"]["report"])))
        state = reveal(folder, "job-1", round_, 1)
        assert state_digest(state) == report.optimizer_digest != ""
        model, tokenizer = _model(runner)
        records = runner._records[job["train_cid"]]
        inputs = RoundInputs("sft", HPARAMS, records, start, state)
        verdict = verify_round(model, tokenizer, report, inputs, unpacked(reply, "params"))
        assert verdict.ok and verdict.exact, verdict.reason
    # a worker that lost (or never had) the state its report signed cannot show it
    resumed_path(folder, "job-1", 3, 1).unlink()
    start, reply = replies[2]
    report = report_from_json(json.loads(str(reply["report"]["report"])))
    model, tokenizer = _model(runner)
    inputs = RoundInputs("sft", HPARAMS, runner._records[job["train_cid"]], start, None)
    verdict = verify_round(model, tokenizer, report, inputs, unpacked(reply, "params"))
    assert not verdict.ok and "optimizer state" in verdict.reason


def _model(runner: RoundRunner) -> tuple[Any, Any]:
    loaded = next(iter(runner._models.values()))
    return loaded.model, loaded.tokenizer


def test_a_state_travels_exactly() -> None:
    model = torch.nn.Linear(3, 2)
    optimizer = torch.optim.AdamW(model.parameters(), lr=0.1)
    model(torch.ones(1, 3)).sum().backward()
    optimizer.step()
    state = optimizer.state_dict()
    back = state_from_content(state_content(state))
    assert back is not None and state_digest(back) == state_digest(state)
    assert set(back["state"]) == {0, 1}  # parameter indices stay integers
    fresh = torch.optim.AdamW(model.parameters(), lr=0.1)
    fresh.load_state_dict(back)
    assert state_from_content(state_content(None)) is None


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"job_id": "../etc", "round": 1, "shard": 0}, "not a job id"),
        ({"job_id": ".hidden", "round": 1, "shard": 0}, "not a job id"),
        ({"job_id": "j", "round": 0, "shard": 0}, "a round from 1"),
        ({"job_id": "j", "round": 1, "shard": -1}, "a shard from 0"),
        ({"job_id": "j", "round": "1", "shard": 0}, "a round from 1"),
        ({"job_id": "j", "shard": 0}, "malformed reveal"),
    ],
)
def test_a_bad_reveal_request_is_refused(fields: dict[str, Any], message: str) -> None:
    with pytest.raises(InvalidInput, match=message):
        reveal_request(RecordDict({"reveal": ConfigRecord(fields)}))


def test_a_malformed_state_is_refused() -> None:
    bad = RecordDict({"state": ConfigRecord({"skeleton": '{"tensor": "t0"}'})})
    with pytest.raises(InvalidInput, match="malformed optimizer state"):
        state_from_content(bad)
    assert resumed_state(Path("/nonexistent"), "j", 1, 0) is None
