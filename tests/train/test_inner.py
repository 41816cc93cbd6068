"""cairn.train.inner: every method's inner loop on tiny models learns its toy task, LoRA sends only
its adapter, a seed replays a round bit for bit, evaluation reports each method's metrics, and bad
shards are refused with a message that names the record."""

from __future__ import annotations

import io
from typing import Any

import pytest
import torch

from cairn.core.diloco import OuterState, outer_step
from cairn.core.errors import InvalidInput
from cairn.core.recipe import (
    ClassifyHyperparameters,
    DistillHyperparameters,
    GrpoHyperparameters,
    LoraHyperparameters,
    SftHyperparameters,
)
from cairn.train.adapters import add_lora
from cairn.train.batches import instruction_batch
from cairn.train.inner import evaluate, inner_train, load_params, trainable_params
from cairn.train.methods import METHODS
from cairn.train.methods.distill import distill_loss
from cairn.train.tiny import tiny_causal_lm, tiny_encoder

# toy tasks: additions answered by their digits, and "good"/"bad" sentences
SUMS = [{"prompt": f"{a}+{b}=", "response": str(a + b)} for a in range(5) for b in range(5)]
LABELS = ["neg", "pos"]
REVIEWS = [
    {"text": ("good " if i % 2 else "bad ") * (i % 3 + 1), "label": LABELS[i % 2]}
    for i in range(20)
]
# peft asks transformers a deprecated question; nothing of ours
pytestmark = pytest.mark.filterwarnings("ignore:`is_gradient_checkpointing` is deprecated")

SFT = SftHyperparameters(learning_rate=1e-2, batch_size=8, warmup_ratio=0.0)
LORA = LoraHyperparameters(learning_rate=3e-2, batch_size=8, warmup_ratio=0.0, lora_dropout=0.0)
CLASSIFY = ClassifyHyperparameters(learning_rate=1e-3, batch_size=8)
DISTILL = DistillHyperparameters(teacher_model=1, learning_rate=1e-2, batch_size=8, alpha=0.5)


