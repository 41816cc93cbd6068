"""Prepaid balances: tokens deposited on chain, spent per request.

Deposits are held by PrepaidVault (`cairn.chain.vault`), not by the node: a user deposits into
the vault (approve, then `deposit`, from any wallet), and the gateway draws from it, per epoch,
only the spend its anchored, signed receipts justify; a user may withdraw what is not spent
after the vault's notice period. The node reads the vault's events: a `Deposited` credits its
account once (the event's transaction hash and log index are unique in the index), a
`WithdrawalRequested` sets aside what it asks for (a user leaving may not spend it), and a
`Withdrawn` takes it off. A plain token transfer to the gateway's treasury (how deposits were
made before the vault) is owed into the vault for its sender: `cairn.economy.custody` deposits
it there for them at once, as it did each custodial balance when the vault came.

A request first holds its largest possible cost, so concurrent requests cannot overspend, and
is then charged what it used; the hold is released either way. Spend stays in the vault until
an epoch is settled (`cairn.economy.epochs`): then the vault draws it against the spend root
and pays it into a RevenueDistributor epoch.

A deposit is credited only once the chain keeps its block through a crash, so a balance never
outlives the deposit that paid it: on anvil once anvil has saved a state file holding the
block (it saves every second: a read that finds a new deposit waits about that long), on a
network after `confirmations` blocks, on the memory chain at once (its chain and index start
afresh each run). The deposits cursor keeps the hash of its block, and the node checks it
against the chain at start (`cairn.chain.cursors`), which re-checks every credit before it.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from eth_account.signers.local import LocalAccount
from hexbytes import HexBytes
from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from cairn.chain.contracts import Chain
from cairn.chain.cursors import advance, start_block
from cairn.chain.models import SyncCursor
from cairn.chain.vault import ALL as WITHDRAW_ALL
from cairn.chain.vault import Withdrawal
from cairn.core.errors import InvalidInput, PaymentRequired
from cairn.core.evm import checksum
from cairn.db.engine import Database
from cairn.economy.models import BalanceRow, DepositRow, VaultMoveRow

CURSOR = "deposits"
LOG_CHUNK = 5_000  # blocks per eth_getLogs call
DURABLE_WAIT = 5.0  # seconds a read waits for the chain to keep a new deposit (anvil: about 1)
VAULT_EVENTS = ("Deposited", "WithdrawalRequested", "Withdrawn")
# Less than this owed into the vault for an account waits for more: a deposit costs the gateway
# gas, which a stream of one-unit transfers to the treasury should not drain.
MIN_PAY_IN = 10**15


@dataclass(frozen=True)
class Balance:
    """An account's prepaid balance in the token's smallest unit."""

    account: str
    deposited: int
    spent: int
    held: int
    withdrawn: int = 0
    withdrawing: int = 0  # a pending withdrawal request (2**128 - 1: everything); 0 for none

    @property
    def free(self) -> int:
        """What the account holds and has not spent, withdrawn or set aside for a request."""
        return self.deposited - self.withdrawn - self.spent - self.held

    @property
    def available(self) -> int:
        """What the account may still spend: what is free, less what it asked to withdraw."""
        return self.free - min(self.withdrawing, max(self.free, 0))


@dataclass(frozen=True)
class CreditedDeposit:
    """A deposit credited to an account: into the vault, or a transfer to the treasury."""

    tx_hash: str
    amount: str  # smallest token units, decimal
    block_number: int
    credited_at: float


@dataclass(frozen=True)
class Deposited:
    """A deposit the node sent for an account whose key it holds, and the balance after it."""

    tx_hash: str
    balance: Balance


@dataclass(frozen=True)
class Hold:
    """Tokens set aside for one request in flight."""

    account: str
    amount: int


def cost(price_per_1k: int, tokens: int) -> int:
    """What `tokens` cost at `price_per_1k`, rounded up to the smallest unit."""
    if price_per_1k < 0 or tokens < 0:
        raise InvalidInput("price and tokens must be non-negative")
    return -(-price_per_1k * tokens // 1000)


def balance_row(session: Session, account: str) -> BalanceRow:
    row = session.get(BalanceRow, account)
    if row is None:
        row = BalanceRow(
            account=account,
            deposited="0",
            spent="0",
            held="0",
            withdrawn="0",
            withdrawing="0",
            settled="0",
            owed_in="0",
            moved_in="0",
            pay_in_due=False,
        )
        session.add(row)
    return row


def add_amount(row: BalanceRow, field: str, amount: int) -> None:
    """Add `amount` to one of the row's decimal fields (what the gateway owes into the vault
    for it is due once it reaches `MIN_PAY_IN`)."""
    setattr(row, field, str(int(getattr(row, field)) + amount))
    if field in ("owed_in", "moved_in"):
        row.pay_in_due = int(row.owed_in) - int(row.moved_in) >= MIN_PAY_IN


def _balance(row: BalanceRow | None, account: str) -> Balance:
    if row is None:
        return Balance(account, 0, 0, 0)
    return Balance(
        account,
        int(row.deposited),
        int(row.spent),
        int(row.held),
        int(row.withdrawn),
        int(row.withdrawing),
    )


def _ordered(logs: Iterable[Any]) -> list[Any]:
    """Logs of several events in the order the chain applied them."""
    return sorted(logs, key=lambda log: (int(log["blockNumber"]), int(log["logIndex"])))


class Balances:
    """Credit deposits from the chain; hold, charge and release request costs."""

    def __init__(
        self,
        db: Database,
        chain: Chain,
        treasury: str,
        confirmations: int = 0,
        funders: tuple[str, ...] = (),
    ) -> None:
        self.db = db
        self.chain = chain
        self.treasury = checksum(treasury)
        # the node's own accounts (its operator): what they send the treasury funds it (gas
        # money's token twin, a top-up for bad debt), and is nobody's deposit
        self.funders = {checksum(a) for a in funders}
        self.confirmations = confirmations  # blocks a deposit waits for (reorgs on real chains)
        # One writer of balances per node, held across each whole transaction that changes one.
        self.lock = threading.RLock()
        # called after a sync finds tokens owed into the vault
        self.on_owed: Callable[[], None] | None = None

    def reset_index(self) -> None:
        """Forget deposits and balances: the chain behind them was replaced."""
        with self.lock, self.db.session() as session:
            session.execute(delete(DepositRow))
            session.execute(delete(BalanceRow))
            session.execute(delete(VaultMoveRow))
            session.execute(delete(SyncCursor).where(SyncCursor.name == CURSOR))

    def clear_holds(self) -> int:
        """Release every hold: at start no request is in flight, so holds left by a crash go
        back to their accounts. Returns how many accounts had one."""
        with self.lock, self.db.session() as session:
            rows = session.scalars(select(BalanceRow).where(BalanceRow.held != "0")).all()
            for row in rows:
                row.held = "0"
            return len(rows)

    def vault_holds_balances(self) -> bool:
        """Whether the vault holds the balances: it is deployed and custody moved into it."""
        vault = self.chain.vault
        if vault is None:
            return False
        with self.db.session() as session:
            return session.get(VaultMoveRow, vault.address) is not None

    def sync(self) -> int:
        """Credit the deposits not yet credited, in blocks the chain keeps through a crash, and
        apply withdrawals; returns how many deposits were new."""
        client, vault = self.chain.client, self.chain.vault
        custodial = not self.vault_holds_balances()
        with self.db.session() as session:
            start = start_block(session, CURSOR, self.chain.deployment.block)
        head = self._durable_head(start, client.block_number() - self.confirmations)
        credited, owed = 0, False
        contracts = {checksum(a) for a in self.chain.addresses}
        transfer = self.chain.token.contract.events.Transfer
        for lo in range(start, head + 1, LOG_CHUNK):
            hi = min(lo + LOG_CHUNK - 1, head)
            logs = client.logs(transfer, lo, hi, {"receiver": self.treasury})
            if vault is not None:
                events = [getattr(vault.contract.events, name) for name in VAULT_EVENTS]
                logs += client.contract_logs(events, lo, hi)
            block_hash = client.block_hash(hi)
            with self.lock, self.db.session() as session:
                for log in _ordered(logs):
                    if log["event"] == "Transfer":
                        sender = checksum(log["args"]["sender"])
                        amount = int(log["args"]["value"])
                        # mints, Cairn's own contracts (refunds) and the node's own accounts
                        # are not deposits
                        if not amount or int(sender, 16) == 0 or sender in contracts | self.funders:
                            continue
                        if self._record(session, log, sender, amount, "transfer"):
                            credited += 1
                            # before the vault: held here; since: owed into the vault for them
                            add_amount(
                                balance_row(session, sender),
                                "deposited" if custodial else "owed_in",
                                amount,
                            )
                            owed = owed or not custodial
                    else:
                        self._apply_vault(session, log)
                        credited += log["event"] == "Deposited"
                advance(session, CURSOR, hi, block_hash)
        if owed and self.on_owed is not None:
            self.on_owed()
        return credited

    def _apply_vault(self, session: Session, log: Any) -> None:
        """Apply one of the vault's events to its account's row."""
        args, event = log["args"], log["event"]
        account = checksum(args["account"])
        if event == "Deposited":
            by_gateway = checksum(args["sender"]) == self.treasury
            kind = "moved" if by_gateway else "vault"
            if self._record(session, log, account, int(args["amount"]), kind):
                row = balance_row(session, account)
                add_amount(row, "deposited", int(args["amount"]))
                if by_gateway:
                    add_amount(row, "moved_in", int(args["amount"]))
        elif event == "WithdrawalRequested":
            balance_row(session, account).withdrawing = str(int(args["amount"]))
        else:  # Withdrawn
            row = balance_row(session, account)
            add_amount(row, "withdrawn", int(args["amount"]))
            row.withdrawing = "0"

    @staticmethod
    def _record(session: Session, log: Any, account: str, amount: int, kind: str) -> bool:
        """Record a deposit once; False when it was recorded before."""
        tx_hash = HexBytes(log["transactionHash"]).to_0x_hex()
        exists = session.scalar(
            select(DepositRow.id).where(
                DepositRow.tx_hash == tx_hash, DepositRow.log_index == log["logIndex"]
            )
        )
        if exists is not None:
            return False
        session.add(
            DepositRow(
                tx_hash=tx_hash,
                log_index=int(log["logIndex"]),
                account=account,
                amount=str(amount),
                block_number=int(log["blockNumber"]),
                credited_at=time.time(),
                kind=kind,
            )
        )
        return True

    def _durable_head(self, start: int, tip: int) -> int:
        """The newest block up to `tip` whose deposits may be credited: one the chain keeps.

        When deposits or withdrawals wait in blocks not kept yet, wait (up to `DURABLE_WAIT`) for
        the chain to keep them, so one just made shows in the same read.
        """
        backend = self.chain.client.backend
        kept = backend.durable_block(tip)
        if kept == tip or start > tip:
            return kept
        lo, client = max(start, kept + 1), self.chain.client
        waiting = client.logs(
            self.chain.token.contract.events.Transfer, lo, tip, {"receiver": self.treasury}
        )
        vault = self.chain.vault
        if vault is not None:  # a deposit or a withdrawal request just made: wait for it too
            events = [getattr(vault.contract.events, name) for name in VAULT_EVENTS]
            waiting += client.contract_logs(events, lo, tip)
        if not waiting:
            return kept
        newest = max(int(log["blockNumber"]) for log in waiting)
        return min(tip, backend.wait_durable(newest, DURABLE_WAIT))

    def deposit(self, sender: LocalAccount, amount: int) -> Deposited:
        """Deposit `amount` (smallest units) of `sender`'s tokens into the vault (approve, then
        deposit, as a wallet does), and credit it: what the API's and the pages' deposits
        both do. Before the vault, a transfer to the treasury."""
        if amount <= 0:
            raise InvalidInput(f"deposit amount must be positive; got {amount}")
        vault = self.chain.vault
        if vault is not None and self.vault_holds_balances():
            receipt = vault.deposit(sender, self.chain.token, amount)
        else:
            receipt = self.chain.token.transfer(sender, self.treasury, amount)
        tx_hash = HexBytes(receipt["transactionHash"]).to_0x_hex()
        return Deposited(tx_hash, self.get(sender.address))

    def get(self, account: str) -> Balance:
        """`account`'s balance, after crediting new deposits."""
        self.sync()
        address = checksum(account)
        with self.db.session() as session:
            return _balance(session.get(BalanceRow, address), address)

    def pending_withdrawal(self, account: str) -> Withdrawal | None:
        """`account`'s withdrawal request in the vault, None when it has none."""
        vault = self.chain.vault
        if vault is None:
            return None
        pending = vault.pending_withdrawal(account)
        return pending if pending.amount else None

    def deposits(self, account: str) -> list[CreditedDeposit]:
        """`account`'s credited deposits, newest first (the gateway's moves of what it held
        for the account into the vault are not deposits of its own)."""
        self.sync()
        with self.db.session() as session:
            rows = session.scalars(
                select(DepositRow)
                .where(DepositRow.account == checksum(account), DepositRow.kind != "moved")
                .order_by(DepositRow.id.desc())
            ).all()
        return [CreditedDeposit(r.tx_hash, r.amount, r.block_number, r.credited_at) for r in rows]

    def hold(self, account: str, amount: int) -> Hold:
        """Set `amount` aside for a request, or raise `PaymentRequired` saying what is missing."""
        address = checksum(account)
        with self.lock, self.db.session() as session:
            row = session.get(BalanceRow, address)
            balance = _balance(row, address)
            if balance.available < amount or (amount == 0 and balance.available < 0):
                leaving = (
                    f" ({'all' if balance.withdrawing == WITHDRAW_ALL else balance.withdrawing} "
                    "is set aside for the withdrawal you asked for)"
                    if balance.withdrawing
                    else ""
                )
                raise PaymentRequired(
                    f"insufficient balance: account {address} has {balance.available} available "
                    f"(smallest token units){leaving}, and this request may cost up to {amount}. "
                    "Deposit tokens with `cairn balance deposit`, or lower max_tokens",
                    available=balance.available,
                    needed=amount,
                )
            if amount:
                add_amount(balance_row(session, address), "held", amount)
        return Hold(address, amount)

    def settle_hold(self, session: Session, hold: Hold, charged: int) -> int:
        """Inside the caller's transaction, under `lock`: release `hold` and spend `charged`
        (at most the hold); returns what was charged."""
        charged = min(charged, hold.amount)
        row = balance_row(session, hold.account)
        add_amount(row, "held", -hold.amount)
        add_amount(row, "spent", charged)
        return charged

    def release(self, hold: Hold) -> None:
        """Give a hold back unspent (the request failed before producing anything)."""
        if hold.amount == 0:
            return
        with self.lock, self.db.session() as session:
            self.settle_hold(session, hold, 0)
