"""PostgreSQL: a ledger operation in two statements, a read and a write.

The ledger's rules run in Python once for both databases (loyalty/ledger.py); this module only
changes how the statements travel on PostgreSQL. Done one by one, a spend is nine round trips
(BEGIN, customer, claim, lock, lots, entries, lots, account, COMMIT), each waiting for the last, and
each statement costs the server its own parse, bind and executor start. Here:

1. *read*: one ``WITH`` statement claims the idempotency key, finds the customer and the programme,
   locks the accounts and reads the lots (and draws a new lot's id); the lots are read again, in a
   statement of their own, only when another operation changed the accounts meanwhile;
2. *write*: one ``WITH`` statement writes the new lot, the entries, the lots' and accounts' new
   amounts and the operation's last details.

Both run with cached generic plans (:data:`PLAN_ONCE`). SQLite runs in-process, where a statement
costs little, so it keeps the plain path. The tills' hot operations (earning a given number of
points, spend, hold, confirm) go further, to one call of a server function: loyalty/fastpath.py.
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

# The engine plans every statement afresh (db.py: force_custom_plan, for ingestion's sake). The
# ledger's statements are key lookups whose plan never changes, and planning its two big statements
# costs more than running them, so within a ledger transaction every statement keeps one generic plan.
PLAN_ONCE = "SET LOCAL plan_cache_mode = force_generic_plan"

_CLAIM = f"""INSERT INTO points_operations (tenant_id, idempotency_key, kind, profile_id, request, points, spend_fen,
  order_no, reason, operator, outcome, hold_status, hold_expires_at, created_at)
VALUES (%(t)s, %(key)s, %(kind)s, coalesce(%(profile_id)s, {_ROOT}), %(request)s, %(points)s, %(spend_fen)s,
  %(order_no)s, %(reason)s, %(operator)s, '{{}}', %(hold_status)s, %(hold_expires_at)s, %(created_at)s)
ON CONFLICT (tenant_id, idempotency_key) DO NOTHING RETURNING id"""

# One statement: the claim, the customer and programme, the locked accounts and (when asked) every lot
# with points left, with a new lot's id. The whole statement reads in one snapshot, taken before the
# lock is granted, except the locked rows themselves, which PostgreSQL re-reads once the lock is
# granted. So ``fresh`` compares each locked account's row version (``xmin``) with the one the
# snapshot saw: every operation that changes a lot also changes its account, so when none of the
# accounts changed, the lots read are current too; otherwise :func:`read` reads them again.
_READ = f"""WITH members AS ({_MEMBERS}),
claim AS ({_CLAIM}),
locked AS (SELECT id, profile_id, balance, debt, xmin AS version FROM points_accounts
  WHERE tenant_id = %(t)s AND profile_id IN (SELECT id FROM members) ORDER BY id FOR UPDATE)
SELECT {_ROOT}, (SELECT array_agg(id ORDER BY id) FROM members),
  (SELECT config FROM loyalty_programmes WHERE tenant_id = %(t)s), (SELECT id FROM claim),
  (SELECT array_agg(ARRAY[id, profile_id, balance, debt] ORDER BY id) FROM locked),
  (SELECT coalesce(bool_and(a.xmin = l.version), true) FROM locked l JOIN points_accounts a ON a.id = l.id)"""
_READ_LOTS = """,
  (SELECT array_agg(ARRAY[l.id, l.account_id, l.remaining] ORDER BY l.expires_at IS NULL, l.expires_at, l.id)
   FROM points_lots l WHERE l.account_id IN (SELECT id FROM locked) AND l.remaining > 0),
  (SELECT array_agg(ARRAY[l.available_at, l.expires_at] ORDER BY l.expires_at IS NULL, l.expires_at, l.id)
   FROM points_lots l WHERE l.account_id IN (SELECT id FROM locked) AND l.remaining > 0)"""
_READ_LOT_ID = ",\n  nextval(pg_get_serial_sequence('points_lots', 'id'))"
READ = {(lots, lot_id): _READ + (_READ_LOTS if lots else "") + (_READ_LOT_ID if lot_id else "")
        for lots in (False, True) for lot_id in (False, True)}

# Lots again, in a snapshot of their own, for when the one-statement read saw them before another
# operation on the same customer committed.
LOTS = f"""SELECT l.id, l.account_id, l.remaining, l.available_at, l.expires_at FROM points_lots l
JOIN points_accounts a ON a.id = l.account_id
WHERE a.tenant_id = %(t)s AND a.profile_id IN ({_MEMBERS}) AND l.remaining > 0
ORDER BY l.expires_at IS NULL, l.expires_at, l.id"""


@dataclass
class Read:
    """What the read round trip brought back."""

    members: list[tuple[int, int, Any]]  # (profile id, root, programme document)
    claimed: int | None  # the new operation's id; None if the key was taken before
    accounts: list[tuple[int, int, int, int]]  # (id, profile id, balance, debt), locked
    lots: list[tuple[int, int, int]] = field(default_factory=list)  # (id, account id, remaining), spendable
    new_lot_id: int | None = None


def is_postgresql(conn: Connection) -> bool:
    return conn.dialect.name == "postgresql"


def _driver(conn: Connection) -> Any:
    return conn.connection.dbapi_connection


def _spendable(lots: list[tuple[int, int, int]], times: list[tuple[Any, Any]],
               now: dt.datetime) -> list[tuple[int, int, int]]:
    return [lot for lot, (available_at, expires_at) in zip(lots, times, strict=True)
            if available_at <= now and (expires_at is None or expires_at > now)]


def read(conn: Connection, tenant_id: int, profile_id: int, claim: dict[str, Any], *, lots: bool,
         now: dt.datetime, new_lot: bool) -> Read:
    """Customer, claim, lock, lots (and a lot id) in one statement; the lots once more, in a snapshot of
    their own, when another operation on the customer committed after this one's snapshot was taken."""
    driver = _driver(conn)
    base = {"t": tenant_id, "p": profile_id}
    params = base | claim | {"request": Jsonb(claim["request"])}
    with driver.pipeline(), driver.cursor() as cursor:
        cursor.execute(PLAN_ONCE)
        cursor.execute(READ[lots, new_lot], params)
        row = cursor.fetchone()
    root, members, config, claimed, locked, fresh = row[:6]
    accounts = [tuple(a) for a in locked or []]
    result = Read(members=[(m, root, config) for m in members or []], claimed=claimed, accounts=accounts,
                  new_lot_id=row[-1] if new_lot else None)
    if lots:
        found, times = [tuple(x) for x in row[6] or []], [tuple(x) for x in row[7] or []]
        if not fresh:
            with driver.cursor() as cursor:
                current = cursor.execute(LOTS, base).fetchall()
            found, times = [r[:3] for r in current], [r[3:] for r in current]
        result.lots = _spendable(found, times, now)
    return result


