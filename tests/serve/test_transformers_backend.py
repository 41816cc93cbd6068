"""cairn.serve.backends.transformers on tiny models: greedy and seeded sampling are replayable,
max_tokens and stop strings end generations as documented (and stop strings never stream), usage
matches the tokenizer, chat templates are used, embeddings and classifications are well formed,
models are evicted least recently used first, and bad requests get errors that name the numbers.
The last test checks the packaged all-MiniLM-L6-v2 on meaning."""

from __future__ import annotations

import logging
import math
import threading
from pathlib import Path

import pytest
import torch
from transformers import AutoTokenizer

from cairn.core.errors import ConfigError, InvalidInput, NotFound
from cairn.serve.backends import Generation, SamplingParams, ServedModel
from cairn.serve.backends.base import plain_chat_prompt
from cairn.serve.backends.batching import next_token
from cairn.serve.backends.transformers import TransformersBackend
from cairn.train.tiny import tiny_causal_lm
from tests.serve.conftest import LABELS, save

MESSAGES = [
    {"role": "system", "content": "Be brief."},
    {"role": "user", "content": "Name a colour."},
]
PROMPT = "Once upon a time"
SEED = 7  # a seed whose 60 sampled tokens hold no special token and no end token
GREEDY = SamplingParams(max_tokens=30, temperature=0.0)
SAMPLED = SamplingParams(max_tokens=60, temperature=1.0, seed=SEED)


@pytest.fixture(scope="module")
def backend() -> TransformersBackend:
    return TransformersBackend(memory_budget_bytes=1 << 30)


def run(generation: Generation) -> tuple[list[str], str | None, int, int]:
    """The deltas, then the finish reason and token counts."""
    deltas = list(generation)
    return deltas, generation.finish_reason, generation.prompt_tokens, generation.completion_tokens


# --- generation ---------------------------------------------------------------------------------


def test_chat_uses_the_chat_template_and_greedy_is_deterministic(
    backend: TransformersBackend, models: dict[str, ServedModel], folders: dict[str, Path]
) -> None:
    tokenizer = AutoTokenizer.from_pretrained(folders["chat"])
    templated = tokenizer.apply_chat_template(MESSAGES, add_generation_prompt=True, tokenize=False)

    first = backend.chat(models["chat"], MESSAGES, GREEDY)
    assert first.prompt_tokens == len(tokenizer(templated, add_special_tokens=False).input_ids)
    assert first.completion_tokens == 0 and first.finish_reason is None  # nothing ran yet
    text = "".join(first)
    again = "".join(backend.chat(models["chat"], MESSAGES, GREEDY))

    assert text == again
    assert (first.finish_reason, first.completion_tokens) == ("length", GREEDY.max_tokens)


def test_the_batching_engine_writes_what_transformers_generate_writes(
    backend: TransformersBackend, tmp_path: Path
) -> None:
    # a random output head of its own, or a tiny tied Llama only repeats the last character
    model, tokenizer = tiny_causal_lm(seed=0, hidden_size=32, layers=2, heads=2)
    model.config.tie_word_embeddings = False
    # seeded here: the global generator's state depends on which tests ran before this one
    head = torch.randn(model.lm_head.weight.shape, generator=torch.Generator().manual_seed(2))
    model.lm_head.weight = torch.nn.Parameter(head * 0.5)
    save(model, tokenizer, tmp_path / "untied")
    ids = tokenizer(PROMPT, return_tensors="pt").input_ids
    with torch.inference_mode():
        out = model.eval().generate(ids, do_sample=False, max_new_tokens=30)
    expected = tokenizer.decode(out[0, ids.shape[1] :], skip_special_tokens=True)

    served = ServedModel("9", tmp_path / "untied", "causal-lm")
    text = "".join(backend.complete(served, PROMPT, GREEDY))

    assert text == expected and len(text) >= 20 and len(set(text)) > 5, text


def test_a_tokenizer_without_a_chat_template_gets_the_plain_format(
    backend: TransformersBackend, models: dict[str, ServedModel], folders: dict[str, Path]
) -> None:
    tokenizer = AutoTokenizer.from_pretrained(folders["plain"])
    assert not tokenizer.chat_template

    generation = backend.chat(models["plain"], MESSAGES, GREEDY)

    assert plain_chat_prompt(MESSAGES) == "system: Be brief.\nuser: Name a colour.\nassistant:"
    assert generation.prompt_tokens == len(tokenizer(plain_chat_prompt(MESSAGES)).input_ids)
    assert len("".join(generation)) > 0


