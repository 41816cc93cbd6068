"""One way to make a dataset: POST /datasets, never a bare asset of kind dataset."""

from __future__ import annotations

import pytest
from starlette.testclient import TestClient

from cairn.core.errors import InvalidInput
from cairn.data.datasets import HOW_TO_CREATE
from cairn.node import Node
from tests.api.conftest import node_client
from tests.api.test_api import assert_problem, dev_account, sign_in


def test_a_dataset_is_not_registered_as_a_bare_asset(api: TestClient, node: Node) -> None:
    alice = dev_account(node, "alice")
    auth = sign_in(api, node, alice)
    before = node.chain.registry.total_assets()
    bare = {"kind": "dataset", "name": "d", "licence": "MIT"}
    assert_problem(
        api.post("/api/v1/assets", json=bare, headers=auth), 422, "POST /api/v1/datasets"
    )
    with node_client(api) as client, pytest.raises(InvalidInput, match="cairn dataset create"):
        client.register_asset(alice, kind="dataset", name="d", licence="MIT")
    assert node.chain.registry.total_assets() == before

    made = api.post(
        "/api/v1/datasets",
        json={"name": "d", "licence": "MIT", "spec": {"task": {"type": "instruction"}}},
        headers=auth,
    )
    assert made.status_code == 201, made.text
    assert api.get(f"/api/v1/datasets/{made.json()['asset_id']}").status_code == 200


def test_a_bare_dataset_from_a_wallet_says_how_to_make_one(api: TestClient, node: Node) -> None:
    # the contract takes any kind from anyone: the node explains what such an asset lacks
    bare = node.assets.register(dev_account(node, "alice"), kind="dataset", name="d", licence="MIT")
    reply = api.get(f"/api/v1/datasets/{bare.asset_id}")
    assert_problem(reply, 404, f"so it takes no records: {HOW_TO_CREATE}")