def same(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


# --- sft and lora ------------------------------------------------------------------------------


def test_sft_lowers_the_response_loss_and_returns_every_weight() -> None:
    model, tokenizer = tiny_causal_lm()
    before = evaluate("sft", model, tokenizer, SUMS, SFT)

    result = inner_train("sft", model, tokenizer, SUMS, SFT, steps=5, seed=0)

    after = evaluate("sft", model, tokenizer, SUMS, SFT)
    assert after["loss"] < before["loss"] - 1.0
    assert result.steps == 5
    assert result.samples == 5 * SFT.batch_size
    assert result.metrics["loss_last"] < result.metrics["loss_first"]
    assert result.params.keys() == dict(model.named_parameters()).keys()


def test_sft_loss_counts_only_response_tokens() -> None:
    _, tokenizer = tiny_causal_lm()
    batch = instruction_batch(tokenizer, [{"prompt": "1+2=", "response": "3"}], max_length=64)
    labelled = batch["labels"][batch["labels"] != -100].tolist()
    # the response, then the end of the assistant's turn: "3<|im_end|>\n"
    assert tokenizer.decode(labelled) == "3<|im_end|>\n"


def test_lora_trains_only_the_adapter_and_returns_only_it() -> None:
    model, tokenizer = tiny_causal_lm()
    base_before = {k: v.clone() for k, v in model.state_dict().items()}
    peft_model = add_lora(model, METHODS["lora"].lora(LORA))
    before = evaluate("lora", peft_model, tokenizer, SUMS, LORA)

    result = inner_train("lora", peft_model, tokenizer, SUMS, LORA, steps=5, seed=0)

    assert result.params
    assert all("lora_A" in name or "lora_B" in name for name in result.params)
    modules = {name.split(".lora_")[0].rsplit(".", 1)[-1] for name in result.params}
    assert modules == {"q_proj", "v_proj"}  # the recipe's target_modules
    assert evaluate("lora", peft_model, tokenizer, SUMS, LORA)["loss"] < before["loss"]
    for name, value in peft_model.get_base_model().state_dict().items():
        key = name.replace(".base_layer", "")
        if key in base_before:  # the base weights did not move
            assert torch.equal(value, base_before[key]), name


def test_lora_wraps_a_plain_model_but_refuses_full_training() -> None:
    model, tokenizer = tiny_causal_lm()
    result = inner_train("lora", model, tokenizer, SUMS, LORA, steps=1, seed=0)
    assert all("lora_" in name for name in result.params)
    with pytest.raises(InvalidInput, match="trainable must be 'lora'"):
        inner_train(
            "lora", tiny_causal_lm()[0], tokenizer, SUMS, LORA, steps=1, seed=0, trainable="all"
        )


@pytest.mark.parametrize("method", ["sft", "lora"])
def test_a_seed_replays_a_round_bit_for_bit(method: str) -> None:
    hp = SFT if method == "sft" else LoraHyperparameters(learning_rate=1e-2, batch_size=4)
    runs = []
    for seed in (7, 7, 8):
        model, tokenizer = tiny_causal_lm()
        runs.append(inner_train(method, model, tokenizer, SUMS, hp, steps=3, seed=seed))
    assert same(runs[0].params, runs[1].params)
    assert runs[0].loss == runs[1].loss
    assert not same(runs[0].params, runs[2].params)


def test_a_resumed_round_replays_bit_for_bit_from_its_optimizer_state() -> None:
    """What a validator replays: round 2 from round 1's weights and AdamW state, as reported."""
    from cairn.compute.reports import params_digest, state_digest

    model, tokenizer = tiny_causal_lm()
    first = inner_train("sft", model, tokenizer, SUMS, SFT, steps=2, seed=1, total_steps=4)
    state = state_digest(first.optimizer_state)
    replays = []
    for _ in range(2):
        model, tokenizer = tiny_causal_lm()
        load_params(model, first.params)
        kept = torch.load(_saved(first.optimizer_state), weights_only=True)  # as a worker keeps it
        assert state_digest(kept) == state
        second = inner_train(
            "sft", model, tokenizer, SUMS, SFT, steps=2, seed=2, start_step=2, total_steps=4,
            optimizer_state=kept,
        )  # fmt: skip
        replays.append(params_digest(second.params))
    assert replays[0] == replays[1]


def _saved(state: Any) -> io.BytesIO:
    buffer = io.BytesIO()
    torch.save(state, buffer)
    buffer.seek(0)
    return buffer


def test_inner_steps_feed_a_diloco_round() -> None:
    model, tokenizer = tiny_causal_lm()
    global_params = trainable_params(model)
    before = evaluate("sft", model, tokenizer, SUMS, SFT)
    shards = [SUMS[::2], SUMS[1::2]]
    results = []
    for i, shard in enumerate(shards):
        load_params(model, global_params)
        results.append(inner_train("sft", model, tokenizer, shard, SFT, steps=3, seed=i))

    new_global, _ = outer_step(
        global_params, [r.params for r in results], [r.samples for r in results], OuterState()
    )
    load_params(model, new_global)
    assert evaluate("sft", model, tokenizer, SUMS, SFT)["loss"] < before["loss"]


def test_load_params_refuses_unknown_names_and_shapes() -> None:
    model, _ = tiny_causal_lm()
    with pytest.raises(InvalidInput, match="'nope' is not in the model"):
        load_params(model, {"nope": torch.zeros(1)})
    name = next(iter(trainable_params(model)))
    with pytest.raises(InvalidInput, match="does not fit"):
        load_params(model, {name: torch.zeros(1)})


def test_warmup_raises_the_rate_across_rounds() -> None:
    model, tokenizer = tiny_causal_lm()
    hp = SftHyperparameters(learning_rate=1e-2, batch_size=4, warmup_ratio=0.5)
    first = inner_train("sft", model, tokenizer, SUMS, hp, steps=2, seed=0, total_steps=8)
    later = inner_train(
        "sft", model, tokenizer, SUMS, hp, steps=2, seed=0, start_step=6, total_steps=8
    )
    assert first.metrics["lr"] == pytest.approx(1e-2 * 2 / 4)
    assert later.metrics["lr"] == pytest.approx(1e-2)


# --- classify ----------------------------------------------------------------------------------


def test_classify_learns_the_labels() -> None:
    model, tokenizer = tiny_encoder(num_labels=2)
    before = evaluate("classify", model, tokenizer, REVIEWS, CLASSIFY, labels=LABELS)

    result = inner_train(
        "classify", model, tokenizer, REVIEWS, CLASSIFY, steps=20, seed=0, labels=LABELS
    )

    after = evaluate("classify", model, tokenizer, REVIEWS, CLASSIFY, labels=LABELS)
    assert after["loss"] < before["loss"]
    assert after["accuracy"] == 1.0 and after["f1"] == 1.0
    assert result.params.keys() == dict(model.named_parameters()).keys()


def test_classify_with_lora_sends_adapter_and_head() -> None:
    model, tokenizer = tiny_encoder(num_labels=2)
    hp = ClassifyHyperparameters(learning_rate=1e-2, batch_size=8, use_lora=True, lora_r=4)
    result = inner_train("classify", model, tokenizer, REVIEWS, hp, steps=2, seed=0, labels=LABELS)
    assert any("lora_A" in n for n in result.params)
    assert any("classifier" in n for n in result.params)
    assert all("lora_" in n or "classifier" in n for n in result.params)


def test_classify_evaluation_reports_accuracy_and_macro_f1() -> None:
    model, tokenizer = tiny_encoder(num_labels=2)
    metrics = evaluate("classify", model, tokenizer, REVIEWS, CLASSIFY, labels=LABELS)
    assert set(metrics) == {"accuracy", "f1", "loss"}
    # an untrained head answers one class for everything: accuracy 1/2, F1 (2/3 + 0) / 2
    assert metrics["accuracy"] == 0.5
    assert metrics["f1"] == pytest.approx(1 / 3)


# --- distill -----------------------------------------------------------------------------------


def soft_loss(student: Any, teacher: Any, tokenizer: Any) -> float:
    batch = instruction_batch(tokenizer, SUMS, 64)
    args = {"input_ids": batch["input_ids"], "attention_mask": batch["attention_mask"]}
    with torch.no_grad():
        return float(
            distill_loss(student(**args).logits, teacher(**args).logits, batch["labels"], 2.0, 1.0)
        )


def test_distill_moves_the_student_towards_the_teacher() -> None:
    teacher, tokenizer = tiny_causal_lm(seed=1)
    inner_train("sft", teacher, tokenizer, SUMS, SFT, steps=10, seed=0)  # a teacher that knows
    student, _ = tiny_causal_lm(seed=2)
    before = soft_loss(student, teacher, tokenizer)

    result = inner_train(
        "distill", student, tokenizer, SUMS, DISTILL, steps=5, seed=0, teacher=teacher
    )

    assert soft_loss(student, teacher, tokenizer) < before
    assert result.metrics["loss_last"] < result.metrics["loss_first"]
    assert set(evaluate("distill", student, tokenizer, SUMS, DISTILL)) == {"loss", "perplexity"}


def test_distill_needs_a_teacher_with_the_students_vocabulary() -> None:
    student, tokenizer = tiny_causal_lm()
    with pytest.raises(InvalidInput, match="needs a teacher"):
        inner_train("distill", student, tokenizer, SUMS, DISTILL, steps=1, seed=0)
    teacher, _ = tiny_causal_lm(vocab_size=200)
    with pytest.raises(InvalidInput, match="must share a tokenizer"):
        inner_train("distill", student, tokenizer, SUMS, DISTILL, steps=1, seed=0, teacher=teacher)


# --- grpo --------------------------------------------------------------------------------------


def prob_of_seven(model: Any, tokenizer: Any) -> float:
    """The mean probability of answering "7" first, teacher-forced over four prompts."""
    batch = instruction_batch(
        tokenizer, [{"prompt": f"q{i}", "response": "7"} for i in range(4)], 64
    )
    with torch.no_grad():
        logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
    first = (batch["labels"] != -100).int().argmax(dim=1)  # (4,) the response's first position
    probs = torch.softmax(logits[torch.arange(4), first - 1], dim=-1)  # (4, V)
    return float(probs[:, tokenizer.convert_tokens_to_ids("7")].mean())


def test_grpo_raises_the_reward_of_the_right_answer() -> None:
    model, tokenizer = tiny_causal_lm()
    # first teach it to answer with some digit, so sampled groups differ in reward
    digits = [{"prompt": f"q{i % 4}", "response": str(i % 10)} for i in range(40)]
    hp = SftHyperparameters(learning_rate=1e-2, batch_size=20, warmup_ratio=0.0)
    inner_train("sft", model, tokenizer, digits, hp, steps=20, seed=0)
    questions = [{"prompt": f"q{i}", "answer": "7"} for i in range(4)]
    grpo = GrpoHyperparameters(
        learning_rate=1e-2,
        batch_size=16,
        num_generations=8,
        max_completion_length=3,
        rewards=["exact_answer"],
    )
    before = prob_of_seven(model, tokenizer)

    result = inner_train("grpo", model, tokenizer, questions, grpo, steps=5, seed=3)

    assert prob_of_seven(model, tokenizer) > 5 * before
    assert result.samples == 5 * 2  # two prompts a step
    assert 0.0 <= result.metrics["reward"] <= 1.0
    metrics = evaluate("grpo", model, tokenizer, questions, grpo)
    assert set(metrics) == {"reward", "accuracy"}
    assert 0.0 <= metrics["accuracy"] <= 1.0


def test_grpo_with_lora_uses_the_base_model_as_reference_and_replays() -> None:
    questions = [{"prompt": f"{a}+1=", "answer": str(a + 1)} for a in range(4)]
    grpo = GrpoHyperparameters(
        learning_rate=1e-2,
        batch_size=4,
        num_generations=4,
        max_completion_length=4,
        rewards=["numeric_answer", {"name": "length_penalty", "params": {"target": 1}}],
    )
    runs = []
    for _ in range(2):
        model, tokenizer = tiny_causal_lm()
        runs.append(
            inner_train(
                "grpo", model, tokenizer, questions, grpo, steps=2, seed=5, trainable="lora"
            )
        )
    assert all("lora_" in n for n in runs[0].params)
    assert same(runs[0].params, runs[1].params)
    assert runs[0].metrics["reward"] == runs[1].metrics["reward"]


# --- bad inputs --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "records", "hparams", "message"),
    [
        ("sft", [], SFT, "sft: the shard is empty"),
        ("sft", [{"prompt": "x"}], SFT, "record 0: field 'response' missing"),
        (
            "sft",
            [SUMS[0], {"prompt": "x", "response": 3}],
            SFT,
            "record 1: field 'response' must be a string",
        ),
        ("sft", ["not a record"], SFT, "record 0: must be an object with prompt, response"),
        (
            "grpo",
            [{"prompt": "x", "response": "y"}],
            GrpoHyperparameters(),
            "record 0: field 'answer' missing",
        ),
        (
            "sft",
            SUMS,
            LORA,
            "sft: hyperparameters must be SftHyperparameters; got LoraHyperparameters",
        ),
        ("ppo", SUMS, SFT, "unknown method 'ppo'"),
    ],
)
def test_bad_shards_are_refused_with_a_clear_message(
    method: str, records: Any, hparams: Any, message: str
) -> None:
    model, tokenizer = tiny_causal_lm()
    with pytest.raises(InvalidInput, match=message):
        inner_train(method, model, tokenizer, records, hparams, steps=1, seed=0)
    if method in ("sft", "grpo"):
        with pytest.raises(InvalidInput, match=message):
            evaluate(method, model, tokenizer, records, hparams)


