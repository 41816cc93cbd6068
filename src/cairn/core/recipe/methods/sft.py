"""sft: full fine-tuning of a causal LM on instruction (prompt, response) pairs."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

import cairn.core.recipe.hyperparameters as shared
from cairn.core.recipe.base import Recipe
from cairn.core.recipe.methods.base import MethodSpec


class SftHyperparameters(shared.Hyperparameters):
    """Full fine-tuning of a causal LM on instruction (prompt, response) pairs."""

    learning_rate: float = shared.learning_rate(2e-5)
    epochs: int = shared.epochs(1)
    batch_size: int = shared.batch_size(8)
    max_length: int = shared.max_length(512)
    warmup_ratio: float = shared.warmup_ratio()
    weight_decay: float = shared.weight_decay()
    seed: int = shared.seed()

    def step_shape(self) -> shared.StepShape:
        return shared.StepShape(self.batch_size, tokens_per_sequence=self.max_length)


class SftRecipe(Recipe):
    """Full fine-tuning of a causal LM."""

    method: Literal["sft"] = Field("sft", description="The training method")
    hyperparameters: SftHyperparameters = Field(
        default_factory=SftHyperparameters, description="The method's settings"
    )


SFT = MethodSpec(
    recipe=SftRecipe,
    task="instruction",
    family="causal-lm",
    fields=("prompt", "response"),
    intro="Supervised fine-tuning: every weight of a causal language model is trained. Needs "
    "instruction datasets (records with prompt and response).",
    base_model="SmolLM2-135M-Instruct",
)
