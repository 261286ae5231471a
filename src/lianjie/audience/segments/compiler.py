"""Segment rules compiled to one Ibis expression: the ids of the merchant's customers who match.

The shape is chosen for a columnar engine: the *universe* is each customer's root row of
``identity_map`` (root profile not erased), and every leaf of the rule becomes a predicate
``customer_id IN (subquery)`` over it, where the subquery is a filtered scan (a trait, a tag) or a
filtered, grouped aggregate (a behaviour clause: one pass over events or order lines, grouped by
customer, thresholds in HAVING). ``all``/``any``/``not`` become AND/OR/NOT of those predicates, so
the preview count is a single query and DuckDB plans each IN as a hash semi- (or anti-) join; no
per-customer loop anywhere. Everything is plain Ibis, so the same expression runs on PySpark.

A clause whose threshold admits zero (``at_least: 0``, or ``points < 100``) cannot be a lookup of
the customers who have rows: it is compiled as the complement of the customers whose rows fail it,
so customers with no rows at all match as they should.

Times: ``within_days`` and ``between_dates`` are turned into UTC instants here, from the as-of
moment and the merchant's zone, so a compiled expression (and its SQL snapshot) is fixed by
(rule, tenant, as_of, zone).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import reduce
from typing import Any
from zoneinfo import ZoneInfo

import ibis
import ibis.expr.datatypes as idt
import ibis.expr.types as ir

from lianjie.audience.segments.rules import (
    COMPUTED,
    PROFILE_PREFIX,
    All,
    Any_,
    Condition,
    Did,
    HasTag,
    Not,
    Op,
    Purchased,
    PurchaseFilter,
    Rule,
    Trait,
    Window,
    parse_time,
)
from lianjie.warehouse.tables import CUSTOMER_TRAITS

# Statuses of a paid-membership term that still gives benefits (loyalty/membership/models.LIVE).
LIVE_TERMS = ("active", "grace", "renewed")
MAX_CATEGORY_DEPTH = 4  # levels of a catalogue (the demo worlds have 3)
TS_UTC = "timestamp('UTC')"


@dataclass(frozen=True)
class Scope:
    """What a rule is evaluated against: a merchant's tables, as of a moment in its time zone."""

    tenant_id: int
    as_of: dt.datetime
    zone: ZoneInfo
    table: Callable[[str], ir.Table]
    #: The backend the expressions will run on (``con.name``): PySpark reads JSON members differently.
    backend: str = "duckdb"
    # Each table filtered to the merchant once: building Ibis expressions is a real part of a preview.
    _tenant: dict[str, ir.Table] = field(default_factory=dict, compare=False, repr=False)

    @property
    def today(self) -> dt.date:
        return self.as_of.astimezone(self.zone).date()

    def midnight(self, day: dt.date) -> dt.datetime:
        return dt.datetime.combine(day, dt.time(), self.zone).astimezone(dt.UTC)

    def tenant(self, name: str) -> ir.Table:
        if name not in self._tenant:
            t = self.table(name)
            self._tenant[name] = t.filter(t.tenant_id == self.tenant_id)
        return self._tenant[name]

    def profile_map(self) -> ir.Table:
        if "_map" not in self._tenant:
            self._tenant["_map"] = self.tenant("identity_map").select("profile_id", "customer_id")
        return self._tenant["_map"]


def universe(scope: Scope) -> ir.Table:
    """One row per customer of the merchant whose root profile is not erased."""
    m = scope.tenant("identity_map")
    return m.filter(m.profile_id == m.customer_id, ~m.erased.fill_null(False)).select("customer_id")


def members(rule: Rule, scope: Scope) -> ir.Table:
    """The matching customers (column ``customer_id``, one row each)."""
    u = universe(scope)
    return u.filter(predicate(rule, scope, u.customer_id))


def count(rule: Rule, scope: Scope) -> ir.IntegerScalar:
    """The preview count: one query."""
    return members(rule, scope).count()


# ---- the tree ------------------------------------------------------------------------------------

def predicate(rule: Rule, scope: Scope, cid: ir.IntegerColumn) -> ir.BooleanValue:
    if isinstance(rule, All):
        return reduce(lambda a, b: a & b, [predicate(r, scope, cid) for r in rule.all])
    if isinstance(rule, Any_):
        return reduce(lambda a, b: a | b, [predicate(r, scope, cid) for r in rule.any])
    if isinstance(rule, Not):
        return ~predicate(rule.not_, scope, cid)
    if isinstance(rule, Trait):
        return _trait(rule, scope, cid)
    if isinstance(rule, HasTag):
        return cid.isin(_tagged(rule, scope).customer_id)
    if isinstance(rule, Did):
        rows = _events(rule, scope)
        return _threshold(rows, rows.count(), rule, cid, counts_rows=True)
    if isinstance(rule, Purchased):
        rows, measure = _purchases(rule, scope)
        return _threshold(rows, measure, rule, cid, counts_rows=rule.measure == "orders")
    raise TypeError(f"not a rule: {rule!r}")


