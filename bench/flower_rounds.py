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
on every worker, and Flower's fixed waits (the SuperNode asks for work every 3 s, the
ServerApp's `send_and_receive` looks for replies every 3 s). A Cairn worker keeps a resident
trainer beside its SuperNode instead (`cairn.provider.host`), with those waits shortened; the
ratio `flower_overhead_ratio_<n>` is the baseline's overhead over the resident trainer's.

    python bench/flower_rounds.py [--supernodes 2 4] [--rounds 3] [--inner-steps 20]
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")

import argparse
import json
import random
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

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


def recipe(base: int, dataset: int, workers: int, rounds: int, inner_steps: int) -> str:
    return f"""
name: overhead {workers}
method: sft
base_model: {base}
datasets: [{{dataset: {dataset}}}]
hyperparameters: {{learning_rate: 0.001, batch_size: 8, max_length: 64}}
evaluation: {{split: 0.05}}
distributed: {{workers: {workers}, min_workers: {workers}, rounds: {rounds}, inner_steps: {inner_steps}, round_timeout_s: 300}}
"""


def measure(supernodes: list[int], rounds: int, inner_steps: int) -> dict[str, Any]:
    """Overhead per round at each SuperNode count, in one node."""
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
        workers: list[Worker] = []
        server = None
        try:
            node.start_compute()
            server = serve(node)
            url = f"http://127.0.0.1:{node.config.port}"
            base, dataset = prepare(node, folder, 400)
            api = NodeClient(url)
            api.sign_in(account(node, "alice"))
            for n in supernodes:
                for resident in (False, True):
                    workers = start_workers(node, url, folder, n, resident)
                    text = recipe(base, dataset, n, rounds, inner_steps)
                    job_id = api.request("POST", "/jobs", json={"recipe": text})["job_id"]
                    job = wait(node, job_id)
                    stop_workers(workers)
                    events = [e.fields for e in node.jobs.logs(job_id).events if e.type == "round"]
                    later = [e for e in events if e["round"] > 1]
                    overhead = sum(e["overhead_seconds"] for e in later) / len(later)
                    wall = sum(e["seconds"] for e in later) / len(later)
                    compute = sum(e["compute_seconds"] for e in later) / len(later)
                    mode = "resident" if resident else "per-round process (baseline)"
                    print(
                        f"{n} SuperNodes, {mode}: round {wall:.2f} s, compute {compute:.2f} s, "
                        f"overhead {overhead:.2f} s",
                        file=sys.stderr,
                    )
                    if not resident:
                        figures[f"flower_round_overhead_{n}_baseline"] = round(overhead, 3)
                        figures[f"flower_final_loss_{n}_baseline"] = round(job.metrics["loss"], 4)
                        continue
                    figures |= {
                        f"flower_round_seconds_{n}": round(wall, 3),
                        f"flower_compute_seconds_{n}": round(compute, 3),
                        f"flower_round_overhead_{n}": round(overhead, 3),
                        f"flower_overhead_share_{n}": round(overhead / wall, 3),
                        f"flower_final_loss_{n}": round(job.metrics["loss"], 4),
                        f"flower_overhead_ratio_{n}": round(
                            figures[f"flower_round_overhead_{n}_baseline"] / overhead, 2
                        ),
                    }
        finally:
            stop_workers(workers)
            if server is not None:
                server.should_exit = True
            node.close()
    figures["flower_inner_steps"] = inner_steps
    return figures


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
    parser.add_argument("--inner-steps", type=int, default=20)
    parser.add_argument("--quick", action="store_true", help="2 rounds")
    args = parser.parse_args()
    figures = measure(sorted(args.supernodes), 2 if args.quick else args.rounds, args.inner_steps)
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
