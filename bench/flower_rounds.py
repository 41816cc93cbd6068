"""Flower round overhead: a round's wall time minus its workers' compute, on a real deployment.

A dev node (memory chain, temporary folder) serves its API and runs its Flower SuperLink;
N provider workers (`cairn.provider.worker.Worker`: staked in JobEscrow, each a real
`flower-supernode` process on 127.0.0.1) train an `sft` job of a tiny Llama for a few DiLoCo
rounds. Each round event of the job carries its wall time (select workers, send, train, receive,
verify, outer step, evaluate, checkpoint) and the slowest worker's compute time inside
`inner_train`; the overhead is their difference. The first round also identifies the providers
and checks their stakes, so the figure is the mean over the later rounds.

Flower 1.32's deployment runtime starts a fresh ClientApp process for every message. The
baseline, measured in the same run, trains in that process (a bare `flower-supernode`): each
round pays a Python start, the training imports (torch, transformers, peft) and the model load
on every worker, and Flower's fixed waits (the SuperNode asks for work every 3 s, its SuperExec
looks for tasks every second, an object not pushed yet is asked for again after 1 s, 2 s, ...).
A Cairn worker (`cairn.provider.host`) runs its ClientApps in threads of one process beside a
resident trainer, with those waits shortened, and the node packs a round's tensors into one
array per dtype (a handful of Flower objects per message, not a few per parameter); the ratio
`flower_overhead_ratio_<n>` is the baseline's overhead over the Cairn worker's. (The baseline
shares the node's side: packing and the ServerApp's quicker pulls.)

Also per SuperNode count: the compute share of a round (compute over wall) at the smallest and
largest H, and the bytes Flower actually carried per round (`sent_bytes`, `received_bytes`:
the arrays of the messages, serialised as sent, from the job's history), with float32 updates
and with int4 ones (`flower_uplink_reduction_<n>_int4`).

    python bench/flower_rounds.py [--supernodes 2 4] [--rounds 3] [--inner-steps 20 200]
    python bench/flower_rounds.py --quick   # 2 SuperNodes, 2 rounds
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")

import argparse
import json
import random
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, NamedTuple

import uvicorn

from cairn.api.app import create_app
from cairn.api.client import NodeClient
from cairn.chain.anvil import free_port
from cairn.compute.job import Job
from cairn.core.data_policy import DatasetSpec
from cairn.data.signing import records_root, sign_contribution
from cairn.node import Node, open_node
from cairn.provider.worker import Worker
from cairn.train.tiny import tiny_causal_lm

TOKEN = 10**18
PROVIDERS = ("bob", "carol", "dave", "erin")


def record(rng: random.Random, i: int) -> dict[str, str]:
    word = "".join(rng.choice("abcdefgh") for _ in range(rng.randint(3, 6)))
    return {"prompt": f"reverse {word} #{i}", "response": word[::-1]}


def serve(node: Node) -> uvicorn.Server:
    server = uvicorn.Server(
        uvicorn.Config(create_app(node), host="127.0.0.1", port=node.config.port, log_level="error")
    )
    threading.Thread(target=server.run, daemon=True).start()
    deadline = time.monotonic() + 30
    while not server.started:
        if time.monotonic() > deadline:
            raise RuntimeError("the node's API did not start")
        time.sleep(0.05)
    return server


def account(node: Node, label: str) -> Any:
    return node.signers.get(node.keystore.find_by_label(label).address)


def prepare(node: Node, folder: Path, records: int) -> tuple[int, int]:
    """A tiny base model asset and an anchored instruction dataset; their asset ids."""
    alice, bob = account(node, "alice"), account(node, "bob")
    model, tokenizer = tiny_causal_lm(texts=["reverse abcdefgh #0123456789"])
    model.save_pretrained(folder / "base", safe_serialization=True)
    tokenizer.save_pretrained(folder / "base")
    base = node.catalog.register_folder(
        alice, folder / "base", name="tiny llama", licence="Apache-2.0", family="causal-lm"
    )
    spec = DatasetSpec.model_validate({"task": {"type": "instruction"}})
    dataset = node.data.datasets.create(alice, name="reverse", licence="CC0-1.0", spec=spec)
    rng = random.Random(0)
    lines = [json.dumps(record(rng, i)) for i in range(records)]
    typed = node.data.contributions.typed_data(dataset.asset_id, records_root(lines), 1)
    node.data.contributions.contribute(
        dataset.asset_id,
        contributor=bob.address,
        nonce=1,
        signature=sign_contribution(bob, typed),
        lines=lines,
    )
    node.data.anchoring.anchor(dataset.asset_id)
    return base.asset_id, dataset.asset_id


def recipe(
    base: int, dataset: int, workers: int, rounds: int, inner_steps: int, encoding: str
) -> str:
    return f"""
