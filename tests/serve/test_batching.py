"""cairn.serve.backends.batching with the transformers runner: sequences that join a running batch
at different steps get exactly the token ids they get decoding alone (and that transformers'
`generate` gets), greedy or seeded, on every architecture the ragged attention stands in for and
on one it does not; each ends at its own max_tokens or stop string; closing one frees its slot
for a waiting one while the others go on; a reader that stops reading holds back only itself;
the loop thread sleeps without work, ends when idle and when its model is evicted."""

from __future__ import annotations

import gc
import threading
import time
from pathlib import Path

import pytest
import torch
from transformers import (
    AutoModelForCausalLM,
    LlamaConfig,
    MistralConfig,
    PretrainedConfig,
    PreTrainedModel,
    Qwen2Config,
    Qwen3Config,
)

from cairn.core.errors import Unavailable
from cairn.serve.backends import SamplingParams, ServedModel, batching
from cairn.serve.backends.batching import BatchedGeneration, BatchedSequence, BatchEngine
from cairn.serve.backends.transformers import CausalLMRunner, TransformersBackend
from tests.serve.test_transformers_backend import PROMPT

CPU = torch.device("cpu")
VOCAB = 96
END = 3  # the tiny models' end token
GREEDY = SamplingParams(max_tokens=40, temperature=0.0)
# prompts of 1 to 37 tokens, the longest joining when others have decoded three tokens
PROMPTS = [[5], [9, 17, 33, 2, 71], [40 + i % 50 for i in range(37)], [11, 12], [60, 7, 7, 60]]
JOINS = [0, 0, 3, 9, 20]  # the decoding step at which each prompt is submitted


def tiny_config(kind: str) -> PretrainedConfig:
    """Two layers, four query heads over two key heads (grouped-query attention)."""
    fields = {
        "vocab_size": VOCAB,
        "hidden_size": 64,
        "intermediate_size": 128,
        "num_hidden_layers": 2,
        "num_attention_heads": 4,
        "num_key_value_heads": 2,
        "max_position_embeddings": 256,
        "eos_token_id": END,
        "pad_token_id": 0,
        "tie_word_embeddings": False,
    }
    configs = {
        "llama": lambda: LlamaConfig(**fields),
        "mistral": lambda: MistralConfig(**fields, sliding_window=None),
        "mistral-windowed": lambda: MistralConfig(**fields, sliding_window=16),
        "qwen2": lambda: Qwen2Config(**fields),
        "qwen3": lambda: Qwen3Config(**fields, head_dim=16),
    }
    return configs[kind]()


def tiny_model(kind: str, seed: int = 0) -> PreTrainedModel:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return AutoModelForCausalLM.from_config(tiny_config(kind)).eval()


class Scheduled:
    """The real runner, recording each decoding step's rows and submitting sequences on cue."""

    def __init__(self, runner: CausalLMRunner) -> None:
        self.runner = runner
        self.engine: BatchEngine | None = None
        self.rows: list[int] = []  # sequences per decoding step
        self.cues: dict[int, list[BatchedSequence]] = {}  # step -> sequences to submit then
        self.lock = threading.Lock()

    def prefill(self, sequence: BatchedSequence) -> torch.Tensor:
        return self.runner.prefill(sequence)

    def decode(self, sequences: list[BatchedSequence]) -> torch.Tensor:
        self.rows.append(len(sequences))
        with self.lock:
            self.submit(self.cues.pop(len(self.rows), []))
        return self.runner.decode(sequences)

    def states(self, n: int) -> torch.Tensor:
        return self.runner.states(n)

    def flush(self) -> None:
        """Submit the sequences whose cue never came (all before them had ended)."""
        with self.lock:
            self.submit([one for step in sorted(self.cues) for one in self.cues.pop(step)])

    def submit(self, sequences: list[BatchedSequence]) -> None:
        assert self.engine is not None
        for sequence in sequences:
            self.engine.submit(sequence)


