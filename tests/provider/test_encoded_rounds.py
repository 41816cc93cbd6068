"""A round whose job asks for a quantised update: the worker sends its pseudo-gradient as int8 or
int4 with error feedback, signs those arrays, and the node decodes them against the global
parameters it sent; what rounding left out is owed to the next round, across a restart too."""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path
from typing import Any

import pytest
import torch
from flwr.app import ConfigRecord, Message, RecordDict

from cairn.compute.records import EncodedUpdate, RoundTask, parse_reply
from cairn.core.errors import InvalidInput
from cairn.core.quantize import LEVELS
from cairn.provider.rounds import RoundRunner
from tests.provider.test_trainer import PROVIDER, job, reply_params, task, work_dir

__all__ = ["job"]  # the module's fixture, shared with the trainer's tests


def encoded_task(job: dict[str, Any], round_: int, encoding: str) -> RoundTask:
    return dataclasses.replace(task(job, round_), encoding=encoding)


def as_reply(content: RecordDict) -> Any:
    return parse_reply(Message(content, reply_to=Message(RecordDict(), 5, "train")))


@pytest.mark.parametrize("encoding", ["int8", "int4"])
def test_a_quantised_round_is_the_float32_round_within_half_a_step(
    job: dict[str, Any], tmp_path: Path, encoding: str
) -> None:
    dense = reply_params(
        RoundRunner(work_dir(job, tmp_path / "f")).run(task(job, 1), job["params"], PROVIDER, 5)
    )
    content = RoundRunner(work_dir(job, tmp_path / "q")).run(
        encoded_task(job, 1, encoding), job["params"], PROVIDER, 5
    )
    assert "params" not in content and dict(content["encoding"].items())["encoding"] == encoding
    reply = as_reply(content)
    assert reply.params == {} and reply.encoded is not None
    assert reply.report.params_digest == reply.encoded.digest()  # the report signs the arrays
    decoded = reply.encoded.params(job["params"])
    dense_bytes = sum(4 * t.numel() for t in dense.values())
    assert reply.encoded.nbytes() < dense_bytes / (3.5 if encoding == "int8" else 6.5)
    for name, value in dense.items():
        delta = job["params"][name].float() - value.float()
        step = delta.abs().max() / LEVELS[encoding]  # at most its blocks' steps
        assert (decoded[name].float() - value.float()).abs().max() <= step / 2 + 1e-6, name


def test_the_residual_is_owed_to_the_next_round_across_a_restart(
    job: dict[str, Any], tmp_path: Path
) -> None:
    kept = RoundRunner(work_dir(job, tmp_path / "w"))
    first = as_reply(kept.run(encoded_task(job, 1, "int4"), job["params"], PROVIDER, 5))
    residual = tmp_path / "w" / "jobs" / "job-1" / "residual.safetensors"
    assert residual.exists()
    shutil.copytree(tmp_path / "w", tmp_path / "restarted")
    global_params = first.encoded.params(job["params"])
    again = as_reply(kept.run(encoded_task(job, 2, "int4"), global_params, PROVIDER, 5))
    restarted = RoundRunner(tmp_path / "restarted")  # a new process: the residual from disk
    fresh = as_reply(restarted.run(encoded_task(job, 2, "int4"), global_params, PROVIDER, 5))
    assert again.encoded.digest() == fresh.encoded.digest()
    (tmp_path / "restarted" / "jobs" / "job-1" / "residual.safetensors").unlink()
    forgot = as_reply(
        RoundRunner(tmp_path / "restarted").run(
            encoded_task(job, 2, "int4"), global_params, PROVIDER, 5
        )
    )
    assert forgot.encoded.digest() != again.encoded.digest()  # so the residual was sent


def test_an_update_that_does_not_fit_the_global_parameters_is_refused(
    job: dict[str, Any], tmp_path: Path
) -> None:
    content = RoundRunner(work_dir(job, tmp_path / "w")).run(
        encoded_task(job, 1, "int8"), job["params"], PROVIDER, 5
    )
    update: EncodedUpdate = as_reply(content).encoded
    name = next(iter(update.values))
    fewer = {k: v for k, v in update.values.items() if k != name}
    with pytest.raises(InvalidInput, match="parameter names"):
        dataclasses.replace(update, values=fewer).params(job["params"])
    short = {**update.values, name: update.values[name][:-1]}
    with pytest.raises(InvalidInput, match="values: expected"):
        dataclasses.replace(update, values=short).params(job["params"])
    bigger = {**update.values, name: torch.full_like(update.values[name], -128)}
    with pytest.raises(InvalidInput, match=r"lie in \[-127, 127\]"):
        dataclasses.replace(update, values=bigger).params(job["params"])
    changed = {**update.scales, name: update.scales[name] * 2}
    assert dataclasses.replace(update, scales=changed).digest() != update.digest()
    content["encoding"] = ConfigRecord({"encoding": "int2", "block": 256})
    with pytest.raises(InvalidInput, match="unknown update encoding 'int2'"):
        as_reply(content)
    assert json.loads(str(content["report"]["report"]))["params_digest"] == update.digest()