name: overhead {workers}
method: sft
base_model: {base}
datasets: [{{dataset: {dataset}}}]
hyperparameters: {{learning_rate: 0.001, batch_size: 8, max_length: 64}}
evaluation: {{split: 0.05}}
distributed: {{workers: {workers}, min_workers: {workers}, rounds: {rounds}, inner_steps: {inner_steps}, round_timeout_s: 600, outer_encoding: {encoding}}}
"""


class Run(NamedTuple):
    """One job's later rounds, averaged: what each round cost and carried."""

    wall: float
    compute: float
    overhead: float
    exchange: float  # sending, training, replies: the rest is the node's (outer step, eval...)
    sent_bytes: float  # arrays to the workers over Flower, per round
    received_bytes: float  # arrays back from them, per round
    loss: float


class Setup(NamedTuple):
    """The node every job of the run trains on, and what they train."""

    node: Node
    api: NodeClient  # alice's, signed in
    url: str
    folder: Path
    base: int
    dataset: int
    rounds: int


def run_job(setup: Setup, n: int, h: int, resident: bool, encoding: str = "float32") -> Run:
    """Train one job with `n` fresh workers (resident or not) at `h` inner steps."""
    node, api = setup.node, setup.api
    workers = start_workers(node, setup.url, setup.folder, n, resident)
    try:
        text = recipe(setup.base, setup.dataset, n, setup.rounds, h, encoding)
        job_id = api.request("POST", "/jobs", json={"recipe": text})["job_id"]
        job = wait(node, job_id)
    finally:
        stop_workers(workers)
    events = [e.fields for e in node.jobs.logs(job_id).events if e.type == "round"]
    later = [e for e in events if e["round"] > 1]  # the first also identifies the providers
    entries = [h for h in job.history if h.round > 1]
    return Run(
        wall=statistics.fmean(e["seconds"] for e in later),
        compute=statistics.fmean(e["compute_seconds"] for e in later),
        overhead=statistics.fmean(e["overhead_seconds"] for e in later),
        exchange=statistics.fmean(e.get("exchange_seconds", e["seconds"]) for e in later),
        sent_bytes=statistics.fmean(h.sent_bytes for h in entries),
        received_bytes=statistics.fmean(h.received_bytes for h in entries),
        loss=job.metrics["loss"],
    )


