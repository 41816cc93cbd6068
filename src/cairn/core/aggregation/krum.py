"""Krum and Multi-Krum (Blanchard et al., "Machine Learning with Adversaries", NeurIPS 2017).

Treat each worker's whole update as one flat vector. With n workers of which at most f are
Byzantine, score each update by the sum of its squared distances to its n - f - 2 nearest
neighbours; Krum returns the update with the lowest score, Multi-Krum the mean of the m lowest.
Needs n >= 2f + 3, so that every update's neighbourhood holds at least 2 honest ones.

Why it holds: an honest update's n - f - 2 nearest neighbours are no farther than the honest
updates' diameter D, so the lowest score is at most (n - f - 2) D^2; a Byzantine update's
neighbourhood takes in at least n - 2f - 1 honest updates, so if it is picked it lies within
D * sqrt((n - f - 2) / (n - 2f - 1)) of one of them. Far-off updates are never picked. With
m <= n - f the same holds for every one of the m picked, hence for their mean.

Weights are ignored: Multi-Krum averages the picked updates uniformly, as in the paper. Distances
are summed in float64, so float32 updates of size 1e20 do not overflow to inf. Ties in score go to
the lower worker index.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from cairn.core.aggregation.base import Aggregator, Tensors, stack_updates
from cairn.core.errors import InvalidInput


class Krum(Aggregator):
    """Krum (multi_krum = 1) or Multi-Krum (the mean of the multi_krum best-scored updates)."""

    name = "krum"

    def __init__(self, byzantine: int = 1, multi_krum: int = 1) -> None:
        """Tolerate up to `byzantine` bad workers; average the `multi_krum` best updates."""
        if isinstance(byzantine, bool) or not isinstance(byzantine, int) or byzantine < 0:
            raise InvalidInput(f"krum: byzantine must be an integer >= 0; got {byzantine!r}")
        if isinstance(multi_krum, bool) or not isinstance(multi_krum, int) or multi_krum < 1:
            raise InvalidInput(f"krum: multi_krum must be an integer >= 1; got {multi_krum!r}")
        self.byzantine = byzantine
        self.multi_krum = multi_krum

    def select(self, updates: Sequence[Tensors]) -> list[int]:
        """The indices of the `multi_krum` updates `aggregate` would average, best first.

        Raises `InvalidInput` as `aggregate` does, and unless n >= 2f + 3 and multi_krum <= n - f.
        """
        stacked, _ = stack_updates(updates)  # {name: (n, *shape)}
        return self._select(stacked, len(updates))

    def combine(self, stacked: Tensors, weights: torch.Tensor) -> Tensors:
        """The uniform mean of the selected updates (the single best one for Krum)."""
        n = weights.shape[0]
        chosen = torch.tensor(self._select(stacked, n))  # (m,)
        return {key: x[chosen].mean(dim=0) for key, x in stacked.items()}  # (*shape)

    def _select(self, stacked: Tensors, n: int) -> list[int]:
        f = self.byzantine
        if n < 2 * f + 3:
            raise InvalidInput(
                f"krum: {n} updates cannot tolerate {f} Byzantine workers; "
                f"need at least 2f + 3 = {2 * f + 3}"
            )
        if self.multi_krum > n - f:
            raise InvalidInput(
                f"krum: multi_krum = {self.multi_krum} exceeds n - f = {n - f}; "
                "a Byzantine update would be averaged in"
            )
        distances = torch.zeros(n, n, dtype=torch.float64)  # (n, n) squared distances
        for x in stacked.values():  # x: (n, *shape)
            flat = x.reshape(n, -1).to(torch.float64)  # (n, D)
            for i in range(n):  # one row at a time: memory O(n * D), not O(n^2 * D)
                distances[i] += (flat - flat[i]).square().sum(dim=1)  # (n,)
        distances.fill_diagonal_(float("inf"))  # an update is not its own neighbour
        nearest = torch.sort(distances, dim=1).values[:, : n - f - 2]  # (n, n - f - 2)
        scores = nearest.sum(dim=1)  # (n,)
        order = torch.argsort(scores, stable=True)  # (n,) best first, ties to the lower index
        return [int(i) for i in order[: self.multi_krum]]
