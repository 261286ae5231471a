"""Sales KPIs over the warehouse, as pure Ibis (the same code runs on DuckDB and PySpark).

What each figure means (money in fen, a range is local dates in the merchant's zone, end included):

- **orders**: sales whose ``ordered_at`` falls in the range, whatever happened to them later. A refund
  is not an order and does not remove one; ``refunded_orders`` says how many were refunded in full.
- **gross_fen** (GMV): what the buyers paid for those orders (``paid_fen``: after discounts and
  coupons). **net_fen** = gross minus what has been refunded of those same orders so far. Refunds are
  counted against the order's date, not the refund's (the warehouse keeps each order's refunded
  total): a month's net can still fall when a late return comes in, as in Youshu's order-date view.
  Example: ¥100 sold on 31 Oct and refunded ¥40 on 2 Nov is gross 10000 and net 6000 in October,
  and nothing in November.
- **aov_fen**: gross_fen / orders, rounded half up to the fen (the average basket as paid).
- **buyers**: distinct customers (OneID: every profile merged into one customer counts once, via
  ``identity_map``) with an order in the range. Guest orders (no buyer identified) count in orders
  and GMV but not as buyers, since guests cannot be told apart; ``guest_orders`` says how many.
- **repurchase rate** (复购率): buyers with two or more orders in the range / buyers.
- **members**: a customer is a member (会员) from the first time any of its profiles was given a tier
  (the loyalty programme assigns its entry tier on joining) or a paid-membership term, whichever
  came first. ``members`` counts members at the range's end; ``new_members`` those who became members
  in the range; ``member_buyers`` the buyers who are members by the range's end, and ``member_net_fen``
  their net GMV in the range (all of it: a customer who joined at the till is a member buyer for that
  visit's order, the pay-to-become-member case); ``member_share`` = member_net_fen / net_fen.

Every figure also comes for the previous range of as many days, for the Δ% a console shows, from the
same scan: the query reads ``[previous start, end)`` once and splits by a flag.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any, Literal

import ibis
import ibis.expr.types as ir

from lianjie.analytics import periods
from lianjie.analytics.periods import Grain, Range
from lianjie.analytics.schemas import BreakdownRow, Figures, TrendPoint
from lianjie.commerce.models import OrderChannel

Dimension = Literal["store", "guide", "channel"]
FIGURES = tuple(Figures.model_fields)
CHANNELS = tuple(channel.value for channel in OrderChannel)
STRETCH_DAYS = 61  # trend(): buckets are counted in stretches of about two months


def number(value: Any) -> int:
    """A count or sum from a backend: None (a sum over no rows) and NaN become 0."""
    return 0 if value is None or value != value else int(value)


def ratio(numerator: int, denominator: int) -> float | None:
    return round(numerator / denominator, 4) if denominator else None


def per_order(total: int, orders: int) -> int | None:
    """``total / orders`` rounded half up to the fen (integers only, no float error)."""
    return (2 * total + orders) // (2 * orders) if orders else None


def customers(con: Any, tenant_id: int) -> ir.Table:
    """profile_id -> customer_id for one merchant's merged profiles only.

    A profile missing here is its own customer (callers take ``coalesce(customer_id, profile_id)``),
    so the join that finds each order's customer builds on the merged profiles alone, usually a small
    part of the map, instead of every profile the merchant has.
    """
    imap = con.table("identity_map")
    return imap.filter(imap.tenant_id == tenant_id, imap.profile_id != imap.customer_id).select(
        "profile_id", "customer_id")


def orders_in(con: Any, tenant_id: int, start: Any, end: Any) -> ir.Table:
    """The merchant's orders placed in ``[start, end)`` (start None: since the beginning), with their
    ``customer_id``: the customer the order's profile was merged into, else the profile itself (also
    when the identity map has not caught up with a new profile yet), null for a guest."""
    orders = con.table("orders")
    where = [orders.tenant_id == tenant_id, orders.ordered_at < end]
    if start is not None:
        where.append(orders.ordered_at >= start)
    orders = orders.filter(*where)
    imap = customers(con, tenant_id)
    joined = orders.left_join(imap, orders.profile_id == imap.profile_id)
    return joined.select(*[orders[c] for c in orders.columns],
                         customer_id=ibis.coalesce(imap.customer_id, orders.profile_id))


def members(con: Any, tenant_id: int) -> ir.Table:
    """customer_id -> member_since: the first tier or paid-membership term on any of its profiles."""
    tiers, paid = con.table("tier_assignments"), con.table("membership_periods")
    joins = (tiers.filter(tiers.tenant_id == tenant_id).select("profile_id", at=tiers.created_at)
             .union(paid.filter(paid.tenant_id == tenant_id).select("profile_id", at=paid.created_at)))
    imap = customers(con, tenant_id)
    joined = joins.left_join(imap, joins.profile_id == imap.profile_id)
    joined = joined.select(customer_id=ibis.coalesce(imap.customer_id, joins.profile_id), at=joins.at)
    return joined.group_by("customer_id").agg(member_since=joined.at.min())


def _per_customer(rows: ir.Table, keys: list[str], con: Any, tenant_id: int,
                  until: Callable[[ir.Table], Any]) -> ir.Table:
    """One row per ``keys`` and customer (a key's guest orders together in one row, customer_id null):
    its orders and money, and whether the customer is a member by ``until(row)`` (aggregating first,
    so the member table joins a row per customer instead of one per order)."""
    per = rows.group_by([*keys, "customer_id"]).agg(
        orders=rows.count(), refunded_orders=rows.count(where=rows.status == "refunded"),
        gross=rows.paid_fen.sum(), refunded=rows.refunded_fen.sum())
    known = members(con, tenant_id)
    per = per.left_join(known, per.customer_id == known.customer_id).select(
        *[per[c] for c in per.columns], member_since=known.member_since)
    return per.mutate(member=per.customer_id.notnull() & per.member_since.notnull()
                      & (per.member_since < until(per)))


def _totals(per: ir.Table) -> dict[str, Any]:
    buyer = per.customer_id.notnull()
    return {"orders": per.orders.sum(), "refunded_orders": per.refunded_orders.sum(),
            "guest_orders": per.orders.sum(where=~buyer), "gross": per.gross.sum(), "refunded": per.refunded.sum(),
            "buyers": per.count(where=buyer), "repeat_buyers": per.count(where=buyer & (per.orders >= 2)),
            "member_buyers": per.count(where=per.member),
            "member_net": (per.gross - per.refunded).sum(where=per.member)}


def _figures(row: dict[str, Any], members_at_end: int, new_members: int) -> Figures:
    orders, gross, refunded = number(row.get("orders")), number(row.get("gross")), number(row.get("refunded"))
    buyers, net, member_net = number(row.get("buyers")), gross - refunded, number(row.get("member_net"))
    return Figures(orders=orders, refunded_orders=number(row.get("refunded_orders")),
                   guest_orders=number(row.get("guest_orders")), gross_fen=gross, refunded_fen=refunded, net_fen=net,
                   aov_fen=per_order(gross, orders), buyers=buyers, repeat_buyers=number(row.get("repeat_buyers")),
                   repurchase_rate=ratio(number(row.get("repeat_buyers")), buyers),
                   member_buyers=number(row.get("member_buyers")), member_net_fen=member_net,
                   member_share=ratio(member_net, net), members=members_at_end, new_members=new_members)


def overview(con: Any, tenant_id: int, rng: Range) -> tuple[Figures, Figures]:
    """The range's headline figures and the previous range's, in two queries (sales, then members)."""
    prev = rng.previous()
    rows = orders_in(con, tenant_id, prev.start, rng.end)
    rows = rows.mutate(current=rows.ordered_at >= rng.start)
    per = _per_customer(rows, ["current"], con, tenant_id,
                        lambda t: ibis.ifelse(t.current, ibis.literal(rng.end), ibis.literal(rng.start)))
    sales = {bool(r["current"]): r for r in per.group_by("current").agg(**_totals(per)).to_pyarrow().to_pylist()}
    known = members(con, tenant_id)
    since = known.member_since
    counts = known.aggregate(
        at_end=known.count(where=since < rng.end), at_prev_end=known.count(where=since < rng.start),
        new=known.count(where=(since >= rng.start) & (since < rng.end)),
        new_prev=known.count(where=(since >= prev.start) & (since < rng.start))).to_pyarrow().to_pylist()[0]
    return (_figures(sales.get(True, {}), number(counts["at_end"]), number(counts["new"])),
            _figures(sales.get(False, {}), number(counts["at_prev_end"]), number(counts["new_prev"])))


def change(current: Figures, previous: Figures) -> dict[str, float | None]:
    """(current - previous) / previous for every numeric figure; None where previous is 0 or missing."""
    out: dict[str, float | None] = {}
    for name in FIGURES:
        now, before = getattr(current, name), getattr(previous, name)
        out[name] = None if now is None or not before else round((now - before) / before, 4)
    return out


def trend(con: Any, tenant_id: int, rng: Range, grain: Grain) -> list[TrendPoint]:
    """Orders, GMV and buyers per local day, week (from Monday) or month of the range, empty ones included.

    A week or month cut by the range's edge holds only the range's days of it.
    """
    # A count(distinct) per bucket: on a year of 7.5M orders by day, 0.98 s against 1.49 s for grouping
    # by bucket and customer first (nearly every order is its own customer-day, so that group-by
    # reduces nothing and carries its sums through millions of groups). And one such query per stretch
    # of about two months, in one UNION ALL: a bucket's buyers are counted within it, so the stretches
    # answer exactly what one query would, with smaller hash tables: 0.86-0.91 s against 1.0-1.1 s for
    # the year's 365 days, on two threads. Shorter stretches lose it again to Ibis's compiling (0.11 s
    # for twelve).
    parts = []
    for first, last in _stretches(rng, grain):
        rows = orders_in(con, tenant_id, periods.local_midnight(first, rng.zone),
                         periods.local_midnight(last + dt.timedelta(days=1), rng.zone))
        rows = rows.mutate(bucket=periods.bucket(con, rows.ordered_at, rng, grain))
        parts.append(rows.group_by("bucket").agg(orders=rows.count(), gross=rows.paid_fen.sum(),
                                                 refunded=rows.refunded_fen.sum(),
                                                 buyers=rows.customer_id.nunique()))
    table = parts[0] if len(parts) == 1 else ibis.union(*parts)
    found = {periods.from_day_number(r["bucket"]): r for r in table.to_pyarrow().to_pylist()}
    points = []
    for start in periods.bucket_starts(rng, grain):
        r = found.get(start, {})
        gross, refunded = number(r.get("gross")), number(r.get("refunded"))
        points.append(TrendPoint(start=start, orders=number(r.get("orders")), gross_fen=gross, refunded_fen=refunded,
                                 net_fen=gross - refunded, buyers=number(r.get("buyers"))))
    return points


def _channel_number(channel: ir.StringValue) -> ir.IntegerValue:
    """The channel as its place in CHANNELS (null for another value, which orders cannot hold): grouping
    per channel and customer by a small integer instead of the text took a tenth less time on the
    large world (0.79 s against 0.88 s for a year of 7.5M orders)."""
    number_of: ir.IntegerValue = ibis.cases(*[(channel == name, n) for n, name in enumerate(CHANNELS)],
                                            else_=ibis.null("int8"))
    return number_of


def _stretches(rng: Range, grain: Grain) -> list[tuple[dt.date, dt.date]]:
    """The range's days cut into stretches of whole buckets, each at least STRETCH_DAYS long (the last
    may be shorter), as (first day, last day): what :func:`trend` counts in one part of its query."""
    starts = [max(start, rng.first) for start in periods.bucket_starts(rng, grain)]
    out: list[tuple[dt.date, dt.date]] = []
    first = starts[0]
    for start in starts[1:]:
        if (start - first).days >= STRETCH_DAYS:
            out.append((first, start - dt.timedelta(days=1)))
            first = start
    out.append((first, rng.last))
    return out


def breakdown(con: Any, tenant_id: int, rng: Range, by: Dimension) -> list[BreakdownRow]:
    """The range's sales per store, per guide (the order's attributed shopping guide) or per channel,
    biggest net GMV first; orders without a store or guide make one row with key null."""
    rows = orders_in(con, tenant_id, rng.start, rng.end)
    rows = rows.mutate(key=_channel_number(rows.channel) if by == "channel" else rows[f"{by}_id"])
    per = _per_customer(rows, ["key"], con, tenant_id, lambda _: ibis.literal(rng.end))
    table = per.group_by("key").agg(**_totals(per))
    if by == "channel":
        table = table.mutate(code=ibis.null("string"), name=ibis.null("string"))
    else:
        names = con.table("stores" if by == "store" else "staff")
        names = names.filter(names.tenant_id == tenant_id).select(
            "id", code=names.code if by == "store" else names.staff_no, name=names.name)
        table = table.left_join(names, table.key == names.id).select(
            *[table[c] for c in table.columns], code=names.code, name=names.name)
    found = table.to_pyarrow().to_pylist()
    if by == "channel":
        found = [r | {"key": CHANNELS[r["key"]] if r["key"] is not None else None} for r in found]
    total_net = sum(number(r["gross"]) - number(r["refunded"]) for r in found)
    out = []
    for r in found:
        gross, refunded, orders = number(r["gross"]), number(r["refunded"]), number(r["orders"])
        net, member_net = gross - refunded, number(r["member_net"])
        out.append(BreakdownRow(key=r["key"], code=r["code"], name=r["name"], orders=orders, gross_fen=gross,
                                refunded_fen=refunded, net_fen=net, aov_fen=per_order(gross, orders),
                                buyers=number(r["buyers"]), member_net_fen=member_net,
                                member_share=ratio(member_net, net), share_of_net=ratio(net, total_net)))
    return sorted(out, key=lambda row: (-row.net_fen, row.key is None, str(row.key)))
