"""The operator's CLI: create a coalition, close a month (twice), print its statement (the member
command is a thin wrapper over the API's service, tested there)."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

from lianjie import migrate
from lianjie.db import create_db_engine, make_session_factory, transaction
from lianjie.loyalty.coalition import points, setup
from lianjie.loyalty.coalition.schemas import MemberIn
from lianjie.tenants.service import get_merchant
from tests.factories import make_merchant
from tests.loyalty.coalition.helpers import link, local
from tests.loyalty.helpers import person
from tests.processes import Cli


def test_close_and_statement_from_the_command_line(tmp_path: Path, database_url: str | None) -> None:
    cli = Cli(tmp_path, database_url)
    engine = create_db_engine(database_url or f"sqlite:///{tmp_path / 'var' / 'lianjie.db'}")
    migrate.upgrade_engine(engine)
    factory = make_session_factory(engine)
    with transaction(factory, write=True) as session:
        for slug in ("ccc", "huamei", "yuedong"):
            make_merchant(session, slug, slug)
    made = cli.json("coalition", "create", "--operator", "ccc", "--code", "tpoint", "--name", "T积分",
                    "--expiry-days", "10")
    assert (made["created"], made["expiry_days"]) == (True, 10)
    with transaction(factory, write=True) as session:
        operator = setup.access(session, "tpoint", get_merchant(session, "ccc").id)
        for slug, issue, redeem in (("huamei", "10", "8"), ("yuedong", "12.5", "9")):
            setup.put_member(session, operator, slug, MemberIn(issue_price_fen_per_point=Decimal(issue),
                                                               redemption_value_fen_per_point=Decimal(redeem)))

    with transaction(factory, write=True) as session:
        a = setup.access(session, "tpoint", get_merchant(session, "huamei").id)
        b = setup.access(session, "tpoint", get_merchant(session, "yuedong").id)
        for acc in (a, b):
            acc.member.joined_at = local(2026, 1, 1)  # type: ignore[union-attr]
        card = link(session, a, person(session, a.tenant_id, "U1"))
        link(session, b, person(session, b.tenant_id, "U1"), card_no=card)
        points.earn(session, a, card, "a1", 100, now=local(2026, 3, 1, 10))  # lapses 11 March: 60 left
        points.earn(session, b, card, "b1", 10, now=local(2026, 3, 25, 10))
        points.redeem(session, b, card, "r1", 40, now=local(2026, 3, 2, 10))
    engine.dispose()

    closed = cli.json("coalition", "close", "2026-03", "-c", "tpoint")
    # A: 100 x 10 = 1,000 owed; B: 10 x 12.5 = 125 owed, 40 x 9 = 360 due; operator: 1,125 - 360 = 765.
    nets = {line["merchant"]: line["net_fen"] for line in closed["lines"]}
    assert (closed["closed_now"], closed["expired_points"], nets) == (
        True, 60, {"huamei": -1000, "yuedong": 235, "ccc": 765})
    again = cli.json("coalition", "close", "2026-03", "-c", "tpoint")
    assert (again["closed_now"], again["lines"], again["closed_at"]) == (False, closed["lines"], closed["closed_at"])
    human = cli.run("coalition", "statement", "2026-03", "-c", "tpoint")
    assert "reproduced from the ledger" in human.stdout
    assert "net over all parties: 0 fen" in human.stdout
