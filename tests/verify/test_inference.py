"""Commitments to a served model's hidden states: the encoding round-trips and refuses what it
did not write; the check passes rounding and fails a changed state; a generation served by the
transformers backend verifies on its model, alone or batched, cut by a stop string or not, and
fails on another checkpoint, a quantised copy, the base instead of its fine-tune, or another
prompt."""

from __future__ import annotations

import base64
import copy
import threading

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from cairn.serve.backends import Generation, SamplingParams, ServedModel
from cairn.serve.backends.transformers import TransformersBackend
from cairn.train.tiny import tiny_causal_lm
from cairn.verify.inference import (
    CHUNK,
    TOLERANCE,
    TOP_K,
    Commitment,
    Committer,
    Transcript,
    check,
    commit,
)
from tests.serve.conftest import save

SAMPLED = SamplingParams(max_tokens=70, temperature=1.0, seed=3)


def states(tokens: int, width: int, seed: int = 0) -> torch.Tensor:
    return torch.randn(tokens, width, generator=torch.Generator().manual_seed(seed))


# --- the encoding and the check ---------------------------------------------------------------


@settings(max_examples=60, deadline=None)
@given(tokens=st.integers(1, 3 * CHUNK + 5), width=st.integers(1, 40), seed=st.integers(0, 99))
def test_a_commitment_encodes_and_decodes_exactly(tokens: int, width: int, seed: int) -> None:
    commitment = commit(states(tokens, width, seed))
    assert commitment.tokens == tokens
    assert Commitment.decode(commitment.encode()) == commitment
    assert check(commitment, states(tokens, width, seed)).ok


def test_a_chunk_of_32_tokens_takes_258_bytes() -> None:
    encoded = commit(states(4 * CHUNK, 576)).encode()
    raw = base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4))
    assert len(raw) == 5 + 4 * (2 + TOP_K * 8)  # a header, then each chunk's head and entries


@pytest.mark.parametrize(
    "text",
    [
        "",
        "not base64 !",
        base64.urlsafe_b64encode(b"\x02\x10\x00\x00\x00").decode(),  # version 2
        commit(states(40, 8)).encode()[:-6],  # cut short
    ],
)
def test_a_malformed_commitment_is_refused(text: str) -> None:
    with pytest.raises(ValueError):
        Commitment.decode(text)


def test_a_commitment_naming_a_place_outside_its_chunk_or_one_twice_is_refused() -> None:
    good = commit(states(3, 4))
    chunk = good.chunks[0]
    for places in [(12, *chunk.places[1:]), (chunk.places[0], *chunk.places[:-1])]:
        bad = Commitment(4, (type(chunk)(3, places, chunk.values),))
        with pytest.raises(ValueError, match="outside it, or one twice"):
            Commitment.decode(bad.encode())


def test_the_check_passes_rounding_and_fails_a_changed_state() -> None:
    honest = states(100, 64)
    commitment = commit(honest)
    rounded = honest * (1 + 1e-6 * torch.randn(honest.shape, generator=torch.Generator()))
    assert check(commitment, rounded).ok
    scaled = honest.clone()
    scaled[70:] *= 1 + 10 * TOLERANCE  # the third chunk only
    verdict = check(commitment, scaled)
    assert not verdict.ok and verdict.chunk == 2 and "chunk 2" in verdict.reason
    assert not check(commitment, honest[:99]).ok  # a token fewer
    assert not check(commitment, torch.zeros(100, 64)).ok
    assert not check(commitment, states(100, 64, seed=1)).ok


def test_the_committer_commits_exactly_the_tokens_read() -> None:
    honest = states(150, 16)
    committer = Committer(lag=20)
    for start in range(0, 150, 7):  # rows come a few at a time
        committer.add(honest[start : start + 7])
    for read in (130, 141, 150):  # a reader at most `lag` tokens behind
        assert committer.commit(read) == commit(honest[:read])
    with pytest.raises(ValueError, match="needs the first 100"):
        committer.commit(100)  # those rows were committed in chunks already
    assert Committer(lag=4).commit(0) is None


# --- served by the transformers backend ---------------------------------------------------------


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> dict[str, ServedModel]:
    """chat: a tiny Llama; other: another checkpoint of its shape; int8: the chat model's
    weights rounded to 8 bits per output row; tuned: LoRA adapters over the chat model."""
    from cairn.train.adapter_folder import AdapterBase
    from cairn.train.adapters import LoraSettings, add_lora, save_adapter

    root = tmp_path_factory.mktemp("inference")
    model, tokenizer = tiny_causal_lm(seed=0, hidden_size=32, layers=2, heads=2)
    other, _ = tiny_causal_lm(seed=1, hidden_size=32, layers=2, heads=2)
    rounded = copy.deepcopy(model)
    with torch.no_grad():
        for module in rounded.modules():
            if isinstance(module, torch.nn.Linear):
                scale = module.weight.abs().amax(dim=1, keepdim=True).clamp_min(1e-12) / 127
                module.weight.copy_((module.weight / scale).round() * scale)
    tuned = add_lora(
        copy.deepcopy(model), LoraSettings(rank=4, alpha=8, dropout=0.0, target_modules=("q_proj",))
    )
    with torch.no_grad():
        for name, param in tuned.named_parameters():
            if "lora_B" in name:  # a fine-tune that moved its adapters a little
                param.copy_(0.02 * torch.randn(param.shape, generator=torch.Generator()))
    folders = {
        "chat": save(model, tokenizer, root / "chat"),
        "other": save(other, tokenizer, root / "other"),
        "int8": save(rounded, tokenizer, root / "int8"),
    }
    save_adapter(tuned, tokenizer, root / "tuned", AdapterBase(1, "bafkreibase"))
    models = {name: ServedModel(name, folder, "causal-lm") for name, folder in folders.items()}
    models["tuned"] = ServedModel("tuned", folders["chat"], "causal-lm", adapter=root / "tuned")
    return models


