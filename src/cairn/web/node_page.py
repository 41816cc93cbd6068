"""/node: what this node is, its chain and contracts, its newest assets and its accounts."""

from __future__ import annotations

from html import escape

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from cairn.api.deps import AccountsDep, AssetsDep, DemoStatusDep, NetworkDep
from cairn.web.render import page

router = APIRouter()


@router.get("/node", response_class=HTMLResponse)
def node_info(
    request: Request, network: NetworkDep, assets: AssetsDep, accounts: AccountsDep
) -> HTMLResponse:
    """The node's own facts."""
    chain = network.facts()
    return page(
        request,
        "node.html",
        title="This node",
        chain_kind=chain.backend,
        chain_id=chain.chain_id,
        rpc_url=chain.rpc_url,
        block=chain.block_number,
        contracts={name: c.address for name, c in chain.contracts.items()},
        assets=assets.list(limit=20),
        accounts=accounts.held(),
    )


@router.get("/demo-status", response_class=HTMLResponse)
def demo_status(status: DemoStatusDep) -> HTMLResponse:
    """What seeding the demo community is doing, as a fragment for the banner."""
    if status:
        return HTMLResponse(escape(status))
    return HTMLResponse(
        '<span data-done>The demo community is ready: <a href="/">reload</a>.</span>'
    )
