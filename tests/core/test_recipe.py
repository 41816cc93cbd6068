"""Recipes: the examples load to the defaults, YAML round-trips, and every error names its field."""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any

import annotated_types as at
import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from cairn.core.cid import cid_of
from cairn.core.errors import InvalidInput
from cairn.core.recipe import (
    BUILTIN_REWARDS,
    MAX_RECIPE_BYTES,
    METHODS,
    RECIPES,
    Budget,
    ClassifyHyperparameters,
    DatasetRef,
    DistillHyperparameters,
    Distributed,
    Evaluation,
    GrpoHyperparameters,
    Hyperparameters,
    LengthPenaltyReward,
    LoraHyperparameters,
    Recipe,
    RecipeError,
    SftHyperparameters,
    example_recipe,
    load_recipe,
    load_recipe_file,
    parse_recipe,
    recipe_to_yaml,
)

BASE = {
    "name": "test run",
    "method": "lora",
    "base_model": "SmolLM2-135M-Instruct",
    "datasets": [{"dataset": 1}],
}


def recipe(**changes: Any) -> dict[str, Any]:
    """A valid recipe mapping with some top-level fields changed."""
    return {**BASE, **changes}


def hyperparameters_of(method: str) -> type[Hyperparameters]:
    cls = RECIPES[method].model_fields["hyperparameters"].annotation
    assert isinstance(cls, type) and issubclass(cls, Hyperparameters)
    return cls


def error_of(data: Any) -> RecipeError:
    with pytest.raises(RecipeError) as caught:
        parse_recipe(data, source="recipe.yaml")
    return caught.value


# --- examples and defaults ---------------------------------------------------------------------


@pytest.mark.parametrize("method", METHODS)
def test_every_example_loads_to_its_defaults(method: str) -> None:
    loaded = load_recipe(example_recipe(method))
    cls = RECIPES[method]
    hyper_cls = hyperparameters_of(method)
    placeholders = {"teacher_model": 2} if method == "distill" else {}
    base = "all-MiniLM-L6-v2" if method == "classify" else "SmolLM2-135M-Instruct"
    assert type(loaded) is cls
    assert loaded == cls.model_validate(
        {
            "name": f"my-{method}-run",
            "method": method,
            "base_model": base,
            "datasets": [{"dataset": 1}],
            "hyperparameters": placeholders,
        }
    )
    assert loaded.hyperparameters == hyper_cls.model_validate(placeholders)
    assert (loaded.evaluation, loaded.distributed, loaded.budget) == (
        Evaluation(),
        Distributed(),
        Budget(),
    )


@pytest.mark.parametrize("method", METHODS)
def test_every_example_field_has_a_comment_over_it(method: str) -> None:
    lines = example_recipe(method).splitlines()
    for i, line in enumerate(lines):
        if not line.strip() or line.lstrip().startswith("#") or line == "  - dataset: 1":
            continue
        above = lines[i - 1].lstrip()
        assert above.startswith("#"), f"no comment over {line!r}"
        if re.match(r"\s+[a-z_]+: \S", line):  # a setting with a value states its default
            block = " ".join(
                lines[j] for j in range(max(0, i - 3), i) if lines[j].lstrip().startswith("#")
            )
            assert re.search(r"Default|Required|placeholder|parameters", block), line


def test_example_of_an_unknown_method_is_refused() -> None:
    with pytest.raises(InvalidInput, match="unknown method 'dpo'; expected one of lora, sft"):
        example_recipe("dpo")


def test_grpo_example_documents_every_builtin_reward() -> None:
    text = example_recipe("grpo")
    for name in BUILTIN_REWARDS:
        assert f"- name: {name}" in text


