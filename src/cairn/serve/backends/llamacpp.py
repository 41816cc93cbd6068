"""GGUF models through llama.cpp (the optional `llama-cpp-python` package).

Quantised GGUF files run several times faster than float32 PyTorch on a CPU, which is what most
provider machines have. Install with `pip install 'cairn[llamacpp]'`; without the package the
backend refuses to start with a `ConfigError` saying so (it is imported only here).

Semantics match `TransformersBackend`: a chat prompt is the GGUF's own chat template
(`tokenizer.chat_template` in its metadata, rendered as llama-cpp-python renders it) or, when it
has none, `plain_chat_prompt`; tokens come from `Llama.generate` (top-k and min-p off, no repeat
penalty, so temperature and top_p mean what they mean in the OpenAI API), decoded and cut at
stop strings by `token_deltas`; `seed` seeds llama.cpp's sampler. Causal models serve chat and
completions; encoder GGUFs (opened with `embedding=True`) serve embeddings, L2-normalised.

A llama.cpp context holds one sequence's KV cache, so each model runs one generation at a time:
its lock is held from the first token to the last (or to `close`). A gateway must close a
generation whose client went away, or the model waits until the generation is collected.
Models stay loaded under a memory budget counted in GGUF file bytes (`ResidentModels`).
"""

from __future__ import annotations

import contextlib
import importlib
import random
import threading
from collections.abc import Generator, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cairn.core.errors import ConfigError, InvalidInput, NotFound
from cairn.serve.backends.base import (
    Backend,
    Classification,
    Generation,
    SamplingParams,
    ServedModel,
    check_context,
    check_messages,
    check_texts,
    plain_chat_prompt,
)
from cairn.serve.backends.deltas import token_deltas
from cairn.serve.backends.resident import ResidentModels

INSTALL = "pip install 'cairn[llamacpp]'"
DEFAULT_BUDGET_BYTES = 8 << 30  # GGUF bytes kept open; llama.cpp maps files, so the OS can page
# GGUF metadata keys of end-of-turn tokens besides the end-of-sequence one
END_TOKEN_KEYS = ("tokenizer.ggml.eot_token_id", "tokenizer.ggml.eom_token_id")


def import_llama_cpp() -> Any:
    """The `llama_cpp` module, or a `ConfigError` that says how to install it."""
    try:
        return importlib.import_module("llama_cpp")
    except ImportError as exc:
        raise ConfigError(
            f"the llama.cpp backend needs the llama-cpp-python package: {INSTALL}"
        ) from exc


@dataclass
class _Gguf:
    """One opened GGUF file and the lock its single sequence takes."""

    llm: Any  # llama_cpp.Llama
    bytes: int
    ends: set[int]
    lock: threading.Lock = field(default_factory=threading.Lock)

    def decode(self, tokens: Sequence[int]) -> str:
        return bytes(self.llm.detokenize(list(tokens))).decode("utf-8", errors="replace")


