"""Models served by another server that speaks the OpenAI API: vLLM, another Cairn node, OpenAI.

Chat and completions are always streamed (`stream=True` with
`stream_options={"include_usage": True}`) and read as server-sent events, so deltas reach the
client as the upstream produces them. The model is named upstream as
`ServedModel.upstream_name`, or its id when it has none. Embeddings go to `/embeddings`;
classifications to `/classifications`, Cairn's own extension (request `{"model", "input"}`,
answer `{"data": [{"index", "label", "score", "scores"}], "usage": {"prompt_tokens"}}`), which
other servers lack.

Token counts. The upstream tells the prompt's token count only in its last event, but the
gateway needs it before generating (to hold the caller's balance). So a generation reports an
upper bound up front, `prompt_tokens_bound`: the UTF-8 bytes of the prompt text, since a
byte-level BPE token is at least one byte, plus a few tokens for the special tokens a tokenizer
adds (`SPECIAL_TOKENS`) and, for chat, for the template around each message
(`TEMPLATE_TOKENS_PER_MESSAGE`, `TEMPLATE_TOKENS`; generous for ChatML, Llama 3 and the like,
default system prompts included). `prompt_tokens` starts at that bound and becomes the
upstream's exact count when its usage arrives (`usage_exact` says which). Until then
`completion_tokens` counts the text events (one per token on vLLM and OpenAI).
`count_tokens` is the same byte bound: the OpenAI API has no tokenizer endpoint.

Errors become Cairn errors carrying the upstream's own message: 404 `NotFound`; 401 and 403
`ConfigError` (this node's key for the upstream is wrong, nothing the caller can fix); 402 (this
node's own balance there ran out), 408, 429, 5xx, a refused connection or a broken stream
`Unavailable`; any other 4xx `InvalidInput`.
"""

from __future__ import annotations

import json
from collections.abc import Generator, Iterable, Iterator
from typing import Any

import httpx

from cairn.core.errors import CairnError, ConfigError, InvalidInput, NotFound, Unavailable
from cairn.serve.backends.base import (
    Backend,
    Classification,
    Generation,
    SamplingParams,
    ServedModel,
    check_messages,
    check_texts,
)
from cairn.serve.backends.deltas import StopStrings

SPECIAL_TOKENS = 4  # a BOS, an EOS, a SentencePiece prefix space: tokens worth no prompt bytes
TEMPLATE_TOKENS_PER_MESSAGE = 8  # e.g. "<|im_start|>", "\n", "<|im_end|>", "\n" around each
TEMPLATE_TOKENS = 64  # the generation prompt and a template's own default system message
DEFAULT_CONTEXT_LENGTH = 4096  # for an upstream whose /models does not state one
CONTEXT_FIELDS = ("max_model_len", "context_length", "context_window")  # vLLM, others


