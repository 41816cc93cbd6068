"""Jobs on a real Flower SuperLink with SuperNodes on 127.0.0.1 (slow).

The tests that only run jobs share the module's cluster (`shared_cluster`: one node, one
SuperLink, bob's and carol's SuperNodes); the two that kill a SuperNode or restart the node have
clusters of their own.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from safetensors.torch import load

from cairn.chain.escrow import Enlistment
from cairn.node import Node
from cairn.train.adapter_folder import AdapterBase
from cairn.train.weights import fetch_folder
from tests.compute.conftest import (
    TOKEN,
    Cluster,
    anchored_dataset,
    register_tiny,
    save_tiny_model,
)
from tests.data.conftest import dev, make_dataset, upload

pytestmark = [pytest.mark.process, pytest.mark.slow]


def recipe(
    base: int, dataset: int, method: str = "sft", hparams: str = "", **distributed: Any
) -> str:
    settings = {
        "workers": 2,
        "min_workers": 1,
        "rounds": 2,
        "inner_steps": 5,
        "round_timeout_s": 60,
    }
    settings.update(distributed)
    lines = "\n".join(f"  {k}: {v}" for k, v in settings.items())
    hparams = hparams or "  learning_rate: 0.003\n  batch_size: 4\n  max_length: 64\n"
    return f"""
name: tiny {method}
method: {method}
base_model: {base}
datasets:
  - dataset: {dataset}
hyperparameters:
{hparams}
evaluation:
  split: 0.2
distributed:
{lines}
budget:
  max_tokens: "{100 * TOKEN}"
  max_seconds: 900
