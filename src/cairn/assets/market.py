"""The marketplace's read model: every dataset, model and app with the figures people choose by.

A listing joins an asset (AssetRegistry, via the assets index) with what the other domains know
of it: a dataset's anchored records, versions and acceptance rate; a model's weights size,
held-out metric and price (`cairn.serve.prices`: what the gateway charges); the calls and tokens
its usage receipts count; how many models were built on a dataset. An app asset that serves
nothing (the gateway's receipt ledger) is not listed. Every figure comes from a few grouped
queries over the whole index, so a listing page costs the same number of queries however many
assets there are. It writes nothing.

Over 400 lines because each kind's figures need their own grouped queries and all of them feed
one `Listing`; a kind's queries are the part to move out if another kind is added.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import func, select

from cairn.assets.service import Asset, AssetService
from cairn.core.amounts import parse_units
from cairn.core.errors import CairnError, InvalidInput
from cairn.data.models import DatasetRow, RecordRow, UploadRow, VersionRow
from cairn.data.service import DataService
from cairn.db.engine import Database
from cairn.economy.metering import Prices
from cairn.economy.models import ReceiptRow
from cairn.serve.app_spec import AppSpec, app_spec
from cairn.serve.prices import CallPrice, call_price
from cairn.store.base import BlobStore

KINDS = ("dataset", "model", "app")
PRICE_CHOICES = ("free", "paid")
MAX_LISTED = 1000  # assets a listing reads (AssetService.list's own cap)
# Held-out metrics in the order one is chosen to stand for a model's quality, and whether a
# higher value is better (`finish_job` stores what `cairn.train.inner.evaluate` measured).
QUALITY_METRICS = (
    ("accuracy", True),
    ("f1", True),
    ("reward", True),
    ("loss", False),
    ("perplexity", False),
)


@dataclass(frozen=True)
class Quality:
    """The one figure that says how good an asset is, and what it measures."""

    name: str  # "acceptance", "held-out accuracy", "held-out loss"...
    value: float
    is_share: bool  # a fraction 0..1 (shown as a percentage) rather than a raw metric
    higher_is_better: bool


@dataclass(frozen=True)
class Listing:
    """An asset as the marketplace shows it."""

    asset: Asset
    tasks: tuple[str, ...] = ()  # dataset task types it holds or was trained on
    models_built: int = 0  # models and apps that name it as a parent
    # datasets
    records: int | None = None  # in the newest anchored version
    versions: int | None = None
    pending: int = 0  # accepted or in review, not anchored yet
    # models and apps
    weights_bytes: int | None = None
    method: str | None = None  # how it was trained (sft, lora, classify...), None for a base
    base_model: str | None = None  # the packaged base model's name, for a base model
    price: CallPrice | None = None  # what a call costs; None: not sold per call (datasets)
    calls: int = 0
    tokens: int = 0
    quality: Quality | None = None
    metrics: dict[str, float] = field(default_factory=dict)

    @property
    def asset_id(self) -> int:
        """The asset's id (its token id in AssetRegistry)."""
        return self.asset.asset_id

    @property
    def kind(self) -> str:
        """dataset, model or app."""
        return self.asset.kind


@dataclass(frozen=True)
class MarketFilter:
    """What a visitor asked the marketplace for; empty fields filter nothing."""

    q: str = ""
    kind: str = ""
    licence: str = ""
    task: str = ""
    price: str = ""  # "", "free" or "paid"
    max_price: int | None = None  # smallest units per 1,000 tokens (models) or per call (apps)

    @classmethod
    def parse(
        cls,
        *,
        q: str | None = None,
        kind: str | None = None,
        licence: str | None = None,
        task: str | None = None,
        price: str | None = None,
        max_price: str | None = None,
    ) -> MarketFilter:
        """Filters from a query string; a value that cannot be meant is `InvalidInput`."""
        kind = (kind or "").strip().lower()
        if kind and kind not in KINDS:
            raise InvalidInput(f"kind must be one of {', '.join(KINDS)}; got {kind!r}")
        price = (price or "").strip().lower()
        if price and price not in PRICE_CHOICES:
            raise InvalidInput(f"price must be free or paid; got {price!r}")
        return cls(
            q=(q or "").strip(),
            kind=kind,
            licence=(licence or "").strip(),
            task=(task or "").strip().lower(),
            price=price,
            max_price=parse_units(max_price, what="maximum price", zero=True)
            if max_price
            else None,
        )

    @property
    def active(self) -> bool:
        """Whether anything is filtered."""
        return any((self.q, self.kind, self.licence, self.task, self.price)) or (
            self.max_price is not None
        )

    def admits(self, listing: Listing) -> bool:
        """Whether `listing` passes every filter but the text query (the index answers that)."""
        if self.kind and listing.kind != self.kind:
            return False
        if self.licence and listing.asset.licence.lower() != self.licence.lower():
            return False
        if self.task and self.task not in listing.tasks:
            return False
        priced = self.price or self.max_price is not None
        if not priced:
            return True
        if listing.price is None:  # datasets are not sold per call
            return False
        if self.price == "free" and not listing.price.free:
            return False
        if self.price == "paid" and listing.price.free:
            return False
        return self.max_price is None or listing.price.amount <= self.max_price


