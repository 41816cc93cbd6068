"""Coordinate-wise trimmed mean (Yin et al. 2018): per coordinate, drop the k = floor(trim_ratio
* n) smallest and the k largest values across workers and average the n - 2k left.

If at most k workers are Byzantine, every value left lies between the smallest and the largest
honest value of that coordinate, so the result does too, however large the Byzantine values are.
trim_ratio is in [0, 0.5), so at least one value is always left; trim_ratio = 0 is the plain
(unweighted) mean.

Weights are ignored, as in the median and in Flower's FedTrimmedAvg: the values left are
averaged uniformly, and a worker's self-reported sample count cannot tilt the result.
"""

from __future__ import annotations

import math

import torch

from cairn.core.aggregation.base import Aggregator, Tensors
from cairn.core.errors import InvalidInput


class TrimmedMean(Aggregator):
    """The coordinate-wise trimmed mean of the updates; weights are ignored."""

    name = "trimmed_mean"

    def __init__(self, trim_ratio: float = 0.2) -> None:
        """Trim floor(trim_ratio * n) values at each end of every coordinate; 0 <= ratio < 0.5."""
        if not (isinstance(trim_ratio, int | float) and 0.0 <= trim_ratio < 0.5):
            raise InvalidInput(f"trimmed_mean: trim_ratio must be in [0, 0.5); got {trim_ratio!r}")
        self.trim_ratio = float(trim_ratio)

    def trimmed(self, n: int) -> int:
        """How many values are dropped at each end of a coordinate when n workers report."""
        return math.floor(self.trim_ratio * n)

    def combine(self, stacked: Tensors, weights: torch.Tensor) -> Tensors:
        """Sort each coordinate across workers, drop k at each end and average the rest."""
        combined: Tensors = {}
        for key, x in stacked.items():  # x: (n, *shape)
            n = x.shape[0]
            k = self.trimmed(n)  # 2k < n since trim_ratio < 0.5
            ordered = torch.sort(x, dim=0).values  # (n, *shape)
            combined[key] = ordered[k : n - k].mean(dim=0)  # (*shape)
        return combined
