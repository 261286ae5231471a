"""Merchants, stores and staff: the organisation every other domain hangs off.

Creation is idempotent on the merchant's own identifiers (slug, store code, staff number): sending
the same thing twice returns the existing row; sending something different under a taken identifier
is a conflict, never a silent overwrite. Services only flush; the caller owns the transaction.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Select, select
from sqlalchemy.orm import Session

from lianjie.crypto import get_cipher
from lianjie.errors import Conflict, NotFound, ValidationFailed
from lianjie.pagination import paginate
from lianjie.tenants import audit
from lianjie.tenants.models import Merchant, Staff, StaffRole, StaffStatus, Store
from lianjie.tenants.schemas import (
    MerchantCreate,
    MerchantUpdate,
    StaffCreate,
    StaffOut,
    StaffUpdate,
    StoreCreate,
    StoreUpdate,
)

STORE_ROLES = frozenset({StaffRole.STORE_MANAGER, StaffRole.GUIDE})


def _differences(row: Any, wanted: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Fields whose stored value differs from a replayed create request."""
    diffs = {}
    for field, value in wanted.items():
        current = getattr(row, field)
        if current != value:
            diffs[field] = {"stored": str(current), "sent": str(value)}
    return diffs


def _replay(existing: Any, wanted: dict[str, Any], what: str, code: str, field: str) -> None:
    """Accept an identical repeat of a create; refuse one that differs, naming the fields."""
    diffs = _differences(existing, wanted)
    if diffs:
        if diffs.pop("phone_hash", None):
            diffs["phone"] = {"stored": "(hidden)", "sent": "(hidden)"}
        raise Conflict(f"{what} already exists with other values", code=code, field=field, details=diffs)


def _equal_to(query: Select[Any], **filters: tuple[Any, Any]) -> Select[Any]:
    """Add ``column == value`` for every filter whose value was given."""
    for column, value in filters.values():
        if value is not None:
            query = query.where(column == value)
    return query


# ---- merchants -------------------------------------------------------------------------------------


def create_merchant(session: Session, data: MerchantCreate) -> tuple[Merchant, bool]:
    """Create a merchant; returns ``(merchant, created)``; an identical replay is not an error."""
    existing = session.scalar(select(Merchant).where(Merchant.slug == data.slug))
    if existing is not None:
        _replay(existing, data.model_dump(), f"merchant {data.slug!r}", "merchant_exists", "slug")
        return existing, False
    merchant = Merchant(**data.model_dump())
    session.add(merchant)
    session.flush()
    return merchant, True


def get_merchant(session: Session, ref: str | int) -> Merchant:
    """A merchant by id or slug (the CLI accepts either)."""
    if isinstance(ref, int) or str(ref).isdigit():
        merchant = session.get(Merchant, int(ref))
    else:
        merchant = session.scalar(select(Merchant).where(Merchant.slug == ref))
    if merchant is None:
        raise NotFound(f"no merchant {ref!r}", code="merchant_not_found")
    return merchant


def list_merchants(session: Session) -> Sequence[Merchant]:
    return session.scalars(select(Merchant).order_by(Merchant.id)).all()


def update_merchant(session: Session, tenant_id: int, data: MerchantUpdate) -> Merchant:
    merchant = get_merchant(session, tenant_id)
    changes = data.model_dump(exclude_unset=True, exclude_none=True)
    before = {field: getattr(merchant, field) for field in changes}
    for field, value in changes.items():
        setattr(merchant, field, value)
    session.flush()
    audit.record(session, tenant_id, "merchant.update", f"merchant:{tenant_id}", before=before, after=changes)
    return merchant


# ---- stores ----------------------------------------------------------------------------------------


def get_store(session: Session, tenant_id: int, code: str) -> Store:
    store = session.scalar(select(Store).where(Store.tenant_id == tenant_id, Store.code == code))
    if store is None:
        raise NotFound(f"no store with code {code!r}", code="store_not_found", field="store_code")
    return store


def add_store(session: Session, tenant_id: int, data: StoreCreate) -> tuple[Store, bool]:
    """Add a store; returns ``(store, created)``; an identical replay returns the stored one."""
    wanted = data.model_dump()
    existing = session.scalar(select(Store).where(Store.tenant_id == tenant_id, Store.code == data.code))
    if existing is not None:
        _replay(existing, wanted, f"store {data.code!r}", "store_exists", "code")
        return existing, False
    store = Store(tenant_id=tenant_id, **wanted)
    session.add(store)
    session.flush()
    audit.record(session, tenant_id, "store.create", f"store:{store.code}", after=wanted)
    return store, True


def list_stores(session: Session, tenant_id: int, *, city: str | None = None, type: str | None = None,
                status: str | None = None, limit: int = 100, offset: int = 0) -> tuple[Sequence[Store], int]:
    query = _equal_to(select(Store).where(Store.tenant_id == tenant_id), city=(Store.city, city),
                      type=(Store.type, type), status=(Store.status, status))
    return paginate(session, query.order_by(Store.code), limit, offset)


def update_store(session: Session, tenant_id: int, code: str, data: StoreUpdate) -> Store:
    store = get_store(session, tenant_id, code)
    changes = data.model_dump(exclude_unset=True, exclude_none=True)
    before = {field: getattr(store, field) for field in changes}
    for field, value in changes.items():
        setattr(store, field, value)
    session.flush()
    audit.record(session, tenant_id, "store.update", f"store:{code}", before=before, after=changes)
    return store


