"""Datasets: create one (an asset of kind dataset whose metadata carries its spec), look it up.

A dataset registered straight from a wallet is a dataset too: the node imports its spec from the
asset's metadata the first time it is asked for it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from eth_account.signers.local import LocalAccount
from sqlalchemy import func, select

from cairn.assets.service import AssetService
from cairn.chain.contracts import Chain
from cairn.core.data_policy import DatasetSpec, parse_spec
from cairn.core.errors import CairnError, NotFound
from cairn.core.policy import DEFAULT_DATASET_SPLIT, HOW_TO_CREATE, RevenueSplit
from cairn.core.policy import refuse_bare_dataset as refuse_bare_dataset  # the API imports it here
from cairn.data.models import DatasetRow, RecordRow, VersionRow
from cairn.db.engine import Database
from cairn.store.base import BlobStore


@dataclass(frozen=True)
class Dataset:
    """A dataset as the node shows it."""

    asset_id: int
    name: str
    owner: str
    licence: str
    metadata_cid: str
    spec: DatasetSpec
    counts: dict[str, int]
    versions: int
    latest_version: str | None


class Datasets:
    """Create and look up datasets."""

    def __init__(
        self, chain: Chain, store: BlobStore, db: Database, assets: AssetService, operator: str
    ) -> None:
        self.chain = chain
        self.store = store
        self.db = db
        self.assets = assets
        self.operator = operator

    def create(
        self,
        owner: LocalAccount,
        *,
        name: str,
        licence: str,
        spec: DatasetSpec,
        description: str = "",
        split: RevenueSplit | None = None,
    ) -> Dataset:
        """Register the dataset asset, make this node's operator a curator, and index it."""
        spec = parse_spec(spec.model_dump(mode="json"))
        asset = self.assets.register(
            owner,
            kind="dataset",
            name=name,
            licence=licence,
            description=description,
            split=split or DEFAULT_DATASET_SPLIT,
            extra={"dataset": spec.model_dump(mode="json")},
        )
        if owner.address.lower() != self.operator.lower():
            # The node anchors accepted batches; the owner lets it, and may revoke it later.
            self.chain.registry.set_curator(owner, asset.asset_id, self.operator, True)
        return self.get(asset.asset_id)

    def get(self, asset_id: int) -> Dataset:
        """A dataset by asset id; an asset that is not a dataset is `NotFound`."""
        with self.db.session() as session:
            row = session.get(DatasetRow, asset_id)
        if row is None:
            row = self._import(asset_id)
        return self._view(row)

    def row(self, asset_id: int) -> DatasetRow:
        """The index row (imported from chain and store on first use)."""
        with self.db.session() as session:
            row = session.get(DatasetRow, asset_id)
        return row if row is not None else self._import(asset_id)

    def spec(self, asset_id: int) -> DatasetSpec:
        """The dataset's task and policies."""
        return DatasetSpec.model_validate(self.row(asset_id).spec)

    def list(self) -> list[Dataset]:
        """Every dataset this node knows of, newest first (imports datasets registered elsewhere)."""
        for asset in self.assets.list(kind="dataset", limit=1000):
            try:
                self.row(asset.asset_id)
            except CairnError:
                continue  # a dataset asset without a Cairn spec: not ours to serve
        with self.db.session() as session:
            ids = list(
                session.scalars(select(DatasetRow.asset_id).order_by(DatasetRow.asset_id.desc()))
            )
        return [self.get(i) for i in ids]

    def _import(self, asset_id: int) -> DatasetRow:
        asset = self.assets.get(asset_id)
        if asset.kind != "dataset":
            raise NotFound(f"asset {asset_id} is a {asset.kind}, not a dataset")
        try:
            metadata = self.store.get_json(asset.metadata_cid)
            raw = metadata["extra"]["dataset"]
        except (CairnError, KeyError, TypeError):
            raise NotFound(
                f"dataset {asset_id} has no Cairn dataset spec in its metadata "
                f"{asset.metadata_cid}, so it takes no records: {HOW_TO_CREATE}"
            ) from None
        spec = parse_spec(raw)
        row = DatasetRow(
            asset_id=asset_id,
            name=asset.name,
            owner=asset.owner,
            licence=asset.licence,
            metadata_cid=asset.metadata_cid,
            spec=spec.model_dump(mode="json"),
            created_at=int(time.time()),
        )
        with self.db.session() as session:
            session.merge(row)
        return row

    def _view(self, row: DatasetRow) -> Dataset:
        owner = self.assets.get(row.asset_id).owner  # ownership follows the chain
        with self.db.session() as session:
            counts = dict(
                session.execute(
                    select(RecordRow.status, func.count())
                    .where(RecordRow.dataset_id == row.asset_id)
                    .group_by(RecordRow.status)
                ).all()
            )
            latest = session.execute(
                select(VersionRow.manifest_cid, VersionRow.number)
                .where(VersionRow.dataset_id == row.asset_id)
                .order_by(VersionRow.number.desc())
                .limit(1)
            ).first()
        return Dataset(
            asset_id=row.asset_id,
            name=row.name,
            owner=owner,
            licence=row.licence,
            metadata_cid=row.metadata_cid,
            spec=DatasetSpec.model_validate(row.spec),
            counts={str(k): int(v) for k, v in counts.items()},
            versions=int(latest[1]) if latest else 0,
            latest_version=str(latest[0]) if latest else None,
        )
