"""licences: licence sales as revenue, and the count of sales each epoch settled

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "licence_sales",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("tx_hash", sa.String(length=66), nullable=False),
        sa.Column("log_index", sa.Integer(), nullable=False),
        sa.Column("offer_id", sa.BigInteger(), nullable=False),
        sa.Column("asset_id", sa.BigInteger(), nullable=False),
        sa.Column("buyer", sa.String(length=42), nullable=False),
        sa.Column("holder", sa.String(length=42), nullable=False),
        sa.Column("copies", sa.BigInteger(), nullable=False),
        sa.Column("paid", sa.String(length=80), nullable=False),
        sa.Column("version", sa.String(length=128), nullable=True),
        sa.Column("block_number", sa.BigInteger(), nullable=False),
        sa.Column("sold_at", sa.Float(), nullable=False),
        sa.Column("epoch_id", sa.Integer(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("tx_hash", "log_index"),
    )
    with op.batch_alter_table("licence_sales", schema=None) as batch_op:
        for column in ("offer_id", "asset_id", "buyer", "holder", "epoch_id"):
            batch_op.create_index(batch_op.f(f"ix_licence_sales_{column}"), [column], unique=False)
    with op.batch_alter_table("epochs", schema=None) as batch_op:
        batch_op.add_column(sa.Column("sales", sa.Integer(), nullable=False, server_default="0"))


def downgrade() -> None:
    with op.batch_alter_table("epochs", schema=None) as batch_op:
        batch_op.drop_column("sales")
    op.drop_table("licence_sales")
