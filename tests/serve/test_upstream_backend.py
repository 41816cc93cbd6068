"""cairn.serve.backends.upstream against a real HTTP server on 127.0.0.1: a small FastAPI app in
this file that speaks the OpenAI wire format (server-sent events included) in front of a
TransformersBackend. Through it, text, usage, stop strings, embeddings and classifications match
the in-process backend, the prompt bound holds until the exact count arrives, and the upstream's
errors come back as Cairn errors with its own message."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from typing import Any

import pytest
import uvicorn
from fastapi import Body, FastAPI, Header, Request
from fastapi.responses import JSONResponse, StreamingResponse

from cairn.chain.anvil import free_port
from cairn.core.errors import (
    CairnError,
    ConfigError,
    InvalidInput,
    NotFound,
    Unauthorized,
    Unavailable,
)
from cairn.serve.backends import Generation, SamplingParams, ServedModel
from cairn.serve.backends.transformers import TransformersBackend
from cairn.serve.backends.upstream import UpstreamBackend, UpstreamGeneration, server_sent_events
from tests.conftest import LiveServer

KEY = "sk-test"
MESSAGES = [{"role": "user", "content": "Name a colour, héllo."}]
PROMPT = "Once upon a time"
SAMPLED = SamplingParams(max_tokens=60, temperature=1.0, seed=7)


def openai_app(local: TransformersBackend, served: dict[str, ServedModel]) -> FastAPI:
    """The OpenAI API's wire format (and Cairn's /classifications) over `local`."""
    app = FastAPI()

    @app.exception_handler(CairnError)
    def cairn_error(request: Request, exc: CairnError) -> JSONResponse:
        body = {"error": {"message": exc.message, "type": exc.title}}
        return JSONResponse(body, status_code=exc.status)

    def model(body: dict[str, Any], authorization: str | None) -> ServedModel:
        if authorization != f"Bearer {KEY}":
            raise Unauthorized("invalid API key")
        name = body["model"]
        if name == "broken":
            raise RuntimeError("the model server crashed")  # a plain 500
        if name not in served:
            raise NotFound(f"The model `{name}` does not exist.")
        return served[name]

    def events(generation: Generation, name: str, chat: bool, usage: bool) -> Iterator[str]:
        def event(choices: list[dict[str, Any]], **extra: Any) -> str:
            kind = "chat.completion.chunk" if chat else "text_completion"
            chunk = {"id": "x", "object": kind, "model": name, "choices": choices, **extra}
            return f"data: {json.dumps(chunk)}\n\n"

        if chat:
            yield event([{"index": 0, "delta": {"role": "assistant"}, "finish_reason": None}])
        for delta in generation:
            piece = {"delta": {"content": delta}} if chat else {"text": delta}
            yield event([{"index": 0, **piece, "finish_reason": None}])
        end = {"delta": {}} if chat else {"text": ""}
        yield event([{"index": 0, **end, "finish_reason": generation.finish_reason}])
        if usage:
            counts = {"prompt_tokens": generation.prompt_tokens}
            counts["completion_tokens"] = generation.completion_tokens
            counts["total_tokens"] = counts["prompt_tokens"] + counts["completion_tokens"]
            yield event([], usage=counts)
        yield "data: [DONE]\n\n"

    def generate(body: dict[str, Any], authorization: str | None, chat: bool) -> Any:
        target = model(body, authorization)
        params = SamplingParams(
            max_tokens=body["max_tokens"],
            temperature=body.get("temperature", 1.0),
            top_p=body.get("top_p", 1.0),
            stop=tuple(body.get("stop", ())),
            seed=body.get("seed"),
        )
        generation = (
            local.chat(target, body["messages"], params)
            if chat
            else local.complete(target, body["prompt"], params)
        )
        usage = bool(body.get("stream_options", {}).get("include_usage"))
        stream = events(generation, body["model"], chat, usage)
        return StreamingResponse(stream, media_type="text/event-stream")

    @app.get("/v1/models")
    def models() -> dict[str, Any]:
        data = [
            {"id": name, "object": "model", "max_model_len": local.context_length(m)}
            for name, m in served.items()
        ]
        return {"object": "list", "data": data}

    @app.post("/v1/chat/completions")
    def chat(body: dict[str, Any] = Body(...), authorization: str | None = Header(None)) -> Any:
        return generate(body, authorization, chat=True)

    @app.post("/v1/completions")
    def completions(
        body: dict[str, Any] = Body(...), authorization: str | None = Header(None)
    ) -> Any:
        return generate(body, authorization, chat=False)

    @app.post("/v1/embeddings")
    def embeddings(
        body: dict[str, Any] = Body(...), authorization: str | None = Header(None)
    ) -> Any:
        vectors, tokens = local.embed(model(body, authorization), body["input"])
        data = [{"object": "embedding", "index": i, "embedding": v} for i, v in enumerate(vectors)]
        return {"object": "list", "data": data[::-1], "usage": {"prompt_tokens": tokens}}

    @app.post("/v1/classifications")
    def classifications(
        body: dict[str, Any] = Body(...), authorization: str | None = Header(None)
    ) -> Any:
        results, tokens = local.classify(model(body, authorization), body["input"])
        data = [
            {"index": i, "label": r.label, "score": r.score, "scores": r.scores}
            for i, r in enumerate(results)
        ]
        return {"object": "list", "data": data, "usage": {"prompt_tokens": tokens}}

    return app


class AppServer(LiveServer):
    """The project's live server (uvicorn on 127.0.0.1 in a thread) around any ASGI app."""

    def __init__(self, app: FastAPI) -> None:  # no node: only the server part of LiveServer
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        config = uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="critical")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)


