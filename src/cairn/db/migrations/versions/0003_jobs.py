"""compute domain: training jobs and accepted work reports

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "jobs",
        sa.Column("job_id", sa.String(length=66), nullable=False),
        sa.Column("builder", sa.String(length=42), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("method", sa.String(length=16), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("recipe", sa.JSON(), nullable=False),
        sa.Column("recipe_cid", sa.String(length=128), nullable=False),
        sa.Column("base_asset", sa.BigInteger(), nullable=False),
        sa.Column("datasets", sa.JSON(), nullable=False),
        sa.Column("budget", sa.String(length=80), nullable=False),
        sa.Column("escrowed", sa.Integer(), nullable=False),
        sa.Column("round", sa.Integer(), nullable=False),
        sa.Column("rounds", sa.Integer(), nullable=False),
        sa.Column("run_id", sa.String(length=20), nullable=True),
        sa.Column("events_offset", sa.BigInteger(), nullable=False),
        sa.Column("history", sa.JSON(), nullable=False),
        sa.Column("metrics", sa.JSON(), nullable=False),
        sa.Column("providers", sa.JSON(), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("model_asset", sa.BigInteger(), nullable=True),
        sa.Column("model_cid", sa.String(length=128), nullable=True),
        sa.Column("shares_cid", sa.String(length=128), nullable=True),
        sa.Column("reports_root", sa.String(length=66), nullable=True),
        sa.Column("payouts", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.Column("updated_at", sa.Float(), nullable=False),
        sa.Column("finished_at", sa.Float(), nullable=True),
        sa.PrimaryKeyConstraint("job_id"),
    )
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_jobs_builder"), ["builder"], unique=False)
        batch_op.create_index(batch_op.f("ix_jobs_status"), ["status"], unique=False)

    op.create_table(
        "work_reports",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("job_id", sa.String(length=66), nullable=False),
        sa.Column("round", sa.Integer(), nullable=False),
        sa.Column("account", sa.String(length=42), nullable=False),
        sa.Column("samples", sa.BigInteger(), nullable=False),
        sa.Column("leaf", sa.String(length=66), nullable=False),
        sa.Column("report", sa.JSON(), nullable=False),
        sa.Column("signature", sa.String(length=140), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("job_id", "round", "account"),
    )
    with op.batch_alter_table("work_reports", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_work_reports_job_id"), ["job_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_work_reports_account"), ["account"], unique=False)


def downgrade() -> None:
    op.drop_table("work_reports")
    op.drop_table("jobs")
