"""PostgreSQL: a till's hot ledger operations as one call of a server-side function each.

*Why.* Earning a given number of points, spending (at once or as a hold) and confirming a hold are
what tills do all day, and on the 2-core machine lianjie is sized for the client and the server share
the CPU. Done as statements from Python (loyalty/pipeline.py), an operation cost about 1.6 ms of CPU
(half building and reading statements in Python, half parsing and planning them on the server), three
times a single-row UPDATE. Here an operation is one prepared ``SELECT * FROM loyalty_apply(…)`` whose
statements the server plans once per connection: migration 0011 creates the functions.

*What is guaranteed.* The same as loyalty/ledger.py: the idempotency key is claimed first (a key taken
before answers with the stored operation, or 409 for a different request, decided in Python by
:mod:`ledger` as for the Python path); the accounts are locked in id order before the lots are read;
spending takes the soonest-expiring spendable lots first (never-expiring last) and, when the lots less
the debt cannot pay, refuses and remembers the refusal under the key (the operation kept with no
points, no hold, no entries: migration 0020); an earn repays the account's debt from its new lot
first; entries are only appended, and every account with an entry gets its balance changed in the same
transaction. The programme's rules stay in Python: the caller computes the lot's expiry and the hold's
end from the programme it last saw, and the function refuses to write when the stored programme is not
that one (:func:`apply` then reads it and calls again).

*Parity.* The suite in tests/loyalty runs on SQLite (the Python ledger) and on PostgreSQL (this path for
earn/spend/hold/confirm), and tests/loyalty/test_fastpath.py runs the same random sequences through
both paths on one PostgreSQL database and compares every row they write.

Earning by a programme event, orders, refunds, adjustments, cancelling holds and expiry keep the
Python path: they are rarer and have more rules.
"""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NamedTuple

import orjson
from sqlalchemy import Connection
from sqlalchemy.orm import Session

from lianjie.loyalty import programme
from lianjie.loyalty.programme import ProgrammeConfig

# A connection with this execution option set to True takes the Python path on PostgreSQL too, as the
# parity test does: ``session.connection().execution_options(**{fastpath.PYTHON_LEDGER: True})``.
PYTHON_LEDGER = "lianjie_python_ledger"

# The request goes through jsonb, as the Python path's does (pipeline.read), so both store its keys
# in jsonb's order and a 409 shows it alike.
_APPLY = ("SELECT * FROM loyalty_apply(%s::bigint, %s::bigint, %s::text, %s::text, %s::jsonb::json, %s::bigint, "
          "%s::text, %s::text, %s::text, %s::timestamptz, %s::timestamptz, %s::timestamptz, %s::text)")
_CONFIRM = "SELECT * FROM loyalty_confirm_hold(%s::bigint, %s::bigint, %s::timestamptz)"


class Applied(NamedTuple):
    """loyalty_apply's answer; ``status`` is one of 'no_profile', 'taken', 'insufficient', 'done'. The
    operation's id is set unless it is 'no_profile'; kind and points when it is 'taken' or 'done';
    ``spendable`` when 'insufficient'; root and members when 'done'."""

    status: str
    op_id: int
    kind: str
    points: int
    hold_status: str | None
    outcome: dict[str, Any] | None
    request: dict[str, Any] | None
    root: int
    members: list[int]
    programme: str | None
    spendable: int | None


class Hold(NamedTuple):
    tenant_id: int
    kind: str
    points: int
    hold_status: str | None
    hold_expires_at: dt.datetime | None


@dataclass
class _Programmes:
    """The programme each merchant had when this process last looked, as stored text and parsed."""

    seen: dict[int, tuple[str, ProgrammeConfig]]
    lock: threading.Lock

    def get(self, tenant_id: int) -> tuple[str | None, ProgrammeConfig]:
        text, config = self.seen.get(tenant_id, (None, programme.from_stored(None)))
        return text, config

    def put(self, tenant_id: int, text: str) -> None:
        config = programme.from_stored(orjson.loads(text) if text else None)
        with self.lock:
            if len(self.seen) >= 4096:
                self.seen.clear()
            self.seen[tenant_id] = (text, config)


_programmes = _Programmes({}, threading.Lock())


def applies(conn: Connection) -> bool:
    """Whether ``conn`` takes this path: PostgreSQL, unless told to take the Python path."""
    return conn.dialect.name == "postgresql" and not conn.get_execution_options().get(PYTHON_LEDGER, False)


def _call(session: Session, sql: str, params: tuple[Any, ...]) -> Any:
    session.flush()  # the ORM's pending rows first: the function reads the tables
    driver: Any = session.connection().connection.dbapi_connection  # psycopg's, for prepare=True
    with driver.cursor() as cursor:
        cursor.execute(sql, params, prepare=True)
        return cursor.fetchone()


def apply(session: Session, tenant_id: int, profile_id: int, key: str, kind: str, request: dict[str, Any],
          points: int, now: dt.datetime, expiries: Callable[[ProgrammeConfig], tuple[Any, Any]], *,
          reason: str | None = None, operator: str | None = None,
          order_no: str | None = None) -> tuple[Applied, ProgrammeConfig]:
    """One earn ('earn') or spend ('spend', 'hold') of ``points``; ``expiries(config)`` gives the new lot's
    expiry and the hold's end under a programme. Returns the answer and the programme it was made under."""
    body = orjson.dumps(request).decode()
    for _ in range(3):  # a programme saved between two calls is rare; three in a row is a bug
        text, config = _programmes.get(tenant_id)
        lot_expires_at, hold_expires_at = expiries(config)
        row = _call(session, _APPLY, (tenant_id, profile_id, key, kind, body, points, reason, operator, order_no,
                                      lot_expires_at, hold_expires_at, now, text))
        answer = Applied(*row)
        if answer.status != "programme":
            return answer, config
        _programmes.put(tenant_id, answer.programme or "")
    raise RuntimeError(f"merchant {tenant_id}'s programme changed on every call")


def confirm_hold(session: Session, tenant_id: int, hold_id: int, now: dt.datetime) -> Hold | None:
    """The hold as it was, confirmed if it was the merchant's, still held and not lapsed at ``now``."""
    row = _call(session, _CONFIRM, (tenant_id, hold_id, now))
    return None if row[0] is None else Hold(*row)
