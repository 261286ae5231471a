"""Parity of PostgreSQL's one-call ledger operations (loyalty/fastpath.py, migration 0011) with the
Python ledger: the same random sequence of earns, spends, holds, confirms, cancels, retries, reused
keys, refused spends and their retries (a refusal is remembered under its key), orders, refunds (debts
that earns then repay), a OneID merge and a programme change runs for two
merchants of one PostgreSQL database, one through each path; every answer and every row written must
be the same, up to ids and clock readings."""

from __future__ import annotations

import datetime as dt
import random
import re
from typing import Any

import pytest
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from lianjie.db import utcnow
from lianjie.errors import Conflict, LianjieError, NotFound
from lianjie.loyalty import fastpath, ledger
from lianjie.loyalty.models import PointsAccount, PointsEntry, PointsLot, PointsOperation
from tests.factories import make_merchant
from tests.identity.helpers import customers, msg, send
from tests.loyalty.helpers import check_invariants, order, person, refund, set_programme

POLICIES = ["clawback", "negative_balance", "clawback_then_write_off"]


def plan(rng: random.Random, steps: int) -> list[tuple[Any, ...]]:
    """A random sequence of actions; indexes pick profiles, holds, orders and earlier requests."""
    actions: list[tuple[Any, ...]] = []
    for n in range(steps):
        roll = rng.random()
        if n == steps // 2:
            actions.append(("merge",))
        elif n == steps // 3:
            actions.append(("programme", rng.randint(1, 90)))
        elif roll < 0.25:
            actions.append(("earn", rng.randrange(3), rng.randint(1, 300)))
        elif roll < 0.5:
            actions.append(("spend", rng.randrange(3), rng.randint(1, 400), rng.random() < 0.4))
        elif roll < 0.6:
            actions.append(("settle", rng.randrange(10), rng.random() < 0.5))
        elif roll < 0.7:
            actions.append(("order", rng.randrange(3), rng.randint(100, 40_000), rng.randint(0, 10)))
        elif roll < 0.8:
            actions.append(("refund", rng.randrange(10), rng.randint(10, 100)))
        elif roll < 0.85:
            actions.append(("retry", rng.randrange(30)))
        elif roll < 0.9:
            actions.append(("retry_refused", rng.randrange(10)))
        elif roll < 0.95:
            actions.append(("reuse", rng.randrange(30)))
        else:
            actions.append(("missing", rng.randint(1, 50)))
    return actions


