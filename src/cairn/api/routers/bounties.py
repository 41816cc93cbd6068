"""Bounties (paid data tasks): budgets that pay per accepted record and per useful review.

Writes here sign with the signed-in account's key held by this node (dev accounts, the web
app); wallets and the CLI sign DataBounty calls themselves and relay them through
`POST /chain/transactions`. Anchored batches are paid by the node on its own.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from pydantic import Field

from cairn.api.deps import NodeDep, SessionSigner
from cairn.api.schemas import Strict
from cairn.core.amounts import parse_smallest_units
from cairn.core.ids import StoredId

router = APIRouter(tags=["bounties"])


class BountyOpen(Strict):
    budget: str = Field(..., description="Tokens escrowed, in the smallest unit")
    per_record: str = Field("0", description="Paid per accepted record, smallest unit")
    per_review: str = Field("0", description="Paid per useful review, smallest unit")


class TopUp(Strict):
    amount: str = Field(..., description="Tokens added to the budget, smallest unit")


@router.get("/bounties")
def list_bounties(node: NodeDep) -> list[dict[str, Any]]:
    """Every bounty, open ones first."""
    return node.economy.bounties.listing()


@router.get("/datasets/{dataset_id}/bounties")
def dataset_bounties(node: NodeDep, dataset_id: StoredId) -> list[dict[str, Any]]:
    """What a dataset's tasks pay: its bounties, open ones first, with the budget left."""
    node.assets.get(dataset_id)
    return node.economy.bounties.listing(dataset_id)


@router.get("/bounties/{bounty_id}")
def get_bounty(node: NodeDep, bounty_id: StoredId) -> dict[str, Any]:
    """One bounty with each batch it paid."""
    return node.economy.bounties.get(bounty_id)


@router.post("/datasets/{dataset_id}/bounties", status_code=201)
def open_bounty(
    node: NodeDep, dataset_id: StoredId, body: BountyOpen, signer: SessionSigner
) -> dict[str, Any]:
    """Escrow a budget for a dataset the signed-in account owns."""
    return node.economy.bounties.open(
        signer,
        dataset_id,
        budget=parse_smallest_units(body.budget, "budget"),
        per_record=parse_smallest_units(body.per_record, "per_record"),
        per_review=parse_smallest_units(body.per_review, "per_review"),
    )


@router.post("/bounties/{bounty_id}/top-up")
def top_up(
    node: NodeDep, bounty_id: StoredId, body: TopUp, signer: SessionSigner
) -> dict[str, Any]:
    """Add to an open bounty's budget."""
    return node.economy.bounties.top_up(
        signer, bounty_id, parse_smallest_units(body.amount, "amount")
    )


@router.post("/bounties/{bounty_id}/close")
def close(node: NodeDep, bounty_id: StoredId, signer: SessionSigner) -> dict[str, Any]:
    """Close a bounty (its funder or the dataset's owner): the rest goes back to the funder."""
    return node.economy.bounties.close(signer, bounty_id)
