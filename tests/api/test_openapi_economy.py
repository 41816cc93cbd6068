"""The economy's and the assets' routes are typed end to end in /openapi.json: every answer has
a named schema with its fields, never a bare object or nothing (issue 14)."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.routing import APIRoute

from cairn.api.routers import accounts, assets, bounties, economy, licences
from tests.api.openapi_check import (
    API,
    answers,
    assert_declares_what_it_answers,
    named_fields,
    openapi_of,
    routes_of,
)

ROUTERS = {
    "accounts": accounts.router,
    "assets": assets.router,
    "bounties": bounties.router,
    "economy": economy.router,
    "licences": licences.router,
}


@pytest.fixture(scope="module")
def openapi() -> dict[str, Any]:
    return openapi_of(*((router, API) for router in ROUTERS.values()))


def _routes() -> list[tuple[str, str, APIRoute]]:
    return [
        (name, path, route) for name, router in ROUTERS.items() for path, route in routes_of(router)
    ]


@pytest.mark.parametrize(
    ("name", "path", "route"), _routes(), ids=[f"{n}:{r.name}" for n, _, r in _routes()]
)
def test_every_route_answers_a_schema_with_named_fields(
    openapi: dict[str, Any], name: str, path: str, route: APIRoute
) -> None:
    assert_declares_what_it_answers(openapi, path, route.methods)
    bodies = answers(openapi, path, route.methods)
    for method in route.methods:
        schema = bodies[method, str(route.status_code or 200), "application/json"]
        assert named_fields(openapi, schema), f"{name}: {method} {path} answers {schema}"


def test_every_route_of_the_routers_is_checked() -> None:
    counts = {name: 0 for name in ROUTERS}
    for name, _, _ in _routes():
        counts[name] += 1
    assert counts == {"accounts": 5, "assets": 4, "bounties": 6, "economy": 19, "licences": 9}
