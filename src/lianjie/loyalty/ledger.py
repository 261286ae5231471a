"""The points ledger: earn, spend (at once, or hold then confirm or cancel as a till does), take back on
refund, adjust, expire. The table layout and its invariants are described in loyalty/models.py.

Every write follows the same steps, which is what makes it safe under concurrency and retries:

1. claim the idempotency key by inserting the operation (``ON CONFLICT DO NOTHING``); a key already
   taken returns the stored operation (or 409 if it was taken for a different request);
2. lock the customer's accounts (``SELECT … FOR UPDATE`` in id order on PostgreSQL; SQLite's
   write transaction already serialises writers);
3. read the lots, decide, and write entries, lots and account balances with bulk statements.

Spending takes the soonest-expiring spendable lots first (lots that never expire last).

A spend or hold refused for too few points is remembered, not given back: its operation stays with no
points, no hold and no entries, and an ``outcome`` naming the refusal, so a retry under the same key
answers the same refusal (marked replayed) instead of spending once the customer has earned enough.
A till that timed out and retries must not find its "no" turned into a "yes" it never showed the
customer (payment APIs answer a retried key the same way). See :func:`try_spend`.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple, NoReturn

from sqlalchemy import Connection, Table, bindparam, func, or_, select, update
from sqlalchemy.orm import Session

from lianjie.db import UTCDateTime, insert_ignoring_duplicates, utcnow
from lianjie.errors import Conflict, NotFound, ValidationFailed
from lianjie.identity.models import Profile
from lianjie.identity.service import member_ids
from lianjie.loyalty import fastpath, pipeline, programme, tiers
from lianjie.loyalty.membership import benefits
from lianjie.loyalty.models import (
    EntryKind,
    HoldStatus,
    LoyaltyProgramme,
    OperationKind,
    PointsAccount,
    PointsEntry,
    PointsLot,
    PointsOperation,
)
from lianjie.loyalty.programme import Overdraw, ProgrammeConfig
from lianjie.tenants import audit

ACCOUNTS: Table = PointsAccount.__table__  # type: ignore[assignment]
OPERATIONS: Table = PointsOperation.__table__  # type: ignore[assignment]
LOTS: Table = PointsLot.__table__  # type: ignore[assignment]
ENTRIES: Table = PointsEntry.__table__  # type: ignore[assignment]

MAX_POINTS = 100_000_000


class InsufficientPoints(ValidationFailed):
    code = "insufficient_points"


REFUSED = "insufficient_points"  # a remembered refusal's ``outcome["refused"]``


def _spend_refusal(points: int, spendable: int, *, replayed: bool) -> InsufficientPoints:
    """The one wording of a refused spend, for the first answer and every replay of it."""
    return InsufficientPoints(f"{points} points asked for but only {spendable} are spendable", field="points",
                              details={"replayed": replayed, "spendable": spendable})


@dataclass(frozen=True, slots=True)
class Customer:
    tenant_id: int
    root: int
    profile_ids: tuple[int, ...]


@dataclass(slots=True)
class Account:
    id: int
    profile_id: int
    balance: int
    debt: int


@dataclass(slots=True)
class Result:
    """What an operation did; ``replayed`` is True when the idempotency key had been applied before.

    ``refusal`` is set when the operation was refused and the refusal is its remembered answer (a
    spend or hold for more points than were spendable): nothing was applied.
    """

    operation_id: int
    kind: str
    points: int
    replayed: bool = False
    hold_status: str | None = None
    outcome: dict[str, Any] = field(default_factory=dict)
    refusal: InsufficientPoints | None = None


PROFILES: Table = Profile.__table__  # type: ignore[assignment]
PROGRAMMES: Table = LoyaltyProgramme.__table__  # type: ignore[assignment]

# The hot path's statements are built once: building a statement costs more than running it here.
_ROOT = (select(func.coalesce(PROFILES.c.merged_into_id, PROFILES.c.id))
         .where(PROFILES.c.tenant_id == bindparam("t"), PROFILES.c.id == bindparam("p")).scalar_subquery())
_MEMBERS = member_ids(bindparam("t"), _ROOT).subquery()
_CUSTOMER = (select(_MEMBERS.c.id, _ROOT.label("root"),
                    select(PROGRAMMES.c.config).where(PROGRAMMES.c.tenant_id == bindparam("t"))
                    .scalar_subquery().label("config"))
             .order_by(_MEMBERS.c.id))


def customer_and_rules(session: Session, tenant_id: int, profile_id: int) -> tuple[Customer, ProgrammeConfig]:
    """The customer a profile belongs to (all its profiles) and the programme, in one round trip."""
    session.flush()  # statements below run on the connection, past the ORM's autoflush
    rows = session.connection().execute(_CUSTOMER, {"t": tenant_id, "p": profile_id}).all()
    if not rows:
        raise NotFound(f"no profile {profile_id}", code="profile_not_found")
    customer = Customer(tenant_id, rows[0].root, tuple(r.id for r in rows))
    return customer, programme.from_stored(rows[0].config)


def customer_of(session: Session, tenant_id: int, profile_id: int) -> Customer:
    return customer_and_rules(session, tenant_id, profile_id)[0]


# ---- the shared steps ------------------------------------------------------------------------------


def _claim(conn: Connection, tenant_id: int, key: str, kind: OperationKind, request: dict[str, Any],
           strict: bool = True, **values: Any) -> tuple[int, bool]:
    """Insert the operation under its idempotency key; returns (operation id, whether it existed).

    ``strict=False`` is for keys lianjie derives itself (``order:<no>``): commerce already refused a
    different order under the same number, so a second event for it is a replay whatever it says.
    A client's key is checked by :func:`_gather` before it gets here.
    """
    row = dict(_OPERATION_DEFAULTS, tenant_id=tenant_id, idempotency_key=key, kind=kind.value, request=request,
               outcome={}, created_at=utcnow())
    row.update(values)
    claim = insert_ignoring_duplicates(conn, OPERATIONS, ("tenant_id", "idempotency_key"), returning="id")
    new_id = conn.execute(claim, row).scalar()
    if new_id is not None:
        return int(new_id), False
    stored = conn.execute(select(OPERATIONS.c.id, OPERATIONS.c.kind, OPERATIONS.c.request).where(
        OPERATIONS.c.tenant_id == tenant_id, OPERATIONS.c.idempotency_key == key)).one()
    if stored.kind != kind.value or (strict and stored.request != request):
        raise _key_reused(key, stored.kind, stored.request)
    return int(stored.id), True


def _key_reused(key: str, kind: str, request: Any) -> Conflict:
    return Conflict(f"idempotency key {key!r} was already used for a different {kind} request ({request})",
                    code="idempotency_key_reused", field="idempotency_key")


def _check_key(key: str) -> None:
    if not key or len(key) > 128:
        raise ValidationFailed("an idempotency key of 1 to 128 characters is required", field="idempotency_key")


def _fast(session: Session, tenant_id: int, profile_id: int, key: str, kind: OperationKind, request: dict[str, Any],
          points: int, now: dt.datetime, **values: Any) -> Result:
    """An earn of a given number of points, a spend or a hold on PostgreSQL, in one call (loyalty/fastpath.py):
    the same answers as the Python path below, decided here from what the server function reports."""
    _check_key(key)

    def expiries(config: ProgrammeConfig) -> tuple[dt.datetime | None, dt.datetime | None]:
        if kind == OperationKind.EARN:
            return config.expires_at(now), None
        return None, (now + dt.timedelta(minutes=config.hold_minutes) if kind == OperationKind.HOLD else None)

    got, config = fastpath.apply(session, tenant_id, profile_id, key, kind.value, request, points, now, expiries,
                                 **values)
    if got.status == "no_profile":
        raise NotFound(f"no profile {profile_id}", code="profile_not_found")
    if got.status == "taken":
        if got.kind != kind.value or got.request != request:
            raise _key_reused(key, got.kind, got.request)
        return _with_refusal(Result(got.op_id, got.kind, got.points, True, got.hold_status, got.outcome or {}),
                             request)
    if got.status == "insufficient":  # the function stored the refusal under the key, as _remember does
        spendable = max(got.spendable or 0, 0)
        return Result(got.op_id, kind.value, 0, outcome={"refused": REFUSED, "spendable": spendable},
                      refusal=_spend_refusal(points, spendable, replayed=False))
    if kind == OperationKind.EARN:
        tiers.upgrade_if_qualified(session, config, tenant_id, got.root, got.members, now)
    return Result(got.op_id, kind.value, got.points, hold_status=got.hold_status)


_OPERATION_DEFAULTS: dict[str, Any] = {"profile_id": None, "points": 0, "spend_fen": 0, "order_no": None,
                                       "reason": None, "operator": None, "hold_status": None, "hold_expires_at": None}


def _refuse(conn: Connection, operation_id: int, error: Exception) -> NoReturn:
    """Give a claimed key back before refusing, so the request changes nothing even if the caller's
    transaction goes on (a subscriber's, a test's) and a corrected retry may use the same key."""
    conn.execute(OPERATIONS.delete().where(OPERATIONS.c.id == operation_id))
    raise error


def _remember(conn: Connection, operation_id: int, kind: OperationKind, points: int, spendable: int) -> Result:
    """Keep a spend refused for too few points as the answer to its key: no points, no hold, no entries,
    and an outcome saying so (and what was spendable, for the replay's message)."""
    spendable = max(spendable, 0)
    outcome = {"refused": REFUSED, "spendable": spendable}
    conn.execute(update(OPERATIONS).where(OPERATIONS.c.id == operation_id).values(
        points=0, hold_status=None, hold_expires_at=None, outcome=outcome))
    refusal = _spend_refusal(points, spendable, replayed=False)
    return Result(operation_id, kind.value, 0, outcome=outcome, refusal=refusal)


def _with_refusal(result: Result, request: dict[str, Any]) -> Result:
    """A replayed result, with the refusal it stands for if the operation was a remembered refusal."""
    if result.outcome.get("refused") == REFUSED:
        result.refusal = _spend_refusal(int(request["points"]), int(result.outcome.get("spendable", 0)),
                                        replayed=True)
    return result


def stored_result(session: Session, operation_id: int, *, replayed: bool = True) -> Result:
    row = session.execute(select(OPERATIONS).where(OPERATIONS.c.id == operation_id)).one()
    return Result(row.id, row.kind, row.points, replayed, row.hold_status, row.outcome or {})


_LOCK = (select(ACCOUNTS.c.id, ACCOUNTS.c.profile_id, ACCOUNTS.c.balance, ACCOUNTS.c.debt)
         .where(ACCOUNTS.c.tenant_id == bindparam("t"), ACCOUNTS.c.profile_id.in_(bindparam("ids", expanding=True)))
         .order_by(ACCOUNTS.c.id).with_for_update())


class LotRow(NamedTuple):
    id: int
    account_id: int
    remaining: int


@dataclass(slots=True)
class _Gathered:
    """Everything an operation reads before it decides: the customer, the rules, its claim, the
    locked accounts (by profile id) and, when asked, the spendable lots."""

    customer: Customer
    config: ProgrammeConfig
    op_id: int
    replayed: bool
    accounts: dict[int, Account] = field(default_factory=dict)
    lots: list[Any] = field(default_factory=list)
    new_lot_id: int | None = None


def _gather(session: Session, conn: Connection, tenant_id: int, profile_id: int, key: str, kind: OperationKind,
            request: dict[str, Any], now: dt.datetime, *, strict: bool = True, lots: bool = False,
            create_for: int | None = None, for_root: bool = False, new_lot: bool = False,
            owner: int | None = None, **values: Any) -> _Gathered:
    """Claim the key, then lock the customer's accounts (creating ``create_for``'s, or the root's with
    ``for_root``) and read the spendable lots. Replays come back with ``replayed`` and nothing locked."""
    _check_key(key)
    if owner is not None:
        values["profile_id"] = owner  # the profile the operation is attributed to; else the customer's root
    if not pipeline.is_postgresql(conn):
        customer, config = customer_and_rules(session, tenant_id, profile_id)
        values.setdefault("profile_id", customer.root)
        op_id, replayed = _claim(conn, tenant_id, key, kind, request, strict, created_at=now, **values)
        if replayed:
            return _Gathered(customer, config, op_id, True)
        accounts = _lock_accounts(conn, customer, create_for=customer.root if for_root else create_for)
        found = _spendable_lots(conn, list(accounts.values()), now) if lots and accounts else []
        return _Gathered(customer, config, op_id, False, accounts, found)
    session.flush()
    claim = _OPERATION_DEFAULTS | {"key": key, "kind": kind.value, "request": request, "created_at": now} | values
    read = pipeline.read(conn, tenant_id, profile_id, claim, lots=lots, now=now, new_lot=new_lot)
    if not read.members:
        missing = NotFound(f"no profile {profile_id}", code="profile_not_found")
        if read.claimed is not None:
            _refuse(conn, read.claimed, missing)
        raise missing
    customer = Customer(tenant_id, read.members[0][1], tuple(m[0] for m in read.members))
    config = programme.from_stored(read.members[0][2])
    if read.claimed is None:
        values.setdefault("profile_id", customer.root)
        op_id, _ = _claim(conn, tenant_id, key, kind, request, strict, created_at=now, **values)
        return _Gathered(customer, config, op_id, True)
    accounts = {r[1]: Account(*r) for r in read.accounts}
    target = customer.root if for_root else create_for
    if target is not None and target not in accounts:
        accounts = _lock_accounts(conn, customer, create_for=target)
    return _Gathered(customer, config, read.claimed, False, accounts, [LotRow(*r) for r in read.lots],
                     read.new_lot_id)


def _lock_accounts(conn: Connection, customer: Customer, create_for: int | None = None) -> dict[int, Account]:
    """The customer's accounts by profile id, locked until the transaction ends."""
    params = {"t": customer.tenant_id, "ids": list(customer.profile_ids)}
    accounts = {r.profile_id: Account(r.id, r.profile_id, r.balance, r.debt) for r in conn.execute(_LOCK, params)}
    if create_for is not None and create_for not in accounts:
        conn.execute(insert_ignoring_duplicates(conn, ACCOUNTS, ("tenant_id", "profile_id")),
                     {"tenant_id": customer.tenant_id, "profile_id": create_for, "balance": 0, "debt": 0,
                      "created_at": utcnow()})
        row = conn.execute(_LOCK, params | {"ids": [create_for]}).one()
        accounts[create_for] = Account(row.id, row.profile_id, row.balance, row.debt)
    return accounts


_LIVE_LOTS = (select(LOTS.c.id, LOTS.c.account_id, LOTS.c.remaining)
              .where(LOTS.c.account_id.in_(bindparam("accounts", expanding=True)), LOTS.c.remaining > 0,
                     or_(LOTS.c.expires_at.is_(None), LOTS.c.expires_at > bindparam("now", type_=UTCDateTime)))
              .order_by(LOTS.c.expires_at.is_(None), LOTS.c.expires_at, LOTS.c.id))
_SPENDABLE_LOTS = _LIVE_LOTS.where(LOTS.c.available_at <= bindparam("now", type_=UTCDateTime))


def _spendable_lots(conn: Connection, accounts: list[Account], now: dt.datetime, *,
                    include_pending: bool = False) -> list[Any]:
    """Lots that can pay, soonest-expiring first (never-expiring last)."""
    query = _LIVE_LOTS if include_pending else _SPENDABLE_LOTS
    return list(conn.execute(query, {"accounts": [a.id for a in accounts], "now": now}))


_INSERT_ENTRIES = ENTRIES.insert()
_UPDATE_LOTS = update(LOTS).where(LOTS.c.id == bindparam("lot")).values(remaining=LOTS.c.remaining + bindparam("delta"))
_UPDATE_ACCOUNTS = update(ACCOUNTS).where(ACCOUNTS.c.id == bindparam("acct")).values(
    balance=ACCOUNTS.c.balance + bindparam("delta"), debt=ACCOUNTS.c.debt + bindparam("debt_delta"))
_INSERT_LOT = LOTS.insert().returning(LOTS.c.id)


class _Writer:
    """Collects one operation's entries and lot/account changes, then writes them in bulk."""

    def __init__(self, conn: Connection, tenant_id: int, operation_id: int, now: dt.datetime,
                 new_lot_id: int | None = None) -> None:
        self.conn, self.tenant_id, self.operation_id, self.now = conn, tenant_id, operation_id, now
        self.new_lot_id = new_lot_id  # PostgreSQL: drawn in the read round trip, so the lot goes with the writes
        self.new_lots: list[dict[str, Any]] = []
        self.operation_values: dict[str, Any] = {}
        self.entries: list[dict[str, Any]] = []
        self.lot_changes: dict[int, int] = {}
        self.balance: dict[int, int] = {}
        self.debt: dict[int, int] = {}

    def entry(self, account: Account, kind: EntryKind, amount: int, lot_id: int | None) -> None:
        self.entries.append({"tenant_id": self.tenant_id, "account_id": account.id, "operation_id": self.operation_id,
                             "lot_id": lot_id, "kind": kind.value, "amount": amount, "created_at": self.now})
        self.balance[account.id] = self.balance.get(account.id, 0) + amount
        account.balance += amount
        if lot_id is None:
            self.debt[account.id] = self.debt.get(account.id, 0) - amount
            account.debt -= amount
        elif kind not in (EntryKind.CREDIT,):
            self.lot_changes[lot_id] = self.lot_changes.get(lot_id, 0) + amount

    def take(self, accounts_by_id: dict[int, Account], lots: list[Any], wanted: int, kind: EntryKind) -> int:
        """Debit up to ``wanted`` points from ``lots`` in their order; returns how many were taken."""
        taken = 0
        for lot in lots:
            if taken >= wanted:
                break
            left = lot.remaining + self.lot_changes.get(lot.id, 0)
            step = min(left, wanted - taken)
            if step > 0:
                self.entry(accounts_by_id[lot.account_id], kind, -step, lot.id)
                taken += step
        return taken

    def flush(self) -> None:
        conn = self.conn
        lots = [{"lot": k, "delta": v} for k, v in self.lot_changes.items() if v]
        # Every account with an entry is written, even when its changes net to nothing: a new row
        # version is how pipeline.read knows an account's lots changed.
        changed = [{"acct": a, "delta": d, "debt_delta": self.debt.get(a, 0)} for a, d in self.balance.items()]
        operation = (self.operation_id, self.operation_values) if self.operation_values else None
        if pipeline.is_postgresql(conn):
            pipeline.write(conn, new_lots=self.new_lots, entries=self.entries, lots=lots, accounts=changed,
                           operation=operation)
        else:
            if self.new_lots:
                conn.execute(LOTS.insert(), self.new_lots)
            if self.entries:
                conn.execute(_INSERT_ENTRIES, self.entries)
            if lots:
                conn.execute(_UPDATE_LOTS, lots)
            if changed:
                conn.execute(_UPDATE_ACCOUNTS, changed)
            if operation is not None:
                conn.execute(update(OPERATIONS).where(OPERATIONS.c.id == operation[0]).values(**operation[1]))
        self.new_lots, self.entries, self.lot_changes, self.balance, self.debt = [], [], {}, {}, {}
        self.operation_values = {}


def _credit(writer: _Writer, config: ProgrammeConfig, account: Account, points: int,
            effective: dt.datetime, *, pending: bool = True) -> None:
    """A new lot; any debt of the account is repaid from it first."""
    available = config.available_at(effective) if pending else effective
    lot = {"tenant_id": writer.tenant_id, "account_id": account.id, "operation_id": writer.operation_id,
           "amount": points, "remaining": points, "available_at": available,
           "expires_at": config.expires_at(available), "created_at": writer.now}
    if writer.new_lot_id is not None:
        lot_id = writer.new_lot_id
        writer.new_lot_id = None
        writer.new_lots.append(lot | {"id": lot_id})
    else:
        lot_id = writer.conn.execute(_INSERT_LOT, lot).scalar_one()
    writer.entry(account, EntryKind.CREDIT, points, lot_id)
    repay = min(account.debt, points)
    if repay:
        writer.entry(account, EntryKind.REPAY, -repay, lot_id)
        writer.entry(account, EntryKind.REPAY, repay, None)


def _check_points(points: int, field_name: str = "points") -> None:
    if not 0 < points <= MAX_POINTS:
        raise ValidationFailed(f"{field_name} must be between 1 and {MAX_POINTS:,}", field=field_name,
                               code="invalid_points")


# ---- earning -----------------------------------------------------------------------------------------


def earn(session: Session, tenant_id: int, profile_id: int, key: str, *, points: int | None = None,
         event: str | None = None, reason: str | None = None, operator: str | None = None) -> Result:
    """Credit points for a non-purchase event (by the programme's rule) or a given amount."""
    if (points is None) == (event is None):
        raise ValidationFailed("give either points or an event", field="points")
    if points is not None:
        _check_points(points)
    conn, now = session.connection(), utcnow()
    request = {"profile_id": profile_id, "points": points, "event": event, "reason": reason}
    if points is not None and fastpath.applies(conn):
        return _fast(session, tenant_id, profile_id, key, OperationKind.EARN, request, points, now, reason=reason,
                     operator=operator)
    got = _gather(session, conn, tenant_id, profile_id, key, OperationKind.EARN, request, now, for_root=True,
                  new_lot=True, reason=(reason or event), operator=operator, points=points or 0)
    if got.replayed:
        return stored_result(session, got.op_id)
    if event is not None:
        if event not in got.config.events:
            _refuse(conn, got.op_id, ValidationFailed(
                f"the programme gives no points for {event!r} (it knows {sorted(got.config.events)})",
                field="event", code="unknown_event"))
        points = got.config.events[event]
    assert points is not None
    writer = _Writer(conn, tenant_id, got.op_id, now, got.new_lot_id)
    if points:
        _credit(writer, got.config, got.accounts[got.customer.root], points, now, pending=False)
    if event is not None:
        writer.operation_values["points"] = points
    writer.flush()
    tiers.upgrade_if_qualified(session, got.config, tenant_id, got.customer.root, got.customer.profile_ids, now)
    return Result(got.op_id, OperationKind.EARN.value, points)


def earn_for_order(session: Session, tenant_id: int, profile_id: int, order_no: str, paid_fen: int,
                   lines: list[tuple[str, str | None, int]], ordered_at: dt.datetime,
                   units: Sequence[tuple[int, int]] | None = None) -> Result:
    """Points an order earns by the programme's rules and the buyer's tier, pending for the return window.

    ``units`` gives each line's (line number, quantity), in the order of ``lines``: the operation's
    outcome then keeps what each line earned (``{"lines": [[line_no, quantity, points], …]}``), which
    is what a refund of that line takes back (:func:`reverse_for_refund`).
    """
    conn = session.connection()
    request = {"order_no": order_no, "paid_fen": paid_fen}
    got = _gather(session, conn, tenant_id, profile_id, f"order:{order_no}", OperationKind.ORDER, request,
                  ordered_at, strict=False, create_for=profile_id, new_lot=True, owner=profile_id,
                  order_no=order_no, spend_fen=paid_fen)
    if got.replayed:
        return stored_result(session, got.op_id)
    # A paid plan's multiplier stacks with the tier's: 2x for gold times 1.5x for an Executive plan is 3x.
    factor = tiers.multiplier(session, got.config, got.customer.profile_ids) * benefits.multiplier_for_ids(
        session, tenant_id, got.customer.profile_ids, ordered_at)
    per_line = got.config.order_line_points(lines, factor)
    points = sum(per_line)
    writer = _Writer(conn, tenant_id, got.op_id, utcnow(), got.new_lot_id)
    if points > 0:
        _credit(writer, got.config, got.accounts[profile_id], points, ordered_at)
        writer.operation_values["points"] = points
        if units is not None:
            writer.operation_values["outcome"] = {
                "lines": [[no, quantity, earned] for (no, quantity), earned in zip(units, per_line, strict=True)]}
    writer.flush()
    tiers.upgrade_if_qualified(session, got.config, tenant_id, got.customer.root, got.customer.profile_ids)
    return Result(got.op_id, OperationKind.ORDER.value, points)


def reverse_for_refund(session: Session, tenant_id: int, order_no: str, refund_no: str, refunded_fen: int,
                       order_paid_fen: int, lines: Sequence[tuple[int, int]] = ()) -> Result | None:
    """Take back the points the refunded lines earned (see :func:`_line_target` and :func:`_reverse`).

    ``lines`` are the refund's (line number, quantity). An order whose earning kept no per-line record
    (earned before lines were recorded), or a refund naming no lines, takes back in proportion to the
    refunded value instead. Either way, never more than the order earned in all.
    """
    conn = session.connection()
    order_op = session.execute(select(OPERATIONS).where(OPERATIONS.c.tenant_id == tenant_id,
                                                        OPERATIONS.c.idempotency_key == f"order:{order_no}")).first()
    if order_op is None or order_op.profile_id is None:
        return None  # a guest order, or one placed before the programme: nothing was earned
    customer, config = customer_and_rules(session, tenant_id, order_op.profile_id)
    request = {"order_no": order_no, "refund_no": refund_no, "refunded_fen": refunded_fen}
    op_id, replayed = _claim(conn, tenant_id, f"refund:{refund_no}", OperationKind.REVERSE, request, False,
                             profile_id=order_op.profile_id, order_no=order_no, spend_fen=-refunded_fen)
    if replayed:
        return stored_result(session, op_id)
    accounts = _lock_accounts(conn, customer)
    earlier = session.execute(select(OPERATIONS.c.spend_fen, OPERATIONS.c.outcome).where(
        OPERATIONS.c.tenant_id == tenant_id, OPERATIONS.c.order_no == order_no,
        OPERATIONS.c.kind == OperationKind.REVERSE.value, OPERATIONS.c.id != op_id)).all()
    reversed_before = sum((r.outcome or {}).get("reversed", 0) for r in earlier)
    earned_lines = (order_op.outcome or {}).get("lines")
    if earned_lines and lines:
        wanted, taken_lines = _line_target(earned_lines, earlier, lines)
    else:
        refunded_total = min(-sum(r.spend_fen for r in earlier) + refunded_fen, order_paid_fen)
        # Cumulative, so that three partial refunds of a third each take back exactly what one would.
        target = order_op.points * refunded_total // order_paid_fen if order_paid_fen > 0 else order_op.points
        wanted, taken_lines = target - reversed_before, {}
    wanted = max(0, min(wanted, order_op.points - reversed_before))
    writer = _Writer(conn, tenant_id, op_id, utcnow())
    outcome: dict[str, Any] = _reverse(session, writer, config, customer, accounts, order_op.id, wanted)
    if taken_lines:
        outcome["lines"] = taken_lines  # the units this refund returned, per line: where the next one starts
    points = -(wanted - outcome.get("written_off", 0))
    writer.operation_values |= {"points": points, "outcome": outcome}
    writer.flush()
    return Result(op_id, OperationKind.REVERSE.value, points, outcome=outcome)


def _line_target(earned: list[list[int]], earlier: Sequence[Any], lines: Sequence[tuple[int, int]]
                 ) -> tuple[int, dict[str, int]]:
    """Points the refunded units earned: a line's points times the share of its units returned,
    cumulatively over the order's refunds so that they add up exactly. Example: a line of 3 units that
    earned 100 gives back 33 (100 x 1/3), then 33 (100 x 2/3 less 33), then 34 (the rest).

    Returns the points and ``{line_no: units}`` of this refund, which the operation's outcome keeps
    for the next refund of the order to start from.
    """
    by_line = {int(no): (int(quantity), int(points)) for no, quantity, points in earned}
    before: dict[int, int] = {}
    for row in earlier:
        for no, units in ((row.outcome or {}).get("lines") or {}).items():
            before[int(no)] = before.get(int(no), 0) + int(units)
    wanted, taken = 0, {}
    for no, units in lines:
        if no not in by_line:
            continue  # a line that earned nothing (or was added after): nothing to take back
        quantity, points = by_line[no]
        done = min(before.get(no, 0), quantity)
        after = min(done + units, quantity)
        wanted += points * after // quantity - points * done // quantity
        taken[str(no)] = after - done
    return wanted, taken


def _reverse(session: Session, writer: _Writer, config: ProgrammeConfig, customer: Customer,
             accounts: dict[int, Account], order_operation_id: int, wanted: int) -> dict[str, int]:
    """Take ``wanted`` points back: from the order's own lots first (spent or not, pending or not), then as
    the programme's overdraw policy says. Example: an order earned 100, the customer spent 70 of them and
    has 50 from elsewhere; refunding the order takes back 30 from its lot, then under ``clawback`` 50 from
    the other lot and 20 as a debt; under ``negative_balance`` 70 as a debt; under
    ``clawback_then_write_off`` 50 from the other lot and 20 written off (recorded in the outcome)."""
    conn = session.connection()
    if wanted == 0:
        return {"reversed": 0}
    by_id = {a.id: a for a in accounts.values()}
    own = list(session.execute(select(LOTS.c.id, LOTS.c.account_id, LOTS.c.remaining).where(
        LOTS.c.operation_id == order_operation_id, LOTS.c.remaining > 0)))
    outcome = {"from_order_lots": writer.take(by_id, own, wanted, EntryKind.DEBIT)}
    short = wanted - outcome["from_order_lots"]
    if short and config.overdraw != Overdraw.NEGATIVE_BALANCE:
        others = _spendable_lots(conn, list(accounts.values()), writer.now, include_pending=True)
        outcome["clawed_back"] = writer.take(by_id, others, short, EntryKind.DEBIT)
        short -= outcome["clawed_back"]
    if short:
        if config.overdraw == Overdraw.CLAWBACK_THEN_WRITE_OFF:
            outcome["written_off"] = short
        else:
            root_account = accounts.get(customer.root) or next(iter(accounts.values()))
            writer.entry(root_account, EntryKind.DEBT, -short, None)
            outcome["debt"] = short
    return {"reversed": wanted} | {k: v for k, v in outcome.items() if v}


# ---- spending ----------------------------------------------------------------------------------------


def balances(session: Session, customer: Customer, now: dt.datetime) -> tuple[int, int, int]:
    """(spendable lots, pending lots, debt) of a customer, without locking."""
    account_ids = select(ACCOUNTS.c.id).where(ACCOUNTS.c.tenant_id == customer.tenant_id,
                                              ACCOUNTS.c.profile_id.in_(customer.profile_ids))
    live = or_(LOTS.c.expires_at.is_(None), LOTS.c.expires_at > now)
    available = func.coalesce(func.sum(LOTS.c.remaining).filter(LOTS.c.available_at <= now), 0)
    pending = func.coalesce(func.sum(LOTS.c.remaining).filter(LOTS.c.available_at > now), 0)
    row = session.execute(select(available, pending).where(LOTS.c.account_id.in_(account_ids), LOTS.c.remaining > 0,
                                                           live)).one()
    debt = session.scalar(select(func.coalesce(func.sum(ACCOUNTS.c.debt), 0)).where(ACCOUNTS.c.id.in_(account_ids)))
    return int(row[0]), int(row[1]), int(debt or 0)


def spend(session: Session, tenant_id: int, profile_id: int, key: str, points: int, *, hold: bool = False,
          order_no: str | None = None, reason: str | None = None) -> Result:
    """Spend points now, or hold them for a till until it confirms or cancels (holds lapse after a while).

    Raises :class:`InsufficientPoints` for too few points (first time and replays alike); the refusal
    stays remembered in the caller's transaction (see :func:`try_spend`)."""
    result = try_spend(session, tenant_id, profile_id, key, points, hold=hold, order_no=order_no, reason=reason)
    if result.refusal is not None:
        raise result.refusal
    return result


def try_spend(session: Session, tenant_id: int, profile_id: int, key: str, points: int, *, hold: bool = False,
              order_no: str | None = None, reason: str | None = None) -> Result:
    """:func:`spend`, but a refusal for too few points is *returned* (``Result.refusal``), not raised.

    Why returned: the refusal is written (it is the key's answer from now on) and must be committed, but
    an entry point rolls its transaction back when the service raises. So the API calls this, commits
    as for any answer, and renders ``refusal`` as the 422 (``details.replayed`` says whether it is a
    retry's). Other errors (no such profile, a key reused for another request) still raise and store
    nothing."""
    _check_points(points)
    conn, now = session.connection(), utcnow()
    kind = OperationKind.HOLD if hold else OperationKind.SPEND
    request = {"profile_id": profile_id, "points": points, "order_no": order_no, "reason": reason}
    if fastpath.applies(conn):
        return _fast(session, tenant_id, profile_id, key, kind, request, points, now, order_no=order_no, reason=reason)
    got = _gather(session, conn, tenant_id, profile_id, key, kind, request, now, lots=True, order_no=order_no,
                  reason=reason, points=-points, hold_status=HoldStatus.HELD.value if hold else None)
    if got.replayed:
        return _with_refusal(stored_result(session, got.op_id), request)
    spendable = sum(lot.remaining for lot in got.lots) - sum(a.debt for a in got.accounts.values())
    if points > spendable:
        return _remember(conn, got.op_id, kind, points, spendable)
    writer = _Writer(conn, tenant_id, got.op_id, now)
    writer.take({a.id: a for a in got.accounts.values()}, got.lots, points, EntryKind.DEBIT)
    if hold:
        writer.operation_values["hold_expires_at"] = now + dt.timedelta(minutes=got.config.hold_minutes)
    writer.flush()
    return Result(got.op_id, kind.value, -points, hold_status=HoldStatus.HELD.value if hold else None)


# By id alone: the primary key is the one index to use, also in the generic plan the ledger's
# transaction runs with (pipeline.PLAN_ONCE); merchant and kind are checked on the row.
_HOLD = (select(OPERATIONS.c.id, OPERATIONS.c.tenant_id, OPERATIONS.c.kind, OPERATIONS.c.points,
                OPERATIONS.c.hold_status, OPERATIONS.c.hold_expires_at)
         .where(OPERATIONS.c.id == bindparam("hold")).with_for_update())
_SET_HOLD_STATUS = update(OPERATIONS).where(OPERATIONS.c.id == bindparam("hold")).values(
    hold_status=bindparam("status"))


def _hold(session: Session, tenant_id: int, hold_id: int, row: Any = None) -> Any:
    """The merchant's hold ``hold_id`` (``row``, if read already), locked; 404 if there is none (also for a
    hold that was refused: it held nothing, and its status is empty)."""
    row = row or session.connection().execute(_HOLD, {"hold": hold_id}).first()
    if (row is None or row.tenant_id != tenant_id or row.kind != OperationKind.HOLD.value
            or row.hold_status is None):
        raise NotFound(f"no hold {hold_id}", code="hold_not_found")
    return row


def confirm_hold(session: Session, tenant_id: int, hold_id: int) -> Result:
    """The till took payment: the held points stay spent. Confirming twice is harmless."""
    now, fast = utcnow(), fastpath.applies(session.connection())
    # PostgreSQL: one call that confirms the hold if it may be confirmed, answering with the row as it was.
    row = _hold(session, tenant_id, hold_id, fastpath.confirm_hold(session, tenant_id, hold_id, now) if fast else None)
    if row.hold_status == HoldStatus.CANCELLED.value:
        raise Conflict(f"hold {hold_id} was cancelled (or lapsed); spend again", code="hold_cancelled")
    if row.hold_status == HoldStatus.HELD.value:
        if row.hold_expires_at is not None and row.hold_expires_at <= now:
            raise Conflict(f"hold {hold_id} lapsed at {row.hold_expires_at.isoformat()}; spend again",
                           code="hold_lapsed")
        if not fast:
            session.connection().execute(_SET_HOLD_STATUS, {"hold": hold_id, "status": HoldStatus.CONFIRMED.value})
    return Result(hold_id, row.kind, row.points, row.hold_status != HoldStatus.HELD.value, HoldStatus.CONFIRMED.value)


def cancel_hold(session: Session, tenant_id: int, hold_id: int, *, now: dt.datetime | None = None) -> Result:
    """Give held points back to the lots they came from. Cancelling twice is harmless; after confirm, 409."""
    conn = session.connection()
    row = _hold(session, tenant_id, hold_id)
    if row.hold_status == HoldStatus.CONFIRMED.value:
        raise Conflict(f"hold {hold_id} was confirmed; refund the order instead", code="hold_confirmed")
    if row.hold_status == HoldStatus.CANCELLED.value:
        return Result(hold_id, row.kind, row.points, True, HoldStatus.CANCELLED.value)
    taken = list(session.execute(select(ENTRIES.c.account_id, ENTRIES.c.lot_id, ENTRIES.c.amount).where(
        ENTRIES.c.operation_id == hold_id).order_by(ENTRIES.c.account_id)))
    accounts = {r.id: Account(r.id, r.profile_id, r.balance, r.debt) for r in session.execute(
        select(ACCOUNTS.c.id, ACCOUNTS.c.profile_id, ACCOUNTS.c.balance, ACCOUNTS.c.debt)
        .where(ACCOUNTS.c.id.in_({t.account_id for t in taken})).order_by(ACCOUNTS.c.id).with_for_update())}
    writer = _Writer(conn, tenant_id, hold_id, now or utcnow())
    for entry in taken:
        writer.entry(accounts[entry.account_id], EntryKind.RELEASE, -entry.amount, entry.lot_id)
    writer.flush()
    session.execute(update(OPERATIONS).where(OPERATIONS.c.id == hold_id).values(
        hold_status=HoldStatus.CANCELLED.value, points=0))
    return Result(hold_id, row.kind, 0, False, HoldStatus.CANCELLED.value)


# ---- operators and jobs ------------------------------------------------------------------------------


def adjust(session: Session, tenant_id: int, profile_id: int, key: str, points: int, *, reason: str,
           operator: str) -> Result:
    """An operator's correction: positive adds a lot spendable at once, negative takes from spendable lots."""
    if not reason.strip() or not operator.strip():
        raise ValidationFailed("an adjustment needs a reason and the operator", field="reason" if not reason.strip()
                               else "operator")
    _check_points(abs(points))
    conn, now = session.connection(), utcnow()
    request = {"profile_id": profile_id, "points": points, "reason": reason, "operator": operator}
    got = _gather(session, conn, tenant_id, profile_id, key, OperationKind.ADJUST, request, now, for_root=True,
                  lots=points < 0, new_lot=points > 0, reason=reason[:200], operator=operator[:100], points=points)
    if got.replayed:
        return stored_result(session, got.op_id)
    writer = _Writer(conn, tenant_id, got.op_id, now, got.new_lot_id)
    if points > 0:
        _credit(writer, got.config, got.accounts[got.customer.root], points, now, pending=False)
    else:
        available = sum(lot.remaining for lot in got.lots)
        if -points > available:
            _refuse(conn, got.op_id, InsufficientPoints(
                f"cannot take {-points} points: only {available} are spendable", field="points"))
        writer.take({a.id: a for a in got.accounts.values()}, got.lots, -points, EntryKind.DEBIT)
    writer.flush()
    audit.record(session, tenant_id, "points.adjust", f"profile:{got.customer.root}",
                 after={"operation_id": got.op_id, "points": points, "reason": reason, "operator": operator})
    return Result(got.op_id, OperationKind.ADJUST.value, points)
@dataclass(slots=True)
class ExpiryRun:
    expired: int = 0  # points expired
    accounts: int = 0  # accounts that lost points
    holds_cancelled: int = 0
    released: int = 0  # points the cancelled holds gave back

    @property
    def done(self) -> bool:
        return not (self.accounts or self.holds_cancelled)


def expire_due(session: Session, tenant_id: int, now: dt.datetime, *, limit: int = 500) -> ExpiryRun:
    """Cancel lapsed holds and expire lapsed lots, up to ``limit`` of each.

    The job calls this in a loop, one transaction per call, until the run is ``done``. Holds go first,
    so points a lapsed hold gives back to an expired lot expire in the same call.
    """
    conn = session.connection()
    run = ExpiryRun()
    holds = session.execute(select(OPERATIONS.c.id, OPERATIONS.c.points).where(
        OPERATIONS.c.tenant_id == tenant_id, OPERATIONS.c.hold_status == HoldStatus.HELD.value,
        OPERATIONS.c.hold_expires_at <= now).limit(limit)).all()
    for hold_id, points in holds:
        cancel_hold(session, tenant_id, hold_id, now=now)
        run.holds_cancelled += 1
        run.released -= points
    account_ids = session.scalars(select(LOTS.c.account_id).distinct().where(
        LOTS.c.tenant_id == tenant_id, LOTS.c.remaining > 0, LOTS.c.expires_at <= now).limit(limit)).all()
    for account_id in sorted(account_ids):
        row = session.execute(select(ACCOUNTS).where(ACCOUNTS.c.id == account_id).with_for_update()).one()
        account = Account(row.id, row.profile_id, row.balance, row.debt)
        lots = list(session.execute(select(LOTS.c.id, LOTS.c.account_id, LOTS.c.remaining).where(
            LOTS.c.account_id == account_id, LOTS.c.remaining > 0, LOTS.c.expires_at <= now)))
        points = sum(lot.remaining for lot in lots)
        if not points:
            continue
        op_id, _ = _claim(conn, tenant_id, f"expire:{account_id}:{now.isoformat()}", OperationKind.EXPIRE,
                          {"account_id": account_id, "at": now.isoformat()}, profile_id=account.profile_id,
                          points=-points, created_at=now)
        writer = _Writer(conn, tenant_id, op_id, now)
        writer.take({account.id: account}, lots, points, EntryKind.EXPIRE)
        writer.flush()
        run.expired += points
        run.accounts += 1
    return run
