"""Licences on an asset's page: the offers, whether the asset is gated, what the signed-in
account holds, buying, and the owner's offers and withdrawals.

The asset page (`cairn.web.market`) renders its part from `licence_panel`; the forms post
here. Each write is the call
`POST /api/v1/assets/{id}/licences`, `/licences/{id}/buy` or `/licences/{id}/active` makes
(`LicenceBook`), signed with the key this node holds for the signed-in account. A refused
write moves nothing and comes back as a message on the asset's page.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Form
from fastapi.responses import RedirectResponse

from cairn.api.deps import AccountsDep, EconomyDep
from cairn.assets.service import Asset
from cairn.core.amounts import TOKEN_DECIMALS, parse_units
from cairn.core.errors import CairnError
from cairn.core.ids import StoredId
from cairn.core.licensing import TERMS_TEXT, Offer, Terms
from cairn.economy.licences import AssetOffers, LicenceBook
from cairn.web.render import redirect, units
from cairn.web.viewer import Viewer, ViewerDep

router = APIRouter()

DAY = 86_400  # seconds; the form takes a licence's duration in days
MAX_DAYS = 100 * 365


@dataclass(frozen=True)
class Holding:
    """A licence to this asset the signed-in account holds."""

    offer_id: int
    terms: str
    copies: int
    valid: bool
    expires: int  # unix time; 0: for ever

    @property
    def expiry(self) -> str:
        """When it ends, in UTC: '2026-03-01 12:00 UTC', or 'never'."""
        if not self.expires:
            return "never"
        return datetime.fromtimestamp(self.expires, UTC).strftime("%Y-%m-%d %H:%M UTC")


@dataclass(frozen=True)
class LicencePanel:
    """The Licences part of an asset's page, for the account viewing it."""

    offering: AssetOffers  # the offers, and whether they gate the asset
    holdings: list[Holding]
    signed_in: bool
    owner: bool  # the viewer owns the asset: it needs no licence and may make offers
    can_sign: bool  # this node holds the viewer's key, so the page can buy and offer for it
    terms: list[tuple[str, str]]  # every term's label and what it allows, for the offer form

    @property
    def asset_id(self) -> int:
        """The asset the offers are for."""
        return self.offering.asset_id

    @property
    def offers(self) -> tuple[Offer, ...]:
        """Every offer made on the asset, oldest first."""
        return self.offering.offers

    @property
    def gated(self) -> bool:
        """Whether using the asset needs a licence (its owner has made an offer)."""
        return self.offering.gated

    @property
    def open(self) -> bool:
        """Whether an open, free licence is on offer: everyone may use it without buying."""
        return self.offering.open

    def allows(self, offer: Offer) -> str:
        """What a licence under the offer's terms allows."""
        return TERMS_TEXT[offer.terms]


def licence_panel(licences: LicenceBook, viewer: Viewer | None, asset: Asset) -> LicencePanel:
    """The asset's offers and the viewer's holdings of them."""
    offering = licences.offering(asset.asset_id)
    holdings = []
    if viewer is not None and offering.offers:
        holdings = [
            Holding(h.offer.offer_id, h.offer.terms.label, h.copies, h.valid, h.expires)
            for h in licences.held(viewer.address)
            if h.offer.asset_id == asset.asset_id
        ]
    return LicencePanel(
        offering=offering,
        holdings=holdings,
        signed_in=viewer is not None,
        owner=viewer is not None and viewer.address.lower() == asset.owner.lower(),
        can_sign=viewer is not None and viewer.key_on_node,
        terms=[(t.label, TERMS_TEXT[t]) for t in Terms],
    )


def _back(asset_id: int) -> str:
    return f"/assets/{asset_id}#licences"


@router.post("/assets/{asset_id}/licences")
def make_offer(
    economy: EconomyDep,
    accounts: AccountsDep,
    viewer: ViewerDep,
    asset_id: StoredId,
    terms: Annotated[str, Form(max_length=40)],
    price: Annotated[str, Form(max_length=80)] = "0",
    max_copies: Annotated[int, Form(ge=0, le=2**64 - 1)] = 0,
    duration_days: Annotated[int, Form(ge=0, le=MAX_DAYS)] = 0,
    transferable: Annotated[bool, Form()] = False,
) -> RedirectResponse:
    """Offer licences to an asset the signed-in account owns."""
    try:
        offer = economy.licences.offer(
            accounts.signer(viewer.address),
            asset_id,
            price=parse_units(price, what="price", zero=True),
            terms=terms,
            max_copies=max_copies,
            duration=duration_days * DAY,
            transferable=transferable,
        )
    except CairnError as exc:
        return redirect(_back(asset_id), f"No offer was made: {exc.message}")
    cost = "free" if offer.price == 0 else f"{units(offer.price, TOKEN_DECIMALS)} CAIRN"
    return redirect(
        _back(asset_id), f"Offered licence {offer.offer_id} ({offer.terms.label}, {cost})."
    )


@router.post("/licences/{offer_id}/buy")
def buy(
    economy: EconomyDep, accounts: AccountsDep, viewer: ViewerDep, offer_id: StoredId
) -> RedirectResponse:
    """Buy one copy of a licence with the signed-in account's wallet, paying its price."""
    offer = economy.licences.get(offer_id)
    try:
        bought = economy.licences.buy(accounts.signer(viewer.address), offer_id)
    except CairnError as exc:
        return redirect(_back(offer.asset_id), f"Licence {offer_id} was not bought: {exc.message}")
    paid = "for free" if bought.paid == "0" else f"for {units(bought.paid, TOKEN_DECIMALS)} CAIRN"
    return redirect(
        _back(offer.asset_id),
        f"Bought licence {offer_id} ({offer.terms.label}) {paid} (tx {bought.tx_hash}).",
    )


@router.post("/licences/{offer_id}/active")
def set_active(
    economy: EconomyDep,
    accounts: AccountsDep,
    viewer: ViewerDep,
    offer_id: StoredId,
    active: Annotated[bool, Form()],
) -> RedirectResponse:
    """Withdraw an offer from sale, or offer it again (the asset's owner)."""
    offer = economy.licences.get(offer_id)
    try:
        economy.licences.set_active(accounts.signer(viewer.address), offer_id, active)
    except CairnError as exc:
        return redirect(_back(offer.asset_id), f"Licence offer {offer_id}: {exc.message}")
    if active:
        return redirect(_back(offer.asset_id), f"Licence offer {offer_id} is on sale again.")
    return redirect(
        _back(offer.asset_id),
        f"Withdrew licence offer {offer_id}; licences already bought stay valid.",
    )
