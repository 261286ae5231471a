"""Alembic environment: runs against a connection handed in, or the URL from settings."""

from __future__ import annotations

from typing import Any, Literal

from alembic import context
from sqlalchemy import Connection

import lianjie.audience.models  # noqa: F401  (registers the tables on Base.metadata)
import lianjie.audience.segments.models  # noqa: F401
import lianjie.commerce.models  # noqa: F401
import lianjie.identity.models  # noqa: F401
import lianjie.jobruns  # noqa: F401
import lianjie.loyalty.coalition.models  # noqa: F401
import lianjie.loyalty.coupons.models  # noqa: F401
import lianjie.loyalty.membership.models  # noqa: F401
import lianjie.loyalty.models  # noqa: F401
import lianjie.tenants.models  # noqa: F401
from lianjie.config import get_settings
from lianjie.db import Base, UTCDateTime, engine_from_settings

target_metadata = Base.metadata


def _render_item(type_: str, obj: Any, autogen_context: Any) -> str | Literal[False]:
    """Render lianjie's column types as the plain SQLAlchemy types they store, so migrations stay
    readable and never import application code that may change later."""
    if type_ == "type" and isinstance(obj, UTCDateTime):
        return "sa.DateTime(timezone=True)"
    return False


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
        render_item=_render_item,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    connection = context.config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    engine = engine_from_settings(get_settings())
    with engine.connect() as connection:
        _run(connection)
    engine.dispose()


if context.is_offline_mode():
    raise SystemExit("offline (--sql) migrations are not supported; run against a database")
run_migrations_online()
