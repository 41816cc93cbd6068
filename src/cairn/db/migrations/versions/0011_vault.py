"""vault: prepaid balances held by PrepaidVault, and the move of custodial balances into it

Revision ID: 0011
Revises: 0010
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

COLUMNS = ("withdrawn", "withdrawing", "settled", "owed_in", "moved_in")


def upgrade() -> None:
    with op.batch_alter_table("balances", schema=None) as batch_op:
        for name in COLUMNS:
            batch_op.add_column(
                sa.Column(name, sa.String(length=80), nullable=False, server_default="0")
            )
    with op.batch_alter_table("balances", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("pay_in_due", sa.Boolean(), nullable=False, server_default=sa.false())
        )
    with op.batch_alter_table("deposits", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("kind", sa.String(length=16), nullable=False, server_default="transfer")
        )
    op.create_table(
        "vault_moves",
        sa.Column("vault", sa.String(length=42), primary_key=True),
        sa.Column("block", sa.BigInteger(), nullable=False),
        sa.Column("accounts", sa.Integer(), nullable=False),
        sa.Column("balances", sa.String(length=80), nullable=False),
        sa.Column("revenue", sa.String(length=80), nullable=False),
        sa.Column("document_cid", sa.String(length=128), nullable=False),
        sa.Column("moved_at", sa.Float(), nullable=False),
        sa.Column("revenue_paid", sa.Boolean(), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("vault_moves")
    with op.batch_alter_table("deposits", schema=None) as batch_op:
        batch_op.drop_column("kind")
    with op.batch_alter_table("balances", schema=None) as batch_op:
        batch_op.drop_column("pay_in_due")
        for name in reversed(COLUMNS):
            batch_op.drop_column(name)