def test_a_seed_replays_the_sampled_text_and_another_seed_changes_it(
    backend: TransformersBackend, models: dict[str, ServedModel]
) -> None:
    def sample(seed: int) -> str:
        params = SamplingParams(max_tokens=40, temperature=1.0, seed=seed)
        return "".join(backend.complete(models["chat"], PROMPT, params))

    assert sample(1) == sample(1)
    assert sample(1) != sample(2)


def test_top_p_near_zero_keeps_only_the_most_likely_token(
    backend: TransformersBackend, models: dict[str, ServedModel]
) -> None:
    greedy = "".join(backend.complete(models["chat"], PROMPT, GREEDY))
    nucleus = SamplingParams(max_tokens=30, temperature=2.0, top_p=0.0, seed=3)

    assert "".join(backend.complete(models["chat"], PROMPT, nucleus)) == greedy


def test_nucleus_sampling_draws_only_from_the_nucleus() -> None:
    logits = torch.log(torch.tensor([0.5, 0.3, 0.15, 0.05]))
    rng = torch.Generator().manual_seed(0)

    drawn = {next_token(logits, 1.0, 0.7, rng) for _ in range(300)}
    everything = {next_token(logits, 1.0, 1.0, rng) for _ in range(300)}

    assert drawn == {0, 1}  # 0.5 + 0.3 reaches 0.7; 0.15 and 0.05 are outside
    assert everything == {0, 1, 2, 3}


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"temperature": -0.1}, "temperature must be between 0 and 2; got -0.1"),
        ({"temperature": 2.5}, "temperature must be between 0 and 2; got 2.5"),
        ({"temperature": math.nan}, "temperature must be between 0 and 2; got nan"),
        ({"top_p": 1.5}, "top_p must be between 0 and 1; got 1.5"),
        ({"top_p": -0.5}, "top_p must be between 0 and 1; got -0.5"),
        ({"max_tokens": 0}, "max_tokens must be at least 1; got 0"),
        ({"stop": ("",)}, "stop strings must not be empty"),
    ],
)
def test_sampling_params_out_of_bounds_are_refused(fields: dict[str, object], message: str) -> None:
    settings: dict[str, object] = {"max_tokens": 10, **fields}
    with pytest.raises(InvalidInput) as raised:
        SamplingParams(**settings)  # type: ignore[arg-type]
    assert raised.value.message == message


def test_max_tokens_ends_with_length_after_exactly_that_many_tokens_counted_as_the_tokenizer_does(
    backend: TransformersBackend, models: dict[str, ServedModel], folders: dict[str, Path]
) -> None:
    tokenizer = AutoTokenizer.from_pretrained(folders["chat"])

    deltas, finish, prompt_tokens, completion_tokens = run(
        backend.complete(models["chat"], PROMPT, SAMPLED)
    )

    text = "".join(deltas)
    assert (finish, completion_tokens) == ("length", SAMPLED.max_tokens)
    assert (
        prompt_tokens
        == len(tokenizer(PROMPT).input_ids)
        == backend.count_tokens(models["chat"], PROMPT)
    )
    assert completion_tokens == len(tokenizer(text, add_special_tokens=False).input_ids)


def test_a_stop_string_the_model_produces_cuts_the_output_and_never_streams(
    backend: TransformersBackend, models: dict[str, ServedModel]
) -> None:
    full = "".join(backend.complete(models["chat"], PROMPT, SAMPLED))
    stop = full[30:33]  # three characters the model writes, so three tokens (character level)
    cut = full.find(stop)
    params = SamplingParams(
        max_tokens=SAMPLED.max_tokens, temperature=1.0, seed=SEED, stop=("never said", stop)
    )

    deltas, finish, _, completion_tokens = run(backend.complete(models["chat"], PROMPT, params))

    assert "".join(deltas) == full[:cut]
    assert finish == "stop"
    # every sampled token counts, the three that wrote the stop string too
    assert completion_tokens == cut + len(stop)
    streamed = ""
    for delta in deltas:
        streamed += delta
        assert stop not in streamed


