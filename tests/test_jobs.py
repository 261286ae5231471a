"""Background jobs: a real huey consumer (threads, the SQLite queue file) runs the expiry job against
a real database; the CLI runs a job on demand; and ``lianjie serve`` consumes queued jobs itself."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from lianjie import jobs, migrate
from lianjie.config import Settings
from lianjie.db import create_db_engine, make_session_factory, transaction
from lianjie.loyalty import ledger, programme
from lianjie.loyalty.models import PointsLot
from tests.factories import make_merchant
from tests.loyalty.helpers import order, person
from tests.processes import Cli, server

LONG_AGO = dt.datetime.now(dt.UTC) - dt.timedelta(days=100)


def _world_with_lapsed_points(url: str) -> tuple[sessionmaker[Session], int, int]:
    """A merchant whose customer earned 80 points 100 days ago under 30-day expiry, plus 20 fresh ones."""
    engine = create_db_engine(url)
    migrate.upgrade_engine(engine)
    factory = make_session_factory(engine)
    with transaction(factory, write=True) as session:
        shop = make_merchant(session)
        programme.save(session, shop.id, {"pending_days": 0, "points_per_yuan": 1,
                                          "expiry": {"kind": "days", "n": 30}})
        buyer = person(session, shop.id, "U1")
        order(session, shop.id, buyer, ("SKU", None, 8000), at=LONG_AGO)  # 80 yuan: 80 points, lapsed
        ledger.earn(session, shop.id, buyer, "fresh", points=20)
        return factory, shop.id, buyer


def _spendable(factory: sessionmaker[Session], tenant_id: int, buyer: int) -> tuple[int, int]:
    with transaction(factory) as session:
        available = ledger.balances(session, ledger.customer_of(session, tenant_id, buyer),
                                    dt.datetime.now(dt.UTC))[0]
        left = session.scalar(select(func.sum(PointsLot.remaining)).where(PointsLot.tenant_id == tenant_id))
        return available, int(left or 0)


def test_an_embedded_consumer_runs_a_queued_job(tmp_path: Path, database_url: str | None) -> None:
    url = database_url or f"sqlite:///{tmp_path / 'lianjie.db'}"
    factory, tenant_id, buyer = _world_with_lapsed_points(url)
    assert _spendable(factory, tenant_id, buyer) == (20, 100)  # lapsed but not yet expired by the job
    settings = Settings(var_dir=tmp_path / "var", database_url=url)
    consumer = jobs.start_embedded(settings)
    try:
        result = jobs.build_queue(settings).enqueue("expire-points").get(blocking=True, timeout=60)
    finally:
        consumer.stop(graceful=True)
    assert result["expired"] == 80
    assert result["accounts"] == 1
    assert _spendable(factory, tenant_id, buyer) == (20, 20)


def test_the_cli_lists_and_runs_jobs(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'lianjie.db'}"
    factory, tenant_id, buyer = _world_with_lapsed_points(url)
    cli = Cli(tmp_path, url)
    listed = cli.json("jobs", "list")
    assert {j["name"] for j in listed["jobs"]} == {"expire-points", "evaluate-tiers", "sync-warehouse",
                                                "compute-traits"}
    assert cli.json("jobs", "run", "expire-points")["expired"] == 80
    assert cli.json("jobs", "run", "expire-points")["expired"] == 0  # safe to run again
    assert _spendable(factory, tenant_id, buyer) == (20, 20)
    unknown = cli.run("jobs", "run", "nope", ok=False)
    assert unknown.returncode == 2
    assert "expire-points" in unknown.stderr


def test_the_server_consumes_queued_jobs(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'lianjie.db'}"
    factory, tenant_id, buyer = _world_with_lapsed_points(url)
    cli = Cli(tmp_path, url)
    with server(cli):
        queue = jobs.build_queue(Settings(var_dir=tmp_path / "var", database_url=url))  # the server's queue file
        result = queue.enqueue("expire-points").get(blocking=True, timeout=60)
    assert result["expired"] == 80
    assert _spendable(factory, tenant_id, buyer) == (20, 20)
