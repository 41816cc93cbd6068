"""A Hugging Face folder as the transformers backend reads it before loading its weights:
which kind of model it is, its tokenizer, its context length and a classifier's labels; and the
errors a damaged or missing folder gives a caller."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from transformers import AutoConfig, AutoTokenizer, PretrainedConfig, PreTrainedTokenizerBase

from cairn.core.errors import ConfigError, InvalidInput, NotFound
from cairn.serve.backends.base import ServedModel

# config fields that hold a model's context length, by architecture family
CONTEXT_FIELDS = ("max_position_embeddings", "n_positions", "max_seq_len", "seq_length", "n_ctx")
UNBOUNDED = 1_000_000  # tokenizers without a limit report 1e30 as model_max_length


@dataclass
class ModelFolder:
    """What a model folder says before its weights load: kind, tokenizer and context."""

    kind: str  # "causal-lm", "encoder" or "classifier" (an encoder with a classification head)
    config: PretrainedConfig
    tokenizer: PreTrainedTokenizerBase
    context: int
    labels: list[str]  # a classifier's labels, in the order of its logits
    # fast tokenizers change their own padding and truncation state on each call
    tokenizer_lock: threading.Lock = field(default_factory=threading.Lock)


def folder_path(model: ServedModel) -> Path:
    if model.folder is None:
        raise ConfigError(
            f"model {model.id} has no local folder: the transformers backend serves "
            "Hugging Face folders"
        )
    return model.folder.resolve()


def unservable(model: ServedModel, why: str, exc: Exception) -> InvalidInput:
    """A model whose published files are damaged: the caller named a model that cannot serve."""
    return InvalidInput(
        f"model {model.id} cannot be served: {why} ({type(exc).__name__}: {exc}); "
        "its owner must publish it again"
    )


def read_folder(model: ServedModel, path: Path) -> ModelFolder:
    if not (path / "config.json").is_file():
        raise NotFound(
            f"model {model.id}: {path} is not a Hugging Face model folder (no config.json)"
        )
    try:
        config = AutoConfig.from_pretrained(str(path))
        tokenizer = AutoTokenizer.from_pretrained(str(path))
    except Exception as exc:  # a damaged config or tokenizer, as for weights
        raise unservable(model, "its config or tokenizer does not load", exc) from exc
    heads = [a for a in config.architectures or [] if a.endswith("ForSequenceClassification")]
    if model.family == "causal-lm":
        kind = "causal-lm"
    else:
        kind = "classifier" if heads else "encoder"
        if tokenizer.pad_token is None:  # batches need padding; the mask hides it
            tokenizer.pad_token = tokenizer.eos_token or tokenizer.unk_token
    limits = [int(getattr(config, f)) for f in CONTEXT_FIELDS if getattr(config, f, None)]
    if tokenizer.model_max_length and tokenizer.model_max_length < UNBOUNDED:
        limits.append(int(tokenizer.model_max_length))
    if not limits:
        raise ConfigError(f"model {model.id}: {path} states no context length")
    id2label: dict[Any, str] = dict(getattr(config, "id2label", None) or {})
    labels = [str(id2label[i]) for i in sorted(id2label, key=int)] if kind == "classifier" else []
    return ModelFolder(
        kind=kind, config=config, tokenizer=tokenizer, context=min(limits), labels=labels
    )
