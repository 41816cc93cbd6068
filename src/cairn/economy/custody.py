"""No custody: the tokens the gateway holds for users go into PrepaidVault, under their names.

Before the vault, deposits were transfers to the gateway's treasury, and the node kept each
account's balance in its index. When a node first runs with a vault, `move` writes down, in one
transaction, what it held for whom: each account's unspent balance is owed into the vault for
it, and what users had spent that no epoch had settled yet is owed into the vault's revenue
pool (the first epoch the vault funds pays it out); the list is stored as a public document. A
plain transfer to the treasury made since (an old wallet's habit) is owed into the vault for its
sender the same way (`Balances.sync`).

`pay_in` then deposits into the vault for each account what it is owed and has not had yet,
and pays the pool what it is owed, reading what was paid from the chain's events at its newest
block each time: a crash at any point leaves either a transaction on the chain, which is then
counted, or none, which is then sent; so nothing is paid in twice.

Each epoch the vault funds, it first draws what the epoch's receipts show each payer spent
(`spend`, `draw`): the gateway anchors a tree of (payer, cumulative spend) under its asset, and
the vault pays its revenue pool what the tree proves and it has not drawn yet.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from typing import Any

from eth_account.signers.local import LocalAccount
from sqlalchemy import select

from cairn.assets.content import ContentRefs, Scope
from cairn.chain.contracts import Chain
from cairn.chain.cursors import start_block
from cairn.chain.vault import MAX_DRAWS, Vault, spend_draws
from cairn.core.errors import ChainError, ConfigError
from cairn.core.evm import checksum
from cairn.core.merkle import StandardMerkleTree
from cairn.db.engine import Database
from cairn.economy.balances import CURSOR, LOG_CHUNK, MIN_PAY_IN, Balances, add_amount
from cairn.economy.models import (
    BalanceRow,
    DepositRow,
    LicenceSaleRow,
    ReceiptRow,
    VaultMoveRow,
)
from cairn.store.base import BlobStore

log = logging.getLogger("cairn.economy")

MOVE_SCHEMA = "cairn.vault-move/v1"
# seconds a payment waits for the gateway's own unmined transactions (one whose receipt timed
# out): what is due is read from the chain's events, which must show them first
PENDING_WAIT = 60.0


@dataclass(frozen=True)
class VaultMove:
    """What the gateway held for users when the vault came, and where it went."""

    vault: str
    block: int
    accounts: int
    balances: str  # their sum, decimal
    revenue: str  # spent and not yet settled: into the revenue pool
    document_cid: str
    moved_at: float
    revenue_paid: bool  # the chain shows the revenue paid into the pool


@dataclass(frozen=True)
class PaidIn:
    """What one `pay_in` deposited into the vault."""

    accounts: int
    balances: int
    revenue: int


def _move(row: VaultMoveRow) -> VaultMove:
    return VaultMove(
        row.vault,
        row.block,
        row.accounts,
        row.balances,
        row.revenue,
        row.document_cid,
        row.moved_at,
        row.revenue_paid,
    )


class Custody:
    """Move what the gateway holds for users into the vault, and keep it there."""

    def __init__(
        self,
        db: Database,
        store: BlobStore,
        chain: Chain,
        balances: Balances,
        gateway: LocalAccount,
        refs: ContentRefs,
    ) -> None:
        self.db = db
        self.store = store
        self.chain = chain
        self.balances = balances
        self.gateway = gateway
        self.refs = refs
        self._paying = threading.Lock()  # one `pay_in` at a time: each reads what was paid

    def _vault(self) -> Vault:
        vault = self.chain.vault
        if vault is None:
            raise ConfigError("this node has no PrepaidVault: start it with `cairn node start`")
        return vault

    def moved(self) -> VaultMove | None:
        """The move into this node's vault, once made."""
        vault = self.chain.vault
        if vault is None:
            return None
        with self.db.session() as session:
            row = session.get(VaultMoveRow, vault.address)
            return _move(row) if row is not None else None

    def move(self) -> VaultMove:
        """Write down, once per vault, what the gateway holds for whom, owed into the vault
        (then `pay_in`); the move made before, if there was one."""
        vault = self._vault()
        if (done := self.moved()) is not None:
            return done
        self.balances.sync()  # every transfer to the treasury up to now, credited here
        with self.balances.lock, self.db.session() as session:
            block = start_block(session, CURSOR, self.chain.deployment.block) - 1
            rows = session.scalars(select(BalanceRow).order_by(BalanceRow.account)).all()
            # what users put in the vault themselves already (it is public from its deployment)
            in_vault: dict[str, int] = {}
            for account, amount in session.execute(
                select(DepositRow.account, DepositRow.amount).where(DepositRow.kind != "transfer")
            ):
                in_vault[account] = in_vault.get(account, 0) + int(amount)
            held = {
                r.account: int(r.deposited) - in_vault.get(r.account, 0) - int(r.spent)
                for r in rows  # no request is in flight at start: nothing is held
            }
            unsettled = session.scalars(
                select(ReceiptRow.amount).where(ReceiptRow.epoch_id.is_(None))
            ).all()
            sales = session.scalars(
                select(LicenceSaleRow.paid).where(LicenceSaleRow.epoch_id.is_(None))
            ).all()
            revenue = sum(int(a) for a in unsettled) + sum(int(p) for p in sales)
            moves = {account: amount for account, amount in held.items() if amount > 0}
            now = time.time()
            cid = self.store.put_json(
                {
                    "schema": MOVE_SCHEMA,
                    "vault": vault.address,
                    "gateway": self.gateway.address,
                    "block": block,
                    "since": int(now * 1000),  # receipts signed from then on are drawn
                    "balances": [{"account": a, "amount": str(n)} for a, n in moves.items()],
                    "revenue": str(revenue),
                    "receipts": len(unsettled),
                    "licence_sales": len(sales),
                }
            )
            self.refs.add([cid], Scope.PUBLIC)
            for row in rows:  # the vault holds it now: what it credits is the balance
                add_amount(row, "owed_in", moves.get(row.account, 0))
                row.deposited, row.spent = str(in_vault.get(row.account, 0)), "0"
            session.add(
                VaultMoveRow(
                    vault=vault.address,
                    block=block,
                    accounts=len(moves),
                    balances=str(sum(moves.values())),
                    revenue=str(revenue),
                    document_cid=cid,
                    moved_at=now,
                    revenue_paid=False,
                )
            )
        move = self.moved()
        assert move is not None
        log.info(
            "custody moved into the vault %s: %s for %d accounts, %s of revenue",
            vault.address,
            move.balances,
            move.accounts,
            move.revenue,
        )
        return move

    def owed(self) -> bool:
        """Whether the index says an account is owed into the vault at least `MIN_PAY_IN` more
        than it had (read from the index alone, for the scheduler)."""
        with self.db.session() as session:
            due = select(BalanceRow.account).where(BalanceRow.pay_in_due.is_(True))
            return bool(session.scalar(select(due.exists())))

    def pay_in(self) -> PaidIn:
        """Deposit into the vault what each account is owed and has not had, and pay the
        revenue pool what the move owes it; the chain's events say what was paid before."""
        vault, token = self._vault(), self.chain.token
        move = self.moved()
        if move is None or (not self.owed() and self._revenue_paid(move)):
            return PaidIn(0, 0, 0)
        with self._paying:
            self.chain.client.await_mined([self.gateway.address], PENDING_WAIT)
            with self.db.session() as session:
                owed = {
                    checksum(account): int(amount)
                    for account, amount in session.execute(
                        select(BalanceRow.account, BalanceRow.owed_in).where(
                            BalanceRow.owed_in != "0"
                        )
                    )
                }
            deposited, transferred = self._paid_in(vault)
            due = {a: n - deposited.get(a, 0) for a, n in owed.items()}
            due = {a: n for a, n in due.items() if n >= MIN_PAY_IN}
            revenue = (
                0
                if move.revenue_paid
                else int(move.revenue) - (transferred - sum(deposited.values()))
            )
            needed = sum(due.values()) + max(revenue, 0)
            if not needed:
                if not move.revenue_paid:
                    self._record_revenue_paid(vault.address)
                self.balances.sync()  # the index catches up with what the chain says was paid
                return PaidIn(0, 0, 0)
            holds = token.balance_of(self.gateway.address)
            if holds < needed:
                raise ConfigError(
                    f"the gateway {self.gateway.address} holds {holds} of the token but owes "
                    f"{needed} into the vault {vault.address} for its users: send it the "
                    "difference and restart the node"
                )
            token.approve_if_short(self.gateway, vault.address, needed)
            for account, amount in sorted(due.items()):
                vault.deposit_for(self.gateway, token, account, amount)
            if revenue > 0:
                token.transfer(self.gateway, vault.address, revenue)
        if not move.revenue_paid:
            self._record_revenue_paid(vault.address)  # sent, or found sent on the chain
        self.balances.sync()
        return PaidIn(len(due), sum(due.values()), max(revenue, 0))

    @staticmethod
    def since(move: VaultMove) -> int:
        """The first receipt time (signed, unix ms) whose spend the vault draws: those before
        the move were paid from the balances the gateway held."""
        return int(move.moved_at * 1000)

    def spend(self, move: VaultMove, receipt_ids: list[str]) -> dict[str, int]:
        """Each payer's cumulative spend settled from the vault, these receipts (those signed
        since the move) included: the leaves of the spend root the vault draws against."""
        since, new = self.since(move), dict[str, int]()
        with self.db.session() as session:
            for start in range(0, len(receipt_ids), 500):
                for row in session.scalars(
                    select(ReceiptRow).where(
                        ReceiptRow.receipt_id.in_(receipt_ids[start : start + 500])
                    )
                ):
                    if int(row.body["created_at"]) >= since:
                        payer = checksum(row.account)
                        new[payer] = new.get(payer, 0) + int(row.amount)
            new = {a: n for a, n in new.items() if n > 0}
            settled = {
                row.account: int(row.settled)
                for row in session.scalars(
                    select(BalanceRow).where(BalanceRow.account.in_(list(new) or [""]))
                )
            }
        return {a: settled.get(a, 0) + n for a, n in sorted(new.items())}

    def draw(self, spend: dict[str, Any]) -> None:
        """Anchor the spend root under the gateway's asset, and have the vault draw what it
        proves each payer spent beyond what was drawn (a balance that no longer covers it, as
        when a withdrawal landed first, is left: `cover` makes the epoch whole)."""
        vault, ledger = self.chain.vault, self.chain.ledger
        assert vault is not None
        tree = StandardMerkleTree.load(self.store.get_json(spend["tree"]))
        root, asset = tree.root, int(spend["asset"])
        if not ledger.is_anchored(asset, root):  # anchored before a crash, or now
            ledger.anchor(self.gateway, asset, root, len(tree), spend["tree"])
        draws = [d for d in spend_draws(tree) if vault.drawn(d.account) < d.cumulative]
        for start in range(0, len(draws), MAX_DRAWS):
            vault.draw_many(self.gateway, root, draws[start : start + MAX_DRAWS])
        short = {d.account: d.cumulative - vault.drawn(d.account) for d in draws}
        for account, amount in short.items():
            if amount > 0:
                log.warning(
                    "the vault could not draw %d that %s spent: its balance no longer covers it "
                    "(a withdrawal landed first; settle more often than the notice period)",
                    amount,
                    account,
                )

    def cover(self, amount: int) -> int:
        """Make the vault's revenue pool hold `amount` for an epoch, paying what it lacks from
        the gateway's own tokens (spend no balance covered any more: the operator's loss, not
        the payees'); returns what was paid. Safe to repeat: a pool that holds it is paid
        nothing."""
        vault, token = self._vault(), self.chain.token
        lacking = amount - vault.revenue_pool()
        if lacking <= 0:
            return 0
        holds = token.balance_of(self.gateway.address)
        if holds < lacking:
            raise ChainError(
                f"the vault's revenue pool lacks {lacking} for this epoch (spend it could not "
                f"draw), and the gateway {self.gateway.address} holds {holds}: send the gateway "
                "the difference from the operator's account; the epoch stays planned until then"
            )
        token.transfer(self.gateway, vault.address, lacking)
        log.warning("paid %d of the gateway's own into the vault to make an epoch whole", lacking)
        return lacking

    def _revenue_paid(self, move: VaultMove) -> bool:
        """Whether the index shows the move's revenue paid into the pool."""
        return move.revenue == "0" or move.revenue_paid

    def _record_revenue_paid(self, vault: str) -> None:
        with self.db.session() as session:
            row = session.get(VaultMoveRow, vault)
            assert row is not None
            row.revenue_paid = True

    def _paid_in(self, vault: Vault) -> tuple[dict[str, int], int]:
        """What the gateway deposited into the vault for each account, and every token it sent
        the vault (deposits included), read from the chain up to its newest block."""
        client = self.chain.client
        head, gateway = client.block_number(), self.gateway.address
        deposited: dict[str, int] = {}
        transferred = 0
        transfer = self.chain.token.contract.events.Transfer
        for lo in range(self.chain.deployment.block, head + 1, LOG_CHUNK):
            hi = min(lo + LOG_CHUNK - 1, head)
            for event in client.logs(vault.contract.events.Deposited, lo, hi):
                if checksum(event["args"]["sender"]) == gateway:
                    account = checksum(event["args"]["account"])
                    deposited[account] = deposited.get(account, 0) + int(event["args"]["amount"])
            filters = {"sender": gateway, "receiver": vault.address}
            transferred += sum(
                int(e["args"]["value"]) for e in client.logs(transfer, lo, hi, filters)
            )
        return deposited, transferred
