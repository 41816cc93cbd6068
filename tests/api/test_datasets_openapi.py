"""/openapi.json describes what every route of the dataset and upload routers answers."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.routing import APIRoute

from cairn.api.app import create_app
from cairn.api.routers import datasets, uploads
from cairn.node import Node

ROUTERS = {"datasets": datasets.router, "uploads": uploads.router}


@pytest.fixture
def openapi(node: Node) -> dict[str, Any]:
    """The document a node serves at /openapi.json."""
    return create_app(node, background=False).openapi()


def resolve(document: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    """A schema with its `$ref` followed."""
    ref = schema.get("$ref")
    if ref is None:
        return schema
    found: dict[str, Any] = document
    for part in ref.removeprefix("#/").split("/"):
        found = found[part]
    return found


def described(document: dict[str, Any], schema: dict[str, Any]) -> bool:
    """Whether a body's schema says what it holds: an object with named fields, a list of
    them, one of them or null, or a file. `{}` and a bare object (`dict[str, Any]`) do not."""
    schema = resolve(document, schema)
    if "anyOf" in schema:
        forms = [f for f in schema["anyOf"] if f.get("type") != "null"]
        return bool(forms) and all(described(document, f) for f in forms)
    kind = schema.get("type")
    if kind == "array":
        return described(document, schema.get("items") or {})
    if kind == "object":
        return bool(schema.get("properties"))
    return kind == "string" and schema.get("format") == "binary"


def test_an_untyped_body_is_not_described() -> None:
    assert not described({}, {})
    assert not described({}, {"type": "object", "additionalProperties": True})
    assert not described({}, {"type": "array", "items": {"type": "object"}})
    assert described({}, {"type": "array", "items": {"type": "object", "properties": {"a": {}}}})


@pytest.mark.parametrize("name", sorted(ROUTERS))
def test_every_route_declares_what_it_answers(openapi: dict[str, Any], name: str) -> None:
    routes = [r for r in ROUTERS[name].routes if isinstance(r, APIRoute)]
    assert routes
    for route in routes:
        for method in route.methods:
            operation = openapi["paths"]["/api/v1" + route.path][method.lower()]
            where = f"{method} {route.path}"
            answers = {s: r for s, r in operation["responses"].items() if s.startswith("2")}
            assert answers, f"{where} documents no success"
            for status, reply in answers.items():
                if status == "204":  # no content, by definition
                    assert "content" not in reply, where
                    continue
                assert reply.get("content"), f"{where} {status} has no content"
                for media, body in reply["content"].items():
                    schema = body.get("schema") or {}
                    assert described(openapi, schema), f"{where} {status} {media}: {schema}"


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
