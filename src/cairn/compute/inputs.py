"""A job's inputs: the training records of a recipe's dataset versions, and the held-out split.

Records come from anchored versions only (a version is named by its manifest CID; the newest
when the recipe names none), read back from the store and checked against their anchored
roots. The lineage entry of each dataset carries its version and the CID of its attribution
table, which settlement later pays the data share by.
"""

from __future__ import annotations

import math
import random
from typing import Any

from cairn.core.data_policy import TaskType
from cairn.core.errors import InvalidInput, NotFound
from cairn.core.recipe import SPECS, Recipe, method_spec
from cairn.data.service import DataService

TASK: dict[str, TaskType] = {name: spec.task for name, spec in SPECS.items()}
"""The dataset task each method trains on, from the method registry (the web builder's view)."""


def training_records(
    data: DataService, recipe: Recipe
) -> tuple[list[dict[str, Any]], list[str] | None, list[dict[str, Any]]]:
    """Every record of the recipe's dataset versions, the label set (classify), the lineage."""
    task = method_spec(recipe.method).task
    records: list[dict[str, Any]] = []
    labels: list[str] | None = None
    lineage = []
    for ref in recipe.datasets:
        spec = data.datasets.spec(ref.dataset)
        if spec.task.type != task:
            raise InvalidInput(
                f"datasets: {recipe.method} needs {task} records, but dataset "
                f"{ref.dataset} holds {spec.task.type} records"
            )
        if task == "classification":
            if labels is not None and labels != spec.task.labels:
                raise InvalidInput("datasets: classification datasets must share one label set")
            labels = list(spec.task.labels)
        versions = data.anchoring.versions(ref.dataset)
        if not versions:
            raise NotFound(f"dataset {ref.dataset} has no anchored version yet: anchor it first")
        if ref.version is None:
            chosen = versions[0]
        else:
            found = [v for v in versions if v.version == ref.version]
            if not found:
                raise NotFound(f"{ref.version} is not a version of dataset {ref.dataset}")
            chosen = found[0]
        for record in data.anchoring.records(ref.dataset, chosen.version):
            records.append({k: v for k, v in record.items() if not k.startswith("_")})
        lineage.append(
            {
                "dataset": ref.dataset,
                "version": chosen.version,
                "records": chosen.records,
                "attribution_cid": chosen.attribution_cid,
            }
        )
    if len(records) < 2:
        raise InvalidInput("datasets: a job needs at least 2 records (one held out)")
    return records, labels, lineage


def held_out_split(
    records: list[dict[str, Any]], share: float, seed: int
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(train, held out): `ceil(share * n)` records drawn by `seed`, at least one each side."""
    n = len(records)
    held = min(max(1, math.ceil(share * n)), n - 1)
    order = list(range(n))
    random.Random(seed).shuffle(order)
    chosen = set(order[:held])
    train = [r for i, r in enumerate(records) if i not in chosen]
    return train, [records[i] for i in sorted(chosen)]
