"""Background jobs: a real huey consumer (threads, the SQLite queue file) runs the jobs against a real
database; the CLI runs a job on demand; ``lianjie serve`` consumes queued jobs itself; every run is
recorded (start, end, outcome, error, result and each merchant's part) and shown by ``lianjie jobs
history`` and, a merchant's part only, by ``GET /api/v1/jobs``."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from huey.exceptions import TaskException
from sqlalchemy import func, select, update
from sqlalchemy.orm import Session, sessionmaker

from lianjie import jobs, migrate
from lianjie.app import create_app
from lianjie.config import Settings
from lianjie.db import create_db_engine, make_session_factory, transaction
from lianjie.jobruns import JobRun, JobRunMerchant
from lianjie.loyalty import ledger, programme
from lianjie.loyalty.coalition import points, settlement, setup
from lianjie.loyalty.coalition.models import Coalition, CoalitionPeriod
from lianjie.loyalty.coalition.schemas import CoalitionIn
from lianjie.loyalty.membership import lifecycle, periods, plans
from lianjie.loyalty.membership.terms import add_months, local_date
from lianjie.loyalty.models import PointsLot
from lianjie.tenants.models import Merchant
from tests.factories import bearer, make_admin_key, make_merchant
from tests.loyalty.coalition.helpers import link, make_world
from tests.loyalty.coalition.helpers import local as coalition_local
from tests.loyalty.helpers import order, person
from tests.loyalty.membership.helpers import GOLD, add_plan
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
                                                "compute-traits", "renew-memberships", "lapse-memberships",
                                                "close-coalition-months"}
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


# ---- the paid membership and coalition jobs, and the record of runs -----------------------------------


@dataclass
class JobsWorld:
    """Operator 'ccc' runs coalition 'tpoint' with members huamei and yuedong; huamei sells paid
    memberships: U1's auto-renewing term ends today (Shanghai), U2's grace ended ten days ago; U1 has
    a coalition card at both members and earned and redeemed points last month."""

    url: str
    factory: sessionmaker[Session]
    ids: dict[str, int]
    keys: dict[str, str]
    period: str

    def app(self) -> TestClient:
        return TestClient(create_app(Settings(database_url=self.url), session_factory=self.factory))


def _jobs_world(url: str) -> JobsWorld:
    engine = create_db_engine(url)
    migrate.upgrade_engine(engine)
    factory = make_session_factory(engine)
    now = dt.datetime.now(dt.UTC)
    today = local_date(now, "Asia/Shanghai")
    period = jobs.previous_month("Asia/Shanghai", now)
    year, month = (int(part) for part in period.split("-"))
    with transaction(factory, write=True) as session:
        world = make_world(session, expiry_days=None)
        shop = world.a.id
        add_plan(session, shop, **GOLD)
        gold = plans.get_plan(session, shop, "gold")
        renewing = lifecycle.buy(session, shop, person(session, shop, "U1"), gold, add_months(today, -12), 26000,
                                 order_no="O-1", key="o1")
        periods.get_membership(session, shop, renewing.membership_id).auto_renew = True
        lifecycle.buy(session, shop, person(session, shop, "U2"), gold, add_months(today, -12) - dt.timedelta(days=40),
                      26000, order_no="O-2", key="o2")
        a, b = world.acc(session, world.a), world.acc(session, world.b)
        card = link(session, a, person(session, shop, "U1"))
        link(session, b, person(session, world.b.id, "U1"), card_no=card)
        points.earn(session, a, card, "earn-1", 100, now=coalition_local(year, month, 10, 10))
        points.redeem(session, b, card, "redeem-1", 30, now=coalition_local(year, month, 12, 15))
        ids = {"ccc": world.operator.id, "huamei": shop, "yuedong": world.b.id}
        keys = {slug: make_admin_key(session, m) for slug, m in (("ccc", world.operator), ("huamei", world.a),
                                                                    ("yuedong", world.b))}
    return JobsWorld(url, factory, ids, keys, period)


def _runs(world: JobsWorld, job: str) -> list[JobRun]:
    with transaction(world.factory) as session:
        return list(session.scalars(select(JobRun).where(JobRun.job == job).order_by(JobRun.id)))


def _parts(world: JobsWorld, run_id: int) -> dict[int, JobRunMerchant]:
    with transaction(world.factory) as session:
        return {p.tenant_id: p for p in session.scalars(select(JobRunMerchant).where(JobRunMerchant.run_id == run_id))}


def _statement_status(world: JobsWorld) -> str:
    with world.app() as client:
        body = client.get(f"/api/v1/coalitions/tpoint/periods/{world.period}/statement",
                          headers=bearer(world.keys["ccc"])).json()
    status: str = body["status"]
    return status


def test_the_new_jobs_run_from_the_cli_and_are_recorded(tmp_path: Path, database_url: str | None) -> None:
    url = database_url or f"sqlite:///{tmp_path / 'var' / 'lianjie.db'}"
    world = _jobs_world(url)
    cli = Cli(tmp_path, url)
    assert cli.json("jobs", "run", "renew-memberships") == {"merchants": 1, "renewed": 1}
    assert cli.json("jobs", "run", "renew-memberships") == {"merchants": 1, "renewed": 0}  # safe to run again
    assert cli.json("jobs", "run", "lapse-memberships") == {"merchants": 1, "grace": 0, "lapsed": 1}
    assert _statement_status(world) == "open"
    closed = cli.json("jobs", "run", "close-coalition-months")
    assert closed == {"coalitions": 1, "closed": [{"coalition": "tpoint", "period": world.period,
                                                   "closed_now": True, "expired_points": 0}]}
    assert _statement_status(world) == "closed"
    again = cli.json("jobs", "run", "close-coalition-months")
    assert again["closed"][0]["closed_now"] is False

    (first, second) = _runs(world, "renew-memberships")
    assert (first.trigger, first.outcome, first.error) == ("cli", "ok", None)
    assert first.started_at <= first.finished_at  # type: ignore[operator]
    assert first.result == {"merchants": 1, "renewed": 1}
    part = _parts(world, first.id)[world.ids["huamei"]]
    assert (part.outcome, part.result) == ("ok", {"date": local_date(first.started_at, "Asia/Shanghai").isoformat(),
                                                  "renewed": 1})
    close_run = _runs(world, "close-coalition-months")[0]
    assert set(_parts(world, close_run.id)) == set(world.ids.values())  # operator and both members
    assert _parts(world, _runs(world, "close-coalition-months")[1].id) == {}  # nothing was closed

    history = cli.json("jobs", "history", "--job", "renew-memberships", "--limit", "1")["runs"]
    assert [(r["id"], r["outcome"], r["result"]) for r in history] == [(second.id, "ok", second.result)]
    assert history[0]["merchants"] == [{"tenant_id": world.ids["huamei"], "outcome": "ok", "error": None,
                                        "result": _parts(world, second.id)[world.ids["huamei"]].result}]
    assert len(cli.json("jobs", "history")["runs"]) == 5
    assert cli.run("jobs", "history", "--job", "nope", ok=False).returncode == 2


def test_the_coalition_close_job_is_in_the_operators_audit_log(tmp_path: Path, database_url: str | None) -> None:
    url = database_url or f"sqlite:///{tmp_path / 'var' / 'lianjie.db'}"
    world = _jobs_world(url)
    Cli(tmp_path, url).json("jobs", "run", "close-coalition-months")
    with world.app() as client:
        entries = client.get("/api/v1/audit", params={"action": "coalition_period."},
                             headers=bearer(world.keys["ccc"])).json()["items"]
        statement = client.get(f"/api/v1/coalitions/tpoint/periods/{world.period}/statement",
                               headers=bearer(world.keys["ccc"])).json()
    (entry,) = entries
    assert entry["actor"] == "job:close-coalition-months"
    assert entry["target"] == f"coalition:tpoint:{world.period}"
    assert entry["after"]["points_issued"] == 100
    assert entry["after"]["points_redeemed"] == 30
    assert statement["closed_at"] is not None


def test_a_consumer_runs_the_new_jobs_when_queued(tmp_path: Path, database_url: str | None) -> None:
    url = database_url or f"sqlite:///{tmp_path / 'lianjie.db'}"
    world = _jobs_world(url)
    settings = Settings(var_dir=tmp_path / "var", database_url=url)
    consumer = jobs.start_embedded(settings)
    try:
        queue = jobs.build_queue(settings)
        handles = [queue.enqueue(name) for name in ("renew-memberships", "lapse-memberships",
                                                    "close-coalition-months")]
        results = [handle.get(blocking=True, timeout=120) for handle in handles]
    finally:
        consumer.stop(graceful=True)
    assert results[0] == {"merchants": 1, "renewed": 1}
    assert results[1] == {"merchants": 1, "grace": 0, "lapsed": 1}
    assert results[2]["closed"][0]["closed_now"] is True
    assert _statement_status(world) == "closed"
    assert [(r.trigger, r.outcome) for r in _runs(world, "close-coalition-months")] == [("queue", "ok")]


def test_a_merchant_sees_its_own_part_of_each_run(tmp_path: Path, database_url: str | None) -> None:
    url = database_url or f"sqlite:///{tmp_path / 'var' / 'lianjie.db'}"
    world = _jobs_world(url)
    cli = Cli(tmp_path, url)
    cli.json("jobs", "run", "renew-memberships")
    cli.json("jobs", "run", "close-coalition-months")
    with world.app() as client:
        shown = {slug: {j["name"]: j for j in client.get("/api/v1/jobs", headers=bearer(key)).json()["jobs"]}
                 for slug, key in world.keys.items()}
    assert set(shown["huamei"]) == set(jobs.JOBS)
    assert shown["huamei"]["renew-memberships"]["schedule"] == "5 16 * * *"
    (renewal,) = shown["huamei"]["renew-memberships"]["last_runs"]
    assert (renewal["concerned"], renewal["outcome"], renewal["result"]["renewed"]) == (True, "ok", 1)
    (elsewhere,) = shown["yuedong"]["renew-memberships"]["last_runs"]  # sells no memberships
    assert (elsewhere["concerned"], elsewhere["result"], elsewhere["outcome"]) == (False, None, "ok")
    (operator_close,) = shown["ccc"]["close-coalition-months"]["last_runs"]
    assert operator_close["result"] == {"coalition": "tpoint", "period": world.period, "closed_now": True,
                                        "expired_points": 0}
    (member_close,) = shown["yuedong"]["close-coalition-months"]["last_runs"]
    assert member_close["result"] == {"coalition": "tpoint", "period": world.period, "closed_now": True}
    assert shown["huamei"]["expire-points"]["last_runs"] == []


def test_a_job_failing_for_one_merchant_still_runs_the_others_and_is_recorded_failed(
        tmp_path: Path, database_url: str | None) -> None:
    url = database_url or f"sqlite:///{tmp_path / 'var' / 'lianjie.db'}"
    world = _jobs_world(url)
    with transaction(world.factory, write=True) as session:
        add_plan(session, world.ids["yuedong"], **GOLD)
        # A time zone no longer known to this machine's tz database: its local day cannot be told.
        session.execute(update(Merchant).where(Merchant.id == world.ids["yuedong"]).values(timezone="Mars/Olympus"))
    failed = Cli(tmp_path, url).run("jobs", "run", "renew-memberships", ok=False)
    assert failed.returncode == 1
    assert "renew-memberships failed" in failed.stderr
    (run,) = _runs(world, "renew-memberships")
    assert run.outcome == "failed"
    assert run.finished_at is not None
    assert run.error is not None
    assert f"merchant {world.ids['yuedong']}: ZoneInfoNotFoundError" in run.error
    assert run.result == {"merchants": 1, "renewed": 1}  # huamei was renewed all the same
    parts = _parts(world, run.id)
    assert (parts[world.ids["huamei"]].outcome, parts[world.ids["yuedong"]].outcome) == ("ok", "failed")
    with world.app() as client:
        mine = [j for j in client.get("/api/v1/jobs", headers=bearer(world.keys["yuedong"])).json()["jobs"]
                if j["name"] == "renew-memberships"][0]["last_runs"][0]
        theirs = [j for j in client.get("/api/v1/jobs", headers=bearer(world.keys["huamei"])).json()["jobs"]
                  if j["name"] == "renew-memberships"][0]["last_runs"][0]
    assert (mine["outcome"], mine["concerned"]) == ("failed", True)
    assert "ZoneInfoNotFoundError" in mine["error"]
    assert (theirs["outcome"], theirs["error"], theirs["result"]["renewed"]) == ("ok", None, 1)


def test_a_job_that_fails_as_a_whole_is_recorded_with_its_error(tmp_path: Path, database_url: str | None) -> None:
    url = database_url or f"sqlite:///{tmp_path / 'var' / 'lianjie.db'}"
    world = _jobs_world(url)
    cli = Cli(tmp_path, url)
    broken = tmp_path / "not-a-file.duckdb"
    broken.mkdir()  # the warehouse cannot be opened
    cli.env["LIANJIE_WAREHOUSE_URL"] = f"duckdb:///{broken}"
    assert cli.run("jobs", "run", "sync-warehouse", ok=False).returncode == 1
    (run,) = _runs(world, "sync-warehouse")
    assert (run.outcome, run.result) == ("failed", None)
    assert run.error is not None
    assert str(broken) in run.error  # the database's error, as it was raised
    assert run.finished_at is not None
    # Through the queue: the consumer records the failure the same way and the caller sees it.
    settings = Settings(var_dir=tmp_path / "queue", database_url=url, warehouse_url=f"duckdb:///{broken}")
    consumer = jobs.start_embedded(settings)
    try:
        with pytest.raises(TaskException, match="sync-warehouse failed"):
            jobs.build_queue(settings).enqueue("sync-warehouse").get(blocking=True, timeout=60)
    finally:
        consumer.stop(graceful=True)
    (queued,) = [r for r in _runs(world, "sync-warehouse") if r.trigger == "queue"]  # not the every-minute run
    assert (queued.outcome, queued.result) == ("failed", None)
    assert queued.error is not None
    assert str(broken) in queued.error
    history = cli.json("jobs", "history", "--job", "sync-warehouse")["runs"]
    assert history[0]["error"] == run.error
    with world.app() as client:
        shown = [j for j in client.get("/api/v1/jobs", headers=bearer(world.keys["huamei"])).json()["jobs"]
                 if j["name"] == "sync-warehouse"][0]["last_runs"][0]
    # Failed for everyone; the error text (which may name the server's files) is the operator's.
    assert (shown["outcome"], shown["error"], shown["concerned"]) == ("failed", None, False)


def test_the_new_jobs_are_on_the_queues_schedule(tmp_path: Path) -> None:
    huey = jobs.build_queue(Settings(var_dir=tmp_path / "var")).huey

    def due(hour: int, minute: int) -> set[str]:
        return {task.name for task in huey.read_periodic(dt.datetime(2026, 11, 30, hour, minute))}  # UTC

    assert due(16, 5) == {"renew-memberships", "expire-points", "sync-warehouse"}  # 00:05 in Shanghai
    assert due(16, 10) == {"lapse-memberships", "sync-warehouse"}
    assert due(16, 30) == {"close-coalition-months", "sync-warehouse"}  # 00:30 on the 1st in Shanghai
    assert due(16, 31) == {"sync-warehouse"}


def test_the_close_job_closes_each_coalitions_previous_month_in_its_zone_once(
        tmp_path: Path, database_url: str | None) -> None:
    url = database_url or f"sqlite:///{tmp_path / 'lianjie.db'}"
    world = _jobs_world(url)  # 'tpoint', Asia/Shanghai
    with transaction(world.factory, write=True) as session:
        usops = make_merchant(session, "usops", "US ops")
        setup.create(session, usops.id, CoalitionIn(code="usa", name="US points", timezone="America/Chicago"))
        settlement.close(session, setup.access(session, "tpoint", world.ids["ccc"]).coalition, "2026-10",
                         closed_by="cli")  # the operator closed October by hand
    ctx = jobs.JobContext("close-coalition-months", world.factory, Settings(database_url=url))
    # 1 December 00:30 in Shanghai is still 30 November 10:30 in Chicago.
    first_night = dt.datetime(2026, 11, 30, 16, 30, tzinfo=dt.UTC)
    assert jobs.close_coalition_months(ctx, now=first_night)["closed"] == [
        {"coalition": "tpoint", "period": "2026-11", "closed_now": True, "expired_points": 0},
        {"coalition": "usa", "period": "2026-10", "closed_now": True, "expired_points": 0}]
    # The next night November is over in Chicago too; Shanghai's is closed already.
    next_night = first_night + dt.timedelta(days=1)
    assert [(c["period"], c["closed_now"]) for c in jobs.close_coalition_months(ctx, now=next_night)["closed"]] == [
        ("2026-11", False), ("2026-11", True)]
    once_more = jobs.JobContext("close-coalition-months", world.factory, Settings(database_url=url))
    again = jobs.close_coalition_months(once_more, now=next_night)
    assert [c["closed_now"] for c in again["closed"]] == [False, False]  # only if not closed yet
    assert once_more.parts.parts == {}
    with transaction(world.factory) as session:
        closed = {(code, label): by for code, label, by in session.execute(
            select(Coalition.code, CoalitionPeriod.label, CoalitionPeriod.closed_by)
            .join(CoalitionPeriod, CoalitionPeriod.coalition_id == Coalition.id))}
    assert closed == {("tpoint", "2026-10"): "cli", ("tpoint", "2026-11"): "job:close-coalition-months",
                      ("usa", "2026-10"): "job:close-coalition-months",
                      ("usa", "2026-11"): "job:close-coalition-months"}
