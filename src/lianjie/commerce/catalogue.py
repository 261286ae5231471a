"""The category tree and products: upserts keyed by the merchant's own codes, so feeds can repeat.

A product feed from an ERP is sent again and again; upserting on SKU makes every repeat safe and
reports what actually changed. A category's parent must exist first (feeds list parents first),
and a product's category must exist, so the tree the warehouse and segments rely on is whole.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any

from sqlalchemy import Select, select
from sqlalchemy.orm import Session

from lianjie.commerce.models import Category, Product
from lianjie.commerce.schemas import CategoryIn, ImportSummary, ProductIn, ProductUpdate
from lianjie.errors import NotFound, ValidationFailed
from lianjie.pagination import paginate

MAX_DEPTH = 5


def _category(session: Session, tenant_id: int, code: str) -> Category | None:
    return session.scalar(select(Category).where(Category.tenant_id == tenant_id, Category.code == code))


def upsert_category(session: Session, tenant_id: int, data: CategoryIn) -> tuple[Category, str]:
    """Create or update a category; returns it and 'created', 'updated' or 'unchanged'."""
    level = 1
    if data.parent_code is not None:
        parent = _category(session, tenant_id, data.parent_code)
        if parent is None:
            raise ValidationFailed(f"parent category {data.parent_code!r} does not exist; send parents first",
                                   field="parent_code", code="unknown_category")
        if parent.code == data.code or _descends_from(session, tenant_id, parent, data.code):
            raise ValidationFailed(f"category {data.code!r} cannot be its own ancestor", field="parent_code")
        level = parent.level + 1
        if level > MAX_DEPTH:
            raise ValidationFailed(f"categories nest at most {MAX_DEPTH} levels", field="parent_code")
    existing = _category(session, tenant_id, data.code)
    if existing is None:
        category = Category(tenant_id=tenant_id, code=data.code, name=data.name, parent_code=data.parent_code,
                            level=level)
        session.add(category)
        session.flush()
        return category, "created"
    wanted = {"name": data.name, "parent_code": data.parent_code, "level": level}
    return existing, _apply(existing, wanted)


def _descends_from(session: Session, tenant_id: int, node: Category, code: str) -> bool:
    """Whether ``node`` sits below the category ``code`` (moving ``code`` under it would loop)."""
    seen = 0
    while node.parent_code is not None and seen <= MAX_DEPTH:
        if node.parent_code == code:
            return True
        parent = _category(session, tenant_id, node.parent_code)
        if parent is None:
            return False
        node, seen = parent, seen + 1
    return False


def _apply(row: Any, wanted: dict[str, Any]) -> str:
    changed = {k: v for k, v in wanted.items() if getattr(row, k) != v}
    for key, value in changed.items():
        setattr(row, key, value)
    return "updated" if changed else "unchanged"


def list_categories(session: Session, tenant_id: int) -> Sequence[Category]:
    return session.scalars(select(Category).where(Category.tenant_id == tenant_id)
                           .order_by(Category.level, Category.code)).all()


def _check_category(session: Session, tenant_id: int, code: str | None) -> None:
    if code is not None and _category(session, tenant_id, code) is None:
        raise ValidationFailed(f"category {code!r} does not exist", field="category_code", code="unknown_category")


def get_product(session: Session, tenant_id: int, sku: str) -> Product:
    product = session.scalar(select(Product).where(Product.tenant_id == tenant_id, Product.sku == sku))
    if product is None:
        raise NotFound(f"no product with SKU {sku!r}", code="product_not_found", field="sku")
    return product


def upsert_product(session: Session, tenant_id: int, data: ProductIn) -> tuple[Product, str]:
    """Create or update a product by SKU; returns it and 'created', 'updated' or 'unchanged'."""
    _check_category(session, tenant_id, data.category_code)
    existing = session.scalar(select(Product).where(Product.tenant_id == tenant_id, Product.sku == data.sku))
    values = data.model_dump(exclude={"sku"})
    values["status"] = data.status.value
    if existing is None:
        product = Product(tenant_id=tenant_id, sku=data.sku, **values)
        session.add(product)
        session.flush()
        return product, "created"
    outcome = _apply(existing, values)
    session.flush()
    return existing, outcome


def update_product(session: Session, tenant_id: int, sku: str, data: ProductUpdate) -> Product:
    product = get_product(session, tenant_id, sku)
    changes = data.model_dump(exclude_unset=True, exclude_none=True)
    if "category_code" in changes:
        _check_category(session, tenant_id, changes["category_code"])
    if "status" in changes:
        changes["status"] = changes["status"].value
    _apply(product, changes)
    session.flush()
    return product


def list_products(session: Session, tenant_id: int, *, category_code: str | None = None, status: str | None = None,
                  q: str | None = None, limit: int = 100, offset: int = 0) -> tuple[Sequence[Product], int]:
    """Products, optionally of a category *and its subcategories*, by status or name fragment."""
    query: Select[Any] = select(Product).where(Product.tenant_id == tenant_id)
    if category_code is not None:
        query = query.where(Product.category_code.in_(subtree(session, tenant_id, category_code)))
    if status is not None:
        query = query.where(Product.status == status)
    if q:
        query = query.where(Product.name.contains(q, autoescape=True))
    return paginate(session, query.order_by(Product.sku), limit, offset)


def subtree(session: Session, tenant_id: int, code: str) -> set[str]:
    """A category's code and every code below it."""
    children: dict[str | None, list[str]] = {}
    for row_code, parent in session.execute(select(Category.code, Category.parent_code)
                                            .where(Category.tenant_id == tenant_id)):
        children.setdefault(parent, []).append(row_code)
    found, frontier = {code}, [code]
    while frontier:
        for child in children.get(frontier.pop(), []):
            if child not in found:
                found.add(child)
                frontier.append(child)
    return found


def import_catalogue(session: Session, tenant_id: int, categories: Iterable[tuple[int, dict[str, Any]]],
                     products: Iterable[tuple[int, dict[str, Any]]]) -> ImportSummary:
    """Upsert numbered rows (line, fields); a bad row is reported with its line and never stops the rest.

    Columns the catalogue does not know (an ERP's own, or the level a tree export adds) are ignored,
    and so are empty cells.
    """
    summary = ImportSummary()
    _import_rows(session, summary, "category", categories,
                 lambda fields: upsert_category(session, tenant_id, CategoryIn.model_validate(fields))[1],
                 frozenset(CategoryIn.model_fields))
    _import_rows(session, summary, "product", products,
                 lambda fields: upsert_product(session, tenant_id, ProductIn.model_validate(fields))[1],
                 frozenset(ProductIn.model_fields))
    return summary


def _import_rows(session: Session, summary: ImportSummary, kind: str, rows: Iterable[tuple[int, dict[str, Any]]],
                 upsert: Callable[[dict[str, Any]], str], known: frozenset[str]) -> None:
    for line, row in rows:
        fields = {k: v for k, v in row.items() if k in known and v is not None}
        savepoint = session.begin_nested()
        try:
            outcome = upsert(fields)
        except (ValidationFailed, ValueError) as exc:
            savepoint.rollback()
            summary.rejected.append({"kind": kind, "line": line, "reason": _reason(exc)})
            continue
        savepoint.commit()
        setattr(summary, outcome, getattr(summary, outcome) + 1)


def _reason(exc: Exception) -> str:
    errors = getattr(exc, "errors", None)
    if callable(errors):
        first = errors()[0]
        return f"{'.'.join(str(p) for p in first['loc'])}: {first['msg']}"
    return str(exc)
