"""Apps: a chat model wrapped with a system prompt, default parameters, optional retrieval over
a dataset version, and a price per call; an asset of kind `app` that earns like any other.

An app's metadata (`extra.app`) holds its spec. Its lineage parents are its model and, with
retrieval, its dataset, so each call's revenue is split by the app's policy: the owner role to
the app's owner, the data role to the dataset version it retrieves from (by that version's
attribution table), the upstream role to the model (and on by the model's own lineage). The
gateway serves an app at /v1/chat/completions under its asset id, like a model.

Retrieval needs the passages embedded once: `Apps.index` embeds a dataset version's records
with all-MiniLM-L6-v2 through the gateway's own backend and stores the index by CID (kept per
version, so a second app over the same version reuses it).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from eth_account.signers.local import LocalAccount

from cairn.assets.content import Scope
from cairn.assets.service import Asset, AssetService
from cairn.core.errors import InvalidInput, NotFound
from cairn.core.licensing import Use
from cairn.core.policy import RevenueSplit
from cairn.data.anchoring import Anchoring
from cairn.economy.licences import LicenceBook
from cairn.economy.metering import MAX_PRICE
from cairn.serve.retrieval import RetrievalIndex, build_index
from cairn.store.base import BlobStore

if TYPE_CHECKING:
    from cairn.serve.gateway import Gateway

EMBEDDING_MODEL = "all-MiniLM-L6-v2"  # the packaged sentence encoder apps retrieve with
DEFAULT_SPLIT = RevenueSplit(owner=5_000, data=2_500, compute=0, upstream=2_500)
MAX_TOP_K = 20
MAX_PROMPT = 8_000  # characters of system prompt


@dataclass(frozen=True)
class Retrieval:
    """Where an app's passages come from."""

    dataset: int
    version: str  # the dataset version's manifest CID
    index: str  # the retrieval index's CID (cairn.retrieval/v1)
    top_k: int = 3


@dataclass(frozen=True)
class AppSpec:
    """What an app does with each call."""

    model: int  # the chat model asset it wraps
    system_prompt: str = ""
    temperature: float | None = None  # defaults for calls that do not set them
    top_p: float | None = None
    max_tokens: int | None = None
    retrieval: Retrieval | None = None
    price_per_call: int = 0  # smallest token units per call

    def __post_init__(self) -> None:
        if len(self.system_prompt) > MAX_PROMPT:
            raise InvalidInput(f"system prompt: at most {MAX_PROMPT} characters")
        if self.temperature is not None and not 0.0 <= self.temperature <= 2.0:
            raise InvalidInput(f"temperature must be 0..2; got {self.temperature}")
        if self.top_p is not None and not 0.0 < self.top_p <= 1.0:
            raise InvalidInput(f"top_p must be in (0, 1]; got {self.top_p}")
        if self.max_tokens is not None and not 1 <= self.max_tokens <= 32_768:
            raise InvalidInput(f"max_tokens must be 1..32768; got {self.max_tokens}")
        if not 0 <= self.price_per_call <= MAX_PRICE:
            raise InvalidInput(f"price per call must be 0..{MAX_PRICE}; got {self.price_per_call}")
        if self.retrieval is not None and not 1 <= self.retrieval.top_k <= MAX_TOP_K:
            raise InvalidInput(f"top_k must be 1..{MAX_TOP_K}; got {self.retrieval.top_k}")

    def to_extra(self) -> dict[str, Any]:
        """The spec as stored in the app's metadata (amounts as decimal strings)."""
        data = asdict(self)
        data["price_per_call"] = str(self.price_per_call)
        return data

    @classmethod
    def from_extra(cls, app: Any, asset_id: int) -> AppSpec:
        """The spec in an app's metadata; anything malformed is `InvalidInput`."""
        try:
            retrieval = app.get("retrieval")
            return cls(
                model=int(app["model"]),
                system_prompt=str(app.get("system_prompt", "")),
                temperature=_maybe(float, app.get("temperature")),
                top_p=_maybe(float, app.get("top_p")),
                max_tokens=_maybe(int, app.get("max_tokens")),
                retrieval=Retrieval(
                    dataset=int(retrieval["dataset"]),
                    version=str(retrieval["version"]),
                    index=str(retrieval["index"]),
                    top_k=int(retrieval.get("top_k", 3)),
                )
                if retrieval
                else None,
                price_per_call=int(app.get("price_per_call", "0")),
            )
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise InvalidInput(f"asset {asset_id} is not a usable Cairn app: {exc}") from exc


def _maybe(kind: Callable[[Any], Any], value: Any) -> Any:
    return None if value is None else kind(value)


def app_spec(asset: Asset, metadata: dict[str, Any]) -> AppSpec | None:
    """The spec of an app asset (None for an app asset that is not a Cairn app, such as the
    gateway's receipt ledger)."""
    if asset.kind != "app" or "app" not in metadata:
        return None
    return AppSpec.from_extra(metadata["app"], asset.asset_id)


