"""Licences: offers on assets, purchases, holdings, the access check, and licence sales.

Writes here sign with the signed-in account's key held by this node (dev accounts, the web
app). Wallets and the CLI sign LicenseToken calls themselves and relay them through
`POST /chain/transactions`.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query
from pydantic import BaseModel, Field

from cairn.api.deps import AssetsDep, EconomyDep, MaybeSessionAddress, SessionSigner
from cairn.api.schemas import Strict
from cairn.core.amounts import parse_smallest_units
from cairn.core.ids import StoredId
from cairn.core.licensing import Offer, Use
from cairn.economy.licences import HeldLicence, LicencePurchase, LicenceSale, LicenceTransferred

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


class OfferPublic(BaseModel):
    """A licence offer; its id is its LicenseToken (ERC-1155) token id."""

    offer_id: int
    asset_id: int
    price: str = Field(..., description="Per copy, in the token's smallest unit, decimal")
    terms: str
    terms_text: str = Field(..., description="What a licence under these terms allows")
    max_copies: int = Field(..., description="0: no cap")
    duration: int = Field(..., description="Seconds a licence lasts; 0: for ever")
    transferable: bool
    active: bool = Field(..., description="On sale (a withdrawn offer's licences stay valid)")
    sold: int
    buyable: bool
    open: bool = Field(..., description="Free to everyone, without holding a token")

    @classmethod
    def of(cls, offer: Offer) -> OfferPublic:
        """The offer as the API shows it."""
        return cls(**offer.to_dict())


class AssetOffersPublic(BaseModel):
    asset_id: int
    gated: bool = Field(..., description="True once the asset's owner has made any offer")
    open: bool = Field(..., description="An open, free licence is on offer")
    offers: list[OfferPublic]


class HeldPublic(OfferPublic):
    copies: int
    expires: int = Field(..., description="Unix time; 0: never")
    valid: bool = Field(..., description="Whether the licence is valid now")

    @classmethod
    def of_held(cls, held: HeldLicence) -> HeldPublic:
        """A holding as the API shows it: its offer's fields and the holder's copies."""
        return cls(
            **held.offer.to_dict(), copies=held.copies, expires=held.expires, valid=held.valid
        )


class AccessGranted(BaseModel):
    asset_id: int
    use: str
    account: str | None
    allowed: bool
    reason: str = Field(..., description="Why the caller may use the asset so")


@router.get("/assets/{asset_id}/licences", response_model=AssetOffersPublic)
def asset_offers(economy: EconomyDep, asset_id: StoredId) -> AssetOffersPublic:
    """The licence offers on an asset; `gated` is true once its owner has made any."""
    found = economy.licences.offering(asset_id)
    return AssetOffersPublic(
        asset_id=asset_id,
        gated=found.gated,
        open=found.open,
        offers=[OfferPublic.of(o) for o in found.offers],
    )


@router.post("/assets/{asset_id}/licences", status_code=201, response_model=OfferPublic)
def make_offer(
    economy: EconomyDep, asset_id: StoredId, body: OfferCreate, signer: SessionSigner
) -> OfferPublic:
    """Offer licences to an asset the signed-in account owns."""
    offer = economy.licences.offer(
        signer,
        asset_id,
        price=parse_smallest_units(body.price, "price"),
        terms=body.terms,
        max_copies=body.max_copies,
        duration=body.duration,
        transferable=body.transferable,
    )
    return OfferPublic.of(offer)


@router.get("/assets/{asset_id}/access", response_model=AccessGranted)
def access(
    economy: EconomyDep,
    asset_id: StoredId,
    me: MaybeSessionAddress,
    use: Annotated[Use, Query(description="export, download or train")] = Use.EXPORT,
) -> AccessGranted:
    """Whether the caller may use the asset so; 403 with the licences to buy when not."""
    reason = economy.licences.require(use, asset_id, me)
    return AccessGranted(asset_id=asset_id, use=use.value, account=me, allowed=True, reason=reason)


@router.get("/assets/{asset_id}/licence-sales", response_model=list[LicenceSale])
def asset_sales(economy: EconomyDep, assets: AssetsDep, asset_id: StoredId) -> list[LicenceSale]:
    """Licence purchases of an asset paid to this node's treasury, newest first."""
    assets.get(asset_id)
    return economy.licences.sales(asset_id)


@router.get("/licences/{offer_id}", response_model=OfferPublic)
def get_offer(economy: EconomyDep, offer_id: StoredId) -> OfferPublic:
    """One licence offer."""
    return OfferPublic.of(economy.licences.get(offer_id))


@router.post("/licences/{offer_id}/buy", response_model=LicencePurchase)
def buy(
    economy: EconomyDep, offer_id: StoredId, body: Purchase, signer: SessionSigner
) -> LicencePurchase:
    """Buy licences with the signed-in account, paying the price on chain."""
    return economy.licences.buy(signer, offer_id, copies=body.copies, holder=body.holder)


@router.post("/licences/{offer_id}/active", response_model=OfferPublic)
def set_active(
    economy: EconomyDep, offer_id: StoredId, body: Activation, signer: SessionSigner
) -> OfferPublic:
    """Withdraw an offer from sale, or offer it again (the asset's owner)."""
    return OfferPublic.of(economy.licences.set_active(signer, offer_id, body.active))


@router.post("/licences/{offer_id}/transfer", response_model=LicenceTransferred)
def transfer(
    economy: EconomyDep, offer_id: StoredId, body: LicenceTransfer, signer: SessionSigner
) -> LicenceTransferred:
    """Pass a transferable licence on."""
    return economy.licences.transfer(signer, offer_id, body.to, body.copies)


@router.get("/accounts/{account}/licences", response_model=list[HeldPublic])
def held(economy: EconomyDep, account: str) -> list[HeldPublic]:
    """The licences an account holds, with expiry and validity."""
    return [HeldPublic.of_held(h) for h in economy.licences.held(account)]
