"""/earnings: the signed-in account's home: what each epoch paid it and why, claiming, its work
as a compute provider, its API keys, and its prepaid balance with the receipts of its calls.

Each figure comes from the service the API reads it from: `Epochs.earnings` and `Epochs.claim`
(GET /api/v1/earnings, POST /api/v1/claims), `Escrow.provider`, `JobService.work`,
`ApiKeys`, `Balances` and `ReceiptBook`.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse

from cairn.api.deps import EconomyDep, JobsDep
from cairn.compute.jobs import JobService
from cairn.core.amounts import TOKEN_DECIMALS
from cairn.economy.service import Economy
from cairn.web.deposits import deposit_form
from cairn.web.render import page, redirect, units
from cairn.web.viewer import Viewer, ViewerDep

router = APIRouter()

RECEIPTS_SHOWN = 25  # newest usage receipts on the page


def _render(
    request: Request,
    economy: Economy,
    jobs: JobService,
    viewer: Viewer,
    *,
    status: int = 200,
    **context: Any,
) -> HTMLResponse:
    address = viewer.address
    earnings = economy.epochs.earnings(address)  # what GET /api/v1/earnings/{account} reports
    work = jobs.work(address)
    return page(
        request,
        "earnings.html",
        status=status,
        title="Earnings",
        epochs=list(reversed(earnings.epochs)),  # newest first
        unclaimed=int(earnings.unclaimed),
        claimed=earnings.claimed,
        compute_revenue=earnings.earned_as("compute"),
        provider=economy.stake_of(address),
        work=work,
        job_payouts=sum(int(j.paid) for j in work),
        keys=economy.keys.list(address),
        balance=economy.balances.get(address),
        receipts=economy.receipts.of_account(address, limit=RECEIPTS_SHOWN),
        deposit=deposit_form(economy, viewer, "/earnings#prepaid"),
        operator=economy.is_operator(address),
        **context,
    )


@router.get("/earnings", response_class=HTMLResponse)
def earnings(
    request: Request, economy: EconomyDep, jobs: JobsDep, viewer: ViewerDep
) -> HTMLResponse:
    """What the signed-in account earned, holds and used."""
    return _render(request, economy, jobs, viewer)


@router.post("/earnings/claim")
def claim(economy: EconomyDep, viewer: ViewerDep) -> RedirectResponse:
    """Claim every funded payout of the signed-in account (the gateway sends the claims; the
    tokens always go to the account)."""
    paid = economy.epochs.claim(viewer.address).claims
    if not paid:
        return redirect("/earnings", "Nothing to claim: every funded epoch is already paid.")
    total = sum(int(p.amount) for p in paid)
    numbers = ", ".join(str(p.epoch) for p in paid)
    return redirect(
        "/earnings",
        f"Claimed {units(total, TOKEN_DECIMALS)} CAIRN from epoch{'s' if len(paid) > 1 else ''} {numbers}; "
        "it is in your wallet.",
    )


@router.post("/earnings/keys", response_class=HTMLResponse)
def create_key(
    request: Request,
    economy: EconomyDep,
    jobs: JobsDep,
    viewer: ViewerDep,
    name: Annotated[str, Form(max_length=100)] = "",
) -> HTMLResponse:
    """Create an API key; its secret is shown on this answer only."""
    key, secret = economy.keys.create(viewer.address, name)
    return _render(request, economy, jobs, viewer, status=201, new_key=key, secret=secret)


@router.post("/earnings/keys/{key_id}/revoke")
def revoke_key(economy: EconomyDep, viewer: ViewerDep, key_id: str) -> RedirectResponse:
    """Revoke one of the signed-in account's keys: it stops working at once."""
    key = economy.keys.revoke(viewer.address, key_id)
    label = f" ({key.name})" if key.name else ""
    return redirect("/earnings#keys", f"Revoked API key {key.key_id}{label}.")


@router.post("/earnings/settle")
def settle(economy: EconomyDep, viewer: ViewerDep) -> RedirectResponse:
    """Close an epoch now (the node's operator only), as POST /api/v1/epochs/settle does."""
    result = economy.settle_by(viewer.address)
    if result is None:
        return redirect("/earnings", "Nothing to settle: no new usage since the last epoch.")
    return redirect(
        "/earnings",
        f"Settled epoch {result.epoch}: revenue {units(result.revenue, TOKEN_DECIMALS)} CAIRN.",
    )
