"""Every route of the OpenAPI, fuzzed by schemathesis against a real node's app: whatever a
caller sends, the node answers 4xx with a JSON problem (OpenAI's error shape under /v1), never 5xx.

The app is the one uvicorn serves (`create_app`, its body limits and error handlers included),
called in process through schemathesis's ASGI transport (issue 14): no socket, no server thread.

Bounded so that it runs in the normal suite: a fixed seed, derandomized hypothesis, EXAMPLES
per route (plus schemathesis's boundary values), a 60 s deadline per request (hypothesis's own
per-example deadline is off: a chain call's time varies with the machine's load), about two
minutes on two cores. Every route is fuzzed, signed in as alice; only sign-out is left out.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import schemathesis
from fastapi import FastAPI
from hypothesis import HealthCheck, settings

from cairn.api.app import create_app
from cairn.chain.anvil import free_port
from cairn.node import Node, open_node
from tests.api.conftest import in_process, url_of
from tests.api.test_api import dev_account, sign_in
from tests.data.conftest import dev, make_dataset, pair, upload

pytestmark = pytest.mark.node  # its module fixture opens a node: the node tier

SEED = 13  # the issue that asked for this test
EXAMPLES = 50  # per route in the fuzzing phase; the coverage phase adds its boundary values


@dataclass(frozen=True)
class Fuzzed:
    """The node under fuzzing and the credentials each face takes."""

    node: Node
    app: FastAPI  # the node's app, as uvicorn would serve it
    session: str  # alice's SIWE session token, for /api/v1
    api_key: str  # alice's API key, for the OpenAI-compatible /v1


@pytest.fixture(scope="module")
def fuzzed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fuzzed]:
    """A dev node on the memory chain and its app, alice signed in with a funded API key."""
    folder: Path = tmp_path_factory.mktemp("fuzz")
    node = open_node(
        folder / "node", chain="memory", dev=True, port=free_port(), fleet_port=free_port()
    )
    app = create_app(node, background=False)
    alice = dev_account(node, "alice")
    with in_process(node, background=False) as api:
        session = sign_in(api, node, alice)["Authorization"].removeprefix("Bearer ")
    _, secret = node.economy.keys.create(alice.address, "fuzz")
    # something for small ids to find: alice's dataset (asset 1) with records, and an offer
    dataset = make_dataset(node, alice)
    upload(node, dev(node, "bob"), dataset.asset_id, [pair(i) for i in range(3)])
    node.licences.offer(alice, dataset.asset_id, price=10**18, terms="open")
    try:
        yield Fuzzed(node, app, session, secret)
    finally:
        node.close()


# The OpenAPI document depends on the routes alone, so an app without a node gives it at
# collection time, one test per route; each test calls the node's app of the fixture.
# (schemathesis's `from_fixture` would load it from the fixture, but fails on pytest 9.)
schema = schemathesis.openapi.from_dict(
    create_app(None, background=False).openapi(),  # type: ignore[arg-type]
    config=schemathesis.Config.from_dict(
        {"seed": SEED, "generation": {"max-examples": EXAMPLES, "mode": "all"}}
    ),
).exclude(
    # it would end the session this test signs every request with
    path="/api/v1/auth/signout",
)


@schema.parametrize()
@settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=True,
    suppress_health_check=list(HealthCheck),
)
def test_no_route_answers_5xx_and_every_error_is_a_problem(
    case: schemathesis.Case, fuzzed: Fuzzed
) -> None:
    openai = case.path.startswith("/v1/")
    token = fuzzed.api_key if openai else fuzzed.session
    headers = {"Authorization": f"Bearer {token}"}
    response = case.call(app=fuzzed.app, base_url=url_of(fuzzed.node), headers=headers, timeout=60)
    where = f"{case.method} {case.formatted_path} -> {response.status_code}: {response.text[:300]}"
    assert response.status_code < 500, where
    if response.status_code < 400:
        return
    body = response.json()
    if openai:
        error = body["error"]
        assert {"message", "type", "code"} <= set(error) and error["message"], where
    else:
        content_type = response.headers.get("content-type", [""])[0]
        assert content_type.startswith("application/problem+json"), where
        assert body["status"] == response.status_code and body["title"] and body["detail"], where