def _in_set(cid: ir.IntegerColumn, rows: ir.Table) -> ir.BooleanValue:
    return cid.isin(rows.customer_id)


# ---- conditions ----------------------------------------------------------------------------------

def _literal(value: Any, kind: str | None, scope: Scope) -> Any:
    if kind == "timestamp" and isinstance(value, str):
        moment = parse_time(value)
        if isinstance(moment, dt.datetime):
            instant = moment if moment.tzinfo else moment.replace(tzinfo=scope.zone)
        else:
            assert moment is not None  # checked by rules.check_condition
            instant = scope.midnight(moment)
        return ibis.literal(instant.astimezone(dt.UTC), type=TS_UTC)
    return value


def condition(column: ir.Value, cond: Condition, scope: Scope, kind: str | None = None) -> ir.BooleanValue:
    """``column <op> value``; null (a missing value) never satisfies a comparison."""
    op, value = cond.op, cond.value
    if op is Op.IS_SET:
        return column.notnull()
    if op is Op.IN:
        assert isinstance(value, list)
        return column.isin([_literal(v, kind, scope) for v in value])
    if op is Op.BETWEEN:
        assert isinstance(value, list)
        return column.between(_literal(value[0], kind, scope), _literal(value[1], kind, scope))
    if op is Op.CONTAINS:
        return column.contains(value)
    v = _literal(value, kind, scope)
    comparisons: dict[Op, Callable[[Any, Any], ir.BooleanValue]] = {
        Op.EQ: lambda c, x: c == x, Op.NE: lambda c, x: c != x, Op.LT: lambda c, x: c < x,
        Op.LE: lambda c, x: c <= x, Op.GT: lambda c, x: c > x, Op.GE: lambda c, x: c >= x}
    return comparisons[op](column, v)


def _holds_for(cond: Condition, value: Any) -> bool:
    """Whether a constant satisfies the condition (does ``points < 100`` hold for a balance of 0?)."""
    op, v = cond.op, cond.value
    if op is Op.IS_SET:
        return True
    if op is Op.IN:
        return isinstance(v, list) and value in v
    if op is Op.BETWEEN:
        return isinstance(v, list) and v[0] <= value <= v[1]
    if isinstance(v, bool | str) or v is None:
        return op is Op.NE
    return bool({Op.EQ: value == v, Op.NE: value != v, Op.LT: value < v, Op.LE: value <= v, Op.GT: value > v,
                 Op.GE: value >= v}.get(op, False))


def json_value(column: ir.Value, dotted: str, cond: Condition, scope: Scope) -> ir.Value:
    """Member ``a.b`` of a JSON column, unwrapped as the type the condition compares with (a number or
    a boolean of another type reads as null; for a string, on DuckDB and Spark another type reads as
    its JSON text)."""
    sample = cond.value[0] if isinstance(cond.value, list) and cond.value else cond.value
    is_text = cond.op is not Op.IS_SET and not isinstance(sample, bool | int | float)
    if is_text and scope.backend == "duckdb":
        # One parse of the document: Ibis's ``.str`` checks the member's type and extracts it again,
        # three parses a row, which was most of a trait rule's time on the large world.
        return _duckdb_json_text(_as_json(column), "$." + dotted)
    node = _as_json(column)
    for key in dotted.split("."):
        node = node[key]
    if cond.op is Op.IS_SET:
        return node
    if isinstance(sample, bool):
        return node.bool
    if isinstance(sample, int | float):
        return node.float
    if scope.backend == "pyspark":
        # PySpark's get_json_object gives a string member's text without its quotes (and another
        # type's JSON text, as DuckDB's json_extract_string does), which ``.str`` would fail to parse.
        return node.cast("string")
    return node.str


def _json_text(document: Any, path: str) -> Any: ...


# DuckDB's own json_extract_string: the member at a path as text (a string without its quotes), or null.
_duckdb_json_text = ibis.udf.scalar.builtin(_json_text, name="json_extract_string",
                                            signature=((idt.JSON(), idt.String()), idt.String()))


def _as_json(column: ir.Value) -> ir.JSONValue:
    """A JSON column as JSON (a column a backend holds as text is read as JSON)."""
    node: ir.JSONValue = column if column.type().is_json() else column.cast("json")
    return node


