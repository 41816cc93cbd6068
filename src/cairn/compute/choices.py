"""What a recipe can start from on this node: the model assets with weights, by family, and the
datasets with their task and anchored versions (the web builder offers these)."""

from __future__ import annotations

from dataclasses import dataclass

from cairn.assets.service import AssetService
from cairn.core.errors import CairnError
from cairn.data.anchoring import DatasetVersion
from cairn.data.service import DataService
from cairn.train.catalog import ModelCatalog

MODELS_SHOWN = 500  # newest model assets offered


@dataclass(frozen=True)
class TrainableModel:
    """A model asset a recipe can name as its base (or teacher) model."""

    id: int  # the asset id
    name: str
    family: str  # causal-lm or encoder
    base: bool  # one of the node's packaged base models


@dataclass(frozen=True)
class TrainableDataset:
    """A dataset a recipe can train on, once it has an anchored version."""

    id: int  # the asset id
    name: str
    task: str  # the records' task type: instruction, classification, ...
    versions: tuple[DatasetVersion, ...]  # newest first

    @property
    def newest_records(self) -> int:
        """Records in the newest version (0 without one)."""
        return self.versions[0].records if self.versions else 0


def trainable_models(assets: AssetService, catalog: ModelCatalog) -> list[TrainableModel]:
    """Model assets with weights a job can load, newest first."""
    bases = set(catalog.bases.registered().values())
    out = []
    for asset in assets.list(kind="model", limit=MODELS_SHOWN):
        try:
            family = catalog.family(asset)
        except CairnError:
            continue  # a model asset naming no weights: nothing to train from
        out.append(TrainableModel(asset.asset_id, asset.name, family, asset.asset_id in bases))
    return out


def trainable_datasets(data: DataService) -> list[TrainableDataset]:
    """Datasets with their task and anchored versions."""
    return [
        TrainableDataset(
            d.asset_id,
            d.name,
            d.spec.task.type,
            tuple(data.anchoring.versions(d.asset_id)),
        )
        for d in data.datasets.list()
    ]
