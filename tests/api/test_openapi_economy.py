"""The economy's and the assets' routes are typed end to end in /openapi.json: every answer has
a named schema with its fields, never a bare object or nothing (issue 14)."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi import APIRouter, FastAPI
from fastapi.routing import APIRoute

from cairn.api.routers import accounts, assets, bounties, economy, licences

ROUTERS = {
    "accounts": accounts.router,
    "assets": assets.router,
    "bounties": bounties.router,
    "economy": economy.router,
    "licences": licences.router,
}
PREFIX = "/api/v1"  # as cairn.api.app mounts them


@pytest.fixture(scope="module")
def openapi() -> dict[str, Any]:
    app = FastAPI()
    api = APIRouter(prefix=PREFIX)
    for router in ROUTERS.values():
        api.include_router(router)
    app.include_router(api)
    return app.openapi()


def _resolve(schema: dict[str, Any], document: dict[str, Any]) -> dict[str, Any]:
    """A schema with its `$ref` followed, and an optional value (`anyOf` with null) unwrapped."""
    while True:
        if "$ref" in schema:
            schema = document["components"]["schemas"][schema["$ref"].rsplit("/", 1)[-1]]
        elif "anyOf" in schema:
            schema = next(s for s in schema["anyOf"] if s.get("type") != "null")
        else:
            return schema


def _fields(schema: dict[str, Any], document: dict[str, Any]) -> set[str]:
    """The named fields of an answer's schema (of its items, for a list)."""
    schema = _resolve(schema, document)
    if schema.get("type") == "array":
        schema = _resolve(schema.get("items", {}), document)
    return set(schema.get("properties", {}))


def _routes() -> list[tuple[str, APIRoute]]:
    return [
        (name, route)
        for name, router in ROUTERS.items()
        for route in router.routes
        if isinstance(route, APIRoute)
    ]


@pytest.mark.parametrize(("name", "route"), _routes(), ids=[f"{n}:{r.name}" for n, r in _routes()])
def test_every_route_answers_a_schema_with_named_fields(
    openapi: dict[str, Any], name: str, route: APIRoute
) -> None:
    for method in route.methods:
        operation = openapi["paths"][PREFIX + route.path][method.lower()]
        answer = operation["responses"][str(route.status_code or 200)]
        schema = answer["content"]["application/json"]["schema"]
        assert _fields(schema, openapi), f"{name}: {method} {route.path} answers {schema}"


def test_every_route_of_the_routers_is_checked() -> None:
    counts = {name: 0 for name in ROUTERS}
    for name, _ in _routes():
        counts[name] += 1
    assert counts == {"accounts": 5, "assets": 4, "bounties": 6, "economy": 17, "licences": 9}