class UpstreamBackend(Backend):
    """Relays requests to a server speaking the OpenAI API at `base_url` (e.g. ".../v1")."""

    name = "upstream"

    def __init__(
        self,
        base_url: str,
        api_key: str | None,
        timeout: float,
        *,
        default_context_length: int = DEFAULT_CONTEXT_LENGTH,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self.client = httpx.Client(base_url=self.base_url + "/", headers=headers, timeout=timeout)
        self.default_context_length = default_context_length
        self._contexts: dict[str, int] = {}

    def close(self) -> None:
        """Close the connection pool."""
        self.client.close()

    def capabilities(self, model: ServedModel) -> set[str]:
        """By family: what an upstream serving such a model offers (it has the last word)."""
        if model.family == "causal-lm":
            return {"chat", "completions"}
        return {"embeddings", "classifications"}

    def chat(
        self, model: ServedModel, messages: list[dict[str, str]], params: SamplingParams
    ) -> Generation:
        """Open the upstream's chat stream now (its errors raise here); read it on iteration."""
        self.require(model, "chat")
        check_messages(messages)
        bound = TEMPLATE_TOKENS + sum(
            len(m["role"].encode()) + len(m["content"].encode()) + TEMPLATE_TOKENS_PER_MESSAGE
            for m in messages
        )
        payload = {"messages": messages, **self._sampling(model, params)}
        return UpstreamGeneration(self._stream("chat/completions", payload), bound, params, "chat")

    def complete(self, model: ServedModel, prompt: str, params: SamplingParams) -> Generation:
        """Open the upstream's completion stream now; read it on iteration."""
        self.require(model, "completions")
        bound = len(prompt.encode()) + SPECIAL_TOKENS
        payload = {"prompt": prompt, **self._sampling(model, params)}
        return UpstreamGeneration(self._stream("completions", payload), bound, params, "text")

    def embed(self, model: ServedModel, texts: list[str]) -> tuple[list[list[float]], int]:
        """The upstream's embeddings, in input order, and its prompt token count."""
        self.require(model, "embeddings")
        check_texts(texts)
        body = self._post(
            "embeddings",
            {"model": _name(model), "input": texts, "encoding_format": "float"},
        )
        rows = sorted(body["data"], key=lambda row: row["index"])
        return [[float(x) for x in row["embedding"]] for row in rows], _prompt_usage(body)

    def classify(self, model: ServedModel, texts: list[str]) -> tuple[list[Classification], int]:
        """The upstream's classifications (Cairn's `/classifications`), in input order."""
        self.require(model, "classifications")
        check_texts(texts)
        try:
            body = self._post("classifications", {"model": _name(model), "input": texts})
        except NotFound as exc:
            if exc.message.endswith(": Not Found"):  # the route, not the model, is missing
                raise InvalidInput(
                    f"the upstream at {self.base_url} has no /classifications endpoint "
                    f"(a Cairn extension): model {model.id} cannot classify through it"
                ) from exc
            raise
        rows = sorted(body["data"], key=lambda row: row["index"])
        results = [
            Classification(
                label=str(row["label"]),
                score=float(row["score"]),
                scores={str(k): float(v) for k, v in row["scores"].items()},
            )
            for row in rows
        ]
        return results, _prompt_usage(body)

    def context_length(self, model: ServedModel) -> int:
        """What the upstream's /models says (`max_model_len` on vLLM), else the default."""
        name = _name(model)
        if name not in self._contexts:
            try:
                response = self.client.get("models")
            except httpx.HTTPError as exc:
                raise Unavailable(f"the upstream at {self.base_url} did not answer: {exc}") from exc
            if response.status_code >= 400:
                raise _error(response, self.base_url)
            listed = {str(m.get("id")): m for m in response.json().get("data", [])}
            facts = listed.get(name, {})
            found = [int(facts[f]) for f in CONTEXT_FIELDS if facts.get(f)]
            self._contexts[name] = found[0] if found else self.default_context_length
        return self._contexts[name]

    def count_tokens(self, model: ServedModel, text: str) -> int:
        """An upper bound: the UTF-8 bytes of `text` (the OpenAI API cannot count tokens)."""
        return len(text.encode())

    # --- requests -----------------------------------------------------------------------------

    # A request body in OpenAI's format, sent to the upstream as it is: a dict by design.
    def _sampling(self, model: ServedModel, params: SamplingParams) -> dict[str, Any]:
        payload: dict[str, Any] = {
            "model": _name(model),
            "max_tokens": params.max_tokens,
            "temperature": params.temperature,
            "top_p": params.top_p,
            "stream": True,
            "stream_options": {"include_usage": True},
        }
        if params.stop:
            payload["stop"] = list(params.stop)
        if params.seed is not None:
            payload["seed"] = params.seed
        return payload

    def _stream(self, path: str, payload: dict[str, Any]) -> httpx.Response:
        request = self.client.build_request("POST", path, json=payload)
        try:
            response = self.client.send(request, stream=True)
        except httpx.HTTPError as exc:
            raise Unavailable(f"the upstream at {self.base_url} did not answer: {exc}") from exc
        if response.status_code >= 400:
            try:
                response.read()
            finally:
                response.close()
            raise _error(response, self.base_url)
        return response

    # The upstream's answer: OpenAI's JSON body, read by the caller for the fields it needs.
    def _post(self, path: str, payload: dict[str, Any]) -> dict[str, Any]:
        try:
            response = self.client.post(path, json=payload)
        except httpx.HTTPError as exc:
            raise Unavailable(f"the upstream at {self.base_url} did not answer: {exc}") from exc
        if response.status_code >= 400:
            raise _error(response, self.base_url)
        body: dict[str, Any] = response.json()
        return body


class UpstreamGeneration(Generation):
    """An upstream's event stream as text deltas; usage exact once the upstream reports it."""

    def __init__(
        self, response: httpx.Response, prompt_bound: int, params: SamplingParams, kind: str
    ) -> None:
        self.prompt_tokens_bound = prompt_bound  # known before generating; >= the exact count
        self.prompt_tokens = prompt_bound  # the exact count once `usage_exact`
        self.completion_tokens = 0
        self.usage_exact = False
        self.finish_reason: str | None = None
        self._response, self._params, self._kind = response, params, kind  # kind: chat or text
        self._closed = False
        self._iterator: Generator[str, None, None] | None = None

    def __iter__(self) -> Iterator[str]:
        if self._iterator is not None or self._closed:
            return iter(())
        self._iterator = self._deltas()
        return self._iterator

    def close(self) -> None:
        self._closed = True
        if self._iterator is not None:
            try:
                self._iterator.close()
            except ValueError:
                return  # running in another thread: it stops at the next event
        self._response.close()

    def _deltas(self) -> Generator[str, None, None]:
        # The stop strings go upstream too; cutting here as well keeps the promise that they
        # never appear even if an upstream ignores them. After a cut the stream is still read
        # (not sent) for the upstream's usage: the upstream counts what it generated.
        stops = StopStrings(self._params.stop)
        finish: str | None = None
        url = str(self._response.url)
        try:
            for data in server_sent_events(self._response.iter_lines()):
                if self._closed:
                    return
                if data.strip() == "[DONE]":
                    break
                event = _event(data, url)
                if event.get("usage"):
                    self.prompt_tokens = int(event["usage"]["prompt_tokens"])
                    self.completion_tokens = int(event["usage"]["completion_tokens"])
                    self.usage_exact = True
                for choice in event.get("choices") or []:
                    text = _choice_text(choice, self._kind)
                    if text and not self.usage_exact:
                        self.completion_tokens += 1
                    if text and not stops.stopped:
                        delta = stops.feed(text)
                        if delta:
                            yield delta
                    finish = choice.get("finish_reason") or finish
        except httpx.HTTPError as exc:
            raise Unavailable(f"the upstream stream from {url} broke off: {exc}") from exc
        finally:
            self._response.close()
        if finish is None and not stops.stopped:
            raise Unavailable(f"the upstream stream from {url} ended without a finish reason")
        tail = stops.flush()
        if tail:
            yield tail
        self.finish_reason = "length" if finish == "length" and not stops.stopped else "stop"


def server_sent_events(lines: Iterable[str]) -> Iterator[str]:
    """The data of each event in a `text/event-stream`: data lines joined by newlines.

    Comments (":...") and other fields (event, id, retry) are skipped; an event ends at a blank
    line. A last event not followed by a blank line is still delivered.
    """
    data: list[str] = []
    for line in lines:
        if not line:
            if data:
                yield "\n".join(data)
            data = []
            continue
        if line.startswith(":"):
            continue
        name, _, value = line.partition(":")
        if name == "data":
            data.append(value[1:] if value.startswith(" ") else value)
    if data:
        yield "\n".join(data)


def _name(model: ServedModel) -> str:
    return model.upstream_name or model.id


def _choice_text(choice: dict[str, Any], kind: str) -> str:
    if kind == "chat":
        return str((choice.get("delta") or {}).get("content") or "")
    return str(choice.get("text") or "")


# One server-sent event of an upstream stream: an OpenAI chunk, read for its text and usage.
def _event(data: str, url: str) -> dict[str, Any]:
    try:
        event = json.loads(data)
    except json.JSONDecodeError as exc:
        raise Unavailable(
            f"the upstream at {url} sent an event that is not JSON: {data[:200]!r}"
        ) from exc
    if not isinstance(event, dict):
        raise Unavailable(
            f"the upstream at {url} sent an event that is not an object: {data[:200]!r}"
        )
    if event.get("error"):
        raise Unavailable(f"the upstream at {url} failed mid-stream: {_message(event)}")
    return event


def _prompt_usage(body: dict[str, Any]) -> int:
    return int((body.get("usage") or {}).get("prompt_tokens", 0))


def _message(body: Any) -> str:
    """The human part of an error body: OpenAI's error.message, FastAPI's detail, or the text."""
    if isinstance(body, dict):
        error = body.get("error")
        if isinstance(error, dict) and error.get("message"):
            return str(error["message"])
        if isinstance(error, str):
            return error
        detail = body.get("detail", body.get("message"))
        if isinstance(detail, str):
            return detail
        if detail is not None:
            return json.dumps(detail)
    return str(body)


def _error(response: httpx.Response, base_url: str) -> CairnError:
    status = response.status_code
    try:
        message = _message(response.json())
    except (json.JSONDecodeError, UnicodeDecodeError):
        message = response.text[:500] or response.reason_phrase
    text = f"the upstream at {base_url} answered {status}: {message}"
    if status == 404:
        return NotFound(text)
    if status in (401, 403):
        return ConfigError(f"{text} (check the API key this node uses for it)")
    if status in (402, 408, 429) or status >= 500:  # 402: this node's upstream balance ran out
        return Unavailable(text)
    return InvalidInput(text)
