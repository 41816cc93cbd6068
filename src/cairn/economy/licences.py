"""Licences on the node: offers, purchases, the gate on export, download and training, and
licence sales as revenue.

Offers and holdings are read from LicenseToken itself, so the gate is exactly what the chain
says. Purchases paid to this node's treasury are indexed from `LicenceBought` events (once
each, by transaction hash and log index) with the dataset version current at the time: each
epoch settles them by lineage beside the usage receipts (`cairn.economy.epochs`).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from eth_account.signers.local import LocalAccount
from hexbytes import HexBytes
from sqlalchemy import delete, select

from cairn.assets.service import AssetService
from cairn.chain.contracts import Chain
from cairn.chain.cursors import advance, start_block
from cairn.chain.models import SyncCursor
from cairn.core.errors import Forbidden, InvalidInput, NotFound
from cairn.core.evm import checksum
from cairn.core.licensing import Offer, Terms, Use, check_access
from cairn.data.anchoring import Anchoring
from cairn.db.engine import Database
from cairn.economy.models import LicenceSaleRow

CURSOR = "licence_sales"
LOG_CHUNK = 5_000  # blocks per eth_getLogs call
BATCH = 128  # LicenseToken's balanceOfBatch limit


@dataclass(frozen=True)
class AssetOffers:
    """The licence offers made on an asset, oldest first."""

    asset_id: int
    offers: tuple[Offer, ...]

    @property
    def gated(self) -> bool:
        """Whether using the asset needs a licence: its owner has made an offer."""
        return bool(self.offers)

    @property
    def open(self) -> bool:
        """Whether an open, free licence is on offer: everyone may use the asset unbought."""
        return any(o.is_open for o in self.offers)


@dataclass(frozen=True)
class LicencePurchase:
    """Licences bought on chain: how many, for whom, what was paid, until when."""

    offer_id: int
    asset_id: int
    holder: str
    copies: int
    paid: str  # smallest token units, decimal
    expires: int  # unix time; 0: never
    tx_hash: str


@dataclass(frozen=True)
class LicenceTransferred:
    """Copies of a transferable licence passed on."""

    offer_id: int
    to: str
    copies: int
    tx_hash: str


@dataclass(frozen=True)
class HeldLicence:
    """Copies of one offer's licence an account holds, when they expire, and whether they are
    valid now."""

    offer: Offer
    copies: int
    expires: int  # unix time; 0: never
    valid: bool


@dataclass(frozen=True)
class LicenceSale:
    """A licence purchase paid to this node's treasury: revenue of its asset."""

    offer_id: int
    asset_id: int
    buyer: str
    holder: str
    copies: int
    paid: str  # smallest token units, decimal
    version: str | None  # a dataset's newest version when it sold
    tx_hash: str
    epoch_id: int | None  # the epoch that settled it


