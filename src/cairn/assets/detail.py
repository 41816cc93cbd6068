"""An asset's page, as a read model: identity on chain, versions, anchored batches, lineage, and
who is paid from what it earns.

The lineage is the one settlement pays by (`LineageReader`): base models, dataset versions,
the training job and its providers, parent models; the payees come from splitting one whole
token of the asset's revenue over that graph with `split_revenue`, exactly as an epoch would.
Batches are read from ContributionLedger's `Anchored` events, whoever anchored them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import func, select

from cairn.assets.market import MAX_LISTED, Listing, Market, json_part
from cairn.assets.service import Asset, AssetService
from cairn.chain.contracts import Chain
from cairn.core.amounts import TOKEN
from cairn.core.attribution import SCALE
from cairn.core.errors import CairnError
from cairn.core.settlement import RevenueNode, split_revenue
from cairn.data.datasets import Dataset
from cairn.data.models import RecordRow
from cairn.data.service import DataService
from cairn.db.engine import Database
from cairn.economy.lineage import LineageReader
from cairn.store.base import BlobStore

LOG_CHUNK = 5_000  # blocks per eth_getLogs call, as the assets index reads them
SHOWN_BATCHES = 50  # newest anchored batches listed
SHOWN_VERSIONS = 50
SHOWN_PROVIDERS = 12  # provider nodes drawn per job; the rest are summed into one


@dataclass(frozen=True)
class LedgerBatch:
    """One batch anchored for the asset on ContributionLedger."""

    index: int
    root: str
    count: int
    cid: str
    anchored_by: str
    block: int
    tx_hash: str


@dataclass(frozen=True)
class Version:
    """A dataset version: its manifest, records, and the root of the batch that made it."""

    number: int
    manifest_cid: str
    records: int
    batches: int
    root: str | None
    attribution_cid: str
    created_at: int


@dataclass(frozen=True)
class Contributor:
    """An account in a dataset version's attribution table."""

    account: str
    weight: int  # parts of SCALE (10**18) of the dataset's data role
    records: int  # its anchored records
    reviews: int  # its votes judged against a decision or a gold answer

    @property
    def share(self) -> float:
        """The weight as a fraction."""
        return self.weight / SCALE


@dataclass(frozen=True)
class Provider:
    """A provider of the job that trained a model, with its work."""

    account: str
    work: int
    share: float


@dataclass(frozen=True)
class Payee:
    """An account paid from the asset's revenue, with its share and why."""

    account: str
    share: float
    reasons: tuple[str, ...]  # "owner of reverser", "data of Polite replies v1"...


@dataclass(frozen=True)
class LineageNode:
    """One thing in the lineage picture."""

    key: str  # unique: "model 5", "dataset 3@<cid>", "job 0x…", "provider 0x…"
    kind: str  # dataset, model, app, job or provider
    title: str
    detail: str
    asset_id: int | None = None
    job_id: str | None = None
    account: str | None = None  # a provider's


@dataclass(frozen=True)
class Lineage:
    """The lineage picture: nodes, edges from what was used to what was made, and the focus."""

    nodes: tuple[LineageNode, ...]
    edges: tuple[tuple[str, str], ...]
    focus: str


@dataclass
class AssetDetail:
    """Everything the asset page shows (filled in part by part as it is read)."""

    asset: Asset
    listing: Listing
    registry: str  # AssetRegistry's address: the asset is token `asset_id` there
    ledger: str  # ContributionLedger's address
    ledger_batches: int
    ledger_records: int
    batches: list[LedgerBatch]
    metadata: dict[str, Any]
    dataset: Dataset | None = None
    versions: list[Version] = field(default_factory=list)
    agreement: float | None = None  # share of judged review votes that were right
    contributors: list[Contributor] = field(default_factory=list)
    providers: list[Provider] = field(default_factory=list)
    payees: list[Payee] = field(default_factory=list)
    lineage: Lineage | None = None
    lineage_error: str | None = None
    built_on: list[Asset] = field(default_factory=list)  # models and apps naming it a parent

    @property
    def training(self) -> dict[str, Any]:
        """The training record of a model made by a job ({} otherwise)."""
        return json_part(json_part(self.metadata, "extra"), "training")