@pytest.fixture(scope="module")
def local() -> TransformersBackend:
    return TransformersBackend(memory_budget_bytes=1 << 30)


@pytest.fixture(scope="module")
def server(local: TransformersBackend, models: dict[str, ServedModel]) -> Iterator[AppServer]:
    served = {
        name: ServedModel(name, models[kind].folder, models[kind].family)
        for name, kind in [("tiny-chat", "chat"), ("tiny-classifier", "classifier")]
    }
    live = AppServer(openai_app(local, served)).start()
    yield live
    live.stop()


@pytest.fixture
def upstream(server: AppServer) -> Iterator[UpstreamBackend]:
    backend = UpstreamBackend(f"{server.url}/v1", KEY, timeout=30.0)
    yield backend
    backend.close()


REMOTE_CHAT = ServedModel("5", None, "causal-lm", upstream_name="tiny-chat")
REMOTE_CLASSIFIER = ServedModel("7", None, "encoder", upstream_name="tiny-classifier")


def test_chat_streams_the_text_and_usage_of_the_model_in_process(
    upstream: UpstreamBackend, local: TransformersBackend, models: dict[str, ServedModel]
) -> None:
    here = local.chat(models["chat"], MESSAGES, SAMPLED)
    expected = "".join(here)

    remote = upstream.chat(REMOTE_CHAT, MESSAGES, SAMPLED)
    bound = remote.prompt_tokens  # known before the first token
    deltas = list(remote)

    assert "".join(deltas) == expected and len(deltas) > 1
    assert isinstance(remote, UpstreamGeneration)
    assert bound == remote.prompt_tokens_bound >= here.prompt_tokens
    assert remote.usage_exact
    assert (remote.prompt_tokens, remote.completion_tokens, remote.finish_reason) == (
        here.prompt_tokens,
        here.completion_tokens,
        here.finish_reason,
    )


def test_completions_keep_max_tokens_and_stop_strings(
    upstream: UpstreamBackend, local: TransformersBackend, models: dict[str, ServedModel]
) -> None:
    full = "".join(local.complete(models["chat"], PROMPT, SAMPLED))
    stop = full[30:33]
    params = SamplingParams(max_tokens=60, temperature=1.0, seed=7, stop=(stop,))

    whole = upstream.complete(REMOTE_CHAT, PROMPT, SAMPLED)
    assert "".join(whole) == full
    assert (whole.finish_reason, whole.completion_tokens) == ("length", 60)
    assert isinstance(whole, UpstreamGeneration)
    assert whole.prompt_tokens == len(PROMPT) < whole.prompt_tokens_bound == len(PROMPT) + 4

    cut = upstream.complete(REMOTE_CHAT, PROMPT, params)
    assert "".join(cut) == full[: full.find(stop)]
    assert cut.finish_reason == "stop"


