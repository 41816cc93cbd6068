"""Prices and metering: what a model costs, and charging each request with a signed receipt.

A model's owner sets its price per 1,000 tokens (prompt and completion tokens alike; zero makes
it free, and unpriced models are free). A request opens a `Charge` that holds its largest
possible cost before any work is done, and closes it with the tokens actually used: the amount
is spent, the rest released, and a receipt signed by the gateway is stored, all in one
transaction of the index.
"""

from __future__ import annotations

import logging
import time
import uuid
from dataclasses import dataclass

from eth_account.signers.local import LocalAccount
from sqlalchemy import select

from cairn.assets.service import AssetService
from cairn.core.amounts import MAX_PRICE
from cairn.core.errors import Forbidden, InvalidInput, PaymentRequired
from cairn.core.evm import checksum
from cairn.core.ratelimit import SlidingWindow
from cairn.db.engine import Database
from cairn.economy.balances import Balances, Hold, cost
from cairn.economy.keys import ApiKey
from cairn.economy.models import PriceRow, ReceiptRow
from cairn.economy.receipts import (
    TYPED_SCHEMA,
    ServedTokens,
    Transcripts,
    UsageReceipt,
    receipt_leaf,
    sign_receipt,
)

log = logging.getLogger(__name__)


class Prices:
    """Per-model prices, set by each model's on-chain owner."""

    def __init__(self, db: Database, assets: AssetService) -> None:
        self.db = db
        self.assets = assets

    def get(self, asset_id: int) -> int:
        """The price per 1,000 tokens of a model (0 when its owner set none)."""
        with self.db.session() as session:
            row = session.get(PriceRow, asset_id)
            return int(row.price_per_1k) if row else 0

    def all(self) -> dict[int, int]:
        """Every price set, by asset id."""
        with self.db.session() as session:
            return {r.asset_id: int(r.price_per_1k) for r in session.scalars(select(PriceRow))}

    def set(self, caller: str, asset_id: int, price_per_1k: int) -> int:
        """Set a model's price; only its current owner may."""
        if isinstance(price_per_1k, bool) or not isinstance(price_per_1k, int):
            raise InvalidInput(f"price must be an integer number of units; got {price_per_1k!r}")
        if not 0 <= price_per_1k <= MAX_PRICE:
            raise InvalidInput(f"price per 1,000 tokens must be 0..{MAX_PRICE}; got {price_per_1k}")
        self.assets.sync()
        asset = self.assets.get(asset_id)
        if asset.kind == "app":  # the gateway charges an app its spec's price, never this
            raise InvalidInput(
                f"asset {asset_id} is an app: its price per call is part of its spec, fixed "
                "when it is published"
            )
        if asset.kind != "model":
            raise InvalidInput(
                f"asset {asset_id} is a {asset.kind}: only models are priced per 1,000 tokens"
            )
        if asset.owner != checksum(caller):
            raise Forbidden(f"only the owner of asset {asset_id} ({asset.owner}) sets its price")
        with self.db.session() as session:
            row = session.get(PriceRow, asset_id)
            if row is None:
                row = PriceRow(asset_id=asset_id, price_per_1k="0", set_by="", updated_at=0.0)
                session.add(row)
            row.price_per_1k = str(price_per_1k)
            row.set_by = checksum(caller)
            row.updated_at = time.time()
        return price_per_1k


@dataclass(frozen=True)
class Charge:
    """An open request: who pays, for which model, at what price, with how much held."""

    key: ApiKey
    model: int
    endpoint: str
    price_per_1k: int
    hold: Hold
    per_call: int = 0  # an app's price per call: charged whole, whatever the tokens


class Meter:
    """Open and close charges; closing writes the signed usage receipt."""

    def __init__(
        self,
        db: Database,
        balances: Balances,
        prices: Prices,
        gateway: LocalAccount,
        chain_id: int,
        free_calls_per_minute: int = 0,
        transcripts: Transcripts | None = None,
    ) -> None:
        self.db = db
        self.balances = balances
        self.prices = prices
        self.gateway = gateway
        self.chain_id = chain_id
        self.transcripts = transcripts  # where committed calls' token ids are kept
        # Free calls cost the node compute and nobody a token: each key and each account gets
        # a few a minute (a new key per call does not lift the account's limit).
        self.free_by_key = SlidingWindow(free_calls_per_minute, 60.0, "free calls")
        self.free_by_account = SlidingWindow(free_calls_per_minute, 60.0, "free calls")

    def open(
        self,
        key: ApiKey,
        model: int,
        endpoint: str,
        max_tokens: int,
        *,
        per_call: int | None = None,
    ) -> Charge:
        """Hold the most this request can cost (`max_tokens` in all, or an app's `per_call`
        price); 402 if not covered."""
        price = 0 if per_call is not None else self.prices.get(model)
        amount = per_call if per_call is not None else cost(price, max_tokens)
        if amount == 0:
            now = time.monotonic()
            self.free_by_key.admit(key.key_id, now, who=f"API key {key.key_id}")
            self.free_by_account.admit(key.account.lower(), now, who=key.account)
        try:
            hold = self.balances.hold(key.account, amount)
        except PaymentRequired:  # new deposits are read only when they are needed
            self.balances.sync()
            hold = self.balances.hold(key.account, amount)
        return Charge(key, model, endpoint, price, hold, per_call or 0)

    def close(
        self,
        charge: Charge,
        prompt_tokens: int,
        completion_tokens: int,
        served: ServedTokens | None = None,
    ) -> UsageReceipt:
        """Charge the tokens used, release the rest, and store the signed receipt (with the
        generation's commitment and its transcript's CID, when `served` has them)."""
        used = charge.per_call or cost(charge.price_per_1k, prompt_tokens + completion_tokens)
        amount = min(used, charge.hold.amount)
        commitment = transcript = ""
        counts = None if served is None else (len(served.prompt), len(served.completion))
        if counts is not None and counts != (prompt_tokens, completion_tokens):
            # a backend bug, not the caller's: charge what was counted, commit to nothing
            log.error(
                "a transcript of %s tokens for a call of %s",
                counts,
                (prompt_tokens, completion_tokens),
            )
        elif served is not None and self.transcripts is not None:
            transcript = self.transcripts.keep(charge.key.account, served)
            commitment = served.commitment
        receipt = UsageReceipt(
            receipt_id=uuid.uuid4().hex,
            gateway=self.gateway.address,
            chain_id=self.chain_id,
            account=charge.key.account,
            key_id=charge.key.key_id,
            model=charge.model,
            endpoint=charge.endpoint,
            prompt_tokens=prompt_tokens,
            completion_tokens=completion_tokens,
            price_per_1k=str(charge.price_per_1k),
            amount=str(amount),
            created_at=int(time.time() * 1000),
            price_per_call=str(charge.per_call),
            commitment=commitment,
            transcript=transcript,
            schema=TYPED_SCHEMA,  # signed as EIP-712 typed data
        )
        signature = sign_receipt(receipt, self.gateway)
        with self.balances.lock, self.db.session() as session:
            self.balances.settle_hold(session, charge.hold, amount)
            session.add(
                ReceiptRow(
                    receipt_id=receipt.receipt_id,
                    account=receipt.account,
                    key_id=receipt.key_id,
                    model=receipt.model,
                    amount=receipt.amount,
                    body=receipt.to_dict(),
                    signature=signature,
                    leaf=receipt_leaf(receipt, signature),
                    created_at=receipt.created_at / 1000,
                )
            )
        return receipt

    def abort(self, charge: Charge) -> None:
        """Release the hold of a request that produced nothing."""
        self.balances.release(charge.hold)