def model_quality(metrics: dict[str, Any]) -> Quality | None:
    """The held-out metric that stands for a model's quality, if its training measured one."""
    for name, higher in QUALITY_METRICS:
        value = metrics.get(name)
        if isinstance(value, int | float) and not isinstance(value, bool):
            share = name in ("accuracy", "f1")
            return Quality(f"held-out {name}", float(value), share, higher)
    return None


def weights_size(store: BlobStore, extra: dict[str, Any]) -> int | None:
    """Bytes of a model's files: a packaged base model's pinned files, or a stored folder's."""
    try:
        if "base_model" in extra:
            return sum(int(f.get("size", 0)) for f in extra["base_model"].get("files", []))
        weights = extra.get("model", {}).get("weights")
        if not weights:
            return None
        manifest = store.get_json(weights)
        return sum(int(f.get("size", 0)) for f in manifest.get("files", {}).values())
    except (CairnError, AttributeError, TypeError, ValueError):  # elsewhere, or not our shape
        return None


def json_part(doc: Any, name: str) -> dict[str, Any]:
    """`doc[name]` when both are JSON objects, else {}: metadata registered from a wallet may
    have any shape, and one odd asset must not break a page."""
    value = doc.get(name) if isinstance(doc, dict) else None
    return value if isinstance(value, dict) else {}


class Market:
    """Listings of the assets this node knows, with their figures."""

    def __init__(
        self,
        db: Database,
        store: BlobStore,
        assets: AssetService,
        data: DataService,
        prices: Prices,
    ) -> None:
        self.db = db
        self.store = store
        self.assets = assets
        self.data = data
        self.prices = prices
        # Each figure is read once per Market (one page), for every asset at once.
        self._figures: dict[int, _DatasetFigures] | None = None
        self._usage_by_model: dict[int, tuple[int, int]] | None = None
        self._price_by_model: dict[int, int] | None = None
        self._all: list[Listing] | None = None

    def listings(self, wanted: MarketFilter | None = None) -> list[Listing]:
        """Listings newest first, filtered by `wanted`."""
        wanted = wanted or MarketFilter()
        every = self._every()
        if wanted.q:
            found = {a.asset_id for a in self.assets.list(query=wanted.q, limit=MAX_LISTED)}
            every = [s for s in every if s.asset_id in found]
        return [s for s in every if wanted.admits(s)]

    def listing(self, asset: Asset) -> Listing:
        """One asset's listing."""
        return self._listing(asset, _children_count(self.assets.list(limit=MAX_LISTED)))

    def facets(self) -> dict[str, list[str]]:
        """The licences and tasks listings have, for the filter form's choices."""
        every = self._every()
        return {
            "licence": sorted({s.asset.licence for s in every}, key=str.lower),
            "task": sorted({t for s in every for t in s.tasks}),
        }

    def _every(self) -> list[Listing]:
        if self._all is None:
            assets = self.assets.list(limit=MAX_LISTED)
            built = _children_count(assets)
            listed = [self._listing(a, built) for a in assets]
            self._all = [s for s in listed if s.kind != "app" or s.price is not None]
        return self._all

    # -- figures --------------------------------------------------------------------------

    def _listing(self, asset: Asset, built: dict[int, int]) -> Listing:
        if asset.kind == "dataset":
            return self._dataset(asset, built.get(asset.asset_id, 0))
        return self._model(asset, built.get(asset.asset_id, 0))

    def _dataset(self, asset: Asset, models_built: int) -> Listing:
        figures = self._dataset_figures().get(asset.asset_id)
        if figures is None:  # a dataset asset registered elsewhere: import its spec, if any
            try:
                self.data.datasets.row(asset.asset_id)
            except CairnError:
                return Listing(asset, models_built=models_built)
            self._figures = None
            figures = self._dataset_figures().get(asset.asset_id, _DatasetFigures())
        return Listing(
            asset,
            tasks=(figures.task,) if figures.task else (),
            records=figures.records,
            versions=figures.versions,
            pending=figures.pending,
            models_built=models_built,
            quality=Quality("acceptance", figures.acceptance, True, True)
            if figures.acceptance is not None
            else None,
        )

    def _model(self, asset: Asset, models_built: int) -> Listing:
        extra = self._extra(asset)
        training = json_part(extra, "training")
        datasets = json_part(training, "lineage").get("datasets")
        tasks = self._dataset_figures()
        trained_on = {
            d["dataset"]
            for d in (datasets if isinstance(datasets, list) else [])
            if isinstance(d, dict) and isinstance(d.get("dataset"), int)
        }
        calls, tokens = self._usage().get(asset.asset_id, (0, 0))
        metrics = {
            k: float(v)
            for k, v in json_part(training, "metrics").items()
            if isinstance(v, int | float) and not isinstance(v, bool)
        }
        method, base = training.get("method"), json_part(extra, "base_model").get("name")
        return Listing(
            asset,
            tasks=tuple(
                sorted({str(tasks[d].task) for d in trained_on if d in tasks and tasks[d].task})
            ),
            weights_bytes=weights_size(self.store, extra) if asset.kind == "model" else None,
            method=method if isinstance(method, str) else None,
            base_model=base if isinstance(base, str) else None,
            price=call_price(asset, _app_spec(asset, extra), self._prices()),
            calls=calls,
            tokens=tokens,
            models_built=models_built,
            quality=model_quality(metrics),
            metrics=metrics,
        )

    def _extra(self, asset: Asset) -> dict[str, Any]:
        """The `extra` part of the asset's metadata ({} when it is stored elsewhere)."""
        try:
            return json_part(self.store.get_json(asset.metadata_cid), "extra")
        except CairnError:
            return {}

    def _dataset_figures(self) -> dict[int, _DatasetFigures]:
        if self._figures is None:
            self._figures = _read_dataset_figures(self.db)
        return self._figures

    def _usage(self) -> dict[int, tuple[int, int]]:
        if self._usage_by_model is None:
            self._usage_by_model = usage_by_model(self.db)
        return self._usage_by_model

    def _prices(self) -> dict[int, int]:
        if self._price_by_model is None:
            self._price_by_model = self.prices.all()
        return self._price_by_model


