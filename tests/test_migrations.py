from __future__ import annotations

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Engine, inspect

from lianjie import migrate
from lianjie.db import Base


def test_schema_at_head_matches_the_models(engine: Engine) -> None:
    """Autogenerate finds nothing to do: the migrations build exactly the tables the models declare."""
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn, opts={"compare_type": True}), Base.metadata)
    assert diff == []
    assert migrate.current_revisions(engine) == migrate.head_revisions()


def test_downgrade_to_base_and_back(engine: Engine) -> None:
    with engine.begin() as conn:
        command.downgrade(migrate.alembic_config(conn), "base")
        assert set(inspect(conn).get_table_names()) <= {"alembic_version"}
        migrate.upgrade(conn)
        assert {"merchants", "stores", "staff", "api_keys"} <= set(inspect(conn).get_table_names())
