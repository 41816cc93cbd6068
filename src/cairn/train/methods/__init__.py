"""Training methods as plug-ins: one module per method over `base.Method`, one registry.

`METHODS` holds torch's half of every method in `cairn.core.recipe.SPECS` (the pure half: the
recipe model, task, model family, record fields), keyed by the same name; importing this package
fails if the two lists differ, so a method cannot be accepted by recipes and unknown to workers.
"""

from __future__ import annotations

from typing import Any

from cairn.core.errors import InvalidInput
from cairn.core.recipe import METHODS as RECIPE_METHODS
from cairn.train.methods.base import AdamW, Method, Run, StepLoss, Trainable
from cairn.train.methods.classify import Classify
from cairn.train.methods.distill import Distill
from cairn.train.methods.grpo import Grpo
from cairn.train.methods.lora import Lora
from cairn.train.methods.sft import Sft

METHODS: dict[str, Method[Any]] = {
    m.name: m for m in (Lora(), Sft(), Classify(), Grpo(), Distill())
}
"""Every training method by name, in the recipe registry's order."""
if tuple(METHODS) != RECIPE_METHODS:
    raise RuntimeError(
        f"training methods {list(METHODS)} differ from the recipe's {list(RECIPE_METHODS)}"
    )


def training_method(name: str) -> Method[Any]:
    """The method called `name`; `InvalidInput` naming the methods there are if none is."""
    try:
        return METHODS[name]
    except KeyError:
        raise InvalidInput(
            f"unknown method {name!r}; expected one of {', '.join(METHODS)}"
        ) from None


__all__ = ["METHODS", "AdamW", "Method", "Run", "StepLoss", "Trainable", "training_method"]