def test_defaults_are_the_documented_ones() -> None:
    lora = LoraHyperparameters()
    assert (lora.learning_rate, lora.epochs, lora.batch_size, lora.max_length) == (2e-4, 1, 8, 512)
    assert (lora.lora_r, lora.lora_alpha, lora.lora_dropout) == (8, 16, 0.05)
    assert lora.target_modules == ["q_proj", "v_proj"]
    assert (lora.warmup_ratio, lora.weight_decay, lora.seed) == (0.03, 0.0, 42)
    sft = SftHyperparameters()
    assert (sft.learning_rate, sft.epochs, sft.batch_size, sft.max_length) == (2e-5, 1, 8, 512)
    assert (sft.warmup_ratio, sft.weight_decay, sft.seed) == (0.03, 0.0, 42)
    classify = ClassifyHyperparameters()
    assert (classify.learning_rate, classify.epochs, classify.batch_size) == (5e-5, 3, 16)
    assert (classify.max_length, classify.use_lora, classify.lora_r, classify.seed) == (
        256,
        False,
        8,
        42,
    )
    grpo = GrpoHyperparameters()
    assert (grpo.learning_rate, grpo.steps, grpo.batch_size, grpo.num_generations) == (
        1e-6,
        100,
        8,
        4,
    )
    assert (grpo.max_prompt_length, grpo.max_completion_length) == (256, 128)
    assert (grpo.temperature, grpo.beta, grpo.seed) == (0.9, 0.04, 42)
    assert [(r.name, r.weight) for r in grpo.rewards] == [
        ("exact_answer", 1.0),
        ("answer_format", 1.0),
    ]
    distill = DistillHyperparameters(teacher_model=7)
    assert (distill.learning_rate, distill.epochs, distill.batch_size) == (5e-5, 1, 8)
    assert (distill.max_length, distill.temperature, distill.alpha, distill.seed) == (
        512,
        2.0,
        0.5,
        42,
    )
    assert Evaluation().model_dump() == {"split": 0.1, "seed": 0}
    assert Distributed().model_dump() == {
        "workers": 2,
        "min_workers": 1,
        "rounds": 10,
        "inner_steps": 50,
        "outer_lr": 0.7,
        "outer_momentum": 0.9,
        "nesterov": True,
        "aggregation": "mean",
        "trim_ratio": 0.2,
        "byzantine": 1,
        "round_timeout_s": 600,
        "outer_encoding": "float32",
    }
    assert Budget().model_dump() == {"max_tokens": "0", "max_seconds": 3600}


def test_every_field_is_described() -> None:
    models: list[type[Any]] = [
        Recipe,
        DatasetRef,
        Evaluation,
        Distributed,
        Budget,
        *RECIPES.values(),
        *(type(reward) for reward in GrpoHyperparameters().rewards),
        LengthPenaltyReward,
        *(hyperparameters_of(method) for method in METHODS),
    ]
    for model in models:
        for name, field in model.model_fields.items():
            assert field.description, f"{model.__name__}.{name}"


# --- round trip --------------------------------------------------------------------------------


def _value(field: Any) -> st.SearchStrategy[Any]:
    """Any value the field's own bounds allow."""
    low: Any = None
    high: Any = None
    open_low = open_high = False
    for rule in field.metadata:
        if isinstance(rule, at.Gt):
            low, open_low = rule.gt, True
        elif isinstance(rule, at.Ge):
            low = rule.ge
        elif isinstance(rule, at.Lt):
            high, open_high = rule.lt, True
        elif isinstance(rule, at.Le):
            high = rule.le
    if field.annotation is bool:
        return st.booleans()
    if field.annotation is int:
        low = 0 if low is None else low + open_low
        high = low + 1000 if high is None else high - open_high
        return st.integers(low, high)
    return st.floats(
        low, high, exclude_min=open_low, exclude_max=open_high, allow_nan=False, width=64
    )


def _numbers(model: type[Any], draw: Any) -> dict[str, Any]:
    return {
        name: draw(_value(field))
        for name, field in model.model_fields.items()
        if field.annotation in (int, float, bool)
    }