def test_generations_on_one_model_in_two_threads_match_the_text_alone(
    backend: TransformersBackend, models: dict[str, ServedModel]
) -> None:
    alone = "".join(backend.complete(models["chat"], PROMPT, SAMPLED))
    texts: list[str] = []

    def generate() -> None:
        texts.append("".join(backend.complete(models["chat"], PROMPT, SAMPLED)))

    threads = [threading.Thread(target=generate) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    assert texts == [alone, alone]


def test_close_stops_a_generation_and_is_safe_twice(
    backend: TransformersBackend, models: dict[str, ServedModel]
) -> None:
    generation = backend.complete(models["chat"], PROMPT, SamplingParams(max_tokens=500, seed=1))
    stream = iter(generation)
    next(stream)

    generation.close()
    generation.close()

    assert list(stream) == [] and list(generation) == []
    assert generation.completion_tokens < 5
    assert generation.finish_reason is None


def test_an_over_long_prompt_is_refused_with_the_numbers(
    backend: TransformersBackend, models: dict[str, ServedModel]
) -> None:
    assert backend.context_length(models["chat"]) == 1024
    with pytest.raises(InvalidInput) as raised:
        backend.complete(models["chat"], "x" * 1030, GREEDY)
    assert raised.value.message == (
        "model 5: the prompt is 1030 tokens, over the model's context of 1024 tokens"
    )

    with pytest.raises(InvalidInput) as raised:
        backend.complete(models["chat"], "x" * 1000, GREEDY)
    assert raised.value.message == (
        "model 5: the prompt (1000 tokens) plus max_tokens (30) is 1030 tokens, "
        "over the model's context of 1024 tokens"
    )


# --- encoders -----------------------------------------------------------------------------------

TEXTS = ["a short one", "a somewhat longer sentence than the first", "x"]


@pytest.mark.parametrize("name", ["encoder", "classifier"])
def test_embeddings_are_unit_vectors_of_the_hidden_size_whatever_the_batch(
    backend: TransformersBackend,
    models: dict[str, ServedModel],
    folders: dict[str, Path],
    name: str,
) -> None:
    tokenizer = AutoTokenizer.from_pretrained(folders[name])

    vectors, tokens = backend.embed(models[name], TEXTS)
    alone = [backend.embed(models[name], [text])[0][0] for text in TEXTS]

    assert [len(v) for v in vectors] == [64] * len(TEXTS)
    assert all(abs(sum(x * x for x in v) - 1.0) < 1e-5 for v in vectors)
    assert torch.allclose(torch.tensor(vectors), torch.tensor(alone), atol=1e-5)  # padding
    assert tokens == sum(len(tokenizer(t).input_ids) for t in TEXTS)  # [CLS] and [SEP] count
    assert backend.embed(models[name], TEXTS)[0] == vectors


def test_classification_gives_each_label_a_probability_and_the_top_one(
    backend: TransformersBackend, models: dict[str, ServedModel]
) -> None:
    results, tokens = backend.classify(models["classifier"], TEXTS)

    assert len(results) == len(TEXTS) and tokens > len(TEXTS)
    for result in results:
        assert tuple(result.scores) == LABELS
        assert abs(sum(result.scores.values()) - 1.0) < 1e-6
        assert result.label == max(result.scores, key=result.scores.__getitem__)
        assert result.score == result.scores[result.label]


def test_capabilities_follow_the_family_and_the_head(
    backend: TransformersBackend, models: dict[str, ServedModel]
) -> None:
    assert backend.capabilities(models["chat"]) == {"chat", "completions"}
    assert backend.capabilities(models["classifier"]) == {"embeddings", "classifications"}
    assert backend.capabilities(models["encoder"]) == {"embeddings"}
    assert backend.context_length(models["encoder"]) == 512


@pytest.mark.parametrize(
    ("name", "call", "message"),
    [
        ("chat", "embed", "model 5 is a causal-lm model: it serves chat and completions, not embeddings"),
        ("chat", "classify", "model 5 is a causal-lm model: it serves chat and completions, not classifications"),
        ("encoder", "classify", "model 8 is an encoder model: it serves embeddings, not classifications"),
        ("classifier", "chat", "model 7 is an encoder model: it serves embeddings and classifications, not chat"),
        ("encoder", "complete", "model 8 is an encoder model: it serves embeddings, not completions"),
    ],
)  # fmt: skip
def test_an_operation_the_model_does_not_serve_is_refused(
    backend: TransformersBackend, models: dict[str, ServedModel], name: str, call: str, message: str
) -> None:
    model = models[name]
    calls = {
        "embed": lambda: backend.embed(model, TEXTS),
        "classify": lambda: backend.classify(model, TEXTS),
        "chat": lambda: backend.chat(model, MESSAGES, GREEDY),
        "complete": lambda: backend.complete(model, PROMPT, GREEDY),
    }
    with pytest.raises(InvalidInput) as raised:
        calls[call]()
    assert raised.value.message == message


def test_bad_requests_and_missing_folders_are_refused(
    backend: TransformersBackend, models: dict[str, ServedModel], tmp_path: Path
) -> None:
    with pytest.raises(InvalidInput, match="messages must hold at least one message"):
        backend.chat(models["chat"], [], GREEDY)
    with pytest.raises(InvalidInput, match="message 0: needs a 'role' and a 'content'"):
        backend.chat(models["chat"], [{"role": "user"}], GREEDY)
    with pytest.raises(InvalidInput, match="input must hold at least one text"):
        backend.embed(models["encoder"], [])
    with pytest.raises(NotFound, match="is not a Hugging Face model folder"):
        backend.embed(ServedModel("9", tmp_path, "encoder"), ["a"])
    with pytest.raises(ConfigError, match="model 9 has no local folder"):
        backend.embed(ServedModel("9", None, "encoder"), ["a"])
    with pytest.raises(InvalidInput, match="family must be one of causal-lm, encoder"):
        ServedModel("9", tmp_path, "seq2seq")


# --- memory -------------------------------------------------------------------------------------


def test_loading_past_the_budget_evicts_the_least_recently_used_model(
    models: dict[str, ServedModel], caplog: pytest.LogCaptureFixture
) -> None:
    probe = TransformersBackend(memory_budget_bytes=1 << 30)
    "".join(probe.complete(models["chat"], PROMPT, GREEDY))
    one = probe.resident.total_bytes()  # both tiny Llamas are this size
    chat, plain = (Path(models[name].folder or "").resolve() for name in ("chat", "plain"))
    backend = TransformersBackend(memory_budget_bytes=one + one // 2)

    "".join(backend.complete(models["chat"], PROMPT, GREEDY))
    assert backend.resident.keys() == [chat]
    "".join(backend.complete(models["plain"], PROMPT, GREEDY))
    assert backend.resident.keys() == [plain]
    "".join(backend.complete(models["chat"], PROMPT, GREEDY))
    assert backend.resident.keys() == [chat]

    small = TransformersBackend(memory_budget_bytes=1000)
    with caplog.at_level(logging.WARNING):
        assert "".join(small.complete(models["plain"], PROMPT, GREEDY))
    assert small.resident.keys() == [plain]
    assert "over the whole memory budget of 1000 bytes: serving it alone" in caplog.text


# --- the packaged sentence encoder --------------------------------------------------------------


def test_the_packaged_minilm_puts_a_cat_nearer_a_kitten_than_a_stock_report(
    tmp_path: Path,
) -> None:
    from cairn.train.base_models import find
    from cairn.train.weights import base_model_folder

    folder = base_model_folder(find("all-MiniLM-L6-v2"), tmp_path / "cache")
    backend = TransformersBackend(memory_budget_bytes=1 << 30)
    model = ServedModel("1", folder, "encoder")

    (cat, kitten, stocks), tokens = backend.embed(
        model, ["a cat", "a kitten", "stock market report"]
    )

    def cosine(a: list[float], b: list[float]) -> float:
        return sum(x * y for x, y in zip(a, b, strict=True))  # unit vectors

    assert len(cat) == 384 and backend.capabilities(model) == {"embeddings"}
    assert cosine(cat, kitten) > cosine(cat, stocks) + 0.3
    assert tokens == 4 + 4 + 5  # [CLS] a cat [SEP], ..., [CLS] stock market report [SEP]
