"""An economy with something to pay for: a dataset with contributors, a model trained on it
(its lineage as a finished job records it), providers' work shares, and funded payers."""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path

import pytest
from eth_account.signers.local import LocalAccount

from cairn.economy.keys import ApiKey
from cairn.node import Node
from cairn.train.catalog import DEFAULT_MODEL_SPLIT
from tests.compute.conftest import register_tiny, reverse_record
from tests.data.conftest import dev, make_dataset, upload

TOKEN = 10**18
PRICE = TOKEN // 100  # 0.01 CAIRN per 1,000 tokens


@dataclass
class World:
    node: Node
    alice: LocalAccount  # owns the dataset and the trained model
    bob: LocalAccount  # contributes records, and provides compute
    carol: LocalAccount  # contributes records, and pays for calls
    dataset: int
    version: str
    base: int  # the operator's base model
    model: int  # trained from base on dataset
    key: ApiKey  # carol's


def build_world(node: Node, tmp: Path) -> World:
    alice, bob, carol = (dev(node, n) for n in ("alice", "bob", "carol"))
    rng = random.Random(3)
    dataset = make_dataset(node, alice)
    upload(node, bob, dataset.asset_id, [reverse_record(rng) for _ in range(30)])
    upload(node, carol, dataset.asset_id, [reverse_record(rng) for _ in range(10)])
    node.data.anchoring.anchor(dataset.asset_id)
    version = node.data.anchoring.versions(dataset.asset_id)[0]
    base = register_tiny(node, node.operator, tmp, "causal-lm")
    shares_cid = node.store.put_json(
        {
            "schema": "cairn.work-shares/v1",
            "shares": [
                {"account": bob.address, "work": "300"},
                {"account": carol.address, "work": "100"},
            ],
        }
    )
    extra = node.catalog.metadata(base)
    model = node.assets.register(
        alice,
        kind="model",
        name="reverser",
        licence="Apache-2.0",
        parents=[base.asset_id, dataset.asset_id],
        split=DEFAULT_MODEL_SPLIT,
        extra={
            "model": extra["model"],
            "training": {
                "job_id": "0x" + "ab" * 32,
                "method": "sft",
                "lineage": {
                    "datasets": [
                        {
                            "dataset": dataset.asset_id,
                            "version": version.version,
                            "records": version.records,
                            "attribution_cid": version.attribution_cid,
                        }
                    ],
                    "work_shares_cid": shares_cid,
                },
            },
        },
    )
    node.economy.balances.deposit(carol, 50 * TOKEN)  # into the vault
    key, _ = node.economy.keys.create(carol.address, "tests")
    return World(
        node,
        alice,
        bob,
        carol,
        dataset.asset_id,
        version.version,
        base.asset_id,
        model.asset_id,
        key,
    )


@pytest.fixture
def world(node: Node, tmp_path: Path) -> World:
    return build_world(node, tmp_path)


def spend(world: World, n: int = 4) -> int:
    """Carol's `n` chat calls to the model at PRICE; what they cost her."""
    economy = world.node.economy
    economy.prices.set(world.alice.address, world.model, PRICE)
    total = 0
    for i in range(n):
        charge = economy.meter.open(world.key, world.model, "chat.completions", 2000)
        total += int(economy.meter.close(charge, 100 + i, 900 + 7 * i).amount)
    return total
