"""Running Alembic migrations from code (the CLI, `make run` and the test suite all use this)."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Engine

import lianjie


def migrations_dir() -> Path:
    """Migrations ship inside the wheel as ``lianjie/_migrations``; a source checkout has ``migrations/``."""
    package = Path(lianjie.__file__).resolve().parent
    for candidate in (package / "_migrations", package.parents[1] / "migrations"):
        if (candidate / "env.py").exists():
            return candidate
    raise FileNotFoundError("lianjie's migrations are missing from this installation")


def alembic_config(connection: Connection | None = None) -> Config:
    config = Config()
    config.set_main_option("script_location", str(migrations_dir()))
    if connection is not None:
        config.attributes["connection"] = connection
    return config


def upgrade(connection: Connection, revision: str = "head") -> None:
    """Upgrade the schema on ``connection`` (inside the caller's transaction)."""
    command.upgrade(alembic_config(connection), revision)


def upgrade_engine(engine: Engine, revision: str = "head") -> None:
    with engine.begin() as connection:
        upgrade(connection, revision)


def current_revisions(engine: Engine) -> set[str]:
    """Revisions the database is at (empty for a database never migrated)."""
    with engine.connect() as connection:
        return set(MigrationContext.configure(connection).get_current_heads())


def head_revisions() -> set[str]:
    """Revisions this version of lianjie expects."""
    return set(ScriptDirectory.from_config(alembic_config()).get_heads())