def measure(supernodes: list[int], rounds: int, steps: list[int]) -> dict[str, Any]:
    """Overhead and bytes per round at each SuperNode count and H, in one node."""
    figures: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="cairn-flower-bench-") as tmp:
        folder = Path(tmp)
        node = open_node(
            folder / "node",
            chain="memory",
            dev=True,
            port=free_port(),
            fleet_port=free_port(),
            dev_accounts=("alice", *PROVIDERS),
        )
        server = None
        try:
            node.start_compute()
            server = serve(node)
            url = f"http://127.0.0.1:{node.config.port}"
            base, dataset = prepare(node, folder, 400)
            api = NodeClient(url)
            api.sign_in(account(node, "alice"))
            setup = Setup(node, api, url, folder, base, dataset, rounds)
            low, high = min(steps), max(steps)
            for n in supernodes:
                # Flower's per-message processes (the baseline) against Cairn's worker
                bare = run_job(setup, n, low, resident=False)
                resident = run_job(setup, n, low, resident=True)
                say(n, low, "per-round process (baseline)", bare)
                say(n, low, "resident", resident)
                figures |= {
                    f"flower_round_overhead_{n}_baseline": round(bare.overhead, 3),
                    f"flower_final_loss_{n}_baseline": round(bare.loss, 4),
                    f"flower_round_seconds_{n}": round(resident.wall, 3),
                    f"flower_compute_seconds_{n}": round(resident.compute, 3),
                    f"flower_round_overhead_{n}": round(resident.overhead, 3),
                    f"flower_transport_seconds_{n}": round(resident.exchange - resident.compute, 3),
                    f"flower_node_seconds_{n}": round(resident.wall - resident.exchange, 3),
                    f"flower_overhead_share_{n}": round(resident.overhead / resident.wall, 3),
                    f"flower_compute_share_{n}_h{low}": round(resident.compute / resident.wall, 3),
                    f"flower_final_loss_{n}": round(resident.loss, 4),
                    f"flower_overhead_ratio_{n}": round(bare.overhead / resident.overhead, 2),
                    f"flower_sent_bytes_per_round_{n}": int(resident.sent_bytes),
                    f"flower_received_bytes_per_round_{n}": int(resident.received_bytes),
                }
                if high != low:  # longer rounds: the share of the round spent computing
                    long = run_job(setup, n, high, resident=True)
                    say(n, high, "resident", long)
                    figures |= {
                        f"flower_round_overhead_{n}_h{high}": round(long.overhead, 3),
                        f"flower_compute_share_{n}_h{high}": round(long.compute / long.wall, 3),
                    }
                # the same rounds with int4 updates: bytes actually received over Flower
                quantised = run_job(setup, n, low, resident=True, encoding="int4")
                say(n, low, "resident, int4 updates", quantised)
                figures |= {
                    f"flower_received_bytes_per_round_{n}_int4": int(quantised.received_bytes),
                    f"flower_uplink_reduction_{n}_int4": round(
                        resident.received_bytes / quantised.received_bytes, 2
                    ),
                    f"flower_final_loss_{n}_int4": round(quantised.loss, 4),
                }
        finally:
            if server is not None:
                server.should_exit = True
            node.close()
    figures["flower_inner_steps"] = steps
    return figures


def say(n: int, h: int, mode: str, run: Run) -> None:
    print(
        f"{n} SuperNodes, H={h}, {mode}: round {run.wall:.2f} s, compute {run.compute:.2f} s "
        f"({run.compute / run.wall:.0%}), overhead {run.overhead:.2f} s (Flower and the "
        f"workers {run.exchange - run.compute:.2f} s, the node {run.wall - run.exchange:.2f} s), "
        f"{run.sent_bytes / 1e6:.2f} MB sent, {run.received_bytes / 1e6:.2f} MB received",
        file=sys.stderr,
    )


def start_workers(node: Node, url: str, folder: Path, n: int, resident: bool) -> list[Worker]:
    """`n` staked provider workers, with resident trainers or training in Flower's processes."""
    workers = []
    for label in PROVIDERS[:n]:
        worker = Worker(
            NodeClient(url), account(node, label), folder / label, stake=TOKEN, resident=resident
        )
        worker.ensure_staked()
        worker.start()
        workers.append(worker)
    return workers


def stop_workers(workers: list[Worker]) -> None:
    for worker in workers:
        worker.stop()
    workers.clear()


def wait(node: Node, job_id: str, timeout: float = 1800) -> Job:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = node.jobs.get(job_id)
        if job.status == "finished":
            return job
        if job.status in ("failed", "cancelled"):
            raise RuntimeError(f"job {job.status}: {job.error}")
        time.sleep(0.5)
    raise RuntimeError("the job did not finish in time")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--supernodes", type=int, nargs="+", default=[2, 4])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--inner-steps", type=int, nargs="+", default=[20, 200])
    parser.add_argument("--quick", action="store_true", help="2 SuperNodes, 2 rounds")
    args = parser.parse_args()
    supernodes = [2] if args.quick else sorted(args.supernodes)
    rounds = 2 if args.quick else args.rounds
    figures = measure(supernodes, rounds, sorted(set(args.inner_steps)))
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
