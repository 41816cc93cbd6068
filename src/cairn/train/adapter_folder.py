"""A LoRA adapter folder as Cairn stores it: which files mark one, and the base it names.

A LoRA job's result is peft's folder (`adapter_config.json`, `adapter_model.safetensors`) plus
the tokenizer, a model card and `cairn_adapter.json`, which names the base model by asset id and
by the manifest CID of its weights. Pure: the node reads these records without importing torch.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cairn.core.errors import InvalidInput

ADAPTER_CONFIG = "adapter_config.json"  # what peft writes beside adapter_model.safetensors
ADAPTER_BASE = "cairn_adapter.json"  # which model the adapter adapts, and a classifier's labels
ADAPTER_BASE_SCHEMA = "cairn.adapter/v1"


@dataclass(frozen=True)
class AdapterBase:
    """The model an adapter folder adapts: a Cairn model asset, and its weights by CID.

    `labels` is a classifier's label set in its head's order (peft stores the head's weights
    with the adapters but not the config that names them); None for a causal LM.
    """

    asset_id: int
    weights: str  # the manifest CID of the base's Hugging Face folder
    labels: tuple[str, ...] | None = None

    def to_json(self) -> dict[str, Any]:
        """The record written as `ADAPTER_BASE` in the adapter folder."""
        return {
            "schema": ADAPTER_BASE_SCHEMA,
            "base_asset": self.asset_id,
            "base_weights": self.weights,
            "labels": list(self.labels) if self.labels is not None else None,
        }

    @classmethod
    def read(cls, folder: Path) -> AdapterBase:
        """The base an adapter folder names; InvalidInput when it names none."""
        try:
            return cls.parse((folder / ADAPTER_BASE).read_bytes())
        except OSError as exc:
            raise InvalidInput(f"{folder} is not a Cairn adapter folder ({exc})") from None

    @classmethod
    def parse(cls, raw: bytes) -> AdapterBase:
        """The record `to_json` wrote, from its bytes; InvalidInput when it is not one."""
        try:
            data = json.loads(raw)
            if data.get("schema") != ADAPTER_BASE_SCHEMA:
                raise ValueError(f"schema is {data.get('schema')!r}")
            labels = data.get("labels")
            return cls(
                asset_id=int(data["base_asset"]),
                weights=str(data["base_weights"]),
                labels=tuple(str(label) for label in labels) if labels is not None else None,
            )
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise InvalidInput(f"not a Cairn adapter record ({ADAPTER_BASE}: {exc})") from None


def is_adapter_folder(folder: Path) -> bool:
    """Whether `folder` holds peft adapters rather than a whole model."""
    return (folder / ADAPTER_CONFIG).is_file() and not (folder / "config.json").exists()
