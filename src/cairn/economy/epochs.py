"""Epochs: settle anchored revenue by lineage, fund it on chain, and pay every claim.

`settle` closes an epoch in three steps, each safe to repeat:

1. receipts not yet anchored are anchored (only anchored receipts earn), and licence sales
   paid to the vault (or, before it, the treasury) are indexed from the chain;
2. the revenue of the anchored, unsettled receipts (per model or app) and of the unsettled
   licence sales (per asset; a dataset's at the version current when it sold) is split by lineage
   (`cairn.core.settlement`) and the plan is written to the index in one transaction: the
   settlement document and the (account, amount) Merkle tree stored by CID, one payout row per
   account, each receipt marked with the epoch, and (once PrepaidVault holds the balances) the
   tree of each payer's cumulative spend, its leaf recorded as settled;
3. the plan is funded on RevenueDistributor with the epoch document's CID (the trees' and the
   settlement's CIDs, and a plan id that makes it unique): by PrepaidVault, after it draws
   what the spend root (anchored under the gateway's asset) proves each payer spent
   (`cairn.economy.custody`), or, for an epoch planned before the vault, by the treasury. A
   node that died between 2 and 3 finds the planned epoch on its next `settle`: if the chain
   has an `EpochFunded` event by its funder with that document, that epoch is recorded;
   otherwise it is funded then (anchoring and drawing skip what was done). An epoch is never
   funded twice.

Claims are sent by the gateway (anyone may send one; the tokens always go to the account).

Over 400 lines because the three steps and their recovery after a crash must be read together
to see that an epoch is never funded twice; the pure split is `cairn.core.settlement`.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from eth_account.signers.local import LocalAccount
from eth_utils import is_hex_address
from sqlalchemy import select

from cairn.assets.content import ContentRefs, Scope
from cairn.chain.contracts import Chain
from cairn.chain.vault import spend_tree
from cairn.core.errors import CairnError, ChainError, InvalidInput, NotFound
from cairn.core.evm import checksum
from cairn.core.merkle import StandardMerkleTree
from cairn.core.settlement import settlement_document, split_revenue
from cairn.db.engine import Database
from cairn.economy.balances import add_amount, balance_row
from cairn.economy.custody import Custody
from cairn.economy.lineage import LineageReader
from cairn.economy.models import (
    EpochRow,
    LicenceSaleRow,
    PayoutRow,
    ReceiptBatchRow,
    ReceiptRow,
)
from cairn.store.base import BlobStore

log = logging.getLogger("cairn.economy")

PAYOUT_LEAF = ["address", "uint256"]
EPOCH_SCHEMA = "cairn.epoch/v1"
LOG_CHUNK = 5_000  # blocks per eth_getLogs call
PENDING_WAIT = 60.0  # seconds a resumed funding waits for the treasury's unmined transactions
DOC_CACHE = 8  # settlement documents and trees kept in memory


@dataclass(frozen=True)
class Epoch:
    """A settlement epoch: a revenue epoch (receipts and licence sales split by lineage) or a
    bounty's payout of one batch. Amounts are decimal strings in the smallest unit."""

    id: int
    status: str  # planned | funded | empty | cancelled
    epoch: int | None  # RevenueDistributor's number, once funded
    revenue: str
    kind: str  # revenue | bounty
    receipts: int
    sales: int  # licence sales
    root: str | None  # the payout tree's Merkle root
    tree_cid: str | None
    settlement_cid: str
    document_cid: str | None  # the document funded on chain
    tx_hash: str | None
    created_at: float
    funded_at: float | None
    has_payouts: bool


@dataclass(frozen=True)
class EarningLine:
    """One line of a settlement that pays an account: what earned it, through what, as what."""

    account: str
    source: str  # the asset whose revenue it is
    via: str  # the asset, job or bounty it flowed through
    role: str  # owner, data, compute, upstream, record, review...
    amount: str
    source_name: str | None
    via_name: str | None
    job_id: str | None  # the training job, for a compute line


@dataclass(frozen=True)
class EpochEarning:
    """What one epoch owes an account, claimed or not, and why."""

    epoch_id: int
    epoch: int | None
    status: str
    amount: str
    claimed: bool
    claim_tx: str | None
    lines: tuple[EarningLine, ...]

    @property
    def claimable(self) -> bool:
        """Funded and not claimed yet: a claim would pay it now."""
        return self.status == "funded" and not self.claimed


