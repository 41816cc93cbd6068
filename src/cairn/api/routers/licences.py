"""Licences: offers on assets, purchases, holdings, the access check, and licence sales.

Writes here sign with the signed-in account's key held by this node (dev accounts, the web
app). Wallets and the CLI sign LicenseToken calls themselves and relay them through
`POST /chain/transactions`.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query
from pydantic import Field

from cairn.api.deps import MaybeSessionAddress, NodeDep, SessionSigner
from cairn.api.schemas import Strict
from cairn.core.amounts import parse_smallest_units
from cairn.core.ids import StoredId
from cairn.core.licensing import Use

router = APIRouter(tags=["licences"])
UINT256_MAX = 2**256 - 1  # LicenseToken keeps counts and durations as uint256


class OfferCreate(Strict):
    price: str = Field(..., description="Per copy, in the token's smallest unit; 0 = free")
    terms: str = Field(
        ..., description="open, non-commercial, commercial or commercial-remix", examples=["open"]
    )
    max_copies: int = Field(
        0, ge=0, le=UINT256_MAX, description="The most copies ever sold; 0 = no cap"
    )
    duration: int = Field(
        0, ge=0, le=UINT256_MAX, description="Seconds a licence lasts; 0 = for ever"
    )
    transferable: bool = Field(False, description="Whether holders may pass licences on")


class Purchase(Strict):
    copies: int = Field(1, ge=1, le=1_000_000)
    holder: str | None = Field(None, description="Who receives the licences; default the buyer")


class Activation(Strict):
    active: bool


class LicenceTransfer(Strict):
    to: str
    copies: int = Field(1, ge=1, le=UINT256_MAX)


@router.get("/assets/{asset_id}/licences")
def asset_offers(node: NodeDep, asset_id: StoredId) -> dict[str, Any]:
    """The licence offers on an asset; `gated` is true once its owner has made any."""
    node.assets.get(asset_id)
    offers = node.licences.offers(asset_id)
    return {
        "asset_id": asset_id,
        "gated": bool(offers),
        "open": any(o.is_open for o in offers),
        "offers": [o.to_dict() for o in offers],
    }


@router.post("/assets/{asset_id}/licences", status_code=201)
def make_offer(
    node: NodeDep, asset_id: StoredId, body: OfferCreate, signer: SessionSigner
) -> dict[str, Any]:
    """Offer licences to an asset the signed-in account owns."""
    return node.licences.offer(
        signer,
        asset_id,
        price=parse_smallest_units(body.price, "price"),
        terms=body.terms,
        max_copies=body.max_copies,
        duration=body.duration,
        transferable=body.transferable,
    )


@router.get("/assets/{asset_id}/access")
def access(
    node: NodeDep,
    asset_id: StoredId,
    me: MaybeSessionAddress,
    use: Annotated[Use, Query(description="export, download or train")] = Use.EXPORT,
) -> dict[str, Any]:
    """Whether the caller may use the asset so; 403 with the licences to buy when not."""
    reason = node.licences.require(use, asset_id, me)
    return {
        "asset_id": asset_id,
        "use": use.value,
        "account": me,
        "allowed": True,
        "reason": reason,
    }


@router.get("/assets/{asset_id}/licence-sales")
def asset_sales(node: NodeDep, asset_id: StoredId) -> list[dict[str, Any]]:
    """Licence purchases of an asset paid to this node's treasury, newest first."""
    node.assets.get(asset_id)
    return node.licences.sales(asset_id)


@router.get("/licences/{offer_id}")
def get_offer(node: NodeDep, offer_id: StoredId) -> dict[str, Any]:
    """One licence offer."""
    return node.licences.get(offer_id).to_dict()


@router.post("/licences/{offer_id}/buy")
def buy(node: NodeDep, offer_id: StoredId, body: Purchase, signer: SessionSigner) -> dict[str, Any]:
    """Buy licences with the signed-in account, paying the price on chain."""
    return node.licences.buy(signer, offer_id, copies=body.copies, holder=body.holder)


@router.post("/licences/{offer_id}/active")
def set_active(
    node: NodeDep, offer_id: StoredId, body: Activation, signer: SessionSigner
) -> dict[str, Any]:
    """Withdraw an offer from sale, or offer it again (the asset's owner)."""
    return node.licences.set_active(signer, offer_id, body.active)


@router.post("/licences/{offer_id}/transfer")
def transfer(
    node: NodeDep, offer_id: StoredId, body: LicenceTransfer, signer: SessionSigner
) -> dict[str, Any]:
    """Pass a transferable licence on."""
    return node.licences.transfer(signer, offer_id, body.to, body.copies)


@router.get("/accounts/{account}/licences")
def held(node: NodeDep, account: str) -> list[dict[str, Any]]:
    """The licences an account holds, with expiry and validity."""
    return node.licences.held(account)