def write(conn: Connection, *, new_lots: list[dict[str, Any]], entries: list[dict[str, Any]],
          lots: list[dict[str, Any]], accounts: list[dict[str, Any]],
          operation: tuple[int, dict[str, Any]] | None) -> None:
    """Every write of an operation in one statement: its new lot, entries, lot and account changes and
    the operation's last details, as data-modifying parts of one ``WITH``.

    The parts of one statement share a snapshot, so a part cannot update a row another part inserts: a
    change to the new lot (a debt repaid from it at once) is folded into the row as inserted. Updates
    find their rows by ``id = ANY(ids)``, which stays an index lookup in a cached generic plan (a join
    to ``unnest(ids)`` may be planned as a scan of the whole table)."""
    parts: list[str] = []
    params: dict[str, Any] = {}
    changes = {row["lot"]: row["delta"] for row in lots}
    for n, lot in enumerate(new_lots):
        parts.append(f"new_lot{n} AS (INSERT INTO points_lots (id, tenant_id, account_id, operation_id, amount, "
                     f"remaining, available_at, expires_at, created_at) VALUES (%(l{n}_id)s, %(l{n}_tenant_id)s, "
                     f"%(l{n}_account_id)s, %(l{n}_operation_id)s, %(l{n}_amount)s, %(l{n}_remaining)s, "
                     f"%(l{n}_available_at)s, %(l{n}_expires_at)s, %(l{n}_created_at)s))")
        params |= {f"l{n}_{k}": v for k, v in lot.items()}
        params[f"l{n}_remaining"] = lot["remaining"] + changes.pop(lot["id"], 0)
    if entries:
        parts.append("entries AS (INSERT INTO points_entries (tenant_id, account_id, operation_id, lot_id, kind, "
                     "amount, created_at) SELECT %(e_tenant)s, e.account, %(e_operation)s, e.lot, e.kind, e.amount, "
                     "%(e_at)s FROM unnest(%(e_accounts)s::bigint[], %(e_lots)s::bigint[], %(e_kinds)s::text[], "
                     "%(e_amounts)s::bigint[]) AS e(account, lot, kind, amount))")
        first = entries[0]
        params |= {"e_tenant": first["tenant_id"], "e_operation": first["operation_id"], "e_at": first["created_at"],
                   "e_accounts": [e["account_id"] for e in entries], "e_lots": [e["lot_id"] for e in entries],
                   "e_kinds": [e["kind"] for e in entries], "e_amounts": [e["amount"] for e in entries]}
    if changes:
        parts.append("lots AS (UPDATE points_lots SET remaining = remaining + "
                     "(%(u_deltas)s::bigint[])[array_position(%(u_lots)s::bigint[], id)] "
                     "WHERE id = ANY(%(u_lots)s::bigint[]))")
        params |= {"u_lots": list(changes), "u_deltas": list(changes.values())}
    if accounts:
        parts.append("accounts AS (UPDATE points_accounts SET "
                     "balance = balance + (%(a_deltas)s::bigint[])[array_position(%(a_ids)s::bigint[], id)], "
                     "debt = debt + (%(a_debts)s::bigint[])[array_position(%(a_ids)s::bigint[], id)] "
                     "WHERE id = ANY(%(a_ids)s::bigint[]))")
        params |= {"a_ids": [a["acct"] for a in accounts], "a_deltas": [a["delta"] for a in accounts],
                   "a_debts": [a["debt_delta"] for a in accounts]}
    if operation is not None:
        op_id, values = operation
        sets = ", ".join(f"{name} = %(o_{name})s" for name in values)
        params |= {f"o_{k}": Jsonb(v) if isinstance(v, dict) else v for k, v in values.items()} | {"o_id": op_id}
        last = f"UPDATE points_operations SET {sets} WHERE id = %(o_id)s"
    elif parts:
        last = "SELECT 1"
    else:
        return
    sql = (f"WITH {', '.join(parts)} " if parts else "") + last
    with _driver(conn).cursor() as cursor:
        cursor.execute(sql, params)