@pytest.mark.parametrize("method", METHODS)
@settings(max_examples=40, deadline=None)
@given(data=st.data())
def test_recipe_to_yaml_round_trips(method: str, data: st.DataObject) -> None:
    hyper = _numbers(hyperparameters_of(method), data.draw)
    if method == "grpo":  # whole groups per batch
        hyper["batch_size"] = hyper["num_generations"] * data.draw(st.integers(1, 8))
        completion = hyper["max_completion_length"]
        hyper["rewards"] = [{"name": "numeric_answer", "weight": data.draw(st.floats(0.01, 100))}]
        if completion > 1:  # a length target must lie below the longest completion
            target = data.draw(st.integers(1, completion - 1))
            hyper["rewards"].append({"name": "length_penalty", "params": {"target": target}})
    if method == "distill":
        hyper["teacher_model"] = data.draw(st.integers(100, 10**6))  # never the base model
    distributed = _numbers(Distributed, data.draw)
    distributed["min_workers"] = data.draw(st.integers(1, distributed["workers"]))
    distributed["aggregation"] = data.draw(st.sampled_from(["mean", "median"]))
    raw = recipe(
        method=method,
        name=data.draw(st.text("abc XYZ-_.:é", min_size=1, max_size=30).filter(str.strip)),
        base_model=data.draw(st.sampled_from(["SmolLM2-135M-Instruct", 3])),
        datasets=[{"dataset": 4, "version": cid_of(b"v1")}, {"dataset": 5}],
        hyperparameters=hyper,
        evaluation=_numbers(Evaluation, data.draw),
        distributed=distributed,
        budget={
            "max_tokens": str(data.draw(st.integers(0, 2**256 - 1))),
            **_numbers(Budget, data.draw),
        },
    )
    parsed = parse_recipe(raw)
    text = recipe_to_yaml(parsed)
    assert load_recipe(text) == parsed
    assert yaml.safe_load(text)["hyperparameters"] == parsed.hyperparameters.model_dump(mode="json")


# --- errors name their field -------------------------------------------------------------------

