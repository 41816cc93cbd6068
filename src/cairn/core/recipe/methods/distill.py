"""distill: a student trained on a teacher model's output distribution and the data's targets."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

import cairn.core.recipe.hyperparameters as shared
from cairn.core.recipe.base import Recipe
from cairn.core.recipe.methods.base import MethodSpec
from cairn.core.recipe.parts import FieldProblem, ModelRef

_PLACEHOLDER_TEACHER = 2  # an example recipe's teacher: an asset id the builder replaces


class DistillHyperparameters(shared.Hyperparameters):
    """A student trained on a teacher model's output distribution and the data's own targets."""

    teacher_model: ModelRef = Field(
        description="The model whose outputs are the soft targets: an asset id or a base name"
    )
    learning_rate: float = shared.learning_rate(5e-5)
    epochs: int = shared.epochs(1)
    batch_size: int = shared.batch_size(8)
    max_length: int = shared.max_length(512)
    temperature: float = Field(
        2.0, gt=0.0, le=20.0, description="Softmax temperature of teacher and student logits"
    )
    alpha: float = Field(
        0.5, ge=0.0, le=1.0, description="Weight of the soft (teacher) loss; 1 - alpha the hard"
    )
    seed: int = shared.seed()

    def step_shape(self) -> shared.StepShape:
        return shared.StepShape(self.batch_size, tokens_per_sequence=self.max_length)


class DistillRecipe(Recipe):
    """Distillation from a teacher model."""

    method: Literal["distill"] = Field("distill", description="The training method")
    hyperparameters: DistillHyperparameters = Field(description="The method's settings")

    @model_validator(mode="after")
    def _teacher_differs(self) -> DistillRecipe:
        if self.hyperparameters.teacher_model == self.base_model:
            raise FieldProblem(
                ("hyperparameters", "teacher_model"), "must be a different model from base_model"
            )
        return self


DISTILL = MethodSpec(
    recipe=DistillRecipe,
    task="instruction",
    family="causal-lm",
    fields=("prompt", "response"),
    intro="Distillation: the base model (the student) learns to match a teacher model's output "
    "distribution as well as the data's own targets. Needs instruction datasets.",
    base_model="SmolLM2-135M-Instruct",
    example={"teacher_model": _PLACEHOLDER_TEACHER},
)