# ---- traits --------------------------------------------------------------------------------------

def _trait(rule: Trait, scope: Scope, cid: ir.IntegerColumn) -> ir.BooleanValue:
    name = rule.trait
    if name.startswith(PROFILE_PREFIX):
        return _in_set(cid, _profile_trait(rule, scope))
    if name in COMPUTED:
        t = scope.tenant(CUSTOMER_TRAITS)
        return _in_set(cid, t.filter(condition(t[name], rule, scope, COMPUTED[name])).select("customer_id"))
    if name == "points":
        entries = _per_customer(scope, "points_entries")
        balances = entries.group_by("customer_id").aggregate(value=entries.amount.sum())
        if _holds_for(rule, 0):  # customers without entries have a balance of 0, and match
            return ~_in_set(cid, balances.filter(~condition(balances.value, rule, scope, "int")))
        return _in_set(cid, balances.filter(condition(balances.value, rule, scope, "int")))
    if name == "tier":
        t = _per_customer(scope, "tier_assignments")
        latest = t.group_by("customer_id").aggregate(value=t.tier_code.argmax(t.id))
        return _in_set(cid, latest.filter(condition(latest.value, rule, scope, "string")))
    if name == "paid_plan":
        return _in_set(cid, _paid_plans(rule, scope))
    raise TypeError(f"unknown trait {name!r}")


def _per_customer(scope: Scope, name: str) -> ir.Table:
    """A profile-attributed table joined to its customers."""
    t = scope.tenant(name)
    m = scope.profile_map()
    return t.join(m, t.profile_id == m.profile_id)


def _profile_trait(rule: Trait, scope: Scope) -> ir.Table:
    """Customers whose identify trait satisfies the condition, taking the survivor's own value when it
    has one and otherwise the value of the lowest merged profile id (the warehouse keeps no trait times).

    The survivors' own values are read as they are; only merged profiles of customers whose survivor
    has no value are grouped to find the lowest, a small part of the profiles. Grouping every valued
    profile by customer instead made a trait rule three times slower on the large world."""
    p = scope.tenant("profiles")
    p = p.filter(p.traits.notnull())  # most profiles (devices) have none: leave them out before the join
    m = scope.profile_map()
    joined = p.join(m, p.profile_id == m.profile_id)
    valued = joined.select(
        "customer_id", "profile_id",
        value=json_value(joined.traits, rule.trait.removeprefix(PROFILE_PREFIX), rule, scope))
    valued = valued.filter(valued.value.notnull())
    own = valued.filter(valued.profile_id == valued.customer_id)
    merged = valued.filter(valued.profile_id != valued.customer_id)
    owners = own.select(owner="customer_id")
    merged = merged.anti_join(owners, merged.customer_id == owners.owner)
    lowest = merged.group_by(lowest_of="customer_id").aggregate(lowest_id=merged.profile_id.min())
    filled = merged.join(lowest, merged.profile_id == lowest.lowest_id).select("customer_id", "value")
    picked = own.select("customer_id", "value").union(filled)
    return picked.filter(condition(picked.value, rule, scope)).select("customer_id")


def _paid_plans(rule: Trait, scope: Scope) -> ir.Table:
    t = scope.tenant("membership_periods")
    m = scope.profile_map()
    day = ibis.literal(scope.today, type="date")
    live = t.filter(t.status.isin(LIVE_TERMS), t.starts_on <= day, t.grace_until > day)
    live = live.filter(condition(live.plan_code, rule, scope, "string"))
    return live.join(m, live.profile_id == m.profile_id).select("customer_id")


def _tagged(rule: HasTag, scope: Scope) -> ir.Table:
    t = scope.tenant("profile_tags")
    m = scope.profile_map()
    tags = [rule.tag] if isinstance(rule.tag, str) else rule.tag
    wanted = t.filter(t.tag == tags[0] if len(tags) == 1 else t.tag.isin(tags))
    return wanted.join(m, wanted.profile_id == m.profile_id).select("customer_id")


# ---- behaviour -----------------------------------------------------------------------------------

def window(column: ir.TimestampColumn, rule: Window, scope: Scope) -> list[ir.BooleanValue]:
    if rule.within_days is not None:
        start = scope.midnight(scope.today - dt.timedelta(days=rule.within_days - 1))
        return [column >= ibis.literal(start, type=TS_UTC), column <= ibis.literal(scope.as_of, type=TS_UTC)]
    if rule.between_dates is not None:
        first, last = rule.between_dates
        return [column >= ibis.literal(scope.midnight(first), type=TS_UTC),
                column < ibis.literal(scope.midnight(last + dt.timedelta(days=1)), type=TS_UTC)]
    return []


