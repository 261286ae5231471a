"""audience: segments (saved rules) and their snapshots (members live in the warehouse)

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-24
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "segments",
        sa.Column("id", ID, nullable=False),
        sa.Column("tenant_id", ID, nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("description", sa.String(length=1000), nullable=True),
        sa.Column("rule", sa.JSON(), nullable=False),
        sa.Column("rule_version", sa.Integer(), nullable=False),
        sa.Column("created_by", sa.String(length=100), nullable=True),
        sa.Column("updated_by", sa.String(length=100), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("archived_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["tenant_id"], ["merchants.id"], name=op.f("fk_segments_tenant_id_merchants"),
                                ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_segments")),
    )
    with op.batch_alter_table("segments", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_segments_tenant_id"), ["tenant_id"], unique=False)
        batch_op.create_index("uq_segments_tenant_live_name", ["tenant_id", "name"], unique=True,
                              postgresql_where=sa.text("archived_at IS NULL"),
                              sqlite_where=sa.text("archived_at IS NULL"))

    op.create_table(
        "segment_snapshots",
        sa.Column("id", ID, nullable=False),
        sa.Column("tenant_id", ID, nullable=False),
        sa.Column("segment_id", ID, nullable=False),
        sa.Column("idempotency_key", sa.String(length=100), nullable=True),
        sa.Column("rule", sa.JSON(), nullable=False),
        sa.Column("rule_version", sa.Integer(), nullable=False),
        sa.Column("as_of", sa.DateTime(timezone=True), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("taken_by", sa.String(length=100), nullable=True),
        sa.Column("taken_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["segment_id"], ["segments.id"],
                                name=op.f("fk_segment_snapshots_segment_id_segments"), ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["tenant_id"], ["merchants.id"],
                                name=op.f("fk_segment_snapshots_tenant_id_merchants"), ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_segment_snapshots")),
        sa.UniqueConstraint("segment_id", "idempotency_key",
                            name=op.f("uq_segment_snapshots_segment_id_idempotency_key")),
        sqlite_autoincrement=True,
    )
    with op.batch_alter_table("segment_snapshots", schema=None) as batch_op:
        batch_op.create_index("ix_segment_snapshots_segment_taken", ["segment_id", "taken_at"], unique=False)


def downgrade() -> None:
    op.drop_table("segment_snapshots")
    op.drop_table("segments")
