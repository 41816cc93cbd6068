"""The lineage graph settlement pays by, read from the chain and the store.

For each model (or app) with revenue, and everything upstream of it:

- a model's (or app's) owner and split are its on-chain owner and policy; its data role goes to
  the dataset versions it was trained on (an app: the version it retrieves from) (from its training lineage, weighted by the records used; a dataset
  parent without a recorded version counts as its newest version, weight 1), its compute role to
  the providers by their work shares (the job's shares document), its upstream role to its
  parent models and apps, equally;
- a dataset version's data role goes to the accounts of its attribution table, its upstream
  role to its parent datasets' newest versions; its owner and split are the dataset asset's.

Keys name what they are: `model 5`, `app 9`, `dataset 3@<version cid>` (`dataset 3` for a
dataset with no anchored version yet).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from cairn.assets.service import Asset, AssetService
from cairn.core.errors import NotFound
from cairn.core.policy import RevenueSplit
from cairn.core.settlement import RevenueNode, Share
from cairn.data.anchoring import Anchoring
from cairn.store.base import BlobStore


def asset_key(asset: Asset) -> str:
    """The graph key of a model or app asset."""
    return f"{asset.kind} {asset.asset_id}"


class LineageReader:
    """Builds `RevenueNode`s for assets and everything they stand on."""

    def __init__(self, assets: AssetService, store: BlobStore, anchoring: Anchoring) -> None:
        self.assets = assets
        self.store = store
        self.anchoring = anchoring

    # -- the facts a graph is built from; `cairn.verify.audit` reads them from the chain --------

    def _sync(self) -> None:
        self.assets.sync()

    def _asset(self, asset_id: int) -> Asset:
        return self.assets.get(asset_id)

    def _json(self, cid: str) -> dict[str, Any]:
        return self.store.get_json(cid)

    def _attribution_cid(self, dataset_id: int, version: str) -> str:
        """The attribution table of a dataset version (its manifest names it)."""
        return str(self._json(version)["attribution"])

    def graph(
        self, sources: Iterable[int | tuple[int, str | None]]
    ) -> tuple[dict[str, RevenueNode], dict[str, Any]]:
        """The graph reachable from `sources` (asset ids, or (dataset id, version) pairs), and a
        description of each node for people and auditors (the documents it was read from)."""
        self._sync()
        graph: dict[str, RevenueNode] = {}
        about: dict[str, Any] = {}
        pairs = {s if isinstance(s, tuple) else (s, None) for s in sources}
        todo: list[tuple[int, str | None]] = sorted(pairs, key=lambda p: (p[0], p[1] or ""))
        while todo:
            asset_id, version = todo.pop()
            asset = self._asset(asset_id)
            if asset.kind == "dataset":
                node, info, more = self._dataset(asset, version or self._newest_version(asset_id))
            else:
                node, info, more = self._model(asset)
            if node.key in graph:
                continue
            graph[node.key] = node
            about[node.key] = info
            todo += more
        return graph, about

    def key_of(self, asset_id: int, version: str | None = None) -> str:
        """The graph key revenue to `asset_id` is booked under (a dataset's `version`, by
        default its newest)."""
        asset = self._asset(asset_id)
        if asset.kind == "dataset":
            return self._dataset_key(asset_id, version or self._newest_version(asset_id))
        return asset_key(asset)

    def _model(
        self, asset: Asset
    ) -> tuple[RevenueNode, dict[str, Any], list[tuple[int, str | None]]]:
        extra: dict[str, Any] = self._json(asset.metadata_cid).get("extra", {})
        lineage = extra.get("training", {}).get("lineage", {})
        data: dict[str, int] = {}
        more: list[tuple[int, str | None]] = []
        trained_on = set()
        for d in lineage.get("datasets", []):
            dataset_id, version = int(d["dataset"]), str(d["version"])
            key = self._dataset_key(dataset_id, version)
            data[key] = data.get(key, 0) + max(int(d.get("records", 1)), 1)
            trained_on.add(dataset_id)
            more.append((dataset_id, version))
        retrieval = extra.get("app", {}).get("retrieval")
        if retrieval:  # an app's data role goes to the dataset version it retrieves from
            dataset_id, version = int(retrieval["dataset"]), str(retrieval["version"])
            key = self._dataset_key(dataset_id, version)
            data[key] = data.get(key, 0) + 1
            trained_on.add(dataset_id)
            more.append((dataset_id, version))
        upstream: dict[str, int] = {}
        for parent_id in asset.parents:
            parent = self._asset(parent_id)
            if parent.kind == "dataset":
                if parent_id not in trained_on:
                    newest = self._newest_version(parent_id)
                    data[self._dataset_key(parent_id, newest)] = 1
                    more.append((parent_id, newest))
            else:
                upstream[asset_key(parent)] = 1
                more.append((parent_id, None))
        providers: dict[str, int] = {}
        shares_cid = lineage.get("work_shares_cid")
        if shares_cid:
            for entry in self._json(shares_cid).get("shares", []):
                providers[entry["account"]] = int(entry["work"])
        node = RevenueNode(
            key=asset_key(asset),
            owner=asset.owner,
            split=RevenueSplit(**asset.split),
            data=Share(assets=data),
            compute=Share(accounts=providers),
            upstream=Share(assets=upstream),
        )
        info = {
            "asset": asset.asset_id,
            "kind": asset.kind,
            "name": asset.name,
            "job_id": extra.get("training", {}).get("job_id"),
            "owner": asset.owner,
            "metadata": asset.metadata_cid,
        }
        return node, info, more

    def _dataset(
        self, asset: Asset, version: str | None
    ) -> tuple[RevenueNode, dict[str, Any], list[tuple[int, str | None]]]:
        contributors: dict[str, int] = {}
        attribution = None
        if version is not None:
            attribution = self._attribution_cid(asset.asset_id, version)
            table = self._json(attribution)
            contributors = {e["account"]: int(e["weight"]) for e in table["entries"]}
        upstream: dict[str, int] = {}
        more: list[tuple[int, str | None]] = []
        for parent_id in asset.parents:
            newest = self._newest_version(parent_id)
            upstream[self._dataset_key(parent_id, newest)] = 1
            more.append((parent_id, newest))
        node = RevenueNode(
            key=self._dataset_key(asset.asset_id, version),
            owner=asset.owner,
            split=RevenueSplit(**asset.split),
            data=Share(accounts=contributors),
            upstream=Share(assets=upstream),
        )
        info = {
            "asset": asset.asset_id,
            "kind": "dataset",
            "name": asset.name,
            "version": version,
            "owner": asset.owner,
            "attribution": attribution,
        }
        return node, info, more

    def newest_version(self, dataset_id: int) -> str | None:
        """The version revenue to `dataset_id` is booked under when none is named: its newest."""
        return self._newest_version(dataset_id)

    def _newest_version(self, dataset_id: int) -> str | None:
        try:
            versions = self.anchoring.versions(dataset_id)
        except NotFound:  # an asset of kind dataset that is not a Cairn dataset: no table
            return None
        return versions[0].version if versions else None

    @staticmethod
    def _dataset_key(dataset_id: int, version: str | None) -> str:
        return f"dataset {dataset_id}@{version}" if version else f"dataset {dataset_id}"
