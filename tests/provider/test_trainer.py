"""The resident trainer: rounds kept loaded give what fresh processes give, over a real socket."""

from __future__ import annotations

import inspect
import json
import random
import shutil
import time
import types
from pathlib import Path
from typing import Any

import pytest
import torch
from eth_account import Account
from flwr.app import ArrayRecord, ConfigRecord, Message, MetricRecord, RecordDict

from cairn.compute.exchange import exchange
from cairn.compute.records import RoundTask, parse_reply, task_message, unpacked
from cairn.core.errors import InvalidInput, Unavailable
from cairn.provider import host
from cairn.provider.rounds import RoundRunner
from cairn.provider.trainer import TrainerServer, pack, train_remotely, unpack
from cairn.store.local import LocalBlobStore
from cairn.train.models import hyperparameters, initial_params, load_for_method
from cairn.train.weights import store_folder
from tests.compute.conftest import reverse_record, save_tiny_model

PROVIDER = Account.from_key("0x" + "11" * 32)
HPARAMS = {"learning_rate": 0.01, "batch_size": 2, "max_length": 48}


def test_a_frame_carries_arrays_configs_and_metrics_exactly() -> None:
    content = RecordDict(
        {
            "params": ArrayRecord({"w": torch.arange(6.0).reshape(2, 3), "b": torch.ones(1)}),
            "task": ConfigRecord({"task": '{"a": 1}', "n": 3, "ok": True}),
            "metrics": MetricRecord({"loss": 0.25, "steps": 5}),
        }
    )
    back, fields = unpack(pack(content, node_id=7))
    assert fields == {"node_id": 7}
    params = back["params"].to_torch_state_dict()
    assert list(params) == ["w", "b"]
    assert torch.equal(params["w"], torch.arange(6.0).reshape(2, 3))
    assert dict(back["task"].items()) == {"task": '{"a": 1}', "n": 3, "ok": True}
    assert dict(back["metrics"].items()) == {"loss": 0.25, "steps": 5}


@pytest.mark.parametrize(
    "damage", ["truncated", "extra bytes", "not json", "huge header", "unknown kind"]
)
def test_a_damaged_frame_is_invalid_input(damage: str) -> None:
    frame = pack(RecordDict({"params": ArrayRecord({"w": torch.ones(4)})}))
    header_end = 8 + int.from_bytes(frame[:8], "big")
    header = json.loads(frame[8:header_end])
    if damage == "truncated":
        frame = frame[:-3]
    elif damage == "extra bytes":
        frame += b"\0"
    elif damage == "not json":
        frame = frame[:8] + b"{" * (header_end - 8) + frame[header_end:]
    elif damage == "huge header":
        frame = (2**40).to_bytes(8, "big") + frame[8:]
    else:
        header["records"]["params"]["kind"] = "pickle"
        body = json.dumps(header).encode()
        frame = len(body).to_bytes(8, "big") + body + frame[header_end:]
    with pytest.raises(InvalidInput):
        unpack(frame)


def test_a_frame_refuses_values_it_cannot_carry() -> None:
    with pytest.raises(InvalidInput, match="not a JSON scalar"):
        pack(RecordDict({"task": ConfigRecord({"blob": b"\x00"})}))


# -- rounds ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def job(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A tiny base model and a training set, stored by CID as a node would serve them."""
    tmp = tmp_path_factory.mktemp("job")
    store = LocalBlobStore(tmp / "store")
    folder = save_tiny_model(tmp / "base", "causal-lm")
    rng = random.Random(3)
    records = "\n".join(json.dumps(reverse_record(rng)) for _ in range(16)).encode()
    model, _ = load_for_method("sft", folder, hyperparameters("sft", HPARAMS))
    return {
        "store": store,
        "manifest": store_folder(store, folder),
        "train_cid": store.put(records),
        "params": initial_params(model),
    }


def work_dir(job: dict[str, Any], path: Path) -> Path:
    """A provider's work folder whose blob cache already holds the job's blobs."""
    cache = path / "blobs"
    cache.mkdir(parents=True)
    for blob in job["store"].root.rglob("*"):
        if blob.is_file() and not blob.name.startswith("."):
            shutil.copy(blob, cache / blob.name)
    return path


def task(job: dict[str, Any], round_: int, method: str = "sft") -> RoundTask:
    return RoundTask(
        job_id="job-1",
        method=method,
        hparams=HPARAMS,
        base_manifest=job["manifest"],
        train_cid=job["train_cid"],
        node_url="http://127.0.0.1:9",  # never asked: the cache holds every blob
        round=round_,
        shard=1,
        shards=2,
        steps=3,
        seed=round_,
        start_step=(round_ - 1) * 3,
        total_steps=9,
    )


