"""`cairn audit`: re-derive every funded epoch from the chain and public blobs, and compare.

For each `EpochFunded` event on RevenueDistributor the auditor reads the document the funder
named, by CID, and checks it against what it can rebuild without trusting the node:

- a revenue epoch (funded by the gateway's PrepaidVault, or before it by its treasury): the
  payout tree hashes to the root on chain and holds exactly the settlement's payouts, which add
  up to the amount funded; every receipt it settled is in a batch whose root the gateway
  anchored, is signed by that gateway, hashes to its leaf, and was settled in no other epoch;
  every licence sale is a `LicenceBought` event paid to the vault or the treasury, counted
  once; for a vault's epoch, the spend tree holds each payer's cumulative spend (the earlier
  epochs' and this one's receipts signed since the vault came), its root was anchored by the
  gateway, and the vault drew up to each leaf against it; the revenue per asset is their sum; the lineage graph is rebuilt from
  the chain (owners and metadata as of the block the node read them at) and the public
  documents it names (training lineage, work shares, attribution tables); and the split
  (`cairn.core.settlement`) of that revenue over that graph is, line for line, the settlement.
- a bounty epoch (DataBounty's): its `BatchPaid` event, the bounty's prices and what was left
  of its budget (from its events), the batch anchored under the dataset, and the plan
  (`cairn.core.bounty`) of the contributors and useful reviewers the document lists.

Each check is a `Finding`: ok, differs (naming what), or unchecked (what could not be read, such
as a paid dataset's manifest, or inputs an older node did not publish).

Over 400 lines because the two kinds of epoch share the checks of a payout tree and a document
and must be read beside each other; the chain and blob reading is `cairn.verify.audit_chain`.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from cairn.assets.service import Asset
from cairn.core.bounty import SCHEMA as BOUNTY_SCHEMA
from cairn.core.bounty import plan_batch
from cairn.core.errors import CairnError
from cairn.core.evm import checksum
from cairn.core.merkle import StandardMerkleTree
from cairn.core.settlement import PayoutLine, Settlement, settlement_from_document, split_revenue
from cairn.data.anchoring import RECORD_LEAF, record_leaf
from cairn.economy.epochs import EPOCH_SCHEMA
from cairn.economy.lineage import LineageReader
from cairn.economy.receipts import receipt_from_json, receipt_leaf, verify_receipt
from cairn.verify.audit_chain import AnchoredBatch, AuditChain, BlobReader, FundedEpoch, hex_of
from cairn.verify.audit_jobs import JobAudit, audit_jobs
from cairn.verify.findings import Audited, Finding, Findings

SHOWN = 3  # differing lines named per finding


@dataclass(frozen=True)
class EpochAudit(Audited):
    """What the auditor found for one funded epoch."""

    epoch: int
    kind: str  # revenue | bounty | unknown
    amount: int
    root: str
    document: str
    funder: str
    findings: tuple[Finding, ...]


@dataclass(frozen=True)
class AuditReport:
    """Every funded epoch audited, in order."""

    epochs: tuple[EpochAudit, ...]
    jobs: tuple[JobAudit, ...]  # every training job settled on JobEscrow
    head: int  # the chain's block the audit read up to

    @property
    def ok(self) -> bool:
        """No epoch or job differs from what the chain and the public documents give."""
        return all(e.ok for e in self.epochs) and all(j.ok for j in self.jobs)


class ChainLineage(LineageReader):
    """The lineage reader over the chain as of one block and public blobs: the same rules the
    node settled by, fed from facts anyone can read. Dataset versions (manifests may be paid
    content) come from the settlement's own description, checked apart by `Auditor`."""

    def __init__(
        self,
        chain: AuditChain,
        blobs: BlobReader,
        block: int,
        about: dict[str, Any],
        newest: dict[str, str | None],
    ) -> None:  # no super().__init__: every fact comes through the hooks below
        self.chain, self.blobs, self.block = chain, blobs, block
        self.tables: dict[tuple[int, str], str] = {}  # (dataset, version) -> attribution CID
        self.newest: dict[int, str | None] = {int(d): v for d, v in newest.items()}
        for info in about.values():
            if info.get("kind") == "dataset" and info.get("version"):
                dataset, version = int(info["asset"]), str(info["version"])
                self.tables[dataset, version] = str(info.get("attribution") or "")
                self.newest.setdefault(dataset, version)  # a settlement before `newest` was kept
        self._assets: dict[int, Asset] = {}

    def _sync(self) -> None:
        pass

    def _asset(self, asset_id: int) -> Asset:
        if asset_id not in self._assets:
            self._assets[asset_id] = self.chain.asset_at(asset_id, self.block, self.blobs)
        return self._assets[asset_id]

    def _json(self, cid: str) -> dict[str, Any]:
        return dict(self.blobs(cid))

    def _attribution_cid(self, dataset_id: int, version: str) -> str:
        return self.tables.get((dataset_id, version)) or str(self._json(version)["attribution"])

    def _newest_version(self, dataset_id: int) -> str | None:
        return self.newest.get(dataset_id)


