"""The node's web app: server-rendered pages on the domain services, one module per area.

Pages hold no business logic: each reads from or calls the same services the API uses. Every
page post is checked for forgery (`csrf`), and every response carries security headers
(`headers`).
"""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, Depends, FastAPI
from fastapi.staticfiles import StaticFiles

from cairn.web import (
    apps,
    bounties,
    builder,
    contribute,
    csrf,
    earnings,
    headers,
    licences,
    market,
    node_page,
    playground,
    review,
    session,
)

STATIC = Path(__file__).with_name("static")


def install(app: FastAPI) -> None:
    """Add the pages and their static files to `app`."""
    router = APIRouter(include_in_schema=False, dependencies=[Depends(csrf.refuse_forgery)])
    for module in (
        session,
        market,
        licences,
        bounties,
        contribute,
        review,
        builder,
        apps,
        playground,
        earnings,
        node_page,
    ):
        router.include_router(module.router)
    app.include_router(router)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    app.add_middleware(headers.SecurityHeaders)
