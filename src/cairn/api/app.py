"""The node's HTTP face: the JSON API under /api/v1, OpenAPI at /docs, the web app at /."""

from __future__ import annotations

from fastapi import APIRouter, FastAPI

from cairn import __version__
from cairn.api import docs, problems
from cairn.api.background import lifespan_for
from cairn.api.body_limit import BodyLimit
from cairn.api.routers import (
    accounts,
    apps,
    assets,
    auth,
    blobs,
    bounties,
    chain,
    compute,
    datasets,
    economy,
    gateway,
    health,
    licences,
    models,
    uploads,
)
from cairn.api.services import NodeServices
from cairn.web import pages


def create_app(node: NodeServices, *, background: bool = True) -> FastAPI:
    """A FastAPI app serving `node`; `background` runs scheduled work (anchoring) alongside."""
    app = FastAPI(
        lifespan=lifespan_for(node.scheduler) if background else None,  # type: ignore[arg-type]
        title="Cairn node",
        version=__version__,
        docs_url=None,  # served by `docs`, from the node itself rather than a CDN
        redoc_url=None,
        description=(
            "Cairn lets a community build AI models together and share what they earn. "
            "Errors are JSON problem details; token amounts are decimal strings in the "
            "token's smallest unit."
        ),
    )
    app.state.services = node  # what `cairn.api.deps` hands out, one façade at a time
    app.add_middleware(BodyLimit, chunk_size=lambda: node.uploads.chunk_size)
    problems.install(app)
    api = APIRouter(prefix="/api/v1")
    for module in (
        health,
        chain,
        accounts,
        assets,
        auth,
        blobs,
        uploads,
        datasets,
        compute,
        economy,
        licences,
        models,
        apps,
        bounties,
    ):
        api.include_router(module.router)
    app.include_router(api)
    app.include_router(gateway.router)
    docs.install(app)
    pages.install(app)
    return app
