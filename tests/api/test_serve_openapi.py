"""/openapi.json describes what every route of the serving routers answers: the OpenAI-compatible
gateway under /v1 (streamed answers as `text/event-stream` with their chunks' schema), the apps
and the model downloads (issue 14)."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.routing import APIRoute

from cairn.api.routers import apps, gateway, models
from tests.api.openapi_check import API, assert_declares_what_it_answers, openapi_of, routes_of

# each router with the prefix cairn.api.app mounts it under
ROUTERS = {"gateway": (gateway.router, ""), "apps": (apps.router, API)}
ROUTERS["models"] = (models.router, API)
STREAMED = {"/v1/chat/completions", "/v1/completions"}


@pytest.fixture(scope="module")
def openapi() -> dict[str, Any]:
    return openapi_of(*ROUTERS.values())


def _routes() -> list[tuple[str, APIRoute]]:
    return [pair for router, prefix in ROUTERS.values() for pair in routes_of(router, prefix)]


@pytest.mark.parametrize(("path", "route"), _routes(), ids=[p for p, _ in _routes()])
def test_every_route_declares_what_it_answers(
    openapi: dict[str, Any], path: str, route: APIRoute
) -> None:
    assert_declares_what_it_answers(openapi, path, route.methods)


def test_every_route_of_the_routers_is_checked() -> None:
    counts: dict[str, int] = {}
    for path, _ in _routes():
        family = "gateway" if path.startswith("/v1") else path.split("/")[3]
        counts[family] = counts.get(family, 0) + 1
    assert counts == {"gateway": 6, "apps": 5, "models": 1}


@pytest.mark.parametrize("path", sorted(STREAMED))
def test_a_streamed_answer_is_documented_by_its_chunks(openapi: dict[str, Any], path: str) -> None:
    content = openapi["paths"][path]["post"]["responses"]["200"]["content"]
    assert set(content) == {"application/json", "text/event-stream"}
    chunk = content["text/event-stream"]["schema"]
    assert {"id", "object", "created", "model", "choices", "usage", "cairn"} <= set(
        chunk["properties"]
    )
    assert "$ref" not in str(chunk)  # written in place: nothing to resolve


def test_the_openai_bodies_name_the_fields_clients_read(openapi: dict[str, Any]) -> None:
    schemas = openapi["components"]["schemas"]
    assert {"id", "object", "created", "model", "choices", "usage", "cairn"} <= set(
        schemas["ChatCompletion"]["properties"]
    )
    assert {"receipt", "amount", "model_asset"} == set(schemas["CairnCharge"]["properties"])
    assert "price_per_1k" in schemas["ModelCard"]["properties"]
    assert {"price_per_call", "model", "retrieval"} <= set(schemas["AppCard"]["properties"])
    listed = schemas["ModelList"]["properties"]["data"]["items"]["anyOf"]
    assert {f["$ref"].rsplit("/", 1)[-1] for f in listed} == {"ModelCard", "AppCard"}
    # what the CLI's `cairn app list|show` reads of an app
    app = schemas["AppPublic"]["properties"]
    assert {"asset_id", "name", "owner", "model", "retrieval", "price_per_call", "split"} <= set(
        app
    )
    assert {"index", "passages", "version"} <= set(schemas["VersionIndex"]["properties"])
    assert {"app", "parents"} == set(schemas["AppChecked"]["properties"])
