"""A run's estimate: its size from rounds, inner steps, workers and batch, its budget's pay, and
its time on a node's providers; and the defaults fitted so that a builder's job finishes soon."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cairn.compute.estimate import ASSUMPTIONS, estimate_run
from cairn.compute.fitted_defaults import (
    FITTED_FIELDS,
    MIN_BATCH,
    MIN_ROUNDS,
    TARGET_SECONDS,
    fit_defaults,
)
from cairn.compute.pace import (
    DEFAULT_PACE,
    TIME_MARGIN,
    WAIT_FOR_ALL_SECONDS,
    Pace,
    RoundSample,
    RunConditions,
    estimate_time,
    measured_pace,
    step_tokens,
    typical_tokens,
)
from cairn.core.recipe import Recipe, parse_recipe

TOKEN = 10**18


def recipe(method: str = "sft", hparams: dict | None = None, **settings: object) -> dict:
    data = {
        "name": "t",
        "method": method,
        "base_model": 1,
        "datasets": [{"dataset": 2}],
        "hyperparameters": hparams or {},
        "distributed": {"workers": 2, "rounds": 10, "inner_steps": 50},
        "budget": {"max_tokens": str(100 * TOKEN)},
    }
    data.update(settings)
    return data


def test_the_size_of_a_fine_tuning_run() -> None:
    run = estimate_run(parse_recipe(recipe(hparams={"batch_size": 8, "max_length": 512})), 400)
    assert (run.steps_per_worker, run.worker_steps, run.samples) == (500, 1000, 8000)
    assert run.tokens == 8000 * 512 and run.generated_tokens == 0
    assert run.data_passes == 20.0
    assert run.budget == 100 * TOKEN and run.per_worker == 50 * TOKEN
    assert run.per_thousand_samples == 100 * TOKEN * 1000 // 8000
    assert run.per_million_tokens == 100 * TOKEN * 1_000_000 // (8000 * 512)
    assert run.max_seconds == 3600


def test_grpo_counts_prompts_as_samples_and_completions_as_generated() -> None:
    hp = {
        "batch_size": 8,
        "num_generations": 4,
        "max_prompt_length": 100,
        "max_completion_length": 50,
    }
    run = estimate_run(parse_recipe(recipe("grpo", hp)))
    assert run.samples == 1000 * 2  # 8 completions per step = 2 prompts of 4
    assert run.sequences == 8000 and run.tokens == 8000 * 150
    assert run.generated_tokens == 8000 * 50 and run.data_passes is None


def test_volunteer_work_costs_nothing() -> None:
    run = estimate_run(parse_recipe(recipe(budget={"max_tokens": "0"})))
    assert run.budget == run.per_worker == run.per_million_tokens == run.per_thousand_samples == 0


def test_the_assumptions_are_stated() -> None:
    assert any("upper bound" in a for a in ASSUMPTIONS)
    assert any("returns the budget" in a for a in ASSUMPTIONS)


@given(
    st.integers(1, 64),
    st.integers(1, 10_000),
    st.integers(1, 100_000),
    st.integers(1, 4096),
    st.integers(0, 2**200),
)
def test_size_is_the_product_and_pay_never_exceeds_the_budget(
    workers: int, rounds: int, inner: int, batch: int, budget: int
) -> None:
    data = recipe(
        hparams={"batch_size": batch},
        distributed={"workers": workers, "min_workers": 1, "rounds": rounds, "inner_steps": inner},
        budget={"max_tokens": str(budget)},
    )
    run = estimate_run(parse_recipe(data))
    assert run.samples == workers * rounds * inner * batch
    assert run.per_worker * workers <= budget
    assert run.per_thousand_samples * run.samples <= budget * 1000


# -- time -------------------------------------------------------------------------------------

DEMO_TOKENS = 45  # the demo's records as counted: 37 bytes / 3 (13) + SmolLM2's template (32)
CPU = DEFAULT_PACE["causal-lm"]


def conditions(
    online: int | None = 2, tokens: int | None = DEMO_TOKENS, pace: Pace = CPU
) -> RunConditions:
    return RunConditions(pace=pace, record_tokens=tokens, online=online)


def default(method: str = "lora", **hparams: object) -> Recipe:
    """The recipe a builder gets from the schema alone: every setting at its default."""
    return parse_recipe(
        {"name": "t", "method": method, "base_model": 1, "datasets": [{"dataset": 2}],
         "hyperparameters": hparams}
    )  # fmt: skip


def test_a_records_tokens_are_its_bytes_over_three_plus_the_template() -> None:
    assert typical_tokens([37] * 96, "causal-lm") == DEMO_TOKENS
    assert typical_tokens([37] * 96, "encoder") == 13 + 2
    # the 90th percentile stands for a padded batch's widest sequence: 9 short records, 1 long
    assert typical_tokens([30] * 9 + [300], "causal-lm") == 100 + 32
    assert typical_tokens([30] * 20 + [300], "causal-lm") == 10 + 32
    assert typical_tokens([], "causal-lm") is None


def test_a_steps_work_is_its_tokens_weighed_by_what_training_them_costs() -> None:
    assert step_tokens(default()) == 8 * 512  # unknown records fill their token limit
    assert step_tokens(default(), DEMO_TOKENS) == 8 * 45  # LoRA: 1 a token
    assert step_tokens(default(), 10_000) == 8 * 512  # the limit truncates
    assert step_tokens(default("sft"), DEMO_TOKENS) == 8 * 45 * 2.0  # every weight trains
    teacher = step_tokens(default("distill", teacher_model=3), DEMO_TOKENS)
    assert teacher == 8 * 45 * (2.0 + 0.5)  # and a teacher's forward pass
    # GRPO: 2 prompts x 4 completions; the prompt (45) and completion (128) train with the KL
    # reference's pass (2.5 a token), and each completion token is sampled (3.0 a token)
    assert step_tokens(default("grpo"), DEMO_TOKENS) == 8 * (45 + 128) * 2.5 + 8 * 128 * 3.0


def test_the_default_pace_is_the_measured_307_s_round() -> None:
    # the builder's old default on the demo's records: 50 steps x 8 x 45 tokens / 60 a second
    # = 300 s of compute, + 10 s of round overhead
    time = estimate_time(default(), conditions())
    assert time.step_seconds == 6.0 and time.round_seconds == 310.0
    assert abs(time.round_seconds - 307) / 307 < 0.02
    assert time.seconds == 30 + 10 * 310  # 52 minutes: its 3,600 s limit with no margin
    assert not time.pace.measured and time.providers == 2
    (warning,) = time.warnings
    assert "About 52 minutes, within the time limit (3,600 s) but by less than 2x" in warning


def test_records_of_unknown_length_fill_their_limit_and_overrun() -> None:
    time = estimate_time(default(), conditions(tokens=None))
    assert time.seconds == 30 + 10 * (10 + 50 * 8 * 512 / 60)  # 9.5 hours
    assert [w.split(":")[0] for w in time.warnings] == [
        "About 9.5 hours, more than the time limit (3,600 s)",
        "A round trains for about 57 minutes, more than the round timeout (600 s)",
    ]


def test_providers_online_change_the_wait_and_what_the_page_says() -> None:
    nobody = estimate_time(default(), conditions(online=0))
    assert nobody.warnings[0].startswith("No provider is online: the job waits")
    assert nobody.providers == 2 and nobody.round_seconds == 310.0
    one = estimate_time(default(), conditions(online=1))
    assert one.round_seconds == 310.0 + 30  # each round waits for the missing worker
    assert one.warnings[0] == (
        "1 of 2 workers online: each round waits up to 30 s for the rest, then trains with fewer."
    )
    few = parse_recipe(
        recipe(distributed={"workers": 3, "min_workers": 2, "rounds": 1, "inner_steps": 1})
    )
    assert "fewer than min_workers (2)" in estimate_time(few, conditions(online=1)).warnings[0]
    many = estimate_time(default(), conditions(online=5))
    assert many.providers == 2 and many.round_seconds == 310.0
    assert estimate_time(default(), conditions(online=None)).providers == 2


def test_a_measured_pace_is_work_over_compute_with_the_median_overhead() -> None:
    rounds = [
        RoundSample(tokens=1_800, compute_seconds=20.0, seconds=27.0),
        RoundSample(tokens=1_800, compute_seconds=10.0, seconds=14.0),
        RoundSample(tokens=1_800, compute_seconds=15.0, seconds=20.0),
        RoundSample(tokens=0, compute_seconds=0.0, seconds=3.0),  # no work: not a measure
    ]
    pace = measured_pace(rounds)
    assert pace == Pace(tokens_per_second=5_400 / 45, round_overhead=5.0, measured_rounds=3)
    assert pace.measured and measured_pace([]) is None and measured_pace(rounds[3:]) is None


@pytest.mark.parametrize("online", [None, 1, 2])
@pytest.mark.parametrize(
    ("method", "hparams", "family"),
    [
        ("lora", {}, "causal-lm"),
        ("sft", {}, "causal-lm"),
        ("distill", {"teacher_model": 3}, "causal-lm"),
        ("grpo", {}, "causal-lm"),
        ("classify", {}, "encoder"),
    ],
)
def test_fitted_defaults_finish_within_the_target(
    method: str, hparams: dict, family: str, online: int | None
) -> None:
    plain = default(method, **hparams)
    cond = conditions(online=online, pace=DEFAULT_PACE[family])
    fitted = fitted_recipe(plain, frozenset(FITTED_FIELDS), cond)
    time = estimate_time(fitted, cond)
    assert time.seconds <= TARGET_SECONDS
    assert time.seconds * TIME_MARGIN <= fitted.budget.max_seconds
    assert time.round_compute * TIME_MARGIN <= fitted.distributed.round_timeout_s
    assert fitted.distributed.rounds >= MIN_ROUNDS
    assert not [w for w in time.warnings if "limit" in w or "timeout" in w]


def test_the_default_lora_job_before_and_after() -> None:
    free = frozenset(FITTED_FIELDS)
    # on the demo's records: 3 rounds of 13 steps of 8 (30 + 3 x (10 + 13 x 6) = 294 s), where
    # 10 rounds of 50 took 52 minutes; 4 rounds would leave 9 steps, under MIN_INNER_STEPS
    assert fit_defaults(default(), free, conditions()) == {
        "distributed.rounds": 3,
        "distributed.inner_steps": 13,
    }
    # one provider online of the 2 workers asked for: one worker, so no round waits 30 s
    one = fit_defaults(default(), free, conditions(online=1))
    assert one == {"distributed.workers": 1, "distributed.rounds": 3, "distributed.inner_steps": 13}
    kept = fit_defaults(default(), free - {"distributed.workers"}, conditions(online=1))
    # with workers kept at 2, each round waits 30 s: 30 + 3 x (10 + 30 + 16 x 3 s) = 294 s
    assert kept == {
        "distributed.rounds": 3,
        "distributed.inner_steps": 16,
        "hyperparameters.batch_size": 4,
    }
    # records of unknown length (512 tokens, 68 s a step at batch 8): the batch halves too
    chosen = fit_defaults(default(), free, conditions(tokens=None))
    assert chosen["hyperparameters.batch_size"] < 8
    fitted = fitted_recipe(default(), free, conditions(tokens=None))
    assert estimate_time(fitted, conditions(tokens=None)).seconds <= TARGET_SECONDS


def test_a_value_the_builder_set_is_kept() -> None:
    plain = default()
    only_steps = fit_defaults(plain, frozenset({"distributed.inner_steps"}), conditions())
    assert set(only_steps) == {"distributed.inner_steps"}  # 10 rounds stay; steps fit them
    assert only_steps["distributed.inner_steps"] == 2  # (270 / 10 - 10) s / 6 s
    assert fit_defaults(plain, frozenset(), conditions()) == {}
    # rounds and steps set: only the time limit (free) grows to cover the estimate twice
    assert fit_defaults(plain, frozenset({"budget.max_seconds"}), conditions()) == {
        "budget.max_seconds": 6_300  # 2 x 3,130 s, in whole minutes
    }


def test_when_nothing_fits_the_quickest_job_is_chosen_and_flagged() -> None:
    crawl = Pace(tokens_per_second=0.5, round_overhead=10.0, measured_rounds=4)
    cond = conditions(pace=crawl)
    fitted = fitted_recipe(default(), frozenset(FITTED_FIELDS), cond)
    assert (fitted.distributed.rounds, fitted.distributed.inner_steps) == (MIN_ROUNDS, 1)
    assert fitted.hyperparameters.step_shape().records == MIN_BATCH
    time = estimate_time(fitted, cond)
    assert time.seconds > TARGET_SECONDS and time.seconds * TIME_MARGIN <= fitted.budget.max_seconds


@given(
    st.floats(1.0, 5_000.0),
    st.integers(8, 2_000) | st.none(),
    st.integers(0, 4) | st.none(),
    st.sampled_from(["lora", "sft", "grpo", "classify"]),
)
def test_what_could_fit_the_target_is_fitted_to_it(
    rate: float, tokens: int | None, online: int | None, method: str
) -> None:
    plain = default(method)
    cond = conditions(online=online, tokens=tokens, pace=Pace(rate, 10.0, 1))
    fitted = fitted_recipe(plain, frozenset(FITTED_FIELDS), cond)
    seconds = estimate_time(fitted, cond).seconds
    smallest = parse_recipe(
        {**plain.model_dump(mode="json"),
         "distributed": {**plain.distributed.model_dump(), "rounds": MIN_ROUNDS, "inner_steps": 1}}
    )  # fmt: skip
    if estimate_time(smallest, cond).seconds <= TARGET_SECONDS:
        assert seconds <= TARGET_SECONDS
    assert seconds <= estimate_time(plain, cond).seconds  # never slower than the plain default


def test_wait_for_all_is_the_coordinators() -> None:
    from cairn.compute.coordinator import WAIT_FOR_ALL  # torch: only this test loads it

    assert WAIT_FOR_ALL == WAIT_FOR_ALL_SECONDS


def fitted_recipe(recipe: Recipe, free: frozenset[str], cond: RunConditions) -> Recipe:
    """`recipe` with what `fit_defaults` chose, validated as the builder's form does."""
    data = recipe.model_dump(mode="json")
    for path, value in fit_defaults(recipe, free, cond).items():
        section, name = path.split(".")
        data[section][name] = value
    return parse_recipe(data)
