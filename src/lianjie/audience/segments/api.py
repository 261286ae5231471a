"""Segment API: save rules, preview them (a count and a sample), snapshot members, size history, and
export a snapshot for an ad platform's custom audience. A malformed rule is a 400 whose ``field`` is
the JSON path of the problem (``rule.all[2].any[0].op``)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Body, Query, Response, status
from fastapi.responses import StreamingResponse

from lianjie.audience.segments import export, service
from lianjie.audience.segments.schemas import (
    HashKind,
    IdType,
    PreviewIn,
    PreviewOut,
    SegmentIn,
    SegmentOut,
    SegmentPatch,
    SnapshotIn,
    SnapshotOut,
)
from lianjie.crypto import get_cipher
from lianjie.http import REPLAYED, DbSession, RowId
from lianjie.pagination import Limit, Offset, Page
from lianjie.tenants.auth import RequireScope
from lianjie.tenants.keys import Caller
from lianjie.warehouse.http import Warehouse, WarehouseWriter

router = APIRouter(prefix="/api/v1/segments", tags=["segments"])
Reader = Annotated[Caller, RequireScope("audiences:read")]
Writer = Annotated[Caller, RequireScope("audiences:write")]


def _by(caller: Caller) -> str:
    return f"api key {caller.key_id}"


@router.post("", status_code=201, responses=REPLAYED)
def create_segment(body: SegmentIn, response: Response, session: DbSession, caller: Writer) -> SegmentOut:
    """Save a rule under a name; the same name and rule again answers the stored segment (200)."""
    segment, created = service.create(session, caller.tenant_id, body, _by(caller))
    response.status_code = status.HTTP_201_CREATED if created else status.HTTP_200_OK
    return SegmentOut.model_validate(segment)


@router.get("")
def list_segments(session: DbSession, caller: Reader, limit: Limit = 50, offset: Offset = 0,
                  archived: bool = False) -> Page[SegmentOut]:
    items, total = service.listing(session, caller.tenant_id, archived=archived, limit=limit, offset=offset)
    return Page(items=[SegmentOut.model_validate(s) for s in items], total=total, limit=limit, offset=offset)


@router.post("/preview")
def preview_rule(body: PreviewIn, session: DbSession, warehouse: Warehouse, caller: Reader) -> PreviewOut:
    """How many customers a rule not saved yet matches, and a sample of them."""
    where = service.scope(session, caller.tenant_id, backend=warehouse.name)
    return service.preview(warehouse, where, body.rule, body.sample)


@router.get("/{segment_id}")
def get_segment(segment_id: RowId, session: DbSession, caller: Reader) -> SegmentOut:
    return SegmentOut.model_validate(service.get(session, caller.tenant_id, segment_id))


@router.patch("/{segment_id}")
def update_segment(segment_id: RowId, body: SegmentPatch, session: DbSession, caller: Writer) -> SegmentOut:
    """Rename, describe or change the rule (which bumps ``rule_version``)."""
    return SegmentOut.model_validate(service.update(session, caller.tenant_id, segment_id, body, _by(caller)))


@router.delete("/{segment_id}")
def archive_segment(segment_id: RowId, session: DbSession, caller: Writer) -> SegmentOut:
    """Archive: kept with its snapshots and exports, its name free for a new segment."""
    return SegmentOut.model_validate(service.archive(session, caller.tenant_id, segment_id, _by(caller)))


@router.post("/{segment_id}/preview")
def preview_segment(segment_id: RowId, session: DbSession, warehouse: Warehouse, caller: Reader,
                    sample: Annotated[int, Body(embed=True, ge=0, le=100)] = 10) -> PreviewOut:
    segment = service.get(session, caller.tenant_id, segment_id)
    where = service.scope(session, caller.tenant_id, backend=warehouse.name)
    return service.preview(warehouse, where, segment.rule, sample)


@router.post("/{segment_id}/snapshots", status_code=201, responses=REPLAYED)
def take_snapshot(segment_id: RowId, response: Response, session: DbSession, warehouse: WarehouseWriter,
                  caller: Writer, body: SnapshotIn | None = None) -> SnapshotOut:
    """Evaluate the segment now and keep its members (idempotent with ``idempotency_key``)."""
    out = service.take_snapshot(session, warehouse, caller.tenant_id, segment_id, body or SnapshotIn(), _by(caller))
    response.status_code = status.HTTP_200_OK if out.replayed else status.HTTP_201_CREATED
    return out


@router.get("/{segment_id}/snapshots")
def list_snapshots(segment_id: RowId, session: DbSession, caller: Reader) -> list[SnapshotOut]:
    """The size history, oldest first."""
    return service.history(session, caller.tenant_id, segment_id)


@router.get("/{segment_id}/export.csv", response_class=StreamingResponse,
            responses={200: {"content": {"text/csv": {}}}})
def export_snapshot(segment_id: RowId, session: DbSession, warehouse: Warehouse, caller: Writer,
                    snapshot: Annotated[int | None, Query(ge=1, le=2**63 - 1)] = None,
                    id_type: IdType = IdType.CUSTOMER_ID, hash: HashKind = HashKind.NONE,
                    header: bool = True, appid: Annotated[str | None, Query(max_length=64)] = None,
                    ) -> StreamingResponse:
    """A snapshot's members (default the latest) as one id per line; phone and openid only for
    customers with marketing consent (see the README's *Segments* section for the exact formats)."""
    taken = service.get_snapshot(session, caller.tenant_id, segment_id, snapshot)
    customers = service.snapshot_members(warehouse, caller.tenant_id, taken).order_by("customer_id")
    ids = [int(v) for v in customers.to_pyarrow().column("customer_id").to_pylist()]
    body = list(export.lines(session, get_cipher(), caller.tenant_id, ids, id_type, hash, with_header=header,
                             appid=appid))
    filename = f"segment-{segment_id}-snapshot-{taken.id}-{export.header(id_type, hash)}.csv"
    return StreamingResponse(iter(body), media_type="text/csv; charset=utf-8",
                             headers={"Content-Disposition": f'attachment; filename="{filename}"'})
