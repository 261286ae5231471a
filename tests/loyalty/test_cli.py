"""The loyalty CLI: programme rules from a file, and the expiry and tier jobs an operator schedules."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

from lianjie.db import create_db_engine, make_session_factory, transaction, utcnow
from lianjie.loyalty import ledger, service
from lianjie.tenants.service import get_merchant
from tests.loyalty.helpers import order, person
from tests.processes import Cli


def test_programme_rules_and_the_expiry_job(tmp_path: Path, database_url: str | None) -> None:
    cli = Cli(tmp_path, database_url)
    cli.run("db", "upgrade")
    cli.json("tenant", "create", "--slug", "huamei", "--name", "华美生活")
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"expiry": {"kind": "weekly"}}))
    refused = cli.run("loyalty", "programme", "-t", "huamei", "--set", str(bad), ok=False)
    assert refused.returncode == 1
    assert "expiry.kind" in refused.stderr
    rules = tmp_path / "rules.json"
    rules.write_text(json.dumps({"pending_days": 0, "expiry": {"kind": "days", "n": 30},
                                 "tiers": [{"code": "member", "name": "会员", "threshold": 0},
                                           {"code": "silver", "name": "银卡", "threshold": 100}]}))
    shown = json.loads(cli.run("loyalty", "programme", "-t", "huamei", "--set", str(rules)).stdout)
    assert shown["expiry"] == {"kind": "days", "n": 30}

    engine = create_db_engine(database_url or f"sqlite:///{tmp_path / 'var' / 'lianjie.db'}")
    factory = make_session_factory(engine)
    with transaction(factory, write=True) as session:
        tenant_id = get_merchant(session, "huamei").id
        buyer = person(session, tenant_id, "U1")
        order(session, tenant_id, buyer, ("S", None, 12000), at=utcnow() - dt.timedelta(days=40))  # lapsed
        order(session, tenant_id, buyer, ("S", None, 3000), at=utcnow() - dt.timedelta(days=5))
        ledger.spend(session, tenant_id, buyer, "till-1", 10, hold=True)

    run = cli.json("loyalty", "expire", "-t", "huamei")
    assert run == {"expired": 120, "accounts": 1, "holds_cancelled": 0, "released": 0}
    assert cli.json("loyalty", "expire", "-t", "huamei")["expired"] == 0
    assert cli.json("loyalty", "evaluate-tiers", "-t", "huamei") == {"changed": 0}
    with transaction(factory) as session:
        balance = service.balance(session, tenant_id, buyer)
        assert (balance.available, balance.tier.code if balance.tier else None) == (20, "silver")
    engine.dispose()