GRPO = {"method": "grpo"}
ERRORS: list[tuple[str, dict[str, Any], str, str]] = [
    (
        "out of range",
        {"hyperparameters": {"learning_rate": 0}},
        "hyperparameters.learning_rate",
        "Input should be greater than 0; got 0",
    ),
    (
        "unknown key",
        {"hyperparameters": {"lerning_rate": 0.1}},
        "hyperparameters.lerning_rate",
        "unknown field; expected one of: learning_rate, epochs,",
    ),
    ("unknown top-level key", {"optimiser": "adam"}, "optimiser", "unknown field"),
    (
        "wrong type",
        {"hyperparameters": {"epochs": "many"}},
        "hyperparameters.epochs",
        "Input should be a valid integer",
    ),
    (
        "a bool for a number",
        {"hyperparameters": {"batch_size": True}},
        "hyperparameters.batch_size",
        "Input should be a number; got true",
    ),
    (
        "a fraction for an integer",
        {"hyperparameters": {"epochs": 1.5}},
        "hyperparameters.epochs",
        "fractional part",
    ),
    (
        "key of another method",
        {"hyperparameters": {"num_generations": 4}},
        "hyperparameters.num_generations",
        "unknown field",
    ),
    (
        "unknown method",
        {"method": "dpo"},
        "method",
        "unknown method 'dpo'; expected one of lora, sft, classify, grpo, distill",
    ),
    ("no method", {"method": None}, "method", "Field required: one of lora, sft, classify"),
    ("a method that is a number", {"method": 3}, "method", "unknown method '3'"),
    (
        "unknown reward",
        {**GRPO, "hyperparameters": {"rewards": ["exact_answer", "bleu"]}},
        "hyperparameters.rewards[1].name",
        "unknown reward 'bleu': rewards come from the built-in set (exact_answer, "
        "numeric_answer, answer_format, length_penalty); a recipe never runs code",
    ),
    (
        "a reward that looks like code",
        {**GRPO, "hyperparameters": {"rewards": [{"name": "__import__('os')", "weight": 1}]}},
        "hyperparameters.rewards[0].name",
        """unknown reward "__import__('os')": rewards come from the built-in set""",
    ),
    (
        "a reward without a name",
        {**GRPO, "hyperparameters": {"rewards": [{"weight": 2}]}},
        "hyperparameters.rewards[0].name",
        "Field required: one of exact_answer, numeric_answer, answer_format, length_penalty",
    ),
    (
        "a reward as a mapping of code",
        {**GRPO, "hyperparameters": {"rewards": [{"name": "exact_answer", "code": "print(1)"}]}},
        "hyperparameters.rewards[0].code",
        "unknown field; expected one of: name, weight, params",
    ),
    (
        "no rewards",
        {**GRPO, "hyperparameters": {"rewards": []}},
        "hyperparameters.rewards",
        "at least 1 item",
    ),
    (
        "a reward twice",
        {**GRPO, "hyperparameters": {"rewards": ["exact_answer", "exact_answer"]}},
        "hyperparameters.rewards[1].name",
        "exact_answer is listed twice",
    ),
    (
        "a zero reward weight",
        {**GRPO, "hyperparameters": {"rewards": [{"name": "exact_answer", "weight": 0}]}},
        "hyperparameters.rewards[0].weight",
        "greater than 0",
    ),
    (
        "an unknown reward parameter",
        {**GRPO, "hyperparameters": {"rewards": [{"name": "length_penalty", "params": {"t": 1}}]}},
        "hyperparameters.rewards[0].params.t",
        "unknown field; expected one of: target, scale",
    ),
    (
        "a parameter for a reward without any",
        {**GRPO, "hyperparameters": {"rewards": [{"name": "exact_answer", "params": {"x": 1}}]}},
        "hyperparameters.rewards[0].params.x",
        "unknown field; this takes no fields",
    ),
    (
        "a length target the completions never reach",
        {
            **GRPO,
            "hyperparameters": {"rewards": [{"name": "length_penalty", "params": {"target": 128}}]},
        },
        "hyperparameters.rewards[0].params.target",
        "must be below max_completion_length (128), or the penalty never applies; got 128",
    ),
    (
        "batch not a multiple of the group",
        {**GRPO, "hyperparameters": {"batch_size": 6}},
        "hyperparameters.batch_size",
        "must be a multiple of num_generations (4)",
    ),
    (
        "one generation per prompt",
        {**GRPO, "hyperparameters": {"num_generations": 1}},
        "hyperparameters.num_generations",
        "greater than or equal to 2",
    ),
    (
        "krum with too few workers",
        {"distributed": {"aggregation": "krum", "workers": 4, "byzantine": 1}},
        "distributed.workers",
        "krum tolerating byzantine=1 needs at least 2*byzantine+3 = 5 workers; got 4",
    ),
    (
        "trimmed mean that trims nothing",
        {"distributed": {"aggregation": "trimmed_mean", "workers": 4, "trim_ratio": 0.2}},
        "distributed.trim_ratio",
        "trims floor(0.2*4) = 0 updates, a plain mean: use at least 5 workers",
    ),
    (
        "trimmed mean with trim ratio 0",
        {"distributed": {"aggregation": "trimmed_mean", "workers": 10, "trim_ratio": 0}},
        "distributed.trim_ratio",
        "set trim_ratio above 0 or use aggregation mean",
    ),
    (
        "more workers required than there are",
        {"distributed": {"workers": 2, "min_workers": 3}},
        "distributed.min_workers",
        "must be at most workers (2); got 3",
    ),
    (
        "unknown aggregation",
        {"distributed": {"aggregation": "average"}},
        "distributed.aggregation",
        "Input should be 'mean', 'median', 'trimmed_mean' or 'krum'",
    ),
    (
        "a version that is not a CID",
        {"datasets": [{"dataset": 1, "version": "QmNotACid"}]},
        "datasets[0].version",
        "invalid CID 'QmNotACid'",
    ),
    ("no datasets", {"datasets": []}, "datasets", "List should have at least 1 item"),
    (
        "a dataset id as text",
        {"datasets": [{"dataset": 1}, {"dataset": "2"}]},
        "datasets[1].dataset",
        "Input should be a valid integer",
    ),
    ("dataset id 0", {"datasets": [{"dataset": 0}]}, "datasets[0].dataset", "greater than"),
    (
        "a base model path",
        {"base_model": "../../etc"},
        "base_model",
        "letters, digits, '.', '_' and '-' only (no paths or URLs)",
    ),
    ("asset id 0", {"base_model": 0}, "base_model", "a model asset id is a positive integer"),
    ("an empty model name", {"base_model": " "}, "base_model", "must not be empty"),
    ("a blank name", {"name": "  "}, "name", "must not be blank"),
    ("no name", {"name": None}, "name", "Field required"),
    ("a name that is a list", {"name": ["a"]}, "name", "Input should be a valid string"),
    (
        "not a number",
        {"hyperparameters": {"learning_rate": float("nan")}},
        "hyperparameters.learning_rate",
        "Input should be a finite number",
    ),
    (
        "a held-out split too large",
        {"evaluation": {"split": 0.6}},
        "evaluation.split",
        "less than or equal to 0.5; got 0.6",
    ),
    (
        "a negative budget",
        {"budget": {"max_tokens": "-1"}},
        "budget.max_tokens",
        "must be a whole number of smallest units",
    ),
    (
        "a budget in scientific notation",
        {"budget": {"max_tokens": "1e18"}},
        "budget.max_tokens",
        "got '1e18'",
    ),
    (
        "a budget beyond uint256",
        {"budget": {"max_tokens": str(2**256)}},
        "budget.max_tokens",
        "must fit in 256 bits",
    ),
    (
        "a short job",
        {"budget": {"max_seconds": 59}},
        "budget.max_seconds",
        "greater than or equal to 60",
    ),
    (
        "distill without a teacher",
        {"method": "distill"},
        "hyperparameters.teacher_model",
        "Field required",
    ),
    (
        "distill from itself",
        {"method": "distill", "hyperparameters": {"teacher_model": "SmolLM2-135M-Instruct"}},
        "hyperparameters.teacher_model",
        "must be a different model from base_model",
    ),
    (
        "a section that is a list",
        {"distributed": [1, 2]},
        "distributed",
        "Input should be a valid dictionary",
    ),
]


