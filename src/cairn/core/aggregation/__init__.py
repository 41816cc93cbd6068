"""Aggregation strategies for federated and DiLoCo rounds: many workers' updates in, one out.

`mean` is the weighted average; `median`, `trimmed_mean` and `krum` tolerate a minority of
workers sending arbitrary (Byzantine) updates. Each strategy is one file over `base.Aggregator`.
"""

from __future__ import annotations

from cairn.core.aggregation.base import (
    Aggregator,
    Tensors,
    check_finite,
    check_layout,
    check_weights,
    compute_dtype,
    stack_updates,
)
from cairn.core.aggregation.krum import Krum
from cairn.core.aggregation.mean import WeightedMean
from cairn.core.aggregation.median import CoordinateMedian
from cairn.core.aggregation.trimmed_mean import TrimmedMean
from cairn.core.errors import InvalidInput

AGGREGATORS: tuple[str, ...] = (
    WeightedMean.name,
    CoordinateMedian.name,
    TrimmedMean.name,
    Krum.name,
)
"""The names `make_aggregator` accepts, as a recipe spells them."""


def make_aggregator(
    name: str, *, trim_ratio: float = 0.2, byzantine: int = 1, multi_krum: int = 1
) -> Aggregator:
    """The aggregator called `name`; options that do not apply to it are ignored.

    `trim_ratio` is for "trimmed_mean"; `byzantine` and `multi_krum` are for "krum".
    """
    if name == WeightedMean.name:
        return WeightedMean()
    if name == CoordinateMedian.name:
        return CoordinateMedian()
    if name == TrimmedMean.name:
        return TrimmedMean(trim_ratio)
    if name == Krum.name:
        return Krum(byzantine=byzantine, multi_krum=multi_krum)
    raise InvalidInput(
        f"aggregation: unknown aggregator {name!r}; choose one of {list(AGGREGATORS)}"
    )


__all__ = [
    "AGGREGATORS",
    "Aggregator",
    "CoordinateMedian",
    "Krum",
    "Tensors",
    "TrimmedMean",
    "WeightedMean",
    "check_finite",
    "check_layout",
    "check_weights",
    "compute_dtype",
    "make_aggregator",
    "stack_updates",
]
