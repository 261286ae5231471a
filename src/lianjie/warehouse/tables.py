"""The warehouse's tables: what each is copied from in the operational store, its columns, and how it
is kept up to date.

Three ways, chosen by how the source changes:

* ``append``: rows are only ever added (events, ledger entries, tier history); each sync copies the
  rows with an id above the last one copied.
* ``changed``: rows change after they are written (an order is refunded); each sync copies the rows
  whose ``updated_at`` is past the last sync, minus a margin for transactions that committed late,
  and replaces them by key (order lines go with their orders).
* ``refresh``: small rows that a single action can change by the thousand (a merge moves every
  profile of a customer; an erasure blanks a profile): copied whole each sync, which is one scan.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import ibis
import orjson
from sqlalchemy import Select, func, select

from lianjie.commerce.models import Category, Order, OrderLine
from lianjie.identity.models import Event, Profile, ProfileTag
from lianjie.loyalty.membership.models import MembershipPeriod, MembershipPlan
from lianjie.loyalty.models import PointsAccount, PointsEntry, TierAssignment
from lianjie.tenants.models import Staff, Store

AnySelect = Select[*tuple[Any, ...]]


def _json(value: Any) -> str | None:
    return None if value is None else orjson.dumps(value).decode()


def _traits(value: dict[str, Any] | None) -> str | None:
    """Profile traits are stored as {name: [value, event time]}; the warehouse keeps the values."""
    if not value:
        return None
    return orjson.dumps({k: v[0] if isinstance(v, list) and len(v) == 2 else v for k, v in value.items()}).decode()


def _properties(payload: dict[str, Any] | None) -> str | None:
    if not payload:
        return None
    return _json(payload.get("properties") or payload.get("traits"))


@dataclass(frozen=True)
class WarehouseTable:
    name: str
    mode: Literal["append", "changed", "refresh"]
    schema: ibis.Schema
    source: Callable[[], AnySelect]
    key: str = "id"
    convert: dict[str, Callable[[Any], Any]] | None = None  # per-column conversions of source values


TS = "timestamp('UTC')"

IDENTITY_MAP = WarehouseTable(
    "identity_map", "refresh",
    ibis.schema({"tenant_id": "int64", "profile_id": "int64", "customer_id": "int64", "erased": "boolean"}),
    lambda: select(Profile.tenant_id, Profile.id, func.coalesce(Profile.merged_into_id, Profile.id),
                   Profile.erased_at.is_not(None)),
    key="profile_id")

PROFILES = WarehouseTable(
    "profiles", "refresh",
    ibis.schema({"tenant_id": "int64", "profile_id": "int64", "created_at": TS, "first_seen_at": TS,
                 "last_seen_at": TS, "event_count": "int64", "traits": "json", "erased_at": TS}),
    lambda: select(Profile.tenant_id, Profile.id, Profile.created_at, Profile.first_seen_at, Profile.last_seen_at,
                   Profile.event_count, Profile.traits, Profile.erased_at),
    key="profile_id", convert={"traits": _traits})

EVENTS = WarehouseTable(
    "events", "append",
    ibis.schema({"id": "int64", "tenant_id": "int64", "profile_id": "int64", "type": "string", "event": "string",
                 "source": "string", "timestamp": TS, "received_at": TS, "properties": "json"}),
    lambda: select(Event.id, Event.tenant_id, Event.profile_id, Event.type, Event.event, Event.source,
                   Event.timestamp, Event.received_at, Event.payload),
    convert={"properties": _properties})

ORDERS = WarehouseTable(
    "orders", "changed",
    ibis.schema({"id": "int64", "tenant_id": "int64", "order_no": "string", "profile_id": "int64",
                 "store_id": "int64", "guide_id": "int64", "channel": "string", "payment_method": "string",
                 "currency": "string", "list_fen": "int64", "discount_fen": "int64", "paid_fen": "int64",
                 "refunded_fen": "int64", "status": "string", "ordered_at": TS, "updated_at": TS}),
    lambda: select(Order.id, Order.tenant_id, Order.order_no, Order.profile_id, Order.store_id, Order.guide_id,
                   Order.channel, Order.payment_method, Order.currency, Order.list_fen, Order.discount_fen,
                   Order.paid_fen, Order.refunded_fen, Order.status, Order.ordered_at, Order.updated_at))

ORDER_LINES = WarehouseTable(
    "order_lines", "changed",
    ibis.schema({"id": "int64", "tenant_id": "int64", "order_id": "int64", "line_no": "int64", "sku": "string",
                 "category_code": "string", "quantity": "int64", "paid_fen": "int64", "refunded_quantity": "int64",
                 "refunded_fen": "int64"}),
    lambda: select(OrderLine.id, OrderLine.tenant_id, OrderLine.order_id, OrderLine.line_no, OrderLine.sku,
                   OrderLine.category_code, OrderLine.quantity, OrderLine.paid_fen, OrderLine.refunded_quantity,
                   OrderLine.refunded_fen),
    key="order_id")

POINTS_ENTRIES = WarehouseTable(
    "points_entries", "append",
    ibis.schema({"id": "int64", "tenant_id": "int64", "profile_id": "int64", "account_id": "int64",
                 "operation_id": "int64", "kind": "string", "amount": "int64", "created_at": TS}),
    lambda: select(PointsEntry.id, PointsEntry.tenant_id, PointsAccount.profile_id, PointsEntry.account_id,
                   PointsEntry.operation_id, PointsEntry.kind, PointsEntry.amount, PointsEntry.created_at)
    .join(PointsAccount, PointsAccount.id == PointsEntry.account_id))

TIER_ASSIGNMENTS = WarehouseTable(
    "tier_assignments", "append",
    ibis.schema({"id": "int64", "tenant_id": "int64", "profile_id": "int64", "tier_code": "string",
                 "previous_code": "string", "reason": "string", "created_at": TS}),
    lambda: select(TierAssignment.id, TierAssignment.tenant_id, TierAssignment.profile_id, TierAssignment.tier_code,
                   TierAssignment.previous_code, TierAssignment.reason, TierAssignment.created_at))

PROFILE_TAGS = WarehouseTable(
    "profile_tags", "refresh",
    ibis.schema({"tenant_id": "int64", "profile_id": "int64", "tag": "string", "created_at": TS}),
    lambda: select(ProfileTag.tenant_id, ProfileTag.profile_id, ProfileTag.tag, ProfileTag.created_at),
    key="profile_id")

MEMBERSHIP_PERIODS = WarehouseTable(
    "membership_periods", "refresh",
    ibis.schema({"id": "int64", "tenant_id": "int64", "profile_id": "int64", "membership_id": "int64",
                 "plan_code": "string", "kind": "string", "status": "string", "starts_on": "date",
                 "ends_on": "date", "grace_until": "date", "fee_fen": "int64", "refunded_fen": "int64",
                 "created_at": TS}),
    lambda: select(MembershipPeriod.id, MembershipPeriod.tenant_id, MembershipPeriod.profile_id,
                   MembershipPeriod.membership_id, MembershipPlan.code, MembershipPeriod.kind, MembershipPeriod.status,
                   MembershipPeriod.starts_on, MembershipPeriod.ends_on, MembershipPeriod.grace_until,
                   MembershipPeriod.fee_fen, MembershipPeriod.refunded_fen, MembershipPeriod.created_at)
    .join(MembershipPlan, MembershipPlan.id == MembershipPeriod.plan_id))

STORES = WarehouseTable(
    "stores", "refresh",
    ibis.schema({"id": "int64", "tenant_id": "int64", "code": "string", "name": "string", "city": "string",
                 "province": "string", "type": "string", "status": "string"}),
    lambda: select(Store.id, Store.tenant_id, Store.code, Store.name, Store.city, Store.province, Store.type,
                   Store.status))

STAFF = WarehouseTable(
    "staff", "refresh",
    ibis.schema({"id": "int64", "tenant_id": "int64", "staff_no": "string", "name": "string", "role": "string",
                 "store_id": "int64", "status": "string"}),
    lambda: select(Staff.id, Staff.tenant_id, Staff.staff_no, Staff.name, Staff.role, Staff.store_id, Staff.status))

CATEGORIES = WarehouseTable(
    "categories", "refresh",
    ibis.schema({"tenant_id": "int64", "code": "string", "name": "string", "parent_code": "string",
                 "level": "int64"}),
    lambda: select(Category.tenant_id, Category.code, Category.name, Category.parent_code, Category.level),
    key="code")

TABLES: tuple[WarehouseTable, ...] = (IDENTITY_MAP, PROFILES, EVENTS, ORDERS, ORDER_LINES, POINTS_ENTRIES,
                                      TIER_ASSIGNMENTS, PROFILE_TAGS, MEMBERSHIP_PERIODS, STORES, STAFF, CATEGORIES)

# ---- derived tables: computed in the warehouse from the copied ones, never copied from the store -----

CUSTOMER_TRAITS = "customer_traits"
#: One row per merchant and customer (``customer_id`` as in ``identity_map``), rewritten whole by the
#: traits job. ``rfm_group`` and ``lifecycle_stage`` are codes (audience/traits.py gives zh/en labels);
#: the ``clv_*`` columns are null where the merchant has too few repeat buyers to fit the models.
CUSTOMER_TRAITS_SCHEMA = ibis.schema({
    "tenant_id": "int64", "customer_id": "int64", "computed_at": TS,
    "first_order_at": TS, "last_order_at": TS,
    "recency_days": "int64", "frequency": "int64", "monetary_fen": "int64",
    "r_score": "int64", "f_score": "int64", "m_score": "int64", "rfm_group": "string",
    "lifecycle_stage": "string",
    "clv_p_alive": "float64", "clv_expected_purchases": "float64", "clv_expected_value_fen": "int64"})

#: Every warehouse table's layout by name: the copied ones and the derived ones.
LAYOUTS: dict[str, ibis.Schema] = ({table.name: table.schema for table in TABLES}
                                   | {CUSTOMER_TRAITS: CUSTOMER_TRAITS_SCHEMA})
