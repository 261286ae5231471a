"""Fixtures of the commerce tests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine

from lianjie import migrate
from lianjie.db import create_db_engine


@pytest.fixture
def engine_for_threads(database_url: str | None, tmp_path: Path) -> Iterator[Engine]:
    """A migrated database of each kind on a real file or server, for threads with their own connections."""
    engine = create_db_engine(database_url or f"sqlite:///{tmp_path / 'lianjie.db'}", pool_size=24)
    migrate.upgrade_engine(engine)
    yield engine
    engine.dispose()
