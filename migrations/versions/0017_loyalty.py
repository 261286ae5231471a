"""loyalty: every saved programme version

- ``loyalty_programme_versions``: each saved programme document, numbered per merchant, with who
  saved it; a merchant's programme stored before this migration becomes its version 1.

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-08
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0017"
down_revision: str | None = "0016"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "loyalty_programme_versions",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("tenant_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("version", sa.BigInteger(), nullable=False),
        sa.Column("config", sa.JSON(), nullable=False),
        sa.Column("change", sa.String(length=16), nullable=False),
        sa.Column("rolled_back_to", sa.BigInteger(), nullable=True),
        sa.Column("saved_by", sa.String(length=120), nullable=False),
        sa.Column("saved_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["tenant_id"], ["merchants.id"],
                                name=op.f("fk_loyalty_programme_versions_tenant_id_merchants"), ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_loyalty_programme_versions")),
        sa.UniqueConstraint("tenant_id", "version", name=op.f("uq_loyalty_programme_versions_tenant_id_version")),
    )
    op.execute("INSERT INTO loyalty_programme_versions (tenant_id, version, config, change, saved_by, saved_at) "
               "SELECT tenant_id, 1, config, 'migrated', 'system', updated_at FROM loyalty_programmes")


def downgrade() -> None:
    op.drop_table("loyalty_programme_versions")
