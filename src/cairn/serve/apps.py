"""Apps: a chat model wrapped with a system prompt, default parameters, optional retrieval over
a dataset version, and a price per call; an asset of kind `app` that earns like any other.

An app's metadata (`extra.app`) holds its spec. Its lineage parents are its model and, with
retrieval, its dataset, so each call's revenue is split by the app's policy: the owner role to
the app's owner, the data role to the dataset version it retrieves from (by that version's
attribution table), the upstream role to the model (and on by the model's own lineage). The
gateway serves an app at /v1/chat/completions under its asset id, like a model.

Retrieval needs the passages embedded once: `Apps.index` embeds a dataset version's records
with all-MiniLM-L6-v2 through the gateway's own backend and stores the index by CID (kept per
version, so a second app over the same version reuses it). What the passages add to a prompt is
capped in the app's model's tokens (`Retrieval.max_context_tokens`, `fit_passages`).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

from eth_account.signers.local import LocalAccount

from cairn.assets.content import Scope
from cairn.assets.service import Asset, AssetService
from cairn.core.errors import CairnError, InvalidInput, NotFound
from cairn.core.licensing import Use
from cairn.core.policy import RevenueSplit
from cairn.data.anchoring import Anchoring, DatasetVersion
from cairn.economy.keys import ApiKey
from cairn.economy.licences import LicenceBook
from cairn.economy.receipts import UsageReceipt
from cairn.serve.app_spec import CONTEXT_SHARE, DEFAULT_SPLIT, EMBEDDING_MODEL, AppSpec, app_spec
from cairn.serve.gateway import Gateway
from cairn.serve.passage_budget import Passage
from cairn.serve.prices import PER_CALL, CallPrice
from cairn.serve.retrieval import RetrievalIndex, app_passages, augment_messages, build_index
from cairn.store.base import BlobStore


@dataclass(frozen=True)
class PublishedApp:
    """An app asset and the spec it serves."""

    asset: Asset
    spec: AppSpec

    @property
    def price(self) -> CallPrice:
        """What one call costs, whatever its length."""
        return CallPrice(self.spec.price_per_call, PER_CALL)


@dataclass(frozen=True)
class VersionIndex:
    """The retrieval index of one dataset version, stored by CID (cairn.retrieval/v1)."""

    dataset: int
    version: str  # the version's manifest CID
    index: str  # the index's CID
    passages: int
    model: str  # the sentence encoder that embedded them


@dataclass(frozen=True)
class RetrievalSource:
    """A dataset an app can retrieve from: one with an anchored version."""

    dataset: int
    name: str
    newest: DatasetVersion


@dataclass(frozen=True)
class AppDetail:
    """An app with the assets it stands on: its model and, with retrieval, its dataset and the
    number of the version it retrieves from (None if that version is no longer listed)."""

    app: PublishedApp
    model: Asset
    dataset: Asset | None
    dataset_version: int | None


@dataclass(frozen=True)
class Trial:
    """One question put to an unpublished spec: the answer, the passages retrieved for it (as
    the prompt held them), the receipt of the model's call (charged the model's own per-token
    price), and where each passage came from."""

    answer: str
    passages: tuple[str, ...]
    receipt: UsageReceipt
    sources: tuple[Passage, ...] = ()  # one per passage: its record, and whether it was cut


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

    def get(self, app_id: int) -> PublishedApp:
        """One app; an id that is not a Cairn app is `NotFound`."""
        return PublishedApp(*self.spec(app_id))

    def detail(self, app_id: int) -> AppDetail:
        """An app with its model and, with retrieval, its dataset and version number."""
        app = self.get(app_id)
        retrieval = app.spec.retrieval
        if retrieval is None:
            return AppDetail(app, self.assets.get(app.spec.model), None, None)
        number = next(
            (
                v.number
                for v in self.anchoring.versions(retrieval.dataset)
                if v.version == retrieval.version
            ),
            None,
        )
        return AppDetail(
            app, self.assets.get(app.spec.model), self.assets.get(retrieval.dataset), number
        )

    def sources(self) -> list[RetrievalSource]:
        """Datasets with an anchored version to retrieve from, each with its newest version."""
        out = []
        for asset in self.assets.list(kind="dataset", limit=500):
            try:
                versions = self.anchoring.versions(asset.asset_id)
            except CairnError:
                continue  # a dataset asset without a Cairn spec has no versions
            if versions:
                out.append(RetrievalSource(asset.asset_id, asset.name, versions[0]))
        return out

    def list(self) -> list[PublishedApp]:
        """Every Cairn app, newest first."""
        out = []
        for asset in self.assets.list(kind="app", limit=1000):
            spec = app_spec(asset, self.gateway.catalog.metadata(asset))
            if spec is not None:
                out.append(PublishedApp(asset, spec))
        return out

    def index(
        self,
        dataset_id: int,
        version: str | None = None,
        *,
        builder: str | None,
        progress: Callable[[int, int], None] | None = None,
    ) -> VersionIndex:
        """The retrieval index of a dataset version (the newest by default), built once.

        Only for a `builder` who may build an app from the dataset (the same licence an app
        over it needs); its passages are the dataset's records, so they are stored under the
        dataset's gate.
        """
        self.licences.require(Use.TRAIN, dataset_id, builder)
        versions = self.anchoring.versions(dataset_id)
        if not versions:
            raise NotFound(f"dataset {dataset_id} has no anchored version to retrieve from")
        matching = [v for v in versions if version is None or v.version == version]
        if not matching:
            raise NotFound(f"{version} is not a version of dataset {dataset_id}")
        cid = matching[0].version
        marker = self.cache_dir / f"index-{cid}.json"
        if marker.exists():
            known = VersionIndex(**json.loads(marker.read_text()))
            if self.store.has(known.index):
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
        found = VersionIndex(
            dataset=dataset_id,
            version=cid,
            index=index_cid,
            passages=len(built.passages),
            model=EMBEDDING_MODEL,
        )
        self.cache_dir.mkdir(parents=True, exist_ok=True)
        tmp = marker.with_suffix(".tmp")
        tmp.write_text(json.dumps(asdict(found)))
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
            context = model.backend.context_length(model.model)
            wanted = spec.retrieval.max_context_tokens
            if wanted is not None and wanted > context // CONTEXT_SHARE:
                raise InvalidInput(
                    f"max_context_tokens {wanted} is over 1/{CONTEXT_SHARE} of model "
                    f"{spec.model}'s context of {context} tokens: at most "
                    f"{context // CONTEXT_SHARE}, to leave room for the chat and the answer"
                )
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
    ) -> PublishedApp:
        """Check and register an app owned by `owner`."""
        if not name.strip():
            raise InvalidInput("an app needs a name")
        self.check(owner.address, spec)
        asset = self.assets.register(
            owner,
            kind="app",
            name=name,
            licence=licence,
            description=description,
            parents=spec.parents,
            split=split,
            extra={"app": spec.to_extra()},
        )
        return PublishedApp(asset, spec)

    def trial(self, key: ApiKey, spec: AppSpec, question: str, *, max_tokens: int) -> Trial:
        """Put one question to a spec before it is published, as the gateway would answer it
        for the app, but through its model on `key` at the model's own price (nothing is
        published; the key's owner must be allowed to build the spec)."""
        self.check(key.account, spec)
        used = []
        if spec.retrieval is not None:
            served = self.gateway.resolve(str(spec.model))
            retriever = self.gateway.retriever
            used = app_passages(retriever, spec.retrieval, question, served.backend, served.model)
        passages = [p.text for p in used]
        asked = [{"role": "user", "content": question}]
        metered = self.gateway.generate(
            key,
            str(spec.model),
            messages=augment_messages(asked, spec.system_prompt or None, passages),
            max_tokens=spec.max_tokens or max_tokens,
            temperature=spec.temperature,
            top_p=spec.top_p,
            stop=(),
            seed=None,
        )
        answer, receipt = metered.text()
        return Trial(answer, tuple(passages), receipt, tuple(used))