def test_bad_classification_inputs_are_refused() -> None:
    model, tokenizer = tiny_encoder(num_labels=2)
    happy = [*REVIEWS[:3], {"text": "meh", "label": "happy"}]
    with pytest.raises(
        InvalidInput, match="record 3: field 'label' must be one of neg, pos; got 'happy'"
    ):
        inner_train("classify", model, tokenizer, happy, CLASSIFY, steps=1, seed=0, labels=LABELS)
    with pytest.raises(InvalidInput, match="labels must list"):
        inner_train("classify", model, tokenizer, REVIEWS, CLASSIFY, steps=1, seed=0)
    with pytest.raises(InvalidInput, match="head has 2 classes but the dataset has 3 labels"):
        inner_train(
            "classify", model, tokenizer, REVIEWS, CLASSIFY, steps=1, seed=0, labels=[*LABELS, "x"]
        )


def test_steps_must_be_positive() -> None:
    model, tokenizer = tiny_causal_lm()
    with pytest.raises(InvalidInput, match="steps must be a positive integer"):
        inner_train("sft", model, tokenizer, SUMS, SFT, steps=0, seed=0)


def test_a_worker_keeps_its_inner_optimizer_state_across_rounds() -> None:
    model, tokenizer = tiny_causal_lm()
    first = inner_train("sft", model, tokenizer, SUMS, SFT, steps=3, seed=0)
    assert first.optimizer_state is not None
    steps = {int(s["step"]) for s in first.optimizer_state["state"].values()}
    assert steps == {3}
    second = inner_train(
        "sft", model, tokenizer, SUMS, SFT, steps=2, seed=1, optimizer_state=first.optimizer_state
    )
    assert second.optimizer_state is not None
    assert {int(s["step"]) for s in second.optimizer_state["state"].values()} == {5}  # carried on
    other, other_tok = tiny_causal_lm(hidden_size=48)
    with pytest.raises(InvalidInput, match="does not fit this model"):
        inner_train(
            "sft",
            other,
            other_tok,
            SUMS,
            SFT,
            steps=1,
            seed=0,
            optimizer_state=first.optimizer_state,
        )