def reply_params(content: RecordDict) -> dict[str, torch.Tensor]:
    return unpacked(content, "params")


def round_message(job: dict[str, Any], task_record: ConfigRecord | None = None) -> RecordDict:
    """Round 1's task message content as the coordinator sends it (or with another task)."""
    content = task_message(task(job, 1), job["params"], 5, ttl=60).content
    if task_record is not None:
        content["task"] = task_record
    return content


def test_a_runner_kept_across_rounds_trains_as_a_fresh_process_each_round(
    job: dict[str, Any], tmp_path: Path
) -> None:
    kept = RoundRunner(work_dir(job, tmp_path / "kept"))
    fresh_dir = work_dir(job, tmp_path / "fresh")
    kept_params = fresh_params = job["params"]
    for round_ in (1, 2, 3):
        kept_reply = kept.run(task(job, round_), kept_params, PROVIDER, 5)
        fresh = RoundRunner(fresh_dir)  # what a new ClientApp process builds
        fresh_reply = fresh.run(task(job, round_), fresh_params, PROVIDER, 5)
        kept_params, fresh_params = reply_params(kept_reply), reply_params(fresh_reply)
        assert kept_params.keys() == fresh_params.keys()
        for name in kept_params:
            assert torch.equal(kept_params[name], fresh_params[name]), (round_, name)
        kept_report = json.loads(str(kept_reply["report"]["report"]))
        fresh_report = json.loads(str(fresh_reply["report"]["report"]))
        assert kept_report["params_digest"] == fresh_report["params_digest"]
        assert kept_report["loss"] == fresh_report["loss"]
    assert len(kept._models) == 1  # built once for the three rounds