def test_embeddings_and_classifications_match_the_model_in_process(
    upstream: UpstreamBackend, local: TransformersBackend, models: dict[str, ServedModel]
) -> None:
    texts = ["first text", "the second, longer text"]

    vectors, tokens = upstream.embed(REMOTE_CLASSIFIER, texts)
    results, classified = upstream.classify(REMOTE_CLASSIFIER, texts)

    assert (vectors, tokens) == local.embed(models["classifier"], texts)  # back in input order
    assert (results, classified) == local.classify(models["classifier"], texts)


def test_the_context_length_comes_from_the_upstream_model_list(upstream: UpstreamBackend) -> None:
    assert upstream.context_length(REMOTE_CHAT) == 1024
    unlisted = ServedModel("9", None, "causal-lm", upstream_name="elsewhere")
    assert upstream.context_length(unlisted) == 4096  # the default


def test_closing_mid_stream_stops_reading(upstream: UpstreamBackend) -> None:
    generation = upstream.complete(REMOTE_CHAT, PROMPT, SamplingParams(max_tokens=500, seed=1))
    stream = iter(generation)
    next(stream)

    generation.close()
    generation.close()

    assert list(stream) == [] and list(generation) == []
    assert generation.finish_reason is None and generation.completion_tokens < 500


def test_upstream_errors_become_cairn_errors_with_the_upstream_message(
    upstream: UpstreamBackend, server: AppServer
) -> None:
    prefix = f"the upstream at {server.url}/v1 answered"
    missing = ServedModel("9", None, "causal-lm", upstream_name="nope")
    with pytest.raises(NotFound) as not_found:
        upstream.chat(missing, MESSAGES, SAMPLED)
    assert not_found.value.message == f"{prefix} 404: The model `nope` does not exist."

    with pytest.raises(InvalidInput) as too_long:
        upstream.complete(REMOTE_CHAT, "x" * 1000, SAMPLED)
    assert too_long.value.message == (
        f"{prefix} 422: model tiny-chat: the prompt (1000 tokens) plus max_tokens (60) is "
        "1060 tokens, over the model's context of 1024 tokens"
    )

    broken = ServedModel("9", None, "causal-lm", upstream_name="broken")
    with pytest.raises(Unavailable, match=f"{prefix} 500: Internal Server Error"):
        upstream.complete(broken, PROMPT, SAMPLED)

    wrong_key = UpstreamBackend(f"{server.url}/v1", "sk-wrong", timeout=30.0)
    with pytest.raises(ConfigError, match="401: invalid API key"):
        wrong_key.complete(REMOTE_CHAT, PROMPT, SAMPLED)


def test_an_upstream_without_classifications_or_without_a_server_is_explained(
    server: AppServer,
) -> None:
    bare = UpstreamBackend(f"{server.url}/elsewhere/v1", KEY, timeout=30.0)
    with pytest.raises(InvalidInput, match="has no /classifications endpoint"):
        bare.classify(REMOTE_CLASSIFIER, ["a"])

    nobody = UpstreamBackend(f"http://127.0.0.1:{free_port()}/v1", KEY, timeout=5.0)
    with pytest.raises(Unavailable, match="did not answer"):
        nobody.complete(REMOTE_CHAT, PROMPT, SAMPLED)


def test_a_causal_model_upstream_still_refuses_embeddings(upstream: UpstreamBackend) -> None:
    with pytest.raises(InvalidInput, match="it serves chat and completions, not embeddings"):
        upstream.embed(REMOTE_CHAT, ["a"])


@pytest.mark.parametrize(
    ("lines", "events"),
    [
        (["data: a", "", "data: b", ""], ["a", "b"]),
        ([": keep-alive", "data:x", "", ""], ["x"]),  # comments; no space after the colon
        (["event: message", "id: 3", "data: one", "data: two", ""], ["one\ntwo"]),
        (["data: [DONE]"], ["[DONE]"]),  # a last event without its blank line
    ],
)
def test_server_sent_events_are_read_as_the_standard_frames_them(
    lines: list[str], events: list[str]
) -> None:
    assert list(server_sent_events(lines)) == events
