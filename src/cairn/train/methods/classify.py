"""classify: an encoder with a classification head, on (`text`, `label`) records.

`labels` (the dataset's label list, in the head's order) maps each label to its class index;
the loss is the cross-entropy over classes, and held out accuracy, macro F1 and that loss. With
`use_lora` the adapters and the head train, the encoder's own weights stay frozen.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from transformers import AutoModelForSequenceClassification

from cairn.core.errors import InvalidInput
from cairn.core.recipe import SPECS, ClassifyHyperparameters
from cairn.train.adapters import LoraSettings
from cairn.train.batches import Records, on_device
from cairn.train.methods.base import AdamW, Method, Run, StepLoss, Trainable


def classification_batch(
    tokenizer: Any, records: Records, labels: Sequence[str], max_length: int
) -> dict[str, torch.Tensor]:
    """Padded encoder inputs and each record's class index in `labels`."""
    encoded = tokenizer(
        [r["text"] for r in records],
        padding=True,
        truncation=True,
        max_length=max_length,
        return_tensors="pt",
    )
    index = {label: i for i, label in enumerate(labels)}
    return {
        "input_ids": encoded["input_ids"],  # (B, T)
        "attention_mask": encoded["attention_mask"],  # (B, T)
        "labels": torch.tensor([index[r["label"]] for r in records]),  # (B,)
    }


def macro_f1(predicted: Sequence[int], truth: Sequence[int], classes: int) -> float:
    """The unweighted mean over classes of F1 (a class never predicted nor present scores 0)."""
    scores = []
    for c in range(classes):
        tp = sum(p == c and t == c for p, t in zip(predicted, truth, strict=True))
        fp = sum(p == c and t != c for p, t in zip(predicted, truth, strict=True))
        fn = sum(p != c and t == c for p, t in zip(predicted, truth, strict=True))
        scores.append(2 * tp / (2 * tp + fp + fn) if tp else 0.0)
    return sum(scores) / classes


class Classify(Method[ClassifyHyperparameters]):
    """Cross-entropy over the dataset's labels."""

    spec = SPECS["classify"]

    def optimizer(self, hp: ClassifyHyperparameters) -> AdamW:
        # the classify recipe sets no weight decay and no warmup: it trains without either
        return AdamW(hp.learning_rate, weight_decay=0.0, warmup_ratio=0.0)

    def trains_lora(self, hp: ClassifyHyperparameters) -> bool:
        return hp.use_lora

    def lora(self, hp: ClassifyHyperparameters) -> LoraSettings:
        # the recipe sets the rank alone: alpha is twice it (updates scaled by 2), as lora's
        # defaults; dropout and modules are LoraSettings' defaults
        return LoraSettings(rank=hp.lora_r, alpha=2 * hp.lora_r, classifier=True)

    def check_training(self, run: Run, trainable: Trainable) -> None:
        if run.labels is None:
            return
        labels = run.labels
        num_labels = getattr(getattr(run.model, "config", None), "num_labels", None)
        if num_labels != len(labels):
            raise InvalidInput(
                f"classify: the model's head has {num_labels} classes but the dataset has "
                f"{len(labels)} labels"
            )

    def new_model(self, folder: Path, labels: Sequence[str] | None) -> Any:
        """An encoder with a new classification head for `labels`."""
        if not labels:
            raise InvalidInput("classify needs the dataset's labels")
        return AutoModelForSequenceClassification.from_pretrained(
            str(folder),
            num_labels=len(labels),
            id2label=dict(enumerate(labels)),
            label2id={label: i for i, label in enumerate(labels)},
            ignore_mismatched_sizes=True,  # a classifier base may have another label set
            torch_dtype=torch.float32,
        )

    def step_loss(self, run: Run, hp: ClassifyHyperparameters) -> StepLoss:
        assert run.labels is not None  # the spec's check refused None
        model, tokenizer, label_list = run.model, run.tokenizer, list(run.labels)

        def step(batch: list[Mapping[str, Any]]) -> tuple[torch.Tensor, dict[str, float]]:
            inputs = on_device(
                model, classification_batch(tokenizer, batch, label_list, hp.max_length)
            )
            logits = model(
                input_ids=inputs["input_ids"], attention_mask=inputs["attention_mask"]
            ).logits  # (B, K)
            return F.cross_entropy(logits, inputs["labels"]), {}

        return step

    def evaluate(
        self, run: Run, hp: ClassifyHyperparameters, records: Records, batch_size: int
    ) -> dict[str, float]:
        """`accuracy`, macro `f1` and the mean cross-entropy `loss`."""
        assert run.labels is not None  # the spec's check refused None
        model, tokenizer, labels = run.model, run.tokenizer, run.labels
        predicted: list[int] = []
        truth: list[int] = []
        total = 0.0
        for start in range(0, len(records), batch_size):
            batch = records[start : start + batch_size]
            inputs = on_device(model, classification_batch(tokenizer, batch, labels, hp.max_length))
            logits = model(
                input_ids=inputs["input_ids"], attention_mask=inputs["attention_mask"]
            ).logits  # (B, K)
            total += float(F.cross_entropy(logits, inputs["labels"], reduction="sum"))
            predicted += logits.argmax(dim=-1).tolist()
            truth += inputs["labels"].tolist()
        accuracy = sum(p == t for p, t in zip(predicted, truth, strict=True)) / len(truth)
        return {
            "accuracy": accuracy,
            "f1": macro_f1(predicted, truth, len(labels)),
            "loss": total / len(truth),
        }