def test_a_round_that_dies_part_way_is_retried_as_a_fresh_process_would(
    job: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    runner = RoundRunner(work_dir(job, tmp_path / "w"))
    first = reply_params(runner.run(task(job, 1), job["params"], PROVIDER, 5))
    shutil.copytree(tmp_path / "w", tmp_path / "copy")  # round 1's AdamW state, on disk
    expected = reply_params(RoundRunner(tmp_path / "copy").run(task(job, 2), first, PROVIDER, 5))

    import cairn.provider.rounds as rounds

    real = rounds.inner_train

    def dies_after_a_step(*args: Any, **kwargs: Any) -> Any:
        real(*args, **{**kwargs, "steps": 1})  # moves the weights and the AdamW moments
        raise RuntimeError("killed mid-round")

    monkeypatch.setattr(rounds, "inner_train", dies_after_a_step)
    with pytest.raises(RuntimeError):
        runner.run(task(job, 2), first, PROVIDER, 5)
    monkeypatch.setattr(rounds, "inner_train", real)
    retried = reply_params(runner.run(task(job, 2), first, PROVIDER, 5))
    for name, value in expected.items():
        assert torch.equal(retried[name], value), name


def test_the_trainer_answers_over_its_socket_as_the_clientapp_would(
    job: dict[str, Any], tmp_path: Path
) -> None:
    server = TrainerServer(tmp_path / "t.sock", work_dir(job, tmp_path / "w"), PROVIDER).start()
    try:
        message = round_message(job)
        remote = train_remotely(tmp_path / "t.sock", message, node_id=5)
        local = RoundRunner(work_dir(job, tmp_path / "local")).run(
            task(job, 1), job["params"], PROVIDER, 5
        )
        assert json.loads(str(remote["report"]["report"])) | {"compute_seconds": 0} == json.loads(
            str(local["report"]["report"])
        ) | {"compute_seconds": 0}
        reply = parse_reply(Message(remote, reply_to=Message(message, 5, "train")))
        assert reply.report.account == PROVIDER.address
        for name, value in reply_params(local).items():
            assert torch.equal(reply.params[name], value)

        bad = round_message(job, ConfigRecord({"x": 1}))
        with pytest.raises(InvalidInput, match="malformed round task"):
            train_remotely(tmp_path / "t.sock", bad, node_id=5)
        remote_again = train_remotely(tmp_path / "t.sock", message, node_id=5)  # still serving
        assert "report" in remote_again
    finally:
        server.stop()
    with pytest.raises(Unavailable, match="no resident trainer"):
        train_remotely(tmp_path / "t.sock", message, node_id=5)


def test_the_socket_is_the_providers_alone(job: dict[str, Any], tmp_path: Path) -> None:
    server = TrainerServer(tmp_path / "t.sock", tmp_path / "w", PROVIDER).start()
    try:
        assert (tmp_path / "t.sock").stat().st_mode & 0o077 == 0
    finally:
        server.stop()


# -- the SuperNode's waits and the coordinator's ---------------------------------------------


def test_flower_s_supernode_still_sleeps_where_the_host_shortens_it() -> None:
    import flwr.supernode.start_client_internal as loop

    source = inspect.getsource(loop)
    assert "time.sleep(3)" in source and "time.sleep(0.5)" in source
    assert loop.time is time  # not shortened in this process: only the worker's host does


def test_the_host_shortens_only_the_supernode_s_waits() -> None:
    module = types.ModuleType("loop")
    module.time = time  # type: ignore[attr-defined]
    host.quicken_supernode(module)
    clock = module.time  # type: ignore[attr-defined]
    started = time.monotonic()
    clock.sleep(3)
    clock.sleep(0.5)
    assert time.monotonic() - started < host.IDLE_POLL + host.REPLY_POLL + 0.3
    assert clock.monotonic() > 0 and clock.time() > 0  # everything else is `time`'s
    with pytest.raises(RuntimeError, match="check flwr"):
        host.quicken_supernode(module)  # twice, or a Flower that changed, is refused


def test_the_supernode_asks_for_work_often_right_after_a_message_and_seldom_when_idle(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    module = types.ModuleType("loop")
    module.time = time  # type: ignore[attr-defined]
    clock = host.quicken_supernode(module)
    now = [1000.0]
    monkeypatch.setattr(host.time, "monotonic", lambda: now[0])
    clock.active()
    assert clock.idle_poll() == host.ACTIVE_POLL
    now[0] += 5
    assert host.ACTIVE_POLL < clock.idle_poll() < 0.5
    now[0] += 3600
    assert clock.idle_poll() == host.IDLE_POLL
    clock.active()  # a message came
    assert clock.idle_poll() == host.ACTIVE_POLL


def test_the_host_runs_the_clientapps_itself_on_a_loopback_clientappio_api() -> None:
    module = types.ModuleType("loop")
    module._pull_and_store_message = lambda **kwargs: 3  # type: ignore[attr-defined]
    module._push_messages = lambda **kwargs: None  # type: ignore[attr-defined]
    clock = host._QuickClock()
    argv, apps = host.run_clientapps_here(module, clock, ["--insecure"])
    assert argv[argv.index("--isolation") + 1] == "process"
    address = argv[argv.index("--clientappio-api-address") + 1]
    assert address.startswith("127.0.0.1:") and apps.appio_address == address
    clock.active_at = 0.0
    assert module._pull_and_store_message() == 3  # type: ignore[attr-defined]
    assert apps._wake.is_set() and clock.active_at > 0  # a stored message wakes the executor
    for refused in (["--isolation", "subprocess"], ["--clientappio-api-address", "0.0.0.0:9094"]):
        with pytest.raises(SystemExit):
            host.run_clientapps_here(module, clock, refused)


class SlowGrid:
    """A grid whose replies arrive after `delay` seconds (one never, if `lost`)."""

    def __init__(self, delay: float, lost: bool = False) -> None:
        self.delay, self.lost = delay, lost
        self.sent: list[Message] = []
        self.at = 0.0

    def push_messages(self, messages: list[Message]) -> list[str]:
        self.sent, self.at = list(messages), time.monotonic()
        return [f"m{i}" for i in range(len(self.sent))]

    def pull_messages(self, ids: set[str]) -> list[Message]:
        if time.monotonic() - self.at < self.delay:
            return []
        replies = []
        for i in range(len(self.sent)):
            if f"m{i}" in ids and not (self.lost and i == 0):
                reply = types.SimpleNamespace(
                    metadata=types.SimpleNamespace(reply_to_message_id=f"m{i}"),
                    has_error=lambda: False,
                )
                replies.append(reply)
        return replies  # type: ignore[return-value]


def test_replies_are_taken_as_soon_as_they_come_and_a_lost_one_waits_out_the_timeout() -> None:
    messages = [Message(RecordDict(), 1, "train"), Message(RecordDict(), 2, "train")]
    started = time.monotonic()
    assert len(exchange(SlowGrid(0.3), messages, timeout=30)) == 2
    assert time.monotonic() - started < 1.0  # Flower's own loop would wait 3 s
    started = time.monotonic()
    assert len(exchange(SlowGrid(0.1, lost=True), messages, timeout=0.6)) == 1
    assert 0.6 <= time.monotonic() - started < 1.5
