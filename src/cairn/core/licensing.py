"""Licences: the terms an asset's owner offers, and who may use an asset how.

An asset with no licence offers is not gated: whoever reaches the node may export, download
or train from it, under the licence string it was registered with. Once its owner makes an
offer, each use needs one of:

- being the asset's current owner;
- an open licence: an active offer with `open` terms and price 0 (free to everyone, no token);
- a valid licence token (a copy held, not expired) whose terms permit the use.

Exporting a dataset and downloading a model are permitted by every term. Training from an
asset (naming it in a recipe) makes a derivative, which only `open` and `commercial-remix`
terms permit: a model built on Cairn earns money, so non-commercial terms do not cover it.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from enum import IntEnum, StrEnum
from typing import Any

from cairn.core.amounts import units
from cairn.core.errors import Forbidden, InvalidInput


class Terms(IntEnum):
    """Licence terms; the numbers are LicenseToken's `TERMS_*` values."""

    OPEN = 1
    NON_COMMERCIAL = 2
    COMMERCIAL = 3
    COMMERCIAL_REMIX = 4

    @property
    def label(self) -> str:
        """The name people type: `open`, `non-commercial`, `commercial`, `commercial-remix`."""
        return self.name.lower().replace("_", "-")

    @classmethod
    def parse(cls, value: str | int) -> Terms:
        """A term from its label or number; anything else is `InvalidInput`."""
        if isinstance(value, int) and not isinstance(value, bool):
            try:
                return cls(value)
            except ValueError:
                pass
        elif isinstance(value, str):
            for term in cls:
                if value.strip().lower() in (term.label, term.name.lower()):
                    return term
        names = ", ".join(t.label for t in cls)
        raise InvalidInput(f"unknown licence terms {value!r}: use one of {names}")


TERMS_TEXT = {
    Terms.OPEN: "use for any purpose, including building and selling derivatives",
    Terms.NON_COMMERCIAL: "use without commercial gain; no derivatives that earn money",
    Terms.COMMERCIAL: "commercial use as it is; no derivatives",
    Terms.COMMERCIAL_REMIX: "commercial use, and building and selling derivatives",
}


class Use(StrEnum):
    """What an account asks to do with an asset."""

    EXPORT = "export"  # read a dataset version's records
    DOWNLOAD = "download"  # fetch a model's weights
    TRAIN = "train"  # name the asset in a training recipe (a derivative)

    @property
    def verb(self) -> str:
        """How an error message names the use."""
        return {"export": "export", "download": "download", "train": "train a model from"}[self]


def permits(terms: Terms, use: Use) -> bool:
    """Whether a licence under `terms` covers `use`."""
    if use is Use.TRAIN:
        return terms in (Terms.OPEN, Terms.COMMERCIAL_REMIX)
    return True


@dataclass(frozen=True)
class Offer:
    """A licence offer as LicenseToken stores it (its id is the token id)."""

    offer_id: int
    asset_id: int
    price: int  # per copy, in the payment token's smallest unit
    terms: Terms
    max_copies: int  # 0: no cap
    duration: int  # seconds a licence lasts; 0: for ever
    transferable: bool
    active: bool
    sold: int

    @property
    def sold_out(self) -> bool:
        """Whether the cap on copies is reached."""
        return self.max_copies != 0 and self.sold >= self.max_copies

    @property
    def buyable(self) -> bool:
        """Whether a copy can be bought now."""
        return self.active and not self.sold_out

    @property
    def is_open(self) -> bool:
        """An open licence: free to everyone, without holding a token."""
        return self.active and self.terms is Terms.OPEN and self.price == 0

    def to_dict(self) -> dict[str, Any]:
        """The offer as the API shows it (amounts as decimal strings)."""
        return {
            "offer_id": self.offer_id,
            "asset_id": self.asset_id,
            "price": str(self.price),
            "terms": self.terms.label,
            "terms_text": TERMS_TEXT[self.terms],
            "max_copies": self.max_copies,
            "duration": self.duration,
            "transferable": self.transferable,
            "active": self.active,
            "sold": self.sold,
            "buyable": self.buyable,
            "open": self.is_open,
        }


class LicenceRequired(Forbidden):
    """The asset is licensed and the caller holds no licence that covers this use."""

    title = "Licence required"

    def __init__(self, message: str, *, asset_id: int, use: Use, offers: Sequence[Offer]):
        super().__init__(message)
        self.asset_id = asset_id
        self.use = use
        self.offers = tuple(offers)


def check_access(
    use: Use,
    *,
    asset_id: int,
    asset_name: str,
    account: str | None,
    owner: str,
    offers: Sequence[Offer],
    held: Collection[int],
    symbol: str = "CAIRN",
    decimals: int = 18,
) -> str:
    """Why `account` may `use` the asset (a short reason), or `LicenceRequired` saying what to buy.

    `held` are the offer ids of which `account` holds a valid (unexpired) licence.
    """
    if not offers:
        return "not gated"
    if account is not None and account.lower() == owner.lower():
        return "owner"
    if any(o.is_open and permits(o.terms, use) for o in offers):
        return "open licence"
    by_id = {o.offer_id: o for o in offers}
    for offer_id in sorted(held):
        offer = by_id.get(offer_id)
        if offer is not None and permits(offer.terms, use):
            return f"licence {offer_id}"
    covering = [o for o in offers if o.buyable and permits(o.terms, use)]
    who = "you need" if account is None else f"{account} needs"
    if covering:
        cheapest = min(covering, key=lambda o: (o.price, o.offer_id))
        price = "free" if cheapest.price == 0 else f"{units(cheapest.price, decimals)} {symbol}"
        hint = (
            f"buy licence {cheapest.offer_id} ({cheapest.terms.label}, {price}): "
            f"`cairn licence buy {cheapest.offer_id}` or the asset's page"
        )
    else:
        hint = "no licence on offer covers this; ask the owner for one"
    sign_in = " (sign in first)" if account is None else ""
    raise LicenceRequired(
        f"{asset_name} (asset {asset_id}) is licensed: to {use.verb} it {who} a licence"
        f"{sign_in}; {hint}",
        asset_id=asset_id,
        use=use,
        offers=covering,
    )
