"""identity: drop the foreign keys of events, identifiers and identity conflicts

Only identity resolution writes these rows, under the merchant's identity-graph lock, naming the
profile it has just resolved or created in the same transaction; nothing deletes a profile or a
merchant. On PostgreSQL each key was a trigger and a locking look-up per inserted row: the two of
an event were more than half the cost of inserting it, on ingestion's hot path. Profiles and merges
keep theirs. See lianjie/identity/models.py.

Revision ID: 0014
Revises: 0013
Create Date: 2026-11-25
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0014"
down_revision: str | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# table -> (column, referred table, ON DELETE) of each dropped key
KEYS: dict[str, list[tuple[str, str, str | None]]] = {
    "events": [("tenant_id", "merchants", "CASCADE"), ("profile_id", "profiles", None)],
    "identifiers": [("tenant_id", "merchants", "CASCADE"), ("profile_id", "profiles", None)],
    "identity_conflicts": [("tenant_id", "merchants", "CASCADE")],
}


def _name(table: str, column: str, referred: str) -> str:
    return f"fk_{table}_{column}_{referred}"


def upgrade() -> None:
    for table, keys in KEYS.items():
        with op.batch_alter_table(table) as batch:
            for column, referred, _ in keys:
                batch.drop_constraint(_name(table, column, referred), type_="foreignkey")


def downgrade() -> None:
    for table, keys in reversed(KEYS.items()):
        with op.batch_alter_table(table) as batch:
            for column, referred, ondelete in keys:
                batch.create_foreign_key(_name(table, column, referred), referred, [column], ["id"],
                                         ondelete=ondelete)
