"""The gateway: which backend serves a model, and every request metered and receipted.

A request names a model by asset id (or a packaged base model's name). The gateway resolves it
to a model asset, picks its backend (an upstream server configured for that asset, llama.cpp
for packaged GGUF models when chosen, else in-process transformers), prepares the work (the
prompt is tokenized, nothing generated yet), holds the request's largest possible cost from the
caller's balance (HTTP 402 if it is not covered), runs it, and closes the charge with the
tokens actually used, which stores the gateway's signed usage receipt.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from cairn.assets.service import Asset
from cairn.core.errors import InvalidInput, NotFound
from cairn.core.ids import MAX_ID
from cairn.economy.keys import ApiKey
from cairn.economy.metering import Charge, Meter
from cairn.economy.receipts import UsageReceipt
from cairn.serve.app_spec import EMBEDDING_MODEL, AppSpec, app_spec
from cairn.serve.prices import call_price
from cairn.serve.retrieval import Embed, Retriever, augment_messages
from cairn.train import base_models
from cairn.train.catalog import ModelCatalog

if TYPE_CHECKING:  # the backends import torch and transformers: only when a model is served
    from cairn.serve.backends import (
        Backend,
        Classification,
        Generation,
        SamplingParams,
        ServedModel,
    )

DEFAULT_MAX_TOKENS = 256  # when a request names no max_tokens (OpenAI's own default is "all")


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


class Metered:
    """A generation whose charge is settled exactly once: by what it produced when it ends or
    its consumer stops (a client that goes away pays for what was generated), or not at all
    when the backend fails (the hold is released and no receipt is written)."""

    def __init__(self, meter: Meter, charge: Charge, generation: Generation) -> None:
        self.meter = meter
        self.charge = charge
        self.generation = generation
        self.receipt: UsageReceipt | None = None
        self.failed = False
        self._lock = threading.Lock()

    @property
    def prompt_tokens(self) -> int:
        """Prompt tokens (exact once the generation is done)."""
        return self.generation.prompt_tokens

    def __iter__(self) -> Iterator[str]:
        try:
            yield from self.generation
        except GeneratorExit:  # the consumer stopped early
            self.finish()
            raise
        except BaseException:
            self.fail()
            raise
        self.finish()

    def finish(self) -> UsageReceipt | None:
        """Stop generating and charge what was used (once); None if the request failed."""
        with self._lock:
            if self.receipt is None and not self.failed:
                self.generation.close()
                self.receipt = self.meter.close(
                    self.charge, self.generation.prompt_tokens, self.generation.completion_tokens
                )
            return self.receipt

    def fail(self) -> None:
        """The backend failed: release the hold, charge nothing (unless already charged)."""
        with self._lock:
            if self.receipt is None and not self.failed:
                self.failed = True
                self.generation.close()
                self.meter.abort(self.charge)


class Gateway:
    """Serve model assets to API-key holders, metered."""

    def __init__(
        self,
        catalog: ModelCatalog,
        meter: Meter,
        *,
        memory_budget: int,
        upstreams: tuple[Upstream, ...] = (),
        upstream_api_key: str | None = None,
        llama_cpp: bool = False,
    ) -> None:
        self.catalog = catalog
        self.meter = meter
        self.memory_budget = memory_budget
        self._local: Backend | None = None
        self.upstreams = {u.asset_id: u for u in upstreams}
        self.upstream_api_key = upstream_api_key
        self.llama_cpp = llama_cpp
        self._llama: Backend | None = None
        self._remote: dict[str, Backend] = {}
        self._served: dict[tuple[int, str], Served] = {}
        self._retriever: Retriever | None = None

    # -- models ------------------------------------------------------------------------------

    def models(self) -> list[dict[str, Any]]:
        """Every model asset with what it serves and its price, newest first, then every app."""
        prices = self.meter.prices.all()
        out = []
        for asset in self.catalog.assets.list(kind="model", limit=1000):
            try:
                family = self.catalog.family(asset)
            except (InvalidInput, NotFound):
                continue
            extra = self.catalog.metadata(asset)
            architectures = extra.get("model", {}).get("architectures", [])
            classifier = extra.get("training", {}).get("method") == "classify" or any(
                a.endswith("ForSequenceClassification") for a in architectures
            )
            price = call_price(asset, None, prices)
            assert price is not None  # every model is sold per call (free when unpriced)
            out.append(
                {
                    "id": str(asset.asset_id),
                    "name": asset.name,
                    "owner": asset.owner,
                    "created": asset.registered_at,
                    "family": family,
                    "capabilities": sorted(_capabilities(family, classifier)),
                    **price.fields(),
                }
            )
        for asset in self.catalog.assets.list(kind="app", limit=1000):
            try:
                spec = app_spec(asset, self.catalog.metadata(asset))
            except (InvalidInput, NotFound):
                continue
            price = call_price(asset, spec, prices)
            if spec is None or price is None:  # an app asset that serves nothing
                continue
            out.append(
                {
                    "id": str(asset.asset_id),
                    "name": asset.name,
                    "owner": asset.owner,
                    "created": asset.registered_at,
                    "family": "app",
                    "capabilities": ["chat"],
                    **price.fields(),
                    "model": str(spec.model),
                    "retrieval": spec.retrieval is not None,
                }
            )
        return out

    def app(self, ref: str) -> tuple[Asset, AppSpec] | None:
        """The app a request names, or None when it names a model."""
        text = ref.strip()
        if not text.isdigit():
            return None
        try:
            asset = self.catalog.assets.get(int(text))
        except NotFound:
            return None
        if asset.kind != "app":
            return None
        spec = app_spec(asset, self.catalog.metadata(asset))
        if spec is None:
            raise NotFound(f"asset {text} is an app asset that serves nothing (not a Cairn app)")
        return asset, spec

    def embedder(self, ref: str) -> Embed:
        """Texts to unit vectors with an embedding model this gateway serves."""
        served = self.resolve(ref)
        self._check(served, "embeddings")

        def embed(texts: list[str]) -> list[list[float]]:
            return served.backend.embed(served.model, texts)[0]

        return embed

    @property
    def retriever(self) -> Retriever:
        """Apps' passages for a question, with the retrieval indexes kept loaded."""
        if self._retriever is None:
            self._retriever = Retriever(
                self.catalog.store, self.embedder(EMBEDDING_MODEL), model=EMBEDDING_MODEL
            )
        return self._retriever

    def _app_messages(self, spec: AppSpec, messages: list[dict[str, str]]) -> list[dict[str, str]]:
        """The app's system prompt and, with retrieval, the passages for the last user turn."""
        passages: list[str] = []
        if spec.retrieval is not None:
            question = next(
                (m.get("content", "") for m in reversed(messages) if m.get("role") == "user"), ""
            )
            if question.strip():
                passages = self.retriever.retrieve(
                    spec.retrieval.index, question, spec.retrieval.top_k
                )
        return augment_messages(messages, spec.system_prompt or None, passages)

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
        # what serves an asset changes only with its metadata: look it up once per version
        key = (asset.asset_id, asset.metadata_cid)
        served = self._served.get(key)
        if served is None:
            served = self._served[key] = self._serve(asset)
        return Served(asset, served.model, served.backend)

    def _serve(self, asset: Asset) -> Served:
        family = self.catalog.family(asset)
        upstream = self.upstreams.get(asset.asset_id)
        from cairn.serve.backends import ServedModel

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
        folder = self.catalog.folder(asset)
        model = ServedModel(id=str(asset.asset_id), folder=folder, family=family)
        return Served(asset, model, self.local)

    @property
    def local(self) -> Backend:
        """The in-process transformers backend, created on first use."""
        if self._local is None:
            from cairn.serve.backends import TransformersBackend

            self._local = TransformersBackend(self.memory_budget)
        return self._local

    def _upstream(self, url: str) -> Backend:
        if url not in self._remote:
            from cairn.serve.backends import UpstreamBackend

            self._remote[url] = UpstreamBackend(url, self.upstream_api_key, timeout=600.0)
        return self._remote[url]

    def _llama_backend(self) -> Backend:
        if self._llama is None:
            from cairn.serve.backends import LlamaCppBackend

            self._llama = LlamaCppBackend(self.memory_budget)
        return self._llama

    def _check(self, served: Served, capability: str) -> None:
        capabilities = served.backend.capabilities(served.model)
        if capability not in capabilities:
            can = ", ".join(sorted(capabilities)) or "nothing"
            raise InvalidInput(
                f"model {served.model.id} ({served.asset.name}) serves {can}, not {capability}"
            )

    # -- requests ----------------------------------------------------------------------------

    def generate(
        self,
        key: ApiKey,
        ref: str,
        *,
        messages: list[dict[str, str]] | None = None,
        prompt: str | None = None,
        max_tokens: int | None,
        temperature: float | None,
        top_p: float | None,
        stop: tuple[str, ...],
        seed: int | None,
    ) -> Metered:
        """Prepare a chat (messages) or text (prompt) completion and hold its cost.

        An app (named by its asset id) answers chats only: its system prompt and retrieved
        passages go before the messages, its defaults fill what the request leaves unset, and
        the call costs its price per call.
        """
        app = self.app(ref)
        per_call: int | None = None
        charged_as = None
        if app is not None:
            asset, spec = app
            if messages is None:
                raise InvalidInput(
                    f"app {asset.asset_id} ({asset.name}) answers chats: POST /v1/chat/completions"
                )
            messages = self._app_messages(spec, messages)
            max_tokens = max_tokens or spec.max_tokens
            temperature = spec.temperature if temperature is None else temperature
            top_p = spec.top_p if top_p is None else top_p
            per_call, charged_as = spec.price_per_call, asset.asset_id
            ref = str(spec.model)
        served = self.resolve(ref)
        capability = "chat" if messages is not None else "completions"
        self._check(served, capability)
        from cairn.serve.backends import SamplingParams

        context = served.backend.context_length(served.model)
        params = SamplingParams(
            max_tokens=max_tokens or DEFAULT_MAX_TOKENS,
            temperature=1.0 if temperature is None else temperature,
            top_p=1.0 if top_p is None else top_p,
            stop=stop,
            seed=seed,
        )
        if max_tokens is None:
            params = _fit(served, params, context, messages, prompt)
        if messages is not None:
            generation = served.backend.chat(served.model, messages, params)
            endpoint = "chat.completions"
        else:
            assert prompt is not None
            generation = served.backend.complete(served.model, prompt, params)
            endpoint = "completions"
        try:
            charge = self.meter.open(
                key,
                charged_as or served.asset.asset_id,
                endpoint,
                generation.prompt_tokens + params.max_tokens,
                per_call=per_call,
            )
        except BaseException:
            generation.close()
            raise
        return Metered(self.meter, charge, generation)

    def embed(
        self, key: ApiKey, ref: str, texts: list[str]
    ) -> tuple[list[list[float]], UsageReceipt]:
        """Embeddings of `texts`, charged by their tokens."""
        served = self.resolve(ref)
        self._check(served, "embeddings")
        # the hold is the tokens the backend will report (special tokens included), so the
        # last call a balance covers is served; where the backend can only bound them, it bounds
        tokens = served.backend.input_tokens(served.model, texts)
        charge = self.meter.open(key, served.asset.asset_id, "embeddings", tokens)
        try:
            vectors, used = served.backend.embed(served.model, texts)
        except BaseException:
            self.meter.abort(charge)
            raise
        return vectors, self.meter.close(charge, used, 0)

    def classify(
        self, key: ApiKey, ref: str, texts: list[str]
    ) -> tuple[list[Classification], UsageReceipt]:
        """Labels and scores for `texts`, charged by their tokens."""
        served = self.resolve(ref)
        self._check(served, "classifications")
        tokens = served.backend.input_tokens(served.model, texts)
        charge = self.meter.open(key, served.asset.asset_id, "classifications", tokens)
        try:
            results, used = served.backend.classify(served.model, texts)
        except BaseException:
            self.meter.abort(charge)
            raise
        return results, self.meter.close(charge, used, 0)


def _capabilities(family: str, classifier: bool) -> set[str]:
    if family == "causal-lm":
        return {"chat", "completions"}
    return {"classifications", "embeddings"} if classifier else {"embeddings"}


def _fit(
    served: Served,
    params: SamplingParams,
    context: int,
    messages: list[dict[str, str]] | None,
    prompt: str | None,
) -> SamplingParams:
    """Without a requested max_tokens, generate at most what the context has room for."""
    from cairn.serve.backends import SamplingParams

    text = prompt if prompt is not None else "\n".join(m.get("content", "") for m in messages or [])
    room = context - served.backend.count_tokens(served.model, text) - 32  # template overhead
    if room < 1:
        return params  # the backend explains the over-long prompt
    return SamplingParams(
        max_tokens=min(params.max_tokens, room),
        temperature=params.temperature,
        top_p=params.top_p,
        stop=params.stop,
        seed=params.seed,
    )
