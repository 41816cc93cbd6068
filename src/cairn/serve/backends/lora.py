"""LoRA adapters served over one resident base model, switched per forward pass.

A node serves many LoRA fine-tunes of one base; merging each into its own copy of the base
would hold the base in memory once per fine-tune. Instead the base stays loaded once and each
linear layer an adapter touches is wrapped (`LoraSwitch`): it runs the base layer, then adds
`scale * B(A(x))` for the adapter that is active for this forward pass, if that adapter adapts
it. The decoding loop runs one forward pass per adapter in a step (`batching`), setting the
active adapter before each (`AdapterSet.active`), so sequences of different fine-tunes share
the base's weights and its loop.

`read_adapter` reads a peft folder (`adapter_config.json`, `adapter_model.safetensors`) of the
kind Cairn's LoRA jobs write: LoRA on linear layers, no bias, no DoRA, no extra trained modules,
one rank and alpha for every layer. Anything else is refused with the reason; such a model is
served merged instead. Loading an adapter checks every target against the base (the layer
exists, is linear, has the shapes the weights need) before any layer is wrapped: an adapter that
does not fit changes nothing.
"""

from __future__ import annotations

import json
import math
import threading
from collections.abc import Hashable
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors.torch import load_file

from cairn.core.errors import InvalidInput

CONFIG = "adapter_config.json"
WEIGHTS = "adapter_model.safetensors"
PREFIX = "base_model.model."  # what peft puts before a module's path in the base


@dataclass(frozen=True)
class LoraWeights:
    """One adapter: for each adapted module's path in the base, its A (r, in) and B (out, r)."""

    modules: dict[str, tuple[torch.Tensor, torch.Tensor]]
    scale: float  # alpha / r (alpha / sqrt(r) with rsLoRA)


def read_adapter(folder: Path, device: torch.device) -> LoraWeights:
    """The LoRA weights of a peft adapter folder, on `device`; InvalidInput if it holds another
    kind of adapter or is damaged."""
    try:
        config = json.loads((folder / CONFIG).read_text(encoding="utf-8"))
        tensors = load_file(str(folder / WEIGHTS), device=str(device))
    except (OSError, ValueError) as exc:
        raise InvalidInput(f"{folder} is not a readable peft adapter folder: {exc}") from None
    if not isinstance(config, dict) or config.get("peft_type") != "LORA":
        raise InvalidInput(f"{folder}: only LoRA adapters are served over a base")
    unsupported = {
        "use_dora": bool(config.get("use_dora")),
        "bias": config.get("bias", "none") != "none",
        "modules_to_save": bool(config.get("modules_to_save")),
        "fan_in_fan_out": bool(config.get("fan_in_fan_out")),
        "rank_pattern": bool(config.get("rank_pattern")),
        "alpha_pattern": bool(config.get("alpha_pattern")),
    }
    if any(unsupported.values()):
        names = ", ".join(k for k, v in unsupported.items() if v)
        raise InvalidInput(f"{folder}: adapters with {names} are served merged, not over a base")
    rank, alpha = int(config["r"]), float(config["lora_alpha"])
    scale = alpha / math.sqrt(rank) if config.get("use_rslora") else alpha / rank
    pairs: dict[str, dict[str, torch.Tensor]] = {}
    for key, tensor in tensors.items():
        for part in ("lora_A", "lora_B"):
            suffix = f".{part}.weight"
            if key.startswith(PREFIX) and key.endswith(suffix):
                path = key[len(PREFIX) : -len(suffix)]
                pairs.setdefault(path, {})[part] = tensor.float()
                break
        else:
            raise InvalidInput(f"{folder}: unexpected tensor {key!r} in {WEIGHTS}")
    modules = {}
    for path, pair in pairs.items():
        if set(pair) != {"lora_A", "lora_B"}:
            raise InvalidInput(f"{folder}: module {path} lacks half of its A and B")
        a, b = pair["lora_A"], pair["lora_B"]
        if a.dim() != 2 or b.dim() != 2 or a.shape[0] != rank or b.shape[1] != rank:
            raise InvalidInput(f"{folder}: module {path} is not rank {rank}")
        modules[path] = (a, b)
    if not modules:
        raise InvalidInput(f"{folder}: the adapter adapts no module")
    return LoraWeights(modules, scale)


class Active:
    """Which adapter the next forward pass uses (None: the base alone); set by the loop."""

    key: Hashable | None = None


class LoraSwitch(torch.nn.Module):
    """A linear layer of the base plus, for the active adapter, `scale * B(A(x))`."""

    def __init__(self, inner: torch.nn.Module, active: Active) -> None:
        super().__init__()
        self.inner = inner
        self.active = active
        self.in_features = int(inner.in_features)  # type: ignore[arg-type]
        self.out_features = int(inner.out_features)  # type: ignore[arg-type]
        self.adapters: dict[Hashable, tuple[torch.Tensor, torch.Tensor, float]] = {}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.inner(x)
        entry = self.adapters.get(self.active.key)
        if entry is None:
            return out
        a, b, scale = entry
        return out + (x @ a.T) @ b.T * scale  # (..., in) -> (..., r) -> (..., out)


class AdapterSet:
    """The adapters loaded over one base module, and the switch between them.

    `lock` is held for each forward pass and while layers are wrapped: a load never changes the
    module under a running pass.
    """

    def __init__(self, module: torch.nn.Module, device: torch.device) -> None:
        self.module, self.device = module, device
        self.active = Active()
        self.lock = threading.Lock()
        self.loaded: set[Hashable] = set()

    def ensure(self, key: Hashable, folder: Path) -> None:
        """Load the adapter in `folder` under `key`, once."""
        if key in self.loaded:
            return
        weights = read_adapter(folder, self.device)  # outside the lock: disk, not the module
        with self.lock:
            if key in self.loaded:
                return
            targets = {path: self._target(folder, path, ab) for path, ab in weights.modules.items()}
            for path, (a, b) in weights.modules.items():
                switch = targets[path]
                if switch is None:  # wrap the base layer, once for every adapter over it
                    parent_path, _, name = path.rpartition(".")
                    parent = self.module.get_submodule(parent_path)
                    switch = LoraSwitch(getattr(parent, name), self.active)
                    setattr(parent, name, switch)
                switch.adapters[key] = (a, b, weights.scale)
            self.loaded.add(key)

    def _target(
        self, folder: Path, path: str, ab: tuple[torch.Tensor, torch.Tensor]
    ) -> LoraSwitch | None:
        """The switch already at `path`, or None for a bare linear layer that fits `ab`."""
        try:
            layer = self.module.get_submodule(path)
        except AttributeError:
            raise InvalidInput(f"{folder}: the base model has no module {path}") from None
        shape_in = getattr(layer, "in_features", None)
        shape_out = getattr(layer, "out_features", None)
        if shape_in is None or shape_out is None:
            raise InvalidInput(f"{folder}: module {path} of the base model is not linear")
        a, b = ab
        if a.shape[1] != shape_in or b.shape[0] != shape_out:
            raise InvalidInput(
                f"{folder}: module {path} is {shape_in} -> {shape_out} in the base model; "
                f"the adapter's weights are for {a.shape[1]} -> {b.shape[0]}"
            )
        return layer if isinstance(layer, LoraSwitch) else None