class Till:
    """One merchant's run of a plan, through the path ``python`` says, noting every answer."""

    def __init__(self, db: Session, slug: str, policy: str, python: bool) -> None:
        self.db, self.python, self.policy = db, python, policy
        self.shop = make_merchant(db, slug)
        set_programme(db, self.shop.id, overdraw=policy, pending_days=2, expiry={"kind": "days", "n": 30})
        send(db, self.shop.id, msg("identify", anonymousId="dev-3"))
        self.profiles = [person(db, self.shop.id, "U1"), person(db, self.shop.id, "U2"),
                         customers(db, self.shop.id, anonymous_id="dev-3").pop()]
        self.holds: list[int] = []
        self.orders: list[tuple[str, int]] = []
        self.done: list[tuple[str, tuple[Any, ...]]] = []
        self.refused: list[tuple[str, tuple[Any, ...]]] = []  # spends refused for too few points
        self.answers: list[Any] = []

    def run(self, n: int, action: tuple[Any, ...]) -> None:
        self.db.connection().execution_options(**{fastpath.PYTHON_LEDGER: self.python})
        attempt = self.db.begin_nested()
        try:
            answer = self._apply(n, action)
        except ledger.InsufficientPoints as exc:
            attempt.commit()  # as the API's request commits it: the refusal is the key's answer now
            answer = ("refused", exc.code, exc.message, exc.details)
        except LianjieError as exc:
            attempt.rollback()
            # A 409's message shows the stored request, whose profile id is this merchant's own.
            message = re.sub(r"'profile_id': (\d+)", lambda m: f"'profile_id': p{self.profiles.index(int(m[1]))}",
                             str(exc))
            message = re.sub(r"hold (\d+)", lambda m: f"hold h{self.holds.index(int(m[1]))}", message)
            answer = ("refused", type(exc).__name__, exc.code, message)
        else:
            attempt.commit()
        self.answers.append(answer)

    def _apply(self, n: int, action: tuple[Any, ...]) -> Any:
        db, tenant, kind = self.db, self.shop.id, action[0]
        if kind == "earn":
            result = ledger.earn(db, tenant, self.profiles[action[1]], f"k{n}", points=action[2], reason="visit")
        elif kind == "spend":
            result = ledger.try_spend(db, tenant, self.profiles[action[1]], f"k{n}", action[2], hold=action[3],
                                      order_no=f"T-{n}")
            self.done.append((f"k{n}", action))
            if result.refusal is not None:
                self.refused.append((f"k{n}", action))
                raise result.refusal
            if action[3] and not result.replayed:
                self.holds.append(result.operation_id)
        elif kind == "settle" and self.holds:
            hold = self.holds[action[1] % len(self.holds)]
            result = (ledger.confirm_hold if action[2] else ledger.cancel_hold)(db, tenant, hold)
            return "settled", self.holds.index(hold), result.kind, result.points, result.replayed, result.hold_status
        elif kind == "order":
            paid = action[2]
            no = order(db, tenant, self.profiles[action[1]], ("S", None, paid), order_no=f"O-{n}",
                       at=dt.datetime.now(dt.UTC) - dt.timedelta(days=action[3]))
            self.orders.append((no, paid))
            return "ordered"
        elif kind == "refund" and self.orders:
            no, paid = self.orders[action[1] % len(self.orders)]
            refund(db, tenant, no, paid * action[2] // 100, paid, refund_no=f"{no}-R{n}")
            return "refunded"
        elif kind in ("retry", "reuse") and self.done:
            key, original = self.done[action[1] % len(self.done)]
            if kind == "reuse":  # the same key for another request: 409 on both paths
                original = (*original[:2], original[2] + 1, *original[3:])
            return self._apply_again(key, original)
        elif kind == "retry_refused" and self.refused:  # after earns, often: must stay refused
            key, original = self.refused[action[1] % len(self.refused)]
            return self._apply_again(key, original)
        elif kind == "merge":
            send(db, tenant, msg("identify", userId="U1", anonymousId="dev-3"))
            return "merged"
        elif kind == "programme":
            set_programme(db, tenant, overdraw=self.policy, pending_days=2,
                          expiry={"kind": "days", "n": action[1]}, hold_minutes=action[1])
            return "programme"
        elif kind == "missing":
            result = ledger.earn(db, tenant, 10**12 + action[1], f"k{n}", points=5)
        else:
            return None
        if kind != "spend":
            self.done.append((f"k{n}", action))
        return "ok", result.kind, result.points, result.replayed, result.hold_status, result.outcome

    def _apply_again(self, key: str, original: tuple[Any, ...]) -> Any:
        if original[0] == "earn":
            result = ledger.earn(self.db, self.shop.id, self.profiles[original[1]], key, points=original[2],
                                 reason="visit")
        else:
            result = ledger.spend(self.db, self.shop.id, self.profiles[original[1]], key, original[2],
                                  hold=original[3], order_no="T-" + key[1:])
        return "again", result.kind, result.points, result.replayed, result.hold_status, result.outcome

    def rows(self) -> dict[str, list[tuple[Any, ...]]]:
        """Everything the ledger wrote for the merchant, with ids replaced by their rank and times by
        their distance from the operation's own time."""
        db, tenant = self.db, self.shop.id
        ops = db.scalars(select(PointsOperation).where(PointsOperation.tenant_id == tenant)
                         .order_by(PointsOperation.id)).all()
        accounts = db.scalars(select(PointsAccount).where(PointsAccount.tenant_id == tenant)
                              .order_by(PointsAccount.id)).all()
        lots = db.scalars(select(PointsLot).where(PointsLot.tenant_id == tenant).order_by(PointsLot.id)).all()
        entries = db.scalars(select(PointsEntry).where(PointsEntry.tenant_id == tenant)
                             .order_by(PointsEntry.id)).all()
        for row in [*ops, *accounts, *lots]:
            db.refresh(row)
        op_rank = {o.id: i for i, o in enumerate(ops)}
        op_at = {o.id: o.created_at for o in ops}
        account_rank = {a.id: i for i, a in enumerate(accounts)}
        lot_rank = {lot.id: i for i, lot in enumerate(lots)}
        profile = {p: i for i, p in enumerate(self.profiles)}

        def request(doc: dict[str, Any]) -> dict[str, Any]:
            return doc | ({"profile_id": profile[doc["profile_id"]]} if "profile_id" in doc else {})

        return {
            "operations": [(o.idempotency_key, o.kind, profile.get(o.profile_id or 0), request(o.request), o.points,
                            o.spend_fen, o.order_no, o.reason, o.operator, o.outcome, o.hold_status,
                            span(o.hold_expires_at, o.created_at)) for o in ops],
            "accounts": [(profile[a.profile_id], a.balance, a.debt) for a in accounts],
            "lots": [(account_rank[lot.account_id], op_rank[lot.operation_id], lot.amount, lot.remaining,
                      lot.available_at - op_at[lot.operation_id],
                      span(lot.expires_at, lot.available_at)) for lot in lots],
            "entries": [(account_rank[e.account_id], op_rank[e.operation_id], lot_rank.get(e.lot_id or 0), e.kind,
                         e.amount) for e in entries],
        }


@pytest.mark.parametrize("seed", range(3))
def test_one_call_operations_write_what_the_python_ledger_writes(db: Session, seed: int) -> None:
    if db.get_bind().dialect.name != "postgresql":
        pytest.skip("the one-call operations are PostgreSQL's")
    policy = POLICIES[seed % len(POLICIES)]
    fast, python = Till(db, f"fast-{seed}", policy, False), Till(db, f"python-{seed}", policy, True)
    for n, action in enumerate(plan(random.Random(seed), 80)):
        fast.run(n, action)
        python.run(n, action)
        assert fast.answers[-1] == python.answers[-1], (n, action)
    assert fast.rows() == python.rows()
    kinds = {a[0] for a in python.answers if isinstance(a, tuple)}
    assert {"ok", "again", "refused", "settled"} <= kinds  # the sequence exercised replays and refusals
    replayed_refusals = [a for a in python.answers if isinstance(a, tuple) and a[0] == "refused"
                         and isinstance(a[-1], dict) and a[-1]["replayed"]]
    assert replayed_refusals  # and retries of remembered refusals
    check_invariants(db, fast.shop.id, allow_debt=policy != "clawback_then_write_off")


def test_confirming_answers_alike_for_every_state_of_a_hold(db: Session) -> None:
    """A lapsed hold stays held (409 hold_lapsed), a cancelled one is 409, another merchant's hold and
    an operation that is no hold are 404; confirming twice is a replay."""
    shop, other = make_merchant(db, "hold-shop"), make_merchant(db, "other-shop")
    buyer = person(db, shop.id, "U1")
    ledger.earn(db, shop.id, buyer, "e", points=100)
    lapsed, cancelled, fine = (ledger.spend(db, shop.id, buyer, f"h{n}", 10, hold=True).operation_id
                               for n in range(3))
    db.execute(update(PointsOperation).where(PointsOperation.id == lapsed)
               .values(hold_expires_at=utcnow() - dt.timedelta(seconds=1)))
    ledger.cancel_hold(db, shop.id, cancelled)
    codes = {}
    for name, tenant, hold in [("lapsed", shop.id, lapsed), ("cancelled", shop.id, cancelled),
                               ("elsewhere", other.id, fine), ("no hold", shop.id, lapsed - 1)]:
        with pytest.raises((Conflict, NotFound)) as caught:
            ledger.confirm_hold(db, tenant, hold)
        codes[name] = caught.value.code
    assert codes == {"lapsed": "hold_lapsed", "cancelled": "hold_cancelled", "elsewhere": "hold_not_found",
                     "no hold": "hold_not_found"}
    assert db.scalar(select(PointsOperation.hold_status).where(PointsOperation.id == lapsed)) == "held"
    first, second = ledger.confirm_hold(db, shop.id, fine), ledger.confirm_hold(db, shop.id, fine)
    assert (first.replayed, second.replayed, second.hold_status) == (False, True, "confirmed")


def span(end: dt.datetime | None, start: dt.datetime) -> dt.timedelta | None:
    return end - start if end is not None else None


def test_a_saved_programme_applies_to_the_next_operation(db: Session) -> None:
    """The server function writes only under the programme the caller computed from: a hold after the
    merchant changed hold_minutes lasts the new time, a lot expires by the new rule."""
    shop = make_merchant(db, "rules-shop")
    set_programme(db, shop.id, hold_minutes=15, expiry={"kind": "days", "n": 10})
    buyer = person(db, shop.id, "U1")
    ledger.earn(db, shop.id, buyer, "e1", points=100)
    ledger.spend(db, shop.id, buyer, "h1", 10, hold=True)
    set_programme(db, shop.id, hold_minutes=45, expiry={"kind": "days", "n": 20})
    ledger.earn(db, shop.id, buyer, "e2", points=100)
    ledger.spend(db, shop.id, buyer, "h2", 10, hold=True)
    holds = db.execute(select(PointsOperation.hold_expires_at, PointsOperation.created_at).where(
        PointsOperation.tenant_id == shop.id, PointsOperation.kind == "hold").order_by(PointsOperation.id)).all()
    assert [span(end, start) for end, start in holds] == [dt.timedelta(minutes=15), dt.timedelta(minutes=45)]
    lots = db.execute(select(PointsLot.expires_at, PointsLot.available_at).where(PointsLot.tenant_id == shop.id)
                      .order_by(PointsLot.id)).all()
    assert [span(end, start) for end, start in lots] == [dt.timedelta(days=10), dt.timedelta(days=20)]
    with pytest.raises(NotFound) as caught:
        ledger.spend(db, shop.id, 10**12, "h3", 10)
    assert caught.value.code == "profile_not_found"
    assert db.scalar(select(PointsOperation.id).where(PointsOperation.idempotency_key == "h3")) is None
