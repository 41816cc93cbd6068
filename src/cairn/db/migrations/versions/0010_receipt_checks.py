"""receipt checks: the node's own replay of a sample of each anchored batch of usage receipts

Revision ID: 0010
Revises: 0009
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("usage_receipts", schema=None) as batch_op:
        batch_op.add_column(sa.Column("check", sa.JSON(), nullable=True))
    with op.batch_alter_table("receipt_batches", schema=None) as batch_op:
        batch_op.add_column(sa.Column("checked_at", sa.Float(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("receipt_batches", schema=None) as batch_op:
        batch_op.drop_column("checked_at")
    with op.batch_alter_table("usage_receipts", schema=None) as batch_op:
        batch_op.drop_column("check")
