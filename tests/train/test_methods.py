"""The method registry: one list of methods, each with every part, each part where it belongs.

A method is two plug-ins keyed by one name: its pure half in `cairn.core.recipe.methods` (recipe
model, task, family, record fields, intro) and its torch half in `cairn.train.methods` (loss,
evaluation, model). Every table that once listed methods is now read from the registry.
"""

from __future__ import annotations

import ast
import inspect
from pathlib import Path
from typing import get_args

import pytest

import cairn.core.recipe.methods as core_methods
import cairn.train.methods as train_methods
from cairn.compute.inputs import TASK
from cairn.core.data_policy import TaskSpec, TaskType
from cairn.core.errors import InvalidInput
from cairn.core.recipe import (
    BASE_MODELS,
    FAMILY_OF,
    METHODS,
    RECIPES,
    SPECS,
    Hyperparameters,
    Recipe,
    RecipeError,
    example_recipe,
    load_recipe,
    method_spec,
    parse_recipe,
)
from cairn.train.adapters import LoraSettings
from cairn.train.methods import METHODS as TRAINING
from cairn.train.methods import AdamW, Method, training_method
from cairn.train.models import hyperparameters


def defaults(name: str) -> Hyperparameters:
    spec = SPECS[name]
    return spec.hyperparameters.model_validate(spec.example)


def test_both_halves_register_the_same_methods_in_the_same_order() -> None:
    assert METHODS == ("lora", "sft", "classify", "grpo", "distill")
    assert tuple(SPECS) == METHODS == tuple(TRAINING)
    for name, method in TRAINING.items():
        assert method.name == name and method.spec is SPECS[name]


@pytest.mark.parametrize("name", METHODS)
def test_every_method_has_every_pure_part(name: str) -> None:
    spec = SPECS[name]
    assert issubclass(spec.recipe, Recipe) and spec.recipe is not Recipe
    assert spec.recipe.model_fields["method"].default == name
    assert issubclass(spec.hyperparameters, Hyperparameters)
    assert spec.task in get_args(TaskType)
    labels = ["a", "b"] if spec.task == "classification" else []
    assert spec.fields == TaskSpec(type=spec.task, labels=labels).required_fields
    assert spec.family in ("causal-lm", "encoder")
    assert spec.intro.endswith(".") and spec.title
    assert spec.base_model in BASE_MODELS
    assert defaults(name).seed == 42  # the example's placeholders make a valid model


@pytest.mark.parametrize("name", METHODS)
def test_every_method_has_every_training_part(name: str) -> None:
    method = TRAINING[name]
    assert isinstance(method, Method) and not inspect.isabstract(type(method))
    hp = defaults(name)
    adamw = method.optimizer(hp)
    assert isinstance(adamw, AdamW) and adamw.learning_rate == hp.learning_rate  # type: ignore[attr-defined]
    assert method.records_per_step(hp) >= 1
    assert isinstance(method.trains_lora(hp), bool)
    assert isinstance(method.lora(hp), LoraSettings)


def test_a_setting_a_method_lacks_is_stated_by_the_method() -> None:
    # sft and lora set weight decay and warmup; the others train without either
    for name in METHODS:
        hp = defaults(name)
        adamw = TRAINING[name].optimizer(hp)
        has = "warmup_ratio" in type(hp).model_fields
        assert (adamw.warmup_ratio, adamw.weight_decay) == ((0.03, 0.0) if has else (0.0, 0.0))
    # classify's adapters: its rank, alpha twice the rank, the rest LoraSettings' defaults
    classify = TRAINING["classify"].lora(SPECS["classify"].hyperparameters(lora_r=4))
    assert classify == LoraSettings(rank=4, alpha=8, dropout=0.05, classifier=True)
    assert TRAINING["grpo"].lora(defaults("grpo")) == LoraSettings()
    # grpo draws prompts: batch_size completions are num_generations per prompt
    assert TRAINING["grpo"].records_per_step(defaults("grpo")) == 8 // 4


def test_the_old_tables_are_read_from_the_registry() -> None:
    assert {name: spec.recipe for name, spec in SPECS.items()} == RECIPES
    assert {name: spec.task for name, spec in SPECS.items()} == TASK
    assert {name: spec.family for name, spec in SPECS.items()} == FAMILY_OF
    assert FAMILY_OF["classify"] == "encoder" and TASK["grpo"] == "verifiable"


@pytest.mark.parametrize("name", METHODS)
def test_a_recipe_of_every_registered_method_parses_and_its_example_loads(name: str) -> None:
    recipe = load_recipe(example_recipe(name))
    assert type(recipe) is RECIPES[name] and recipe.method == name
    data = {"name": "r", "method": name, "base_model": 1, "datasets": [{"dataset": 1}]}
    data["hyperparameters"] = dict(SPECS[name].example)
    assert type(parse_recipe(data)) is RECIPES[name]
    job_hparams = hyperparameters(name, recipe.hyperparameters.model_dump(mode="json"))
    assert job_hparams == recipe.hyperparameters


def test_a_method_outside_the_registry_is_refused_everywhere_naming_the_registry() -> None:
    listed = ", ".join(METHODS)
    with pytest.raises(RecipeError, match=f"unknown method 'dpo'; expected one of {listed}$"):
        parse_recipe({"name": "r", "method": "dpo", "base_model": 1, "datasets": []})
    for lookup in (method_spec, training_method, example_recipe):
        with pytest.raises(InvalidInput, match=f"unknown method 'dpo'; expected one of {listed}"):
            lookup("dpo")


def _classes_defined(package: object, base: str) -> dict[str, list[str]]:
    """For each module of `package` but base and __init__: the classes it defines over `base`."""
    folder = Path(package.__file__).parent  # type: ignore[attr-defined]
    found = {}
    for path in sorted(folder.glob("*.py")):
        if path.stem in ("__init__", "base"):
            continue
        tree = ast.parse(path.read_text())
        found[path.stem] = [
            node.name
            for node in tree.body
            if isinstance(node, ast.ClassDef)
            and any(ast.unparse(b).split("[")[0] == base for b in node.bases)
        ]
    return found


def test_a_method_is_one_module_on_each_side_named_after_it() -> None:
    # adding a method: cairn/core/recipe/methods/<name>.py and cairn/train/methods/<name>.py,
    # each listed once in its package's registry; no method lives anywhere else
    assert sorted(_classes_defined(core_methods, "Recipe")) == sorted(METHODS)
    assert all(len(c) == 1 for c in _classes_defined(core_methods, "Recipe").values())
    assert sorted(_classes_defined(train_methods, "Method")) == sorted(METHODS)
    for name, classes in _classes_defined(train_methods, "Method").items():
        assert len(classes) == 1 and type(TRAINING[name]).__module__.endswith(f".{name}")
        assert SPECS[name].recipe.__module__.endswith(f".methods.{name}")


def test_training_code_reads_hyperparameters_by_typed_attribute_only() -> None:
    # a getattr(hp, "x", default) would put a second default beside the recipe's
    root = Path(train_methods.__file__).parents[1]
    for path in root.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call) and ast.unparse(node.func) == "getattr" and node.args:
                assert "hp" not in ast.unparse(node.args[0]), f"{path.name}: {ast.unparse(node)}"
