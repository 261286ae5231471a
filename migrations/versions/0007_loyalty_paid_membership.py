"""loyalty: paid membership plans, memberships and terms, reward accruals and certificates, actions

Revision ID: 0007
Revises: 0005
Create Date: 2026-11-24
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "membership_plans",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("tenant_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("code", sa.String(length=40), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("sku", sa.String(length=64), nullable=False),
        sa.Column("fee_fen", sa.BigInteger(), nullable=False),
        sa.Column("term_months", sa.Integer(), nullable=False),
        sa.Column("grace_days", sa.Integer(), nullable=False),
        sa.Column("reward_bp", sa.Integer(), nullable=False),
        sa.Column("reward_cap_fen", sa.BigInteger(), nullable=False),
        sa.Column("member_price", sa.Boolean(), nullable=False),
        sa.Column("points_multiplier", sa.String(length=12), nullable=False),
        sa.Column("refund_full_days", sa.Integer(), nullable=True),
        sa.Column("refund_after", sa.String(length=16), nullable=False),
        sa.Column("rank", sa.Integer(), nullable=False),
        sa.Column("merge_policy", sa.String(length=16), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("merge_policy IN ('extend', 'keep')", name=op.f("ck_membership_plans_merge_policy")),
        sa.CheckConstraint("refund_after IN ('prorated', 'none')", name=op.f("ck_membership_plans_refund_after")),
        sa.CheckConstraint("status IN ('active', 'retired')", name=op.f("ck_membership_plans_status")),
        sa.CheckConstraint("fee_fen >= 0 AND reward_cap_fen >= 0", name=op.f("ck_membership_plans_money_not_negative")),
        sa.CheckConstraint("reward_bp >= 0 AND reward_bp <= 10000", name=op.f("ck_membership_plans_reward_bp")),
        sa.CheckConstraint("term_months > 0 AND grace_days >= 0", name=op.f("ck_membership_plans_term")),
        sa.ForeignKeyConstraint(
            ["tenant_id"], ["merchants.id"], name=op.f("fk_membership_plans_tenant_id_merchants"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_membership_plans")),
        sa.UniqueConstraint("tenant_id", "code", name=op.f("uq_membership_plans_tenant_id_code")),
        sa.UniqueConstraint("tenant_id", "sku", name=op.f("uq_membership_plans_tenant_id_sku")),
    )
    op.create_table(
        "memberships",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("tenant_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("profile_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("plan_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("joined_on", sa.Date(), nullable=False),
        sa.Column("anchor_day", sa.Integer(), nullable=False),
        sa.Column("auto_renew", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["plan_id"], ["membership_plans.id"], name=op.f("fk_memberships_plan_id_membership_plans")
        ),
        sa.ForeignKeyConstraint(["profile_id"], ["profiles.id"], name=op.f("fk_memberships_profile_id_profiles")),
        sa.ForeignKeyConstraint(
            ["tenant_id"], ["merchants.id"], name=op.f("fk_memberships_tenant_id_merchants"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_memberships")),
    )
    with op.batch_alter_table("memberships", schema=None) as batch_op:
        batch_op.create_index("ix_memberships_profile", ["tenant_id", "profile_id"], unique=False)

    op.create_table(
        "membership_periods",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("tenant_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("membership_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("profile_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("plan_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("previous_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True),
        sa.Column("starts_on", sa.Date(), nullable=False),
        sa.Column("ends_on", sa.Date(), nullable=False),
        sa.Column("grace_until", sa.Date(), nullable=False),
        sa.Column("fee_fen", sa.BigInteger(), nullable=False),
        sa.Column("charged_fen", sa.BigInteger(), nullable=False),
        sa.Column("carried_fen", sa.BigInteger(), nullable=False),
        sa.Column("refunded_fen", sa.BigInteger(), nullable=False),
        sa.Column("payment", sa.String(length=16), nullable=False),
        sa.Column("order_no", sa.String(length=64), nullable=True),
        sa.Column("source_key", sa.String(length=200), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("closed_on", sa.Date(), nullable=True),
        sa.Column("extension_days", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("kind IN ('join', 'renew', 'upgrade')", name=op.f("ck_membership_periods_kind")),
        sa.CheckConstraint(
            "status IN ('active', 'grace', 'renewed', 'lapsed', 'refunded', 'upgraded', 'merged')",
            name=op.f("ck_membership_periods_status"),
        ),
        sa.CheckConstraint(
            "charged_fen >= 0 AND carried_fen >= 0 AND refunded_fen >= 0 AND fee_fen = charged_fen + carried_fen",
            name=op.f("ck_membership_periods_money"),
        ),
        sa.CheckConstraint("starts_on < ends_on AND ends_on <= grace_until", name=op.f("ck_membership_periods_dates")),
        sa.ForeignKeyConstraint(
            ["membership_id"], ["memberships.id"], name=op.f("fk_membership_periods_membership_id_memberships")
        ),
        sa.ForeignKeyConstraint(
            ["plan_id"], ["membership_plans.id"], name=op.f("fk_membership_periods_plan_id_membership_plans")
        ),
        sa.ForeignKeyConstraint(
            ["previous_id"],
            ["membership_periods.id"],
            name=op.f("fk_membership_periods_previous_id_membership_periods"),
        ),
        sa.ForeignKeyConstraint(
            ["profile_id"], ["profiles.id"], name=op.f("fk_membership_periods_profile_id_profiles")
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id"], ["merchants.id"], name=op.f("fk_membership_periods_tenant_id_merchants"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_membership_periods")),
        sa.UniqueConstraint("membership_id", "seq", name=op.f("uq_membership_periods_membership_id_seq")),
        sa.UniqueConstraint("tenant_id", "source_key", name=op.f("uq_membership_periods_tenant_id_source_key")),
    )
    with op.batch_alter_table("membership_periods", schema=None) as batch_op:
        batch_op.create_index("ix_membership_periods_ends", ["tenant_id", "ends_on"], unique=False)
        batch_op.create_index("ix_membership_periods_profile", ["tenant_id", "profile_id"], unique=False)

    op.create_table(
        "membership_actions",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("tenant_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("membership_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True),
        sa.Column("period_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True),
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("idempotency_key", sa.String(length=200), nullable=True),
        sa.Column("request", sa.JSON(), nullable=False),
        sa.Column("outcome", sa.JSON(), nullable=False),
        sa.Column("merge_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True),
        sa.Column("operator", sa.String(length=100), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["membership_id"], ["memberships.id"], name=op.f("fk_membership_actions_membership_id_memberships")
        ),
        sa.ForeignKeyConstraint(
            ["period_id"], ["membership_periods.id"], name=op.f("fk_membership_actions_period_id_membership_periods")
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id"], ["merchants.id"], name=op.f("fk_membership_actions_tenant_id_merchants"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_membership_actions")),
        sa.UniqueConstraint(
            "tenant_id", "idempotency_key", name=op.f("uq_membership_actions_tenant_id_idempotency_key")
        ),
    )
    with op.batch_alter_table("membership_actions", schema=None) as batch_op:
        batch_op.create_index("ix_membership_actions_membership", ["membership_id", "id"], unique=False)
        batch_op.create_index("ix_membership_actions_merge", ["tenant_id", "merge_id"], unique=False)

    op.create_table(
        "membership_certificates",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("tenant_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("code", sa.String(length=32), nullable=False),
        sa.Column("membership_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("period_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("issued_in_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("profile_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("amount_fen", sa.BigInteger(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("issued_on", sa.Date(), nullable=False),
        sa.Column("redeemed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("redeemed_order_no", sa.String(length=64), nullable=True),
        sa.Column("clawback_owed_fen", sa.BigInteger(), nullable=False),
        sa.Column("void_reason", sa.String(length=200), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("status IN ('issued', 'redeemed', 'void')", name=op.f("ck_membership_certificates_status")),
        sa.CheckConstraint(
            "amount_fen > 0 AND clawback_owed_fen >= 0 AND clawback_owed_fen <= amount_fen",
            name=op.f("ck_membership_certificates_money"),
        ),
        sa.ForeignKeyConstraint(
            ["issued_in_id"],
            ["membership_periods.id"],
            name=op.f("fk_membership_certificates_issued_in_id_membership_periods"),
        ),
        sa.ForeignKeyConstraint(
            ["membership_id"], ["memberships.id"], name=op.f("fk_membership_certificates_membership_id_memberships")
        ),
        sa.ForeignKeyConstraint(
            ["period_id"],
            ["membership_periods.id"],
            name=op.f("fk_membership_certificates_period_id_membership_periods"),
        ),
        sa.ForeignKeyConstraint(
            ["profile_id"], ["profiles.id"], name=op.f("fk_membership_certificates_profile_id_profiles")
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id"],
            ["merchants.id"],
            name=op.f("fk_membership_certificates_tenant_id_merchants"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_membership_certificates")),
        sa.UniqueConstraint("tenant_id", "code", name=op.f("uq_membership_certificates_tenant_id_code")),
        sa.UniqueConstraint("tenant_id", "period_id", name=op.f("uq_membership_certificates_tenant_id_period_id")),
    )
    with op.batch_alter_table("membership_certificates", schema=None) as batch_op:
        batch_op.create_index("ix_membership_certificates_profile", ["tenant_id", "profile_id"], unique=False)

    op.create_table(
        "membership_reward_accruals",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("tenant_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("period_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("profile_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("order_no", sa.String(length=64), nullable=False),
        sa.Column("source_key", sa.String(length=200), nullable=False),
        sa.Column("eligible_fen", sa.BigInteger(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["period_id"],
            ["membership_periods.id"],
            name=op.f("fk_membership_reward_accruals_period_id_membership_periods"),
        ),
        sa.ForeignKeyConstraint(
            ["profile_id"], ["profiles.id"], name=op.f("fk_membership_reward_accruals_profile_id_profiles")
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id"],
            ["merchants.id"],
            name=op.f("fk_membership_reward_accruals_tenant_id_merchants"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_membership_reward_accruals")),
        sa.UniqueConstraint("tenant_id", "source_key", name=op.f("uq_membership_reward_accruals_tenant_id_source_key")),
    )
    with op.batch_alter_table("membership_reward_accruals", schema=None) as batch_op:
        batch_op.create_index("ix_membership_reward_accruals_order", ["tenant_id", "order_no"], unique=False)
        batch_op.create_index("ix_membership_reward_accruals_period", ["period_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("membership_reward_accruals", schema=None) as batch_op:
        batch_op.drop_index("ix_membership_reward_accruals_period")
        batch_op.drop_index("ix_membership_reward_accruals_order")

    op.drop_table("membership_reward_accruals")
    with op.batch_alter_table("membership_certificates", schema=None) as batch_op:
        batch_op.drop_index("ix_membership_certificates_profile")

    op.drop_table("membership_certificates")
    with op.batch_alter_table("membership_actions", schema=None) as batch_op:
        batch_op.drop_index("ix_membership_actions_merge")
        batch_op.drop_index("ix_membership_actions_membership")

    op.drop_table("membership_actions")
    with op.batch_alter_table("membership_periods", schema=None) as batch_op:
        batch_op.drop_index("ix_membership_periods_profile")
        batch_op.drop_index("ix_membership_periods_ends")

    op.drop_table("membership_periods")
    with op.batch_alter_table("memberships", schema=None) as batch_op:
        batch_op.drop_index("ix_memberships_profile")

    op.drop_table("memberships")
    op.drop_table("membership_plans")
