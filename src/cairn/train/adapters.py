"""LoRA adapters: how a method asks for them (`LoraSettings`), adding them, and spotting them.

peft takes seconds to import, and a worker's process is new every round: it is imported only
when adapters are added, so methods that train every weight never pay for it.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch

from cairn.core.errors import InvalidInput

if TYPE_CHECKING:
    from peft import PeftModel


@dataclass(frozen=True)
class LoraSettings:
    """The adapters a method adds; the defaults are for a method with no LoRA settings of its own.

    Rank 8, alpha 16 (updates scaled by 2) and dropout 0.05 on peft's default modules for the
    architecture: the values of the lora recipe's defaults, but for the module list.
    """

    rank: int = 8
    alpha: int = 16
    dropout: float = 0.05
    target_modules: tuple[str, ...] | None = None  # None: peft's default for the architecture
    classifier: bool = False  # a classifier's head trains with its adapters (peft's SEQ_CLS)


def add_lora(model: torch.nn.Module, settings: LoraSettings, seed: int = 0) -> PeftModel:
    """`model` with LoRA adapters as `settings` say (a PeftModel is returned as it is).

    `seed` fixes the adapters' initialisation (B starts at zero, A at random). Mutates `model`
    (peft injects the adapters in place): keep the returned model for later rounds.
    """
    from peft import LoraConfig, PeftModel, TaskType, get_peft_model
    from peft.tuners.lora import LoraLayer

    if isinstance(model, PeftModel):
        return model
    if any(isinstance(m, LoraLayer) for m in model.modules()):
        raise InvalidInput(
            "the model already holds LoRA layers: pass the PeftModel add_lora returned"
        )
    targets = settings.target_modules
    config = LoraConfig(
        r=settings.rank,
        lora_alpha=settings.alpha,
        lora_dropout=settings.dropout,
        target_modules=list(targets) if targets is not None else None,
        task_type=TaskType.SEQ_CLS if settings.classifier else None,
    )
    try:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            return get_peft_model(model, config)
    except ValueError as exc:  # e.g. a target module the model does not have
        raise InvalidInput(f"cannot add LoRA adapters: {exc}") from None


def is_peft(model: Any) -> bool:
    """Whether `model` carries peft adapters (without importing peft when it is not loaded)."""
    peft = sys.modules.get("peft")
    return peft is not None and isinstance(model, peft.PeftModel)