class LlamaCppBackend(Backend):
    """GGUF files served by llama.cpp, loaded on first use and kept under a memory budget."""

    name = "llama.cpp"

    def __init__(
        self,
        memory_budget_bytes: int = DEFAULT_BUDGET_BYTES,
        *,
        n_ctx: int = 4096,  # the context each model is opened with; 0 = the model's own
        n_threads: int | None = None,  # None: llama.cpp's default (half the cores)
        n_gpu_layers: int = 0,  # layers offloaded to a GPU when llama.cpp was built with one
    ) -> None:
        self.llama_cpp = import_llama_cpp()
        self.n_ctx, self.n_threads, self.n_gpu_layers = n_ctx, n_threads, n_gpu_layers
        self.resident: ResidentModels[_Gguf] = ResidentModels(
            memory_budget_bytes, size_of=lambda g: g.bytes
        )

    def capabilities(self, model: ServedModel) -> set[str]:
        """causal-lm: chat and completions; encoder: embeddings."""
        return {"chat", "completions"} if model.family == "causal-lm" else {"embeddings"}

    def chat(
        self, model: ServedModel, messages: list[dict[str, str]], params: SamplingParams
    ) -> Generation:
        """Start a chat completion over the GGUF's chat template (or `plain_chat_prompt`)."""
        self.require(model, "chat")
        check_messages(messages)
        gguf = self._gguf(model)
        template = gguf.llm.metadata.get("tokenizer.chat_template")
        if template:
            formats = importlib.import_module("llama_cpp.llama_chat_format")
            formatter = formats.Jinja2ChatFormatter(
                template=template,
                eos_token=_token_text(gguf.llm, gguf.llm.token_eos()),
                bos_token=_token_text(gguf.llm, gguf.llm.token_bos()),
            )
            prompt = formatter(messages=messages).prompt
            # the template writes its own BOS; special tokens in it are tokens, not text
            ids = gguf.llm.tokenize(prompt.encode(), add_bos=False, special=True)
        else:
            ids = gguf.llm.tokenize(plain_chat_prompt(messages).encode(), add_bos=True)
        return self._generation(model, gguf, list(ids), params)

    def complete(self, model: ServedModel, prompt: str, params: SamplingParams) -> Generation:
        """Start a text completion of `prompt` (after the model's BOS)."""
        self.require(model, "completions")
        gguf = self._gguf(model)
        ids = list(gguf.llm.tokenize(prompt.encode(), add_bos=True))  # the vocabulary only: no lock
        if not ids:
            raise InvalidInput(f"model {model.id}: the prompt is empty")
        return self._generation(model, gguf, ids, params)

    def embed(self, model: ServedModel, texts: list[str]) -> tuple[list[list[float]], int]:
        """llama.cpp's pooled embeddings, L2-normalised, truncated to the context."""
        self.require(model, "embeddings")
        check_texts(texts)
        gguf = self._gguf(model)
        with gguf.lock:
            vectors, tokens = gguf.llm.embed(
                texts, normalize=True, truncate=True, return_count=True
            )
        return [[float(x) for x in v] for v in vectors], int(tokens)

    def classify(self, model: ServedModel, texts: list[str]) -> tuple[list[Classification], int]:
        """Not served: llama.cpp has no classification heads."""
        self.require(model, "classifications")  # refuses, naming what the model serves
        raise InvalidInput(f"model {model.id}: the llama.cpp backend serves no classifications")

    def context_length(self, model: ServedModel) -> int:
        """The context the model was opened with."""
        return int(self._gguf(model).llm.n_ctx())

    def count_tokens(self, model: ServedModel, text: str) -> int:
        """Tokens of `text` alone, without a BOS."""
        return len(self._gguf(model).llm.tokenize(text.encode(), add_bos=False))

    def _gguf(self, model: ServedModel) -> _Gguf:
        if model.gguf is None:
            raise ConfigError(
                f"model {model.id} has no GGUF file: the llama.cpp backend serves GGUF"
            )
        path = model.gguf.resolve()
        if not path.is_file():
            raise NotFound(f"model {model.id}: no GGUF file at {path}")
        return self.resident.get(path, lambda: self._open(model, path), f"model {model.id}")

    def _open(self, model: ServedModel, path: Path) -> _Gguf:
        try:
            llm = self.llama_cpp.Llama(
                model_path=str(path),
                n_ctx=self.n_ctx,
                n_threads=self.n_threads,
                n_gpu_layers=self.n_gpu_layers,
                embedding=model.family == "encoder",
                verbose=False,
            )
        except (ValueError, RuntimeError) as exc:
            raise ConfigError(f"model {model.id}: llama.cpp cannot open {path}: {exc}") from exc
        ends = {int(llm.token_eos())}
        ends |= {int(llm.metadata[k]) for k in END_TOKEN_KEYS if k in llm.metadata}
        ends.discard(-1)
        return _Gguf(llm=llm, bytes=path.stat().st_size, ends=ends)

    def _generation(
        self, model: ServedModel, gguf: _Gguf, ids: list[int], params: SamplingParams
    ) -> LlamaCppGeneration:
        check_context(model, len(ids), params.max_tokens, int(gguf.llm.n_ctx()))
        return LlamaCppGeneration(gguf, ids, params)


class LlamaCppGeneration(Generation):
    """Tokens from `Llama.generate`, one generation per model at a time."""

    def __init__(self, gguf: _Gguf, prompt: list[int], params: SamplingParams) -> None:
        self.prompt_tokens = len(prompt)
        self.completion_tokens = 0
        self.finish_reason: str | None = None
        self._gguf, self._prompt, self._params = gguf, prompt, params
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
            # in another thread's hands it raises ValueError, and stops at the next token
            with contextlib.suppress(ValueError):
                self._iterator.close()  # releases the model's lock

    def _deltas(self) -> Generator[str, None, None]:
        gguf, params = self._gguf, self._params
        with gguf.lock:
            seed = params.seed if params.seed is not None else random.randrange(2**31)
            gguf.llm.set_seed(seed)
            tokens = gguf.llm.generate(
                self._prompt,
                top_k=0,
                top_p=params.top_p,
                min_p=0.0,
                temp=params.temperature,
                repeat_penalty=1.0,
            )
            try:
                yield from token_deltas(
                    self, self._until_closed(tokens), gguf.ends, gguf.decode, params
                )
            finally:
                tokens.close()

    def _until_closed(self, tokens: Iterator[int]) -> Iterator[int]:
        for token in tokens:
            if self._closed:
                return
            yield int(token)


def _token_text(llm: Any, token: int) -> str:
    """A special token's text (the chat template writes BOS and EOS as text)."""
    if token < 0:
        return ""
    return bytes(llm.detokenize([token], special=True)).decode("utf-8", errors="ignore")
