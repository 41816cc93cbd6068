"""The builder's form: settings read from the recipe schema, and a recipe from a form's values."""

from __future__ import annotations

from cairn.compute.fitted_defaults import FITTED_FIELDS
from cairn.core.recipe import RECIPES, Distributed
from cairn.web.recipe_form import MARK, free_fields, read_form, with_defaults
from cairn.web.recipe_settings import rewards, settings


def form(**values: str | list[str]) -> dict[str, list[str]]:
    return {k.replace("__", "."): v if isinstance(v, list) else [v] for k, v in values.items()}


BASE = {"base_model": "1", "dataset": "2"}


def test_a_first_visit_is_the_methods_defaults() -> None:
    state = read_form(form(**BASE))
    assert state.errors == [] and state.recipe is not None
    assert state.recipe == RECIPES["lora"].model_validate(
        {"name": "my-lora-run", "base_model": 1, "datasets": [{"dataset": 2}]}
    )
    shown = {s.key: s for s in settings(state)["hyperparameters"]}
    assert (
        shown["lora.learning_rate"].value == "0.0002"
        and shown["lora.learning_rate"].kind == "number"
    )
    assert shown["lora.target_modules"].value == "q_proj, v_proj"
    assert "Default 0.0002" in shown["lora.learning_rate"].hint
    assert "Peak learning rate" in shown["lora.learning_rate"].hint


def test_every_schema_field_is_offered() -> None:
    for method, recipe in RECIPES.items():
        state = read_form(form(method=method, **BASE))
        keys = {s.key for section in settings(state).values() for s in section}
        hyper = recipe.model_fields["hyperparameters"].annotation
        for name in hyper.model_fields:  # type: ignore[union-attr]
            assert name == "rewards" or f"{method}.{name}" in keys
        assert {f"distributed.{n}" for n in Distributed.model_fields} <= keys


def test_values_become_the_recipe() -> None:
    state = read_form(
        form(
            **BASE,
            method="sft",
            name="tiny",
            **{
                MARK: "sft",
                "sft.learning_rate": "0.003",
                "sft.batch_size": "4",
                "distributed.workers": "3",
                "budget.max_tokens": "2.5",
                "version.2": "",
            },
        )
    )
    recipe = state.recipe
    assert recipe is not None and recipe.method == "sft" and recipe.name == "tiny"
    assert recipe.hyperparameters.learning_rate == 0.003
    assert recipe.distributed.workers == 3 and recipe.distributed.nesterov is False
    assert recipe.budget.max_tokens == str(25 * 10**17)


def test_errors_name_the_field_at_fault() -> None:
    state = read_form(
        form(**BASE, **{MARK: "lora", "lora.learning_rate": "-1", "distributed.min_workers": "5"})
    )
    assert state.recipe is None
    by_key = {e["key"]: e for e in state.errors}
    assert by_key["lora.learning_rate"]["loc"] == "hyperparameters.learning_rate"
    assert "greater than 0" in by_key["lora.learning_rate"]["msg"]
    assert by_key["distributed.min_workers"]["msg"] == "must be at most workers (2); got 5"
    assert by_key["distributed.min_workers"]["anchor"] == "f-distributed-min_workers"
    shown = {s.key: s for s in settings(state)["distributed"]}
    assert shown["distributed.min_workers"].error == "must be at most workers (2); got 5"


def test_a_budget_is_whole_cairn() -> None:
    for typed, smallest in (("1", 10**18), ("0.000000000000000001", 1), ("0", 0)):
        recipe = read_form(form(**BASE, **{"budget.max_tokens": typed})).recipe
        assert recipe is not None and recipe.budget.max_tokens == str(smallest), typed
    for bad, why in (
        ("ten", "budget 'ten' is not a number"),
        ("NaN", "budget 'NaN' is not a number"),
        ("-1", "budget '-1' must be zero or more with at most 18 decimals"),
        ("0.0000000000000000001", "must be zero or more with at most 18 decimals"),
        ("1e999999", "budget '1e999999' is too large"),
    ):
        state = read_form(form(**BASE, **{"budget.max_tokens": bad}))
        assert state.recipe is None and state.errors[0]["key"] == "budget.max_tokens"
        assert why in state.errors[0]["msg"], bad


def test_no_dataset_blames_the_dataset_list() -> None:
    state = read_form(form(base_model="1"))
    assert [e["key"] for e in state.errors] == ["dataset"]


def test_switching_method_starts_from_the_new_methods_defaults() -> None:
    # the form showed lora's settings; grpo's own (rewards included) start at their defaults
    state = read_form(form(**BASE, method="grpo", **{MARK: "lora", "lora.learning_rate": "0.1"}))
    assert state.recipe is not None and state.recipe.hyperparameters.learning_rate == 1e-6
    assert [r.on.checked for r in rewards(state)] == [True, False, True, False]


def test_grpo_rewards_from_the_form() -> None:
    values = form(
        **BASE,
        method="grpo",
        **{
            MARK: "grpo",
            "grpo.reward": ["exact_answer", "length_penalty"],
            "grpo.reward.length_penalty.weight": "0.5",
            "grpo.reward.length_penalty.target": "32",
        },
    )
    recipe = read_form(values).recipe
    assert recipe is not None
    assert [(r.name, r.weight) for r in recipe.hyperparameters.rewards] == [  # type: ignore[attr-defined]
        ("exact_answer", 1.0),
        ("length_penalty", 0.5),
    ]
    values["grpo.reward.length_penalty.target"] = ["500"]
    state = read_form(values)
    assert state.errors[0]["key"] == "grpo.reward.length_penalty.target"
    assert "below max_completion_length (128)" in state.errors[0]["msg"]
    values["grpo.reward"] = []
    assert read_form(values).errors[0]["key"] == "grpo.reward"


def test_fitted_defaults_fill_only_what_the_builder_left_empty() -> None:
    first = read_form(form(**BASE))
    assert free_fields(first, FITTED_FIELDS) == frozenset(FITTED_FIELDS)
    typed = read_form(form(**BASE, **{"distributed.rounds": "7", "lora.batch_size": " "}))
    assert "distributed.rounds" not in free_fields(typed, FITTED_FIELDS)
    assert "hyperparameters.batch_size" in free_fields(typed, FITTED_FIELDS)  # blank: empty

    chosen = {"distributed.rounds": 3, "distributed.inner_steps": 13}
    fitted = with_defaults(typed, chosen)
    assert fitted.recipe is not None
    assert fitted.recipe.distributed.rounds == 7  # typed: kept
    assert fitted.recipe.distributed.inner_steps == 13
    assert fitted.fitted == {"distributed.inner_steps": "13"}
    shown = {s.key: s for s in settings(fitted)["distributed"]}
    assert shown["distributed.inner_steps"].value == "13"
    assert (
        "Default 50; 13 here, chosen from the time estimate"
        in shown["distributed.inner_steps"].hint
    )
    assert "Default 10." in shown["distributed.rounds"].hint

    # values the recipe refuses leave the form as it was
    assert with_defaults(first, {"distributed.inner_steps": 0}) is first
