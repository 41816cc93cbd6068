"""The aggregation base: many workers' updates in, one update out.

An update is a state dict (parameter name -> tensor), one per worker, all with the same names
and shapes; a weight per worker says how much it counts (its sample count, say). Each strategy
lives in its own file and only implements `combine`, which sees every parameter stacked across
workers; `Aggregator.aggregate` checks the input first, so no strategy can forget to, and casts
each result back to the parameter's dtype.

Arithmetic runs in float32, or in float64 where an input is float64, so bfloat16 updates are not
summed in bfloat16. Non-finite values are refused rather than filtered: dropping a worker's reply
is the caller's decision (see `check_finite`), and a silent NaN would poison the model.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import ClassVar

import torch

from cairn.core.errors import InvalidInput

Tensors = dict[str, torch.Tensor]
"""A state dict: parameter name -> tensor."""


def compute_dtype(dtype: torch.dtype) -> torch.dtype:
    """The dtype arithmetic on `dtype` runs in: float64 for float64, float32 for the rest."""
    return torch.float64 if dtype == torch.float64 else torch.float32


def check_layout(reference: Tensors, other: Tensors, who: str) -> None:
    """Raise `InvalidInput` unless `other` has exactly `reference`'s names and shapes.

    `who` names `other` in the message ("worker 2", "outer state momentum").
    """
    if not isinstance(other, dict):
        raise InvalidInput(f"{who}: expected a dict of tensors; got {type(other).__name__}")
    if other.keys() != reference.keys():
        missing = sorted(reference.keys() - other.keys())
        extra = sorted(other.keys() - reference.keys())
        raise InvalidInput(f"{who}: missing parameters {missing}; unexpected parameters {extra}")
    for name, ref in reference.items():
        tensor = other[name]
        if not isinstance(tensor, torch.Tensor):
            raise InvalidInput(
                f"{who}: parameter {name!r} must be a torch.Tensor; got {type(tensor).__name__}"
            )
        if not tensor.is_floating_point():
            raise InvalidInput(
                f"{who}: parameter {name!r} has dtype {tensor.dtype}; only floating-point "
                "parameters can be aggregated"
            )
        if tensor.shape != ref.shape:
            raise InvalidInput(
                f"{who}: parameter {name!r} has shape {tuple(tensor.shape)}, "
                f"expected {tuple(ref.shape)}"
            )


def check_finite(params: Tensors, who: str) -> None:
    """Raise `InvalidInput` naming the first parameter of `params` holding a NaN or an infinity."""
    for name, tensor in params.items():
        if not bool(torch.isfinite(tensor).all()):
            raise InvalidInput(f"{who}: parameter {name!r} has non-finite values (NaN or inf)")


def check_weights(weights: Sequence[float], n: int) -> torch.Tensor:
    """The n workers' weights as a float64 tensor summing to 1; `InvalidInput` if they are bad."""
    if len(weights) != n:
        raise InvalidInput(f"aggregation: got {n} updates but {len(weights)} weights")
    for i, w in enumerate(weights):
        if isinstance(w, bool) or not isinstance(w, int | float) or not math.isfinite(w) or w < 0:
            raise InvalidInput(
                f"aggregation: worker {i} has weight {w!r}; weights must be finite and >= 0"
            )
    total = math.fsum(weights)
    if total <= 0:
        raise InvalidInput("aggregation: weights sum to 0; at least one must be positive")
    return torch.tensor([w / total for w in weights], dtype=torch.float64)  # (n,)


def stack_updates(updates: Sequence[Tensors]) -> tuple[Tensors, dict[str, torch.dtype]]:
    """Check n updates and stack each parameter across them.

    Returns {name: (n, *shape)} in the compute dtype, and each parameter's result dtype (the
    workers' dtypes promoted). Raises `InvalidInput` on empty input, mismatched names or shapes,
    and non-finite values, naming the worker and parameter.
    """
    if len(updates) == 0:
        raise InvalidInput("aggregation: no updates to aggregate")
    reference = updates[0]
    for i, update in enumerate(updates):
        check_layout(reference, update, f"worker {i}")
        check_finite(update, f"worker {i}")
    stacked: Tensors = {}
    dtypes: dict[str, torch.dtype] = {}
    for name in reference:
        dtype = reference[name].dtype
        for update in updates[1:]:
            dtype = torch.promote_types(dtype, update[name].dtype)
        dtypes[name] = dtype
        work = compute_dtype(dtype)
        stacked[name] = torch.stack([u[name].detach().to(work) for u in updates])  # (n, *shape)
    return stacked, dtypes


class Aggregator(ABC):
    """A rule that combines n workers' updates into one; each subclass is one strategy."""

    name: ClassVar[str]

    def aggregate(self, updates: Sequence[Tensors], weights: Sequence[float]) -> Tensors:
        """Check the updates and weights, combine them, and return one new update.

        The result has the updates' names and shapes and, per parameter, the promoted dtype of
        the workers' tensors. Raises `InvalidInput` on empty input, mismatched names or shapes,
        non-finite values, or weights that are negative, non-finite or sum to 0.
        """
        stacked, dtypes = stack_updates(updates)  # {name: (n, *shape)}
        normalized = check_weights(weights, len(updates))  # (n,) sums to 1
        with torch.no_grad():
            combined = self.combine(stacked, normalized)  # {name: (*shape)}
        return {name: combined[name].to(dtype) for name, dtype in dtypes.items()}

    @abstractmethod
    def combine(self, stacked: Tensors, weights: torch.Tensor) -> Tensors:
        """Combine checked input: `stacked[name]` is (n, *shape) in float32 or float64, and
        `weights` is (n,) float64 summing to 1. Return {name: (*shape)} in the same dtype."""