class AssetDetails:
    """Reads one asset's page."""

    def __init__(
        self,
        db: Database,
        store: BlobStore,
        chain: Chain,
        assets: AssetService,
        data: DataService,
        lineage: LineageReader,
        market: Market,
    ) -> None:
        self.db = db
        self.store = store
        self.chain = chain
        self.assets = assets
        self.data = data
        self.reader = lineage
        self.market = market

    def get(self, asset_id: int) -> AssetDetail:
        """The asset's page; an unknown id is `NotFound`."""
        asset = self.assets.get(asset_id)
        try:
            metadata = self.store.get_json(asset.metadata_cid)
        except CairnError:
            metadata = {}
        ledger = self.chain.ledger
        detail = AssetDetail(
            asset=asset,
            listing=self.market.listing(asset),
            registry=self.chain.registry.address,
            ledger=ledger.address,
            ledger_batches=ledger.batch_count(asset_id),
            ledger_records=ledger.total_contributions(asset_id),
            batches=[],
            metadata=metadata if isinstance(metadata, dict) else {},
            built_on=[
                a
                for a in self.assets.list(limit=MAX_LISTED)
                if asset_id in a.parents and a.kind != "dataset"
            ],
        )
        if detail.ledger_batches:
            detail.batches.extend(self._batches(asset))
        if asset.kind == "dataset":
            self._dataset(detail)
        self._lineage(detail)
        return detail

    # -- datasets -------------------------------------------------------------------------

    def _dataset(self, detail: AssetDetail) -> None:
        asset_id = detail.asset.asset_id
        try:
            detail.dataset = self.data.datasets.get(asset_id)
        except CairnError:  # a dataset asset without a Cairn spec: nothing more is known
            return
        for v in self.data.anchoring.versions(asset_id)[:SHOWN_VERSIONS]:
            try:
                batches = self.store.get_json(v.version).get("batches", [])
            except CairnError:  # the manifest's blob is gone from this store: show no root
                batches = []
            detail.versions.append(
                Version(
                    number=v.number,
                    manifest_cid=v.version,
                    records=v.records,
                    batches=v.batches,
                    root=batches[-1]["root"] if batches else None,
                    attribution_cid=v.attribution_cid,
                    created_at=v.created_at,
                )
            )
        votes = self.data.reviews.judged_votes(asset_id)
        if votes:
            detail.agreement = sum(v.right for v in votes) / len(votes)
        if not detail.versions:
            return
        table = self.store.get_json(detail.versions[0].attribution_cid)
        reviews: dict[str, int] = {}
        for vote in votes:
            reviews[vote.reviewer.lower()] = reviews.get(vote.reviewer.lower(), 0) + 1
        with self.db.session() as session:
            records = {
                str(account).lower(): int(count)
                for account, count in session.execute(
                    select(RecordRow.contributor, func.count())
                    .where(RecordRow.dataset_id == asset_id, RecordRow.status == "anchored")
                    .group_by(RecordRow.contributor)
                )
            }
        detail.contributors.extend(
            sorted(
                (
                    Contributor(
                        account=e["account"],
                        weight=int(e["weight"]),
                        records=records.get(e["account"].lower(), 0),
                        reviews=reviews.get(e["account"].lower(), 0),
                    )
                    for e in table.get("entries", [])
                ),
                key=lambda c: (-c.weight, c.account.lower()),
            )
        )

    # -- the chain ------------------------------------------------------------------------

    def _batches(self, asset: Asset) -> list[LedgerBatch]:
        """The asset's anchored batches, newest first, from ContributionLedger's events."""
        client = self.chain.client
        event = self.chain.ledger.contract.events.Anchored
        head = client.block_number()
        logs: list[Any] = []
        for lo in range(asset.block_number, head + 1, LOG_CHUNK):
            hi = min(lo + LOG_CHUNK - 1, head)
            logs += client.logs(event, lo, hi, {"asset_id": asset.asset_id})
        found = [
            LedgerBatch(
                index=int(log["args"]["batch_index"]),
                root="0x" + bytes(log["args"]["root"]).hex(),
                count=int(log["args"]["count"]),
                cid=str(log["args"]["batch_cid"]),
                anchored_by=str(log["args"]["anchored_by"]),
                block=int(log["blockNumber"]),
                tx_hash=log["transactionHash"].to_0x_hex(),
            )
            for log in logs
        ]
        return sorted(found, key=lambda b: -b.index)[:SHOWN_BATCHES]

    # -- lineage and payees ---------------------------------------------------------------

    def _lineage(self, detail: AssetDetail) -> None:
        asset = detail.asset
        try:
            graph, about = self.reader.graph([asset.asset_id])
            focus = self.reader.key_of(asset.asset_id)
        except (CairnError, AttributeError, KeyError, TypeError, ValueError) as exc:
            detail.lineage_error = f"the lineage of asset {asset.asset_id} cannot be read: {exc}"
            return
        numbers = self._version_numbers(about)
        names = {key: _name(key, info, numbers) for key, info in about.items()}
        detail.lineage = lineage_picture(graph, about, names, focus, detail.built_on)
        node = graph[focus]
        total = sum(node.compute.accounts.values())
        detail.providers.extend(
            Provider(account, work, work / total if total else 0.0)
            for account, work in sorted(node.compute.accounts.items(), key=lambda kv: -kv[1])
        )
        try:
            settlement = split_revenue({focus: TOKEN}, graph)  # each payee's share of a token
        except CairnError as exc:
            detail.lineage_error = f"revenue of asset {asset.asset_id} cannot be split: {exc}"
            return
        reasons: dict[str, set[str]] = {}
        for line in settlement.lines:
            reasons.setdefault(line.account, set()).add(f"{line.role} of {names[line.via]}")
        detail.payees.extend(
            sorted(
                (
                    Payee(account, amount / TOKEN, tuple(sorted(reasons[account])))
                    for account, amount in settlement.payouts.items()
                ),
                key=lambda p: (-p.share, p.account.lower()),
            )
        )

    def _version_numbers(self, about: dict[str, Any]) -> dict[str, int]:
        """Each dataset version's number, by manifest CID."""
        out: dict[str, int] = {}
        for info in about.values():
            if info.get("kind") == "dataset" and info.get("version"):
                for v in self.data.anchoring.versions(int(info["asset"])):
                    out[v.version] = v.number
        return out


