"""The training methods a recipe may name: one module each, one registry.

`SPECS` is the single list of methods. Everything that varies by method is read from it: the
recipe union `parse_recipe` validates against, the example recipes, the web form, the dataset
task a job needs (`cairn.compute.inputs`), the model family its base must be, and the record
fields a worker checks. Torch's half of each method, `cairn.train.methods`, is keyed by the same
names and refuses to load if the two lists differ.

Adding a method: a module here with its hyperparameter model, recipe subclass and `MethodSpec`,
listed below; and its training module in `cairn.train.methods`.
"""

from __future__ import annotations

from cairn.core.errors import InvalidInput
from cairn.core.recipe.methods.base import Family, MethodSpec
from cairn.core.recipe.methods.classify import CLASSIFY
from cairn.core.recipe.methods.distill import DISTILL
from cairn.core.recipe.methods.grpo import GRPO
from cairn.core.recipe.methods.lora import LORA
from cairn.core.recipe.methods.sft import SFT

SPECS: dict[str, MethodSpec] = {spec.name: spec for spec in (LORA, SFT, CLASSIFY, GRPO, DISTILL)}
"""Every method by name, in the order errors and forms list them."""
METHODS: tuple[str, ...] = tuple(SPECS)
FAMILY_OF: dict[str, Family] = {name: spec.family for name, spec in SPECS.items()}
"""The model family each method trains (what its base model must be)."""


def method_spec(name: str) -> MethodSpec:
    """The method called `name`; `InvalidInput` naming the methods there are if none is."""
    try:
        return SPECS[name]
    except KeyError:
        raise InvalidInput(
            f"unknown method {name!r}; expected one of {', '.join(METHODS)}"
        ) from None


__all__ = ["FAMILY_OF", "METHODS", "SPECS", "Family", "MethodSpec", "method_spec"]