class LicenceBook:
    """Offer, buy and check licences; index the sales this node's treasury was paid."""

    def __init__(
        self,
        db: Database,
        chain: Chain,
        assets: AssetService,
        anchoring: Anchoring,
        treasury: str,
    ) -> None:
        self.db = db
        self.chain = chain
        self.assets = assets
        self.anchoring = anchoring
        self.treasury = checksum(treasury)

    # -- offers --------------------------------------------------------------------------------

    def offer(
        self,
        owner: LocalAccount,
        asset_id: int,
        *,
        price: int,
        terms: Terms | str,
        max_copies: int = 0,
        duration: int = 0,
        transferable: bool = False,
    ) -> Offer:
        """Offer licences to an asset `owner` owns."""
        asset = self.assets.get(asset_id)
        if asset.owner.lower() != owner.address.lower():
            raise Forbidden(
                f"only the owner of asset {asset_id} ({asset.owner}) can offer licences to it"
            )
        offer_id, _ = self.chain.licences.offer(
            owner,
            asset_id,
            price=price,
            terms=Terms.parse(terms),
            max_copies=max_copies,
            duration=duration,
            transferable=transferable,
        )
        return self.chain.licences.get(offer_id)

    def set_active(self, owner: LocalAccount, offer_id: int, active: bool) -> Offer:
        """Withdraw an offer from sale (licences bought stay valid) or offer it again."""
        offer = self.get(offer_id)
        asset = self.assets.get(offer.asset_id)
        if asset.owner.lower() != owner.address.lower():
            raise Forbidden(f"only the owner of asset {asset.asset_id} can change its offers")
        self.chain.licences.set_active(owner, offer_id, active)
        return self.get(offer_id)

    def get(self, offer_id: int) -> Offer:
        """One offer; an unknown id is `NotFound`."""
        if not 1 <= offer_id <= self.chain.licences.count():
            raise NotFound(f"no licence offer {offer_id}")
        return self.chain.licences.get(offer_id)

    def offers(self, asset_id: int) -> list[Offer]:
        """Every offer made for an asset, oldest first."""
        return self.chain.licences.offers_of(asset_id)

    def offering(self, asset_id: int) -> AssetOffers:
        """A registered asset's offers, and whether they gate it (`NotFound`: no such asset)."""
        self.assets.get(asset_id)
        return AssetOffers(asset_id, tuple(self.offers(asset_id)))

    # -- buying and holding --------------------------------------------------------------------

    def buy(
        self, buyer: LocalAccount, offer_id: int, *, copies: int = 1, holder: str | None = None
    ) -> LicencePurchase:
        """Buy `copies` of an offer for `holder` (the buyer by default), paying its price."""
        if copies < 1:
            raise InvalidInput(f"copies must be at least 1; got {copies}")
        offer = self.get(offer_id)
        if not offer.active:
            raise InvalidInput(f"licence offer {offer_id} is withdrawn from sale")
        if offer.sold_out:
            raise InvalidInput(f"licence offer {offer_id} is sold out ({offer.max_copies} copies)")
        cost = offer.price * copies
        if self.chain.token.balance_of(buyer.address) < cost:
            raise InvalidInput(
                f"{buyer.address} holds {self.chain.token.balance_of(buyer.address)} and "
                f"{copies} of licence {offer_id} cost {cost} (smallest token units)"
            )
        expires, receipt = self.chain.licences.buy(
            buyer, self.chain.token, offer_id, holder=holder, copies=copies
        )
        self.sync()
        return LicencePurchase(
            offer_id=offer_id,
            asset_id=offer.asset_id,
            holder=checksum(holder or buyer.address),
            copies=copies,
            paid=str(cost),
            expires=expires,
            tx_hash=receipt["transactionHash"].to_0x_hex(),
        )

    def transfer(
        self, holder: LocalAccount, offer_id: int, to: str, copies: int = 1
    ) -> LicenceTransferred:
        """Pass `copies` of a transferable licence on to `to`."""
        offer = self.get(offer_id)
        if not offer.transferable:
            raise InvalidInput(f"licence {offer_id} is not transferable under its offer's terms")
        held = self.chain.licences.balance_of(holder.address, offer_id)
        if held < copies:
            raise InvalidInput(f"{holder.address} holds {held} of licence {offer_id}, not {copies}")
        receipt = self.chain.licences.transfer(holder, to, offer_id, copies)
        return LicenceTransferred(
            offer_id=offer_id,
            to=checksum(to),
            copies=copies,
            tx_hash=receipt["transactionHash"].to_0x_hex(),
        )

    def held(self, account: str) -> list[HeldLicence]:
        """The licences `account` holds, with each one's expiry and whether it is valid now."""
        address = checksum(account)
        count = self.chain.licences.count()
        fn = self.chain.licences.contract.functions.balanceOfBatch
        out = []
        for start in range(1, count + 1, BATCH):
            ids = list(range(start, min(start + BATCH, count + 1)))
            balances = self.chain.client.call(fn([address] * len(ids), ids))
            for offer_id, copies in zip(ids, balances, strict=True):
                if int(copies) == 0:
                    continue
                offer = self.chain.licences.get(offer_id)
                expires = self.chain.licences.expires_at(offer_id, address)
                out.append(
                    HeldLicence(
                        offer=offer,
                        copies=int(copies),
                        expires=expires,
                        valid=self.chain.licences.has_licence(address, offer_id),
                    )
                )
        return out

    # -- the gate ------------------------------------------------------------------------------

    def require(self, use: Use, asset_id: int, account: str | None) -> str:
        """Why `account` may `use` the asset, or `LicenceRequired` naming what to buy."""
        asset = self.assets.get(asset_id)
        offers = self.offers(asset_id)
        held: list[int] = []
        if account is not None and offers:
            address = checksum(account)
            held = [
                o.offer_id for o in offers if self.chain.licences.has_licence(address, o.offer_id)
            ]
        return check_access(
            use,
            asset_id=asset_id,
            asset_name=asset.name,
            account=account,
            owner=asset.owner,
            offers=offers,
            held=held,
            symbol=self.chain.token.symbol(),
            decimals=self.chain.token.decimals(),
        )

    # -- sales as revenue ----------------------------------------------------------------------

    def sync(self) -> int:
        """Index licence purchases paid to this node's vault (or, before it, its treasury);
        returns how many were new."""
        client = self.chain.client
        head = client.block_number()
        with self.db.session() as session:
            start = start_block(session, CURSOR, self.chain.deployment.block)
        event = self.chain.licences.contract.events.LicenceBought
        vault = self.chain.vault
        payees = {self.treasury} | ({vault.address} if vault is not None else set())
        added = 0
        for lo in range(start, head + 1, LOG_CHUNK):
            hi = min(lo + LOG_CHUNK - 1, head)
            logs = client.logs(event, lo, hi)
            block_hash = client.block_hash(hi)
            versions: dict[int, str | None] = {}
            with self.db.session() as session:
                for log in logs:
                    args = log["args"]
                    if checksum(args["treasury"]) not in payees:
                        continue  # paid to another node: its revenue, not ours
                    tx_hash = HexBytes(log["transactionHash"]).to_0x_hex()
                    exists = session.scalar(
                        select(LicenceSaleRow.id).where(
                            LicenceSaleRow.tx_hash == tx_hash,
                            LicenceSaleRow.log_index == int(log["logIndex"]),
                        )
                    )
                    if exists is not None:
                        continue
                    asset_id = int(args["asset_id"])
                    if asset_id not in versions:
                        versions[asset_id] = self._newest_version(asset_id)
                    session.add(
                        LicenceSaleRow(
                            tx_hash=tx_hash,
                            log_index=int(log["logIndex"]),
                            offer_id=int(args["offer_id"]),
                            asset_id=asset_id,
                            buyer=checksum(args["buyer"]),
                            holder=checksum(args["holder"]),
                            copies=int(args["copies"]),
                            paid=str(int(args["paid"])),
                            version=versions[asset_id],
                            block_number=int(log["blockNumber"]),
                            sold_at=time.time(),
                        )
                    )
                    added += 1
                advance(session, CURSOR, hi, block_hash)
        return added

    def sales(self, asset_id: int | None = None) -> list[LicenceSale]:
        """Indexed sales, newest first (of one asset, or all)."""
        self.sync()
        query = select(LicenceSaleRow).order_by(LicenceSaleRow.id.desc())
        if asset_id is not None:
            query = query.where(LicenceSaleRow.asset_id == asset_id)
        with self.db.session() as session:
            rows = session.scalars(query).all()
            return [
                LicenceSale(
                    offer_id=r.offer_id,
                    asset_id=r.asset_id,
                    buyer=r.buyer,
                    holder=r.holder,
                    copies=r.copies,
                    paid=r.paid,
                    version=r.version,
                    tx_hash=r.tx_hash,
                    epoch_id=r.epoch_id,
                )
                for r in rows
            ]

    def reset_index(self) -> None:
        """Forget indexed sales: the chain behind them was replaced."""
        with self.db.session() as session:
            session.execute(delete(LicenceSaleRow))
            session.execute(delete(SyncCursor).where(SyncCursor.name == CURSOR))

    def _newest_version(self, asset_id: int) -> str | None:
        if self.assets.get(asset_id).kind != "dataset":
            return None
        try:
            versions = self.anchoring.versions(asset_id)
        except NotFound:
            return None
        return versions[0].version if versions else None
