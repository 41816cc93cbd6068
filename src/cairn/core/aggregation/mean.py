"""Weighted mean (FedAvg, McMahan et al. 2017): each worker counts in proportion to its weight.

    mean = sum_i w_i * x_i / sum_i w_i

The plain DiLoCo average. Not robust: one worker sending a huge update moves the result as far
as it likes (see median, trimmed_mean, krum for rules that bound it).
"""

from __future__ import annotations

import torch

from cairn.core.aggregation.base import Aggregator, Tensors


class WeightedMean(Aggregator):
    """The weighted mean of the updates, parameter by parameter."""

    name = "mean"

    def combine(self, stacked: Tensors, weights: torch.Tensor) -> Tensors:
        """Sum the stacked updates, each scaled by its normalized weight."""
        combined: Tensors = {}
        for key, x in stacked.items():  # x: (n, *shape)
            w = weights.to(x.dtype)  # (n,)
            combined[key] = torch.tensordot(w, x, dims=1)  # (*shape)
        return combined
