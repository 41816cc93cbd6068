"""`MethodSpec`: what a training method is without torch, as one value in the method registry.

A method is a plug-in in two halves, keyed by the same name. This half is pure and lives in
core, because parsing a recipe, writing an example and showing the web form need it while core
must not import torch: the recipe subclass (its `method` name and hyperparameter model), the
dataset task it trains on, the model family it trains, the record fields it reads and the text
that introduces it. The other half, `cairn.train.methods.<name>`, holds what needs torch: the
loss of a step, evaluation and the model it loads.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from cairn.core.data_policy import TaskType
from cairn.core.recipe.base import Recipe
from cairn.core.recipe.hyperparameters import Hyperparameters

Family = Literal["causal-lm", "encoder"]


@dataclass(frozen=True)
class MethodSpec:
    """One training method's recipe model and the data and model it needs."""

    recipe: type[Recipe]  # fixes `method` (a Literal default) and `hyperparameters`
    task: TaskType  # the dataset task it trains on
    family: Family  # the model family it trains: what its base model must be
    fields: tuple[str, ...]  # the record fields it reads: the task's required fields
    intro: str  # what it does and needs, in a sentence or three: the example recipe's header
    base_model: str  # the base model an example recipe starts from
    example: Mapping[str, Any] = field(default_factory=dict)  # placeholders for required settings

    @property
    def name(self) -> str:
        """The method's name, as a recipe's `method` spells it."""
        name = self.recipe.model_fields["method"].default
        assert isinstance(name, str), f"{self.recipe.__name__}.method needs a default"
        return name

    @property
    def hyperparameters(self) -> type[Hyperparameters]:
        """The method's hyperparameter model."""
        hyper = self.recipe.model_fields["hyperparameters"].annotation
        assert isinstance(hyper, type) and issubclass(hyper, Hyperparameters)
        return hyper

    @property
    def title(self) -> str:
        """The method in a few words: the first line of its recipe's docstring, no full stop."""
        return (self.recipe.__doc__ or self.name).splitlines()[0].rstrip(".")
