"""bounties: each anchored batch's bounty payout, and the kind of each epoch

Revision ID: 0006
Revises: 0005
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "bounty_payouts",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("bounty_id", sa.BigInteger(), nullable=False),
        sa.Column("dataset_id", sa.BigInteger(), nullable=False),
        sa.Column("batch_root", sa.String(length=66), nullable=False),
        sa.Column("epoch_row", sa.Integer(), nullable=False),
        sa.Column("records", sa.Integer(), nullable=False),
        sa.Column("reviews", sa.Integer(), nullable=False),
        sa.Column("amount", sa.String(length=80), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("tx_hash", sa.String(length=66), nullable=True),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("bounty_id", "batch_root"),
    )
    with op.batch_alter_table("bounty_payouts", schema=None) as batch_op:
        for column in ("bounty_id", "dataset_id"):
            batch_op.create_index(batch_op.f(f"ix_bounty_payouts_{column}"), [column], unique=False)
    with op.batch_alter_table("epochs", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("kind", sa.String(length=16), nullable=False, server_default="revenue")
        )


def downgrade() -> None:
    with op.batch_alter_table("epochs", schema=None) as batch_op:
        batch_op.drop_column("kind")
    op.drop_table("bounty_payouts")
