"""A job whose ServerApp process is killed under a running node carries on from its checkpoint.

The node runs each job's ServerApp in a process of its own (`cairn.compute.serverexec`); one
killed by SIGKILL or the kernel's out-of-memory killer writes no end to the job. The node sees
the process gone and starts the run again, as it does after its own restart.
"""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

import pytest
from eth_account.signers.local import LocalAccount

from cairn.compute.jobdir import process_started
from tests.compute.conftest import Cluster, anchored_dataset, register_tiny
from tests.compute.test_jobs_flower import recipe
from tests.data.conftest import dev

pytestmark = [pytest.mark.process, pytest.mark.slow]


def tiny_job(cluster: Cluster, tmp_path: Path, **distributed: int) -> tuple[str, LocalAccount]:
    """Alice's sft job of a tiny model on an anchored dataset, started; its id, and alice."""
    node = cluster.node
    alice, bob = dev(node, "alice"), dev(node, "bob")
    base = register_tiny(node, alice, tmp_path, "causal-lm")
    dataset = anchored_dataset(node, alice, bob, "instruction")
    text = recipe(base.asset_id, dataset, workers=1, **distributed)
    job = cluster.sign_in("alice").request("POST", "/jobs", json={"recipe": text})
    return str(job["job_id"]), alice


def test_a_killed_serverapp_is_started_again_and_the_job_finishes_every_round_once(
    cluster: Cluster, tmp_path: Path
) -> None:
    node = cluster.node
    cluster.worker("bob")
    job_id, alice = tiny_job(cluster, tmp_path, rounds=8, inner_steps=20)
    cluster.wait(job_id, lambda j: j.round >= 1)

    folder = node.jobs.job_dir(job_id)
    record = json.loads((folder.path / "serverapp.json").read_text())
    assert record["run_id"] == folder.run_id()
    assert process_started(record["pid"]) == record["started"]
    os.kill(record["pid"], signal.SIGKILL)  # no "failed", no "finished": just gone

    done = cluster.wait(job_id, lambda j: j.status == "finished", timeout=400)
    events = node.jobs.logs(job_id).events
    died = [e for e in events if e.type == "serverapp_died"]
    starts = [e for e in events if e.type == "started"]
    assert len(died) == 1 and died[0].fields["run_id"] == record["run_id"], died
    assert len(starts) == 2 and starts[1].fields["resumed_after"] >= 1, starts
    assert folder.run_id() != record["run_id"]  # a new run took it up
    assert [h.round for h in done.history] == list(range(1, 9))  # no round twice
    assert node.assets.get(done.model_asset).owner == alice.address


def test_a_job_whose_serverapp_keeps_dying_fails_and_is_refunded(
    cluster: Cluster, tmp_path: Path
) -> None:
    node = cluster.node
    wallet = node.chain.token.balance_of(dev(node, "alice").address)
    job_id, alice = tiny_job(cluster, tmp_path, rounds=2, inner_steps=5)
    folder = node.jobs.job_dir(job_id)
    killed: set[int] = set()
    deadline = time.monotonic() + 240
    while node.jobs.get(job_id).status in ("queued", "running"):  # no worker: it waits
        assert time.monotonic() < deadline, cluster.logs(job_id)
        path = folder.path / "serverapp.json"
        record = json.loads(path.read_text()) if path.exists() else None
        if record and record["pid"] not in killed and process_started(record["pid"]):
            os.kill(record["pid"], signal.SIGKILL)
            killed.add(record["pid"])
        time.sleep(0.2)
    job = node.jobs.get(job_id)
    assert job.status == "failed" and "ServerApp process died 4 times" in (job.error or "")
    assert len(killed) == 4
    assert node.chain.token.balance_of(alice.address) == wallet  # the budget came back
