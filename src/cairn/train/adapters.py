"""LoRA adapters: how a method asks for them (`LoraSettings`), adding them, spotting them, and
a LoRA job's result as a peft adapter folder (`save_adapter`) that names its base model by asset
id and CID (`AdapterBase`), with the plain model merged from it on request (`merge_adapter`).

peft takes seconds to import, and a worker's process is new every round: it is imported only
when adapters are added, so methods that train every weight never pay for it.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from cairn.core.errors import InvalidInput
from cairn.train.adapter_folder import ADAPTER_BASE, ADAPTER_CONFIG, AdapterBase

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


# --- a LoRA job's result: the adapter folder, and the plain model merged from it ---------------


def save_adapter(model: PeftModel, tokenizer: Any, folder: Path, base: AdapterBase) -> None:
    """Write `model`'s adapters as a peft folder that names `base` (and the tokenizer).

    peft records the local path the base was loaded from as `base_model_name_or_path`; that
    path means nothing elsewhere, so it becomes `cairn:model/<asset id>` and the folder says
    which asset and weights in `ADAPTER_BASE`.
    """
    folder.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(str(folder), safe_serialization=True)
    tokenizer.save_pretrained(str(folder))
    config_path = folder / ADAPTER_CONFIG
    config = json.loads(config_path.read_text(encoding="utf-8"))
    config["base_model_name_or_path"] = f"cairn:model/{base.asset_id}"
    config_path.write_text(json.dumps(config, indent=2, sort_keys=True), encoding="utf-8")
    (folder / ADAPTER_BASE).write_text(json.dumps(base.to_json(), indent=2), encoding="utf-8")


def load_with_adapter(base_folder: Path, adapter_folder: Path) -> Any:
    """The base model in `base_folder` with the adapters of `adapter_folder` (float32, CPU,
    inference): a classifier when the adapter names labels, else a causal LM."""
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification

    base = AdapterBase.read(adapter_folder)
    if base.labels is not None:
        labels = list(base.labels)
        model = AutoModelForSequenceClassification.from_pretrained(
            str(base_folder),
            num_labels=len(labels),
            id2label=dict(enumerate(labels)),
            label2id={label: i for i, label in enumerate(labels)},
            ignore_mismatched_sizes=True,  # the head comes from the adapter folder
            dtype=torch.float32,
        )
    else:
        model = AutoModelForCausalLM.from_pretrained(str(base_folder), dtype=torch.float32)
    try:
        return PeftModel.from_pretrained(model, str(adapter_folder))
    except (ValueError, KeyError, RuntimeError, OSError) as exc:
        raise InvalidInput(
            f"the adapters in {adapter_folder} do not fit the base model in {base_folder}: {exc}"
        ) from None


def merge_adapter(base_folder: Path, adapter_folder: Path, out: Path) -> Path:
    """Write the plain Hugging Face model that `adapter_folder` makes of `base_folder` into
    `out` (the adapters merged into the weights they adapt); whole or not at all."""
    from transformers import AutoTokenizer

    merged = load_with_adapter(base_folder, adapter_folder).merge_and_unload()
    tokenizer = AutoTokenizer.from_pretrained(str(adapter_folder))
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        merged.save_pretrained(str(tmp), safe_serialization=True)
        tokenizer.save_pretrained(str(tmp))
        shutil.rmtree(out, ignore_errors=True)
        os.replace(tmp, out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out
