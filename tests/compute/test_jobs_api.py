"""Job creation refuses what cannot run, with errors naming the problem; nothing is started."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from starlette.testclient import TestClient

from cairn.api.client import NodeClient
from cairn.compute.inputs import held_out_split
from cairn.core.errors import InvalidInput, NotFound
from cairn.node import Node
from tests.api.conftest import in_process, node_client
from tests.compute.conftest import anchored_dataset, register_tiny
from tests.conftest import LiveServer
from tests.data.conftest import dev, make_dataset


def recipe(base: object, dataset: int, method: str = "sft", extra: str = "") -> str:
    return (
        f"name: t\nmethod: {method}\nbase_model: {base}\ndatasets:\n  - dataset: {dataset}\n{extra}"
    )


@pytest.fixture
def app(node: Node) -> Iterator[TestClient]:
    """The dev node's app, in process (`tests.api.conftest.in_process`)."""
    with in_process(node) as client:
        yield client


@pytest.fixture
def api(app: TestClient, node: Node) -> Iterator[NodeClient]:
    """Alice's `NodeClient`, signed in, on the node's app in process."""
    with node_client(app) as client:
        client.sign_in(dev(node, "alice"))
        yield client


def jobs_on_disk(node: Node) -> list[Path]:
    folder = node.data_dir / "jobs"
    return list(folder.iterdir()) if folder.exists() else []


def test_invalid_recipes_are_refused_with_the_field(api: NodeClient, node: Node) -> None:
    cases = {
        "name: t\nmethod: sft\nbase_model: 1\ndatasets: []\n": "datasets",
        "name: t\nmethod: magic\nbase_model: 1\ndatasets:\n  - dataset: 1\n": "method",
        recipe(1, 1, extra="distributed:\n  workers: 2\n  min_workers: 3\n"): "min_workers",
        recipe(1, 1, extra="hyperparameters:\n  learning_rate: -1\n"): "learning_rate",
        "name: [unclosed\n": "line",
    }
    for text, field in cases.items():
        with pytest.raises(InvalidInput, match=field):
            api.request("POST", "/jobs", json={"recipe": text})
    assert node.jobs.list_jobs() == [] and jobs_on_disk(node) == []


def test_method_and_base_model_family_must_agree(
    api: NodeClient, node: Node, tmp_path: Path
) -> None:
    alice, bob = dev(node, "alice"), dev(node, "bob")
    encoder = register_tiny(node, alice, tmp_path, "encoder")
    dataset = anchored_dataset(node, alice, bob, "instruction", n=10)
    with pytest.raises(InvalidInput, match="trains a causal-lm model, but asset"):
        api.request("POST", "/jobs", json={"recipe": recipe(encoder.asset_id, dataset)})
    with pytest.raises(InvalidInput, match="is a dataset, not a model"):
        api.request("POST", "/jobs", json={"recipe": recipe(dataset, dataset)})
    assert node.jobs.list_jobs() == []


def test_dataset_task_must_fit_the_method(api: NodeClient, node: Node, tmp_path: Path) -> None:
    alice, bob = dev(node, "alice"), dev(node, "bob")
    lm = register_tiny(node, alice, tmp_path, "causal-lm")
    encoder = register_tiny(node, alice, tmp_path, "encoder")
    instruction = anchored_dataset(node, alice, bob, "instruction", n=10)
    with pytest.raises(InvalidInput, match="classify needs classification records"):
        api.request(
            "POST", "/jobs", json={"recipe": recipe(encoder.asset_id, instruction, "classify")}
        )
    unanchored = make_dataset(node, alice).asset_id
    with pytest.raises(NotFound, match="no anchored version"):
        api.request("POST", "/jobs", json={"recipe": recipe(lm.asset_id, unanchored)})
    pinned = recipe(lm.asset_id, instruction).replace(
        f"dataset: {instruction}",
        f"dataset: {instruction}\n    version: bafkreiaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
    )
    with pytest.raises((NotFound, InvalidInput)):
        api.request("POST", "/jobs", json={"recipe": pinned})
    assert node.jobs.list_jobs() == [] and jobs_on_disk(node) == []


def test_unknown_base_model_name_lists_the_known(api: NodeClient, node: Node) -> None:
    with pytest.raises(NotFound, match="SmolLM2-135M-Instruct"):
        api.request("POST", "/jobs", json={"recipe": recipe("gpt-9", 1)})


def test_jobs_need_sign_in_and_unknown_jobs_are_not_found(live: LiveServer) -> None:
    # the compute and jobs family's real-server test: NodeClient over uvicorn on 127.0.0.1
    anonymous = NodeClient(live.url)
    with pytest.raises(Exception, match="sign in"):
        anonymous.request("POST", "/jobs", json={"recipe": recipe(1, 1)})
    with pytest.raises(NotFound):
        anonymous.request("GET", "/jobs/0x" + "00" * 32)
    with pytest.raises(InvalidInput, match="64 hex"):
        anonymous.request("GET", "/jobs/42")
    assert anonymous.request("GET", "/jobs") == []


def test_compute_info_and_an_unregistered_provider(app: TestClient, node: Node) -> None:
    with node_client(app) as anonymous:
        info = anonymous.request("GET", "/compute")
        record = anonymous.request("GET", f"/providers/{dev(node, 'bob').address}")
    assert info["fleet_port"] == node.config.fleet_port
    assert info["escrow"] == node.chain.escrow.address
    assert record["registered"] is False and record["stake"] == "0"


@given(st.integers(2, 500), st.floats(0.01, 0.5), st.integers(0, 2**31))
def test_held_out_split_is_disjoint_complete_and_seeded(n: int, share: float, seed: int) -> None:
    records = [{"i": i} for i in range(n)]
    train, held = held_out_split(records, share, seed)
    assert len(train) >= 1 and len(held) >= 1
    assert sorted(r["i"] for r in train + held) == list(range(n))
    assert held_out_split(records, share, seed) == (train, held)
