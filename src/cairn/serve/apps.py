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
from pathlib import Path
from typing import Any

from eth_account.signers.local import LocalAccount

from cairn.assets.content import Scope
from cairn.assets.service import Asset, AssetService
from cairn.core.errors import InvalidInput, NotFound
from cairn.core.licensing import Use
from cairn.core.policy import RevenueSplit
from cairn.data.anchoring import Anchoring
from cairn.economy.licences import LicenceBook
from cairn.serve.app_spec import DEFAULT_SPLIT, EMBEDDING_MODEL, AppSpec, app_spec, describe
from cairn.serve.gateway import Gateway
from cairn.serve.retrieval import RetrievalIndex, build_index
from cairn.store.base import BlobStore


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
