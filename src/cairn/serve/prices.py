"""What one call of a served asset costs: the one answer that the gateway's catalogue
(/v1/models), the marketplace, the asset page, the playground and the apps list all show.

A model is priced per 1,000 tokens (prompt and answer tokens alike) by its owner (`Prices`);
an unpriced model is free. An app is priced per call, whatever its length, by the
`price_per_call` of its spec, fixed when it is published; that is what the gateway charges for
it (a per-token price set on an app would never be charged, so none is). Anything else (a
dataset, an app asset that is not a Cairn app, such as the gateway's receipt ledger) is not
sold per call.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from cairn.assets.service import Asset
from cairn.economy.receipts import UsageReceipt
from cairn.serve.app_spec import AppSpec

PER_1K = "1k tokens"
PER_CALL = "call"


@dataclass(frozen=True)
class CallPrice:
    """An amount in the token's smallest unit, per 1,000 tokens (a model) or per call (an app)."""

    amount: int
    per: str  # PER_1K or PER_CALL

    @property
    def free(self) -> bool:
        """Whether a call costs nothing."""
        return self.amount == 0

    @classmethod
    def of_receipt(cls, receipt: UsageReceipt) -> CallPrice:
        """The price a usage receipt states: per call when it has a per-call price (a per-token
        call's `price_per_call` is "0"), else per 1,000 tokens."""
        if receipt.price_per_call == "0":
            return cls(int(receipt.price_per_1k), PER_1K)
        return cls(int(receipt.price_per_call), PER_CALL)


def call_price(asset: Asset, spec: AppSpec | None, prices: Mapping[int, int]) -> CallPrice | None:
    """What the gateway charges for one call of `asset`: `spec` is its app spec (None when it is
    not a Cairn app) and `prices` every model price set (`Prices.all`). None: not sold per call."""
    if asset.kind == "model":
        return CallPrice(prices.get(asset.asset_id, 0), PER_1K)
    if asset.kind == "app" and spec is not None:
        return CallPrice(spec.price_per_call, PER_CALL)
    return None
