"""Paid tasks on the web: the dataset's owner opens a bounty (escrowing its budget) and closes
it (the rest back to the funder). What each bounty pays shows on the dataset's page and its
contribute page (`bounties.html`)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form
from fastapi.responses import RedirectResponse

from cairn.api.deps import AccountsDep, EconomyDep
from cairn.core.amounts import TOKEN_DECIMALS, parse_units
from cairn.core.errors import CairnError
from cairn.core.ids import StoredId
from cairn.web.render import redirect, units
from cairn.web.viewer import ViewerDep

router = APIRouter()


@router.post("/datasets/{dataset_id}/bounties")
def open_bounty(
    economy: EconomyDep,
    accounts: AccountsDep,
    dataset_id: StoredId,
    viewer: ViewerDep,
    budget: Annotated[str, Form()],
    per_record: Annotated[str, Form()] = "0",
    per_review: Annotated[str, Form()] = "0",
) -> RedirectResponse:
    """Escrow a budget that pays per accepted record and per useful review."""
    back = f"/assets/{dataset_id}"
    try:
        bounty = economy.bounties.open(
            accounts.signer(viewer.address),
            dataset_id,
            budget=parse_units(budget, what="budget", zero=True),
            per_record=parse_units(per_record, what="per record", zero=True),
            per_review=parse_units(per_review, what="per review", zero=True),
        )
    except CairnError as exc:
        return redirect(back, f"No paid task was opened: {exc.message}")
    return redirect(back, f"Opened paid task {bounty.bounty_id}: its budget is escrowed")


@router.post("/bounties/{bounty_id}/close")
def close_bounty(
    economy: EconomyDep, accounts: AccountsDep, bounty_id: StoredId, viewer: ViewerDep
) -> RedirectResponse:
    """Close a bounty; what is left goes back to its funder."""
    back = f"/assets/{economy.bounties.get(bounty_id).dataset_id}"
    try:
        closed = economy.bounties.close(accounts.signer(viewer.address), bounty_id)
    except CairnError as exc:
        return redirect(back, f"Paid task {bounty_id} was not closed: {exc.message}")
    refunded = units(closed.refunded, TOKEN_DECIMALS)
    return redirect(back, f"Closed paid task {bounty_id}; {refunded} CAIRN went back to its funder")
