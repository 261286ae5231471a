"""The daily membership jobs from the CLI: automatic renewal, lapse, and the KPIs (the jobs' repeat runs
are checked at service level in test_api.py)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from lianjie import migrate
from lianjie.db import create_db_engine, make_session_factory, transaction
from lianjie.loyalty.membership import lifecycle, periods, plans
from lianjie.tenants import service
from lianjie.tenants.schemas import MerchantCreate
from tests.loyalty.helpers import person
from tests.loyalty.membership.helpers import EXEC, GOLD, add_plan
from tests.processes import Cli

D = dt.date


def test_renew_due_and_lapse_jobs(tmp_path: Path, database_url: str | None) -> None:
    cli = Cli(tmp_path, database_url)
    engine = create_db_engine(database_url or f"sqlite:///{tmp_path / 'var' / 'lianjie.db'}")
    migrate.upgrade_engine(engine)
    factory = make_session_factory(engine)
    with transaction(factory, write=True) as session:
        tenant_id = service.create_merchant(session, MerchantCreate(slug="huamei", name="华美生活"))[0].id
        add_plan(session, tenant_id, **GOLD)
        add_plan(session, tenant_id, **EXEC)
        gold = plans.get_plan(session, tenant_id, "gold")
        auto = lifecycle.buy(session, tenant_id, person(session, tenant_id, "U1"), gold, D(2025, 3, 1), 26000,
                             order_no="O-1", key="o1")
        lifecycle.buy(session, tenant_id, person(session, tenant_id, "U2"), gold, D(2025, 3, 5), 26000,
                      order_no="O-2", key="o2")
        from_membership = auto.membership_id
    with transaction(factory, write=True) as session:
        periods.get_membership(session, tenant_id, from_membership).auto_renew = True

    assert cli.json("membership", "renew-due", "-t", "huamei", "--date", "2026-03-01") == {
        "date": "2026-03-01", "renewed": 1}
    assert cli.json("membership", "lapse", "-t", "huamei", "--date", "2026-04-04") == {
        "date": "2026-04-04", "grace": 0, "lapsed": 1}
    shown = cli.json("membership", "kpis", "-t", "huamei", "--date", "2026-04-04")
    assert shown["members"]["paid_members"] == 1
    assert (shown["renewal"]["due"], shown["renewal"]["renewed"]) == (2, 1)
    engine.dispose()
