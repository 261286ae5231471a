from __future__ import annotations

import pytest
from pydantic import ValidationError
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from lianjie.errors import Conflict, NotFound, ValidationFailed
from lianjie.tenants import service
from lianjie.tenants.models import Staff
from lianjie.tenants.schemas import MerchantCreate, StaffCreate, StaffUpdate, StoreCreate
from tests.factories import make_guide, make_merchant, make_store


def test_merchant_defaults_to_cny_and_shanghai(db: Session) -> None:
    merchant = make_merchant(db)
    assert (merchant.currency, merchant.timezone) == ("CNY", "Asia/Shanghai")
    assert service.get_merchant(db, "huamei").id == service.get_merchant(db, merchant.id).id


def test_merchant_create_replays_and_refuses_a_different_merchant_under_the_same_slug(db: Session) -> None:
    first, created = service.create_merchant(db, MerchantCreate(slug="yuedong", name="悦动运动"))
    again, created_again = service.create_merchant(db, MerchantCreate(slug="yuedong", name="悦动运动"))
    assert created
    assert not created_again
    assert again.id == first.id
    with pytest.raises(Conflict) as caught:
        service.create_merchant(db, MerchantCreate(slug="yuedong", name="别的公司"))
    assert caught.value.details["name"] == {"stored": "悦动运动", "sent": "别的公司"}


@pytest.mark.parametrize(("field", "value"), [("slug", "Bad Slug"), ("timezone", "Mars/Base"),
                                              ("currency", "yuan"), ("name", "  ")])
def test_merchant_input_is_validated(field: str, value: str) -> None:
    values = {"slug": "ok", "name": "好", field: value}
    with pytest.raises(ValidationError) as caught:
        MerchantCreate.model_validate(values)
    assert caught.value.errors()[0]["loc"] == (field,)


def test_store_add_is_idempotent_on_code_and_scoped_by_merchant(db: Session) -> None:
    a, b = make_merchant(db, "shop-a"), make_merchant(db, "shop-b")
    store = make_store(db, a, "SH001")
    assert make_store(db, a, "SH001").id == store.id
    other = make_store(db, b, "SH001")  # the same code at another merchant is another store
    assert other.id != store.id
    with pytest.raises(Conflict):
        service.add_store(db, a.id, StoreCreate(code="SH001", name="改名", city="上海", province="上海", type="mall"))
    with pytest.raises(NotFound):
        service.get_store(db, b.id, "NOPE")
    rows, total = service.list_stores(db, a.id)
    assert total == 1
    assert [s.id for s in rows] == [store.id]


def test_guides_need_a_store_and_owners_have_none(db: Session) -> None:
    merchant = make_merchant(db)
    make_store(db, merchant)
    with pytest.raises(ValidationFailed) as caught:
        service.add_staff(db, merchant.id, StaffCreate(staff_no="G1", name="李雷", role="guide"))
    assert caught.value.field == "store_code"
    with pytest.raises(ValidationFailed):
        service.add_staff(db, merchant.id, StaffCreate(staff_no="O1", name="张总", role="owner", store_code="SH001"))


def test_staff_cannot_join_another_merchants_store(db: Session) -> None:
    a, b = make_merchant(db, "shop-a"), make_merchant(db, "shop-b")
    store_of_a = make_store(db, a, "SH001")
    with pytest.raises(NotFound):
        service.add_staff(db, b.id, StaffCreate(staff_no="G1", name="韩梅梅", role="guide", store_code="SH001"))
    # Even code that bypasses the service cannot: the (tenant_id, store_id) foreign key refuses it.
    savepoint = db.begin_nested()
    db.add(Staff(tenant_id=b.id, staff_no="X", name="x", role="guide", store_id=store_of_a.id))
    with pytest.raises(IntegrityError):
        db.flush()
    savepoint.rollback()


def test_guide_moves_store_and_leaves(db: Session) -> None:
    merchant = make_merchant(db)
    first, second = make_store(db, merchant, "SH001"), make_store(db, merchant, "BJ001", "北京", "北京")
    guide = make_guide(db, merchant, first)
    service.update_staff(db, merchant.id, guide.staff_no, StaffUpdate(store_code="BJ001"))
    assert guide.store_id == second.id
    service.update_staff(db, merchant.id, guide.staff_no, StaffUpdate(status="left"))
    rows, _ = service.list_staff(db, merchant.id, status="active")
    assert rows == []
    promoted = service.update_staff(db, merchant.id, guide.staff_no, StaffUpdate(role="admin"))
    assert promoted.store_id is None  # an admin works for the whole merchant


def test_staff_phone_is_stored_encrypted(db: Session) -> None:
    merchant = make_merchant(db)
    store = make_store(db, merchant)
    staff, _ = service.add_staff(db, merchant.id, StaffCreate(staff_no="G9", name="赵敏", role="guide",
                                                               store_code=store.code, phone="13912345678"))
    raw = db.scalar(select(Staff.phone_encrypted).where(Staff.id == staff.id))
    assert raw is not None
    assert b"13912345678" not in raw
    assert service.staff_out(db, staff, reveal_phone=True).phone == "13912345678"
    assert service.staff_out(db, staff, reveal_phone=False).phone is None
