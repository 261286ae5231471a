"""identity: profiles, identifiers, events, merges, conflicts, consent, PIPL suppression

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-24
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "erased_identifiers",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("tenant_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("type", sa.String(length=40), nullable=False),
        sa.Column("value_hash", sa.String(length=64), nullable=False),
        sa.Column("erased_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["tenant_id"], ["merchants.id"], name=op.f("fk_erased_identifiers_tenant_id_merchants"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_erased_identifiers")),
        sa.UniqueConstraint("tenant_id", "value_hash", name=op.f("uq_erased_identifiers_tenant_id_value_hash")),
    )
    op.create_table(
        "identity_conflicts",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("tenant_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("message_id", sa.String(length=100), nullable=True),
        sa.Column("type", sa.String(length=40), nullable=False),
        sa.Column("profile_ids", sa.JSON(), nullable=False),
        sa.Column("detail", sa.String(length=500), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("resolved_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["tenant_id"], ["merchants.id"], name=op.f("fk_identity_conflicts_tenant_id_merchants"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_identity_conflicts")),
    )
    with op.batch_alter_table("identity_conflicts", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_identity_conflicts_tenant_id"), ["tenant_id"], unique=False)

    op.create_table(
        "identity_settings",
        sa.Column("tenant_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("config", sa.JSON(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["tenant_id"], ["merchants.id"], name=op.f("fk_identity_settings_tenant_id_merchants"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("tenant_id", name=op.f("pk_identity_settings")),
    )
    op.create_table(
        "profiles",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("tenant_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("merged_into_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("first_seen_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_seen_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("event_count", sa.Integer(), nullable=False),
        sa.Column("traits", sa.JSON(), nullable=False),
        sa.Column("pii_traits_encrypted", sa.LargeBinary(), nullable=True),
        sa.Column("erased_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["merged_into_id"], ["profiles.id"], name=op.f("fk_profiles_merged_into_id_profiles")),
        sa.ForeignKeyConstraint(
            ["tenant_id"], ["merchants.id"], name=op.f("fk_profiles_tenant_id_merchants"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_profiles")),
    )
    with op.batch_alter_table("profiles", schema=None) as batch_op:
        batch_op.create_index("ix_profiles_tenant_merged", ["tenant_id", "merged_into_id"], unique=False)

    op.create_table(
        "consents",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("tenant_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("profile_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("purpose", sa.String(length=40), nullable=False),
        sa.Column("channel", sa.String(length=40), nullable=False),
        sa.Column("granted", sa.Boolean(), nullable=False),
        sa.Column("source", sa.String(length=100), nullable=False),
        sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["profile_id"], ["profiles.id"], name=op.f("fk_consents_profile_id_profiles")),
        sa.ForeignKeyConstraint(
            ["tenant_id"], ["merchants.id"], name=op.f("fk_consents_tenant_id_merchants"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_consents")),
    )
    with op.batch_alter_table("consents", schema=None) as batch_op:
        batch_op.create_index("ix_consents_profile", ["profile_id", "purpose", "channel"], unique=False)

    op.create_table(
        "events",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("tenant_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("message_id", sa.String(length=100), nullable=False),
        sa.Column("type", sa.String(length=16), nullable=False),
        sa.Column("event", sa.String(length=200), nullable=True),
        sa.Column("profile_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True),
        sa.Column("user_id", sa.String(length=200), nullable=True),
        sa.Column("anonymous_id", sa.String(length=200), nullable=True),
        sa.Column("source", sa.String(length=40), nullable=True),
        sa.Column("timestamp", sa.DateTime(timezone=True), nullable=False),
        sa.Column("original_timestamp", sa.DateTime(timezone=True), nullable=True),
        sa.Column("sent_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("payload", sa.JSON(), nullable=False),
        sa.Column("pii_encrypted", sa.LargeBinary(), nullable=True),
        sa.ForeignKeyConstraint(["profile_id"], ["profiles.id"], name=op.f("fk_events_profile_id_profiles")),
        sa.ForeignKeyConstraint(
            ["tenant_id"], ["merchants.id"], name=op.f("fk_events_tenant_id_merchants"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_events")),
        sa.UniqueConstraint("tenant_id", "message_id", name=op.f("uq_events_tenant_id_message_id")),
    )
    with op.batch_alter_table("events", schema=None) as batch_op:
        batch_op.create_index("ix_events_profile_time", ["profile_id", "timestamp"], unique=False)
        batch_op.create_index("ix_events_tenant_received", ["tenant_id", "received_at"], unique=False)

    op.create_table(
        "identifiers",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("tenant_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("type", sa.String(length=40), nullable=False),
        sa.Column("value_hash", sa.String(length=64), nullable=False),
        sa.Column("value", sa.String(length=200), nullable=True),
        sa.Column("value_encrypted", sa.LargeBinary(), nullable=True),
        sa.Column("profile_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("first_message_id", sa.String(length=100), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["profile_id"], ["profiles.id"], name=op.f("fk_identifiers_profile_id_profiles")),
        sa.ForeignKeyConstraint(
            ["tenant_id"], ["merchants.id"], name=op.f("fk_identifiers_tenant_id_merchants"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_identifiers")),
        sa.UniqueConstraint("tenant_id", "value_hash", name=op.f("uq_identifiers_tenant_id_value_hash")),
    )
    with op.batch_alter_table("identifiers", schema=None) as batch_op:
        batch_op.create_index("ix_identifiers_profile", ["profile_id"], unique=False)

    op.create_table(
        "profile_tags",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("tenant_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("profile_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("tag", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["profile_id"], ["profiles.id"], name=op.f("fk_profile_tags_profile_id_profiles")),
        sa.ForeignKeyConstraint(
            ["tenant_id"], ["merchants.id"], name=op.f("fk_profile_tags_tenant_id_merchants"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_profile_tags")),
        sa.UniqueConstraint("profile_id", "tag", name=op.f("uq_profile_tags_profile_id_tag")),
    )
    with op.batch_alter_table("profile_tags", schema=None) as batch_op:
        batch_op.create_index("ix_profile_tags_tenant_tag", ["tenant_id", "tag"], unique=False)

    op.create_table(
        "profile_merges",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("tenant_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("survivor_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("merged_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("moved_ids", sa.JSON(), nullable=False),
        sa.Column("cause_message_id", sa.String(length=100), nullable=True),
        sa.Column("cause_identifier_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True),
        sa.Column("cause_type", sa.String(length=40), nullable=True),
        sa.Column("via_identifier_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("undone_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("undone_reason", sa.String(length=200), nullable=True),
        sa.ForeignKeyConstraint(
            ["cause_identifier_id"], ["identifiers.id"], name=op.f("fk_profile_merges_cause_identifier_id_identifiers")
        ),
        sa.ForeignKeyConstraint(["merged_id"], ["profiles.id"], name=op.f("fk_profile_merges_merged_id_profiles")),
        sa.ForeignKeyConstraint(["survivor_id"], ["profiles.id"], name=op.f("fk_profile_merges_survivor_id_profiles")),
        sa.ForeignKeyConstraint(
            ["tenant_id"], ["merchants.id"], name=op.f("fk_profile_merges_tenant_id_merchants"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["via_identifier_id"], ["identifiers.id"], name=op.f("fk_profile_merges_via_identifier_id_identifiers")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_profile_merges")),
    )
    with op.batch_alter_table("profile_merges", schema=None) as batch_op:
        batch_op.create_index("ix_profile_merges_tenant_created", ["tenant_id", "created_at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("profile_merges", schema=None) as batch_op:
        batch_op.drop_index("ix_profile_merges_tenant_created")

    op.drop_table("profile_merges")
    with op.batch_alter_table("profile_tags", schema=None) as batch_op:
        batch_op.drop_index("ix_profile_tags_tenant_tag")

    op.drop_table("profile_tags")
    with op.batch_alter_table("identifiers", schema=None) as batch_op:
        batch_op.drop_index("ix_identifiers_profile")

    op.drop_table("identifiers")
    with op.batch_alter_table("events", schema=None) as batch_op:
        batch_op.drop_index("ix_events_tenant_received")
        batch_op.drop_index("ix_events_profile_time")

    op.drop_table("events")
    with op.batch_alter_table("consents", schema=None) as batch_op:
        batch_op.drop_index("ix_consents_profile")

    op.drop_table("consents")
    with op.batch_alter_table("profiles", schema=None) as batch_op:
        batch_op.drop_index("ix_profiles_tenant_merged")

    op.drop_table("profiles")
    op.drop_table("identity_settings")
    with op.batch_alter_table("identity_conflicts", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_identity_conflicts_tenant_id"))

    op.drop_table("identity_conflicts")
    op.drop_table("erased_identifiers")