@dataclass(frozen=True)
class Earnings:
    """What every epoch owes an account, oldest first, and what of it a claim pays now."""

    account: str
    unclaimed: str  # funded and not yet claimed
    epochs: tuple[EpochEarning, ...]

    @property
    def claimed(self) -> int:
        """What was claimed so far."""
        return sum(int(e.amount) for e in self.epochs if e.claimed)

    def earned_as(self, role: str) -> int:
        """Everything earned in one role (e.g. compute), claimed or not."""
        return sum(int(line.amount) for e in self.epochs for line in e.lines if line.role == role)


@dataclass(frozen=True)
class Claim:
    """One epoch's payout sent to its account."""

    epoch: int
    amount: str
    tx_hash: str


@dataclass(frozen=True)
class Claims:
    """What one claim for an account paid, epoch by epoch."""

    account: str
    claims: tuple[Claim, ...]
    total: str  # everything paid, decimal


def _inputs(
    rows: Any, sales: Any, batches: dict[int, ReceiptBatchRow], as_of: int
) -> dict[str, Any]:
    """An epoch's inputs, as an auditor finds them: the receipts settled, by anchored batch
    (its document's CID and root), the licence sales by transaction and log index, and the
    block the lineage was read at."""
    by_batch: dict[int, list[str]] = {}
    for receipt_id, _, _, batch_id in rows:
        by_batch.setdefault(batch_id, []).append(receipt_id)
    return {
        "block": as_of,
        "receipts": [
            {"batch": batches[b].cid, "root": batches[b].root, "ids": sorted(ids)}
            for b, ids in sorted(by_batch.items())
        ],
        "sales": [
            {
                "tx": tx_hash,
                "log_index": log_index,
                "asset": asset_id,
                "version": version,
                "paid": paid,
            }
            for _, asset_id, version, paid, tx_hash, log_index in sorted(
                sales, key=lambda s: (s[4], s[5])
            )
        ],
    }


