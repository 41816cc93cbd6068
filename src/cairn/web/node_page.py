"""/node: what this node is, its chain and contracts, its newest assets and its accounts."""

from __future__ import annotations

from html import escape

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from cairn.api.deps import NodeDep
from cairn.web.render import page

router = APIRouter()


@router.get("/node", response_class=HTMLResponse)
def node_info(request: Request, node: NodeDep) -> HTMLResponse:
    """The node's own facts."""
    return page(
        request,
        "node.html",
        title="This node",
        chain_kind=node.backend.kind,
        chain_id=node.client.chain_id,
        rpc_url=node.rpc_url,
        block=node.client.block_number(),
        contracts={name: c.address for name, c in node.chain.deployment.contracts.items()},
        assets=node.assets.list(limit=20),
        accounts=node.keystore.list(),
    )


@router.get("/demo-status", response_class=HTMLResponse)
def demo_status(request: Request, node: NodeDep) -> HTMLResponse:
    """What seeding the demo community is doing, as a fragment for the banner."""
    if node.demo_status:
        return HTMLResponse(escape(node.demo_status))
    return HTMLResponse(
        '<span data-done>The demo community is ready: <a href="/">reload</a>.</span>'
    )
