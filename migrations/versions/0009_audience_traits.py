"""audience: trait settings per merchant and the computed customer traits (copied from the warehouse)

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-24
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TENANT = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "audience_settings",
        sa.Column("tenant_id", TENANT, nullable=False),
        sa.Column("config", sa.JSON(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["tenant_id"], ["merchants.id"], name=op.f("fk_audience_settings_tenant_id_merchants"),
                                ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("tenant_id", name=op.f("pk_audience_settings")),
    )
    op.create_table(
        "customer_traits",
        sa.Column("tenant_id", TENANT, nullable=False),
        sa.Column("customer_id", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("computed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("first_order_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_order_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("recency_days", sa.Integer(), nullable=True),
        sa.Column("frequency", sa.Integer(), nullable=True),
        sa.Column("monetary_fen", sa.BigInteger(), nullable=True),
        sa.Column("r_score", sa.Integer(), nullable=True),
        sa.Column("f_score", sa.Integer(), nullable=True),
        sa.Column("m_score", sa.Integer(), nullable=True),
        sa.Column("rfm_group", sa.String(length=24), nullable=True),
        sa.Column("lifecycle_stage", sa.String(length=16), nullable=False),
        sa.Column("clv_p_alive", sa.Double(), nullable=True),
        sa.Column("clv_expected_purchases", sa.Double(), nullable=True),
        sa.Column("clv_expected_value_fen", sa.BigInteger(), nullable=True),
        sa.ForeignKeyConstraint(["tenant_id"], ["merchants.id"], name=op.f("fk_customer_traits_tenant_id_merchants"),
                                ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("tenant_id", "customer_id", name=op.f("pk_customer_traits")),
    )


def downgrade() -> None:
    op.drop_table("customer_traits")
    op.drop_table("audience_settings")
