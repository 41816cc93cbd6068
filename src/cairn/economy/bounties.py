"""Paid data tasks on the node: open, top up and close bounties, and pay each anchored batch.

A dataset's owner escrows a budget in DataBounty that pays a fixed amount per accepted record
and per useful review (a vote that matched its record's decision). After each batch of the
dataset is anchored, `pay_due` plans its payout (`cairn.core.bounty.plan_batch`: whole items,
records first, while the budget covers them), stores the payout document and its Merkle tree
by CID, and sends one `pay_batch` transaction: DataBounty checks the batch on
ContributionLedger and funds a RevenueDistributor epoch with the payout, which every paid
account claims like any other epoch (`Epochs.claim`). Planning and paying are two steps, each
safe to repeat: a plan left by a crash is paid on the next `pay_due` unless the chain shows it
paid already (then the epoch is read from the `BatchPaid` event).

Over 400 lines because opening, topping up, closing and paying share the recovery rules above
and the records they answer; the pure plan is `cairn.core.bounty`.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass

from eth_account.signers.local import LocalAccount
from hexbytes import HexBytes
from sqlalchemy import select

from cairn.assets.content import Scope
from cairn.assets.service import AssetService
from cairn.chain.bounty import OnChainBounty
from cairn.chain.contracts import Chain
from cairn.core.bounty import RECORD_ROLE, REVIEW_ROLE, SCHEMA, plan_batch
from cairn.core.errors import ChainError, Forbidden, InvalidInput, NotFound
from cairn.core.evm import checksum
from cairn.core.merkle import StandardMerkleTree
from cairn.data.models import BatchRow, RecordRow, ReviewTaskRow
from cairn.db.engine import Database
from cairn.economy.epochs import PAYOUT_LEAF
from cairn.economy.models import BountyPayoutRow, EpochRow, PayoutRow
from cairn.store.base import BlobStore

log = logging.getLogger("cairn.economy")

LOG_CHUNK = 5_000


@dataclass(frozen=True)
class Bounty:
    """A bounty as the node shows it: amounts are decimal strings in the smallest unit."""

    bounty_id: int
    dataset_id: int
    funder: str  # who escrowed the budget and gets the rest back
    per_record: str
    per_review: str
    budget: str  # every token escrowed, top-ups included
    remaining: str
    paid_out: str
    opened_at: int  # only batches anchored from then on are paid
    open: bool
    exhausted: bool  # open, but what is left covers no further record or review

    @classmethod
    def of(cls, bounty: OnChainBounty) -> Bounty:
        """The bounty DataBounty stores."""
        prices = [p for p in (bounty.per_record, bounty.per_review) if p]
        return cls(
            bounty_id=bounty.bounty_id,
            dataset_id=bounty.asset_id,
            funder=bounty.funder,
            per_record=str(bounty.per_record),
            per_review=str(bounty.per_review),
            budget=str(bounty.budget),
            remaining=str(bounty.remaining),
            paid_out=str(bounty.paid_out),
            opened_at=bounty.opened_at,
            open=bounty.is_open,
            exhausted=bounty.is_open and bounty.remaining < (min(prices) if prices else 0),
        )


@dataclass(frozen=True)
class BatchPayout:
    """What a bounty paid (or plans to pay, or skipped) for one anchored batch."""

    batch_root: str
    records: int
    reviews: int
    amount: str
    status: str  # planned | paid | skipped
    tx_hash: str | None


@dataclass(frozen=True)
class BountyDetail(Bounty):
    """A bounty with each batch it paid."""

    payouts: tuple[BatchPayout, ...]


@dataclass(frozen=True)
class ClosedBounty(BountyDetail):
    """A bounty just closed, and what went back to its funder."""

    refunded: str


@dataclass(frozen=True)
class BountyPaid:
    """One batch paid by a bounty: a RevenueDistributor epoch its accounts claim."""

    bounty_id: int
    batch_root: str
    records: int
    reviews: int
    amount: str
    epoch: int | None  # RevenueDistributor's number
    tx_hash: str | None  # None when the chain showed it paid before a restart


class BountyBook:
    """Bounties on datasets, and the payout of every anchored batch they cover."""

    def __init__(
        self,
        db: Database,
        store: BlobStore,
        chain: Chain,
        assets: AssetService,
        curator: LocalAccount,
    ) -> None:
        self.db = db
        self.store = store
        self.chain = chain
        self.assets = assets
        self.curator = curator  # anchors the node's datasets, so it sends their payouts
        # the scheduler and an API call may both pay after an anchoring: one payer at a time
        self._paying = threading.Lock()

    # -- the owner's side ----------------------------------------------------------------------

    def open(
        self,
        owner: LocalAccount,
        dataset_id: int,
        *,
        budget: int,
        per_record: int,
        per_review: int = 0,
    ) -> BountyDetail:
        """Escrow `budget` for a dataset `owner` owns, paying per record and per useful review."""
        asset = self.assets.get(dataset_id)
        if asset.kind != "dataset":
            raise InvalidInput(f"asset {dataset_id} is a {asset.kind}: bounties pay for datasets")
        if asset.owner.lower() != owner.address.lower():
            raise Forbidden(
                f"only the owner of dataset {dataset_id} ({asset.owner}) opens bounties"
            )
        if budget <= 0:
            raise InvalidInput("a bounty needs a positive budget")
        if per_record < 0 or per_review < 0 or not (per_record or per_review):
            raise InvalidInput("a bounty pays a positive amount per record or per review")
        held = self.chain.token.balance_of(owner.address)
        if held < budget:
            raise InvalidInput(f"{owner.address} holds {held}, less than the budget {budget}")
        bounty_id, _ = self.chain.bounties.open(
            owner, self.chain.token, dataset_id, budget, per_record, per_review
        )
        return self.get(bounty_id)

    def top_up(self, sender: LocalAccount, bounty_id: int, amount: int) -> BountyDetail:
        """Add `amount` to an open bounty's budget."""
        bounty = self._bounty(bounty_id)
        if not bounty.is_open:
            raise InvalidInput(f"bounty {bounty_id} is closed")
        if amount <= 0:
            raise InvalidInput("a top-up must be positive")
        self.chain.bounties.top_up(sender, self.chain.token, bounty_id, amount)
        return self.get(bounty_id)

    def close(self, sender: LocalAccount, bounty_id: int) -> ClosedBounty:
        """Close a bounty; what is left goes back to its funder. Batches anchored before are
        paid first."""
        bounty = self._bounty(bounty_id)
        if not bounty.is_open:
            raise InvalidInput(f"bounty {bounty_id} is already closed")
        owner = self.assets.get(bounty.asset_id).owner
        if sender.address.lower() not in (bounty.funder.lower(), owner.lower()):
            raise Forbidden(f"only the funder or the dataset's owner closes bounty {bounty_id}")
        self.pay_due(bounty_id)
        refunded, _ = self.chain.bounties.close(sender, bounty_id)
        return ClosedBounty(**vars(self.get(bounty_id)), refunded=str(refunded))

    # -- reading -------------------------------------------------------------------------------

    def get(self, bounty_id: int) -> BountyDetail:
        """One bounty with its payouts so far."""
        bounty = Bounty.of(self._bounty(bounty_id))
        with self.db.session() as session:
            rows = session.scalars(
                select(BountyPayoutRow)
                .where(BountyPayoutRow.bounty_id == bounty_id)
                .order_by(BountyPayoutRow.id)
            ).all()
            payouts = tuple(
                BatchPayout(r.batch_root, r.records, r.reviews, r.amount, r.status, r.tx_hash)
                for r in rows
            )
        return BountyDetail(**vars(bounty), payouts=payouts)

    def listing(self, dataset_id: int | None = None) -> list[Bounty]:
        """Every bounty (of one dataset), open ones first, newest first."""
        found = [
            Bounty.of(b)
            for b in (self.chain.bounties.get(i) for i in range(1, self.chain.bounties.count() + 1))
            if dataset_id is None or b.asset_id == dataset_id
        ]
        return sorted(found, key=lambda b: (not b.open, -b.bounty_id))

    def _bounty(self, bounty_id: int) -> OnChainBounty:
        if not 1 <= bounty_id <= self.chain.bounties.count():
            raise NotFound(f"no bounty {bounty_id}")
        return self.chain.bounties.get(bounty_id)

    # -- paying --------------------------------------------------------------------------------

    def pay_due(self, bounty_id: int | None = None) -> list[BountyPaid]:
        """Pay every anchored batch an open bounty covers and has not paid; returns the payouts."""
        with self._paying:
            return self._pay_due(bounty_id)

    def pay_batch(self, root: str) -> list[BountyPaid]:
        """Pay what is due, then return every payout of the batch `root`, whoever paid it: the
        economy's tick may have paid it a moment before this call did."""
        with self._paying:
            self._pay_due(None)
        with self.db.session() as session:
            rows = session.execute(
                select(BountyPayoutRow, EpochRow.epoch)
                .join(EpochRow, EpochRow.id == BountyPayoutRow.epoch_row)
                .where(BountyPayoutRow.batch_root == root, BountyPayoutRow.status == "paid")
                .order_by(BountyPayoutRow.bounty_id)
            ).all()
        return [
            BountyPaid(
                bounty_id=row.bounty_id,
                batch_root=row.batch_root,
                records=row.records,
                reviews=row.reviews,
                amount=row.amount,
                epoch=epoch,
                tx_hash=row.tx_hash,
            )
            for row, epoch in rows
        ]

    def _pay_due(self, bounty_id: int | None) -> list[BountyPaid]:
        count = self.chain.bounties.count()
        if count == 0:
            return []
        paid: list[BountyPaid] = []
        ids = [bounty_id] if bounty_id is not None else list(range(1, count + 1))
        for bid in ids:
            bounty = self.chain.bounties.get(bid)
            if not bounty.is_open:
                self._drop_plans(bounty)
                continue
            for root in self._due_batches(bounty):
                result = self._pay(bounty, root)
                if result is not None:
                    paid.append(result)
                    bounty = self.chain.bounties.get(bid)
        return paid

    def _drop_plans(self, bounty: OnChainBounty) -> None:
        """A closed bounty's plans left unpaid are cancelled (or recorded, if the chain paid)."""
        with self.db.session() as session:
            plans = session.execute(
                select(
                    BountyPayoutRow.id, BountyPayoutRow.epoch_row, BountyPayoutRow.batch_root
                ).where(
                    BountyPayoutRow.bounty_id == bounty.bounty_id,
                    BountyPayoutRow.status == "planned",
                )
            ).all()
        for payout_id, epoch_row, root in plans:
            if self.chain.bounties.is_batch_paid(bounty.bounty_id, root):
                number = self._paid_epoch(bounty.bounty_id, root)
                self._finish(payout_id, epoch_row, status="paid", epoch=number, tx_hash=None)
            else:
                self._finish(payout_id, epoch_row, status="skipped", epoch=None, tx_hash=None)

    def _due_batches(self, bounty: OnChainBounty) -> list[str]:
        with self.db.session() as session:
            roots = session.scalars(
                select(BatchRow.root)
                .where(BatchRow.dataset_id == bounty.asset_id)
                .order_by(BatchRow.batch_index)
            ).all()
            done = set(
                session.scalars(
                    select(BountyPayoutRow.batch_root).where(
                        BountyPayoutRow.bounty_id == bounty.bounty_id,
                        BountyPayoutRow.status != "planned",
                    )
                )
            )
        due = []
        for root in roots:
            if root in done:
                continue
            anchored_at = self.chain.ledger.batch_of(bounty.asset_id, root)[2]
            if anchored_at >= bounty.opened_at:
                due.append(root)
        return due

    def _pay(self, bounty: OnChainBounty, root: str) -> BountyPaid | None:
        """Plan (or resume the plan of) one batch's payout and fund it."""
        with self.db.session() as session:
            row = session.scalar(
                select(BountyPayoutRow).where(
                    BountyPayoutRow.bounty_id == bounty.bounty_id,
                    BountyPayoutRow.batch_root == root,
                )
            )
            planned = (row.id, row.epoch_row) if row is not None else None
        if planned is None:
            planned = self._plan(bounty, root)
            if planned is None:
                return None
        payout_id, epoch_row = planned
        with self.db.session() as session:
            payout = session.get(BountyPayoutRow, payout_id)
            epoch = session.get(EpochRow, epoch_row)
            assert payout is not None and epoch is not None and epoch.root is not None
            records, reviews, amount = payout.records, payout.reviews, int(payout.amount)
            payout_root, document = epoch.root, epoch.document_cid or epoch.settlement_cid
        number: int | None
        tx_hash: str | None = None
        if self.chain.bounties.is_batch_paid(bounty.bounty_id, root):
            number = self._paid_epoch(bounty.bounty_id, root)
        else:
            try:
                number, receipt = self.chain.bounties.pay_batch(
                    self.curator, bounty.bounty_id, root, records, reviews, payout_root, document
                )
            except ChainError as exc:  # closed or drained since it was planned: nothing paid
                log.warning("bounty %d: batch %s not paid: %s", bounty.bounty_id, root, exc.message)
                self._finish(payout_id, epoch_row, status="skipped", epoch=None, tx_hash=None)
                return None
            tx_hash = HexBytes(receipt["transactionHash"]).to_0x_hex()
        self._finish(payout_id, epoch_row, status="paid", epoch=number, tx_hash=tx_hash)
        return BountyPaid(
            bounty_id=bounty.bounty_id,
            batch_root=root,
            records=records,
            reviews=reviews,
            amount=str(amount),
            epoch=number,
            tx_hash=tx_hash,
        )

    def _plan(self, bounty: OnChainBounty, root: str) -> tuple[int, int] | None:
        """Store the payout of one batch and its epoch, or None when nothing can be paid."""
        contributors, reviewers = self._work_in(bounty.asset_id, root)
        plan = plan_batch(
            contributors,
            reviewers,
            per_record=bounty.per_record,
            per_review=bounty.per_review,
            remaining=bounty.remaining,
        )
        if plan.amount == 0:
            return None
        source, via = f"dataset {bounty.asset_id}", f"bounty {bounty.bounty_id}"
        lines = [
            {"account": a, "source": source, "via": via, "role": RECORD_ROLE, "amount": str(v)}
            for a, v in sorted(plan.record_pay.items())
        ] + [
            {"account": a, "source": source, "via": via, "role": REVIEW_ROLE, "amount": str(v)}
            for a, v in sorted(plan.review_pay.items())
        ]
        tree = StandardMerkleTree.of([[a, v] for a, v in plan.payouts.items()], PAYOUT_LEAF)
        tree_cid = self.store.put_json(tree.dump())
        name = self.assets.get(bounty.asset_id).name
        document = {
            "schema": SCHEMA,
            "bounty": bounty.bounty_id,
            "dataset": bounty.asset_id,
            "batch_root": root,
            "per_record": str(bounty.per_record),
            "per_review": str(bounty.per_review),
            "records": plan.records,
            "reviews": plan.reviews,
            "amount": str(plan.amount),
            "root": tree.root,
            "tree": tree_cid,
            "lines": lines,
            # who the plan was made from, so that `cairn audit` re-plans it
            "inputs": {"contributors": contributors, "reviewers": reviewers},
            "assets": {
                source: {"asset": bounty.asset_id, "kind": "dataset", "name": name},
                via: {"name": f"bounty {bounty.bounty_id} on {name}"},
            },
        }
        document_cid = self.store.put_json(document)
        self.assets.refs.add([tree_cid, document_cid], Scope.PUBLIC)  # audited like any epoch
        with self.db.session() as session:
            epoch = EpochRow(
                status="planned",
                kind="bounty",
                revenue=str(plan.amount),
                receipts=0,
                sales=0,
                root=tree.root,
                tree_cid=tree_cid,
                settlement_cid=document_cid,
                document_cid=document_cid,
                created_at=time.time(),
            )
            session.add(epoch)
            session.flush()
            for account, owed in plan.payouts.items():
                session.add(PayoutRow(epoch_id=epoch.id, account=account, amount=str(owed)))
            payout = BountyPayoutRow(
                bounty_id=bounty.bounty_id,
                dataset_id=bounty.asset_id,
                batch_root=root,
                epoch_row=epoch.id,
                records=plan.records,
                reviews=plan.reviews,
                amount=str(plan.amount),
                status="planned",
                created_at=time.time(),
            )
            session.add(payout)
            session.flush()
            return payout.id, epoch.id

    def _work_in(self, dataset_id: int, root: str) -> tuple[list[str], list[str]]:
        """The contributor of each record of a batch in order, and the reviewer of each useful
        review of them (a vote on one of its records that matched the record's decision)."""
        with self.db.session() as session:
            batch_id = session.scalar(
                select(BatchRow.id).where(BatchRow.dataset_id == dataset_id, BatchRow.root == root)
            )
            if batch_id is None:
                raise NotFound(f"batch {root} of dataset {dataset_id} is not in this node's index")
            records = session.execute(
                select(RecordRow.id, RecordRow.contributor, RecordRow.decision)
                .where(RecordRow.batch_id == batch_id)
                .order_by(RecordRow.id)
            ).all()
            decisions = {r.id: r.decision for r in records}
            votes = session.execute(
                select(ReviewTaskRow.record_id, ReviewTaskRow.reviewer, ReviewTaskRow.answer)
                .where(
                    ReviewTaskRow.dataset_id == dataset_id,
                    ReviewTaskRow.gold_id.is_(None),
                    ReviewTaskRow.answer.is_not(None),
                    ReviewTaskRow.record_id.in_(list(decisions) or [-1]),
                )
                .order_by(ReviewTaskRow.id)
            ).all()
        contributors = [checksum(r.contributor) for r in records]
        reviewers = [
            checksum(v.reviewer)
            for v in votes
            if decisions.get(v.record_id) is not None and v.answer == decisions[v.record_id]
        ]
        return contributors, reviewers

    def _finish(
        self, payout_id: int, epoch_row: int, *, status: str, epoch: int | None, tx_hash: str | None
    ) -> None:
        with self.db.session() as session:
            payout = session.get(BountyPayoutRow, payout_id)
            row = session.get(EpochRow, epoch_row)
            assert payout is not None and row is not None
            payout.status, payout.tx_hash = status, tx_hash
            if status == "paid":
                row.status, row.epoch, row.tx_hash, row.funded_at = (
                    "funded",
                    epoch,
                    tx_hash,
                    time.time(),
                )
            else:
                row.status = "cancelled"

    def _paid_epoch(self, bounty_id: int, root: str) -> int:
        """The epoch an earlier `pay_batch` funded for this batch (a crash after sending)."""
        client = self.chain.client
        event = self.chain.bounties.contract.events.BatchPaid
        head = client.block_number()
        for lo in range(self.chain.deployment.block, head + 1, LOG_CHUNK):
            for entry in client.logs(
                event, lo, min(lo + LOG_CHUNK - 1, head), {"bounty_id": bounty_id}
            ):
                if HexBytes(entry["args"]["batch_root"]).to_0x_hex() == root.lower():
                    return int(entry["args"]["epoch"])
        raise ChainError(f"bounty {bounty_id} paid batch {root}, but no BatchPaid event was found")
