"""sft: every weight of a causal LM trained on instruction records (`prompt`, `response`).

Each record is written with the tokenizer's chat template; the loss is the cross-entropy of
the response tokens only, and held out the same loss and its perplexity. `lora` trains the same
objective on adapters, and `distill` mixes it with the teacher's soft targets.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import torch
import torch.nn.functional as F

from cairn.core.errors import InvalidInput
from cairn.core.recipe import SPECS, SftHyperparameters
from cairn.train.batches import Records, instruction_batch, on_device
from cairn.train.methods.base import AdamW, Method, Run, StepLoss, Trainable


def response_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Mean next-token cross-entropy over the tokens whose label is not -100."""
    logits = logits[:, :-1]  # (B, T-1, V): position t predicts token t+1
    targets = labels[:, 1:]  # (B, T-1)
    return F.cross_entropy(logits.reshape(-1, logits.size(-1)), targets.reshape(-1))


def response_step(model: Any, tokenizer: Any, max_length: int) -> StepLoss:
    """The response loss of one batch of instruction records."""

    def step(batch: list[Mapping[str, Any]]) -> tuple[torch.Tensor, dict[str, float]]:
        inputs = on_device(model, instruction_batch(tokenizer, batch, max_length))
        logits = model(
            input_ids=inputs["input_ids"], attention_mask=inputs["attention_mask"]
        ).logits  # (B, T, V)
        return response_loss(logits, inputs["labels"]), {}

    return step


def evaluate_responses(
    run: Run, records: Records, max_length: int, batch_size: int
) -> dict[str, float]:
    """`loss` (response-token cross-entropy over all held-out tokens) and `perplexity`."""
    model, tokenizer = run.model, run.tokenizer
    total, tokens = 0.0, 0
    for start in range(0, len(records), batch_size):
        inputs = on_device(
            model, instruction_batch(tokenizer, records[start : start + batch_size], max_length)
        )
        logits = model(
            input_ids=inputs["input_ids"], attention_mask=inputs["attention_mask"]
        ).logits  # (B, T, V)
        n = int((inputs["labels"][:, 1:] != -100).sum())
        if n:
            total += float(response_loss(logits, inputs["labels"])) * n
            tokens += n
    if not tokens:
        raise InvalidInput("no response tokens to evaluate (all responses empty or truncated)")
    loss = total / tokens
    return {"loss": loss, "perplexity": math.exp(min(loss, 700.0))}


class Sft(Method[SftHyperparameters]):
    """Full fine-tuning on the response tokens."""

    spec = SPECS["sft"]

    def optimizer(self, hp: SftHyperparameters) -> AdamW:
        return AdamW(hp.learning_rate, hp.weight_decay, hp.warmup_ratio)

    def check_training(self, run: Run, trainable: Trainable) -> None:
        if trainable != "all":
            raise InvalidInput("method sft trains every weight: use method lora for adapters")

    def step_loss(self, run: Run, hp: SftHyperparameters) -> StepLoss:
        return response_step(run.model, run.tokenizer, hp.max_length)

    def evaluate(
        self, run: Run, hp: SftHyperparameters, records: Records, batch_size: int
    ) -> dict[str, float]:
        return evaluate_responses(run, records, hp.max_length, batch_size)
