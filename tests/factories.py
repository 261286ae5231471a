"""Small typed factories for tests: they go through the services, like every real caller."""

from __future__ import annotations

from sqlalchemy.orm import Session

from lianjie.tenants import keys, service
from lianjie.tenants.models import ApiKeyKind, Merchant, Staff, Store, StoreType
from lianjie.tenants.schemas import ApiKeyCreate, MerchantCreate, StaffCreate, StoreCreate


def make_merchant(db: Session, slug: str = "huamei", name: str = "华美生活") -> Merchant:
    merchant, _ = service.create_merchant(db, MerchantCreate(slug=slug, name=name))
    return merchant


def make_store(db: Session, merchant: Merchant, code: str = "SH001", city: str = "上海",
               province: str = "上海", type: StoreType = StoreType.MALL) -> Store:
    store, _ = service.add_store(db, merchant.id, StoreCreate(code=code, name=f"{city}{code}店", city=city,
                                                               province=province, type=type))
    return store


def make_guide(db: Session, merchant: Merchant, store: Store, staff_no: str = "G001") -> Staff:
    staff, _ = service.add_staff(db, merchant.id, StaffCreate(staff_no=staff_no, name="王芳", role="guide",
                                                               store_code=store.code))
    return staff


def make_admin_key(db: Session, merchant: Merchant, *scopes: str) -> str:
    _, secret = keys.create_api_key(db, merchant.id, ApiKeyCreate(
        kind=ApiKeyKind.ADMIN, name="test", scopes=list(scopes) or [keys.ALL]))
    return secret


def make_write_key(db: Session, merchant: Merchant, source: str = "pos") -> str:
    _, secret = keys.create_api_key(db, merchant.id, ApiKeyCreate(kind=ApiKeyKind.WRITE, name="test",
                                                                  source=source))
    return secret


def bearer(secret: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}"}
