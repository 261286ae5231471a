"""commerce: products.price_fen is 64-bit, like every other money column

The API accepts list prices up to 10^11 fen, but the column was a 32-bit INTEGER: a price above
2,147,483,647 fen (about ¥21 million, a car or a flat sold through a mini-program) failed on
PostgreSQL with a 500. SQLite's INTEGER already holds 64 bits, and rebuilding the table there (the
only way SQLite changes a declared type) would break the order lines' foreign keys inside the
migration's transaction, so the model declares INTEGER on SQLite and nothing changes there.

Revision ID: 0019
Revises: 0016
Create Date: 2026-12-07
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0019"
down_revision: str | None = "0016"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _retype(old: sa.types.TypeEngine[int], new: sa.types.TypeEngine[int]) -> None:
    if op.get_bind().dialect.name != "sqlite":
        op.alter_column("products", "price_fen", existing_type=old, type_=new, existing_nullable=False)


def upgrade() -> None:
    _retype(sa.Integer(), sa.BigInteger())


def downgrade() -> None:
    _retype(sa.BigInteger(), sa.Integer())
