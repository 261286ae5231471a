"""loyalty: drop the foreign keys of points operations, lots and entries

Only the ledger writes these rows, and it always names the account it has just locked and the
operation and lot it has just written in the same transaction; nothing deletes accounts, profiles or
merchants. Each key was a trigger and a locking lookup per inserted row: on PostgreSQL the nine of them
were about a third of a till's ledger call (loyalty_apply). The accounts keep their keys to the
merchant and the profile. See lianjie/loyalty/models.py.

Revision ID: 0013
Revises: 0012
Create Date: 2026-11-25
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# table -> (column, referred table, ON DELETE) of each dropped key
KEYS: dict[str, list[tuple[str, str, str | None]]] = {
    "points_operations": [("tenant_id", "merchants", "CASCADE"), ("profile_id", "profiles", None)],
    "points_lots": [("tenant_id", "merchants", "CASCADE"), ("account_id", "points_accounts", None),
                    ("operation_id", "points_operations", None)],
    "points_entries": [("tenant_id", "merchants", "CASCADE"), ("account_id", "points_accounts", None),
                       ("operation_id", "points_operations", None), ("lot_id", "points_lots", None)],
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
