"""Segments: saving rules, previewing them, snapshotting their members, and the size history.

The operational store keeps the segments and their snapshots' sizes; the members of a snapshot go
to the warehouse table ``segment_members`` (tenant_id, segment_id, snapshot_id, customer_id),
written by one ``INSERT … SELECT`` of the compiled rule, so a million members never pass through
Python, on DuckDB or on PySpark alike. Services only flush; the caller owns the transaction.
"""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Sequence
from typing import Any
from zoneinfo import ZoneInfo

import ibis
import orjson
from sqlalchemy import select
from sqlalchemy.orm import Session

from lianjie.audience.segments import compiler, rules
from lianjie.audience.segments.models import Segment, SegmentSnapshot
from lianjie.audience.segments.schemas import (
    PreviewOut,
    SampleProfile,
    SegmentIn,
    SegmentPatch,
    SnapshotIn,
    SnapshotOut,
)
from lianjie.db import utcnow
from lianjie.errors import Conflict, NotFound
from lianjie.pagination import paginate
from lianjie.tenants import service as tenants
from lianjie.warehouse.tables import CUSTOMER_TRAITS, LAYOUTS

SEGMENT_MEMBERS = "segment_members"
SEGMENT_MEMBERS_SCHEMA = ibis.schema({"tenant_id": "int64", "segment_id": "int64", "snapshot_id": "int64",
                                      "customer_id": "int64"})


@functools.cache
def declared_table(name: str) -> Any:
    """A warehouse table by its declared layout (tables.py), not looked up in the backend: asking the
    backend for each table's schema costs a metadata query per table per preview (about as much as
    a small preview itself on DuckDB, more on Spark). Run such expressions with ``con.execute``."""
    return ibis.table(LAYOUTS[name], name=name)


def scope(session: Session, tenant_id: int, as_of: dt.datetime | None = None, *,
          backend: str = "duckdb") -> compiler.Scope:
    """The merchant's warehouse tables as of ``as_of`` (default now) in the merchant's time zone."""
    merchant = tenants.get_merchant(session, tenant_id)
    return compiler.Scope(tenant_id, (as_of or utcnow()).astimezone(dt.UTC), ZoneInfo(merchant.timezone),
                          declared_table, backend)


# ---- saved segments -------------------------------------------------------------------------------

def get(session: Session, tenant_id: int, segment_id: int) -> Segment:
    segment = session.scalar(select(Segment).where(Segment.tenant_id == tenant_id, Segment.id == segment_id))
    if segment is None:
        raise NotFound(f"no segment {segment_id}", code="segment_not_found")
    return segment


def _live_named(session: Session, tenant_id: int, name: str) -> Segment | None:
    return session.scalar(select(Segment).where(Segment.tenant_id == tenant_id, Segment.name == name,
                                                Segment.archived_at.is_(None)))


def create(session: Session, tenant_id: int, data: SegmentIn, by: str) -> tuple[Segment, bool]:
    """A new segment, or the stored one when the same name comes again with the same rule and
    description (a retried create); the same name with other content is a 409 naming the fields."""
    rule = rules.dump(rules.parse(data.rule))
    existing = _live_named(session, tenant_id, data.name)
    if existing is not None:
        differing = [f for f, ours in (("rule", rule), ("description", data.description))
                     if getattr(existing, f) != ours]
        if differing:
            raise Conflict(f"a segment named {data.name!r} exists with another {' and '.join(differing)}",
                           code="segment_exists", field="name",
                           details={"segment_id": existing.id, "differing": differing})
        return existing, False
    segment = Segment(tenant_id=tenant_id, name=data.name, description=data.description, rule=rule,
                      created_by=data.operator or by, updated_by=data.operator or by)
    session.add(segment)
    session.flush()
    return segment, True


def update(session: Session, tenant_id: int, segment_id: int, data: SegmentPatch, by: str) -> Segment:
    """Change the name, description or rule; a changed rule bumps ``rule_version``."""
    segment = get(session, tenant_id, segment_id)
    if segment.archived_at is not None:
        raise Conflict(f"segment {segment_id} is archived", code="segment_archived")
    if data.name is not None and data.name != segment.name:
        other = _live_named(session, tenant_id, data.name)
        if other is not None:
            raise Conflict(f"a segment named {data.name!r} exists", code="segment_exists", field="name",
                           details={"segment_id": other.id})
        segment.name = data.name
    if "description" in data.model_fields_set:
        segment.description = data.description
    if "rule" in data.model_fields_set:
        rule = rules.dump(rules.parse(data.rule))
        if rule != segment.rule:
            segment.rule = rule
            segment.rule_version += 1
    segment.updated_by = data.operator or by
    segment.updated_at = utcnow()
    session.flush()
    return segment


def archive(session: Session, tenant_id: int, segment_id: int, by: str) -> Segment:
    """Archive (kept with its snapshots, its name free again); archiving twice keeps the first time."""
    segment = get(session, tenant_id, segment_id)
    if segment.archived_at is None:
        segment.archived_at = utcnow()
        segment.updated_by = by
        session.flush()
    return segment


