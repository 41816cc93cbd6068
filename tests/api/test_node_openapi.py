"""/openapi.json describes what the node's own routes answer (issue 14): its health, its chain,
the fees and gas a wallet needs, the relay, sessions and blobs; and no route of the node's API,
whichever router it comes from, answers an undescribed body.

Two answers have no JSON schema, legitimately: GET /blobs/{cid} streams a file (its bytes,
`application/octet-stream`, documented as binary) and POST /auth/signout answers 204, no body.
"""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.routing import APIRoute

from cairn.api.app import create_app
from cairn.api.routers import auth, blobs, chain, health
from cairn.node import Node
from tests.api.openapi_check import (
    API,
    assert_declares_what_it_answers,
    named_fields,
    openapi_of,
    resolve,
    routes_of,
)

ROUTERS = {
    "auth": auth.router,
    "blobs": blobs.router,
    "chain": chain.router,
    "health": health.router,
}


@pytest.fixture(scope="module")
def openapi() -> dict[str, Any]:
    return openapi_of(*((router, API) for router in ROUTERS.values()))


def _routes() -> list[tuple[str, APIRoute]]:
    return [pair for router in ROUTERS.values() for pair in routes_of(router)]


@pytest.mark.parametrize(("path", "route"), _routes(), ids=[f"{p}:{r.name}" for p, r in _routes()])
def test_every_route_declares_what_it_answers(
    openapi: dict[str, Any], path: str, route: APIRoute
) -> None:
    assert_declares_what_it_answers(openapi, path, route.methods)


def test_every_route_of_the_routers_is_checked() -> None:
    counts = {name: len(routes_of(router)) for name, router in ROUTERS.items()}
    assert counts == {"auth": 4, "blobs": 2, "chain": 4, "health": 1}


def test_a_blob_is_a_file_and_signing_out_answers_no_body(openapi: dict[str, Any]) -> None:
    content = openapi["paths"][API + "/blobs/{cid}"]["get"]["responses"]["200"]["content"]
    assert content == {
        "application/octet-stream": {"schema": {"type": "string", "format": "binary"}}
    }
    assert "content" not in openapi["paths"][API + "/auth/signout"]["post"]["responses"]["204"]


def _answer(openapi: dict[str, Any], method: str, path: str, status: str = "200") -> set[str]:
    reply = openapi["paths"][API + path][method]["responses"][status]
    return named_fields(openapi, reply["content"]["application/json"]["schema"])


def test_the_bodies_name_the_fields_clients_read(openapi: dict[str, Any]) -> None:
    assert _answer(openapi, "get", "/health") == {
        "status", "version", "chain", "chain_id", "block_number",
    }  # fmt: skip
    # what the CLI, NodeClient and the provider's NodeApi read of the chain
    assert {"chain_id", "backend", "rpc_url", "token", "contracts"} <= _answer(
        openapi, "get", "/chain"
    )
    schemas = openapi["components"]["schemas"]
    contracts = schemas["ChainInfo"]["properties"]["contracts"]["additionalProperties"]
    assert {"address", "abi"} == set(resolve(openapi, contracts)["properties"])
    assert {"address", "symbol", "decimals"} == set(schemas["TokenContract"]["properties"])
    # a wallet spreads the fees into its transaction: web3's names, as they are
    assert _answer(openapi, "get", "/chain/fees") == {"maxFeePerGas", "maxPriorityFeePerGas"}
    assert _answer(openapi, "post", "/chain/estimate") == {"gas"}
    relayed = _answer(openapi, "post", "/chain/transactions")
    assert relayed == {"tx_hash", "block_number", "gas_used", "status", "events"}
    assert {"contract", "event", "args"} == set(schemas["ChainEvent"]["properties"])
    assert _answer(openapi, "get", "/auth/me") == {"address", "key_on_node"}
    assert _answer(openapi, "post", "/blobs", "201") == {"cid", "size"}


def test_no_route_of_the_node_answers_an_undescribed_body(node: Node) -> None:
    document = create_app(node, background=False).openapi()
    served = {
        path: operations
        for path, operations in document["paths"].items()
        if path.startswith((API + "/", "/v1/"))  # the API's, not the web pages'
    }
    assert sum(len(operations) for operations in served.values()) > 60  # every router's
    for path, operations in served.items():
        assert_declares_what_it_answers(document, path, operations)
