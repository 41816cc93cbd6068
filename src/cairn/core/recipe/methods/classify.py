"""classify: an encoder with a classification head, trained on (text, label) records."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

import cairn.core.recipe.hyperparameters as shared
from cairn.core.recipe.base import Recipe
from cairn.core.recipe.methods.base import MethodSpec


class ClassifyHyperparameters(shared.Hyperparameters):
    """An encoder with a classification head, trained on (text, label) records."""

    learning_rate: float = shared.learning_rate(5e-5)
    epochs: int = shared.epochs(3)
    batch_size: int = shared.batch_size(16)
    max_length: int = shared.max_length(256)
    use_lora: bool = Field(
        False, description="Train LoRA adapters (and the head) instead of every weight"
    )
    lora_r: int = shared.lora_r(8)
    seed: int = shared.seed()

    def step_shape(self) -> shared.StepShape:
        return shared.StepShape(self.batch_size, tokens_per_sequence=self.max_length)


class ClassifyRecipe(Recipe):
    """An encoder and classification head."""

    method: Literal["classify"] = Field("classify", description="The training method")
    hyperparameters: ClassifyHyperparameters = Field(
        default_factory=ClassifyHyperparameters, description="The method's settings"
    )


CLASSIFY = MethodSpec(
    recipe=ClassifyRecipe,
    task="classification",
    family="encoder",
    fields=("text", "label"),
    labelled=True,
    intro="Classification: an encoder with a new classification head, optionally with LoRA. "
    "Needs classification datasets (records with text and label); the labels come from them.",
    base_model="all-MiniLM-L6-v2",
)
