"""`Recipe`: the fields every recipe has. Each method's module subclasses it to fix `method`.

A method's subclass (`LoraRecipe`, ...) narrows `method` to its name and `hyperparameters` to its
model, so `parse_recipe` picks the subclass by `method` (a discriminated union built from the
method registry) and each error names the method's own fields.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import Field, field_validator, model_validator

from cairn.core.recipe.hyperparameters import Hyperparameters
from cairn.core.recipe.parts import ModelRef, RecipePart
from cairn.core.recipe.sections import Budget, DatasetRef, Distributed, Evaluation

_SECTIONS = ("hyperparameters", "evaluation", "distributed", "budget")


class Recipe(RecipePart):
    """A training recipe. Parse one with `parse_recipe`, which picks the subclass for `method`."""

    name: str = Field(min_length=1, max_length=200, description="What the run is called")
    description: str | None = Field(None, max_length=2000, description="What the run is for")
    method: str = Field(description="The training method")
    base_model: ModelRef = Field(description="The model trained from: an asset id or base name")
    datasets: list[DatasetRef] = Field(
        min_length=1, max_length=64, description="The datasets trained on"
    )
    hyperparameters: Hyperparameters = Field(description="The method's settings")
    evaluation: Evaluation = Field(default_factory=Evaluation, description="The held-out split")
    distributed: Distributed = Field(default_factory=Distributed, description="DiLoCo rounds")
    budget: Budget = Field(default_factory=Budget, description="What the job may spend")

    @model_validator(mode="before")
    @classmethod
    def _sections_may_be_empty(cls, data: Any) -> Any:
        # a section whose keys are all commented out reads as null: take it as all defaults
        if isinstance(data, Mapping):
            data = {k: {} if k in _SECTIONS and v is None else v for k, v in data.items()}
            data.setdefault("hyperparameters", {})
        return data

    @field_validator("name")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("must not be blank")
        return value
