"""Coupon templates: created once under the merchant's code (repeating the same create is safe),
listed, and paused, resumed or ended; stock and the per-customer limit may be changed later.

A template's references are checked when it is saved, because an operator's typo in a SKU or a
category code would otherwise make a coupon that silently never applies.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Select, select
from sqlalchemy.orm import Session

from lianjie.commerce.models import Category, Product
from lianjie.errors import Conflict, NotFound, ValidationFailed
from lianjie.loyalty.coupons.models import CouponTemplate
from lianjie.loyalty.coupons.schemas import TemplateIn, TemplateOut, TemplatePatch
from lianjie.pagination import paginate
from lianjie.tenants import audit
from lianjie.tenants.models import Store


def get(session: Session, tenant_id: int, code: str, *, lock: bool = False) -> CouponTemplate:
    """A template by the merchant's code; ``lock`` holds its row until the transaction ends (PostgreSQL).

    The lock is ``FOR NO KEY UPDATE``: rows that merely reference the template (a new issue, new
    coupons) take a key-share lock on it, which a plain ``FOR UPDATE`` would conflict with, and two
    issuers that both inserted a reference and then asked for the row would deadlock.
    """
    query = select(CouponTemplate).where(CouponTemplate.tenant_id == tenant_id, CouponTemplate.code == code)
    if lock:
        query = query.with_for_update(key_share=True).execution_options(populate_existing=True)
    template = session.scalar(query)
    if template is None:
        raise NotFound(f"no coupon template {code!r}", code="coupon_template_not_found", field="template_code")
    return template


def _missing(session: Session, column: Any, tenant_column: Any, tenant_id: int, wanted: Sequence[str]) -> list[str]:
    if not wanted:
        return []
    found = set(session.scalars(select(column).where(tenant_column == tenant_id, column.in_(set(wanted)))))
    return sorted(set(wanted) - found)


def _check_references(session: Session, tenant_id: int, data: TemplateIn) -> None:
    scope = data.scope
    checks = [
        ("scope.skus", Product.sku, Product.tenant_id, [*scope.skus, *scope.exclude_skus], "unknown_sku"),
        ("gift_sku", Product.sku, Product.tenant_id, [data.gift_sku] if data.gift_sku else [], "unknown_sku"),
        ("scope.categories", Category.code, Category.tenant_id, [*scope.categories, *scope.exclude_categories],
         "unknown_category"),
        ("scope.stores", Store.code, Store.tenant_id, scope.stores, "unknown_store"),
    ]
    for field, column, tenant_column, wanted, code in checks:
        missing = _missing(session, column, tenant_column, tenant_id, wanted)
        if missing:
            raise ValidationFailed(f"{field}: not in the catalogue or store list: {', '.join(missing)}",
                                   field=field, code=code)


def _values(data: TemplateIn) -> dict[str, Any]:
    values = data.model_dump(exclude={"code", "scope"})
    values["kind"] = data.kind.value
    values["scope"] = {k: v for k, v in data.scope.model_dump(mode="json").items() if v}
    return values


def create(session: Session, tenant_id: int, data: TemplateIn) -> tuple[CouponTemplate, bool]:
    """A new template, or the stored one if the same code was created with the same content before."""
    values = _values(data)
    existing = session.scalar(select(CouponTemplate).where(CouponTemplate.tenant_id == tenant_id,
                                                           CouponTemplate.code == data.code))
    if existing is not None:
        differing = sorted(k for k, v in values.items() if getattr(existing, k) != v)
        if differing:
            raise Conflict(f"coupon template {data.code!r} already exists with other values: {', '.join(differing)}",
                           code="coupon_template_exists", field="code")
        return existing, False
    _check_references(session, tenant_id, data)
    template = CouponTemplate(tenant_id=tenant_id, code=data.code, issued=0, **values)
    session.add(template)
    session.flush()
    audit.record(session, tenant_id, "coupon_template.create", f"coupon_template:{template.code}",
                 after=out(template))
    return template, True


def update(session: Session, tenant_id: int, code: str, data: TemplatePatch) -> CouponTemplate:
    """Rename, pause/resume/end, change stock (never below what was issued) or the per-customer limit."""
    template = get(session, tenant_id, code, lock=True)
    changes = data.model_dump(exclude_unset=True, exclude_none=True)
    if "stock" in changes and changes["stock"] < template.issued:
        raise ValidationFailed(f"stock cannot go below the {template.issued} coupons already issued", field="stock",
                               code="stock_below_issued")
    if template.status == "ended" and changes.get("status", "ended") != "ended":
        raise Conflict(f"coupon template {code!r} has ended for good", code="coupon_template_ended", field="status")
    before = out(template)
    for key, value in changes.items():
        setattr(template, key, value.value if key == "status" else value)
    session.flush()
    audit.record(session, tenant_id, "coupon_template.update", f"coupon_template:{template.code}", before=before,
                 after=out(template))
    return template


def list_templates(session: Session, tenant_id: int, *, status: str | None = None, limit: int = 100,
                   offset: int = 0) -> tuple[Sequence[CouponTemplate], int]:
    query: Select[Any] = select(CouponTemplate).where(CouponTemplate.tenant_id == tenant_id)
    if status is not None:
        query = query.where(CouponTemplate.status == status)
    return paginate(session, query.order_by(CouponTemplate.id.desc()), limit, offset)


def out(template: CouponTemplate) -> TemplateOut:
    return TemplateOut.model_validate(template)


def category_parents(session: Session, tenant_id: int) -> dict[str, str | None]:
    """The merchant's category tree as ``{code: parent_code}``."""
    rows = session.execute(select(Category.code, Category.parent_code).where(Category.tenant_id == tenant_id))
    return {code: parent for code, parent in rows}


def product_categories(session: Session, tenant_id: int, skus: Sequence[str]) -> dict[str, str | None]:
    """The catalogue's category of each SKU (for basket lines sent without one)."""
    if not skus:
        return {}
    rows = session.execute(select(Product.sku, Product.category_code)
                           .where(Product.tenant_id == tenant_id, Product.sku.in_(set(skus))))
    return {sku: category for sku, category in rows}