@pytest.mark.parametrize(
    ("changes", "loc", "msg"), [case[1:] for case in ERRORS], ids=[case[0] for case in ERRORS]
)
def test_an_error_names_its_field(changes: dict[str, Any], loc: str, msg: str) -> None:
    # a change to None removes the field
    error = error_of({k: v for k, v in recipe(**changes).items() if v is not None})
    assert error.errors[0]["loc"] == loc
    assert msg in error.errors[0]["msg"]
    assert error.message == f"recipe.yaml: {loc}: {error.errors[0]['msg']}"


def test_the_first_error_is_the_message_and_all_are_kept() -> None:
    error = error_of(
        recipe(hyperparameters={"learning_rate": -1, "epochs": 0}, evaluation={"split": 0})
    )
    assert isinstance(error, InvalidInput)
    assert isinstance(error, ValueError)
    assert error.message == (
        "recipe.yaml: hyperparameters.learning_rate: Input should be greater than 0; got -1"
    )
    assert [e["loc"] for e in error.errors] == [
        "hyperparameters.learning_rate",
        "hyperparameters.epochs",
        "evaluation.split",
    ]
    assert (
        error.lines()[2] == "recipe.yaml: evaluation.split: Input should be greater than 0; got 0"
    )


def test_a_recipe_that_is_not_a_mapping_is_refused() -> None:
    assert error_of([BASE]).errors == [
        {"loc": "", "msg": "must be a mapping of fields; got a list"}
    ]


def test_valid_settings_are_accepted() -> None:
    version = cid_of(b"manifest")
    parsed = parse_recipe(
        recipe(
            method="grpo",
            base_model=12,
            datasets=[{"dataset": 3, "version": version}],
            hyperparameters={
                "batch_size": 12,
                "num_generations": 6,
                "rewards": [
                    "numeric_answer",
                    {"name": "length_penalty", "weight": 0.5, "params": {"target": 100}},
                ],
            },
            distributed={"aggregation": "krum", "workers": 5, "byzantine": 1},
            budget={"max_tokens": 10**18},
        )
    )
    assert parsed.method == "grpo"
    assert isinstance(parsed.hyperparameters, GrpoHyperparameters)
    assert [r.name for r in parsed.hyperparameters.rewards] == ["numeric_answer", "length_penalty"]
    assert parsed.datasets[0].version == version
    assert parsed.base_model == 12
    assert parsed.budget.max_tokens == "1000000000000000000"
    assert parse_recipe(recipe(budget={"max_tokens": "007"})).budget.max_tokens == "7"
    trimmed = {"aggregation": "trimmed_mean", "workers": 5, "trim_ratio": 0.2}
    assert parse_recipe(recipe(distributed=trimmed)).distributed.aggregation == "trimmed_mean"


