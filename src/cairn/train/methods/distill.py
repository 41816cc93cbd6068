"""distill: a student learns a teacher's softened distribution on instruction records.

loss = alpha * T^2 * KL(teacher_T || student_T) + (1 - alpha) * CE(response), over the response
tokens (Hinton et al.'s T^2 keeps the soft gradients' scale as T grows). Teacher and student
share one tokenizer. Held out, the student's response loss and perplexity, as sft's.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
import torch.nn.functional as F

from cairn.core.errors import InvalidInput
from cairn.core.recipe import SPECS, DistillHyperparameters
from cairn.train.batches import Records, instruction_batch, on_device
from cairn.train.methods.base import AdamW, Method, Run, StepLoss, Trainable
from cairn.train.methods.sft import evaluate_responses, response_loss


def distill_loss(
    student: torch.Tensor,
    teacher: torch.Tensor,
    labels: torch.Tensor,
    temperature: float,
    alpha: float,
) -> torch.Tensor:
    """alpha * T^2 * KL(teacher_T || student_T) + (1 - alpha) * CE, over response tokens."""
    keep = labels[:, 1:] != -100  # (B, T-1)
    s = student[:, :-1][keep] / temperature  # (N, V)
    t = teacher[:, :-1][keep] / temperature  # (N, V)
    soft = F.kl_div(
        F.log_softmax(s, dim=-1), F.log_softmax(t, dim=-1), log_target=True, reduction="batchmean"
    )
    return alpha * temperature**2 * soft + (1 - alpha) * response_loss(student, labels)


class Distill(Method[DistillHyperparameters]):
    """The teacher's soft targets and the data's own."""

    spec = SPECS["distill"]

    def optimizer(self, hp: DistillHyperparameters) -> AdamW:
        # the distill recipe sets no weight decay and no warmup: it trains without either
        return AdamW(hp.learning_rate, weight_decay=0.0, warmup_ratio=0.0)

    def check_training(self, run: Run, trainable: Trainable) -> None:
        if run.teacher is None:
            raise InvalidInput("distill needs a teacher model")

    def step_loss(self, run: Run, hp: DistillHyperparameters) -> StepLoss:
        model, tokenizer, teacher = run.model, run.tokenizer, run.teacher
        teacher.eval()

        def step(batch: list[Mapping[str, Any]]) -> tuple[torch.Tensor, dict[str, float]]:
            inputs = on_device(model, instruction_batch(tokenizer, batch, hp.max_length))
            args = {"input_ids": inputs["input_ids"], "attention_mask": inputs["attention_mask"]}
            student = model(**args).logits  # (B, T, V)
            with torch.no_grad():
                soft_targets = teacher(**args).logits  # (B, T, V')
            if soft_targets.size(-1) != student.size(-1):
                raise InvalidInput(
                    f"distill: the teacher's vocabulary ({soft_targets.size(-1)}) differs from "
                    f"the student's ({student.size(-1)}); they must share a tokenizer"
                )
            loss = distill_loss(student, soft_targets, inputs["labels"], hp.temperature, hp.alpha)
            return loss, {}

        return step

    def evaluate(
        self, run: Run, hp: DistillHyperparameters, records: Records, batch_size: int
    ) -> dict[str, float]:
        return evaluate_responses(run, records, hp.max_length, batch_size)