def sequence(
    prompt: list[int], params: SamplingParams = GREEDY, ends: frozenset[int] = frozenset({END})
) -> BatchedSequence:
    return BatchedSequence(prompt, params, set(ends), CPU)


ENDLESS = SamplingParams(max_tokens=200, temperature=0.0)  # with no end token: all 200 come


def alone(
    engine: BatchEngine,
    prompt: list[int],
    params: SamplingParams = GREEDY,
    ends: frozenset[int] = frozenset({END}),
) -> list[int]:
    """The token ids of one sequence with nothing else running."""
    one = sequence(prompt, params, ends)
    engine.submit(one)
    return list(engine.tokens(one))


def together(
    kind: str, prompts: list[list[int]], params: list[SamplingParams], joins: list[int]
) -> tuple[list[list[int]], list[int]]:
    """Each prompt's token ids when each joins at its step; and the rows of every step."""
    scheduled = Scheduled(CausalLMRunner(tiny_model(kind), CPU))
    engine = scheduled.engine = BatchEngine(scheduled, "tiny")
    sequences = [sequence(p, q) for p, q in zip(prompts, params, strict=True)]
    for one, step in zip(sequences, joins, strict=True):
        if step == 0:
            engine.submit(one)
        else:
            scheduled.cues.setdefault(step, []).append(one)
    ids = []
    for one in sequences:  # at most 40 tokens each: none waits for its reader
        if one.ready is None:
            scheduled.flush()
        ids.append(list(engine.tokens(one)))
    return ids, scheduled.rows


def generate(kind: str, prompt: list[int], max_tokens: int) -> list[int]:
    """transformers' own greedy decoding, on an untouched copy of the same weights."""
    model = tiny_model(kind)
    ids = torch.tensor([prompt])
    with torch.inference_mode():
        out = model.generate(ids, do_sample=False, max_new_tokens=max_tokens, pad_token_id=0)
    return [int(t) for t in out[0, ids.shape[1] :]]


# --- exactness ----------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["llama", "mistral", "qwen2", "qwen3", "mistral-windowed"])
def test_sequences_joining_a_batch_get_the_token_ids_they_get_alone(kind: str) -> None:
    runner = CausalLMRunner(tiny_model(kind), CPU)
    engine = BatchEngine(runner, "tiny")
    expected = [alone(engine, prompt) for prompt in PROMPTS]

    ids, rows = together(kind, PROMPTS, [GREEDY] * len(PROMPTS), JOINS)

    assert ids == expected
    assert [generate(kind, p, GREEDY.max_tokens) for p in PROMPTS] == expected
    assert runner.ragged == (kind != "mistral-windowed")  # a sliding window decodes alone
    assert max(rows) >= 4  # they did decode together


