"""Recipes, the no-code layer: how a builder turns datasets into a model without writing code.

A recipe is a YAML file (or the same mapping from the web form or the API): the method and its
hyperparameters, the base model, the dataset versions, the held-out split, the DiLoCo settings
and the budget. Each method has its own hyperparameter model with defaults a practitioner would
pick for a small model, so a recipe names only what it changes. Unknown keys are errors, and
every error names the field at fault (`recipe.yaml: hyperparameters.learning_rate: ...`).

One module per idea: `parts` (strict sections, errors), `hyperparameters` (the fields methods
share), `methods` (one module per training method, one registry), `sections` (datasets,
evaluation, DiLoCo, budget), `base` (`Recipe`), `parse` (mapping and YAML in, YAML out) and
`example` (what `cairn recipe init` writes). This package re-exports what other modules use.
Pure: only `load_recipe_file` reads (one file).
"""

from __future__ import annotations

from cairn.core.recipe.base import Recipe
from cairn.core.recipe.example import example_recipe
from cairn.core.recipe.hyperparameters import Hyperparameters
from cairn.core.recipe.methods import FAMILY_OF, METHODS, SPECS, Family, MethodSpec, method_spec
from cairn.core.recipe.methods.classify import ClassifyHyperparameters, ClassifyRecipe
from cairn.core.recipe.methods.distill import DistillHyperparameters, DistillRecipe
from cairn.core.recipe.methods.grpo import (
    BUILTIN_REWARDS,
    AnswerFormatReward,
    AnyReward,
    ExactAnswerReward,
    GrpoHyperparameters,
    GrpoRecipe,
    LengthPenaltyParams,
    LengthPenaltyReward,
    NoParams,
    NumericAnswerParams,
    NumericAnswerReward,
    Reward,
    RewardChoice,
    RewardName,
)
from cairn.core.recipe.methods.lora import LoraHyperparameters, LoraRecipe
from cairn.core.recipe.methods.sft import SftHyperparameters, SftRecipe
from cairn.core.recipe.parse import (
    MAX_RECIPE_BYTES,
    RECIPES,
    AnyRecipe,
    load_recipe,
    load_recipe_file,
    parse_recipe,
    recipe_to_yaml,
)
from cairn.core.recipe.parts import BASE_MODELS, ModelRef, ModuleName, RecipeError, RecipePart
from cairn.core.recipe.sections import (
    DEADLINE_SLACK,
    Aggregation,
    Budget,
    DatasetRef,
    Distributed,
    Evaluation,
)

__all__ = [
    "BASE_MODELS",
    "BUILTIN_REWARDS",
    "DEADLINE_SLACK",
    "FAMILY_OF",
    "MAX_RECIPE_BYTES",
    "METHODS",
    "RECIPES",
    "SPECS",
    "Aggregation",
    "AnswerFormatReward",
    "AnyRecipe",
    "AnyReward",
    "Budget",
    "ClassifyHyperparameters",
    "ClassifyRecipe",
    "DatasetRef",
    "DistillHyperparameters",
    "DistillRecipe",
    "Distributed",
    "Evaluation",
    "ExactAnswerReward",
    "Family",
    "GrpoHyperparameters",
    "GrpoRecipe",
    "Hyperparameters",
    "LengthPenaltyParams",
    "LengthPenaltyReward",
    "LoraHyperparameters",
    "LoraRecipe",
    "MethodSpec",
    "ModelRef",
    "ModuleName",
    "NoParams",
    "NumericAnswerParams",
    "NumericAnswerReward",
    "Recipe",
    "RecipeError",
    "RecipePart",
    "Reward",
    "RewardChoice",
    "RewardName",
    "SftHyperparameters",
    "SftRecipe",
    "example_recipe",
    "load_recipe",
    "load_recipe_file",
    "method_spec",
    "parse_recipe",
    "recipe_to_yaml",
]
