"""The kernels a batched causal LM runs on: per-sequence KV caches, ragged attention, and
linear layers laid out once for oneDNN (`batching` says why each exists: exact batching).
"""

from __future__ import annotations

from typing import Any, cast

import torch
import torch.nn.functional as F

KV_HEADROOM = 64  # token positions a new cache buffer holds beyond the prompt


class SequenceKV:
    """One sequence's keys and values, layer by layer, in buffers that double when full."""

    def __init__(self, layers: int) -> None:
        self.buffers: list[torch.Tensor | None] = [None] * layers  # (2, Hkv, capacity, D)
        self.lengths = [0] * layers

    def append(
        self, layer: int, keys: torch.Tensor, values: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Add `keys`, `values` (Hkv, T, D); every key and value so far, (1, Hkv, L, D) each."""
        start, end = self.lengths[layer], self.lengths[layer] + keys.shape[1]
        held = self.buffers[layer]
        if held is None or end > held.shape[2]:
            size = max(2 * end, end + KV_HEADROOM)
            grown = keys.new_empty((2, keys.shape[0], size, keys.shape[2]))
            if held is not None:
                grown[:, :, :start] = held[:, :, :start]
            held = self.buffers[layer] = grown
        held[0, :, start:end], held[1, :, start:end] = keys, values
        self.lengths[layer] = end
        return held[0, None, :, :end], held[1, None, :, :end]


def ragged_attention(
    module: torch.nn.Module,
    query: torch.Tensor,  # (B, H, T, D), rotary embedding applied
    key: torch.Tensor,  # (B, Hkv, T, D): this step's keys; `value` likewise
    value: torch.Tensor,
    attention_mask: torch.Tensor | None,  # unused: no row sees another's keys
    scaling: float | None = None,
    **kwargs: Any,
) -> tuple[torch.Tensor, None]:
    """Attention over rows that are different sequences, as transformers' attention interface
    calls it: row b appends its keys to `kwargs["cairn_kv"][b]` (a `SequenceKV`) and reads only
    those; rows past the list are padding and attend to nothing. A prompt (T > 1) is causal."""
    caches: list[SequenceKV] = kwargs["cairn_kv"]
    layer = cast(int, module.layer_idx)  # set by the model on each of its attention layers
    heads, kv_heads, steps = query.shape[1], key.shape[1], query.shape[2]
    out = torch.zeros_like(query)  # (B, H, T, D)
    for b, cache in enumerate(caches):
        keys, values = cache.append(layer, key[b], value[b])  # (1, Hkv, L, D)
        if steps == 1:  # one new token: each key head's query heads become its query rows
            rows = query[b].reshape(1, kv_heads, heads // kv_heads, -1)  # (1, Hkv, H/Hkv, D)
            read = F.scaled_dot_product_attention(rows, keys, values, scale=scaling)
            out[b] = read.reshape(heads, 1, -1)
        else:  # a prompt, read into an empty cache
            out[b] = F.scaled_dot_product_attention(
                query[b : b + 1],
                keys,
                values,
                is_causal=True,
                scale=scaling,
                enable_gqa=heads != kv_heads,
            )[0]
    return out.transpose(1, 2).contiguous(), None  # (B, T, H, D)


class PackedLinear(torch.nn.Module):
    """`nn.Linear` over a weight laid out once for oneDNN's matmul, as torch's CPU compiler lays
    it out: every row count from two up sums each row alike, four rows for about one's cost."""

    def __init__(self, linear: torch.nn.Linear) -> None:
        super().__init__()
        self.in_features, self.out_features = linear.in_features, linear.out_features
        weight = torch.ops.mkldnn._reorder_linear_weight(linear.weight.detach(), None)
        self.register_buffer("weight", weight)  # (out, in), in oneDNN's opaque layout
        self.register_buffer("bias", None if linear.bias is None else linear.bias.detach())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        rows = x.reshape(-1, self.in_features)  # (N, in)
        out = torch.ops.mkldnn._linear_pointwise(rows, self.weight, self.bias, "none", [], "")
        return out.reshape(*x.shape[:-1], self.out_features)


def pack_linears(module: torch.nn.Module) -> None:
    """Replace each `nn.Linear` in `module` by a `PackedLinear` (a tied head gets its own copy)."""
    for parent in list(module.modules()):
        for name, child in list(parent.named_children()):
            if type(child) is torch.nn.Linear:
                setattr(parent, name, PackedLinear(child))
