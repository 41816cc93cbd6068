"""How the API tests read /openapi.json (issue 14): the routes a router adds, what each says it
answers on success, and whether that answer is described.

A described body is an object with named fields, a list of them, one of them or null, or a
file; `{}` and a bare object (`dict[str, Any]`) are not. A 204 has no body, by definition.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from fastapi import APIRouter, FastAPI
from fastapi.routing import APIRoute

API = "/api/v1"  # where cairn.api.app mounts every router but the OpenAI-compatible gateway's


def openapi_of(*mounts: tuple[APIRouter, str]) -> dict[str, Any]:
    """The /openapi.json of an app serving only these routers, each under its prefix."""
    app = FastAPI()
    for router, prefix in mounts:
        mounted = APIRouter(prefix=prefix)
        mounted.include_router(router)
        app.include_router(mounted)
    return app.openapi()


def routes_of(router: APIRouter, prefix: str = API) -> list[tuple[str, APIRoute]]:
    """Each route of `router` with its path as mounted under `prefix`."""
    return [(prefix + r.path, r) for r in router.routes if isinstance(r, APIRoute)]


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


def named_fields(document: dict[str, Any], schema: dict[str, Any]) -> set[str]:
    """The named fields of an answer's schema (of its items, for a list), an optional answer
    read as its first form that is not null."""
    schema = resolve(document, schema)
    if "anyOf" in schema:
        return named_fields(document, next(f for f in schema["anyOf"] if f.get("type") != "null"))
    if schema.get("type") == "array":
        return named_fields(document, schema.get("items") or {})
    return set(schema.get("properties", {}))


def answers(
    document: dict[str, Any], path: str, methods: Iterable[str]
) -> dict[tuple[str, str, str], dict[str, Any]]:
    """The schema of each body `path` says it answers on success to `methods` (a route's), by
    (method, status, media type). Asserts that each method documents a success, and that each
    success but 204 has a body (and 204 none)."""
    found: dict[tuple[str, str, str], dict[str, Any]] = {}
    for method in sorted(m.upper() for m in methods):
        operation = document["paths"][path][method.lower()]
        where = f"{method} {path}"
        successes = {s: r for s, r in operation["responses"].items() if s.startswith("2")}
        assert successes, f"{where} documents no success"
        for status, reply in successes.items():
            if status == "204":  # no content, by definition
                assert "content" not in reply, where
                continue
            assert reply.get("content"), f"{where} {status} has no content"
            for media, body in reply["content"].items():
                found[method, status, media] = body.get("schema") or {}
    return found


def assert_declares_what_it_answers(
    document: dict[str, Any], path: str, methods: Iterable[str]
) -> None:
    """Every body `path` answers on success to `methods` is described."""
    for (method, status, media), schema in answers(document, path, methods).items():
        assert described(document, schema), f"{method} {path} {status} {media}: {schema}"
