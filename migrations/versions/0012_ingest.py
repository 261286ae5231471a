"""ingest: drop the events (tenant_id, received_at) index, which no query reads; index coalition
card links by (tenant_id, profile_id), which every OneID merge reads

Every accepted event paid for keeping the events index up to date; the warehouse sync follows events
by id, and profile pages read (profile_id, timestamp). A merge made while ingesting looks up the
merchant's card links of the merged profiles, which scanned the whole table.

Revision ID: 0012
Revises: 0011
Create Date: 2026-11-24
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.drop_index("ix_events_tenant_received", table_name="events")
    op.create_index("ix_coalition_card_links_tenant_profile", "coalition_card_links", ["tenant_id", "profile_id"],
                    unique=False)


def downgrade() -> None:
    op.drop_index("ix_coalition_card_links_tenant_profile", table_name="coalition_card_links")
    op.create_index("ix_events_tenant_received", "events", ["tenant_id", "received_at"], unique=False)
