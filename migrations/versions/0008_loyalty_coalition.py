"""loyalty: coalition points (coalitions, members and terms, cards and their links and merges,
operations, lots, entries) and settlement periods with their statement lines

Revision ID: 0008
Revises: 0005
Create Date: 2026-11-24
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "coalitions",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("code", sa.String(length=40), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("operator_tenant_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("timezone", sa.String(length=64), nullable=False),
        sa.Column("expiry_days", sa.Integer(), nullable=True),
        sa.Column("closed_through", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["operator_tenant_id"],
            ["merchants.id"],
            name=op.f("fk_coalitions_operator_tenant_id_merchants"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_coalitions")),
        sa.UniqueConstraint("code", name=op.f("uq_coalitions_code")),
    )
    op.create_table(
        "coalition_cards",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("coalition_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("card_no", sa.String(length=32), nullable=False),
        sa.Column("merged_into_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["coalition_id"],
            ["coalitions.id"],
            name=op.f("fk_coalition_cards_coalition_id_coalitions"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["merged_into_id"], ["coalition_cards.id"], name=op.f("fk_coalition_cards_merged_into_id_coalition_cards")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_coalition_cards")),
        sa.UniqueConstraint("coalition_id", "card_no", name=op.f("uq_coalition_cards_coalition_id_card_no")),
    )
    with op.batch_alter_table("coalition_cards", schema=None) as batch_op:
        batch_op.create_index("ix_coalition_cards_merged", ["merged_into_id"], unique=False)

    op.create_table(
        "coalition_members",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("coalition_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("tenant_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("role", sa.String(length=16), nullable=False),
        sa.Column("issue_price_milli_fen", sa.Integer(), nullable=False),
        sa.Column("redemption_value_milli_fen", sa.Integer(), nullable=False),
        sa.Column("funding", sa.String(length=16), nullable=False),
        sa.Column("prepaid_balance", sa.BigInteger(), nullable=False),
        sa.Column("joined_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("left_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("funding IN ('prepaid', 'postpaid')", name=op.f("ck_coalition_members_funding")),
        sa.CheckConstraint("role IN ('partner', 'issuer', 'redeemer')", name=op.f("ck_coalition_members_role")),
        sa.CheckConstraint(
            "issue_price_milli_fen >= 0 AND redemption_value_milli_fen >= 0", name=op.f("ck_coalition_members_prices")
        ),
        sa.CheckConstraint("prepaid_balance >= 0", name=op.f("ck_coalition_members_prepaid_balance")),
        sa.ForeignKeyConstraint(
            ["coalition_id"],
            ["coalitions.id"],
            name=op.f("fk_coalition_members_coalition_id_coalitions"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id"], ["merchants.id"], name=op.f("fk_coalition_members_tenant_id_merchants"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_coalition_members")),
        sa.UniqueConstraint("coalition_id", "tenant_id", name=op.f("uq_coalition_members_coalition_id_tenant_id")),
    )
    op.create_table(
        "coalition_periods",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("coalition_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("label", sa.String(length=7), nullable=False),
        sa.Column("starts_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ends_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("closed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("closed_by", sa.String(length=100), nullable=False),
        sa.ForeignKeyConstraint(
            ["coalition_id"],
            ["coalitions.id"],
            name=op.f("fk_coalition_periods_coalition_id_coalitions"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_coalition_periods")),
        sa.UniqueConstraint("coalition_id", "starts_at", name=op.f("uq_coalition_periods_coalition_id_starts_at")),
    )
    op.create_table(
        "coalition_card_links",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("coalition_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("tenant_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("card_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("profile_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("consent_source", sa.String(length=100), nullable=False),
        sa.Column("linked_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["card_id"], ["coalition_cards.id"], name=op.f("fk_coalition_card_links_card_id_coalition_cards")
        ),
        sa.ForeignKeyConstraint(
            ["coalition_id"],
            ["coalitions.id"],
            name=op.f("fk_coalition_card_links_coalition_id_coalitions"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["profile_id"], ["profiles.id"], name=op.f("fk_coalition_card_links_profile_id_profiles")
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id"],
            ["merchants.id"],
            name=op.f("fk_coalition_card_links_tenant_id_merchants"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_coalition_card_links")),
        sa.UniqueConstraint(
            "coalition_id",
            "tenant_id",
            "profile_id",
            name=op.f("uq_coalition_card_links_coalition_id_tenant_id_profile_id"),
        ),
    )
    with op.batch_alter_table("coalition_card_links", schema=None) as batch_op:
        batch_op.create_index("ix_coalition_card_links_card", ["card_id"], unique=False)

    op.create_table(
        "coalition_operations",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("coalition_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("tenant_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("idempotency_key", sa.String(length=128), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("card_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True),
        sa.Column("request", sa.JSON(), nullable=False),
        sa.Column("points", sa.BigInteger(), nullable=False),
        sa.Column("booked_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["card_id"], ["coalition_cards.id"], name=op.f("fk_coalition_operations_card_id_coalition_cards")
        ),
        sa.ForeignKeyConstraint(
            ["coalition_id"],
            ["coalitions.id"],
            name=op.f("fk_coalition_operations_coalition_id_coalitions"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id"],
            ["merchants.id"],
            name=op.f("fk_coalition_operations_tenant_id_merchants"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_coalition_operations")),
        sa.UniqueConstraint(
            "coalition_id",
            "tenant_id",
            "idempotency_key",
            name=op.f("uq_coalition_operations_coalition_id_tenant_id_idempotency_key"),
        ),
    )
    op.create_table(
        "coalition_statement_lines",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("period_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("coalition_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("party", sa.String(length=16), nullable=False),
        sa.Column("tenant_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("points_issued", sa.BigInteger(), nullable=False),
        sa.Column("points_issued_postpaid", sa.BigInteger(), nullable=False),
        sa.Column("points_redeemed", sa.BigInteger(), nullable=False),
        sa.Column("points_expired", sa.BigInteger(), nullable=False),
        sa.Column("points_purchased", sa.BigInteger(), nullable=False),
        sa.Column("issue_owed_fen", sa.BigInteger(), nullable=False),
        sa.Column("purchase_owed_fen", sa.BigInteger(), nullable=False),
        sa.Column("redemption_due_fen", sa.BigInteger(), nullable=False),
        sa.Column("owed_fen", sa.BigInteger(), nullable=False),
        sa.Column("due_fen", sa.BigInteger(), nullable=False),
        sa.Column("net_fen", sa.BigInteger(), nullable=False),
        sa.CheckConstraint("party IN ('merchant', 'operator')", name=op.f("ck_coalition_statement_lines_party")),
        sa.ForeignKeyConstraint(
            ["coalition_id"],
            ["coalitions.id"],
            name=op.f("fk_coalition_statement_lines_coalition_id_coalitions"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["period_id"],
            ["coalition_periods.id"],
            name=op.f("fk_coalition_statement_lines_period_id_coalition_periods"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id"],
            ["merchants.id"],
            name=op.f("fk_coalition_statement_lines_tenant_id_merchants"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_coalition_statement_lines")),
        sa.UniqueConstraint(
            "period_id", "party", "tenant_id", name=op.f("uq_coalition_statement_lines_period_id_party_tenant_id")
        ),
    )
    op.create_table(
        "coalition_card_merges",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("coalition_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("tenant_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("profile_merge_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("survivor_card_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("merged_card_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("moved_card_ids", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("undone_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["coalition_id"],
            ["coalitions.id"],
            name=op.f("fk_coalition_card_merges_coalition_id_coalitions"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["merged_card_id"],
            ["coalition_cards.id"],
            name=op.f("fk_coalition_card_merges_merged_card_id_coalition_cards"),
        ),
        sa.ForeignKeyConstraint(
            ["profile_merge_id"],
            ["profile_merges.id"],
            name=op.f("fk_coalition_card_merges_profile_merge_id_profile_merges"),
        ),
        sa.ForeignKeyConstraint(
            ["survivor_card_id"],
            ["coalition_cards.id"],
            name=op.f("fk_coalition_card_merges_survivor_card_id_coalition_cards"),
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id"],
            ["merchants.id"],
            name=op.f("fk_coalition_card_merges_tenant_id_merchants"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_coalition_card_merges")),
    )
    with op.batch_alter_table("coalition_card_merges", schema=None) as batch_op:
        batch_op.create_index("ix_coalition_card_merges_profile_merge", ["profile_merge_id"], unique=False)

    op.create_table(
        "coalition_lots",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("coalition_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("tenant_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("card_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("operation_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("amount", sa.BigInteger(), nullable=False),
        sa.Column("remaining", sa.BigInteger(), nullable=False),
        sa.Column("earned_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint("amount > 0", name=op.f("ck_coalition_lots_amount_positive")),
        sa.CheckConstraint("remaining >= 0 AND remaining <= amount", name=op.f("ck_coalition_lots_remaining_in_range")),
        sa.ForeignKeyConstraint(
            ["card_id"], ["coalition_cards.id"], name=op.f("fk_coalition_lots_card_id_coalition_cards")
        ),
        sa.ForeignKeyConstraint(
            ["coalition_id"],
            ["coalitions.id"],
            name=op.f("fk_coalition_lots_coalition_id_coalitions"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["operation_id"],
            ["coalition_operations.id"],
            name=op.f("fk_coalition_lots_operation_id_coalition_operations"),
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id"], ["merchants.id"], name=op.f("fk_coalition_lots_tenant_id_merchants"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_coalition_lots")),
    )
    with op.batch_alter_table("coalition_lots", schema=None) as batch_op:
        batch_op.create_index("ix_coalition_lots_card", ["card_id", "expires_at"], unique=False)
        batch_op.create_index("ix_coalition_lots_expiry", ["coalition_id", "expires_at"], unique=False)

    op.create_table(
        "coalition_entries",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("coalition_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("tenant_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("card_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True),
        sa.Column("operation_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True),
        sa.Column("lot_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("points", sa.BigInteger(), nullable=False),
        sa.Column("price_milli_fen", sa.Integer(), nullable=False),
        sa.Column("funding", sa.String(length=16), nullable=True),
        sa.Column("occurred_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("booked_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("kind IN ('issue', 'redeem', 'expire', 'purchase')", name=op.f("ck_coalition_entries_kind")),
        sa.ForeignKeyConstraint(
            ["card_id"], ["coalition_cards.id"], name=op.f("fk_coalition_entries_card_id_coalition_cards")
        ),
        sa.ForeignKeyConstraint(
            ["coalition_id"],
            ["coalitions.id"],
            name=op.f("fk_coalition_entries_coalition_id_coalitions"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["lot_id"], ["coalition_lots.id"], name=op.f("fk_coalition_entries_lot_id_coalition_lots")
        ),
        sa.ForeignKeyConstraint(
            ["operation_id"],
            ["coalition_operations.id"],
            name=op.f("fk_coalition_entries_operation_id_coalition_operations"),
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id"], ["merchants.id"], name=op.f("fk_coalition_entries_tenant_id_merchants"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_coalition_entries")),
    )
    with op.batch_alter_table("coalition_entries", schema=None) as batch_op:
        batch_op.create_index("ix_coalition_entries_booked", ["coalition_id", "booked_at"], unique=False)
        batch_op.create_index("ix_coalition_entries_card", ["card_id", "id"], unique=False)



def downgrade() -> None:
    with op.batch_alter_table("coalition_entries", schema=None) as batch_op:
        batch_op.drop_index("ix_coalition_entries_card")
        batch_op.drop_index("ix_coalition_entries_booked")

    op.drop_table("coalition_entries")
    with op.batch_alter_table("coalition_lots", schema=None) as batch_op:
        batch_op.drop_index("ix_coalition_lots_expiry")
        batch_op.drop_index("ix_coalition_lots_card")

    op.drop_table("coalition_lots")
    with op.batch_alter_table("coalition_card_merges", schema=None) as batch_op:
        batch_op.drop_index("ix_coalition_card_merges_profile_merge")

    op.drop_table("coalition_card_merges")
    op.drop_table("coalition_statement_lines")
    op.drop_table("coalition_operations")
    with op.batch_alter_table("coalition_card_links", schema=None) as batch_op:
        batch_op.drop_index("ix_coalition_card_links_card")

    op.drop_table("coalition_card_links")
    op.drop_table("coalition_periods")
    op.drop_table("coalition_members")
    with op.batch_alter_table("coalition_cards", schema=None) as batch_op:
        batch_op.drop_index("ix_coalition_cards_merged")

    op.drop_table("coalition_cards")
    op.drop_table("coalitions")
