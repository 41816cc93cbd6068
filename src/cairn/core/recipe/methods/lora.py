"""lora: LoRA adapters on a causal LM, trained on instruction (prompt, response) pairs."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

import cairn.core.recipe.hyperparameters as shared
from cairn.core.recipe.base import Recipe
from cairn.core.recipe.methods.base import MethodSpec
from cairn.core.recipe.parts import ModuleName


class LoraHyperparameters(shared.Hyperparameters):
    """LoRA adapters on a causal LM, trained on instruction (prompt, response) pairs."""

    learning_rate: float = shared.learning_rate(2e-4)
    epochs: int = shared.epochs(1)
    batch_size: int = shared.batch_size(8)
    max_length: int = shared.max_length(512)
    lora_r: int = shared.lora_r(8)
    lora_alpha: int = Field(
        16, ge=1, le=4096, description="LoRA scaling: updates are scaled by lora_alpha / lora_r"
    )
    lora_dropout: float = Field(
        0.05, ge=0.0, lt=1.0, description="Dropout on the LoRA input during training"
    )
    target_modules: list[ModuleName] = Field(
        default_factory=lambda: ["q_proj", "v_proj"],
        min_length=1,
        max_length=64,
        description="Names of the linear layers that get adapters (attention query and value)",
    )
    warmup_ratio: float = shared.warmup_ratio()
    weight_decay: float = shared.weight_decay()
    seed: int = shared.seed()

    def step_shape(self) -> shared.StepShape:
        return shared.StepShape(self.batch_size, tokens_per_sequence=self.max_length)


class LoraRecipe(Recipe):
    """LoRA fine-tuning of a causal LM."""

    method: Literal["lora"] = Field("lora", description="The training method")
    hyperparameters: LoraHyperparameters = Field(
        default_factory=LoraHyperparameters, description="The method's settings"
    )


LORA = MethodSpec(
    recipe=LoraRecipe,
    task="instruction",
    family="causal-lm",
    fields=("prompt", "response"),
    intro="LoRA fine-tuning: small adapter matrices trained on a causal language model while "
    "its own weights stay frozen. Needs instruction datasets (records with prompt and "
    "response).",
    base_model="SmolLM2-135M-Instruct",
)
