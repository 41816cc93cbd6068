"""The landing page: what this node is, its chain and contracts, and its newest assets."""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates

from cairn import __version__
from cairn.node import Node

router = APIRouter(include_in_schema=False)
templates = Jinja2Templates(directory=str(Path(__file__).with_name("templates")))


@router.get("/", response_class=HTMLResponse)
def landing(request: Request) -> HTMLResponse:
    """The node's front page."""
    node: Node = request.app.state.node
    context = {
        "version": __version__,
        "chain_kind": node.backend.kind,
        "chain_id": node.client.chain_id,
        "rpc_url": node.rpc_url,
        "block": node.client.block_number(),
        "contracts": {name: c.address for name, c in node.chain.deployment.contracts.items()},
        "assets": node.assets.list(limit=20),
        "accounts": node.keystore.list(),
        "dev": node.config.dev,
    }
    return templates.TemplateResponse(request, "index.html", context)