# ---- staff -----------------------------------------------------------------------------------------


def _check_role_store(role: str, store_code: str | None) -> None:
    if role in STORE_ROLES and store_code is None:
        raise ValidationFailed(f"a {role} must belong to a store: give store_code",
                               code="store_required", field="store_code")
    if role not in STORE_ROLES and store_code is not None:
        raise ValidationFailed(f"an {role} works for the whole merchant and has no store",
                               code="store_not_allowed", field="store_code")


def get_staff(session: Session, tenant_id: int, staff_no: str) -> Staff:
    staff = session.scalar(select(Staff).where(Staff.tenant_id == tenant_id, Staff.staff_no == staff_no))
    if staff is None:
        raise NotFound(f"no staff member {staff_no!r}", code="staff_not_found", field="staff_no")
    return staff


def add_staff(session: Session, tenant_id: int, data: StaffCreate) -> tuple[Staff, bool]:
    """Add a staff member; returns ``(staff, created)``; an identical replay returns the stored one."""
    _check_role_store(data.role, data.store_code)
    store_id = get_store(session, tenant_id, data.store_code).id if data.store_code else None
    wanted: dict[str, Any] = {"name": data.name, "role": data.role.value, "store_id": store_id,
                              "wecom_userid": data.wecom_userid}
    phone_hash = get_cipher().lookup_hash("staff_phone", _normalise_phone(data.phone)) if data.phone else None
    existing = get_staff_or_none(session, tenant_id, data.staff_no)
    if existing is not None:
        _replay(existing, wanted | {"phone_hash": phone_hash}, f"staff member {data.staff_no!r}", "staff_exists",
                "staff_no")
        return existing, False
    staff = Staff(tenant_id=tenant_id, staff_no=data.staff_no, phone_hash=phone_hash, **wanted)
    if data.phone:
        staff.phone_encrypted = get_cipher().encrypt(_normalise_phone(data.phone))
    session.add(staff)
    session.flush()
    audit.record(session, tenant_id, "staff.create", f"staff:{data.staff_no}",
                 after=wanted | {"staff_no": data.staff_no, "phone": "(set)" if data.phone else None})
    return staff, True


def get_staff_or_none(session: Session, tenant_id: int, staff_no: str) -> Staff | None:
    return session.scalar(select(Staff).where(Staff.tenant_id == tenant_id, Staff.staff_no == staff_no))


def list_staff(session: Session, tenant_id: int, *, store_code: str | None = None, role: str | None = None,
               status: str | None = None, limit: int = 100, offset: int = 0) -> tuple[Sequence[Staff], int]:
    store_id = get_store(session, tenant_id, store_code).id if store_code is not None else None
    query = _equal_to(select(Staff).where(Staff.tenant_id == tenant_id), store=(Staff.store_id, store_id),
                      role=(Staff.role, role), status=(Staff.status, status))
    return paginate(session, query.order_by(Staff.staff_no), limit, offset)


def update_staff(session: Session, tenant_id: int, staff_no: str, data: StaffUpdate) -> Staff:
    """Change a staff member; moving a guide to another store or marking them left happens here."""
    staff = get_staff(session, tenant_id, staff_no)
    changes = data.model_dump(exclude_unset=True, exclude_none=True)
    audited = {field: ("(changed)" if field == "phone" else value) for field, value in changes.items()}
    before = {field: ("(hidden)" if field == "phone" else getattr(staff, field, None)) for field in changes}
    before["store_code"] = staff_store_code(session, staff)
    role = changes.get("role", staff.role)
    if "store_code" in changes:
        store_code: str | None = changes.pop("store_code")
    else:
        store_code = staff_store_code(session, staff)
        if role not in STORE_ROLES:
            store_code = None
    _check_role_store(role, store_code)
    staff.store_id = get_store(session, tenant_id, store_code).id if store_code else None
    for field, value in changes.items():
        setattr(staff, field, value)
    if staff.status == StaffStatus.LEFT and staff.role == StaffRole.OWNER:
        raise ValidationFailed("the owner cannot leave; make someone else owner first", field="status")
    session.flush()
    audit.record(session, tenant_id, "staff.update", f"staff:{staff_no}", before=before, after=audited)
    return staff


def staff_store_code(session: Session, staff: Staff) -> str | None:
    if staff.store_id is None:
        return None
    return session.scalar(select(Store.code).where(Store.id == staff.store_id))


def staff_out(session: Session, staff: Staff, *, reveal_phone: bool) -> StaffOut:
    """The public view of a staff member; the phone is decrypted only when the caller may see it."""
    phone = None
    if reveal_phone and staff.phone_encrypted is not None:
        phone = get_cipher().decrypt(staff.phone_encrypted)
    return StaffOut(staff_no=staff.staff_no, name=staff.name, role=StaffRole(staff.role),
                    store_code=staff_store_code(session, staff), wecom_userid=staff.wecom_userid,
                    phone=phone, status=StaffStatus(staff.status), created_at=staff.created_at,
                    updated_at=staff.updated_at)


def _normalise_phone(raw: str) -> str:
    """Digits with a leading '+' kept; enough to compare a staff phone with itself."""
    digits = "".join(ch for ch in raw if ch.isdigit())
    return ("+" + digits) if raw.strip().startswith("+") else digits
