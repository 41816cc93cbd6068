"""Anchoring: batch accepted records, anchor each batch's Merkle root on chain, cut versions.

A batch is stored by CID with its whole tree, so anyone can rebuild the root; every anchored
record then has (batch, index, proof) that ContributionLedger.verify checks on chain. Each batch
yields a new dataset version: a manifest (all batches so far, the attribution table's CID) named
by its own CID.

Over 400 lines because batching, versions and proofs share one lock and one cache of batch
trees, and the frozen records they answer sit beside them; the records could move to their own
module if it grows further.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from eth_account.signers.local import LocalAccount
from hexbytes import HexBytes
from sqlalchemy import func, select, update

from cairn.assets.content import ContentRefs, Scope
from cairn.chain.contracts import Chain
from cairn.core.attribution import (
    SCALE,
    ContributionCredit,
    ReviewCredit,
    attribution_table,
    table_document,
)
from cairn.core.collector import collector_paused
from cairn.core.data_policy import RewardPolicy, TaskSpec
from cairn.core.errors import Forbidden, InvalidInput, NotFound
from cairn.core.merkle import StandardMerkleTree
from cairn.data.datasets import Datasets
from cairn.data.models import BatchRow, RecordRow, VersionRow
from cairn.data.review import Reviews
from cairn.db.engine import Database
from cairn.store.base import BlobStore

# A record leaf: (dataset id, sha2-256 of the record's canonical JSON, contributor).
RECORD_LEAF = ["uint256", "bytes32", "address"]
MAX_BATCH = 100_000
ID_CHUNK = 1_000
TREE_CACHE = 8  # batches whose trees stay in memory for proofs


@dataclass(frozen=True)
class AnchoredBatch:
    """A batch as anchored: where its root is on chain and which version it made."""

    dataset_id: int
    batch_index: int
    root: str
    count: int
    cid: str
    tx_hash: str
    version: str
    attribution_cid: str


@dataclass(frozen=True)
class AnchorOutcome:
    """What anchoring by hand did: the batch (None: no accepted record was waiting) and the
    bounty payouts the batch earned at once (the economy's records of them)."""

    batch: AnchoredBatch | None
    bounties_paid: tuple[Any, ...]

    @property
    def anchored(self) -> bool:
        """Whether a batch was anchored."""
        return self.batch is not None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready fields (the API answers them through its response model)."""
        return {
            "anchored": self.anchored,
            "batch": dict(self.batch.__dict__) if self.batch else None,
            "bounties_paid": list(self.bounties_paid),
        }


@dataclass(frozen=True)
class DatasetVersion:
    """An anchored state of a dataset, named by the CID of its manifest."""

    version: str  # the manifest's CID
    number: int  # 1 for the first version, then one more per anchored batch
    records: int
    batches: int
    attribution_cid: str
    created_at: int


@dataclass(frozen=True)
class ManifestBatch:
    """One anchored batch as a version's manifest lists it."""

    index: int
    root: str
    count: int
    cid: str


@dataclass(frozen=True)
class VersionManifest:
    """A version's manifest (schema cairn.dataset-version/v1): every batch so far and the CID
    of the attribution table; stored by CID, which names the version."""

    dataset_id: int
    number: int
    previous: str | None  # the manifest CID of the version before, None for the first
    task: TaskSpec
    batches: tuple[ManifestBatch, ...]
    records: int
    attribution: str  # the attribution table's CID

    @classmethod
    def from_document(cls, doc: dict[str, Any]) -> VersionManifest:
        """The manifest as stored (JSON)."""
        return cls(
            dataset_id=int(doc["dataset_id"]),
            number=int(doc["number"]),
            previous=doc["previous"],
            task=TaskSpec.model_validate(doc["task"]),
            batches=tuple(ManifestBatch(**b) for b in doc["batches"]),
            records=int(doc["records"]),
            attribution=str(doc["attribution"]),
        )


@dataclass(frozen=True)
class AttributionEntry:
    """One account's weight in an attribution table."""

    account: str
    weight: str  # parts of `scale`, decimal: JSON numbers cannot hold them exactly


@dataclass(frozen=True)
class VersionAttribution:
    """A version's attribution table as stored (schema cairn.attribution/v1), with the version
    it belongs to and its CID."""

    version: str
    cid: str
    schema: str
    scale: str
    dataset_id: int
    policy: RewardPolicy
    entries: tuple[AttributionEntry, ...]


@dataclass(frozen=True)
class AttributionShare:
    """An account's share of the data revenue of a dataset's newest version."""

    share: float  # of the version's attribution, 0 to 1
    number: int  # the version's number
    records: int  # records anchored in the version


@dataclass(frozen=True)
class RecordProof:
    """What proves an anchored record's inclusion: its leaf, the batch's root and the proof,
    and whether ContributionLedger.verify accepted them."""

    dataset_id: int
    record_hash: str
    contributor: str
    batch_index: int
    batch_cid: str
    root: str
    leaf_encoding: tuple[str, ...]
    value: tuple[str, str, str]  # (dataset id, record hash, contributor), as the leaf encodes
    leaf: str
    proof: tuple[str, ...]
    ledger: str
    verified_on_chain: bool


def record_leaf(dataset_id: int, record_hash: str, contributor: str) -> list[Any]:
    """The Merkle leaf value of one record."""
    return [dataset_id, "0x" + record_hash.removeprefix("0x"), contributor]


class Anchoring:
    """Batch, anchor, version, prove and export."""

    def __init__(
        self,
        chain: Chain,
        store: BlobStore,
        db: Database,
        datasets: Datasets,
        reviews: Reviews,
        operator: LocalAccount,
        refs: ContentRefs,
    ) -> None:
        self.chain = chain
        self.refs = refs
        self.store = store
        self.db = db
        self.datasets = datasets
        self.reviews = reviews
        self.operator = operator
        self._lock = threading.Lock()
        self._trees: OrderedDict[str, StandardMerkleTree] = OrderedDict()
        self._trees_lock = threading.Lock()
        # Pays what the bounties on anchored batches owe and returns the payouts of one batch
        # (the economy's `BountyBook.pay_batch`), wired by the composition root: bounties
        # belong to the economy, which stands on data.
        self.pay_bounties: Callable[[str], Sequence[Any]] | None = None

    def anchor_by(self, account: str, dataset_id: int) -> AnchorOutcome:
        """Anchor the accepted records now, for `account`: the dataset's owner or a curator.

        A batch anchored by hand is paid by the dataset's bounties at once; scheduled anchoring
        (`anchor_due`) leaves that to the economy's own tick.
        """
        if not self.chain.registry.can_anchor(dataset_id, account):
            raise Forbidden(f"{account} is neither the owner nor a curator of dataset {dataset_id}")
        batch = self.anchor(dataset_id)
        paid = self.pay_bounties(batch.root) if batch is not None and self.pay_bounties else []
        return AnchorOutcome(batch, tuple(paid))

    def anchor(self, dataset_id: int) -> AnchoredBatch | None:
        """Anchor every accepted record not yet anchored, as one batch; None if there are none."""
        with self._lock, collector_paused():
            with self.db.session() as session:
                records = session.execute(
                    select(
                        RecordRow.id,
                        RecordRow.record_hash,
                        RecordRow.contributor,
                        RecordRow.quality,
                        RecordRow.content,
                    )
                    .where(RecordRow.dataset_id == dataset_id, RecordRow.status == "accepted")
                    .order_by(RecordRow.id)
                    .limit(MAX_BATCH)
                ).all()
            if not records:
                return None
            if not self.chain.registry.can_anchor(dataset_id, self.operator.address):
                owner = self.chain.registry.owner_of(dataset_id)
                raise Forbidden(
                    f"this node's operator {self.operator.address} may not anchor dataset {dataset_id}: "
                    f"its owner {owner} must make it a curator (AssetRegistry.set_curator)"
                )
            values = [record_leaf(dataset_id, r.record_hash, r.contributor) for r in records]
            tree = StandardMerkleTree.of(values, RECORD_LEAF)
            # The records are the leaves: anyone rebuilds the tree and its root from this alone.
            batch_doc = {
                "schema": "cairn.batch/v1",
                "dataset_id": dataset_id,
                "leaf_encoding": RECORD_LEAF,
                "root": tree.root,
                "records": [
                    {
                        "record_hash": r.record_hash,
                        "contributor": r.contributor,
                        "quality": r.quality,
                        "content": r.content,
                    }
                    for r in records
                ],
            }
            cid = self.store.put_json(batch_doc)
            self.refs.add(cid, Scope.DATASET, dataset_id)  # every record: the dataset's gate
            if self.chain.ledger.is_anchored(
                dataset_id, tree.root
            ):  # a crash after anchoring, before indexing
                index = self.chain.ledger.batch_of(dataset_id, tree.root)[0]
                tx_hash = ""
            else:
                index, receipt = self.chain.ledger.anchor(
                    self.operator, dataset_id, tree.root, len(records), cid
                )
                tx_hash = HexBytes(receipt["transactionHash"]).to_0x_hex()
            now = int(time.time())
            with self.db.session() as session:
                batch = BatchRow(
                    dataset_id=dataset_id,
                    batch_index=index,
                    root=tree.root,
                    count=len(records),
                    cid=cid,
                    tx_hash=tx_hash,
                    anchored_at=now,
                )
                session.add(batch)
                session.flush()
                ids = [r.id for r in records]
                for start in range(0, len(ids), ID_CHUNK):  # SQLite caps bound parameters
                    session.execute(
                        update(RecordRow)
                        .where(RecordRow.id.in_(ids[start : start + ID_CHUNK]))
                        .values(status="anchored", batch_id=batch.id)
                    )
                batch_id = batch.id
            version, attribution_cid = self._cut_version(dataset_id)
            return AnchoredBatch(
                dataset_id,
                index,
                tree.root,
                len(records),
                cid,
                tx_hash or f"batch {batch_id}",
                version,
                attribution_cid,
            )

    def has_waiting(self) -> bool:
        """Whether an accepted record waits for anchoring (one indexed read): the node's
        scheduler calls `anchor_due` only then."""
        with self.db.session() as session:
            found = session.scalar(
                select(RecordRow.id).where(RecordRow.status == "accepted").limit(1)
            )
        return found is not None

    def anchor_due(self, now: float | None = None) -> list[AnchoredBatch]:
        """Anchor every dataset whose waiting records reached the policy's count or age."""
        now = time.time() if now is None else now
        with self.db.session() as session:
            waiting = session.execute(
                select(RecordRow.dataset_id, func.count(), func.min(RecordRow.decided_at))
                .where(RecordRow.status == "accepted")
                .group_by(RecordRow.dataset_id)
            ).all()
        done = []
        for dataset_id, count, oldest in waiting:
            policy = self.datasets.spec(dataset_id).anchoring
            if count >= policy.every_records or (
                oldest is not None and now - oldest >= policy.every_seconds
            ):
                batch = self.anchor(dataset_id)
                if batch is not None:
                    done.append(batch)
        return done

    # -- versions and attribution --------------------------------------------------------

    def attribution(self, dataset_id: int) -> dict[str, int]:
        """The attribution table of the dataset's anchored records and the reviews behind them."""
        spec = self.datasets.spec(dataset_id)
        with self.db.session() as session:
            anchored = session.execute(
                select(RecordRow.contributor, RecordRow.quality).where(
                    RecordRow.dataset_id == dataset_id, RecordRow.status == "anchored"
                )
            ).all()
        contributions = [
            ContributionCredit(account, max(quality, 1e-6)) for account, quality in anchored
        ]
        reviews = [ReviewCredit(v.reviewer, v.right) for v in self.reviews.judged_votes(dataset_id)]
        return attribution_table(
            contributions,
            reviews,
            contributors_bps=spec.reward.contributors_bps,
            reviewers_bps=spec.reward.reviewers_bps,
        )

    def _cut_version(self, dataset_id: int) -> tuple[str, str]:
        spec = self.datasets.spec(dataset_id)
        table = self.attribution(dataset_id)
        with self.db.session() as session:
            batches = session.scalars(
                select(BatchRow)
                .where(BatchRow.dataset_id == dataset_id)
                .order_by(BatchRow.batch_index)
            ).all()
            previous = session.scalars(
                select(VersionRow)
                .where(VersionRow.dataset_id == dataset_id)
                .order_by(VersionRow.number.desc())
                .limit(1)
            ).first()
            number = previous.number + 1 if previous else 1
            previous_cid = previous.manifest_cid if previous else None
        attribution_cid = self.store.put_json(
            table_document(
                table,
                dataset_id=dataset_id,
                version=None,
                policy=spec.reward.model_dump(mode="json"),
            )
        )
        manifest = {
            "schema": "cairn.dataset-version/v1",
            "dataset_id": dataset_id,
            "number": number,
            "previous": previous_cid,
            "task": spec.task.model_dump(mode="json"),
            "batches": [
                {"index": b.batch_index, "root": b.root, "count": b.count, "cid": b.cid}
                for b in batches
            ],
            "records": sum(b.count for b in batches),
            "attribution": attribution_cid,
        }
        manifest_cid = self.store.put_json(manifest)
        self.refs.add(attribution_cid, Scope.PUBLIC)  # who is paid and why: anyone may audit
        self.refs.add(manifest_cid, Scope.DATASET, dataset_id)
        with self.db.session() as session:
            session.merge(
                VersionRow(
                    manifest_cid=manifest_cid,
                    dataset_id=dataset_id,
                    number=number,
                    records=manifest["records"],
                    batches=len(batches),
                    attribution_cid=attribution_cid,
                    created_at=int(time.time()),
                )
            )
        return manifest_cid, attribution_cid

    def versions(self, dataset_id: int) -> list[DatasetVersion]:
        """The dataset's versions, newest first."""
        self.datasets.get(dataset_id)
        with self.db.session() as session:
            rows = session.scalars(
                select(VersionRow)
                .where(VersionRow.dataset_id == dataset_id)
                .order_by(VersionRow.number.desc())
            ).all()
        return [
            DatasetVersion(
                version=r.manifest_cid,
                number=r.number,
                records=r.records,
                batches=r.batches,
                attribution_cid=r.attribution_cid,
                created_at=r.created_at,
            )
            for r in rows
        ]

    def _version(self, dataset_id: int, version: str | None) -> DatasetVersion:
        """One of the dataset's versions by manifest CID (the newest if `version` is None)."""
        versions = self.versions(dataset_id)
        if not versions:
            raise NotFound(f"dataset {dataset_id} has no anchored version yet: anchor it first")
        found = (
            versions[0]
            if version is None
            else next((v for v in versions if v.version == version), None)
        )
        if found is None:
            raise NotFound(f"{version} is not a version of dataset {dataset_id}")
        return found

    def manifest(self, dataset_id: int, version: str | None = None) -> VersionManifest:
        """A version's manifest (the newest if `version` is None)."""
        cid = self._version(dataset_id, version).version
        return VersionManifest.from_document(self.store.get_json(cid))

    def attribution_of(self, dataset_id: int, version: str | None = None) -> VersionAttribution:
        """A version's attribution table as stored (account -> weight in parts of 10**18), with
        the version (the newest if `version` is None) and the table's CID."""
        chosen = self._version(dataset_id, version)
        table = self.store.get_json(chosen.attribution_cid)
        return VersionAttribution(
            version=chosen.version,
            cid=chosen.attribution_cid,
            schema=str(table["schema"]),
            scale=str(table["scale"]),
            dataset_id=int(table["dataset_id"]),
            policy=RewardPolicy.model_validate(table["policy"]),
            entries=tuple(
                AttributionEntry(e["account"], str(e["weight"])) for e in table["entries"]
            ),
        )

    def share_of(self, dataset_id: int, account: str) -> AttributionShare | None:
        """The account's share of the newest version's attribution, or None before a version."""
        versions = self.versions(dataset_id)
        if not versions:
            return None
        table = self.attribution_of(dataset_id, versions[0].version)
        weight = sum(int(e.weight) for e in table.entries if e.account.lower() == account.lower())
        return AttributionShare(weight / SCALE, versions[0].number, versions[0].records)

    # -- proofs and export ---------------------------------------------------------------

    def _tree(self, cid: str, doc: dict[str, Any] | None = None) -> StandardMerkleTree:
        """A batch's Merkle tree, rebuilt from its stored records (a few recent ones cached)."""
        with self._trees_lock:
            if cid in self._trees:
                self._trees.move_to_end(cid)
                return self._trees[cid]
        doc = doc if doc is not None else self.store.get_json(cid)
        values = [
            record_leaf(int(doc["dataset_id"]), r["record_hash"], r["contributor"])
            for r in doc["records"]
        ]
        with collector_paused():
            tree = StandardMerkleTree.of(values, doc["leaf_encoding"])
        with self._trees_lock:
            self._trees[cid] = tree
            while len(self._trees) > TREE_CACHE:
                self._trees.popitem(last=False)
        return tree

    def proof(self, dataset_id: int, record: str) -> RecordProof:
        """(batch, index, proof) of an anchored record, checked on chain; `record` is its hash or id."""
        with self.db.session() as session:
            if record.isdigit():
                row = session.get(RecordRow, int(record))
            else:
                row = session.scalars(
                    select(RecordRow).where(
                        RecordRow.dataset_id == dataset_id,
                        RecordRow.record_hash == record.lower().removeprefix("0x"),
                    )
                ).first()
            if row is None or row.dataset_id != dataset_id:
                raise NotFound(f"dataset {dataset_id} has no record {record}")
            if row.status != "anchored" or row.batch_id is None:
                raise InvalidInput(
                    f"record {record} is {row.status}, not anchored yet: no proof exists"
                )
            batch = session.get(BatchRow, row.batch_id)
            if batch is None:
                raise NotFound(f"the batch of record {record} is missing from the index")
        tree = self._tree(batch.cid)
        value = record_leaf(dataset_id, row.record_hash, row.contributor)
        proof = tree.get_proof(value)
        leaf = tree.leaf_hash(value)
        verified = self.chain.ledger.verify(dataset_id, batch.root, leaf, proof)
        return RecordProof(
            dataset_id=dataset_id,
            record_hash=row.record_hash,
            contributor=row.contributor,
            batch_index=batch.batch_index,
            batch_cid=batch.cid,
            root=batch.root,
            leaf_encoding=tuple(RECORD_LEAF),
            value=(str(dataset_id), value[1], value[2]),
            leaf=leaf,
            proof=tuple(proof),
            ledger=self.chain.ledger.address,
            verified_on_chain=verified,
        )

    def records(self, dataset_id: int, version: str | None = None) -> list[dict[str, Any]]:
        """The records of a version, read back from the store batch by batch (each verified)."""
        manifest = self.manifest(dataset_id, version)
        out: list[dict[str, Any]] = []
        for batch in manifest.batches:
            doc = self.store.get_json(batch.cid)
            if self._tree(batch.cid, doc).root != batch.root:
                raise InvalidInput(f"batch {batch.cid} does not rebuild its anchored root")
            for r in doc["records"]:
                out.append(
                    {
                        **r["content"],
                        "_contributor": r["contributor"],
                        "_record_hash": r["record_hash"],
                    }
                )
        return out
