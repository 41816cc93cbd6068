"""Paid tasks on the web: the dataset's owner opens a bounty (escrowing its budget) and closes
it (the rest back to the funder). What each bounty pays shows on the dataset's page and its
contribute page (`bounties.html`)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import RedirectResponse

from cairn.core.errors import CairnError
from cairn.core.ids import StoredId
from cairn.node import Node
from cairn.web.licences import token_amount
from cairn.web.render import TOKEN_DECIMALS, redirect, units
from cairn.web.session import ViewerDep

router = APIRouter()


@router.post("/datasets/{dataset_id}/bounties")
def open_bounty(
    request: Request,
    dataset_id: StoredId,
    viewer: ViewerDep,
    budget: Annotated[str, Form()],
    per_record: Annotated[str, Form()] = "0",
    per_review: Annotated[str, Form()] = "0",
) -> RedirectResponse:
    """Escrow a budget that pays per accepted record and per useful review."""
    node: Node = request.app.state.node
    back = f"/assets/{dataset_id}"
    try:
        bounty = node.economy.bounties.open(
            node.signers.get(viewer.address),
            dataset_id,
            budget=token_amount(budget, "budget"),
            per_record=token_amount(per_record, "per record"),
            per_review=token_amount(per_review, "per review"),
        )
    except CairnError as exc:
        return redirect(back, f"No paid task was opened: {exc.message}")
    return redirect(back, f"Opened paid task {bounty['bounty_id']}: its budget is escrowed")


@router.post("/bounties/{bounty_id}/close")
def close_bounty(request: Request, bounty_id: StoredId, viewer: ViewerDep) -> RedirectResponse:
    """Close a bounty; what is left goes back to its funder."""
    node: Node = request.app.state.node
    back = f"/assets/{node.economy.bounties.get(bounty_id)['dataset_id']}"
    try:
        closed = node.economy.bounties.close(node.signers.get(viewer.address), bounty_id)
    except CairnError as exc:
        return redirect(back, f"Paid task {bounty_id} was not closed: {exc.message}")
    refunded = units(closed["refunded"], TOKEN_DECIMALS)
    return redirect(back, f"Closed paid task {bounty_id}; {refunded} CAIRN went back to its funder")
