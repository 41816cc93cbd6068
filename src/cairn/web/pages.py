"""The web app put together: every page module's routes, the static files, the security headers."""

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
    deposits,
    earnings,
    headers,
    jobs_pages,
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
        jobs_pages,
        apps,
        playground,
        deposits,
        earnings,
        node_page,
    ):
        router.include_router(module.router)
    app.include_router(router)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    app.add_middleware(headers.SecurityHeaders)
