"""The bodies of the OpenAI-compatible API under /v1: requests as OpenAI clients send them, and
answers in OpenAI's own shapes with Cairn's additions (a model's price, the call's `cairn`
receipt). Field order is the order the answers have always had on the wire, so the bytes an
OpenAI client reads do not change; a streamed answer is documented by its chunks' schema.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from cairn.core.errors import InvalidInput
from cairn.economy.receipts import UsageReceipt
from cairn.serve.catalogue import CatalogueEntry

# -- requests -------------------------------------------------------------------------------


class Lenient(BaseModel):
    """OpenAI clients send fields Cairn does not use (user, logprobs=false...): ignore them."""

    model_config = ConfigDict(extra="ignore")


class Message(Lenient):
    role: Literal["system", "user", "assistant", "developer", "tool"]
    content: str | list[dict[str, Any]] | None = None

    def text(self) -> str:
        """The content as text; only text parts are understood."""
        if self.content is None or isinstance(self.content, str):
            return self.content or ""
        parts = []
        for part in self.content:
            if part.get("type") != "text":
                raise InvalidInput(f"message content part of type {part.get('type')!r}: only text")
            parts.append(str(part.get("text", "")))
        return "".join(parts)


class StreamOptions(Lenient):
    include_usage: bool = False


class Sampling(Lenient):
    model: str
    max_tokens: int | None = Field(None, ge=1)
    max_completion_tokens: int | None = Field(None, ge=1)
    # null means the default, as OpenAI reads it (some SDKs send every field)
    temperature: float | None = Field(None, ge=0.0, le=2.0)
    top_p: float | None = Field(None, gt=0.0, le=1.0)
    stop: str | list[str] | None = None
    seed: int | None = None
    n: int | None = Field(None, ge=1)
    stream: bool | None = False
    stream_options: StreamOptions | None = None

    def stops(self) -> tuple[str, ...]:
        """Stop strings (at most 4, as OpenAI allows)."""
        stops = [self.stop] if isinstance(self.stop, str) else list(self.stop or [])
        if len(stops) > 4 or any(not s for s in stops):
            raise InvalidInput("stop takes at most 4 non-empty strings")
        return tuple(stops)

    def limit(self) -> int | None:
        """The requested completion-token limit."""
        if self.n not in (None, 1):
            raise InvalidInput("n must be 1: Cairn returns one choice per request")
        return self.max_completion_tokens or self.max_tokens

    def wants_usage(self) -> bool:
        """Whether a stream ends with a chunk that carries the usage."""
        return bool(self.stream_options and self.stream_options.include_usage)


class ChatRequest(Sampling):
    messages: list[Message] = Field(..., min_length=1)


class CompletionRequest(Sampling):
    prompt: str | list[str]


class EmbeddingRequest(Lenient):
    model: str
    input: str | list[str]
    encoding_format: Literal["float", "base64"] = "float"


class ClassificationRequest(Lenient):
    model: str
    input: str | list[str]


# -- what every answer carries --------------------------------------------------------------


class Usage(BaseModel):
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int

    @classmethod
    def of(cls, receipt: UsageReceipt) -> Usage:
        """The tokens a receipt charged."""
        used = receipt.prompt_tokens + receipt.completion_tokens
        return cls(
            prompt_tokens=receipt.prompt_tokens,
            completion_tokens=receipt.completion_tokens,
            total_tokens=used,
        )


class InputUsage(BaseModel):
    """The usage of a call that reads texts and writes none (embeddings, classifications)."""

    prompt_tokens: int
    total_tokens: int

    @classmethod
    def of(cls, receipt: UsageReceipt) -> InputUsage:
        """The tokens a receipt charged."""
        return cls(prompt_tokens=receipt.prompt_tokens, total_tokens=receipt.prompt_tokens)


class CairnCharge(BaseModel):
    """What the call cost (Cairn's addition to OpenAI's answer)."""

    receipt: str = Field(..., description="The signed usage receipt: GET /api/v1/receipts/{id}")
    amount: str = Field(..., description="Charged, in the token's smallest unit")
    model_asset: str = Field(..., description="The asset charged: the model, or the app")

    @classmethod
    def of(cls, receipt: UsageReceipt) -> CairnCharge:
        """A receipt as an answer names it."""
        return cls(
            receipt=receipt.receipt_id, amount=receipt.amount, model_asset=str(receipt.model)
        )


# -- /v1/models -----------------------------------------------------------------------------


class ModelCard(BaseModel):
    """A model, priced per 1,000 tokens (prompt and answer alike)."""

    object: Literal["model"] = "model"
    owned_by: str
    id: str = Field(..., description="The asset id: the `model` of a request")
    name: str
    owner: str
    created: int
    family: str = Field(..., description="causal-lm or encoder")
    capabilities: list[str] = Field(..., description="chat, completions, embeddings, ...")
    price_per_1k: str = Field(..., description="Smallest token units per 1,000 tokens")


class AppCard(BaseModel):
    """An app: a chat model with a system prompt and optional retrieval, priced per call."""

    object: Literal["model"] = "model"
    owned_by: str
    id: str = Field(..., description="The app's asset id: the `model` of a chat request")
    name: str
    owner: str
    created: int
    family: Literal["app"] = "app"
    capabilities: list[str]
    price_per_call: str = Field(..., description="Smallest token units per call")
    model: str = Field(..., description="The chat model asset the app wraps")
    retrieval: bool = Field(..., description="Whether passages from a dataset go before a chat")


def card(entry: CatalogueEntry) -> ModelCard | AppCard:
    """A model or an app as /v1/models lists it."""
    if entry.app is not None:
        return AppCard(
            owned_by=entry.owner,
            id=entry.id,
            name=entry.name,
            owner=entry.owner,
            created=entry.created,
            capabilities=list(entry.capabilities),
            price_per_call=str(entry.price.amount),
            model=str(entry.app.model),
            retrieval=entry.app.retrieval is not None,
        )
    return ModelCard(
        owned_by=entry.owner,
        id=entry.id,
        name=entry.name,
        owner=entry.owner,
        created=entry.created,
        family=entry.family,
        capabilities=list(entry.capabilities),
        price_per_1k=str(entry.price.amount),
    )


class ModelList(BaseModel):
    object: Literal["list"] = "list"
    data: list[ModelCard | AppCard]


# -- completions ----------------------------------------------------------------------------


class AssistantMessage(BaseModel):
    role: Literal["assistant"] = "assistant"
    content: str


class ChatChoice(BaseModel):
    index: int
    message: AssistantMessage
    finish_reason: str | None = Field(..., description="stop or length")
    logprobs: None = None


class ChatCompletion(BaseModel):
    id: str
    object: Literal["chat.completion"] = "chat.completion"
    created: int
    model: str = Field(..., description="The model as the request named it")
    choices: list[ChatChoice]
    usage: Usage
    cairn: CairnCharge


class TextChoice(BaseModel):
    index: int
    text: str
    finish_reason: str | None = Field(..., description="stop or length; null until the last")
    logprobs: None = None


class Completion(BaseModel):
    id: str
    object: Literal["text_completion"] = "text_completion"
    created: int
    model: str
    choices: list[TextChoice]
    usage: Usage
    cairn: CairnCharge


class Delta(BaseModel):
    """What a chunk adds: the role in the first, text in the next, nothing in the last."""

    role: Literal["assistant"] | None = None
    content: str | None = None


class ChunkChoice(BaseModel):
    index: int
    delta: Delta
    finish_reason: str | None
    logprobs: None = None


class ChatCompletionChunk(BaseModel):
    """One server-sent event of a streamed chat; with `stream_options.include_usage` the last
    chunk before `[DONE]` has no choices, and carries `usage` and `cairn`."""

    id: str
    object: Literal["chat.completion.chunk"] = "chat.completion.chunk"
    created: int
    model: str
    choices: list[ChunkChoice]
    usage: Usage | None = None
    cairn: CairnCharge | None = None


class CompletionChunk(BaseModel):
    """One server-sent event of a streamed text completion (the usage chunk as for a chat)."""

    id: str
    object: Literal["text_completion"] = "text_completion"
    created: int
    model: str
    choices: list[TextChoice]
    usage: Usage | None = None
    cairn: CairnCharge | None = None


def event_stream(chunk: type[BaseModel]) -> dict[int | str, dict[str, Any]]:
    """The `responses=` of a route that streams `chunk`s as server-sent events when asked to."""
    return {
        200: {
            "description": (
                "The answer; with `stream: true`, server-sent events instead: `data: {chunk}` "
                "lines, then `data: [DONE]`. A backend failure mid-stream ends with "
                '`data: {"error": {"message", "type", "code"}}`.'
            ),
            "content": {"text/event-stream": {"schema": _inlined(chunk)}},
        }
    }


def _inlined(model: type[BaseModel]) -> dict[str, Any]:
    """A model's JSON schema with its nested models written in place (a schema under a media
    type of `responses=` cannot reach `#/$defs`, and only the answer's models are components)."""
    schema = model.model_json_schema(mode="serialization")
    defs = schema.pop("$defs", {})

    def expand(node: Any) -> Any:
        if isinstance(node, dict):
            if "$ref" in node:
                return expand(defs[node["$ref"].rsplit("/", 1)[-1]])
            return {k: expand(v) for k, v in node.items()}
        if isinstance(node, list):
            return [expand(v) for v in node]
        return node

    expanded: dict[str, Any] = expand(schema)
    return expanded


# -- embeddings and classifications ---------------------------------------------------------


class Embedding(BaseModel):
    object: Literal["embedding"] = "embedding"
    index: int
    embedding: list[float] | str = Field(
        ..., description="Floats, or base64 of little-endian float32 with encoding_format=base64"
    )


class EmbeddingList(BaseModel):
    object: Literal["list"] = "list"
    data: list[Embedding]
    model: str
    usage: InputUsage
    cairn: CairnCharge


class Labelled(BaseModel):
    object: Literal["classification"] = "classification"
    index: int
    label: str = Field(..., description="The top label")
    score: float
    scores: dict[str, float] = Field(..., description="Every label's score")


class ClassificationList(BaseModel):
    object: Literal["list"] = "list"
    model: str
    data: list[Labelled]
    usage: InputUsage
    cairn: CairnCharge