class Apps:
    """Build, publish and describe apps."""

    def __init__(
        self,
        assets: AssetService,
        store: BlobStore,
        anchoring: Anchoring,
        licences: LicenceBook,
        gateway: Gateway,
        cache_dir: Path,
    ) -> None:
        self.assets = assets
        self.store = store
        self.anchoring = anchoring
        self.licences = licences
        self.gateway = gateway
        self.cache_dir = cache_dir

    def spec(self, app_id: int) -> tuple[Asset, AppSpec]:
        """An app and its spec; an id that is not a Cairn app is `NotFound`."""
        asset = self.assets.get(app_id)
        spec = app_spec(asset, self.gateway.catalog.metadata(asset))
        if spec is None:
            raise NotFound(f"asset {app_id} is a {asset.kind}, not a Cairn app")
        return asset, spec

    def list(self) -> list[dict[str, Any]]:
        """Every Cairn app, newest first."""
        out = []
        for asset in self.assets.list(kind="app", limit=1000):
            spec = app_spec(asset, self.gateway.catalog.metadata(asset))
            if spec is not None:
                out.append(describe(asset, spec))
        return out

    def index(
        self,
        dataset_id: int,
        version: str | None = None,
        *,
        builder: str | None,
        progress: Callable[[int, int], None] | None = None,
    ) -> dict[str, Any]:
        """The retrieval index of a dataset version (the newest by default), built once.

        Only for a `builder` who may build an app from the dataset (the same licence an app
        over it needs); its passages are the dataset's records, so they are stored under the
        dataset's gate.
        """
        self.licences.require(Use.TRAIN, dataset_id, builder)
        versions = self.anchoring.versions(dataset_id)
        if not versions:
            raise NotFound(f"dataset {dataset_id} has no anchored version to retrieve from")
        matching = [v for v in versions if version is None or v["version"] == version]
        if not matching:
            raise NotFound(f"{version} is not a version of dataset {dataset_id}")
        chosen = matching[0]
        cid = str(chosen["version"])
        marker = self.cache_dir / f"index-{cid}.json"
        if marker.exists():
            known = json.loads(marker.read_text())
            if self.store.has(known["index"]):
                return known
        records = self.anchoring.records(dataset_id, cid)
        built = build_index(
            records,
            self.gateway.embedder(EMBEDDING_MODEL),
            model=EMBEDDING_MODEL,
            version=cid,
            progress=progress,
        )
        index_cid = built.to_blobs(self.store)
        self.assets.refs.add(
            [index_cid, *RetrievalIndex.blob_cids(self.store, index_cid)], Scope.DATASET, dataset_id
        )
        found = {
            "dataset": dataset_id,
            "version": cid,
            "index": index_cid,
            "passages": len(built.passages),
            "model": EMBEDDING_MODEL,
        }
        self.cache_dir.mkdir(parents=True, exist_ok=True)
        tmp = marker.with_suffix(".tmp")
        tmp.write_text(json.dumps(found))
        os.replace(tmp, marker)
        return found

    def check(self, owner: str, spec: AppSpec) -> None:
        """Refuse a spec the gateway could not serve, or that `owner` may not build."""
        model = self.gateway.resolve(str(spec.model))
        capabilities = model.backend.capabilities(model.model)
        if "chat" not in capabilities:
            raise InvalidInput(
                f"model {spec.model} ({model.asset.name}) does not chat: an app wraps a chat model"
            )
        self.licences.require(Use.TRAIN, spec.model, owner)
        if spec.retrieval is not None:
            self.licences.require(Use.TRAIN, spec.retrieval.dataset, owner)
            index = RetrievalIndex.from_blobs(self.store, spec.retrieval.index)
            if index.version != spec.retrieval.version or index.model != EMBEDDING_MODEL:
                raise InvalidInput(
                    f"retrieval index {spec.retrieval.index} was built from {index.version} "
                    f"with {index.model}, not from {spec.retrieval.version} with {EMBEDDING_MODEL}"
                )

    def create(
        self,
        owner: LocalAccount,
        *,
        name: str,
        spec: AppSpec,
        description: str = "",
        licence: str = "proprietary",
        split: RevenueSplit = DEFAULT_SPLIT,
    ) -> dict[str, Any]:
        """Check and register an app owned by `owner`."""
        if not name.strip():
            raise InvalidInput("an app needs a name")
        self.check(owner.address, spec)
        parents = [spec.model] + ([spec.retrieval.dataset] if spec.retrieval else [])
        asset = self.assets.register(
            owner,
            kind="app",
            name=name,
            licence=licence,
            description=description,
            parents=parents,
            split=split,
            extra={"app": spec.to_extra()},
        )
        return describe(asset, spec)


def describe(asset: Asset, spec: AppSpec) -> dict[str, Any]:
    """An app as the API and pages show it."""
    return {
        **asset.to_dict(),
        "app": spec.to_extra(),
        "model": spec.model,
        "price_per_call": str(spec.price_per_call),
        "retrieval": asdict(spec.retrieval) if spec.retrieval else None,
    }
