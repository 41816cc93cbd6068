"""A run's estimate: its size from rounds, inner steps, workers and batch, and its budget's pay."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from cairn.compute.estimate import ASSUMPTIONS, estimate_run
from cairn.core.recipe import parse_recipe

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
