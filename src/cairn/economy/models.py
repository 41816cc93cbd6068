"""Index tables of the economy: API keys, prepaid balances, prices, usage receipts, licence
sales, epochs.

Token amounts are decimal strings in the token's smallest unit: they outgrow 64-bit integers
(1,000 tokens of 18 decimals is 10**21), and every sum is done in Python integers.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import JSON, BigInteger, Boolean, Float, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from cairn.db.engine import Base


class ApiKeyRow(Base):
    """An API key of an account; only the SHA-256 of its secret is kept."""

    __tablename__ = "api_keys"

    key_id: Mapped[str] = mapped_column(String(24), primary_key=True)  # public, e.g. "key_1a2b.."
    account: Mapped[str] = mapped_column(String(42), index=True)
    name: Mapped[str] = mapped_column(String(100))
    secret_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[float] = mapped_column(Float)
    revoked_at: Mapped[float | None] = mapped_column(Float, nullable=True)
    last_used_at: Mapped[float | None] = mapped_column(Float, nullable=True)


class DepositRow(Base):
    """A deposit, credited once: a token transfer to the gateway's treasury (kind "transfer",
    credited to its sender; once the vault holds balances, owed into the vault for it), a
    deposit into PrepaidVault ("vault"), or the gateway's deposit into the vault of what it
    held for an account ("moved")."""

    __tablename__ = "deposits"
    __table_args__ = (UniqueConstraint("tx_hash", "log_index"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    tx_hash: Mapped[str] = mapped_column(String(66))
    log_index: Mapped[int] = mapped_column(Integer)
    account: Mapped[str] = mapped_column(String(42), index=True)
    amount: Mapped[str] = mapped_column(String(80))
    block_number: Mapped[int] = mapped_column(BigInteger)
    credited_at: Mapped[float] = mapped_column(Float)
    kind: Mapped[str] = mapped_column(String(16), default="transfer", server_default="transfer")


class BalanceRow(Base):
    """An account's prepaid balance: deposited - withdrawn - spent - held is what it may still
    spend, less what it asked to withdraw (`cairn.economy.balances.Balance`)."""

    __tablename__ = "balances"

    account: Mapped[str] = mapped_column(String(42), primary_key=True)
    deposited: Mapped[str] = mapped_column(String(80))
    spent: Mapped[str] = mapped_column(String(80))
    held: Mapped[str] = mapped_column(String(80))  # reserved by requests in flight
    withdrawn: Mapped[str] = mapped_column(String(80), default="0", server_default="0")
    # a pending withdrawal request's amount (2**128 - 1: everything), 0 for none
    withdrawing: Mapped[str] = mapped_column(String(80), default="0", server_default="0")
    # the cumulative spend of the epochs settled from the vault: its spend trees' leaf
    settled: Mapped[str] = mapped_column(String(80), default="0", server_default="0")
    # what the gateway owes into the vault for the account (its custodial balance when the
    # vault came, and plain transfers to the treasury since), and what it deposited of that
    owed_in: Mapped[str] = mapped_column(String(80), default="0", server_default="0")
    moved_in: Mapped[str] = mapped_column(String(80), default="0", server_default="0")
    pay_in_due: Mapped[bool] = mapped_column(Boolean, default=False, server_default="0")


class VaultMoveRow(Base):
    """The move of the gateway's custodial balances into a PrepaidVault, once per vault."""

    __tablename__ = "vault_moves"

    vault: Mapped[str] = mapped_column(String(42), primary_key=True)
    block: Mapped[int] = mapped_column(BigInteger)  # the deposits read up to it were moved
    accounts: Mapped[int] = mapped_column(Integer)
    balances: Mapped[str] = mapped_column(String(80))  # their sum
    # what users had spent and no epoch had settled: paid into the vault's revenue pool
    revenue: Mapped[str] = mapped_column(String(80))
    document_cid: Mapped[str] = mapped_column(String(128))  # public: who got what
    moved_at: Mapped[float] = mapped_column(Float)
    revenue_paid: Mapped[bool] = mapped_column(Boolean, default=False)  # the chain shows it


class PriceRow(Base):
    """A model's price per 1,000 tokens, set by its owner."""

    __tablename__ = "prices"

    asset_id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    price_per_1k: Mapped[str] = mapped_column(String(80))
    set_by: Mapped[str] = mapped_column(String(42))
    updated_at: Mapped[float] = mapped_column(Float)


class ReceiptRow(Base):
    """A signed usage receipt for one charged request."""

    __tablename__ = "usage_receipts"

    receipt_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    account: Mapped[str] = mapped_column(String(42), index=True)
    key_id: Mapped[str] = mapped_column(String(24), index=True)
    model: Mapped[int] = mapped_column(BigInteger, index=True)
    amount: Mapped[str] = mapped_column(String(80))
    body: Mapped[dict[str, Any]] = mapped_column(JSON)  # the signed fields
    signature: Mapped[str] = mapped_column(String(140))
    leaf: Mapped[str] = mapped_column(String(66))
    created_at: Mapped[float] = mapped_column(Float, index=True)
    batch_id: Mapped[int | None] = mapped_column(Integer, nullable=True, index=True)
    epoch_id: Mapped[int | None] = mapped_column(Integer, nullable=True, index=True)
    # the node's replay of it, when its batch's sample drew it (`ReceiptValidator.check_sampled`)
    check: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)


