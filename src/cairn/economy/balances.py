"""Prepaid balances: tokens deposited on chain to the gateway's treasury, spent per request.

A deposit is a plain ERC-20 transfer of the payment token to the treasury account, from any
wallet; the node reads the token's `Transfer` events to the treasury and credits each one once
to its sender (the event's transaction hash and log index are unique in the index). A request
first holds its largest possible cost, so concurrent requests cannot overspend, and is then
charged what it used; the hold is released either way. `deposited - spent - held` is what an
account may still spend. Money spent stays in the treasury until an epoch is settled: then
the revenue is moved on chain to RevenueDistributor and paid out by lineage.

A deposit is credited only once the chain keeps its block through a crash, so a balance never
outlives the transfer that paid it: on anvil once anvil has saved a state file holding the
block (it saves every second: a read that finds a new deposit waits about that long), on a
network after `confirmations` blocks, on the memory chain at once (its chain and index start
afresh each run). The deposits cursor keeps the hash of its block, and the node checks it
against the chain at start (`cairn.chain.cursors`), which re-checks every credit before it.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

from eth_account.signers.local import LocalAccount
from hexbytes import HexBytes
from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from cairn.chain.contracts import Chain
from cairn.chain.cursors import advance, start_block
from cairn.chain.models import SyncCursor
from cairn.core.errors import InvalidInput, PaymentRequired
from cairn.core.evm import checksum
from cairn.db.engine import Database
from cairn.economy.models import BalanceRow, DepositRow

CURSOR = "deposits"
LOG_CHUNK = 5_000  # blocks per eth_getLogs call
DURABLE_WAIT = 5.0  # seconds a read waits for the chain to keep a new deposit (anvil: about 1)


@dataclass(frozen=True)
class Balance:
    """An account's prepaid balance in the token's smallest unit."""

    account: str
    deposited: int
    spent: int
    held: int

    @property
    def available(self) -> int:
        """What the account may still spend."""
        return self.deposited - self.spent - self.held


@dataclass(frozen=True)
class CreditedDeposit:
    """A token transfer to the treasury, credited to its sender."""

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


def _row(session: Session, account: str) -> BalanceRow:
    row = session.get(BalanceRow, account)
    if row is None:
        row = BalanceRow(account=account, deposited="0", spent="0", held="0")
        session.add(row)
    return row


def _balance(row: BalanceRow | None, account: str) -> Balance:
    if row is None:
        return Balance(account, 0, 0, 0)
    return Balance(account, int(row.deposited), int(row.spent), int(row.held))


class Balances:
    """Credit deposits from the chain; hold, charge and release request costs."""

    def __init__(self, db: Database, chain: Chain, treasury: str, confirmations: int = 0) -> None:
        self.db = db
        self.chain = chain
        self.treasury = checksum(treasury)
        self.confirmations = confirmations  # blocks a deposit waits for (reorgs on real chains)
        # One writer of balances per node, held across each whole transaction that changes one.
        self.lock = threading.RLock()

    def reset_index(self) -> None:
        """Forget deposits and balances: the chain behind them was replaced."""
        with self.lock, self.db.session() as session:
            session.execute(delete(DepositRow))
            session.execute(delete(BalanceRow))
            session.execute(delete(SyncCursor).where(SyncCursor.name == CURSOR))

    def clear_holds(self) -> int:
        """Release every hold: at start no request is in flight, so holds left by a crash go
        back to their accounts. Returns how many accounts had one."""
        with self.lock, self.db.session() as session:
            rows = session.scalars(select(BalanceRow).where(BalanceRow.held != "0")).all()
            for row in rows:
                row.held = "0"
            return len(rows)

    def sync(self) -> int:
        """Credit token transfers to the treasury not yet credited, in blocks the chain keeps
        through a crash; returns how many."""
        client = self.chain.client
        with self.db.session() as session:
            start = start_block(session, CURSOR, self.chain.deployment.block)
        head = self._durable_head(start, client.block_number() - self.confirmations)
        credited = 0
        contracts = {checksum(a) for a in self.chain.addresses}
        event = self.chain.token.contract.events.Transfer
        for lo in range(start, head + 1, LOG_CHUNK):
            hi = min(lo + LOG_CHUNK - 1, head)
            logs = client.logs(event, lo, hi, {"receiver": self.treasury})
            block_hash = client.block_hash(hi)
            with self.lock, self.db.session() as session:
                for log in logs:
                    sender = checksum(log["args"]["sender"])
                    amount = int(log["args"]["value"])
                    # mints and Cairn's own contracts (refunds) are not deposits
                    if amount == 0 or int(sender, 16) == 0 or sender in contracts:
                        continue
                    tx_hash = HexBytes(log["transactionHash"]).to_0x_hex()
                    exists = session.scalar(
                        select(DepositRow.id).where(
                            DepositRow.tx_hash == tx_hash, DepositRow.log_index == log["logIndex"]
                        )
                    )
                    if exists is not None:
                        continue
                    session.add(
                        DepositRow(
                            tx_hash=tx_hash,
                            log_index=int(log["logIndex"]),
                            account=sender,
                            amount=str(amount),
                            block_number=int(log["blockNumber"]),
                            credited_at=time.time(),
                        )
                    )
                    row = _row(session, sender)
                    row.deposited = str(int(row.deposited) + amount)
                    credited += 1
                advance(session, CURSOR, hi, block_hash)
        return credited

    def _durable_head(self, start: int, tip: int) -> int:
        """The newest block up to `tip` whose deposits may be credited: one the chain keeps.

        When transfers to the treasury wait in blocks not kept yet, wait (up to `DURABLE_WAIT`)
        for the chain to keep them, so a deposit just made is credited in the same read.
        """
        backend = self.chain.client.backend
        kept = backend.durable_block(tip)
        if kept == tip or start > tip:
            return kept
        event = self.chain.token.contract.events.Transfer
        waiting = self.chain.client.logs(
            event, max(start, kept + 1), tip, {"receiver": self.treasury}
        )
        if not waiting:
            return kept
        newest = max(int(log["blockNumber"]) for log in waiting)
        return min(tip, backend.wait_durable(newest, DURABLE_WAIT))

    def deposit(self, sender: LocalAccount, amount: int) -> Deposited:
        """Send `amount` (smallest units) of `sender`'s tokens to the treasury, as a wallet's own
        transfer does, and credit it: what the API's and the pages' deposits both do."""
        if amount <= 0:
            raise InvalidInput(f"deposit amount must be positive; got {amount}")
        receipt = self.chain.token.transfer(sender, self.treasury, amount)
        tx_hash = HexBytes(receipt["transactionHash"]).to_0x_hex()
        return Deposited(tx_hash, self.get(sender.address))

    def get(self, account: str) -> Balance:
        """`account`'s balance, after crediting new deposits."""
        self.sync()
        address = checksum(account)
        with self.db.session() as session:
            return _balance(session.get(BalanceRow, address), address)

    def deposits(self, account: str) -> list[CreditedDeposit]:
        """`account`'s credited deposits, newest first."""
        self.sync()
        with self.db.session() as session:
            rows = session.scalars(
                select(DepositRow)
                .where(DepositRow.account == checksum(account))
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
                raise PaymentRequired(
                    f"insufficient balance: account {address} has {balance.available} available "
                    f"(smallest token units), and this request may cost up to {amount}. Deposit "
                    "tokens to the gateway with `cairn balance deposit`, or lower max_tokens",
                    available=balance.available,
                    needed=amount,
                )
            if amount:
                row = _row(session, address)
                row.held = str(int(row.held) + amount)
        return Hold(address, amount)

    def settle_hold(self, session: Session, hold: Hold, charged: int) -> int:
        """Inside the caller's transaction, under `lock`: release `hold` and spend `charged`
        (at most the hold); returns what was charged."""
        charged = min(charged, hold.amount)
        row = _row(session, hold.account)
        row.held = str(int(row.held) - hold.amount)
        row.spent = str(int(row.spent) + charged)
        return charged

    def release(self, hold: Hold) -> None:
        """Give a hold back unspent (the request failed before producing anything)."""
        if hold.amount == 0:
            return
        with self.lock, self.db.session() as session:
            self.settle_hold(session, hold, 0)