class Epochs:
    """Settle epochs, explain earnings, claim payouts."""

    def __init__(
        self,
        db: Database,
        store: BlobStore,
        chain: Chain,
        lineage: LineageReader,
        treasury: LocalAccount,
        refs: ContentRefs,
        custody: Custody | None = None,
        gateway_asset: Callable[[], int] | None = None,
    ) -> None:
        self.db = db
        self.custody = custody  # once it moved balances into the vault, the vault funds epochs
        self.gateway_asset = gateway_asset  # () -> the asset spend roots are anchored under
        self.refs = refs
        self.store = store
        self.chain = chain
        self.lineage = lineage
        self.treasury = treasury
        self._docs: dict[str, dict[str, Any]] = {}
        self._claiming = threading.Lock()  # two claims for one account must not race

    # -- settling ----------------------------------------------------------------------------

    def settle(self) -> Epoch | None:
        """Close an epoch of the anchored, unsettled receipts and the unsettled licence sales;
        None when there are none.

        A planned epoch left by a crash is funded first (and returned).
        """
        with self.db.session() as session:
            planned = session.scalar(
                select(EpochRow).where(EpochRow.status == "planned", EpochRow.kind == "revenue")
            )
        if planned is not None:
            return self._fund(planned.id, resumed=True)
        with self.db.session() as session:
            rows = session.execute(
                select(
                    ReceiptRow.receipt_id, ReceiptRow.model, ReceiptRow.amount, ReceiptRow.batch_id
                ).where(ReceiptRow.batch_id.is_not(None), ReceiptRow.epoch_id.is_(None))
            ).all()
            sales = session.execute(
                select(
                    LicenceSaleRow.id,
                    LicenceSaleRow.asset_id,
                    LicenceSaleRow.version,
                    LicenceSaleRow.paid,
                    LicenceSaleRow.tx_hash,
                    LicenceSaleRow.log_index,
                ).where(LicenceSaleRow.epoch_id.is_(None), LicenceSaleRow.paid != "0")
            ).all()
            batches = {
                b.id: b
                for b in session.scalars(
                    select(ReceiptBatchRow).where(
                        ReceiptBatchRow.id.in_({r.batch_id for r in rows} or {-1})
                    )
                )
            }
            as_of = self.chain.client.block_number()
        # Revenue per source: a model's (or app's) calls, an asset's licence sales (a dataset's
        # at the version that was current when it sold).
        by_source: dict[tuple[int, str | None], int] = {}
        for _, model, amount, _ in rows:
            by_source[(model, None)] = by_source.get((model, None), 0) + int(amount)
        for _, asset_id, version, paid, *_ in sales:
            by_source[(asset_id, version)] = by_source.get((asset_id, version), 0) + int(paid)
        if not by_source:
            return None
        graph, about = {}, {}
        for source in list(by_source):
            try:  # an asset whose lineage cannot be read waits; the others are paid
                more, described = self.lineage.graph([source])
            except CairnError as exc:
                log.error("asset %d is left out of this epoch: %s", source[0], exc.message)
                del by_source[source]
                continue
            graph.update(more)
            about.update(described)
        rows = [r for r in rows if (r[1], None) in by_source]
        sales = [s for s in sales if (s[1], s[2]) in by_source]
        if not rows and not sales:
            return None
        revenue: dict[str, int] = {}
        for (asset_id, version), earned in sorted(
            by_source.items(), key=lambda i: (i[0][0], i[0][1] or "")
        ):
            key = self.lineage.key_of(asset_id, version)
            revenue[key] = revenue.get(key, 0) + earned
        result = split_revenue(revenue, graph)
        for account in result.payouts:
            if not is_hex_address(account):
                raise InvalidInput(f"settlement: payee {account!r} is not an address")
        move = self.custody.moved() if self.custody is not None else None
        spent = self.custody.spend(move, [r[0] for r in rows]) if self.custody and move else {}
        doc = {
            **settlement_document(result),
            "assets": about,
            "receipts": len(rows),
            "licence_sales": len(sales),
            # what `cairn audit` re-derives from; and each dataset's newest version, which a
            # parent named without a version is paid at
            "inputs": {
                **_inputs(rows, sales, batches, as_of),
                "newest": {
                    str(info["asset"]): self.lineage.newest_version(int(info["asset"]))
                    for info in about.values()
                    if info.get("kind") == "dataset"
                },
            },
        }
        settlement_cid = self.store.put_json(doc)
        total = result.total
        root = tree_cid = document_cid = None
        spend_cid = None
        if total:
            tree = StandardMerkleTree.of(
                [[a, amount] for a, amount in result.payouts.items()], PAYOUT_LEAF
            )
            root, tree_cid = tree.root, self.store.put_json(tree.dump())
            document: dict[str, Any] = {
                "schema": EPOCH_SCHEMA,
                "plan": uuid.uuid4().hex,
                "treasury": self.treasury.address,
                "revenue": str(total),
                "root": root,
                "tree": tree_cid,
                "settlement": settlement_cid,
            }
            if move is not None:  # funded by the vault, from what it draws against `spend`
                document.update(  # `since`: the receipts signed from then on are drawn
                    treasury=move.vault,
                    gateway=self.treasury.address,
                    since=Custody.since(move),
                    move=move.document_cid,  # which says `since` too
                )
                if spent:
                    assert self.gateway_asset is not None  # given with `custody`
                    spend = spend_tree(spent)
                    spend_cid = self.store.put_json(spend.dump())
                    document["spend"] = {
                        "root": spend.root,
                        "tree": spend_cid,
                        "asset": self.gateway_asset(),
                    }
            document_cid = self.store.put_json(document)
        # Settlements, payout and spend trees are public: anyone re-derives and audits them.
        cids = (settlement_cid, tree_cid, spend_cid, document_cid)
        self.refs.add([c for c in cids if c], Scope.PUBLIC)
        with self.db.session() as session:
            epoch = EpochRow(
                status="planned" if total else "empty",
                revenue=str(total),
                receipts=len(rows),
                sales=len(sales),
                root=root,
                tree_cid=tree_cid,
                settlement_cid=settlement_cid,
                document_cid=document_cid,
                created_at=time.time(),
            )
            session.add(epoch)
            session.flush()
            for account, owed in result.payouts.items():
                session.add(PayoutRow(epoch_id=epoch.id, account=account, amount=str(owed)))
            ids = [r[0] for r in rows]
            for start in range(0, len(ids), 500):
                for row in session.scalars(
                    select(ReceiptRow).where(ReceiptRow.receipt_id.in_(ids[start : start + 500]))
                ):
                    row.epoch_id = epoch.id
            for account, cumulative in spent.items():
                balance = balance_row(session, account)
                add_amount(balance, "settled", cumulative - int(balance.settled))
            sale_ids = [s[0] for s in sales]
            for start in range(0, len(sale_ids), 500):
                for sale in session.scalars(
                    select(LicenceSaleRow).where(
                        LicenceSaleRow.id.in_(sale_ids[start : start + 500])
                    )
                ):
                    sale.epoch_id = epoch.id
            epoch_id = epoch.id
        return self._fund(epoch_id) if total else self.epoch(epoch_id)

    def _fund(self, epoch_id: int, *, resumed: bool = False) -> Epoch:
        with self.db.session() as session:
            row = session.get(EpochRow, epoch_id)
            assert row is not None and row.root is not None and row.document_cid is not None
            root, document_cid, total = row.root, row.document_cid, int(row.revenue)
        document = self._doc(document_cid)
        funder = checksum(document.get("treasury", self.treasury.address))
        if resumed:  # a funding whose receipt never came may still be mined: the events first
            self.chain.client.await_mined([self.treasury.address], PENDING_WAIT)
        number = self._funded_before(document_cid, funder) if resumed else None
        tx_hash = None
        if number is None and funder != self.treasury.address:  # the vault's epoch
            vault = self.chain.vault
            if vault is None or vault.address != funder:
                raise ChainError(
                    f"epoch {epoch_id} is funded by the vault {funder}, not this node's"
                )
            if self.custody is not None:
                if "spend" in document:
                    self.custody.draw(document["spend"])
                self.custody.cover(total)
            number, receipt = vault.fund_epoch(self.treasury, root, total, document_cid)
            tx_hash = receipt["transactionHash"].to_0x_hex()
        elif number is None:
            number, receipt = self.chain.distributor.fund_epoch(
                self.treasury, self.chain.token, root, total, document_cid
            )
            tx_hash = receipt["transactionHash"].to_0x_hex()
        with self.db.session() as session:
            row = session.get(EpochRow, epoch_id)
            assert row is not None
            row.status, row.epoch, row.tx_hash, row.funded_at = (
                "funded",
                number,
                tx_hash,
                time.time(),
            )
        return self.epoch(epoch_id)

    def _funded_before(self, document_cid: str, funder: str) -> int | None:
        """The epoch `funder` (the treasury, or the vault) funded with this document before a
        crash, if it did."""
        client, distributor = self.chain.client, self.chain.distributor
        event = distributor.contract.events.EpochFunded
        head, treasury = client.block_number(), funder.lower()
        for lo in range(self.chain.deployment.block, head + 1, LOG_CHUNK):
            for log in client.logs(event, lo, min(lo + LOG_CHUNK - 1, head)):
                args = log["args"]
                if args["tree_cid"] == document_cid and str(args["funder"]).lower() == treasury:
                    return int(args["epoch"])
        return None

    # -- reading -----------------------------------------------------------------------------

    def epoch(self, epoch_id: int) -> Epoch:
        """One epoch."""
        with self.db.session() as session:
            row = session.get(EpochRow, epoch_id)
            if row is None:
                raise NotFound(f"no epoch {epoch_id}")
            payees = session.scalar(
                select(PayoutRow.id).where(PayoutRow.epoch_id == epoch_id).limit(1)
            )
        return Epoch(
            id=row.id,
            status=row.status,
            epoch=row.epoch,
            revenue=row.revenue,
            kind=row.kind,
            receipts=row.receipts,
            sales=row.sales,
            root=row.root,
            tree_cid=row.tree_cid,
            settlement_cid=row.settlement_cid,
            document_cid=row.document_cid,
            tx_hash=row.tx_hash,
            created_at=row.created_at,
            funded_at=row.funded_at,
            has_payouts=payees is not None,
        )

    def epochs(self) -> list[Epoch]:
        """Every epoch, newest first."""
        with self.db.session() as session:
            ids = session.scalars(select(EpochRow.id).order_by(EpochRow.id.desc())).all()
        return [self.epoch(i) for i in ids]

    def _doc(self, cid: str) -> dict[str, Any]:
        """A stored document, from a small cache: settlements are read again and again."""
        doc = self._docs.pop(cid, None)
        if doc is None:
            doc = self.store.get_json(cid)
        self._docs[cid] = doc  # newest last; the oldest goes first
        while len(self._docs) > DOC_CACHE:
            del self._docs[next(iter(self._docs))]
        return doc

    def earnings(self, account: str) -> Earnings:
        """What each epoch owes `account`, claimed or not, and why (per model and role); and
        the unclaimed total: what the funded epochs owe and a claim would pay now."""
        address = checksum(account)
        with self.db.session() as session:
            rows = session.execute(
                select(PayoutRow, EpochRow)
                .join(EpochRow, EpochRow.id == PayoutRow.epoch_id)
                .where(PayoutRow.account == address, EpochRow.status != "cancelled")
                .order_by(EpochRow.id)
            ).all()
        out = []
        for payout, epoch in rows:
            doc = self._doc(epoch.settlement_cid)
            about = doc.get("assets", {})
            lines = tuple(
                EarningLine(
                    account=line["account"],
                    source=line["source"],
                    via=line["via"],
                    role=line["role"],
                    amount=line["amount"],
                    source_name=about.get(line["source"], {}).get("name"),
                    via_name=about.get(line["via"], {}).get("name"),
                    job_id=about.get(line["via"], {}).get("job_id")
                    if line["role"] == "compute"
                    else None,
                )
                for line in doc["lines"]
                if line["account"].lower() == address.lower()
            )
            out.append(
                EpochEarning(
                    epoch_id=epoch.id,
                    epoch=epoch.epoch,
                    status=epoch.status,
                    amount=payout.amount,
                    claimed=payout.claim_tx is not None,
                    claim_tx=payout.claim_tx,
                    lines=lines,
                )
            )
        unclaimed = sum(int(e.amount) for e in out if e.claimable)
        return Earnings(address, str(unclaimed), tuple(out))

    # -- claiming ----------------------------------------------------------------------------

    def claim(self, account: str, *, earned: bool = False) -> Claims:
        """Claim every funded, unclaimed payout of `account`; returns what was paid (nothing,
        when every payout is claimed). With `earned`, an account no epoch ever paid is
        `NotFound` (a claim for an unknown account is more likely a mistyped address)."""
        address = checksum(account)
        with self._claiming:
            paid = self._claim(address)
        if earned and not paid and not self._ever_owed(address):
            raise NotFound(f"account {address} has no earnings yet")
        return Claims(address, tuple(paid), str(sum(int(c.amount) for c in paid)))

    def _ever_owed(self, address: str) -> bool:
        with self.db.session() as session:
            return (
                session.scalar(
                    select(PayoutRow.id)
                    .join(EpochRow, EpochRow.id == PayoutRow.epoch_id)
                    .where(PayoutRow.account == address, EpochRow.status != "cancelled")
                    .limit(1)
                )
                is not None
            )

    def _claim(self, address: str) -> list[Claim]:
        distributor = self.chain.distributor
        with self.db.session() as session:
            rows = session.execute(
                select(PayoutRow.id, PayoutRow.amount, EpochRow.epoch, EpochRow.tree_cid)
                .join(EpochRow, EpochRow.id == PayoutRow.epoch_id)
                .where(
                    PayoutRow.account == address,
                    PayoutRow.claim_tx.is_(None),
                    EpochRow.status == "funded",
                )
                .order_by(EpochRow.id)
            ).all()
        paid = []
        for payout_id, amount, number, tree_cid in rows:
            assert number is not None and tree_cid is not None  # funded epochs have both
            if distributor.is_claimed(number, address):  # claimed on chain, not through us
                tx_hash = self._claimed_in(number, address) or "claimed elsewhere"
            else:
                tree = StandardMerkleTree.load(self._doc(tree_cid))
                proof = tree.get_proof([address, int(amount)])
                receipt = distributor.claim(self.treasury, number, address, int(amount), proof)
                tx_hash = receipt["transactionHash"].to_0x_hex()
                paid.append(Claim(epoch=number, amount=amount, tx_hash=tx_hash))
            with self.db.session() as session:
                row = session.get(PayoutRow, payout_id)
                assert row is not None
                row.claim_tx = tx_hash[:66]
        return paid

    def _claimed_in(self, number: int, address: str) -> str | None:
        """The transaction whose `Claimed` event paid `address` for epoch `number`; None only
        when the chain no longer serves the logs. Newest blocks first: claims are recent."""
        client = self.chain.client
        event = self.chain.distributor.contract.events.Claimed
        wanted = {"epoch": number, "account": address}
        hi = client.block_number()
        while hi >= self.chain.deployment.block:
            lo = max(hi - LOG_CHUNK + 1, self.chain.deployment.block)
            for log in client.logs(event, lo, hi, wanted):
                return str(log["transactionHash"].to_0x_hex())
            hi = lo - 1
        return None