@pytest.mark.parametrize("kernel", ["onednn", "mkl"])
def test_a_sequences_logits_are_bitwise_the_same_in_any_batch(
    kernel: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # a 1536-wide MLP: MKL on one to three rows, oneDNN on one, sums its rows in another order
    if kernel == "mkl":
        monkeypatch.setattr(torch.backends.mkldnn, "is_available", lambda: False)
    config = tiny_config("llama")
    config.intermediate_size = 1536
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        runner = CausalLMRunner(AutoModelForCausalLM.from_config(config).eval(), CPU)
    packed = any(type(m).__name__ == "PackedLinear" for m in runner.module.modules())
    assert packed == (kernel == "onednn")

    def logits(batches: list[list[int]]) -> list[torch.Tensor]:
        """Prefill every prompt, then one decoding step per batch (indices into PROMPTS)."""
        sequences = [sequence(prompt) for prompt in PROMPTS]
        rows: dict[int, torch.Tensor] = {}
        with torch.inference_mode():
            for one in sequences:
                one.last = int(runner.prefill(one).argmax())
            for batch in batches:
                for i, row in zip(batch, runner.decode([sequences[i] for i in batch]), strict=True):
                    rows[i] = row
        return [rows[i] for i in range(len(PROMPTS))]

    alone = logits([[i] for i in range(len(PROMPTS))])
    for batches in ([[0, 1, 2, 3, 4]], [[4, 2], [0, 3, 1]], [[1, 0, 2], [3], [4]]):
        assert all(map(torch.equal, logits(batches), alone)), batches


def test_the_packaged_smollm2_batched_gives_the_token_ids_it_gives_alone(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    from cairn.train.base_models import find
    from cairn.train.weights import base_model_folder

    folder = base_model_folder(find("SmolLM2-135M-Instruct"), tmp_path_factory.mktemp("smol"))
    backend = TransformersBackend(memory_budget_bytes=1 << 31)
    model = ServedModel("1", folder, "causal-lm")
    params = SamplingParams(max_tokens=10, temperature=0.0)
    prompts = ["Hi", "Name three colours of the rainbow, in order.", "Write a poem about the sea."]

    def ids(prompt: str) -> list[int]:
        generation = backend.complete(model, prompt, params)
        "".join(generation)
        assert isinstance(generation, BatchedGeneration)
        return generation.token_ids

    expected = [ids(prompt) for prompt in prompts]
    got: dict[int, list[int]] = {}
    threads = [
        threading.Thread(target=lambda i=i: got.update({i: ids(prompts[i])})) for i in range(3)
    ]
    for i, thread in enumerate(threads):
        thread.start()
        time.sleep(0.1 * i)  # the later ones join a running batch
    for thread in threads:
        thread.join(timeout=60)

    assert [got[i] for i in range(3)] == expected
    assert max(len(one) for one in expected) == params.max_tokens


def test_a_seed_samples_the_same_tokens_whatever_decodes_beside_it() -> None:
    seeded = [SamplingParams(max_tokens=30, temperature=1.0, top_p=0.9, seed=s) for s in (1, 2)]
    engine = BatchEngine(CausalLMRunner(tiny_model("llama"), CPU), "tiny")
    expected = [alone(engine, PROMPTS[1], params) for params in seeded]

    mixed, _ = together(
        "llama", [PROMPTS[1], PROMPTS[2], PROMPTS[1]], [seeded[0], GREEDY, seeded[1]], [0, 0, 5]
    )

    assert [mixed[0], mixed[2]] == expected and expected[0] != expected[1]


# --- each sequence ends on its own ----------------------------------------------------------------


def test_max_tokens_and_stop_strings_end_each_generation_on_its_own(
    models: dict[str, ServedModel],
) -> None:
    backend = TransformersBackend(memory_budget_bytes=1 << 30)
    sampled = SamplingParams(max_tokens=60, temperature=1.0, seed=7)
    full = "".join(backend.complete(models["chat"], PROMPT, sampled))
    stop = full[30:33]
    requests = {
        "short": SamplingParams(max_tokens=5, temperature=1.0, seed=7),
        "stopped": SamplingParams(max_tokens=60, temperature=1.0, seed=7, stop=(stop,)),
        "long": sampled,
    }
    results: dict[str, tuple[str, str | None, int]] = {}

    def run(name: str) -> None:
        generation = backend.complete(models["chat"], PROMPT, requests[name])
        text = "".join(generation)
        results[name] = (text, generation.finish_reason, generation.completion_tokens)

    threads = [threading.Thread(target=run, args=(name,)) for name in requests]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    cut = full.find(stop)
    assert results["short"] == (full[:5], "length", 5)
    assert results["stopped"] == (full[:cut], "stop", cut + len(stop))
    assert results["long"] == (full, "length", 60)


# --- leaving the batch ----------------------------------------------------------------------------


def test_closing_a_generation_frees_its_slot_for_a_waiting_one_and_the_others_go_on(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(batching, "MAX_BATCH", 2)
    engine = BatchEngine(CausalLMRunner(tiny_model("llama"), CPU), "tiny")
    expected = [alone(engine, PROMPTS[i], ENDLESS, frozenset()) for i in (1, 2)]
    first, second, third = (sequence(PROMPTS[i], ENDLESS, frozenset()) for i in (0, 1, 2))
    for one in (first, second, third):
        engine.submit(one)
    stream = engine.tokens(first)
    taken = [next(stream) for _ in range(3)]
    assert third.length == 0  # no slot yet: two are decoding

    engine.cancel(first)

    assert list(stream) == [] and len(taken) == 3
    assert list(engine.tokens(second)) == expected[0]
    assert list(engine.tokens(third)) == expected[1]  # it joined when the first left
    assert first.cache is None and first.produced < ENDLESS.max_tokens


def test_a_reader_that_stops_reading_holds_back_only_itself() -> None:
    engine = BatchEngine(CausalLMRunner(tiny_model("llama"), CPU), "tiny", reader_patience_s=0.5)
    expected = alone(engine, PROMPTS[2], ENDLESS, frozenset())
    idle, busy = (sequence(PROMPTS[i], ENDLESS, frozenset()) for i in (1, 2))
    engine.submit(idle)
    engine.submit(busy)

    assert list(engine.tokens(busy)) == expected  # while the other's reader reads nothing
    assert idle.produced == batching.STREAM_BUFFER  # it stopped at a full buffer
    time.sleep(0.8)
    with pytest.raises(Unavailable, match=r"its reader took no token for 0\.5 s"):
        list(engine.tokens(idle))  # the buffered tokens, then the error
    assert idle.cache is None


def test_a_failing_forward_pass_ends_its_sequences_with_the_error() -> None:
    class Failing(CausalLMRunner):
        def decode(self, sequences: list[BatchedSequence]) -> torch.Tensor:
            raise RuntimeError("out of memory")

    engine = BatchEngine(Failing(tiny_model("llama"), CPU), "tiny")
    one = sequence(PROMPTS[0], ends=frozenset())
    engine.submit(one)

    with pytest.raises(RuntimeError, match="out of memory"):
        list(engine.tokens(one))  # the prefill's token, then the error


# --- the loop thread ------------------------------------------------------------------------------


def cpu_ticks(thread: threading.Thread) -> int:
    """User plus system clock ticks the thread has run (Linux)."""
    stat = Path(f"/proc/self/task/{thread.native_id}/stat").read_text()
    fields = stat.rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])


@pytest.mark.skipif(not Path("/proc/self/task").exists(), reason="reads /proc")
def test_the_loop_thread_sleeps_without_work_and_ends_when_idle() -> None:
    engine = BatchEngine(CausalLMRunner(tiny_model("llama"), CPU), "tiny", idle_seconds=1.0)
    alone(engine, PROMPTS[1])
    thread = engine.thread
    assert thread is not None and thread.is_alive()

    before = cpu_ticks(thread)
    time.sleep(0.5)
    assert cpu_ticks(thread) - before <= 1  # blocked on its condition, not polling
    thread.join(timeout=5)
    assert not thread.is_alive() and engine.thread is None

    assert alone(engine, PROMPTS[1])  # a new sequence starts a new thread
    assert engine.thread is not None and engine.thread is not thread


def test_an_evicted_model_ends_its_loop_thread(models: dict[str, ServedModel]) -> None:
    probe = TransformersBackend(memory_budget_bytes=1 << 30)
    "".join(probe.complete(models["chat"], PROMPT, GREEDY))
    backend = TransformersBackend(memory_budget_bytes=probe.resident.total_bytes() + 1)
    del probe
    "".join(backend.complete(models["chat"], PROMPT, GREEDY))
    loops = [t for t in threading.enumerate() if t.name == "cairn-batch model 5"]
    assert loops

    "".join(backend.complete(models["plain"], PROMPT, GREEDY))  # evicts the chat model
    gc.collect()

    for thread in loops:
        thread.join(timeout=5)  # well before the idle timeout
        assert not thread.is_alive()
    assert batching.IDLE_SECONDS > 5
