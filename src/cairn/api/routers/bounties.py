"""Bounties (paid data tasks): budgets that pay per accepted record and per useful review.

Writes here sign with the signed-in account's key held by this node (dev accounts, the web
app); wallets and the CLI sign DataBounty calls themselves and relay them through
`POST /chain/transactions`. Anchored batches are paid by the node on its own.
"""

from __future__ import annotations

from fastapi import APIRouter
from pydantic import Field

from cairn.api.deps import AssetsDep, EconomyDep, SessionSigner
from cairn.api.schemas import Strict
from cairn.core.amounts import parse_smallest_units
from cairn.core.ids import StoredId
from cairn.economy.bounties import Bounty, BountyDetail, ClosedBounty

router = APIRouter(tags=["bounties"])


class BountyOpen(Strict):
    budget: str = Field(..., description="Tokens escrowed, in the smallest unit")
    per_record: str = Field("0", description="Paid per accepted record, smallest unit")
    per_review: str = Field("0", description="Paid per useful review, smallest unit")


class TopUp(Strict):
    amount: str = Field(..., description="Tokens added to the budget, smallest unit")


@router.get("/bounties", response_model=list[Bounty])
def list_bounties(economy: EconomyDep) -> list[Bounty]:
    """Every bounty, open ones first."""
    return economy.bounties.listing()


@router.get("/datasets/{dataset_id}/bounties", response_model=list[Bounty])
def dataset_bounties(economy: EconomyDep, assets: AssetsDep, dataset_id: StoredId) -> list[Bounty]:
    """What a dataset's tasks pay: its bounties, open ones first, with the budget left."""
    assets.get(dataset_id)
    return economy.bounties.listing(dataset_id)


@router.get("/bounties/{bounty_id}", response_model=BountyDetail)
def get_bounty(economy: EconomyDep, bounty_id: StoredId) -> BountyDetail:
    """One bounty with each batch it paid."""
    return economy.bounties.get(bounty_id)


@router.post("/datasets/{dataset_id}/bounties", status_code=201, response_model=BountyDetail)
def open_bounty(
    economy: EconomyDep, dataset_id: StoredId, body: BountyOpen, signer: SessionSigner
) -> BountyDetail:
    """Escrow a budget for a dataset the signed-in account owns."""
    return economy.bounties.open(
        signer,
        dataset_id,
        budget=parse_smallest_units(body.budget, "budget"),
        per_record=parse_smallest_units(body.per_record, "per_record"),
        per_review=parse_smallest_units(body.per_review, "per_review"),
    )


@router.post("/bounties/{bounty_id}/top-up", response_model=BountyDetail)
def top_up(
    economy: EconomyDep, bounty_id: StoredId, body: TopUp, signer: SessionSigner
) -> BountyDetail:
    """Add to an open bounty's budget."""
    return economy.bounties.top_up(signer, bounty_id, parse_smallest_units(body.amount, "amount"))


@router.post("/bounties/{bounty_id}/close", response_model=ClosedBounty)
def close(economy: EconomyDep, bounty_id: StoredId, signer: SessionSigner) -> ClosedBounty:
    """Close a bounty (its funder or the dataset's owner): the rest goes back to the funder."""
    return economy.bounties.close(signer, bounty_id)
