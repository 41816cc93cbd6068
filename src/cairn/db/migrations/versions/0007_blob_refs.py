"""blob references: what each stored blob belongs to, so that only its readers get its bytes

The references of what the index already names are filled in here (asset metadata, attribution
tables, receipts and settlements are public; batches, version manifests and upload verdicts
belong to their dataset). Model weights are named inside metadata blobs, not in a table: the
node claims those for their model when it starts (`ContentAccess.claim_models`).

Revision ID: 0007
Revises: 0006
"""

from __future__ import annotations

import time

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

# (scope, key expression, account expression, source select) of every reference the index names
BACKFILL = [
    ("public", "''", "NULL", "SELECT metadata_cid AS cid FROM assets"),
    ("public", "''", "NULL", "SELECT attribution_cid AS cid FROM dataset_versions"),
    ("public", "''", "NULL", "SELECT cid FROM receipt_batches"),
    ("public", "''", "NULL", "SELECT settlement_cid AS cid FROM epochs"),
    ("public", "''", "NULL", "SELECT tree_cid AS cid FROM epochs WHERE tree_cid IS NOT NULL"),
    (
        "public",
        "''",
        "NULL",
        "SELECT document_cid AS cid FROM epochs WHERE document_cid IS NOT NULL",
    ),
    ("public", "''", "NULL", "SELECT recipe_cid AS cid FROM jobs"),
    ("public", "''", "NULL", "SELECT shares_cid AS cid FROM jobs WHERE shares_cid IS NOT NULL"),
    ("dataset", "dataset_id", "NULL", "SELECT cid, dataset_id FROM batches"),
    (
        "dataset",
        "dataset_id",
        "NULL",
        "SELECT manifest_cid AS cid, dataset_id FROM dataset_versions",
    ),
    ("dataset", "dataset_id", "NULL", "SELECT verdicts_cid AS cid, dataset_id FROM uploads"),
    (
        "account",
        "contributor",
        "contributor",
        "SELECT verdicts_cid AS cid, contributor FROM uploads",
    ),
]


def upgrade() -> None:
    op.create_table(
        "blob_refs",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("cid", sa.String(length=128), nullable=False),
        sa.Column("scope", sa.String(length=16), nullable=False),
        sa.Column("key", sa.String(length=80), nullable=False),
        sa.Column("account", sa.String(length=42), nullable=True),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("cid", "scope", "key"),
    )
    with op.batch_alter_table("blob_refs", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_blob_refs_cid"), ["cid"], unique=False)
        batch_op.create_index(batch_op.f("ix_blob_refs_account"), ["account"], unique=False)
    now = time.time()
    for scope, key, account, source in BACKFILL:
        op.execute(
            sa.text(
                "INSERT INTO blob_refs (cid, scope, key, account, size, created_at) "
                f"SELECT DISTINCT src.cid, '{scope}', CAST({key} AS VARCHAR(80)), {account}, 0, "
                f"{now} FROM ({source}) AS src WHERE src.cid IS NOT NULL AND NOT EXISTS "
                "(SELECT 1 FROM blob_refs r WHERE r.cid = src.cid "
                f"AND r.scope = '{scope}' AND r.key = CAST({key} AS VARCHAR(80)))"
            )
        )


def downgrade() -> None:
    op.drop_table("blob_refs")
