"""identity conflicts resolved with a decision; the record of background job runs

Conflicts keep the identifier that would have merged the two customers (``identifier_id``, no
foreign key, like the rest of the table), and their resolution: the decision, who made it, a note
and what it did. Conflicts resolved before decisions existed only had ``resolved_at`` set, which
changed nothing in the graph: they become ``keep``.

``job_runs`` has one row per run of a background job (start, end, outcome, error, result), and
``job_run_merchants`` the part of a run that concerned one merchant, which is what a merchant's key
is shown.

Revision ID: 0018
Revises: 0019
Create Date: 2026-12-07
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0018"
down_revision: str | None = "0019"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    with op.batch_alter_table("identity_conflicts") as batch:
        batch.add_column(sa.Column("identifier_id", BIG_ID, nullable=True))
        batch.add_column(sa.Column("identifier_type", sa.String(length=40), nullable=True))
        batch.add_column(sa.Column("decision", sa.String(length=16), nullable=True))
        batch.add_column(sa.Column("resolved_by", sa.String(length=120), nullable=True))
        batch.add_column(sa.Column("note", sa.String(length=500), nullable=True))
        batch.add_column(sa.Column("outcome", sa.JSON(), nullable=True))
    op.execute("UPDATE identity_conflicts SET decision = 'keep' WHERE resolved_at IS NOT NULL")

    op.create_table(
        "job_runs",
        sa.Column("id", BIG_ID, nullable=False),
        sa.Column("job", sa.String(length=64), nullable=False),
        sa.Column("trigger", sa.String(length=16), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("outcome", sa.String(length=16), nullable=False),
        sa.Column("error", sa.String(length=2000), nullable=True),
        sa.Column("result", sa.JSON(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_job_runs")),
    )
    op.create_index("ix_job_runs_job_id", "job_runs", ["job", "id"], unique=False)
    op.create_table(
        "job_run_merchants",
        sa.Column("id", BIG_ID, nullable=False),
        sa.Column("run_id", BIG_ID, nullable=False),
        sa.Column("tenant_id", BIG_ID, nullable=False),
        sa.Column("outcome", sa.String(length=16), nullable=False),
        sa.Column("error", sa.String(length=2000), nullable=True),
        sa.Column("result", sa.JSON(), nullable=True),
        sa.ForeignKeyConstraint(["run_id"], ["job_runs.id"], name=op.f("fk_job_run_merchants_run_id_job_runs"),
                                ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["tenant_id"], ["merchants.id"],
                                name=op.f("fk_job_run_merchants_tenant_id_merchants"), ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_job_run_merchants")),
        sa.UniqueConstraint("run_id", "tenant_id", name=op.f("uq_job_run_merchants_run_id_tenant_id")),
    )
    op.create_index("ix_job_run_merchants_tenant_run", "job_run_merchants", ["tenant_id", "run_id"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_job_run_merchants_tenant_run", table_name="job_run_merchants")
    op.drop_table("job_run_merchants")
    op.drop_index("ix_job_runs_job_id", table_name="job_runs")
    op.drop_table("job_runs")
    with op.batch_alter_table("identity_conflicts") as batch:
        for column in ("outcome", "note", "resolved_by", "decision", "identifier_type", "identifier_id"):
            batch.drop_column(column)
