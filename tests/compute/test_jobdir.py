"""The job folder: spec, events read by offset, checkpoints, cancellation, the owning run."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import torch

from cairn.compute.checkpoints import latest_checkpoint, save_checkpoint
from cairn.compute.jobdir import JobDir, JobSpec
from cairn.core.diloco import OuterState
from cairn.core.errors import InvalidInput, NotFound

SPEC = JobSpec(
    job_id="0x" + "11" * 32,
    method="sft",
    hparams={"learning_rate": 0.001},
    base_folder="/models/base",
    base_manifest="bafk",
    base_asset=1,
    train_cid="bafk",
    train_count=10,
    node_url="http://127.0.0.1:8000",
    workers=2,
    min_workers=1,
    rounds=3,
    inner_steps=5,
    outer_lr=0.7,
    outer_momentum=0.9,
    nesterov=True,
    aggregation="mean",
    trim_ratio=0.2,
    byzantine=1,
    round_timeout_s=60,
    seed=0,
)


def test_spec_and_held_out_records_round_trip(tmp_path: Path) -> None:
    job = JobDir(tmp_path / "job")
    job.write_spec(SPEC, [{"prompt": "a", "response": "b"}])
    assert job.spec() == SPEC
    assert job.eval_records() == [{"prompt": "a", "response": "b"}]


def test_spec_with_unknown_keys_is_refused() -> None:
    with pytest.raises(InvalidInput, match="unknown keys"):
        JobSpec.from_json({**dataclasses.asdict(SPEC), "surprise": 1})


def test_missing_spec_is_not_found(tmp_path: Path) -> None:
    with pytest.raises(NotFound):
        JobDir(tmp_path / "nothing").spec()


def test_events_are_read_from_an_offset_and_partial_lines_wait(tmp_path: Path) -> None:
    job = JobDir(tmp_path / "job")
    job.write_spec(SPEC, [])
    job.append("started", run_id=1)
    job.append("round", round=1)
    events, offset = job.events()
    assert [e["type"] for e in events] == ["started", "round"]
    with (job.path / "events.jsonl").open("ab") as fh:
        fh.write(b'{"type": "rou')  # a writer in the middle of a line
    later, same = job.events(offset)
    assert later == [] and same == offset
    with (job.path / "events.jsonl").open("ab") as fh:
        fh.write(b'nd", "round": 2}\n')
    later, end = job.events(offset)
    assert [e["round"] for e in later] == [2] and end > offset


def test_each_event_comes_with_the_offset_past_its_line(tmp_path: Path) -> None:
    job = JobDir(tmp_path / "job")
    job.write_spec(SPEC, [])
    job.append("started", run_id=1)
    job.append("round", round=1)
    lines = (job.path / "events.jsonl").read_bytes().splitlines(keepends=True)
    entries = job.entries()
    assert [(e["type"], end) for e, end in entries] == [
        ("started", len(lines[0])),
        ("round", len(lines[0]) + len(lines[1])),
    ]
    assert job.entries(entries[0][1]) == entries[1:]  # read on from where an event ended
    with (job.path / "events.jsonl").open("ab") as fh:
        fh.write(b'\n{"type": "rou')  # a blank line, then a line still being written
    assert job.entries(entries[1][1]) == []
    assert job.events(entries[1][1]) == ([], entries[1][1])


def test_latest_checkpoint_is_the_newest_whole_one(tmp_path: Path) -> None:
    job = JobDir(tmp_path / "job")
    job.write_spec(SPEC, [])
    assert latest_checkpoint(job) is None
    save_checkpoint(job, 0, {"w": torch.zeros(2)}, OuterState())
    save_checkpoint(job, 1, {"w": torch.ones(2)}, OuterState(momentum={"w": torch.ones(2)}, step=1))
    (job.checkpoints / "round-000002.tmp").write_bytes(b"half written")
    latest = latest_checkpoint(job)
    assert latest is not None
    round_, params, state = latest
    assert round_ == 1 and torch.equal(params["w"], torch.ones(2)) and state.step == 1


def test_run_ownership_and_cancel_flag(tmp_path: Path) -> None:
    job = JobDir(tmp_path / "job")
    job.write_spec(SPEC, [])
    assert job.run_id() is None and not job.cancel_requested()
    job.set_run(2**63 + 5)  # Flower run ids are unsigned 64-bit
    assert job.run_id() == 2**63 + 5
    job.request_cancel()
    assert job.cancel_requested()
