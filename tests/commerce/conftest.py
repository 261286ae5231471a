"""Fixtures of the commerce tests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from lianjie import migrate
from lianjie.db import create_db_engine
from tests.commerce.test_catalogue import tree
from tests.factories import bearer, make_admin_key, make_merchant, make_store


@pytest.fixture
def engine_for_threads(database_url: str | None, tmp_path: Path) -> Iterator[Engine]:
    """A migrated database of each kind on a real file or server, for threads with their own connections."""
    engine = create_db_engine(database_url or f"sqlite:///{tmp_path / 'lianjie.db'}", pool_size=24)
    migrate.upgrade_engine(engine)
    yield engine
    engine.dispose()


@pytest.fixture
def shop(db: Session) -> dict[str, Any]:
    """A merchant with the test catalogue's category tree, store SH001 and a full admin key's headers
    (``h``), committed for the API. Test modules that need another shop define their own."""
    merchant = make_merchant(db)
    tree(db, merchant.id)
    make_store(db, merchant)
    out = {"tenant": merchant.id, "h": bearer(make_admin_key(db, merchant))}
    db.commit()
    return out
