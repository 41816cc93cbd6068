"""Coordinate-wise median (Yin et al. 2018): each coordinate of the result is the median of that
coordinate across workers.

With n workers of which f < n/2 are Byzantine, every coordinate of the result lies between the
smallest and the largest honest value of that coordinate, however large the Byzantine values are.
For an even n the median is the mean of the two middle values (not torch.median's lower one), so
the result does not depend on the order of the workers.

Weights are ignored: a worker's weight is its own claim (a sample count), and letting it count
more would let one worker claim its way to a majority. Every worker counts once.
"""

from __future__ import annotations

import torch

from cairn.core.aggregation.base import Aggregator, Tensors


class CoordinateMedian(Aggregator):
    """The coordinate-wise median of the updates; weights are ignored."""

    name = "median"

    def combine(self, stacked: Tensors, weights: torch.Tensor) -> Tensors:
        """Sort each coordinate across workers and take the middle (or the mean of the two)."""
        combined: Tensors = {}
        for key, x in stacked.items():  # x: (n, *shape)
            n = x.shape[0]
            ordered = torch.sort(x, dim=0).values  # (n, *shape)
            if n % 2 == 1:
                combined[key] = ordered[n // 2].clone()  # (*shape)
            else:
                combined[key] = (ordered[n // 2 - 1] + ordered[n // 2]) / 2  # (*shape)
        return combined
