"""A round's tensors as one Flower array per dtype, with their names and shapes beside them.

Flower 1.32 keeps every Array of a message as an object of its own, and each object is one
call, with its bookkeeping, at every hop of a round: the ServerApp pushes it to the SuperLink,
the SuperNode pulls it from there, the ClientApp pulls it from the SuperNode, and the reply goes
back the same way. A model's parameters are tens or hundreds of tensors, so a round of a small
model was hundreds of calls per worker, seconds on a loaded 2-core machine. Packed, a message
carries one array per dtype (Flower still cuts one over 5 MB into chunks) and a `ConfigRecord`
whose JSON lists each tensor's name and shape in order; nothing else is needed to cut the flat
array back into tensors, and nothing in it can point outside the array.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import Any

import torch
from flwr.app import ArrayRecord, ConfigRecord

from cairn.core.errors import InvalidInput

LAYOUT = "layout"  # the ConfigRecord key of the JSON layout
MAX_TENSORS = 1_000_000  # tensors one packed record may list


def _dtype_name(dtype: torch.dtype) -> str:
    return str(dtype).removeprefix("torch.")


def pack(tensors: Mapping[str, torch.Tensor]) -> tuple[ArrayRecord, ConfigRecord]:
    """`tensors` as one flat array per dtype, and the layout that cuts them back."""
    groups: dict[str, list[tuple[str, torch.Tensor]]] = {}
    for name, tensor in tensors.items():
        groups.setdefault(_dtype_name(tensor.dtype), []).append((name, tensor.detach()))
    flats: dict[str, torch.Tensor] = {}
    layout: dict[str, list[list[Any]]] = {}
    for dtype, items in groups.items():
        flats[dtype] = torch.cat([t.reshape(-1).cpu() for _, t in items])
        layout[dtype] = [[name, list(t.shape)] for name, t in items]
    return ArrayRecord(flats), ConfigRecord({LAYOUT: json.dumps(layout)})


def unpack(arrays: ArrayRecord, layout: ConfigRecord) -> dict[str, torch.Tensor]:
    """The tensors `pack` packed; `InvalidInput` for a layout that does not fit its arrays.

    The tensors are views of their flat array (no copy): each is contiguous and shares memory
    with the others of its dtype.
    """
    try:
        spec = json.loads(str(layout[LAYOUT]))
    except (KeyError, ValueError) as exc:
        raise InvalidInput(f"packed tensors without a readable layout: {exc}") from None
    if not isinstance(spec, dict) or set(spec) != set(arrays.keys()):
        raise InvalidInput("the packed layout does not name the arrays it came with")
    out: dict[str, torch.Tensor] = {}
    for dtype, entries in spec.items():
        try:
            flat = torch.from_numpy(arrays[dtype].numpy())
        except (TypeError, ValueError) as exc:
            raise InvalidInput(f"packed array {dtype!r} does not load: {exc}") from None
        if _dtype_name(flat.dtype) != dtype or flat.dim() != 1:
            raise InvalidInput(f"packed array {dtype!r} is not a flat {dtype} array")
        if not isinstance(entries, list) or len(entries) > MAX_TENSORS:
            raise InvalidInput(f"the layout of {dtype!r} is not a list of tensors")
        offset = 0
        for entry in entries:
            name, shape = _entry(entry)
            if name in out:
                raise InvalidInput(f"the packed layout lists {name!r} twice")
            size = math.prod(shape)
            if offset + size > flat.numel():
                raise InvalidInput(f"the packed layout runs past the end of the {dtype} array")
            out[name] = flat[offset : offset + size].view(shape)
            offset += size
        if offset != flat.numel():
            raise InvalidInput(f"the packed layout leaves part of the {dtype} array unused")
    return out


def _entry(entry: Any) -> tuple[str, list[int]]:
    if (
        isinstance(entry, list)
        and len(entry) == 2
        and isinstance(entry[0], str)
        and isinstance(entry[1], list)
        and len(entry[1]) <= 16
        and all(isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in entry[1])
    ):
        return entry[0], entry[1]
    raise InvalidInput(f"a packed layout entry is not [name, shape]: {str(entry)[:80]}")
