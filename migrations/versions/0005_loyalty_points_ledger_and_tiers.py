"""loyalty: programme, points accounts, operations, lots, ledger entries, tier assignments

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-24
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "loyalty_programmes",
        sa.Column("tenant_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("config", sa.JSON(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["tenant_id"], ["merchants.id"], name=op.f("fk_loyalty_programmes_tenant_id_merchants"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("tenant_id", name=op.f("pk_loyalty_programmes")),
    )
    op.create_table(
        "points_accounts",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("tenant_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("profile_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("balance", sa.BigInteger(), nullable=False),
        sa.Column("debt", sa.BigInteger(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("debt >= 0", name=op.f("ck_points_accounts_debt")),
        sa.ForeignKeyConstraint(["profile_id"], ["profiles.id"], name=op.f("fk_points_accounts_profile_id_profiles")),
        sa.ForeignKeyConstraint(
            ["tenant_id"], ["merchants.id"], name=op.f("fk_points_accounts_tenant_id_merchants"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_points_accounts")),
        sa.UniqueConstraint("tenant_id", "profile_id", name=op.f("uq_points_accounts_tenant_id_profile_id")),
    )
    op.create_table(
        "points_operations",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("tenant_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("idempotency_key", sa.String(length=128), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("profile_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True),
        sa.Column("request", sa.JSON(), nullable=False),
        sa.Column("points", sa.BigInteger(), nullable=False),
        sa.Column("spend_fen", sa.BigInteger(), nullable=False),
        sa.Column("order_no", sa.String(length=64), nullable=True),
        sa.Column("reason", sa.String(length=200), nullable=True),
        sa.Column("operator", sa.String(length=100), nullable=True),
        sa.Column("outcome", sa.JSON(), nullable=False),
        sa.Column("hold_status", sa.String(length=16), nullable=True),
        sa.Column("hold_expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "hold_status IS NULL OR hold_status IN ('held', 'confirmed', 'cancelled')",
            name=op.f("ck_points_operations_hold_status"),
        ),
        sa.ForeignKeyConstraint(["profile_id"], ["profiles.id"], name=op.f("fk_points_operations_profile_id_profiles")),
        sa.ForeignKeyConstraint(
            ["tenant_id"], ["merchants.id"], name=op.f("fk_points_operations_tenant_id_merchants"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_points_operations")),
        sa.UniqueConstraint(
            "tenant_id", "idempotency_key", name=op.f("uq_points_operations_tenant_id_idempotency_key")
        ),
    )
    with op.batch_alter_table("points_operations", schema=None) as batch_op:
        batch_op.create_index(
            "ix_points_operations_order",
            ["tenant_id", "order_no"],
            unique=False,
            postgresql_where=sa.text("order_no IS NOT NULL"),
            sqlite_where=sa.text("order_no IS NOT NULL"),
        )
        batch_op.create_index("ix_points_operations_profile", ["profile_id", "created_at"], unique=False)

    op.create_table(
        "tier_assignments",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("tenant_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("profile_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("tier_code", sa.String(length=40), nullable=False),
        sa.Column("previous_code", sa.String(length=40), nullable=True),
        sa.Column("reason", sa.String(length=20), nullable=False),
        sa.Column("detail", sa.String(length=200), nullable=True),
        sa.Column("operator", sa.String(length=100), nullable=True),
        sa.Column("manual_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("downgrade_due_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["profile_id"], ["profiles.id"], name=op.f("fk_tier_assignments_profile_id_profiles")),
        sa.ForeignKeyConstraint(
            ["tenant_id"], ["merchants.id"], name=op.f("fk_tier_assignments_tenant_id_merchants"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_tier_assignments")),
    )
    with op.batch_alter_table("tier_assignments", schema=None) as batch_op:
        batch_op.create_index("ix_tier_assignments_profile", ["profile_id", "id"], unique=False)

    op.create_table(
        "points_lots",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("tenant_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("account_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("operation_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("amount", sa.BigInteger(), nullable=False),
        sa.Column("remaining", sa.BigInteger(), nullable=False),
        sa.Column("available_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("amount > 0", name=op.f("ck_points_lots_amount_positive")),
        sa.CheckConstraint("remaining >= 0 AND remaining <= amount", name=op.f("ck_points_lots_remaining_in_range")),
        sa.ForeignKeyConstraint(
            ["account_id"], ["points_accounts.id"], name=op.f("fk_points_lots_account_id_points_accounts")
        ),
        sa.ForeignKeyConstraint(
            ["operation_id"], ["points_operations.id"], name=op.f("fk_points_lots_operation_id_points_operations")
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id"], ["merchants.id"], name=op.f("fk_points_lots_tenant_id_merchants"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_points_lots")),
    )
    with op.batch_alter_table("points_lots", schema=None) as batch_op:
        batch_op.create_index("ix_points_lots_account", ["account_id", "expires_at"], unique=False)
        batch_op.create_index("ix_points_lots_expiry", ["tenant_id", "expires_at"], unique=False)

    op.create_table(
        "points_entries",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("tenant_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("account_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("operation_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("lot_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("amount", sa.BigInteger(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["account_id"], ["points_accounts.id"], name=op.f("fk_points_entries_account_id_points_accounts")
        ),
        sa.ForeignKeyConstraint(["lot_id"], ["points_lots.id"], name=op.f("fk_points_entries_lot_id_points_lots")),
        sa.ForeignKeyConstraint(
            ["operation_id"], ["points_operations.id"], name=op.f("fk_points_entries_operation_id_points_operations")
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id"], ["merchants.id"], name=op.f("fk_points_entries_tenant_id_merchants"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_points_entries")),
    )
    with op.batch_alter_table("points_entries", schema=None) as batch_op:
        batch_op.create_index("ix_points_entries_account", ["account_id", "id"], unique=False)
        batch_op.create_index("ix_points_entries_operation", ["operation_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("points_entries", schema=None) as batch_op:
        batch_op.drop_index("ix_points_entries_operation")
        batch_op.drop_index("ix_points_entries_account")

    op.drop_table("points_entries")
    with op.batch_alter_table("points_lots", schema=None) as batch_op:
        batch_op.drop_index("ix_points_lots_expiry")
        batch_op.drop_index("ix_points_lots_account")

    op.drop_table("points_lots")
    with op.batch_alter_table("tier_assignments", schema=None) as batch_op:
        batch_op.drop_index("ix_tier_assignments_profile")

    op.drop_table("tier_assignments")
    with op.batch_alter_table("points_operations", schema=None) as batch_op:
        batch_op.drop_index("ix_points_operations_profile")
        batch_op.drop_index("ix_points_operations_order")

    op.drop_table("points_operations")
    op.drop_table("points_accounts")
    op.drop_table("loyalty_programmes")
