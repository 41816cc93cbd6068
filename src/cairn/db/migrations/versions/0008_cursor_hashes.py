"""cursor hashes: each chain sync cursor keeps the hash of its last block

Revision ID: 0008
Revises: 0007
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("chain_sync", schema=None) as batch_op:
        batch_op.add_column(sa.Column("block_hash", sa.String(length=66), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("chain_sync", schema=None) as batch_op:
        batch_op.drop_column("block_hash")
