"""Jobs on a real Flower SuperLink with SuperNodes on 127.0.0.1 (slow)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.compute.conftest import TOKEN, Cluster, anchored_dataset, register_tiny
from tests.data.conftest import dev

pytestmark = pytest.mark.slow


def recipe(base: int, dataset: int, **distributed: object) -> str:
    settings = {
        "workers": 2,
        "min_workers": 1,
        "rounds": 2,
        "inner_steps": 5,
        "round_timeout_s": 60,
    }
    settings.update(distributed)
    lines = "\n".join(f"  {k}: {v}" for k, v in settings.items())
    return f"""
name: tiny reverse
method: sft
base_model: {base}
datasets:
  - dataset: {dataset}
hyperparameters:
  learning_rate: 0.003
  batch_size: 4
  max_length: 64
evaluation:
  split: 0.2
distributed:
{lines}
budget:
  max_tokens: "{100 * TOKEN}"
  max_seconds: 600
"""


def test_two_supernodes_finish_a_job_and_providers_are_paid(
    cluster: Cluster, tmp_path: Path
) -> None:
    node = cluster.node
    alice, bob = dev(node, "alice"), dev(node, "bob")
    base = register_tiny(node, alice, tmp_path, "causal-lm")
    dataset = anchored_dataset(node, alice, bob, "instruction")
    cluster.worker("bob")
    cluster.worker("carol")
    api = cluster.sign_in("alice")
    before = node.chain.token.balance_of(alice.address)
    job = api.request("POST", "/jobs", json={"recipe": recipe(base.asset_id, dataset)})
    done = cluster.wait(job["job_id"], lambda j: j["status"] == "finished")
    print(cluster.logs(job["job_id"]))
    assert done["round"] == 2
    assert len(done["history"]) == 2
    assert set(done["payouts"]) == {dev(node, "bob").address, dev(node, "carol").address}
    assert sum(int(v) for v in done["payouts"].values()) <= 100 * TOKEN
    assert node.chain.token.balance_of(alice.address) == before - 100 * TOKEN
    model = node.assets.get(done["model_asset"])
    assert model.owner == alice.address
    assert base.asset_id in model.parents and dataset in model.parents
