"""`Method`: a training method's torch half, one subclass per file over this base.

As Flower's strategies implement a small base, each method implements what varies between
methods: the loss of one batch (`step_loss`), held-out metrics (`evaluate`), and what the shared
inner loop reads from its hyperparameters (`optimizer`, `records_per_step`, `lora`), each by
typed attribute access on the method's own model: a setting a method lacks is stated where the
method fills it in, never a hidden default. Checks that every method needs (hyperparameters of
the right model, a non-empty shard, the record fields, the labels) are the pure spec's
(`MethodSpec.check_records`); a method adds its own on the model through `check_training`.

The pure half (recipe model, task, model family, record fields) is `spec`, a
`cairn.core.recipe.MethodSpec`; `cairn.train.methods` registers each method under its name.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Generic, Literal, TypeVar

import torch
from transformers import AutoModelForCausalLM

from cairn.core.recipe import Hyperparameters, MethodSpec
from cairn.train.adapters import LoraSettings
from cairn.train.batches import Records

H = TypeVar("H", bound=Hyperparameters)
Trainable = Literal["all", "lora"]
StepLoss = Callable[[list[Mapping[str, Any]]], tuple[torch.Tensor, dict[str, float]]]
"""The loss of one batch of records, and the metrics of that step (GRPO's reward)."""


@dataclass(frozen=True)
class Run:
    """What one round trains, or one evaluation measures: the model and what a method adds."""

    model: Any  # trains in place
    tokenizer: Any
    labels: Sequence[str] | None = None  # classify: the dataset's labels, in the head's order
    teacher: Any = None  # distill: the teacher model (same tokenizer)
    reference: Any = None  # grpo: the KL reference; None = the model as handed in


@dataclass(frozen=True)
class AdamW:
    """The inner optimizer's settings, as a method reads them from its hyperparameters."""

    learning_rate: float  # the peak rate, reached after warmup
    weight_decay: float  # AdamW's decoupled weight decay
    warmup_ratio: float  # share of the job's steps over which the rate rises from 0


class Method(ABC, Generic[H]):
    """One training method: its loss, its evaluation, and how it reads its hyperparameters."""

    spec: ClassVar[MethodSpec]

    @property
    def name(self) -> str:
        """The method's name, as a recipe spells it."""
        return self.spec.name

    # -- what the shared inner loop reads ----------------------------------------------------

    @abstractmethod
    def optimizer(self, hp: H) -> AdamW:
        """AdamW's settings for this method."""

    def records_per_step(self, hp: H) -> int:
        """Records each optimizer step draws from the shard: the weight of a step's update."""
        return hp.step_shape().records

    def trains_lora(self, hp: H) -> bool:
        """Whether the method trains LoRA adapters rather than every weight, by default."""
        return False

    def lora(self, hp: H) -> LoraSettings:
        """The adapters to add when this method trains LoRA (also when a caller asks it to)."""
        return LoraSettings()

    # -- checks ------------------------------------------------------------------------------

    def check_inputs(
        self, records: Records, hp: Hyperparameters, labels: Sequence[str] | None
    ) -> None:
        """Raise `InvalidInput` naming the first record, field or setting that does not fit
        (the spec's pure check: the node runs the same one before it escrows a budget)."""
        self.spec.check_records(records, hp, labels)

    def check_training(self, run: Run, trainable: Trainable) -> None:
        """Raise `InvalidInput` if the model, what trains, or the teacher do not fit."""

    # -- the model, the loss and evaluation --------------------------------------------------

    def new_model(self, folder: Path, labels: Sequence[str] | None) -> Any:
        """The model this method trains, from a Hugging Face folder (float32): a causal LM."""
        return AutoModelForCausalLM.from_pretrained(str(folder), torch_dtype=torch.float32)

    @abstractmethod
    def step_loss(self, run: Run, hp: H) -> StepLoss:
        """The loss of one batch of records (built under the round's seeded RNG)."""

    @abstractmethod
    def evaluate(self, run: Run, hp: H, records: Records, batch_size: int) -> dict[str, float]:
        """Held-out metrics, with the model in eval mode and gradients off."""
