"""The OpenAI-compatible API under /v1: models, chat and text completions, embeddings, and
classifications (Cairn's own addition). Authenticate with `Authorization: Bearer <API key>`.

Errors on these routes have OpenAI's shape, `{"error": {"message", "type", "param", "code"}}`,
so OpenAI clients report them as usual; HTTP 402 means the prepaid balance is too low.
"""

from __future__ import annotations

import base64
import json
import time
import uuid
from collections.abc import Iterator
from typing import Annotated, Any, Literal

import numpy as np
from fastapi import APIRouter, Depends, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field

from cairn.api.deps import NodeDep
from cairn.core.errors import CairnError, InvalidInput, Unauthorized
from cairn.economy.keys import ApiKey
from cairn.economy.receipts import UsageReceipt
from cairn.serve.gateway import Metered

router = APIRouter(prefix="/v1", tags=["openai"])


def api_key(node: NodeDep, request: Request) -> ApiKey:
    """The API key in the `Authorization: Bearer` header."""
    header = request.headers.get("authorization", "")
    scheme, _, secret = header.partition(" ")
    if scheme.lower() != "bearer" or not secret.strip():
        raise Unauthorized(
            "send your API key as 'Authorization: Bearer <key>'; create one with `cairn key create`"
        )
    return node.economy.keys.authenticate(secret.strip())


KeyDep = Annotated[ApiKey, Depends(api_key)]


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


def _texts(value: str | list[str]) -> list[str]:
    texts = [value] if isinstance(value, str) else value
    if not texts or len(texts) > 2048:
        raise InvalidInput("input must be a string or a list of 1-2048 strings")
    return texts


def _usage(prompt: int, completion: int) -> dict[str, int]:
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
    }


def _cairn(receipt: UsageReceipt) -> dict[str, str]:
    return {
        "receipt": receipt.receipt_id,
        "amount": receipt.amount,
        "model_asset": str(receipt.model),
    }


@router.get("/models")
def list_models(node: NodeDep, _: KeyDep) -> dict[str, Any]:
    """Models this node serves, with their capabilities and price per 1,000 tokens."""
    data = [{"object": "model", "owned_by": m["owner"], **m} for m in node.gateway.models()]
    return {"object": "list", "data": data}


@router.get("/models/{model}")
def get_model(node: NodeDep, _: KeyDep, model: str) -> dict[str, Any]:
    """One model."""
    served = node.gateway.resolve(model)
    for m in node.gateway.models():
        if m["id"] == str(served.asset.asset_id):
            return {"object": "model", "owned_by": m["owner"], **m}
    raise InvalidInput(f"model {model!r} is not served here")


def _start(node: Any, key: ApiKey, body: Sampling, **work: Any) -> Metered:
    return node.gateway.generate(
        key,
        body.model,
        max_tokens=body.limit(),
        temperature=body.temperature,
        top_p=body.top_p,
        stop=body.stops(),
        seed=body.seed,
        **work,
    )


def _sse(payload: dict[str, Any]) -> str:
    return f"data: {json.dumps(payload, separators=(',', ':'))}\n\n"


class MeteredStream(StreamingResponse):
    """Server-sent events whose charge is settled however the response ends: Starlette does
    not close a body iterator whose client went away, so the charge is settled here."""

    def __init__(self, content: Iterator[str], metered: Metered) -> None:
        super().__init__(content, media_type="text/event-stream")
        self.metered = metered

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            await run_in_threadpool(self.metered.finish)


def _stream(metered: Metered, body: Sampling, frame: Any) -> Iterator[str]:
    """Server-sent events: deltas, the finishing chunk, usage if asked, then [DONE]; a backend
    failure mid-stream ends with an error event, as OpenAI's API does."""
    try:
        yield _sse(frame(first=True, delta="", finish=None))
        for delta in metered:
            if delta:
                yield _sse(frame(first=False, delta=delta, finish=None))
    except CairnError as exc:
        yield _sse({"error": {"message": exc.message, "type": "server_error", "code": None}})
        return
    try:
        receipt = metered.finish()
        assert receipt is not None
        yield _sse(frame(first=False, delta=None, finish=metered.generation.finish_reason))
        if body.stream_options and body.stream_options.include_usage:
            usage = _usage(receipt.prompt_tokens, receipt.completion_tokens)
            yield _sse(
                {
                    **frame(first=False, delta=None, finish=None, empty=True),
                    "usage": usage,
                    "cairn": _cairn(receipt),
                }
            )
        yield "data: [DONE]\n\n"
    finally:
        metered.finish()  # a client that went away pays for what was generated