def _app_spec(asset: Asset, extra: dict[str, Any]) -> AppSpec | None:
    """An app asset's spec; None for anything else, and for an app that serves nothing."""
    try:
        return app_spec(asset, extra)
    except CairnError:  # malformed metadata: the gateway serves nothing under it either
        return None


@dataclass(frozen=True)
class _DatasetFigures:
    task: str | None = None
    records: int = 0
    versions: int = 0
    pending: int = 0
    acceptance: float | None = None  # kept / decided lines; None before any decision


def _read_dataset_figures(db: Database) -> dict[int, _DatasetFigures]:
    """Every indexed dataset's task, newest version, pending records and acceptance rate."""
    with db.session() as session:
        specs: list[Any] = list(session.execute(select(DatasetRow.asset_id, DatasetRow.spec)))
        states: list[Any] = list(
            session.execute(
                select(RecordRow.dataset_id, RecordRow.status, func.count()).group_by(
                    RecordRow.dataset_id, RecordRow.status
                )
            )
        )
        uploads: list[Any] = list(
            session.execute(
                select(UploadRow.dataset_id, func.sum(UploadRow.total)).group_by(
                    UploadRow.dataset_id
                )
            )
        )
        versions: list[Any] = list(
            session.execute(select(VersionRow.dataset_id, VersionRow.number, VersionRow.records))
        )
    status: dict[int, dict[str, int]] = {}
    for dataset_id, state, count in states:
        status.setdefault(int(dataset_id), {})[str(state)] = int(count)
    sent = {int(dataset_id): int(total or 0) for dataset_id, total in uploads}
    newest: dict[int, tuple[int, int]] = {}  # dataset -> (number, records)
    for dataset_id, number, records in versions:
        if number > newest.get(dataset_id, (0, 0))[0]:
            newest[int(dataset_id)] = (int(number), int(records))
    out = {}
    for dataset_id, spec in specs:
        counts = status.get(dataset_id, {})
        kept = counts.get("accepted", 0) + counts.get("anchored", 0)
        # Lines refused by validation never became records: they count as rejected.
        decided = sent.get(dataset_id, 0) - counts.get("review", 0) - counts.get("held", 0)
        number, records = newest.get(dataset_id, (0, 0))
        out[int(dataset_id)] = _DatasetFigures(
            task=str(((spec or {}).get("task") or {}).get("type") or "") or None,
            records=records,
            versions=number,
            pending=counts.get("accepted", 0) + counts.get("review", 0),
            acceptance=min(kept / decided, 1.0) if decided > 0 else None,
        )
    return out


def usage_by_model(db: Database) -> dict[int, tuple[int, int]]:
    """(calls, tokens) of every model and app with usage receipts."""
    prompt = ReceiptRow.body["prompt_tokens"].as_integer()
    completion = ReceiptRow.body["completion_tokens"].as_integer()
    with db.session() as session:
        rows: list[Any] = list(
            session.execute(
                select(
                    ReceiptRow.model,
                    func.count(),
                    func.coalesce(func.sum(prompt), 0) + func.coalesce(func.sum(completion), 0),
                ).group_by(ReceiptRow.model)
            )
        )
    return {int(model): (int(calls), int(tokens)) for model, calls, tokens in rows}


def _children_count(assets: list[Asset]) -> dict[int, int]:
    """How many models and apps name each asset as a parent."""
    out: dict[int, int] = {}
    for asset in assets:
        if asset.kind != "dataset":
            for parent in asset.parents:
                out[parent] = out.get(parent, 0) + 1
    return out
