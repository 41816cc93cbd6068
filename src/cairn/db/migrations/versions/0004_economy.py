"""economy domain: API keys, prepaid balances, prices, usage receipts, epochs and payouts

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "api_keys",
        sa.Column("key_id", sa.String(length=24), nullable=False),
        sa.Column("account", sa.String(length=42), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("secret_hash", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.Column("revoked_at", sa.Float(), nullable=True),
        sa.Column("last_used_at", sa.Float(), nullable=True),
        sa.PrimaryKeyConstraint("key_id"),
        sa.UniqueConstraint("secret_hash"),
    )
    with op.batch_alter_table("api_keys", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_api_keys_account"), ["account"], unique=False)

    op.create_table(
        "balances",
        sa.Column("account", sa.String(length=42), nullable=False),
        sa.Column("deposited", sa.String(length=80), nullable=False),
        sa.Column("spent", sa.String(length=80), nullable=False),
        sa.Column("held", sa.String(length=80), nullable=False),
        sa.PrimaryKeyConstraint("account"),
    )
    op.create_table(
        "deposits",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("tx_hash", sa.String(length=66), nullable=False),
        sa.Column("log_index", sa.Integer(), nullable=False),
        sa.Column("account", sa.String(length=42), nullable=False),
        sa.Column("amount", sa.String(length=80), nullable=False),
        sa.Column("block_number", sa.BigInteger(), nullable=False),
        sa.Column("credited_at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("tx_hash", "log_index"),
    )
    with op.batch_alter_table("deposits", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_deposits_account"), ["account"], unique=False)

    op.create_table(
        "epochs",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("epoch", sa.Integer(), nullable=True),
        sa.Column("revenue", sa.String(length=80), nullable=False),
        sa.Column("receipts", sa.Integer(), nullable=False),
        sa.Column("root", sa.String(length=66), nullable=True),
        sa.Column("tree_cid", sa.String(length=128), nullable=True),
        sa.Column("settlement_cid", sa.String(length=128), nullable=False),
        sa.Column("document_cid", sa.String(length=128), nullable=True),
        sa.Column("tx_hash", sa.String(length=66), nullable=True),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.Column("funded_at", sa.Float(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_table(
        "payouts",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("epoch_id", sa.Integer(), nullable=False),
        sa.Column("account", sa.String(length=42), nullable=False),
        sa.Column("amount", sa.String(length=80), nullable=False),
        sa.Column("claim_tx", sa.String(length=66), nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("epoch_id", "account"),
    )
    with op.batch_alter_table("payouts", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_payouts_account"), ["account"], unique=False)
        batch_op.create_index(batch_op.f("ix_payouts_epoch_id"), ["epoch_id"], unique=False)

    op.create_table(
        "prices",
        sa.Column("asset_id", sa.BigInteger(), nullable=False),
        sa.Column("price_per_1k", sa.String(length=80), nullable=False),
        sa.Column("set_by", sa.String(length=42), nullable=False),
        sa.Column("updated_at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("asset_id"),
    )
    op.create_table(
        "receipt_batches",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("asset_id", sa.BigInteger(), nullable=False),
        sa.Column("root", sa.String(length=66), nullable=False),
        sa.Column("count", sa.Integer(), nullable=False),
        sa.Column("cid", sa.String(length=128), nullable=False),
        sa.Column("tx_hash", sa.String(length=66), nullable=False),
        sa.Column("anchored_at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("root"),
    )
    op.create_table(
        "usage_receipts",
        sa.Column("receipt_id", sa.String(length=40), nullable=False),
        sa.Column("account", sa.String(length=42), nullable=False),
        sa.Column("key_id", sa.String(length=24), nullable=False),
        sa.Column("model", sa.BigInteger(), nullable=False),
        sa.Column("amount", sa.String(length=80), nullable=False),
        sa.Column("body", sa.JSON(), nullable=False),
        sa.Column("signature", sa.String(length=140), nullable=False),
        sa.Column("leaf", sa.String(length=66), nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.Column("batch_id", sa.Integer(), nullable=True),
        sa.Column("epoch_id", sa.Integer(), nullable=True),
        sa.PrimaryKeyConstraint("receipt_id"),
    )
    with op.batch_alter_table("usage_receipts", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_usage_receipts_account"), ["account"], unique=False)
        batch_op.create_index(batch_op.f("ix_usage_receipts_batch_id"), ["batch_id"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_usage_receipts_created_at"), ["created_at"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_usage_receipts_epoch_id"), ["epoch_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_usage_receipts_key_id"), ["key_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_usage_receipts_model"), ["model"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("usage_receipts", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_usage_receipts_model"))
        batch_op.drop_index(batch_op.f("ix_usage_receipts_key_id"))
        batch_op.drop_index(batch_op.f("ix_usage_receipts_epoch_id"))
        batch_op.drop_index(batch_op.f("ix_usage_receipts_created_at"))
        batch_op.drop_index(batch_op.f("ix_usage_receipts_batch_id"))
        batch_op.drop_index(batch_op.f("ix_usage_receipts_account"))

    op.drop_table("usage_receipts")
    op.drop_table("receipt_batches")
    op.drop_table("prices")
    with op.batch_alter_table("payouts", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_payouts_epoch_id"))
        batch_op.drop_index(batch_op.f("ix_payouts_account"))

    op.drop_table("payouts")
    op.drop_table("epochs")
    with op.batch_alter_table("deposits", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_deposits_account"))

    op.drop_table("deposits")
    op.drop_table("balances")
    with op.batch_alter_table("api_keys", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_api_keys_account"))

    op.drop_table("api_keys")