def _answer(
    metered: Metered, body: Sampling, frame: Any, ident: str, created: int, kind: str, field: str
) -> JSONResponse | StreamingResponse:
    """The streamed answer, or the whole one with usage: `field` is message (chat) or text."""
    if body.stream:
        return MeteredStream(_stream(metered, body, frame), metered)
    text = "".join(metered)
    receipt = metered.finish()
    assert receipt is not None  # a failed generation raised above
    content: Any = {"role": "assistant", "content": text} if field == "message" else text
    choice = {
        "index": 0,
        field: content,
        "finish_reason": metered.generation.finish_reason,
        "logprobs": None,
    }
    return JSONResponse(
        {
            "id": ident,
            "object": kind,
            "created": created,
            "model": body.model,
            "choices": [choice],
            "usage": _usage(receipt.prompt_tokens, receipt.completion_tokens),
            "cairn": _cairn(receipt),
        }
    )


@router.post("/chat/completions", response_model=None)
def chat_completions(
    node: NodeDep, key: KeyDep, body: ChatRequest
) -> JSONResponse | StreamingResponse:
    """Chat with a model (streamed as server-sent events when `stream` is true)."""
    messages = [{"role": m.role, "content": m.text()} for m in body.messages]
    metered = _start(node, key, body, messages=messages)
    ident, created = f"chatcmpl-{uuid.uuid4().hex}", int(time.time())

    def frame(
        *, first: bool, delta: str | None, finish: str | None, empty: bool = False
    ) -> dict[str, Any]:
        choice: dict[str, Any] = {
            "index": 0,
            "delta": {},
            "finish_reason": finish,
            "logprobs": None,
        }
        if first:
            choice["delta"] = {"role": "assistant", "content": ""}
        elif delta is not None:
            choice["delta"] = {"content": delta}
        return {
            "id": ident,
            "object": "chat.completion.chunk",
            "created": created,
            "model": body.model,
            "choices": [] if empty else [choice],
        }

    return _answer(metered, body, frame, ident, created, "chat.completion", "message")


@router.post("/completions", response_model=None)
def completions(
    node: NodeDep, key: KeyDep, body: CompletionRequest
) -> JSONResponse | StreamingResponse:
    """Continue a text prompt (streamed when `stream` is true)."""
    prompts = _texts(body.prompt)
    if len(prompts) != 1:
        raise InvalidInput("prompt must be one string: Cairn completes one prompt per request")
    metered = _start(node, key, body, prompt=prompts[0])
    ident, created = f"cmpl-{uuid.uuid4().hex}", int(time.time())

    def frame(
        *, first: bool, delta: str | None, finish: str | None, empty: bool = False
    ) -> dict[str, Any]:
        choice = {"index": 0, "text": delta or "", "finish_reason": finish, "logprobs": None}
        return {
            "id": ident,
            "object": "text_completion",
            "created": created,
            "model": body.model,
            "choices": [] if empty else [choice],
        }

    return _answer(metered, body, frame, ident, created, "text_completion", "text")


@router.post("/embeddings")
def embeddings(node: NodeDep, key: KeyDep, body: EmbeddingRequest) -> dict[str, Any]:
    """Embed texts with an encoder model (floats, or base64 little-endian float32)."""
    vectors, receipt = node.gateway.embed(key, body.model, _texts(body.input))
    data = []
    for i, vector in enumerate(vectors):
        if body.encoding_format == "base64":
            packed = np.asarray(vector, dtype="<f4").tobytes()
            embedding: Any = base64.b64encode(packed).decode()
        else:
            embedding = vector
        data.append({"object": "embedding", "index": i, "embedding": embedding})
    return {
        "object": "list",
        "data": data,
        "model": body.model,
        "usage": {"prompt_tokens": receipt.prompt_tokens, "total_tokens": receipt.prompt_tokens},
        "cairn": _cairn(receipt),
    }


@router.post("/classifications")
def classifications(node: NodeDep, key: KeyDep, body: ClassificationRequest) -> dict[str, Any]:
    """Label texts with a classifier model: the top label, its score, and every label's score."""
    results, receipt = node.gateway.classify(key, body.model, _texts(body.input))
    return {
        "object": "list",
        "model": body.model,
        "data": [
            {
                "object": "classification",
                "index": i,
                "label": r.label,
                "score": r.score,
                "scores": r.scores,
            }
            for i, r in enumerate(results)
        ],
        "usage": {"prompt_tokens": receipt.prompt_tokens, "total_tokens": receipt.prompt_tokens},
        "cairn": _cairn(receipt),
    }
