"""Models as a job holds them: load the base for a method, start its trainables, export the end.

The coordinator and every worker build the same model the same way: `load_for_method` on the
base model's Hugging Face folder, then `load_params` of the round's parameters. The first
round's parameters come from `initial_params` on the coordinator (a classifier's new head and
LoRA's new adapters are drawn from the job's seed once and sent to every worker, so all start
from the same point). `save_result` writes the trained model: a peft adapter folder when the job
trained LoRA adapters (megabytes, naming its base by asset id and CID), else a plain Hugging
Face folder.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from transformers import AutoTokenizer, PreTrainedModel

from cairn.core.errors import NotFound
from cairn.core.recipe import Hyperparameters, method_spec
from cairn.train.adapters import AdapterBase, add_lora, is_peft, save_adapter
from cairn.train.inner import trainable_params
from cairn.train.methods import training_method


def hyperparameters(method: str, data: dict[str, Any]) -> Hyperparameters:
    """A method's hyperparameters from their JSON (as a job spec stores them)."""
    return method_spec(method).hyperparameters.model_validate(data)


def load_for_method(
    method: str,
    folder: Path,
    hparams: Hyperparameters,
    *,
    labels: Sequence[str] | None = None,
    seed: int = 0,
) -> tuple[Any, Any]:
    """The model `method` trains, built from `folder`, and its tokenizer (float32, CPU).

    classify gets a sequence-classification head for `labels` (drawn from `seed`); LoRA methods
    get their adapters (drawn from `seed`). Every other weight is the folder's.
    """
    if not (folder / "config.json").exists():
        raise NotFound(f"{folder} is not a Hugging Face model folder (no config.json)")
    plugin = training_method(method)
    tokenizer = AutoTokenizer.from_pretrained(str(folder))
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = plugin.new_model(folder, labels)
    if plugin.trains_lora(hparams):
        model = add_lora(model, plugin.lora(hparams), seed)
    else:
        for p in model.parameters():
            p.requires_grad_(True)
    if tokenizer.pad_token is None and tokenizer.eos_token is not None:
        tokenizer.pad_token = tokenizer.eos_token
    return model, tokenizer


def initial_params(model: Any) -> dict[str, torch.Tensor]:
    """The parameters a job exchanges, as they start (what `inner.trainable_params` names)."""
    return trainable_params(model)


def save_result(model: Any, tokenizer: Any, folder: Path, base: AdapterBase) -> None:
    """Write a job's trained model into `folder`: its adapters alone (naming `base`) when it
    trained LoRA, else every weight as a plain Hugging Face folder."""
    if is_peft(model):
        save_adapter(model, tokenizer, folder, base)
        return
    plain: PreTrainedModel = model
    plain.save_pretrained(str(folder), safe_serialization=True)
    tokenizer.save_pretrained(str(folder))