def _amount(value: Any) -> int:
    return int(str(value))


class Auditor:
    """Audit every funded epoch in chain order (receipts and sales counted once across all)."""

    def __init__(self, chain: AuditChain, blobs: BlobReader) -> None:
        self.chain = chain
        self.blobs = blobs
        self.receipts: dict[str, int] = {}  # receipt id -> the epoch that settled it
        self.sales: dict[tuple[str, int], int] = {}  # (tx, log index) -> epoch
        # (vault, payer) -> cumulative spend the vault's epochs drew
        self.spent: dict[tuple[str, str], int] = {}

    def run(self, only: Iterable[int] = ()) -> AuditReport:
        """The report of every epoch (of those in `only`, when given; the others are still
        read, so that a receipt settled twice is caught wherever it appears)."""
        wanted = set(only)
        audits = [self.epoch(e) for e in self.chain.funded_epochs()]
        return AuditReport(
            tuple(a for a in audits if not wanted or a.epoch in wanted),
            () if wanted else tuple(audit_jobs(self.chain, self.blobs)),
            self.chain.head,
        )

    def epoch(self, funded: FundedEpoch) -> EpochAudit:
        """Audit one funded epoch."""
        found, kind = Findings(), "unknown"
        try:
            doc = self.blobs(funded.document)
        except CairnError as exc:
            found.check("document", False, f"cannot read {funded.document}: {exc.message}")
        else:
            schema = doc.get("schema") if isinstance(doc, dict) else None
            try:
                if schema == EPOCH_SCHEMA:
                    kind = "revenue"
                    self._revenue(funded, doc, found)
                elif schema == BOUNTY_SCHEMA:
                    kind = "bounty"
                    self._bounty(funded, doc, found)
                else:
                    found.check("document", False, f"unknown schema {schema!r}")
            except (CairnError, KeyError, TypeError, ValueError) as exc:
                message = exc.message if isinstance(exc, CairnError) else repr(exc)
                found.check("document", False, f"malformed or unreadable: {message}")
        return EpochAudit(
            funded.epoch,
            kind,
            funded.amount,
            funded.root,
            funded.document,
            funded.funder,
            tuple(found.items),
        )

    # -- shared ------------------------------------------------------------------------------

    def _tree(
        self, funded: FundedEpoch, tree_cid: str, payouts: dict[str, int], f: Findings
    ) -> None:
        tree = StandardMerkleTree.load(self.blobs(tree_cid))
        f.check("tree", tree.root == funded.root, f"tree {tree_cid} hashes to {tree.root}")
        leaves = {checksum(a): int(v) for _, (a, v) in tree.entries()}
        wanted = {checksum(a): v for a, v in payouts.items()}
        f.check(
            "payouts",
            leaves == wanted,
            "the tree pays exactly the settlement's payouts"
            if leaves == wanted
            else f"tree and payouts differ for {sorted(set(leaves.items()) ^ set(wanted.items()))[:SHOWN]}",
        )

    # -- revenue epochs ----------------------------------------------------------------------

    def _revenue(self, funded: FundedEpoch, doc: dict[str, Any], f: Findings) -> None:
        treasury = checksum(doc["treasury"])
        f.check("funder", funded.funder == treasury, f"funded by {funded.funder}")
        f.check("root", doc["root"].lower() == funded.root.lower(), f"document root {doc['root']}")
        f.check("amount", _amount(doc["revenue"]) == funded.amount, f"revenue {doc['revenue']}")
        settled = self.blobs(doc["settlement"])
        settlement = settlement_from_document(settled)  # lines add up, or InvalidInput
        self._tree(funded, doc["tree"], settlement.payouts, f)
        f.check("total", settlement.total == funded.amount, f"settlement pays {settlement.total}")
        inputs = settled.get("inputs")
        if not isinstance(inputs, dict):
            f.unchecked(
                "inputs",
                "the settlement does not list its receipts and sales (settled "
                "before nodes published them): only its arithmetic was checked",
            )
            return
        about = dict(settled.get("assets", {}))
        lineage = ChainLineage(
            self.chain, self.blobs, int(inputs["block"]), about, dict(inputs.get("newest", {}))
        )
        revenue: dict[tuple[int, str | None], int] = {}
        payers: list[tuple[str, int, int]] = []  # (payer, amount, signed at) of each receipt
        self._receipts(funded, inputs["receipts"], revenue, payers, f)
        gateway = checksum(doc.get("gateway", treasury))  # a vault's epoch names its gateway
        self._sales(funded, inputs["sales"], {treasury, gateway}, revenue, f)
        if gateway != treasury:
            self._spend(funded, doc, gateway, payers, f)
        keyed: dict[str, int] = {}
        for (asset_id, version), amount in sorted(
            revenue.items(), key=lambda i: (i[0][0], i[0][1] or "")
        ):
            key = lineage.key_of(asset_id, version)
            keyed[key] = keyed.get(key, 0) + amount
        same = keyed == settlement.revenue
        f.check(
            "revenue",
            same,
            f"{len(keyed)} assets earned {sum(keyed.values())}"
            if same
            else f"re-derived {keyed}, published {settlement.revenue}",
        )
        self._versions(about, lineage.newest, int(inputs["block"]), f)
        sources: list[tuple[int, str | None]] = sorted(revenue, key=lambda s: (s[0], s[1] or ""))
        graph, _ = lineage.graph(sources)
        self._split(funded, split_revenue(keyed, graph), settlement, f)

    def _receipts(
        self,
        funded: FundedEpoch,
        batches: list[dict[str, Any]],
        revenue: dict[tuple[int, str | None], int],
        payers: list[tuple[str, int, int]],
        f: Findings,
    ) -> None:
        count, bad = 0, []
        for batch in batches:
            doc = self.blobs(batch["batch"])
            entries = {e["receipt_id"]: e for e in doc["receipts"]}
            root = StandardMerkleTree.of([[e["leaf"]] for e in doc["receipts"]], ["bytes32"]).root
            anchored = self.chain.anchored(int(doc["gateway_asset"]), root, funded.block)
            if root.lower() != batch["root"].lower() or anchored is None:
                bad.append(
                    f"batch {batch['batch']} is not the one anchored with root {batch['root']}"
                )
                continue
            for receipt_id in batch["ids"]:
                entry = entries.get(receipt_id)
                if entry is None:
                    bad.append(f"receipt {receipt_id} is not in batch {batch['batch']}")
                    continue
                receipt = receipt_from_json(entry)
                try:
                    verify_receipt(receipt, entry["signature"])
                except CairnError:
                    bad.append(f"receipt {receipt_id}: the signature is not its gateway's")
                    continue
                if receipt_leaf(receipt, entry["signature"]) != entry["leaf"]:
                    bad.append(f"receipt {receipt_id}: the leaf is not its hash")
                elif checksum(receipt.gateway) != anchored.by:
                    bad.append(
                        f"receipt {receipt_id}: signed by {receipt.gateway}, anchored by {anchored.by}"
                    )
                elif receipt_id in self.receipts:
                    bad.append(
                        f"receipt {receipt_id} was settled in epoch {self.receipts[receipt_id]} too"
                    )
                else:
                    self.receipts[receipt_id] = funded.epoch
                    key = (receipt.model, None)
                    revenue[key] = revenue.get(key, 0) + _amount(receipt.amount)
                    payers.append(
                        (checksum(receipt.account), _amount(receipt.amount), receipt.created_at)
                    )
                    count += 1
        f.check(
            "receipts",
            not bad,
            "; ".join(bad[:SHOWN]) or f"{count} receipts, each anchored and signed",
        )

    def _sales(
        self,
        funded: FundedEpoch,
        sales: list[dict[str, Any]],
        payees: set[str],
        revenue: dict[tuple[int, str | None], int],
        f: Findings,
    ) -> None:
        bad = []
        for sale in sales:
            where = (str(sale["tx"]).lower(), int(sale["log_index"]))
            event = self.chain.sale(*where)
            if event is None or event.block > funded.block:
                bad.append(f"no licence sale at {where[0]} log {where[1]}")
            elif (event.asset_id, event.paid) != (
                int(sale["asset"]),
                _amount(sale["paid"]),
            ) or event.treasury not in payees:
                bad.append(
                    f"sale at {where[0]}: the chain says asset {event.asset_id}, paid {event.paid} to {event.treasury}"
                )
            elif where in self.sales:
                bad.append(f"sale at {where[0]} was settled in epoch {self.sales[where]} too")
            else:
                self.sales[where] = funded.epoch
                key = (event.asset_id, sale.get("version"))
                revenue[key] = revenue.get(key, 0) + event.paid
        f.check("sales", not bad, "; ".join(bad[:SHOWN]) or f"{len(sales)} licence sales on chain")

    def _spend(
        self,
        funded: FundedEpoch,
        doc: dict[str, Any],
        gateway: str,
        payers: list[tuple[str, int, int]],
        f: Findings,
    ) -> None:
        """A vault's epoch: its spend tree holds each payer's cumulative spend (what earlier
        epochs drew, and what this one's receipts signed since the vault came charged), the
        gateway anchored its root, and the vault drew up to each leaf, against that root."""
        vault, since = checksum(doc["treasury"]), int(doc["since"])
        move = self.blobs(doc["move"])  # the move of custody into the vault names `since`
        f.check(
            "since",
            move.get("since") == since and checksum(move.get("vault", "")) == vault,
            f"receipts signed from {since} (ms) on are drawn, as the move {doc['move']} says",
        )
        new: dict[str, int] = {}
        for payer, amount, signed_at in payers:
            if signed_at >= since and amount:
                new[payer] = new.get(payer, 0) + amount
        wanted = {payer: self.spent.get((vault, payer), 0) + n for payer, n in new.items()}
        spend = doc.get("spend")
        if spend is None:
            f.check(
                "spend",
                not wanted,
                f"{len(wanted)} payers spent, and no spend root was drawn against"
                if wanted
                else "no receipt drawn from the vault",
            )
            return
        tree = StandardMerkleTree.load(self.blobs(spend["tree"]))
        leaves = {checksum(a): int(v) for _, (a, v) in tree.entries()}
        anchored = self.chain.anchored(int(spend["asset"]), tree.root, funded.block)
        problems = []
        if tree.root.lower() != str(spend["root"]).lower():
            problems.append(f"tree {spend['tree']} hashes to {tree.root}")
        if anchored is None or anchored.by != gateway:
            problems.append(f"root {tree.root} was not anchored by the gateway {gateway}")
        if leaves != wanted:
            problems.append(
                f"leaves and receipts differ for {sorted(set(leaves.items()) ^ set(wanted.items()))[:SHOWN]}"
            )
        f.check(
            "spend",
            not problems,
            "; ".join(problems) or f"{len(leaves)} payers' cumulative spend, anchored",
        )
        drawn = {
            checksum(log["args"]["account"]): int(log["args"]["cumulative"])
            for log in self.chain.logs("PrepaidVault", "Drawn")
            if hex_of(log["args"]["root"]).lower() == tree.root.lower()
            and int(log["blockNumber"]) <= funded.block
        }
        missing = {a: v for a, v in leaves.items() if drawn.get(a) != v}
        f.check(
            "drawn",
            not missing and set(drawn) <= set(leaves),
            f"the vault drew up to each leaf against root {tree.root}"
            if not missing
            else f"not drawn up to their leaves: {sorted(missing.items())[:SHOWN]}",
        )
        self.spent.update({(vault, payer): v for payer, v in leaves.items()})

    def _versions(
        self, about: dict[str, Any], newest: dict[int, str | None], block: int, f: Findings
    ) -> None:
        """Each dataset version the settlement paid: its attribution table is that dataset's;
        where its manifest is public, the table it names and batches anchored by then (all of
        them, for a version paid as the newest)."""
        for key, info in sorted(about.items()):
            if info.get("kind") != "dataset" or not info.get("version"):
                continue
            dataset, version = int(info["asset"]), str(info["version"])
            table_cid = str(info.get("attribution"))
            table = self.blobs(table_cid)
            f.check(
                "lineage", table.get("dataset_id") == dataset, f"{key}: attribution {table_cid}"
            )
            try:
                manifest = self.blobs(version)
            except CairnError:
                f.unchecked(
                    "lineage",
                    f"{key}: the manifest is not public (a paid dataset): its attribution table "
                    "is taken as published",
                )
                continue
            anchored = [b.root.lower() for b in self.chain.batches(dataset, block)]
            roots = [str(b["root"]).lower() for b in manifest.get("batches", [])]
            whole = newest.get(dataset) != version or len(roots) == len(anchored)
            f.check(
                "lineage",
                manifest.get("attribution") == table_cid
                and manifest.get("dataset_id") == dataset
                and roots == anchored[: len(roots)]
                and whole,
                f"{key}: {len(roots)} of the {len(anchored)} batches anchored by block {block}"
                f"{' (the newest)' if newest.get(dataset) == version else ''}, "
                f"table {manifest.get('attribution')}",
            )

    def _split(
        self, funded: FundedEpoch, derived: Settlement, published: Settlement, f: Findings
    ) -> None:
        def line(p: PayoutLine) -> tuple[str, str, str, str, int]:
            return (checksum(p.account), p.source, p.via, p.role, p.amount)

        ours, theirs = {line(p) for p in derived.lines}, {line(p) for p in published.lines}
        differs = ours ^ theirs
        delta: dict[str, int] = {}
        for d in differs:
            delta[d[0]] = delta.get(d[0], 0) + (d[4] if d in theirs else -d[4])
        named = sorted(((a, v) for a, v in delta.items() if v), key=lambda i: (-abs(i[1]), i[0]))
        f.check(
            "split",
            not differs,
            f"{len(ours)} lines re-derived from the lineage"
            if not differs
            else f"{len(differs)} lines differ; published minus re-derived: "
            + ", ".join(f"{a} {v:+d}" for a, v in named[:SHOWN]),
        )
        if derived.total:
            tree = StandardMerkleTree.of(
                [[a, v] for a, v in derived.payouts.items()], ["address", "uint256"]
            )
            f.check("root", tree.root == funded.root, f"the re-derived payouts hash to {tree.root}")

    # -- bounty epochs -----------------------------------------------------------------------

    def _bounty(self, funded: FundedEpoch, doc: dict[str, Any], f: Findings) -> None:
        f.check(
            "funder",
            funded.funder == self.chain.address["DataBounty"],
            f"funded by {funded.funder}",
        )
        f.check("root", doc["root"].lower() == funded.root.lower(), f"document root {doc['root']}")
        f.check("amount", _amount(doc["amount"]) == funded.amount, f"amount {doc['amount']}")
        payouts: dict[str, int] = {}
        for entry in doc["lines"]:
            account = checksum(entry["account"])
            payouts[account] = payouts.get(account, 0) + _amount(entry["amount"])
        f.check(
            "total", sum(payouts.values()) == funded.amount, f"lines pay {sum(payouts.values())}"
        )
        self._tree(funded, doc["tree"], payouts, f)
        paid = self.chain.batch_paid(funded.epoch)
        bounty, dataset, root = int(doc["bounty"]), int(doc["dataset"]), str(doc["batch_root"])
        if paid is None:
            f.check("bounty", False, "no BatchPaid event funded this epoch")
            return
        args = paid["args"]
        same = (
            int(args["bounty_id"]),
            "0x" + bytes(args["batch_root"]).hex(),
            int(args["records"]),
            int(args["reviews"]),
            int(args["amount"]),
        ) == (bounty, root.lower(), int(doc["records"]), int(doc["reviews"]), funded.amount)
        f.check(
            "bounty",
            same,
            f"BatchPaid: bounty {args['bounty_id']}, {args['records']} records, {args['reviews']} reviews",
        )
        per_record, per_review, remaining = self.chain.bounty_before(
            bounty, int(paid["blockNumber"]), int(paid["logIndex"])
        )
        f.check(
            "prices",
            (per_record, per_review) == (_amount(doc["per_record"]), _amount(doc["per_review"])),
            f"{per_record} per record, {per_review} per review",
        )
        batch = self.chain.anchored(dataset, root, funded.block)
        f.check("batch", batch is not None, f"batch {root} of dataset {dataset} anchored on chain")
        inputs = doc.get("inputs")
        if not isinstance(inputs, dict):
            f.check(
                "plan",
                funded.amount <= remaining,
                f"{funded.amount} of {remaining} left in the budget",
            )
            f.unchecked(
                "plan",
                "the payout does not list who it pays for (an older node): only its totals were checked",
            )
            return
        contributors, reviewers = (
            [checksum(a) for a in inputs["contributors"]],
            [checksum(a) for a in inputs["reviewers"]],
        )
        if batch is not None:
            f.check(
                "plan",
                len(contributors) <= batch.count,
                f"{len(contributors)} accepted records of the batch's {batch.count}",
            )
        self._contributors(batch, contributors, f)
        if reviewers:
            f.unchecked(
                "plan",
                f"{len(reviewers)} useful reviews: votes are not public, so who reviewed is "
                "taken as the payout lists it",
            )
        plan = plan_batch(
            contributors,
            reviewers,
            per_record=per_record,
            per_review=per_review,
            remaining=remaining,
        )
        derived = {checksum(a): v for a, v in plan.payouts.items()}
        f.check(
            "plan",
            derived == payouts and plan.amount == funded.amount,
            f"re-planned {plan.records} records and {plan.reviews} reviews for {plan.amount} of {remaining} left",
        )

    def _contributors(self, batch: AnchoredBatch | None, listed: list[str], f: Findings) -> None:
        """The contributors a bounty paid for are the anchored batch's, in order, where the
        batch is public (a paid dataset's records are not)."""
        if batch is None:
            return
        try:
            doc = self.blobs(batch.cid)
        except CairnError:
            f.unchecked(
                "plan", f"batch {batch.cid} is not public: its contributors are taken as listed"
            )
            return
        records = doc.get("records", [])
        values = [record_leaf(batch.asset_id, r["record_hash"], r["contributor"]) for r in records]
        root = StandardMerkleTree.of(values, RECORD_LEAF).root if values else ""
        anchored = [checksum(r["contributor"]) for r in records]
        f.check(
            "plan",
            root.lower() == batch.root.lower() and anchored == listed,
            f"the {len(anchored)} contributors of batch {batch.cid}, whose records hash to its root",
        )