def test_a_yaml_learning_rate_in_e_notation_is_a_number() -> None:
    # YAML 1.1 reads `2e-4` (no dot) as text; it is still the number meant
    text = yaml.safe_dump(recipe()) + "hyperparameters:\n  learning_rate: 2e-4\n"
    parsed = load_recipe(text)
    assert isinstance(parsed.hyperparameters, LoraHyperparameters)
    assert parsed.hyperparameters.learning_rate == 2e-4


def test_an_empty_section_takes_the_defaults() -> None:
    text = yaml.safe_dump(recipe()) + "evaluation:\n  # split: 0.2\ndistributed:\n"
    parsed = load_recipe(text)
    assert (parsed.evaluation, parsed.distributed) == (Evaluation(), Distributed())


# --- YAML text ---------------------------------------------------------------------------------


def yaml_error(text: str) -> RecipeError:
    with pytest.raises(RecipeError) as caught:
        load_recipe(text, source="recipe.yaml")
    return caught.value


def test_a_yaml_syntax_error_gives_line_and_column() -> None:
    text = "name: run\nmethod: lora\nbase_model: [SmolLM2\ndatasets: []\n"
    error = yaml_error(text)
    assert re.fullmatch(r"recipe\.yaml: line [34], column \d+: .+", error.message), error.message
    assert error.errors[0]["loc"] == ""
    bad_indent = yaml_error("name: run\n  method: lora\n")
    assert bad_indent.message == (
        "recipe.yaml: line 2, column 9: mapping values are not allowed here"
    )


def test_a_key_given_twice_is_an_error() -> None:
    text = yaml.safe_dump(recipe()) + "name: again\n"
    line = text.count("\n")
    assert (
        yaml_error(text).message == f"recipe.yaml: line {line}, column 1: key 'name' appears twice"
    )


@pytest.mark.parametrize(
    ("text", "got"),
    [("- a\n- b\n", "a list"), ("just text\n", "a string"), ("", "nothing (the text is empty)")],
)
def test_the_top_level_must_be_a_mapping(text: str, got: str) -> None:
    assert yaml_error(text).message == (
        f"recipe.yaml: the top level must be a mapping of fields (name, method, ...); got {got}"
    )


def test_yaml_never_builds_python_objects() -> None:
    error = yaml_error("name: !!python/object/apply:os.system ['true']\n")
    assert "could not determine a constructor" in error.message


def test_a_value_yaml_cannot_build_is_an_error() -> None:
    assert yaml_error("name: x\nhyperparameters: {seed: " + "9" * 5000 + "}\n").message == (
        "recipe.yaml: a value cannot be read: Exceeds the limit (4300 digits) for integer string "
        "conversion: value has 5000 digits"
    )
    assert "day is out of range" in yaml_error("name: 2024-02-30\n").message


def test_an_oversized_recipe_is_refused() -> None:
    text = yaml.safe_dump(recipe(description="x" * MAX_RECIPE_BYTES))
    assert yaml_error(text).message == f"recipe.yaml: longer than {MAX_RECIPE_BYTES} bytes"


def test_a_file_error_starts_with_its_path(tmp_path: Path) -> None:
    path = tmp_path / "recipe.yaml"
    path.write_text(yaml.safe_dump(recipe(hyperparameters={"learning_rate": 2})))
    with pytest.raises(RecipeError) as caught:
        load_recipe_file(path)
    assert caught.value.message == (
        f"{path}: hyperparameters.learning_rate: Input should be less than or equal to 1; got 2"
    )
    with pytest.raises(InvalidInput, match="no such file"):
        load_recipe_file(tmp_path / "missing.yaml")
    path.write_bytes(b"name: \xff\n")
    with pytest.raises(RecipeError, match="not UTF-8 text"):
        load_recipe_file(path)


def test_a_file_loads(tmp_path: Path) -> None:
    path = tmp_path / "recipe.yaml"
    path.write_bytes(b"\xef\xbb\xbf" + example_recipe("classify").encode())  # with a BOM
    loaded = load_recipe_file(path)
    assert loaded.method == "classify"
    assert math.isclose(loaded.evaluation.split, 0.1)
