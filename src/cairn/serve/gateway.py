"""The gateway: every request for a model or an app metered and receipted.

A request names a model by asset id (or a packaged base model's name), or an app by its asset
id. The gateway resolves it to a model asset and its backend (`cairn.serve.resolver`), prepares
the work (the prompt is tokenized, nothing generated yet), holds the request's largest possible
cost from the caller's balance (HTTP 402 if it is not covered), runs it, and closes the charge
with the tokens actually used, which stores the gateway's signed usage receipt
(`cairn.serve.metered`). What it serves and at what price is `cairn.serve.catalogue`.
"""

from __future__ import annotations

from cairn.assets.service import Asset
from cairn.core.errors import InvalidInput, NotFound
from cairn.economy.keys import ApiKey
from cairn.economy.metering import Meter
from cairn.economy.receipts import UsageReceipt
from cairn.serve.app_spec import EMBEDDING_MODEL, AppSpec, app_spec
from cairn.serve.backends import Classification, SamplingParams
from cairn.serve.catalogue import CatalogueEntry, catalogue
from cairn.serve.metered import Metered
from cairn.serve.passage_budget import Passage
from cairn.serve.resolver import Resolver, Served, Upstream
from cairn.serve.retrieval import Embed, Retriever, app_passages, augment_messages
from cairn.train.catalog import ModelCatalog

DEFAULT_MAX_TOKENS = 256  # when a request names no max_tokens (OpenAI's own default is "all")


class Gateway:
    """Serve model assets and apps to API-key holders, metered."""

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
        self.resolver = Resolver(
            catalog,
            memory_budget=memory_budget,
            upstreams=upstreams,
            upstream_api_key=upstream_api_key,
            llama_cpp=llama_cpp,
        )
        self._retriever: Retriever | None = None

    # -- what it serves ----------------------------------------------------------------------

    def models(self) -> list[CatalogueEntry]:
        """Every model asset with what it serves and its price, newest first, then every app."""
        return catalogue(self.catalog, self.meter.prices.all())

    def model(self, ref: str) -> CatalogueEntry:
        """The model or app a request names, as `models` lists it."""
        served = self.resolve(ref)
        for entry in self.models():
            if entry.id == str(served.asset.asset_id):
                return entry
        raise InvalidInput(f"model {ref!r} is not served here")

    def resolve(self, ref: str) -> Served:
        """The model a request names, with its backend."""
        return self.resolver.resolve(ref)

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
        served.check("embeddings")

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

    def passages(self, spec: AppSpec, question: str) -> list[Passage]:
        """The passages an app puts before `question`, within its token budget in its model's
        tokens (none without retrieval or a question)."""
        if spec.retrieval is None or not question.strip():
            return []
        served = self.resolve(str(spec.model))
        return app_passages(self.retriever, spec.retrieval, question, served.backend, served.model)

    def app_messages(self, spec: AppSpec, messages: list[dict[str, str]]) -> list[dict[str, str]]:
        """The app's system prompt and, with retrieval, the passages for the last user turn
        (chat messages in OpenAI's format, as a backend takes them)."""
        question = next(
            (m.get("content", "") for m in reversed(messages) if m.get("role") == "user"), ""
        )
        passages = [p.text for p in self.passages(spec, question)]
        return augment_messages(messages, spec.system_prompt or None, passages)

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
            messages = self.app_messages(spec, messages)
            max_tokens = max_tokens or spec.max_tokens
            temperature = spec.temperature if temperature is None else temperature
            top_p = spec.top_p if top_p is None else top_p
            per_call, charged_as = spec.price_per_call, asset.asset_id
            ref = str(spec.model)
        served = self.resolve(ref)
        capability = "chat" if messages is not None else "completions"
        served.check(capability)
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
        served.check("embeddings")
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
        served.check("classifications")
        tokens = served.backend.input_tokens(served.model, texts)
        charge = self.meter.open(key, served.asset.asset_id, "classifications", tokens)
        try:
            results, used = served.backend.classify(served.model, texts)
        except BaseException:
            self.meter.abort(charge)
            raise
        return results, self.meter.close(charge, used, 0)


def _fit(
    served: Served,
    params: SamplingParams,
    context: int,
    messages: list[dict[str, str]] | None,
    prompt: str | None,
) -> SamplingParams:
    """Without a requested max_tokens, generate at most what the context has room for."""
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
