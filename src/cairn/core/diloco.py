"""The DiLoCo outer step (Douillard et al., "DiLoCo: Distributed Low-Communication Training of
Language Models", 2023), as a pure function: no Flower, no I/O.

One round of DiLoCo:

    every worker i starts from the global parameters g and runs H inner optimizer steps
    (AdamW in the paper) on its own shard, ending at x_i;
    the server forms each worker's pseudo-gradient  delta_i = g - x_i,
    aggregates them                                  delta   = aggregate(delta_i; weights)
    and takes one outer SGD step with Nesterov momentum on delta:
        buf    = momentum * buf + delta              (buf = delta in the first round)
        update = delta + momentum * buf              (buf without Nesterov)
        g'     = g - lr * update

This is exactly what torch.optim.SGD(lr, momentum, nesterov, dampening=0) does with delta as the
gradient, so `outer_step` matches it step for step; the paper's outer settings are lr = 0.7,
momentum = 0.9, Nesterov. Workers exchange parameters once every H steps instead of every step,
which is where the H-fold saving in communication comes from.

The aggregation rule is pluggable: the weighted mean by default, or a robust one (median,
trimmed mean, Krum) when some workers may send poisoned updates.

Arithmetic runs in float32 (float64 for float64 parameters) whatever the parameters' dtype, so
bfloat16 models do not accumulate their momentum in bfloat16; each new parameter is cast back to
its own dtype, and the momentum buffer stays in the compute dtype. Inputs are never mutated.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from safetensors import SafetensorError
from safetensors.torch import load, save

from cairn.core.aggregation import (
    Aggregator,
    Tensors,
    WeightedMean,
    check_finite,
    check_layout,
    compute_dtype,
)
from cairn.core.errors import InvalidInput


@dataclass
class OuterState:
    """What the outer optimizer carries from round to round."""

    momentum: Tensors | None = None  # buffer per parameter, compute dtype; None before step 1
    step: int = 0  # outer steps taken so far


def pseudo_gradient(global_params: Tensors, worker_params: Tensors) -> Tensors:
    """A worker's pseudo-gradient, global - worker, in the compute dtype (float32 or float64).

    Raises `InvalidInput` if the worker's names or shapes differ from the global parameters'.
    """
    check_layout(global_params, worker_params, "worker")
    delta: Tensors = {}
    for name, g in global_params.items():
        work = compute_dtype(g.dtype)
        delta[name] = g.detach().to(work) - worker_params[name].detach().to(work)  # (*shape)
    return delta


def outer_step(
    global_params: Tensors,
    worker_params: Sequence[Tensors],
    weights: Sequence[float],
    state: OuterState,
    *,
    lr: float = 0.7,  # outer learning rate (DiLoCo paper: 0.7)
    momentum: float = 0.9,  # outer momentum (DiLoCo paper: 0.9)
    nesterov: bool = True,  # Nesterov momentum, as in the paper; False is heavy-ball momentum
    aggregator: Aggregator | None = None,  # how pseudo-gradients combine; None = weighted mean
) -> tuple[Tensors, OuterState]:
    """One DiLoCo outer step: the new global parameters and the new outer state.

    `worker_params` are the workers' parameters after their inner steps, `weights` how much each
    counts (sample counts; robust aggregators ignore them). Returns new tensors; the inputs,
    `state` included, are left as they were. Raises `InvalidInput` on bad hyperparameters,
    mismatched names or shapes, non-finite values, or bad weights.
    """
    if not (isinstance(lr, int | float) and math.isfinite(lr) and lr >= 0):
        raise InvalidInput(f"diloco: lr must be a finite number >= 0; got {lr!r}")
    if not (isinstance(momentum, int | float) and 0 <= momentum < 1):
        raise InvalidInput(f"diloco: momentum must be in [0, 1); got {momentum!r}")
    check_finite(global_params, "global parameters")
    for i, worker in enumerate(worker_params):
        check_layout(global_params, worker, f"worker {i}")
    if state.momentum is not None:
        check_layout(global_params, state.momentum, "outer state momentum")
    aggregator = aggregator if aggregator is not None else WeightedMean()

    with torch.no_grad():
        deltas = [pseudo_gradient(global_params, w) for w in worker_params]  # n x {name: (*shape)}
        delta = aggregator.aggregate(deltas, weights)  # {name: (*shape)}, compute dtype

        new_params: Tensors = {}
        new_momentum: Tensors = {}
        for name, g in global_params.items():
            d = delta[name]  # (*shape), compute dtype
            # the first step starts the buffer at the gradient, as torch.optim.SGD does
            prev = None if state.momentum is None else state.momentum[name].to(d.dtype)
            buf = d if prev is None else momentum * prev + d  # (*shape)
            update = d + momentum * buf if nesterov else buf  # (*shape)
            new_params[name] = (g.detach().to(d.dtype) - lr * update).to(g.dtype)  # (*shape)
            new_momentum[name] = buf
    return new_params, OuterState(momentum=new_momentum, step=state.step + 1)


def state_to_bytes(state: OuterState) -> bytes:
    """The outer optimizer's state as safetensors bytes, for a round's checkpoint."""
    tensors = {f"momentum.{name}": t.contiguous() for name, t in (state.momentum or {}).items()}
    return save(
        tensors, metadata={"step": str(state.step), "has_momentum": str(state.momentum is not None)}
    )


def state_from_bytes(data: bytes) -> OuterState:
    """Read back `state_to_bytes`; anything else is `InvalidInput`."""
    try:
        tensors = load(data)
        metadata = safe_open_metadata(data)
        step = int(metadata["step"])
    except (KeyError, ValueError, RuntimeError, SafetensorError) as exc:
        raise InvalidInput(f"not a DiLoCo outer-state checkpoint: {exc}") from None
    momentum = {name.removeprefix("momentum."): t for name, t in tensors.items()}
    return OuterState(
        momentum=momentum if metadata.get("has_momentum") == "True" else None, step=step
    )


def safe_open_metadata(data: bytes) -> dict[str, str]:
    """The metadata header of safetensors bytes (an 8-byte length, then JSON)."""
    import json
    import struct

    if len(data) < 8:
        raise ValueError("too short for a safetensors header")
    (length,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8 : 8 + length])
    metadata: dict[str, str] = header.get("__metadata__", {})
    return metadata