class ReceiptBatchRow(Base):
    """Receipts anchored together on ContributionLedger under the gateway's asset."""

    __tablename__ = "receipt_batches"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    asset_id: Mapped[int] = mapped_column(BigInteger)
    root: Mapped[str] = mapped_column(String(66), unique=True)
    count: Mapped[int] = mapped_column(Integer)
    cid: Mapped[str] = mapped_column(String(128))
    tx_hash: Mapped[str] = mapped_column(String(66))
    anchored_at: Mapped[float] = mapped_column(Float)
    checked_at: Mapped[float | None] = mapped_column(Float, nullable=True)  # its sample replayed


class EpochRow(Base):
    """A settlement epoch: its receipts' revenue split by lineage and funded on chain."""

    __tablename__ = "epochs"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    status: Mapped[str] = mapped_column(String(16))  # planned | funded | empty
    epoch: Mapped[int | None] = mapped_column(Integer, nullable=True)  # RevenueDistributor's
    revenue: Mapped[str] = mapped_column(String(80))
    receipts: Mapped[int] = mapped_column(Integer)
    sales: Mapped[int] = mapped_column(Integer, default=0, server_default="0")  # licence sales
    # "revenue" (settled by lineage, funded by the treasury) or "bounty" (one anchored batch's
    # bounty payout, funded by DataBounty)
    kind: Mapped[str] = mapped_column(String(16), default="revenue", server_default="revenue")
    root: Mapped[str | None] = mapped_column(String(66), nullable=True)
    tree_cid: Mapped[str | None] = mapped_column(String(128), nullable=True)
    settlement_cid: Mapped[str] = mapped_column(String(128))
    # the epoch document funded on chain: unique per epoch, so a crashed funding is recognised
    document_cid: Mapped[str | None] = mapped_column(String(128), nullable=True)
    tx_hash: Mapped[str | None] = mapped_column(String(66), nullable=True)
    created_at: Mapped[float] = mapped_column(Float)
    funded_at: Mapped[float | None] = mapped_column(Float, nullable=True)


class PayoutRow(Base):
    """What one epoch owes one account, and the claim that paid it."""

    __tablename__ = "payouts"
    __table_args__ = (UniqueConstraint("epoch_id", "account"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    epoch_id: Mapped[int] = mapped_column(Integer, index=True)
    account: Mapped[str] = mapped_column(String(42), index=True)
    amount: Mapped[str] = mapped_column(String(80))
    claim_tx: Mapped[str | None] = mapped_column(String(66), nullable=True)


class LicenceSaleRow(Base):
    """A licence bought on chain and paid to this node's treasury: revenue of its asset."""

    __tablename__ = "licence_sales"
    __table_args__ = (UniqueConstraint("tx_hash", "log_index"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    tx_hash: Mapped[str] = mapped_column(String(66))
    log_index: Mapped[int] = mapped_column(Integer)
    offer_id: Mapped[int] = mapped_column(BigInteger, index=True)
    asset_id: Mapped[int] = mapped_column(BigInteger, index=True)
    buyer: Mapped[str] = mapped_column(String(42), index=True)
    holder: Mapped[str] = mapped_column(String(42), index=True)
    copies: Mapped[int] = mapped_column(BigInteger)
    paid: Mapped[str] = mapped_column(String(80))
    # a dataset's newest version when the sale was indexed: its attribution table is paid
    version: Mapped[str | None] = mapped_column(String(128), nullable=True)
    block_number: Mapped[int] = mapped_column(BigInteger)
    sold_at: Mapped[float] = mapped_column(Float)
    epoch_id: Mapped[int | None] = mapped_column(Integer, nullable=True, index=True)


class BountyPayoutRow(Base):
    """One anchored batch's payout under a bounty: planned, then funded on chain."""

    __tablename__ = "bounty_payouts"
    __table_args__ = (UniqueConstraint("bounty_id", "batch_root"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    bounty_id: Mapped[int] = mapped_column(BigInteger, index=True)
    dataset_id: Mapped[int] = mapped_column(BigInteger, index=True)
    batch_root: Mapped[str] = mapped_column(String(66))
    epoch_row: Mapped[int] = mapped_column(Integer)  # the EpochRow its claims go through
    records: Mapped[int] = mapped_column(Integer)
    reviews: Mapped[int] = mapped_column(Integer)
    amount: Mapped[str] = mapped_column(String(80))
    status: Mapped[str] = mapped_column(String(16))  # planned | paid | skipped
    tx_hash: Mapped[str | None] = mapped_column(String(66), nullable=True)
    created_at: Mapped[float] = mapped_column(Float)
