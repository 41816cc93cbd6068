"""What the gateway serves: every model asset it can run and every Cairn app, with what each
does and what one call costs (the list /v1/models, the playground and the app builder show).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from cairn.assets.service import Asset
from cairn.core.errors import InvalidInput, NotFound
from cairn.serve.app_spec import AppSpec, app_spec
from cairn.serve.prices import CallPrice, call_price
from cairn.train.catalog import ModelCatalog

APP_FAMILY = "app"  # the family an app is listed under


@dataclass(frozen=True)
class CatalogueEntry:
    """A model or an app this gateway serves."""

    id: str  # the asset id, as a request names it
    name: str
    owner: str
    created: int  # when its asset was registered (unix seconds)
    family: str  # causal-lm, encoder, or APP_FAMILY
    capabilities: tuple[str, ...]  # chat, completions, embeddings, classifications (sorted)
    price: CallPrice
    app: AppSpec | None = None  # what an app does with each call; None for a model

    @property
    def is_app(self) -> bool:
        """Whether this is an app (a model wrapped with a prompt, retrieval and a price)."""
        return self.app is not None


def catalogue(catalog: ModelCatalog, prices: Mapping[int, int]) -> list[CatalogueEntry]:
    """Every servable model asset, newest first, then every app; `prices` are the models' own
    (`Prices.all`). Assets that serve nothing (a model of an unknown family, an app asset that
    is not a Cairn app) are left out."""
    out = []
    for asset in catalog.assets.list(kind="model", limit=1000):
        try:
            family = catalog.family(asset)
        except (InvalidInput, NotFound):
            continue
        extra = catalog.metadata(asset)
        architectures = extra.get("model", {}).get("architectures", [])
        classifier = extra.get("training", {}).get("method") == "classify" or any(
            a.endswith("ForSequenceClassification") for a in architectures
        )
        price = call_price(asset, None, prices)
        assert price is not None  # every model is sold per call (free when unpriced)
        out.append(_entry(asset, family, _capabilities(family, classifier), price))
    for asset in catalog.assets.list(kind="app", limit=1000):
        try:
            spec = app_spec(asset, catalog.metadata(asset))
        except (InvalidInput, NotFound):
            continue
        price = call_price(asset, spec, prices)
        if spec is None or price is None:  # an app asset that serves nothing
            continue
        out.append(_entry(asset, APP_FAMILY, {"chat"}, price, spec))
    return out


def _entry(
    asset: Asset, family: str, capabilities: set[str], price: CallPrice, app: AppSpec | None = None
) -> CatalogueEntry:
    return CatalogueEntry(
        id=str(asset.asset_id),
        name=asset.name,
        owner=asset.owner,
        created=asset.registered_at,
        family=family,
        capabilities=tuple(sorted(capabilities)),
        price=price,
        app=app,
    )


def _capabilities(family: str, classifier: bool) -> set[str]:
    if family == "causal-lm":
        return {"chat", "completions"}
    return {"classifications", "embeddings"} if classifier else {"embeddings"}
