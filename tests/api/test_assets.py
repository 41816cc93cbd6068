"""One way to make a dataset: POST /datasets, never a bare asset of kind dataset."""

from __future__ import annotations

import httpx
import pytest

from cairn.api.client import NodeClient
from cairn.core.errors import InvalidInput
from cairn.data.datasets import HOW_TO_CREATE
from tests.api.test_api import assert_problem, dev_account, sign_in
from tests.conftest import LiveServer


@pytest.fixture
def http(live: LiveServer) -> httpx.Client:
    with httpx.Client(base_url=live.url, timeout=60) as client:
        yield client  # type: ignore[misc]


def test_a_dataset_is_not_registered_as_a_bare_asset(live: LiveServer, http: httpx.Client) -> None:
    node = live.node
    alice = dev_account(node, "alice")
    auth = sign_in(http, live, alice)
    before = node.chain.registry.total_assets()
    bare = {"kind": "dataset", "name": "d", "licence": "MIT"}
    assert_problem(
        http.post("/api/v1/assets", json=bare, headers=auth), 422, "POST /api/v1/datasets"
    )
    with NodeClient(live.url) as api, pytest.raises(InvalidInput, match="cairn dataset create"):
        api.register_asset(alice, kind="dataset", name="d", licence="MIT")
    assert node.chain.registry.total_assets() == before

    made = http.post(
        "/api/v1/datasets",
        json={"name": "d", "licence": "MIT", "spec": {"task": {"type": "instruction"}}},
        headers=auth,
    )
    assert made.status_code == 201, made.text
    assert http.get(f"/api/v1/datasets/{made.json()['asset_id']}").status_code == 200


def test_a_bare_dataset_from_a_wallet_says_how_to_make_one(
    live: LiveServer, http: httpx.Client
) -> None:
    # the contract takes any kind from anyone: the node explains what such an asset lacks
    node = live.node
    bare = node.assets.register(dev_account(node, "alice"), kind="dataset", name="d", licence="MIT")
    reply = http.get(f"/api/v1/datasets/{bare.asset_id}")
    assert_problem(reply, 404, f"so it takes no records: {HOW_TO_CREATE}")
