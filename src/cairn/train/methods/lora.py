"""lora: LoRA adapters on a causal LM, trained on sft's objective (the response tokens' loss).

Only the adapters train and travel: a round sends the adapter matrices, not the model. Their
rank, alpha, dropout and target modules are the recipe's.
"""

from __future__ import annotations

from cairn.core.errors import InvalidInput
from cairn.core.recipe import SPECS, LoraHyperparameters
from cairn.train.adapters import LoraSettings
from cairn.train.batches import Records
from cairn.train.methods.base import AdamW, Method, Run, StepLoss, Trainable
from cairn.train.methods.sft import evaluate_responses, response_step


class Lora(Method[LoraHyperparameters]):
    """sft's objective on LoRA adapters."""

    spec = SPECS["lora"]

    def optimizer(self, hp: LoraHyperparameters) -> AdamW:
        return AdamW(hp.learning_rate, hp.weight_decay, hp.warmup_ratio)

    def trains_lora(self, hp: LoraHyperparameters) -> bool:
        return True

    def lora(self, hp: LoraHyperparameters) -> LoraSettings:
        return LoraSettings(hp.lora_r, hp.lora_alpha, hp.lora_dropout, tuple(hp.target_modules))

    def check_training(self, run: Run, trainable: Trainable) -> None:
        if trainable != "lora":
            raise InvalidInput("method lora trains LoRA adapters: trainable must be 'lora'")

    def step_loss(self, run: Run, hp: LoraHyperparameters) -> StepLoss:
        return response_step(run.model, run.tokenizer, hp.max_length)

    def evaluate(
        self, run: Run, hp: LoraHyperparameters, records: Records, batch_size: int
    ) -> dict[str, float]:
        return evaluate_responses(run, records, hp.max_length, batch_size)
