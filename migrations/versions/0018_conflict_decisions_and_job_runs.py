"""identity conflicts resolved with a decision; the record of background job runs

Conflicts keep the identifier that would have merged the two customers (``identifier_id``, no
foreign key, like the rest of the table), and their resolution: the decision, who made it, a note
and what it did. Conflicts resolved before decisions existed only had ``resolved_at`` set, which
changed nothing in the graph: they become ``keep``.

``job_runs`` has one row per run of a background job (start, end, outcome, error, result), and
``job_run_merchants`` the part of a run that concerned one merchant, which is what a merchant's key
is shown.

Revision ID: 0018
Revises: 0016
Create Date: 2026-12-07
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0018"
down_revision: str | None = "0016"
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


def downgrade() -> None:
    with op.batch_alter_table("identity_conflicts") as batch:
        for column in ("outcome", "note", "resolved_by", "decision", "identifier_type", "identifier_id"):
            batch.drop_column(column)