def listing(session: Session, tenant_id: int, *, archived: bool, limit: int,
            offset: int) -> tuple[Sequence[Segment], int]:
    query = select(Segment).where(Segment.tenant_id == tenant_id)
    if not archived:
        query = query.where(Segment.archived_at.is_(None))
    return paginate(session, query.order_by(Segment.id), limit, offset)


# ---- preview and snapshots ------------------------------------------------------------------------

def _json(value: Any) -> dict[str, Any]:
    if isinstance(value, str):
        value = orjson.loads(value)
    return value if isinstance(value, dict) else {}


def preview(con: Any, where: compiler.Scope, raw_rule: Any, sample: int) -> PreviewOut:
    """How many customers match (one query) and the first ``sample`` of them by id, with a few fields."""
    rule = rules.parse(raw_rule)
    matched = compiler.members(rule, where)
    total = int(con.execute(matched.count()))
    profiles: list[SampleProfile] = []
    if sample and total:
        first = matched.order_by("customer_id").limit(sample)
        traits = where.tenant(CUSTOMER_TRAITS)
        p = where.tenant("profiles")
        rows = (first.left_join(traits, first.customer_id == traits.customer_id)
                .left_join(p, first.customer_id == p.profile_id)
                .select(first.customer_id, p.traits, traits.rfm_group, traits.lifecycle_stage, traits.frequency,
                        traits.monetary_fen, traits.last_order_at)
                .order_by("customer_id"))
        for row in con.to_pyarrow(rows).to_pylist():
            row["traits"] = _json(row["traits"])
            profiles.append(SampleProfile.model_validate(row))
    return PreviewOut(count=total, sample=profiles, as_of=where.as_of)


def _ensure_members_table(con: Any) -> None:
    if SEGMENT_MEMBERS not in con.list_tables():
        con.create_table(SEGMENT_MEMBERS, schema=SEGMENT_MEMBERS_SCHEMA)


def take_snapshot(session: Session, con: Any, tenant_id: int, segment_id: int, data: SnapshotIn,
                  by: str, as_of: dt.datetime | None = None) -> SnapshotOut:
    """Evaluate the segment now and keep its members; a repeated idempotency key answers the stored one."""
    segment = get(session, tenant_id, segment_id)
    if data.idempotency_key is not None:
        stored = session.scalar(select(SegmentSnapshot).where(SegmentSnapshot.segment_id == segment.id,
                                                              SegmentSnapshot.idempotency_key == data.idempotency_key))
        if stored is not None:
            return SnapshotOut.model_validate(stored).model_copy(update={"replayed": True})
    if segment.archived_at is not None:
        raise Conflict(f"segment {segment_id} is archived", code="segment_archived")
    where = scope(session, tenant_id, as_of, backend=con.name)
    snapshot = SegmentSnapshot(tenant_id=tenant_id, segment_id=segment.id, idempotency_key=data.idempotency_key,
                               rule=segment.rule, rule_version=segment.rule_version, as_of=where.as_of, size=0,
                               taken_by=data.operator or by)
    session.add(snapshot)
    session.flush()
    _ensure_members_table(con)
    matched = compiler.members(rules.parse(segment.rule), where)
    con.insert(SEGMENT_MEMBERS, matched.select(
        tenant_id=ibis.literal(tenant_id, type="int64"), segment_id=ibis.literal(segment.id, type="int64"),
        snapshot_id=ibis.literal(snapshot.id, type="int64"), customer_id=matched.customer_id))
    snapshot.size = int(con.execute(snapshot_members(con, tenant_id, snapshot).count()))
    session.flush()
    return SnapshotOut.model_validate(snapshot)


def snapshot_members(con: Any, tenant_id: int, snapshot: SegmentSnapshot) -> Any:
    """The warehouse rows of a snapshot's members (column ``customer_id``)."""
    t = con.table(SEGMENT_MEMBERS)
    return t.filter(t.tenant_id == tenant_id, t.snapshot_id == snapshot.id).select("customer_id")


def history(session: Session, tenant_id: int, segment_id: int) -> list[SnapshotOut]:
    """The segment's snapshots, oldest first: its size over time."""
    segment = get(session, tenant_id, segment_id)
    rows = session.scalars(select(SegmentSnapshot).where(SegmentSnapshot.segment_id == segment.id)
                           .order_by(SegmentSnapshot.taken_at, SegmentSnapshot.id)).all()
    return [SnapshotOut.model_validate(r) for r in rows]


def get_snapshot(session: Session, tenant_id: int, segment_id: int, snapshot_id: int | None) -> SegmentSnapshot:
    """A snapshot of the segment, or its latest when ``snapshot_id`` is None."""
    segment = get(session, tenant_id, segment_id)
    query = select(SegmentSnapshot).where(SegmentSnapshot.segment_id == segment.id)
    if snapshot_id is not None:
        query = query.where(SegmentSnapshot.id == snapshot_id)
    found = session.scalar(query.order_by(SegmentSnapshot.id.desc()).limit(1))
    if found is None:
        raise NotFound(f"segment {segment_id} has no snapshot" + (f" {snapshot_id}" if snapshot_id else "")
                       + ": take one with POST …/snapshots", code="snapshot_not_found", field="snapshot")
    return found