def _name(key: str, info: dict[str, Any], numbers: dict[str, int]) -> str:
    """A graph key in people's words: "Polite replies v2", "reverser"."""
    name = str(info.get("name") or key)
    version = info.get("version")
    if info.get("kind") == "dataset" and version:
        return f"{name} v{numbers[version]}" if version in numbers else f"{name} @{version[:12]}"
    return name


def lineage_picture(
    graph: dict[str, RevenueNode],
    about: dict[str, Any],
    names: dict[str, str],
    focus: str,
    built_on: list[Asset],
) -> Lineage:
    """The picture of a lineage graph: a job between a model and what it was trained from, each
    provider feeding the job, and the models built on the focus one step downstream."""
    nodes: dict[str, LineageNode] = {}
    edges: list[tuple[str, str]] = []
    for key, node in graph.items():
        info = about[key]
        kind = str(info.get("kind", "model"))
        if kind == "dataset":
            contributors = len(node.data.accounts)
            detail = f"dataset · {contributors} contributor{'s' * (contributors != 1)}"
        else:
            detail = f"{kind} #{info['asset']}"
        nodes[key] = LineageNode(key, kind, names[key], detail, asset_id=int(info["asset"]))
        into = key
        job_id = info.get("job_id")
        if isinstance(job_id, str) and job_id:
            into = f"job {job_id}"
            nodes[into] = LineageNode(
                into, "job", "training job", f"{job_id[:10]}…{job_id[-4:]}", job_id=job_id
            )
            edges.append((into, key))
        for source in (*node.data.assets, *node.upstream.assets):
            edges.append((source, into))
        providers = sorted(node.compute.accounts.items(), key=lambda kv: (-kv[1], kv[0].lower()))
        total = sum(w for _, w in providers) or 1
        for account, work in providers[:SHOWN_PROVIDERS]:
            pkey = f"provider {account}"
            nodes[pkey] = LineageNode(
                pkey,
                "provider",
                f"{account[:8]}…{account[-4:]}",
                f"provider · {work / total:.0%}",
                account=account,
            )
            edges.append((pkey, into))
        if len(providers) > SHOWN_PROVIDERS:
            rest = f"providers {key}"
            nodes[rest] = LineageNode(
                rest, "provider", f"{len(providers) - SHOWN_PROVIDERS} more providers", "provider"
            )
            edges.append((rest, into))
    for child in built_on:
        ckey = f"{child.kind} {child.asset_id}"
        if ckey not in nodes:
            nodes[ckey] = LineageNode(
                ckey,
                child.kind,
                child.name or ckey,
                f"{child.kind} #{child.asset_id}",
                asset_id=child.asset_id,
            )
        edges.append((focus, ckey))
    known = [(a, b) for a, b in dict.fromkeys(edges) if a in nodes and b in nodes and a != b]
    return Lineage(tuple(nodes.values()), tuple(known), focus)