def _threshold(rows: ir.Table, measure: ir.NumericScalar, rule: Window, cid: ir.IntegerColumn, *,
               counts_rows: bool) -> ir.BooleanValue:
    """Customers whose measure over ``rows`` lies in [at_least, at_most]; rows carry ``customer_id``.
    ``counts_rows``: the measure is at least 1 wherever a customer has a row (a count)."""
    low, high = rule.at_least, rule.at_most
    if low == 0:  # zero rows qualify: the complement of those above at_most
        if high is None:
            return ibis.literal(True)
        over = rows.group_by("customer_id").aggregate(n=measure).filter(lambda t: t.n > high)
        return ~_in_set(cid, over)
    if low == 1 and high is None and counts_rows:
        return _in_set(cid, rows)  # did it at all: a semi-join, no grouping
    grouped = rows.group_by("customer_id").aggregate(n=measure)
    kept = grouped.filter(grouped.n >= low) if high is None else grouped.filter(grouped.n.between(low, high))
    return _in_set(cid, kept)


def _events(rule: Did, scope: Scope) -> ir.Table:
    e = scope.tenant("events")
    filters = [e.event == rule.did, *window(e.timestamp, rule, scope)]
    if rule.type is not None:
        filters.append(e.type == rule.type)
    for where in rule.where:
        filters.append(condition(json_value(e.properties, where.property, where, scope), where, scope))
    e = e.filter(*filters)
    m = scope.profile_map()
    return e.join(m, e.profile_id == m.profile_id).select("customer_id")


def _codes(value: str | list[str]) -> list[str]:
    return [value] if isinstance(value, str) else value


def _category_codes(codes: list[str], scope: Scope) -> ir.Table:
    """The given category codes and every subcategory below them: each category joined to its
    ancestors (catalogues are a few levels deep), kept when it or an ancestor is one of ``codes``."""
    c = scope.tenant("categories").select("code", "parent_code")
    chain = c.select("code", up0="code", up1="parent_code")
    for depth in range(2, MAX_CATEGORY_DEPTH):
        parent = c.select(**{f"up{depth - 1}": "code", f"up{depth}": "parent_code"})
        chain = chain.left_join(parent, f"up{depth - 1}").select(*chain.columns, f"up{depth}")
    hit = reduce(lambda a, b: a | b, [chain[f"up{d}"].isin(codes) for d in range(MAX_CATEGORY_DEPTH)])
    return chain.filter(hit).select("code")


def _purchases(rule: Purchased, scope: Scope) -> tuple[ir.Table, ir.NumericScalar]:
    """The rows a purchase clause counts (order lines when it names products, else orders) and its measure."""
    f: PurchaseFilter = rule.purchased
    o = scope.tenant("orders")
    filters = [o.status != "refunded", o.profile_id.notnull(), *window(o.ordered_at, rule, scope)]
    if f.channel is not None:
        filters.append(o.channel.isin(_codes(f.channel)))
    if f.store is not None or f.city is not None:
        s = scope.tenant("stores")
        if f.store is not None:
            s = s.filter(s.code.isin(_codes(f.store)))
        if f.city is not None:
            s = s.filter(s.city.isin(_codes(f.city)))
        filters.append(o.store_id.isin(s.id))
    o = o.filter(*filters)
    m = scope.profile_map()
    if f.sku is None and f.category is None and rule.measure != "quantity":
        rows = o.join(m, o.profile_id == m.profile_id).select("customer_id", "id", net=o.paid_fen - o.refunded_fen)
        return rows, rows.count() if rule.measure == "orders" else rows.net.sum()
    lines = scope.tenant("order_lines")
    line_filters = [lines.quantity > lines.refunded_quantity.fill_null(0)]
    if f.sku is not None:
        line_filters.append(lines.sku.isin(_codes(f.sku)))
    if f.category is not None:
        line_filters.append(lines.category_code.isin(_category_codes(_codes(f.category), scope).code))
    lines = lines.filter(*line_filters)
    joined = lines.join(o, lines.order_id == o.id).join(m, o.profile_id == m.profile_id)
    rows = joined.select("customer_id", "order_id", net=joined.paid_fen - joined.refunded_fen.fill_null(0),
                         units=joined.quantity - joined.refunded_quantity.fill_null(0))
    measures = {"orders": rows.order_id.nunique(), "amount_fen": rows.net.sum(), "quantity": rows.units.sum()}
    return rows, measures[rule.measure]
