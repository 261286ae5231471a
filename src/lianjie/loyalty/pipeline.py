"""PostgreSQL: a ledger operation in two round trips, through psycopg's pipeline mode.

The ledger's rules run in Python once for both databases (loyalty/ledger.py); this module only
changes how the statements travel on PostgreSQL. Done one by one, a spend is nine round trips
(BEGIN, customer, claim, lock, lots, entries, lots, account, COMMIT) and each waits for the last, so
16 tills spend their time waiting on the network and on each other's locks. In a pipeline the
statements that do not need each other's answers are sent together:

1. *read*: BEGIN, the customer and programme, the idempotency claim, the account lock and the
   spendable lots (and a new lot's id when one will be written). They run in that order on the
   server, each in its own snapshot, so the lots are read after the lock is granted;
2. *write*: the new lot, the entries, the lots' and accounts' new amounts, and the operation's
   last details.

SQLite runs in-process, where a round trip costs nothing, so it keeps the plain path.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

from psycopg.types.json import Jsonb
from sqlalchemy import Connection

_ROOT = "(SELECT coalesce(merged_into_id, id) FROM profiles WHERE tenant_id = %(t)s AND id = %(p)s)"
# Two index lookups, not one OR that a planner may turn into a scan of the merchant's profiles.
_MEMBERS = (f"SELECT id FROM profiles WHERE tenant_id = %(t)s AND id = {_ROOT} "
            f"UNION ALL SELECT id FROM profiles WHERE tenant_id = %(t)s AND merged_into_id = {_ROOT}")

CUSTOMER = f"""SELECT m.id, {_ROOT} AS root,
  (SELECT config FROM loyalty_programmes WHERE tenant_id = %(t)s) AS config
FROM ({_MEMBERS}) AS m ORDER BY m.id"""

# The engine plans every statement afresh (db.py: force_custom_plan, for ingestion's sake); the
# ledger's statements are all key lookups whose plan never changes, so they may keep a cached one.
PLAN_ONCE = "SET LOCAL plan_cache_mode = auto"

CLAIM = f"""INSERT INTO points_operations (tenant_id, idempotency_key, kind, profile_id, request, points, spend_fen,
  order_no, reason, operator, outcome, hold_status, hold_expires_at, created_at)
VALUES (%(t)s, %(key)s, %(kind)s, coalesce(%(profile_id)s, {_ROOT}), %(request)s, %(points)s, %(spend_fen)s,
  %(order_no)s, %(reason)s, %(operator)s, '{{}}', %(hold_status)s, %(hold_expires_at)s, %(created_at)s)
ON CONFLICT (tenant_id, idempotency_key) DO NOTHING RETURNING id"""

LOCK = f"""SELECT id, profile_id, balance, debt FROM points_accounts
WHERE tenant_id = %(t)s AND profile_id IN ({_MEMBERS}) ORDER BY id FOR UPDATE"""

LOTS = f"""SELECT l.id, l.account_id, l.remaining FROM points_lots l
JOIN points_accounts a ON a.id = l.account_id
WHERE a.tenant_id = %(t)s AND a.profile_id IN ({_MEMBERS}) AND l.remaining > 0 AND l.available_at <= %(now)s
  AND (l.expires_at IS NULL OR l.expires_at > %(now)s)
ORDER BY l.expires_at IS NULL, l.expires_at, l.id"""

NEW_LOT_ID = "SELECT nextval(pg_get_serial_sequence('points_lots', 'id'))"

INSERT_LOT = """INSERT INTO points_lots (id, tenant_id, account_id, operation_id, amount, remaining, available_at,
  expires_at, created_at) VALUES (%(id)s, %(tenant_id)s, %(account_id)s, %(operation_id)s, %(amount)s,
  %(remaining)s, %(available_at)s, %(expires_at)s, %(created_at)s)"""
INSERT_ENTRY = """INSERT INTO points_entries (tenant_id, account_id, operation_id, lot_id, kind, amount, created_at)
VALUES (%(tenant_id)s, %(account_id)s, %(operation_id)s, %(lot_id)s, %(kind)s, %(amount)s, %(created_at)s)"""
UPDATE_LOT = "UPDATE points_lots SET remaining = remaining + %(delta)s WHERE id = %(lot)s"
UPDATE_ACCOUNT = ("UPDATE points_accounts SET balance = balance + %(delta)s, debt = debt + %(debt_delta)s "
                  "WHERE id = %(acct)s")


@dataclass
class Read:
    """What the read round trip brought back."""

    members: list[tuple[int, int, Any]]  # (profile id, root, programme document)
    claimed: int | None  # the new operation's id; None if the key was taken before
    accounts: list[tuple[int, int, int, int]]  # (id, profile id, balance, debt), locked
    lots: list[tuple[int, int, int]] = field(default_factory=list)  # (id, account id, remaining)
    new_lot_id: int | None = None


def is_postgresql(conn: Connection) -> bool:
    return conn.dialect.name == "postgresql"


def _driver(conn: Connection) -> Any:
    return conn.connection.dbapi_connection


def read(conn: Connection, tenant_id: int, profile_id: int, claim: dict[str, Any], *, lots: bool,
         now: dt.datetime, new_lot: bool) -> Read:
    """Customer, claim, lock, lots (and a lot id) in one round trip."""
    driver = _driver(conn)
    base = {"t": tenant_id, "p": profile_id}
    claim_params = base | claim | {"request": Jsonb(claim["request"])}
    cursors = [driver.cursor() for _ in range(5)]
    with driver.pipeline():
        cursors[0].execute(PLAN_ONCE)
        cursors[0].execute(CUSTOMER, base)
        cursors[1].execute(CLAIM, claim_params)
        cursors[2].execute(LOCK, base)
        if lots:
            cursors[3].execute(LOTS, base | {"now": now})
        if new_lot:
            cursors[4].execute(NEW_LOT_ID)
    claimed = cursors[1].fetchone()
    result = Read(members=cursors[0].fetchall(), claimed=claimed[0] if claimed else None,
                  accounts=cursors[2].fetchall(), lots=cursors[3].fetchall() if lots else [],
                  new_lot_id=cursors[4].fetchone()[0] if new_lot else None)
    for cursor in cursors:
        cursor.close()
    return result


def write(conn: Connection, *, new_lots: list[dict[str, Any]], entries: list[dict[str, Any]],
          lots: list[dict[str, Any]], accounts: list[dict[str, Any]],
          operation: tuple[int, dict[str, Any]] | None) -> None:
    """Every write of an operation in one round trip.

    Row by row on purpose: ``executemany`` opens a nested pipeline, and each nested one syncs (a round
    trip of its own); an operation writes a handful of rows."""
    driver = _driver(conn)
    with driver.pipeline(), driver.cursor() as cursor:
        for sql, rows in ((INSERT_LOT, new_lots), (INSERT_ENTRY, entries), (UPDATE_LOT, lots),
                          (UPDATE_ACCOUNT, accounts)):
            for row in rows:
                cursor.execute(sql, row)
        if operation is not None:
            op_id, values = operation
            sets = ", ".join(f"{name} = %({name})s" for name in values)
            params = {k: Jsonb(v) if isinstance(v, dict) else v for k, v in values.items()}
            cursor.execute(f"UPDATE points_operations SET {sets} WHERE id = %(op_id)s", params | {"op_id": op_id})
