"""The economy domain's one entry point: keys, balances, prices, metering, receipts, epochs.

The gateway's own account (label `gateway` in the node's keystore) is the treasury that
deposits are sent to, the key that signs usage receipts, the owner of the asset its receipt
batches are anchored under, and the funder of each epoch on RevenueDistributor.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass

from eth_account.signers.local import LocalAccount
from sqlalchemy import delete, func, select

from cairn.assets.service import AssetService
from cairn.chain.contracts import Chain
from cairn.chain.cursors import TRANSACTIONS
from cairn.chain.escrow import OnChainProvider
from cairn.chain.models import SyncCursor
from cairn.core.errors import Forbidden
from cairn.core.evm import checksum
from cairn.data.anchoring import Anchoring
from cairn.data.models import BatchRow
from cairn.db.engine import Database
from cairn.economy.balances import Balances
from cairn.economy.bounties import BountyBook
from cairn.economy.custody import Custody, VaultMove
from cairn.economy.epochs import Epoch, Epochs
from cairn.economy.keys import ApiKeys
from cairn.economy.licences import LicenceBook
from cairn.economy.lineage import LineageReader
from cairn.economy.metering import Meter, Prices
from cairn.economy.models import (
    BalanceRow,
    BountyPayoutRow,
    EpochRow,
    PayoutRow,
    PriceRow,
    ReceiptBatchRow,
    ReceiptRow,
)
from cairn.economy.receipts import AnchoredReceipts, ReceiptBook, Transcripts
from cairn.economy.withdrawals import Withdrawals
from cairn.store.base import BlobStore

log = logging.getLogger("cairn.economy")

GATEWAY_ASSET_NAME = "Cairn gateway usage receipts"
SETTLE_RETRY_SECONDS = 300.0  # after a failed scheduled settlement
WATCH_SECONDS = 60.0  # how often the vault's deposits and withdrawal requests are read
EARLY_SETTLE_SECONDS = 600.0  # between settlements for withdrawals, at most one


@dataclass(frozen=True)
class DepositTarget:
    """Where to deposit: approve the vault for the payment token, then deposit into it (a plain
    transfer to the treasury is deposited into the vault for its sender)."""

    treasury: str
    token: str  # the payment token's address
    vault: str | None  # PrepaidVault, which holds deposits
    notice_seconds: int | None  # between asking to withdraw and withdrawing


@dataclass(frozen=True)
class Schedule:
    """When the node anchors receipts and settles epochs on its own."""

    anchor_count: int = 1_000  # anchor once this many receipts wait...
    anchor_seconds: float = 600.0  # ...or the oldest has waited this long
    epoch_seconds: float = 86_400.0  # settle an epoch this often (0: only by hand)


class Economy:
    """Everything money: who may call, what they hold, what they used, who is owed what."""

    def __init__(
        self,
        *,
        db: Database,
        store: BlobStore,
        chain: Chain,
        assets: AssetService,
        anchoring: Anchoring,
        gateway: LocalAccount,
        licences: LicenceBook,
        bounties: BountyBook,
        operator: str,
        schedule: Schedule | None = None,
        confirmations: int = 0,
        free_calls_per_minute: int = 0,
    ) -> None:
        self.chain = chain
        self.assets = assets
        self.gateway = gateway
        self.operator = checksum(operator)  # anchors and settles by hand
        self.schedule = schedule or Schedule()
        self.keys = ApiKeys(db)
        self.db = db
        self.balances = Balances(
            db, chain, gateway.address, confirmations, funders=(self.operator,)
        )
        if released := self.balances.clear_holds():
            log.info("released the holds of %d requests cut short by a restart", released)
        self.custody = Custody(db, store, chain, self.balances, gateway, assets.refs)
        self.withdrawals = Withdrawals(chain, self.balances)
        self.balances.on_owed = self._pay_in
        self.prices = Prices(db, assets)
        self.transcripts = Transcripts(store, assets.refs)  # behind committed receipts
        self.meter = Meter(
            db,
            self.balances,
            self.prices,
            gateway,
            chain.client.chain_id,
            free_calls_per_minute=free_calls_per_minute,
            transcripts=self.transcripts,
        )
        self.receipts = ReceiptBook(db, store, chain, assets.refs)
        self.licences = licences
        self.bounties = bounties
        self.epochs = Epochs(
            db,
            store,
            chain,
            LineageReader(assets, store, anchoring),
            gateway,
            assets.refs,
            custody=self.custody,
            gateway_asset=self.gateway_asset,
        )
        self._asset_id: int | None = None
        self._lock = threading.Lock()  # one anchoring or settlement at a time
        self._last_epoch = self._last_epoch_time()
        self._bounties_seen: tuple[object, object] | None = None  # see `has_work`
        self._watched = time.time()  # when deposits and withdrawals were last read
        self._drawn_early = 0.0  # when an epoch was last settled early for a withdrawal

    def _last_epoch_time(self) -> float:
        """When the newest epoch was settled (now, for a node that never settled)."""
        with self.db.session() as session:
            newest = session.scalar(
                select(EpochRow.created_at)
                .where(EpochRow.kind == "revenue")
                .order_by(EpochRow.id.desc())
            )
        return float(newest) if newest is not None else time.time()

    def reset_index(self) -> None:
        """Forget everything tied to a chain that was replaced: deposits, balances, prices,
        receipts, epochs and payouts (API keys stay: accounts are the same)."""
        self.balances.reset_index()
        self.licences.reset_index()
        with self.db.session() as session:
            for table in (
                PriceRow,
                ReceiptRow,
                ReceiptBatchRow,
                EpochRow,
                PayoutRow,
                BountyPayoutRow,
            ):
                session.execute(delete(table))

    @property
    def treasury(self) -> str:
        """The gateway's account: a plain transfer to it is deposited into the vault for its
        sender."""
        return self.gateway.address

    def deposit_target(self) -> DepositTarget:
        """Where a wallet deposits, and which token."""
        vault = self.chain.vault
        return DepositTarget(
            treasury=self.gateway.address,
            token=self.chain.token.address,
            vault=vault.address if vault is not None else None,
            notice_seconds=vault.notice_period() if vault is not None else None,
        )

    def hold_no_custody(self) -> VaultMove:
        """Move what the gateway holds for users into the vault, once, and deposit there
        whatever is owed: what a node does at start."""
        if self.custody.moved() is None:
            self.licences.sync()  # every sale paid to the treasury: its revenue moves too
        move = self.custody.move()
        paid = self.custody.pay_in()
        if paid.accounts or paid.revenue:
            log.info(
                "deposited %d into the vault for %d accounts, and %d of revenue",
                paid.balances,
                paid.accounts,
                paid.revenue,
            )
        return move

    def _pay_in(self) -> None:
        """After a sync found a plain transfer to the treasury: into the vault with it."""
        try:
            self.custody.pay_in()
        except Exception:  # the scheduler tries again (`tick`)
            log.exception("could not deposit transfers to the treasury into the vault")

    def stake_of(self, account: str) -> OnChainProvider:
        """What `account` staked in JobEscrow as a compute provider (all zero if it never did)."""
        return self.chain.escrow.provider(account)

    def is_operator(self, account: str) -> bool:
        """Whether `account` is the node's operator, who may anchor and settle by hand."""
        return checksum(account) == self.operator

    def _operator_only(self, account: str, what: str) -> None:
        """Anchoring and settling spend the gateway's gas: the node's operator decides when."""
        if not self.is_operator(account):
            raise Forbidden(
                f"only the node's operator ({self.operator}) {what} by hand; the node also "
                "does it on its own schedule"
            )

    def gateway_asset(self) -> int:
        """The asset receipt batches are anchored under, registered on first use."""
        if self._asset_id is None:
            for asset in self.assets.list(owner=self.gateway.address, kind="app"):
                if asset.name == GATEWAY_ASSET_NAME:
                    self._asset_id = asset.asset_id
                    break
            else:
                self._asset_id = self.assets.register(
                    self.gateway,
                    kind="app",
                    name=GATEWAY_ASSET_NAME,
                    licence="proprietary",
                    description=(
                        f"Usage receipts signed by the gateway {self.gateway.address}, anchored "
                        "in batches; each receipt can be proven against its batch's root."
                    ),
                    extra={"gateway": {"address": self.gateway.address}},
                ).asset_id
        return self._asset_id

    def anchor_receipts(self) -> list[AnchoredReceipts]:
        """Anchor every waiting receipt now."""
        with self._lock:
            return self.receipts.anchor(self.gateway, self.gateway_asset())

    def anchor_receipts_by(self, account: str) -> list[AnchoredReceipts]:
        """Anchor every waiting receipt now, for `account`: the node's operator only."""
        self._operator_only(account, "anchors receipts")
        return self.anchor_receipts()

    def settle_by(self, account: str) -> Epoch | None:
        """Settle an epoch now, for `account`: the node's operator only."""
        self._operator_only(account, "settles epochs")
        return self.settle()

    def settle(self) -> Epoch | None:
        """Anchor waiting receipts and index licence sales, then close an epoch (None: nothing
        to settle)."""
        self.anchor_receipts()
        self.licences.sync()
        with self._lock:
            result = self.epochs.settle()
            self._last_epoch = self._last_epoch_time()
        return result

    def tick(self, now: float | None = None) -> None:
        """Scheduled work: read the vault's deposits and withdrawal requests each minute,
        deposit into the vault what the gateway owes, settle at once when someone leaving has
        spent what was not drawn, pay bounties for newly anchored batches, anchor receipts when
        due, settle when an epoch has passed."""
        now = time.time() if now is None else now
        if now - self._watched >= WATCH_SECONDS:  # deposits and withdrawal requests, by anyone
            self.balances.sync()
            self._watched = now
        if self.custody.owed():
            self._pay_in()  # a failure is logged: the rest of the tick still runs
        if self._index_state()[3] and now - self._drawn_early >= EARLY_SETTLE_SECONDS:
            self._drawn_early = now
            if self._leaving_undrawn():  # draw what they spent within their notice
                epoch = self.settle()
                if epoch is not None:
                    log.info("settled epoch %s early for a withdrawal", epoch.epoch)
        seen = self._bounty_state()
        for paid in self.bounties.pay_due():
            log.info(
                "bounty %d paid %s for batch %s (epoch %s)",
                paid.bounty_id,
                paid.amount,
                paid.batch_root,
                paid.epoch,
            )
        self._bounties_seen = seen  # paid up to what it saw: only a change calls for more
        if self._receipts_due(now):
            for batch in self.anchor_receipts():
                log.info("anchored %d usage receipts as %s", batch.count, batch.root)
        every = self.schedule.epoch_seconds
        if every and now - self._last_epoch >= every:
            try:
                epoch = self.settle()
            except Exception:
                self._last_epoch = now - every + SETTLE_RETRY_SECONDS  # try again later
                raise
            if epoch is not None:
                log.info("settled epoch %s: revenue %s", epoch.epoch, epoch.revenue)

    def has_work(self, now: float | None = None) -> bool:
        """Whether `tick` has anything to do, read from the index alone (no chain call): the
        node sent a transaction or anchored a batch since bounties were last paid (a batch to
        pay, a bounty opened or topped up), receipts are due for anchoring, or an epoch is due.
        A bounty opened on the chain by anyone but this node is seen by `tick` alone."""
        now = time.time() if now is None else now
        every = self.schedule.epoch_seconds
        batch, block, owed, leaving = self._index_state()
        return (
            (batch, block) != self._bounties_seen
            or bool(owed)
            or now - self._watched >= WATCH_SECONDS
            or bool(leaving and now - self._drawn_early >= EARLY_SETTLE_SECONDS)
            or self._receipts_due(now)
            or bool(every and now - self._last_epoch >= every)
        )

    def _leaving_undrawn(self) -> bool:
        """Whether someone asked to withdraw more than is free (so the vault would pay them
        what they spent and no epoch drew yet), and has such spend."""
        with self.db.session() as session:
            rows = session.scalars(
                select(BalanceRow).where(
                    BalanceRow.withdrawing != "0", BalanceRow.spent != BalanceRow.settled
                )
            ).all()
        for row in rows:
            free = int(row.deposited) - int(row.withdrawn) - int(row.spent) - int(row.held)
            if int(row.withdrawing) > free and int(row.spent) > int(row.settled):
                return True
        return False

    def _bounty_state(self) -> tuple[object, object]:
        """(newest anchored batch, block of the node's newest transaction): what bounties pay
        for, and what opens or tops them up, changes one or the other."""
        batch, block, _, _ = self._index_state()
        return batch, block

    def _index_state(self) -> tuple[object, object, object, object]:
        """`_bounty_state`, whether an account may be owed into the vault, and whether one
        that asked to withdraw spent what no epoch has drawn yet, in one read."""
        newest_batch = select(func.max(BatchRow.id)).scalar_subquery()
        newest_block = (
            select(SyncCursor.last_block).where(SyncCursor.name == TRANSACTIONS).scalar_subquery()
        )
        owed = select(BalanceRow.account).where(BalanceRow.pay_in_due.is_(True))
        leaving = select(BalanceRow.account).where(
            BalanceRow.withdrawing != "0", BalanceRow.spent != BalanceRow.settled
        )
        with self.db.session() as session:
            batch, block, unpaid, undrawn = session.execute(
                select(newest_batch, newest_block, owed.exists(), leaving.exists())
            ).one()
        return batch, block, unpaid, undrawn

    def _receipts_due(self, now: float) -> bool:
        """Whether the waiting receipts reached the schedule's count or age."""
        waiting, oldest = self.receipts.pending()
        return bool(waiting) and (
            waiting >= self.schedule.anchor_count
            or (oldest is not None and now - oldest >= self.schedule.anchor_seconds)
        )
