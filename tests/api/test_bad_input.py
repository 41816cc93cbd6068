"""Input past what the node can hold is a 4xx problem that says why, never a 500: ids above
2^63-1 (SQLite's INTEGER) or below 0, offsets likewise, token amounts above 2^256-1 (a uint256)."""

from __future__ import annotations

import httpx
from starlette.testclient import TestClient

from cairn.core.amounts import MAX_AMOUNT
from cairn.core.ids import MAX_ID
from cairn.node import Node
from tests.api.test_api import assert_problem, dev_account, sign_in
from tests.conftest import LiveServer

PAST = MAX_ID + 1  # 2^63


def test_ids_and_offsets_past_what_the_node_stores_are_422(api: TestClient, node: Node) -> None:
    auth = sign_in(api, node, dev_account(node, "alice"))
    gets = [
        f"/api/v1/assets/{PAST}",
        f"/api/v1/assets/{PAST}/licences",
        f"/api/v1/datasets/{PAST}",
        f"/api/v1/datasets/{PAST}/versions",
        f"/api/v1/datasets/{PAST}/reputation",
        f"/api/v1/datasets/{PAST}/records",
        f"/api/v1/datasets/{PAST}/bounties",
        f"/api/v1/datasets/{PAST}/reviews/next",
        f"/api/v1/epochs/{PAST}",
        f"/api/v1/apps/{PAST}",
        f"/api/v1/models/{PAST}/price",
        f"/api/v1/licences/{PAST}",
        f"/api/v1/bounties/{PAST}",
    ]
    for path in gets:
        reply = api.get(path, headers=auth)
        assert_problem(reply, 422, "Input should be less than or equal to 9223372036854775807")
    for query in (f"/api/v1/assets?offset={PAST}", f"/api/v1/datasets/1/records?offset={PAST}"):
        assert_problem(api.get(query, headers=auth), 422, "offset: Input should be less than")
    answer = api.post(f"/api/v1/reviews/{PAST}", json={"answer": "approve"}, headers=auth)
    assert_problem(answer, 422, "task_id: Input should be less than or equal to")
    # the case: a negative dataset id reached the chain's uint256 encoder
    anchored = api.post("/api/v1/datasets/-1091/anchor", headers=auth)
    assert_problem(anchored, 422, "dataset_id: Input should be greater than or equal to 0")
    parents = api.post(
        "/api/v1/assets",
        json={"kind": "dataset", "name": "x", "licence": "MIT", "parents": [PAST]},
        headers=auth,
    )
    assert_problem(parents, 422, "parents.0: Input should be less than or equal to")
    # a stored id at the bound is simply not there
    assert_problem(api.get(f"/api/v1/assets/{MAX_ID}"), 404, f"no asset with id {MAX_ID}")


def test_amounts_past_a_uint256_are_422_that_name_the_bound(
    http: httpx.Client, live: LiveServer
) -> None:
    # the economy family's real-server test (with licences, bounties and model prices):
    # uvicorn on 127.0.0.1
    alice = dev_account(live.node, "alice")
    auth = sign_in(http, live.node, alice)
    past = str(MAX_AMOUNT + 1)  # 78 digits, so it passes the digits pattern
    bound = "must be at most 2^256-1"
    posts = [
        ("/api/v1/tokens/transfer", {"to": alice.address, "amount": past}),
        ("/api/v1/prepaid/deposits", {"amount": past}),
        ("/api/v1/assets/1/licences", {"price": past, "terms": "open"}),
        ("/api/v1/bounties/1/top-up", {"amount": past}),
        ("/api/v1/datasets/1/bounties", {"budget": past}),
    ]
    for path, body in posts:
        assert_problem(http.post(path, json=body, headers=auth), 422, bound)
    priced = http.put("/api/v1/models/1/price", json={"price_per_1k": past}, headers=auth)
    assert_problem(priced, 422, bound)
    for field in ("max_copies", "duration"):
        offer = {"price": "0", "terms": "open", field: MAX_AMOUNT + 1}
        reply = http.post("/api/v1/assets/1/licences", json=offer, headers=auth)
        assert_problem(reply, 422, f"{field}: Input should be less than or equal to")
    # at the bound an amount is parsed, and the chain says what it thinks of it
    at_bound = {"to": alice.address, "amount": str(MAX_AMOUNT)}
    refused = http.post("/api/v1/tokens/transfer", json=at_bound, headers=auth)
    assert refused.status_code == 409, refused.text


def test_a_body_that_is_not_json_says_so(api: TestClient, node: Node) -> None:
    auth = sign_in(api, node, dev_account(node, "alice"))
    for body, why in (
        (b"{nope", "Expecting property name enclosed in double quotes"),
        (b"amount=5", "Expecting value"),
    ):
        reply = api.post(
            "/api/v1/tokens/transfer",
            content=body,
            headers={**auth, "Content-Type": "application/json"},
        )
        assert_problem(reply, 422, f"the body is not valid JSON: {why} (at character ")
