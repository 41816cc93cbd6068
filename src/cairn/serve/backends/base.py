"""What the gateway asks of a model backend, and the values that cross that line.

A backend serves models described by `ServedModel`: it generates text (`chat`, `complete`),
embeds texts and classifies them. The gateway resolves a request to a `ServedModel`, checks the
caller's balance against `Generation.prompt_tokens` and `SamplingParams.max_tokens`, streams the
`Generation`'s deltas, and meters `prompt_tokens` and `completion_tokens` when it is done.

One backend per way of running a model: `TransformersBackend` (in process, the default),
`LlamaCppBackend` (GGUF files, an optional extra), `UpstreamBackend` (any server speaking the
OpenAI API). Each raises the Cairn error family: `InvalidInput` for a request the model cannot
serve, `NotFound` for a missing model, `ConfigError` for a backend set up wrong, `Unavailable`
for an upstream that does not answer.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from cairn.core.errors import InvalidInput

if TYPE_CHECKING:  # torch: loaded with a model, not with the gateway
    from cairn.verify.inference import InferenceVerdict, Transcript

FAMILIES = ("causal-lm", "encoder")
# every operation a backend may offer, in the order messages list them
OPERATIONS = ("chat", "completions", "embeddings", "classifications")
MAX_TEMPERATURE = 2.0  # the OpenAI API's bound
# The chat prompt for a model whose tokenizer has no chat template: one "role: content" line
# per message, then "assistant:" for the model to continue.
PLAIN_CHAT_LINE = "{role}: {content}\n"
PLAIN_CHAT_PROMPT = "assistant:"
# An encoder reads each text between special tokens ([CLS] ... [SEP]): a backend that cannot
# count them exactly allows this many per text, so that what it holds covers what it reports.
FRAME_TOKENS = 4


@dataclass(frozen=True)
class ServedModel:
    """What a backend needs to serve one model."""

    id: str  # the id clients send as `model` (e.g. "5")
    folder: Path | None  # a local Hugging Face folder (transformers backend)
    family: str  # "causal-lm" or "encoder"
    gguf: Path | None = None  # a GGUF file (llama.cpp backend)
    upstream_name: str | None = None  # the model name at an upstream server (default: id)
    # a LoRA model: its peft adapter folder, served over `folder` (its base), which stays
    # loaded once for every adapter over it (transformers backend)
    adapter: Path | None = None

    def __post_init__(self) -> None:
        if self.family not in FAMILIES:
            raise InvalidInput(
                f"model {self.id}: family must be one of {', '.join(FAMILIES)}; got {self.family!r}"
            )


@dataclass(frozen=True)
class SamplingParams:
    """How to draw tokens: the OpenAI request's sampling fields, already validated."""

    max_tokens: int  # resolved by the caller: > 0
    temperature: float = 1.0  # 0 = greedy; at most 2 as in the OpenAI API
    top_p: float = 1.0  # nucleus: sample from the smallest set of tokens with this much mass
    stop: tuple[str, ...] = ()  # the output ends before the first of these (never included)
    seed: int | None = None  # same seed and params, same text (on the same backend and device)

    def __post_init__(self) -> None:
        if self.max_tokens < 1:
            raise InvalidInput(f"max_tokens must be at least 1; got {self.max_tokens}")
        if not (0.0 <= self.temperature <= MAX_TEMPERATURE) or math.isnan(self.temperature):
            raise InvalidInput(
                f"temperature must be between 0 and {MAX_TEMPERATURE:g}; got {self.temperature}"
            )
        if not (0.0 <= self.top_p <= 1.0) or math.isnan(self.top_p):
            raise InvalidInput(f"top_p must be between 0 and 1; got {self.top_p}")
        if any(not s for s in self.stop):
            raise InvalidInput("stop strings must not be empty")


@dataclass(frozen=True)
class Classification:
    """One text's class: the top label, its probability, and every label's probability."""

    label: str
    score: float
    scores: dict[str, float]


class Generation(ABC):
    """One running generation: prompt tokens known before any token is generated.

    Iterate it once for the text deltas (stop strings never appear in them). `completion_tokens`
    grows as tokens are produced; `finish_reason` is None until the generation ends by itself,
    then "stop" (end of sequence or a stop string) or "length" (max_tokens reached). A
    generation closed early keeps `finish_reason` None. Call `close` when the client goes away;
    it is safe to call twice and after the end.
    """

    prompt_tokens: int
    completion_tokens: int
    finish_reason: str | None

    @abstractmethod
    def __iter__(self) -> Iterator[str]:
        """The text deltas, produced lazily; a second iteration yields nothing."""

    @abstractmethod
    def close(self) -> None:
        """Stop generating and free what the generation holds."""

    def transcript(self) -> Transcript | None:
        """The token ids and the commitment to the model's states behind them, for the receipt
        (`cairn.verify.inference`); None from a backend that does not commit (an upstream)."""
        return None