"""


def load_with_plain_transformers(folder: Path, kind: str) -> str:
    """Load a model folder in a fresh Python that never imports cairn; returns its class."""
    auto = "AutoModelForCausalLM" if kind == "causal-lm" else "AutoModelForSequenceClassification"
    code = (
        "import sys, transformers\n"
        f"m = transformers.{auto}.from_pretrained(sys.argv[1])\n"
        "transformers.AutoTokenizer.from_pretrained(sys.argv[1])\n"
        "assert not any(k.startswith('cairn') for k in sys.modules)\n"
        "print(type(m).__name__)\n"
    )
    env = {**os.environ, "PYTHONPATH": ""}
    out = subprocess.run(
        [sys.executable, "-c", code, str(folder)], capture_output=True, text=True, env=env, cwd="/"
    )
    assert out.returncode == 0, out.stderr[-2000:]
    return out.stdout.strip()


def load_with_plain_peft(base: Path, adapters: Path) -> str:
    """Load adapters on their base in a fresh Python that never imports cairn; its class."""
    code = (
        "import sys, peft, transformers\n"
        "base = transformers.AutoModelForCausalLM.from_pretrained(sys.argv[1])\n"
        "m = peft.PeftModel.from_pretrained(base, sys.argv[2])\n"
        "assert not any(k.startswith('cairn') for k in sys.modules)\n"
        "print(type(m).__name__)\n"
    )
    env = {**os.environ, "PYTHONPATH": ""}
    out = subprocess.run(
        [sys.executable, "-c", code, str(base), str(adapters)],
        capture_output=True,
        text=True,
        env=env,
        cwd="/",
    )
    assert out.returncode == 0, out.stderr[-2000:]
    return out.stdout.strip()


def test_two_supernodes_finish_a_job_paid_anchored_and_exported(
    shared_cluster: Cluster, tmp_path: Path
) -> None:
    cluster = shared_cluster
    node = cluster.node
    alice, bob, carol = dev(node, "alice"), dev(node, "bob"), dev(node, "carol")
    assert cluster.providers() == {bob.address, carol.address}  # two SuperNodes, both up
    base = register_tiny(node, alice, tmp_path, "causal-lm")
    dataset = anchored_dataset(node, alice, bob, "instruction")
    api = cluster.sign_in("alice")
    before = node.chain.token.balance_of(alice.address)
    job = api.request("POST", "/jobs", json={"recipe": recipe(base.asset_id, dataset)})
    assert job["status"] == "running" and job["escrowed"]
    done = cluster.wait(job["job_id"], lambda j: j.status == "finished")

    # two rounds, both workers in each, a checkpoint stored by CID after each
    assert [h.round for h in done.history] == [1, 2]
    assert all(len(h.workers) == 2 and h.checkpoint_cid for h in done.history)
    # the screens ran on every round; a flag (a suspicion only) names one of the round's workers
    assert all(f.account in h.workers for h in done.history for f in h.screens)
    # after the last round a round of each provider was trained again and matched; a round 2
    # needs the AdamW state its worker resumed, revealed over Flower
    assert done.verification is not None, done
    replays = done.verification.replays
    assert {r.account for r in replays} == {bob.address, carol.address}, done.verification
    assert all(r.ok and r.exact for r in replays), replays
    assert done.history[-1].eval["loss"] < done.history[0].train_loss
    assert set(done.metrics) == {"loss", "perplexity"}

    # the budget left alice's balance; both providers were paid by work, the rest stays
    assert node.chain.token.balance_of(alice.address) == before - 100 * TOKEN
    assert set(done.payouts) == {bob.address, carol.address}
    assert sum(int(v) for v in done.payouts.values()) <= 100 * TOKEN
    for account in (bob.address, carol.address):
        assert node.chain.escrow.provider(account).open_jobs == 0  # stakes released

    # the model: alice's asset, lineage to base and dataset, reports anchored under it
    model = node.assets.get(done.model_asset)
    assert model.owner == alice.address and model.kind == "model"
    assert sorted(model.parents) == sorted([base.asset_id, dataset])
    extra = node.catalog.metadata(model)
    lineage = extra["training"]["lineage"]
    assert lineage["work_shares_cid"] == done.shares_cid
    assert lineage["datasets"][0]["attribution_cid"]
    shares = node.store.get_json(done.shares_cid)
    assert len(shares["reports"]) == 4 and {s["account"] for s in shares["shares"]} == {
        bob.address,
        carol.address,
    }
    assert node.chain.ledger.is_anchored(model.asset_id, done.reports_root)

    # the stored folder loads with plain transformers; its card names the lineage
    folder = fetch_folder(node.store, done.model_cid, tmp_path / "export")
    assert load_with_plain_transformers(folder, "causal-lm") == "LlamaForCausalLM"
    card = (folder / "README.md").read_text()
    assert done.shares_cid in card and "## Evaluation" in card

    # a trained model is itself a base for the next job
    assert node.catalog.folder(model).joinpath("config.json").exists()


def verifiable_dataset(node: Node, n: int = 24) -> int:
    alice, bob = dev(node, "alice"), dev(node, "bob")
    dataset = make_dataset(node, alice, task={"type": "verifiable", "answer_type": "exact"})
    rng = random.Random(3)
    records = []
    for i in range(n):
        word = "".join(rng.choice("abcd") for _ in range(3))
        records.append({"prompt": f"reverse {word} #{i}", "answer": word[::-1]})
    assert upload(node, bob, dataset.asset_id, records).accepted == n
    node.data.anchoring.anchor(dataset.asset_id)
    return dataset.asset_id


def test_every_method_trains_end_to_end(shared_cluster: Cluster, tmp_path: Path) -> None:
    cluster = shared_cluster
    node = cluster.node
    alice, bob = dev(node, "alice"), dev(node, "bob")
    lm = register_tiny(node, alice, tmp_path, "causal-lm")
    encoder = register_tiny(node, alice, tmp_path, "encoder")
    teacher_folder = save_tiny_model(tmp_path / "teacher", "causal-lm")
    teacher = node.catalog.register_folder(
        alice, teacher_folder, name="teacher", licence="Apache-2.0", family="causal-lm"
    )
    instruction = anchored_dataset(node, alice, bob, "instruction", n=24)
    sentiment = anchored_dataset(node, alice, bob, "classification", n=24)
    verifiable = verifiable_dataset(node)
    api = cluster.sign_in("alice")
    small = {"workers": 1, "rounds": 1, "inner_steps": 2}
    cases = {
        "lora": (
            lm.asset_id,
            instruction,
            "  learning_rate: 0.01\n  batch_size: 2\n  max_length: 64\n  lora_r: 4\n",
        ),
        "classify": (
            encoder.asset_id,
            sentiment,
            "  learning_rate: 0.01\n  batch_size: 4\n  max_length: 32\n",
        ),
        "grpo": (
            lm.asset_id,
            verifiable,
            "  learning_rate: 0.001\n  batch_size: 2\n  num_generations: 2\n"
            "  max_prompt_length: 32\n  max_completion_length: 8\n",
        ),
        "distill": (
            lm.asset_id,
            instruction,
            f"  teacher_model: {teacher.asset_id}\n  learning_rate: 0.01\n  batch_size: 2\n"
            "  max_length: 64\n",
        ),
    }
    expected = {
        "lora": {"loss", "perplexity"},
        "classify": {"accuracy", "f1", "loss"},
        "grpo": {"reward", "accuracy"},
        "distill": {"loss", "perplexity"},
    }
    # how each run's worker sends its update: quantised for two of them (cairn.core.quantize)
    encodings = {"lora": "int4", "classify": "float32", "grpo": "int8", "distill": "float32"}
    started = {  # all four at once, one worker each, on two SuperNodes: one serves several runs
        method: api.request(
            "POST",
            "/jobs",
            json={
                "recipe": recipe(
                    base, dataset, method, hparams, outer_encoding=encodings[method], **small
                )
            },
        )["job_id"]
        for method, (base, dataset, hparams) in cases.items()
    }
    trained_by: Counter[str] = Counter()  # runs each provider trained in
    for method, job_id in started.items():
        done = cluster.wait(job_id, lambda j: j.status == "finished", timeout=400)
        assert expected[method] <= set(done.metrics), (method, done.metrics)
        assert all(len(h.workers) == 1 for h in done.history), (method, done.history)
        trained_by.update({h.workers[0] for h in done.history})
        # float32 updates are replayed (the one round matched); quantised ones and distillation
        # say why they are not
        assert done.verification is not None, method
        if encodings[method] == "float32" and method != "distill":
            assert [r.ok for r in done.verification.replays] == [True], done.verification
        else:
            assert done.verification.skipped and not done.verification.replays, method
        # the update's bytes against the float32 bytes of the parameters it updates (the round's
        # checkpoint): equal, or about 4x / 8x fewer with the scales
        (entry,) = done.history
        assert entry.checkpoint_cid is not None
        dense = sum(4 * t.numel() for t in load(node.store.get(entry.checkpoint_cid)).values())
        expected_ratio = {"float32": (1.0, 1.0), "int8": (3.5, 4.0), "int4": (6.5, 8.0)}
        low, high = expected_ratio[encodings[method]]
        assert low <= dense / entry.update_bytes <= high, (method, dense, entry.update_bytes)
        # what Flower carried: the arrays as serialised (a header of ~128 bytes each)
        assert entry.update_bytes < entry.received_bytes < entry.update_bytes * 1.2 + 4096
        assert dense <= entry.sent_bytes < dense * 1.2 + 4096  # float32 weights, one worker
        model = node.assets.get(done.model_asset)
        if method == "distill":
            assert teacher.asset_id in model.parents
        folder = fetch_folder(node.store, done.model_cid, tmp_path / f"export-{method}")
        family = "encoder" if method == "classify" else "causal-lm"
        if method == "lora":  # its adapters alone, which plain peft loads on the base
            assert not (folder / "config.json").exists()
            assert node.catalog.adapter(model) == AdapterBase(
                lm.asset_id, node.catalog.manifest(lm)
            )
            assert load_with_plain_peft(node.catalog.folder(lm), folder).startswith("PeftModel")
            folder = node.catalog.folder(model)  # merged into the base, once, on the node
        assert load_with_plain_transformers(folder, family)
        if method == "classify":
            config = json.loads((folder / "config.json").read_text())
            assert set(config["id2label"].values()) == {"positive", "negative"}
    assert set(trained_by) <= cluster.providers()
    assert max(trained_by.values()) >= 2, trained_by  # a SuperNode served several runs


def test_a_supernode_killed_mid_round_drops_out_and_the_job_finishes(
    cluster: Cluster, tmp_path: Path
) -> None:
    node = cluster.node
    alice, bob = dev(node, "alice"), dev(node, "bob")
    base = register_tiny(node, alice, tmp_path, "causal-lm")
    dataset = anchored_dataset(node, alice, bob, "instruction")
    cluster.worker("bob")
    doomed = cluster.worker("carol")
    api = cluster.sign_in("alice")
    # a round takes about a second: 4 of them could all be over before the kill below
    text = recipe(base.asset_id, dataset, rounds=12, inner_steps=40, round_timeout_s=10)
    job = api.request("POST", "/jobs", json={"recipe": text})
    cluster.wait(job["job_id"], lambda j: j.round >= 1)
    assert doomed.process is not None
    assert node.jobs.get(job["job_id"]).round < 10, "the job went too fast for this test"
    # kill -9 of carol's SuperNode and its ClientApps, so it says goodbye to nobody. A round is
    # in flight: she dies under it, or (on a loaded machine) just after replying. The SuperLink
    # still lists her until she misses its heartbeats (a minute), so a round sent to her then
    # waits for her reply until its timeout and drops her; on a machine slow enough that the
    # minute passes first, she is sent no more work at all
    os.killpg(doomed.process.pid, signal.SIGKILL)
    doomed.process.wait(timeout=30)
    done = cluster.wait(job["job_id"], lambda j: j.status == "finished", timeout=400)
    later = done.history[1:]
    alone = [h for h in later if h.workers == (bob.address,)]
    assert alone, later
    assert all(len(h.dropped) <= 1 for h in later), later  # only carol is ever dropped
    assert any(h.dropped for h in alone) or len(alone) >= 2, later
    assert done.history[-1].workers == (bob.address,)
    carol = dev(node, "carol").address
    work = {s["account"]: int(s["work"]) for s in node.store.get_json(done.shares_cid)["shares"]}
    assert work[bob.address] > work[carol]  # carol is paid for the rounds she finished only


def test_a_restarted_node_resumes_the_job_from_its_checkpoint(
    make_node: Any, tmp_path: Path
) -> None:
    from cairn.chain.anvil import free_port

    ports = {"port": free_port(), "fleet_port": free_port(), "chain": "anvil"}
    first = make_node(tmp_path / "node", **ports)
    cluster = Cluster(first, tmp_path)
    try:
        alice, bob = dev(first, "alice"), dev(first, "bob")
        base = register_tiny(first, alice, tmp_path, "causal-lm")
        dataset = anchored_dataset(first, alice, bob, "instruction")
        cluster.worker("bob")
        api = cluster.sign_in("alice")
        # rounds take about a second now (no process per message): enough of them that the
        # job is still running when the node stops
        text = recipe(base.asset_id, dataset, workers=1, rounds=10, inner_steps=20)
        job_id = api.request("POST", "/jobs", json={"recipe": text})["job_id"]
        cluster.wait(job_id, lambda j: j.round >= 1)
        cluster.server.stop()
        first.close()  # the SuperLink and the job's ServerApp stop with the node

        second = make_node(tmp_path / "node", **ports)
        restarted = Cluster(second, tmp_path)  # start_compute resumes the job
        restarted.workers = cluster.workers  # the same SuperNode reconnects by itself
        cluster = restarted
        done = cluster.wait(job_id, lambda j: j.status == "finished", timeout=400)
        events = second.jobs.logs(job_id).events
        starts = [e for e in events if e.type == "started"]
        assert len(starts) == 2, f"the job finished before the node stopped: {starts}"
        assert starts[1].fields["resumed_after"] >= 1
        assert [h.round for h in done.history] == list(range(1, 11))  # no round twice
        assert second.assets.get(done.model_asset).owner == alice.address
    finally:
        cluster.close()


def test_cancelling_a_running_job_stops_it_and_refunds_the_budget(
    shared_cluster: Cluster, tmp_path: Path
) -> None:
    cluster = shared_cluster
    node = cluster.node
    alice, bob = dev(node, "alice"), dev(node, "bob")
    base = register_tiny(node, alice, tmp_path, "causal-lm")
    dataset = anchored_dataset(node, alice, bob, "instruction")
    api = cluster.sign_in("alice")
    before = node.chain.token.balance_of(alice.address)
    text = recipe(base.asset_id, dataset, workers=1, rounds=50, inner_steps=3)
    job_id = api.request("POST", "/jobs", json={"recipe": text})["job_id"]
    cluster.wait(job_id, lambda j: j.round >= 1)
    with pytest.raises(Exception, match="belongs to"):
        cluster.sign_in("bob").request("POST", f"/jobs/{job_id}/cancel")
    cancelled = api.request("POST", f"/jobs/{job_id}/cancel")
    assert cancelled["status"] == "cancelled"
    assert cancelled["payouts"] == {"refund": str(100 * TOKEN)}
    assert node.chain.token.balance_of(alice.address) == before
    # the one provider given work was enlisted, the other identified but idle was not (its
    # stake stays free for other jobs), and after the cancel no stake is locked
    joined = node.jobs.get(job_id).providers
    assert len(joined) == 1 and {a.lower() for a in joined} < {
        a.lower() for a in cluster.providers()
    }
    idle = [a for a in cluster.providers() if a.lower() not in {j.lower() for j in joined}]
    assert node.chain.escrow.enlistment(job_id, idle[0]) == Enlistment.NONE
    for account in cluster.providers():
        assert node.chain.escrow.provider(account).open_jobs == 0
    rounds = node.jobs.get(job_id).round
    import time

    time.sleep(8)
    assert node.jobs.get(job_id).round <= rounds + 1  # at most the round in flight
    with pytest.raises(Exception, match="is cancelled"):
        api.request("POST", f"/jobs/{job_id}/cancel")