@pytest.fixture(scope="module")
def backend() -> TransformersBackend:
    return TransformersBackend(memory_budget_bytes=1 << 30)


def transcript(generation: Generation) -> Transcript:
    "".join(generation)
    made = generation.transcript()
    assert made is not None
    assert len(made.completion) == generation.completion_tokens
    assert len(made.prompt) == generation.prompt_tokens
    return made


def test_a_generation_verifies_on_its_model_and_not_on_another_checkpoint_or_a_quantised_copy(
    backend: TransformersBackend, served: dict[str, ServedModel]
) -> None:
    honest = transcript(backend.complete(served["chat"], "Once upon a time", SAMPLED))
    verdict = backend.verify(served["chat"], honest)
    assert verdict.ok and verdict.relative <= TOLERANCE / 10, verdict
    for substitute in ("other", "int8"):  # served by the substitute, advertised as chat
        cheap = transcript(backend.complete(served[substitute], "Once upon a time", SAMPLED))
        assert not backend.verify(served["chat"], cheap).ok, substitute


def test_the_base_served_instead_of_its_fine_tune_is_caught(
    backend: TransformersBackend, served: dict[str, ServedModel]
) -> None:
    tuned = transcript(backend.chat(served["tuned"], [{"role": "user", "content": "Hi"}], SAMPLED))
    assert backend.verify(served["tuned"], tuned).ok
    base = transcript(backend.chat(served["chat"], [{"role": "user", "content": "Hi"}], SAMPLED))
    verdict = backend.verify(served["tuned"], base)
    assert not verdict.ok and "differ" in verdict.reason


def test_another_prompt_is_caught(
    backend: TransformersBackend, served: dict[str, ServedModel]
) -> None:
    honest = transcript(backend.complete(served["chat"], "Once upon a time", SAMPLED))
    swapped = Transcript(
        (honest.prompt[0] + 1, *honest.prompt[1:]), honest.completion, honest.commitment
    )
    assert not backend.verify(served["chat"], swapped).ok


def test_generations_batched_together_and_cut_by_stop_strings_each_verify(
    backend: TransformersBackend, served: dict[str, ServedModel]
) -> None:
    prompts = ["Once", "upon a time there was", "a", "tiny model that spoke"] * 2
    params = [
        SamplingParams(max_tokens=40 + 9 * i, temperature=1.0, seed=i, stop=("e",) if i % 3 else ())
        for i in range(len(prompts))
    ]
    generations = [
        backend.complete(served["chat"], p, q) for p, q in zip(prompts, params, strict=True)
    ]
    made: list[Transcript | None] = [None] * len(generations)

    def read(i: int) -> None:
        made[i] = transcript(generations[i])

    threads = [threading.Thread(target=read, args=(i,)) for i in range(len(generations))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for one in made:
        assert one is not None
        assert backend.verify(served["chat"], one).ok


def test_a_transcript_without_tokens_is_refused(
    backend: TransformersBackend, served: dict[str, ServedModel]
) -> None:
    from cairn.core.errors import InvalidInput

    honest = transcript(backend.complete(served["chat"], "Once upon a time", SAMPLED))
    with pytest.raises(InvalidInput, match="at least one"):
        backend.verify(served["chat"], Transcript((), honest.completion, honest.commitment))


@pytest.mark.parametrize("kind", ["llama", "qwen3", "mistral-windowed"])
def test_each_runner_path_commits_what_a_one_pass_replay_reads(kind: str) -> None:
    """Ragged batches (llama, qwen3) and sequences decoded alone with transformers' cache (a
    sliding window): the states committed are those a one-pass read gives."""
    from cairn.serve.backends.batching import BatchedGeneration, BatchedSequence, BatchEngine
    from cairn.serve.backends.transformers import CausalLMRunner
    from tests.serve.test_batching import CPU, tiny_model

    runner = CausalLMRunner(tiny_model(kind), CPU)
    engine = BatchEngine(runner, "tiny")
    prompts = [[5, 9, 17], [40, 41, 42, 43, 44, 45] * 4, [11]]
    generations = [
        BatchedGeneration(
            engine,
            BatchedSequence(
                prompt,
                SamplingParams(max_tokens=45, temperature=1.0, seed=i),
                set(),  # no end token: every sequence runs to max_tokens
                CPU,
                None,
                True,
            ),
            lambda tokens: "".join(chr(97 + t % 26) for t in tokens),
        )
        for i, prompt in enumerate(prompts)
    ]
    threads = [threading.Thread(target=lambda g=g: "".join(g)) for g in generations]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for generation, prompt in zip(generations, prompts, strict=True):
        made = generation.transcript()
        assert made is not None and len(made.completion) > CHUNK  # more than one chunk
        replayed = runner.replay([*prompt, *made.completion[:-1]], None)[len(prompt) - 1 :]
        verdict = check(made.commitment, replayed)
        assert verdict.ok and verdict.relative <= TOLERANCE / 10, verdict
