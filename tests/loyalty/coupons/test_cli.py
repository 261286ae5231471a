"""``lianjie coupons codes``: a print batch of unbound codes in a CSV; the same key writes the same codes.

On the embedded SQLite only: each command is a new process (seconds each), and the issuing service
underneath runs on both databases in test_coupons.py and test_races.py."""

from __future__ import annotations

import csv
from pathlib import Path

from sqlalchemy import func, select

from lianjie import migrate
from lianjie.db import create_db_engine, make_session_factory, transaction
from lianjie.loyalty.coupons.models import Coupon, CouponTemplate
from lianjie.loyalty.coupons.schemas import TemplateIn
from lianjie.loyalty.coupons.templates import create
from tests.factories import make_merchant
from tests.processes import Cli


def test_print_batch_of_codes(tmp_path: Path) -> None:
    cli = Cli(tmp_path, None)
    engine = create_db_engine(f"sqlite:///{tmp_path / 'var' / 'lianjie.db'}")
    migrate.upgrade_engine(engine)
    with transaction(make_session_factory(engine), write=True) as session:
        tenant_id = make_merchant(session).id
        create(session, tenant_id, TemplateIn(code="FLYER", name="传单券", kind="amount_off",
                                              amount_off_fen=1000, stock=30))
    out = tmp_path / "codes.csv"
    run = cli.json("coupons", "codes", "FLYER", "-t", "huamei", "--count", "25", "--out", str(out), "--key", "k1")
    assert (run["count"], run["key"]) == (25, "k1")
    rows = list(csv.reader(out.open(encoding="utf-8")))
    assert rows[0] == ["code", "qr_payload"]
    assert len({r[1] for r in rows[1:]}) == 25
    again = tmp_path / "again.csv"
    cli.json("coupons", "codes", "FLYER", "-t", "huamei", "--count", "25", "--out", str(again), "--key", "k1")
    assert again.read_text(encoding="utf-8") == out.read_text(encoding="utf-8")
    refused = cli.run("coupons", "codes", "FLYER", "-t", "huamei", "--count", "6", "--out", str(again), ok=False)
    assert refused.returncode == 1
    assert "coupon_out_of_stock" in refused.stderr
    with transaction(make_session_factory(engine)) as session:
        assert session.scalar(select(CouponTemplate.issued)) == 25
        assert session.scalar(select(func.count()).select_from(Coupon)) == 25
    engine.dispose()
