"""/openapi.json describes what every route of the dataset and upload routers answers."""

from __future__ import annotations

from typing import Any

import pytest

from cairn.api.app import create_app
from cairn.api.routers import datasets, uploads
from cairn.node import Node
from tests.api.openapi_check import assert_declares_what_it_answers, described, routes_of

ROUTERS = {"datasets": datasets.router, "uploads": uploads.router}


@pytest.fixture
def openapi(node: Node) -> dict[str, Any]:
    """The document a node serves at /openapi.json."""
    return create_app(node, background=False).openapi()


def test_an_untyped_body_is_not_described() -> None:
    assert not described({}, {})
    assert not described({}, {"type": "object", "additionalProperties": True})
    assert not described({}, {"type": "array", "items": {"type": "object"}})
    assert described({}, {"type": "array", "items": {"type": "object", "properties": {"a": {}}}})


@pytest.mark.parametrize("name", sorted(ROUTERS))
def test_every_route_declares_what_it_answers(openapi: dict[str, Any], name: str) -> None:
    routes = routes_of(ROUTERS[name])
    assert routes
    for path, route in routes:
        assert_declares_what_it_answers(openapi, path, route.methods)


def test_the_dataset_bodies_name_the_fields_clients_read(openapi: dict[str, Any]) -> None:
    schemas = openapi["components"]["schemas"]
    assert {"anchored", "batch", "bounties_paid"} <= set(
        schemas["AnchorOutcomePublic"]["properties"]
    )
    contribution = schemas["ContributionPublic"]["properties"]
    assert contribution["nonce"]["type"] == "string"  # 256-bit: JSON numbers cannot hold it
    assert {"rejected", "replayed", "verdicts"} <= set(contribution)
    assert "schema" in schemas["AttributionPublic"]["properties"]  # by its wire name
    assert {"verified_on_chain", "proof", "leaf"} <= set(schemas["ProofPublic"]["properties"])
