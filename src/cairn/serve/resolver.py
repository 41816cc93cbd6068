"""Which backend serves a model: an upstream server configured for its asset, llama.cpp for a
packaged GGUF base model when chosen, else in-process transformers.

A request names a model by asset id or by a packaged base model's name; `Resolver.resolve`
finds the asset and the backend that runs it, each backend built on first use and each
asset's choice kept per metadata version (what serves an asset changes only with it).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from cairn.assets.service import Asset
from cairn.core.errors import InvalidInput, NotFound
from cairn.core.ids import MAX_ID
from cairn.serve.backends import Backend, ServedModel
from cairn.train import base_models
from cairn.train.catalog import ModelCatalog


@dataclass(frozen=True)
class Upstream:
    """An OpenAI-compatible server that serves one model asset for this gateway."""

    asset_id: int
    base_url: str
    model_name: str | None = None  # the model's name there; default: the asset id

    @classmethod
    def parse(cls, text: str) -> Upstream:
        """`ASSET=URL` or `ASSET=URL#NAME`, e.g. `7=http://gpu-box:8000/v1#smollm2`."""
        asset, _, rest = text.partition("=")
        url, _, name = rest.partition("#")
        if not asset.strip().isdigit() or not url.startswith(("http://", "https://")):
            raise InvalidInput(
                f"upstream {text!r} must be ASSET=URL or ASSET=URL#NAME, e.g. "
                "7=http://gpu-box:8000/v1#smollm2"
            )
        return cls(int(asset), url.strip(), name.strip() or None)


@dataclass
class Served:
    """A model ready to serve: its asset, how the backend sees it, and the backend."""

    asset: Asset
    model: ServedModel
    backend: Backend
    capabilities: set[str] = field(default_factory=set)

    def check(self, capability: str) -> None:
        """Refuse a request for something this model does not serve."""
        capabilities = self.backend.capabilities(self.model)
        if capability not in capabilities:
            can = ", ".join(sorted(capabilities)) or "nothing"
            raise InvalidInput(
                f"model {self.model.id} ({self.asset.name}) serves {can}, not {capability}"
            )


class Resolver:
    """Model assets to the backends that run them."""

    def __init__(
        self,
        catalog: ModelCatalog,
        *,
        memory_budget: int,
        upstreams: tuple[Upstream, ...] = (),
        upstream_api_key: str | None = None,
        llama_cpp: bool = False,
    ) -> None:
        self.catalog = catalog
        self.memory_budget = memory_budget
        self.upstreams = {u.asset_id: u for u in upstreams}
        self.upstream_api_key = upstream_api_key
        self.llama_cpp = llama_cpp
        self._local: Backend | None = None
        self._llama: Backend | None = None
        self._remote: dict[str, Backend] = {}
        self._served: dict[tuple[int, str], Served] = {}

    def resolve(self, ref: str) -> Served:
        """The model a request names, with its backend."""
        text = ref.strip()
        try:
            if text.isdigit() and int(text) > MAX_ID:  # no stored asset has such an id
                raise NotFound(text)
            asset = self.catalog.resolve(int(text) if text.isdigit() else text)
        except NotFound:
            raise NotFound(
                f"model {ref!r} does not exist on this node: GET /v1/models lists the models"
            ) from None
        key = (asset.asset_id, asset.metadata_cid)
        served = self._served.get(key)
        if served is None:
            served = self._served[key] = self._serve(asset)
        return Served(asset, served.model, served.backend)

    def _serve(self, asset: Asset) -> Served:
        family = self.catalog.family(asset)
        upstream = self.upstreams.get(asset.asset_id)
        if upstream is not None:
            model = ServedModel(
                id=str(asset.asset_id),
                folder=None,
                family=family,
                upstream_name=upstream.model_name or str(asset.asset_id),
            )
            return Served(asset, model, self._upstream(upstream.base_url))
        extra = self.catalog.metadata(asset)
        base = extra.get("base_model")
        if self.llama_cpp and base and base.get("format") == "gguf":
            gguf = base_models.entry_path(base_models.find(base["name"]))
            model = ServedModel(id=str(asset.asset_id), folder=None, family=family, gguf=gguf)
            return Served(asset, model, self._llama_backend())
        adapter = self.catalog.adapter(asset)
        if adapter is not None and adapter.labels is None:  # a causal LM's adapters: over the
            # base, kept in memory once for all of them (a classifier's head needs its merge)
            base = self.catalog.folder(self.catalog.assets.get(adapter.asset_id))
            model = ServedModel(
                id=str(asset.asset_id),
                folder=base,
                family=family,
                adapter=self.catalog.stored_folder(asset),
            )
            return Served(asset, model, self.local)
        folder = self.catalog.folder(asset)
        model = ServedModel(id=str(asset.asset_id), folder=folder, family=family)
        return Served(asset, model, self.local)

    @property
    def local(self) -> Backend:
        """The in-process transformers backend, created on first use."""
        if self._local is None:
            from cairn.serve.backends.transformers import TransformersBackend

            self._local = TransformersBackend(self.memory_budget)
        return self._local

    def _upstream(self, url: str) -> Backend:
        if url not in self._remote:
            from cairn.serve.backends.upstream import UpstreamBackend

            self._remote[url] = UpstreamBackend(url, self.upstream_api_key, timeout=600.0)
        return self._remote[url]

    def _llama_backend(self) -> Backend:
        if self._llama is None:
            from cairn.serve.backends.llamacpp import LlamaCppBackend

            self._llama = LlamaCppBackend(self.memory_budget)
        return self._llama