class Backend(ABC):
    """Runs models: generation, embeddings and classification behind one interface."""

    name: str

    @abstractmethod
    def capabilities(self, model: ServedModel) -> set[str]:
        """The operations this backend serves for `model`: a subset of `OPERATIONS`."""

    @abstractmethod
    def chat(
        self, model: ServedModel, messages: list[dict[str, str]], params: SamplingParams
    ) -> Generation:
        """Start a chat completion: the prompt is tokenized now, tokens come on iteration."""

    @abstractmethod
    def complete(self, model: ServedModel, prompt: str, params: SamplingParams) -> Generation:
        """Start a text completion: the prompt is tokenized now, tokens come on iteration."""

    @abstractmethod
    def embed(self, model: ServedModel, texts: list[str]) -> tuple[list[list[float]], int]:
        """One vector per text, and the prompt tokens read."""

    @abstractmethod
    def classify(self, model: ServedModel, texts: list[str]) -> tuple[list[Classification], int]:
        """One classification per text, and the prompt tokens read."""

    def verify(self, model: ServedModel, transcript: Transcript) -> InferenceVerdict:
        """Replay a generation's transcript on `model` and check its commitment."""
        raise InvalidInput(f"the {self.name} backend does not replay generations")

    @abstractmethod
    def context_length(self, model: ServedModel) -> int:
        """The most tokens the model reads at once: prompt plus completion."""

    @abstractmethod
    def count_tokens(self, model: ServedModel, text: str) -> int:
        """How many tokens `text` is for `model` (without the special tokens a prompt adds)."""

    def input_tokens(self, model: ServedModel, texts: list[str]) -> int:
        """The tokens `embed` and `classify` will report reading for `texts`: what the gateway
        holds before the call. This default is an upper bound (each text's tokens and room for
        its special tokens); a backend that can count exactly says so by overriding it."""
        return sum(self.count_tokens(model, text) + FRAME_TOKENS for text in texts)

    def require(self, model: ServedModel, operation: str) -> None:
        """Raise `InvalidInput` unless this backend serves `operation` for `model`."""
        served = self.capabilities(model)
        if operation in served:
            return
        offered = [op for op in OPERATIONS if op in served]
        what = " and ".join(offered) if offered else "nothing"
        article = "an" if model.family[0] in "aeiou" else "a"
        raise InvalidInput(
            f"model {model.id} is {article} {model.family} model: it serves {what}, not {operation}"
        )


def check_messages(messages: list[dict[str, str]]) -> None:
    """Raise `InvalidInput` unless `messages` is a non-empty list of role/content strings."""
    if not messages:
        raise InvalidInput("messages must hold at least one message")
    for i, message in enumerate(messages):
        role, content = message.get("role"), message.get("content")
        if not isinstance(role, str) or not role or not isinstance(content, str):
            raise InvalidInput(
                f"message {i}: needs a 'role' and a 'content', both strings; got {message!r}"
            )


def plain_chat_prompt(messages: list[dict[str, str]]) -> str:
    """The documented chat format for a model without a chat template."""
    lines = [PLAIN_CHAT_LINE.format(role=m["role"], content=m["content"]) for m in messages]
    return "".join(lines) + PLAIN_CHAT_PROMPT


def check_texts(texts: list[str]) -> None:
    """Raise `InvalidInput` unless `texts` is a non-empty list of strings."""
    if not texts:
        raise InvalidInput("input must hold at least one text")
    for i, text in enumerate(texts):
        if not isinstance(text, str):
            raise InvalidInput(f"input {i}: must be a string; got {type(text).__name__}")


def check_context(model: ServedModel, prompt_tokens: int, max_tokens: int, context: int) -> None:
    """Raise `InvalidInput` when the prompt, or the prompt plus max_tokens, exceeds the context."""
    if prompt_tokens > context:
        raise InvalidInput(
            f"model {model.id}: the prompt is {prompt_tokens} tokens, "
            f"over the model's context of {context} tokens"
        )
    if prompt_tokens + max_tokens > context:
        raise InvalidInput(
            f"model {model.id}: the prompt ({prompt_tokens} tokens) plus max_tokens "
            f"({max_tokens}) is {prompt_tokens + max_tokens} tokens, over the model's context "
            f"of {context} tokens"
        )
