"""loyalty: coupon templates, issues, coupons, redemptions and order conflicts

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-24
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "coupon_conflicts",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("tenant_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("order_no", sa.String(length=64), nullable=False),
        sa.Column("code", sa.String(length=64), nullable=False),
        sa.Column("reason", sa.String(length=40), nullable=False),
        sa.Column("message", sa.String(length=300), nullable=False),
        sa.Column("discount_fen", sa.BigInteger(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["tenant_id"], ["merchants.id"], name=op.f("fk_coupon_conflicts_tenant_id_merchants"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_coupon_conflicts")),
        sa.UniqueConstraint("tenant_id", "order_no", "code", name=op.f("uq_coupon_conflicts_tenant_id_order_no_code")),
    )
    op.create_table(
        "coupon_templates",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("tenant_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("code", sa.String(length=40), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("amount_off_fen", sa.BigInteger(), nullable=True),
        sa.Column("percent_off", sa.Integer(), nullable=True),
        sa.Column("max_discount_fen", sa.BigInteger(), nullable=True),
        sa.Column("threshold_fen", sa.BigInteger(), nullable=True),
        sa.Column("per_threshold", sa.Boolean(), nullable=False),
        sa.Column("gift_sku", sa.String(length=64), nullable=True),
        sa.Column("min_spend_fen", sa.BigInteger(), nullable=False),
        sa.Column("scope", sa.JSON(), nullable=False),
        sa.Column("valid_from", sa.DateTime(timezone=True), nullable=True),
        sa.Column("valid_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("valid_days", sa.Integer(), nullable=True),
        sa.Column("per_customer_limit", sa.Integer(), nullable=True),
        sa.Column("stock", sa.BigInteger(), nullable=True),
        sa.Column("issued", sa.BigInteger(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "kind IN ('amount_off', 'percent_off', 'spend_save', 'free_gift')", name=op.f("ck_coupon_templates_kind")
        ),
        sa.CheckConstraint("status IN ('active', 'paused', 'ended')", name=op.f("ck_coupon_templates_status")),
        sa.CheckConstraint(
            "issued >= 0 AND (stock IS NULL OR issued <= stock)", name=op.f("ck_coupon_templates_stock_not_oversold")
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id"], ["merchants.id"], name=op.f("fk_coupon_templates_tenant_id_merchants"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_coupon_templates")),
        sa.UniqueConstraint("tenant_id", "code", name=op.f("uq_coupon_templates_tenant_id_code")),
    )
    op.create_table(
        "coupon_issues",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("tenant_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("idempotency_key", sa.String(length=128), nullable=False),
        sa.Column("template_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("request", sa.JSON(), nullable=False),
        sa.Column("refused", sa.JSON(), nullable=False),
        sa.Column("count", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["template_id"], ["coupon_templates.id"], name=op.f("fk_coupon_issues_template_id_coupon_templates")
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id"], ["merchants.id"], name=op.f("fk_coupon_issues_tenant_id_merchants"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_coupon_issues")),
        sa.UniqueConstraint("tenant_id", "idempotency_key", name=op.f("uq_coupon_issues_tenant_id_idempotency_key")),
    )
    op.create_table(
        "coupons",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("tenant_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("template_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("issue_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("code", sa.String(length=32), nullable=False),
        sa.Column("profile_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("valid_from", sa.DateTime(timezone=True), nullable=False),
        sa.Column("valid_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("order_no", sa.String(length=64), nullable=True),
        sa.Column("discount_fen", sa.BigInteger(), nullable=True),
        sa.Column("redeemed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("void_reason", sa.String(length=200), nullable=True),
        sa.Column("issued_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("status IN ('issued', 'redeemed', 'expired', 'void')", name=op.f("ck_coupons_status")),
        sa.ForeignKeyConstraint(["issue_id"], ["coupon_issues.id"], name=op.f("fk_coupons_issue_id_coupon_issues")),
        sa.ForeignKeyConstraint(["profile_id"], ["profiles.id"], name=op.f("fk_coupons_profile_id_profiles")),
        sa.ForeignKeyConstraint(
            ["template_id"], ["coupon_templates.id"], name=op.f("fk_coupons_template_id_coupon_templates")
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id"], ["merchants.id"], name=op.f("fk_coupons_tenant_id_merchants"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_coupons")),
        sa.UniqueConstraint("tenant_id", "code", name=op.f("uq_coupons_tenant_id_code")),
    )
    with op.batch_alter_table("coupons", schema=None) as batch_op:
        batch_op.create_index("ix_coupons_issue", ["issue_id"], unique=False)
        batch_op.create_index("ix_coupons_profile", ["profile_id", "template_id"], unique=False)

    op.create_table(
        "coupon_redemptions",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("tenant_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("coupon_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("order_no", sa.String(length=64), nullable=False),
        sa.Column("profile_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True),
        sa.Column("discount_fen", sa.BigInteger(), nullable=False),
        sa.Column("source", sa.String(length=16), nullable=False),
        sa.Column("redeemed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("restored_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("restored_by", sa.String(length=64), nullable=True),
        sa.ForeignKeyConstraint(["coupon_id"], ["coupons.id"], name=op.f("fk_coupon_redemptions_coupon_id_coupons")),
        sa.ForeignKeyConstraint(
            ["profile_id"], ["profiles.id"], name=op.f("fk_coupon_redemptions_profile_id_profiles")
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id"], ["merchants.id"], name=op.f("fk_coupon_redemptions_tenant_id_merchants"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_coupon_redemptions")),
        sa.UniqueConstraint(
            "tenant_id", "coupon_id", "order_no", name=op.f("uq_coupon_redemptions_tenant_id_coupon_id_order_no")
        ),
    )
    with op.batch_alter_table("coupon_redemptions", schema=None) as batch_op:
        batch_op.create_index("ix_coupon_redemptions_order", ["tenant_id", "order_no"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("coupon_redemptions", schema=None) as batch_op:
        batch_op.drop_index("ix_coupon_redemptions_order")

    op.drop_table("coupon_redemptions")
    with op.batch_alter_table("coupons", schema=None) as batch_op:
        batch_op.drop_index("ix_coupons_profile")
        batch_op.drop_index("ix_coupons_issue")

    op.drop_table("coupons")
    op.drop_table("coupon_issues")
    op.drop_table("coupon_templates")
    op.drop_table("coupon_conflicts")
