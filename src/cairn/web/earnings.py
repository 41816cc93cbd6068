"""/earnings: the signed-in account's home: what each epoch paid it and why, claiming, its work
as a compute provider, its API keys, and its prepaid balance with the receipts of its calls.

Each figure comes from the service the API reads it from: `Epochs.earnings` and `Epochs.claim`
(GET /api/v1/earnings, POST /api/v1/claims), `Escrow.provider`, `JobService.work_of`,
`ApiKeys`, `Balances` and `ReceiptBook`.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse

from cairn.api.deps import NodeDep, get_node
from cairn.core.amounts import TOKEN_DECIMALS
from cairn.core.errors import Forbidden
from cairn.core.evm import checksum
from cairn.node import Node
from cairn.web.playground import deposit_context
from cairn.web.render import page, redirect, units
from cairn.web.viewer import Viewer, ViewerDep

router = APIRouter()

RECEIPTS_SHOWN = 25  # newest usage receipts on the page


def _is_operator(node: Node, viewer: Viewer) -> bool:
    return checksum(viewer.address) == node.operator.address


def _render(request: Request, viewer: Viewer, *, status: int = 200, **context: Any) -> HTMLResponse:
    node = get_node(request)
    address = viewer.address
    epochs = node.economy.epochs.earnings(address)
    # the same totals GET /api/v1/earnings/{account} reports
    unclaimed = sum(
        int(e["amount"]) for e in epochs if not e["claimed"] and e["status"] == "funded"
    )
    claimed = sum(int(e["amount"]) for e in epochs if e["claimed"])
    compute = sum(
        int(line["amount"]) for e in epochs for line in e["lines"] if line["role"] == "compute"
    )
    provider = node.chain.escrow.provider(address)
    work = node.jobs.work_of(address)
    return page(
        request,
        "earnings.html",
        status=status,
        title="Earnings",
        epochs=list(reversed(epochs)),  # newest first
        unclaimed=unclaimed,
        claimed=claimed,
        compute_revenue=compute,
        provider=provider,
        work=work,
        job_payouts=sum(int(j["paid"]) for j in work),
        keys=node.economy.keys.list(address),
        balance=node.economy.balances.get(address),
        receipts=node.economy.receipts.of_account(address, limit=RECEIPTS_SHOWN),
        deposit=deposit_context(node, viewer, "/earnings#prepaid"),
        operator=_is_operator(node, viewer),
        **context,
    )


@router.get("/earnings", response_class=HTMLResponse)
def earnings(request: Request, viewer: ViewerDep) -> HTMLResponse:
    """What the signed-in account earned, holds and used."""
    return _render(request, viewer)


@router.post("/earnings/claim")
def claim(node: NodeDep, viewer: ViewerDep) -> RedirectResponse:
    """Claim every funded payout of the signed-in account (the gateway sends the claims; the
    tokens always go to the account)."""
    paid = node.economy.epochs.claim(viewer.address)
    if not paid:
        return redirect("/earnings", "Nothing to claim: every funded epoch is already paid.")
    total = sum(int(p["amount"]) for p in paid)
    numbers = ", ".join(str(p["epoch"]) for p in paid)
    return redirect(
        "/earnings",
        f"Claimed {units(total, TOKEN_DECIMALS)} CAIRN from epoch{'s' if len(paid) > 1 else ''} {numbers}; "
        "it is in your wallet.",
    )


@router.post("/earnings/keys", response_class=HTMLResponse)
def create_key(
    request: Request,
    node: NodeDep,
    viewer: ViewerDep,
    name: Annotated[str, Form(max_length=100)] = "",
) -> HTMLResponse:
    """Create an API key; its secret is shown on this answer only."""
    key, secret = node.economy.keys.create(viewer.address, name)
    return _render(request, viewer, status=201, new_key=key, secret=secret)


@router.post("/earnings/keys/{key_id}/revoke")
def revoke_key(node: NodeDep, viewer: ViewerDep, key_id: str) -> RedirectResponse:
    """Revoke one of the signed-in account's keys: it stops working at once."""
    key = node.economy.keys.revoke(viewer.address, key_id)
    label = f" ({key.name})" if key.name else ""
    return redirect("/earnings#keys", f"Revoked API key {key.key_id}{label}.")


@router.post("/earnings/settle")
def settle(node: NodeDep, viewer: ViewerDep) -> RedirectResponse:
    """Close an epoch now (the node's operator only), as POST /api/v1/epochs/settle does."""
    if not _is_operator(node, viewer):
        raise Forbidden(
            f"only the node's operator ({node.operator.address}) settles epochs by hand"
        )
    result = node.economy.settle()
    if result is None:
        return redirect("/earnings", "Nothing to settle: no new usage since the last epoch.")
    return redirect(
        "/earnings",
        f"Settled epoch {result.get('epoch')}: revenue {units(result.get('revenue'), TOKEN_DECIMALS)} CAIRN.",
    )
