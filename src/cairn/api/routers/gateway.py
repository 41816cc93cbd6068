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
from collections.abc import Callable, Iterator
from typing import Annotated, Any

import numpy as np
from fastapi import APIRouter, Depends, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import StreamingResponse

from cairn.api.deps import EconomyDep, GatewayDep
from cairn.api.gateway_schemas import (
    AppCard,
    AssistantMessage,
    CairnCharge,
    ChatChoice,
    ChatCompletion,
    ChatCompletionChunk,
    ChatRequest,
    ClassificationList,
    ClassificationRequest,
    Completion,
    CompletionChunk,
    CompletionRequest,
    Embedding,
    EmbeddingList,
    EmbeddingRequest,
    InputUsage,
    Labelled,
    ModelCard,
    ModelList,
    Sampling,
    TextChoice,
    Usage,
    card,
    event_stream,
)
from cairn.core.errors import CairnError, InvalidInput, Unauthorized
from cairn.economy.keys import ApiKey
from cairn.serve.gateway import Gateway
from cairn.serve.metered import Metered

router = APIRouter(prefix="/v1", tags=["openai"])


def api_key(economy: EconomyDep, request: Request) -> ApiKey:
    """The API key in the `Authorization: Bearer` header."""
    header = request.headers.get("authorization", "")
    scheme, _, secret = header.partition(" ")
    if scheme.lower() != "bearer" or not secret.strip():
        raise Unauthorized(
            "send your API key as 'Authorization: Bearer <key>'; create one with `cairn key create`"
        )
    return economy.keys.authenticate(secret.strip())


KeyDep = Annotated[ApiKey, Depends(api_key)]
# A chunk of a stream: OpenAI's JSON, built as a dict so its bytes stay what clients have read
# (the models in gateway_schemas describe it; the tests hold the chunks to them).
Frame = Callable[..., dict[str, Any]]


def _texts(value: str | list[str]) -> list[str]:
    texts = [value] if isinstance(value, str) else value
    if not texts or len(texts) > 2048:
        raise InvalidInput("input must be a string or a list of 1-2048 strings")
    return texts


@router.get("/models", response_model=ModelList)
def list_models(gateway: GatewayDep, _: KeyDep) -> ModelList:
    """Models this node serves, with their capabilities and price per 1,000 tokens."""
    return ModelList(data=[card(entry) for entry in gateway.models()])


@router.get("/models/{model}", response_model=ModelCard | AppCard)
def get_model(gateway: GatewayDep, _: KeyDep, model: str) -> ModelCard | AppCard:
    """One model."""
    return card(gateway.model(model))


def _start(gateway: Gateway, key: ApiKey, body: Sampling, **work: Any) -> Metered:
    return gateway.generate(
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


def _stream(metered: Metered, body: Sampling, frame: Frame) -> Iterator[str]:
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
        if body.wants_usage():
            yield _sse(
                {
                    **frame(first=False, delta=None, finish=None, empty=True),
                    "usage": Usage.of(receipt).model_dump(),
                    "cairn": CairnCharge.of(receipt).model_dump(),
                }
            )
        yield "data: [DONE]\n\n"
    finally:
        metered.finish()  # a client that went away pays for what was generated


@router.post(
    "/chat/completions",
    response_model=ChatCompletion,
    responses=event_stream(ChatCompletionChunk),
)
def chat_completions(
    gateway: GatewayDep, key: KeyDep, body: ChatRequest
) -> ChatCompletion | MeteredStream:
    """Chat with a model (streamed as server-sent events when `stream` is true)."""
    messages = [{"role": m.role, "content": m.text()} for m in body.messages]
    metered = _start(gateway, key, body, messages=messages)
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

    if body.stream:
        return MeteredStream(_stream(metered, body, frame), metered)
    text, receipt = metered.text()
    choice = ChatChoice(
        index=0,
        message=AssistantMessage(content=text),
        finish_reason=metered.generation.finish_reason,
    )
    return ChatCompletion(
        id=ident,
        created=created,
        model=body.model,
        choices=[choice],
        usage=Usage.of(receipt),
        cairn=CairnCharge.of(receipt),
    )


@router.post("/completions", response_model=Completion, responses=event_stream(CompletionChunk))
def completions(
    gateway: GatewayDep, key: KeyDep, body: CompletionRequest
) -> Completion | MeteredStream:
    """Continue a text prompt (streamed when `stream` is true)."""
    prompts = _texts(body.prompt)
    if len(prompts) != 1:
        raise InvalidInput("prompt must be one string: Cairn completes one prompt per request")
    metered = _start(gateway, key, body, prompt=prompts[0])
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

    if body.stream:
        return MeteredStream(_stream(metered, body, frame), metered)
    text, receipt = metered.text()
    choice = TextChoice(index=0, text=text, finish_reason=metered.generation.finish_reason)
    return Completion(
        id=ident,
        created=created,
        model=body.model,
        choices=[choice],
        usage=Usage.of(receipt),
        cairn=CairnCharge.of(receipt),
    )


@router.post("/embeddings", response_model=EmbeddingList)
def embeddings(gateway: GatewayDep, key: KeyDep, body: EmbeddingRequest) -> EmbeddingList:
    """Embed texts with an encoder model (floats, or base64 little-endian float32)."""
    vectors, receipt = gateway.embed(key, body.model, _texts(body.input))
    data = []
    for i, vector in enumerate(vectors):
        if body.encoding_format == "base64":
            packed = np.asarray(vector, dtype="<f4").tobytes()
            embedding: list[float] | str = base64.b64encode(packed).decode()
        else:
            embedding = vector
        data.append(Embedding(index=i, embedding=embedding))
    return EmbeddingList(
        data=data, model=body.model, usage=InputUsage.of(receipt), cairn=CairnCharge.of(receipt)
    )


@router.post("/classifications", response_model=ClassificationList)
def classifications(
    gateway: GatewayDep, key: KeyDep, body: ClassificationRequest
) -> ClassificationList:
    """Label texts with a classifier model: the top label, its score, and every label's score."""
    results, receipt = gateway.classify(key, body.model, _texts(body.input))
    return ClassificationList(
        model=body.model,
        data=[
            Labelled(index=i, label=r.label, score=r.score, scores=r.scores)
            for i, r in enumerate(results)
        ],
        usage=InputUsage.of(receipt),
        cairn=CairnCharge.of(receipt),
    )
