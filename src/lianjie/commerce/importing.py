"""POS / CSV order import: a mapping file says which column is what; orders go through the order services.

Every till exports differently, so the import is driven by a TOML mapping (see
``commerce/mappings/*.toml``): columns, time format and zone, amount units (yuan with decimals are
converted to fen exactly, via Decimal), encoding, delimiter, buyer identifier columns, and how returns
look (negative quantities, or a marker column, with the original order's number).

Rows are grouped by order number; an order any of whose rows is bad is rejected whole and each of its
rows is listed with its line number and the reason in a rejects CSV, while the good orders go on.
Exact repeats of a row are skipped. A row of quantity 0 (a voided line) is left out and its order
kept, and an order stored with a warning (a buyer phone that is not one) is listed too, each with
its outcome. The rejects file is written in the input's encoding under the var dir.

Orders are stored in chunks, each chunk one transaction of up to 500 orders, on SQLite no longer than about
0.2 s (:func:`_in_turns`: on SQLite, other writers wait for a chunk to commit), stored in pieces
through :func:`lianjie.commerce.orders.record_orders` (the API's own path, buyers resolved per
piece), so a crash loses at most one chunk and a re-run continues: order and refund numbers make
every chunk idempotent, and refund numbers of return rows are derived deterministically.
"""

from __future__ import annotations

import csv
import datetime as dt
import math
import re
import time
import tomllib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from importlib import resources
from pathlib import Path
from typing import Any, TypeVar
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from lianjie.commerce import catalogue, csvfiles
from lianjie.commerce.models import Order, OrderChannel, Product
from lianjie.commerce.orders import Outcome, record_orders
from lianjie.commerce.refunds import RefundOutcome, record_refunds
from lianjie.commerce.schemas import MAX_PRICE_FEN, LineIn, OrderIn, RefundIn, RefundLineIn
from lianjie.config import get_settings
from lianjie.crypto import get_cipher
from lianjie.db import one_writer_at_a_time, transaction, writer_turn
from lianjie.errors import LianjieError, ValidationFailed
from lianjie.tenants import service as tenants
from lianjie.tenants.models import Store, StoreType
from lianjie.tenants.schemas import StoreCreate

CHUNK = 500  # orders (or returns) one transaction stores at most
CHUNK_SECONDS = 0.2  # about how long one import transaction may keep other writers waiting
PIECE_SECONDS = 0.04  # about how long one call of the order (refund) service takes
FIRST_PIECE = 10
CHUNK_PAUSE = 0.02  # between two transactions: the writers that queued meanwhile go first
BUYER_TYPES = ("user_id", "anonymous_id", "member_no", "phone", "email", "wechat_unionid", "wechat_openid",
               "wechat_appid", "wecom_external_userid", "device_id")


# ---- the mapping ----------------------------------------------------------------------------------


class TimeSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")
    column: str
    format: str = Field(default="iso", description="'iso' or a strptime format such as '%Y-%m-%d %H:%M:%S'.")
    timezone: str = Field(default="Asia/Shanghai", description="Zone of times written without an offset.")


class ColumnSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")
    order_no: str
    sku: str
    quantity: str
    line_no: str | None = None
    store_code: str | None = None
    channel: str | None = None
    guide_staff_no: str | None = None
    payment_method: str | None = None
    unit_price: str | None = None
    line_amount: str | None = Field(default=None, description="The line's amount after its own discounts.")
    line_discounts: list[str] = Field(default_factory=list, description="Summed (sign ignored) into the line's "
                                                                        "discount.")


class ReturnSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")
    negative_quantity: bool = True
    marker_column: str | None = None
    marker_values: list[str] = Field(default_factory=list)
    marker_prefix: str | None = Field(default=None, description="Order numbers starting with it are returns.")
    original_order: str | None = Field(default=None, description="Column with the returned order's number.")


class StoreDefaults(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = "{code}"
    city: str = "-"
    province: str = "-"
    type: StoreType = StoreType.COMMUNITY


class ProductSpec(BaseModel):
    """A product file to load into the catalogue before the orders (public data sets ship one)."""

    model_config = ConfigDict(extra="forbid")
    file: str
    sku: str
    name: list[str]
    brand: str | None = None
    category: str | None = None
    price_fen: int = Field(default=0, ge=0, le=MAX_PRICE_FEN)
    only_sold: bool = Field(default=True, description="Load only the products the order file sells.")


class Mapping(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = ""
    description: str = ""
    encoding: str = Field(default="auto", pattern="^(auto|utf-8|gbk)$")
    delimiter: str = Field(default=",", min_length=1, max_length=1)
    source: str = Field(default="pos", min_length=1, max_length=40, description="Stored on each order (40).")
    currency: str | None = Field(default=None, pattern="^[A-Z]{3}$")
    channel: OrderChannel = OrderChannel.OFFLINE
    amounts: str = Field(default="fen", pattern="^(fen|yuan)$", description="'yuan': major units with decimals.")
    create_stores: bool = False
    time: TimeSpec
    columns: ColumnSpec
    buyer: dict[str, str] = Field(default_factory=dict, description="identifier type -> column")
    buyer_constants: dict[str, str] = Field(default_factory=dict, description="e.g. wechat_appid -> value")
    returns: ReturnSpec = Field(default_factory=ReturnSpec)
    stores: StoreDefaults = Field(default_factory=StoreDefaults)
    products: ProductSpec | None = None


def load_mapping(ref: str | Path) -> Mapping:
    """A mapping from a TOML file, or one shipped with lianjie by name (``completejourney``, ``demo``)."""
    path = Path(ref)
    if path.suffix != ".toml" and not path.exists():
        shipped = resources.files("lianjie.commerce") / "mappings" / f"{ref}.toml"
        if not shipped.is_file():
            raise ValidationFailed(f"no mapping file {ref!r} and no shipped mapping of that name",
                                   field="mapping", code="unknown_mapping")
        text = shipped.read_text(encoding="utf-8")
    else:
        text = path.read_text(encoding="utf-8")
    try:
        mapping = Mapping.model_validate(tomllib.loads(text))
    except (tomllib.TOMLDecodeError, ValidationError) as exc:
        raise ValidationFailed(f"mapping {ref}: {exc}", field="mapping", code="invalid_mapping") from exc
    unknown = sorted(set(mapping.buyer) - set(BUYER_TYPES))
    if unknown:
        raise ValidationFailed(f"mapping {ref}: unknown buyer identifier type(s) {unknown}; known: {BUYER_TYPES}",
                               field="mapping", code="invalid_mapping")
    try:
        ZoneInfo(mapping.time.timezone)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValidationFailed(f"mapping {ref}: unknown time zone {mapping.time.timezone!r}", field="mapping",
                               code="invalid_mapping") from exc
    return mapping


# ---- parsing rows ---------------------------------------------------------------------------------


class RowError(Exception):
    """A cell that cannot be read; the message names the column."""


class SkippedRow(RowError):
    """A row that sells nothing (quantity 0, as tills print voided lines): left out, its order kept."""


@dataclass
class Row:
    line: int
    raw: dict[str, Any]
    order_no: str
    is_return: bool
    original: str
    ordered_at: dt.datetime
    head: tuple[Any, ...]
    sku: str
    quantity: int
    line_no: int | None
    unit_price_fen: int | None
    net_fen: int | None
    discount_fen: int


def _cell(raw: dict[str, Any], column: str | None, required: bool = False) -> str | None:
    if column is None:
        return None
    value = raw.get(column)
    if value is None and required:
        raise RowError(f"{column}: empty" if column in raw else f"{column}: no such column")
    return value if isinstance(value, str) else None


def _number(raw: dict[str, Any], column: str) -> Decimal:
    text = _cell(raw, column, required=True)
    try:
        value = Decimal(str(text).replace(",", ""))
    except InvalidOperation:
        raise RowError(f"{column}: {text!r} is not a number") from None
    if not value.is_finite():
        raise RowError(f"{column}: {text!r} is not a number")
    return value


def _money(raw: dict[str, Any], column: str, unit: str) -> int:
    """Fen, exactly: yuan with more than two decimals (a float artefact, 4.440892e-16) is refused."""
    value = _number(raw, column) * (100 if unit == "yuan" else 1)
    if value != value.to_integral_value():
        raise RowError(f"{column}: {raw[column]!r} is not a whole number of fen")
    return int(value)


def _time(raw: dict[str, Any], spec: TimeSpec) -> dt.datetime:
    text = str(_cell(raw, spec.column, required=True))
    try:
        parsed = dt.datetime.fromisoformat(text) if spec.format == "iso" else dt.datetime.strptime(text, spec.format)
    except ValueError:
        raise RowError(f"{spec.column}: {text!r} is not a time in the format {spec.format!r}") from None
    return parsed.replace(tzinfo=ZoneInfo(spec.timezone)) if parsed.tzinfo is None else parsed


def _is_return(raw: dict[str, Any], order_no: str, quantity: Decimal, spec: ReturnSpec) -> bool:
    if spec.marker_column is not None and _cell(raw, spec.marker_column) in spec.marker_values:
        return True
    if spec.marker_prefix and order_no.startswith(spec.marker_prefix):
        return True
    return spec.negative_quantity and quantity < 0


def parse_row(line: int, raw: dict[str, Any], m: Mapping) -> Row:
    """One CSV row as an order line (or a returned line); :class:`RowError` says what is wrong."""
    c = m.columns
    order_no = str(_cell(raw, c.order_no, required=True))
    quantity = _number(raw, c.quantity)
    if quantity != quantity.to_integral_value():
        raise RowError(f"{c.quantity}: {raw[c.quantity]!r} is not a whole number of units")
    if quantity == 0:
        raise SkippedRow(f"{c.quantity}: 0 units; the line is skipped, the rest of its order imported")
    is_return = _is_return(raw, order_no, quantity, m.returns)
    original = (_cell(raw, m.returns.original_order) if is_return else None) or order_no
    line_no = _cell(raw, c.line_no)
    if line_no is not None and not line_no.isdigit():
        raise RowError(f"{c.line_no}: {line_no!r} is not a line number")
    buyer = tuple((t, _cell(raw, col)) for t, col in sorted(m.buyer.items()))
    head = (_cell(raw, c.store_code), _cell(raw, c.channel), _cell(raw, c.guide_staff_no),
            _cell(raw, c.payment_method), buyer)
    return Row(line=line, raw=raw, order_no=order_no, is_return=is_return, original=original,
               ordered_at=_time(raw, m.time), head=head, sku=str(_cell(raw, c.sku, required=True)),
               quantity=abs(int(quantity)), line_no=int(line_no) if line_no else None,
               unit_price_fen=abs(_money(raw, c.unit_price, m.amounts)) if c.unit_price else None,
               net_fen=abs(_money(raw, c.line_amount, m.amounts)) if c.line_amount else None,
               discount_fen=sum(abs(_money(raw, d, m.amounts)) for d in c.line_discounts))


# ---- building orders and refunds ------------------------------------------------------------------


def _order(rows: list[Row], m: Mapping) -> OrderIn:
    first = rows[0]
    for row in rows[1:]:
        if row.head != first.head or row.ordered_at != first.ordered_at:
            raise RowError(f"the rows of order {first.order_no} disagree on its time, store, channel, guide, "
                           "payment or buyer")
    store, channel, guide, payment, buyer = first.head
    ids = {t: v for t, v in buyer if v} | (m.buyer_constants if any(v for _, v in buyer) else {})
    lines = [LineIn(line_no=r.line_no, sku=r.sku, quantity=r.quantity, unit_price_fen=r.unit_price_fen,
                    list_fen=r.net_fen + r.discount_fen if r.net_fen is not None else None,
                    discount_fen=r.discount_fen) for r in rows]
    return OrderIn(order_no=first.order_no, ordered_at=first.ordered_at, store_code=store,
                   channel=channel or m.channel, guide_staff_no=guide, payment_method=payment,
                   currency=m.currency, buyer=ids, lines=lines)


def refund_no(rows: list[Row]) -> str:
    """A return invoice's own number; a negative row inside the sale itself gets ``<order>-R<line>``."""
    first = rows[0]
    if first.order_no != first.original:
        return first.order_no
    return f"{first.order_no}-R{first.line_no or first.line}"


def _refund(rows: list[Row], order: Order) -> RefundIn:
    """Return rows matched to the order's lines by SKU (tills number return lines on their own)."""
    left = {line.line_no: line.quantity - line.refunded_quantity for line in order.lines}
    wanted: list[RefundLineIn] = []
    for row in rows:
        candidates = [line for line in order.lines if line.sku == row.sku]
        if not candidates:
            raise RowError(f"order {order.order_no} has no line with SKU {row.sku}")
        line = next((x for x in candidates if left[x.line_no] >= row.quantity), candidates[0])
        left[line.line_no] -= row.quantity
        wanted.append(RefundLineIn(line_no=line.line_no, quantity=row.quantity, amount_fen=row.net_fen))
    merged: dict[int, RefundLineIn] = {}
    for item in wanted:  # two return rows of one line become one refund line
        if item.line_no in merged:
            prev = merged[item.line_no]
            amount = None if prev.amount_fen is None or item.amount_fen is None else prev.amount_fen + item.amount_fen
            merged[item.line_no] = RefundLineIn(line_no=item.line_no, quantity=prev.quantity + item.quantity,
                                                amount_fen=amount)
        else:
            merged[item.line_no] = item
    return RefundIn(refund_no=refund_no(rows), refunded_at=rows[0].ordered_at, reason="return",
                    lines=list(merged.values()))


# ---- the run --------------------------------------------------------------------------------------


@dataclass
class ImportReport:
    rows_read: int = 0
    orders_created: int = 0
    orders_unchanged: int = 0
    refunds_created: int = 0
    refunds_unchanged: int = 0
    duplicate_rows: int = 0
    rejected_rows: int = 0
    rejected_orders: int = 0
    stores_created: int = 0
    products_loaded: int = 0
    skipped_rows: int = 0
    warned_rows: int = 0
    seconds: float = 0.0
    rejects_file: str | None = None
    rejects: list[tuple[int, str, dict[str, Any]]] = field(default_factory=list)
    warnings: list[tuple[int, str, str, dict[str, Any]]] = field(default_factory=list)  # line, outcome, why, row

    def skip(self, line: int, reason: str, raw: dict[str, Any]) -> None:
        self.skipped_rows += 1
        self.warnings.append((line, "skipped", reason, raw))

    def warn(self, rows: list[Row], warnings: list[dict[str, str]]) -> None:
        """An order stored although part of it could not be used (a buyer phone): said on its first row."""
        if warnings:
            self.warned_rows += 1
            reason = "; ".join(f"{w['field']}: {w['message']}" for w in warnings)
            self.warnings.append((rows[0].line, "imported", reason, rows[0].raw))

    def reject(self, rows: list[Row], reason: str, culprit: int | None = None) -> None:
        """Reject an order's rows; when one row is at fault, the others say so and point at it."""
        self.rejected_orders += 1
        for i, row in enumerate(rows):
            if culprit is None or i == culprit:
                self.rejects.append((row.line, reason, row.raw))
            else:
                self.rejects.append((row.line, f"another row of order {rows[culprit].order_no} is rejected "
                                               f"(line {rows[culprit].line})", row.raw))
            self.rejected_rows += 1

    def summary(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if k not in ("rejects", "warnings")}


def _reason(exc: Exception) -> str:
    if isinstance(exc, ValidationError):
        first = exc.errors()[0]
        return f"{'.'.join(str(p) for p in first['loc'])}: {first['msg']}"
    if isinstance(exc, LianjieError):
        return f"{exc.code}: {exc.message}"
    return str(exc)


def read_file(path: Path, m: Mapping) -> Iterator[tuple[int, dict[str, Any]]]:
    return csvfiles.read_rows(path, encoding=m.encoding, delimiter=m.delimiter)


def default_rejects_path(path: Path, now: dt.datetime | None = None) -> Path:
    """``<var dir>/rejects/<input name>-<UTC time>.rejects.csv``: never beside the input, whose folder
    may be read-only (a mounted export share) or shared with the till that wrote it."""
    stamp = (now or dt.datetime.now(dt.UTC)).strftime("%Y%m%dT%H%M%SZ")
    name = path.name
    for suffix in (".gz", ".csv", ".txt"):
        name = name.removesuffix(suffix)
    folder = get_settings().resolved_var_dir / "rejects"
    target = folder / f"{name}-{stamp}.rejects.csv"
    n = 1
    while target.exists():  # two imports of one file in the same second
        target, n = folder / f"{name}-{stamp}-{n}.rejects.csv", n + 1
    return target


def _group(rows: Iterable[tuple[int, dict[str, Any]]], m: Mapping, report: ImportReport
           ) -> tuple[dict[str, list[Row]], dict[tuple[str, str], list[Row]]]:
    """Sales by order number and returns by (original, refund number), in order of first appearance."""
    seen: set[tuple[Any, ...]] = set()
    sales: dict[str, list[Row]] = {}
    returns: dict[tuple[str, str], list[Row]] = {}
    bad: dict[str, list[tuple[int, dict[str, Any], str]]] = {}
    for line, raw in rows:
        report.rows_read += 1
        key = tuple(raw.items())
        if key in seen:
            report.duplicate_rows += 1
            continue
        seen.add(key)
        try:
            row = parse_row(line, raw, m)
        except SkippedRow as exc:
            report.skip(line, str(exc), raw)
            continue
        except RowError as exc:
            bad.setdefault(str(raw.get(m.columns.order_no)), []).append((line, raw, str(exc)))
            continue
        if row.is_return:
            returns.setdefault((row.original, refund_no([row])), []).append(row)
        else:
            sales.setdefault(row.order_no, []).append(row)
    for order_no, problems in bad.items():  # an order with any bad row is rejected whole
        report.rejected_orders += 1
        for line, raw, reason in problems:
            report.rejects.append((line, reason, raw))
            report.rejected_rows += 1
        dropped = sales.pop(order_no, []) + [r for key in [k for k in returns if k[1] == order_no]
                                              for r in returns.pop(key)]
        for row in dropped:
            report.rejects.append((row.line, f"another row of order {order_no} is rejected", row.raw))
            report.rejected_rows += 1
    return sales, returns


def _load_products(factory: sessionmaker[Session], tenant_id: int, path: Path, m: Mapping, skus: set[str],
                   report: ImportReport) -> None:
    spec = m.products
    if spec is None:
        return
    product_file = path.parent / spec.file
    if not product_file.exists():
        raise ValidationFailed(f"the mapping names a product file {product_file} that does not exist",
                               field="mapping.products.file")
    with transaction(factory) as session:  # a re-run leaves known products alone (and is quick)
        known = {sku for part in _parts(sorted(skus)) for sku in session.scalars(
            select(Product.sku).where(Product.tenant_id == tenant_id, Product.sku.in_(part)))}
    categories: dict[str, dict[str, Any]] = {}
    products = []
    for line, raw in csvfiles.read_rows(product_file):
        sku = raw.get(spec.sku)
        if not sku or (spec.only_sold and sku not in skus) or sku in known:
            continue
        name = next((raw[c] for c in spec.name if raw.get(c)), None) or sku
        category = raw.get(spec.category) if spec.category else None
        code = re.sub(r"[^A-Za-z0-9_.\-/]+", "-", category).strip("-")[:40] if category else None
        if code:
            categories.setdefault(code, {"code": code, "name": category[:100] if category else code})
        brand = raw.get(spec.brand) if spec.brand else None
        products.append((line, {"sku": sku, "name": name[:200], "brand": brand[:100] if brand else None,
                                "category_code": code or None, "price_fen": spec.price_fen}))
    with transaction(factory, write=True) as session:
        summary = catalogue.import_catalogue(session, tenant_id, enumerate(categories.values(), 1), products)
    report.products_loaded = len(products) - sum(1 for r in summary.rejected if r["kind"] == "product")


def _parts(values: list[str]) -> Iterator[list[str]]:
    for start in range(0, len(values), CHUNK):
        yield values[start:start + CHUNK]


def _create_stores(factory: sessionmaker[Session], tenant_id: int, sales: dict[str, list[Row]], m: Mapping,
                   report: ImportReport) -> None:
    codes = {rows[0].head[0] for rows in sales.values() if rows[0].head[0]}
    with transaction(factory, write=True) as session:
        known = set(session.scalars(select(Store.code).where(Store.tenant_id == tenant_id)))
        for code in sorted(codes - known):
            d = m.stores
            try:
                data = StoreCreate(code=code, name=d.name.format(code=code), city=d.city, province=d.province,
                                   type=d.type)
            except ValidationError:
                continue  # an unusable code: its orders are rejected with "no store"
            tenants.add_store(session, tenant_id, data)
            report.stores_created += 1


G = TypeVar("G")
R = TypeVar("R")


def _in_turns(factory: sessionmaker[Session], groups: list[G], store: Callable[[Session, list[G]], R],
              done: Callable[[list[G], R], None]) -> None:
    """Store ``groups`` in transactions of about :data:`CHUNK_SECONDS` each, in pieces of a few orders.

    On SQLite a transaction holds the database's one write lock from BEGIN to COMMIT, so every other
    writer (a till's ``POST /api/v1/orders``) waits for the whole of it: chunks of 500 orders held it
    4-6 s each on a busy machine, and those requests' p99 was 5.5 s while an import ran. Sizing a
    chunk from the time the last one took was not enough: on a machine shared with other work the
    same number of orders took from 0.05 to 0.65 s. So a transaction stores pieces
    (``store(session, piece)``, each piece sized to take about :data:`PIECE_SECONDS`) until
    :data:`CHUNK_SECONDS` have passed or :data:`CHUNK` groups are stored, then commits; the lock is
    held at most about the two together. Each transaction queues for its turn among the machine's
    writers (``db.writer_turn``), as the server's requests do, so a waiting request gets the lock when
    a chunk commits, and the import pauses :data:`CHUNK_PAUSE` before its next turn. ``done(piece,
    result)`` is told each piece's result once its transaction has committed.

    On PostgreSQL writers lock only the rows they write, so nobody waits for an import's transaction:
    each stores :data:`CHUNK` groups in one piece, without a time limit or a pause (cutting them as
    on SQLite made the Complete Journey sample's import five times slower there).
    """
    paced = one_writer_at_a_time(factory)
    budget = CHUNK_SECONDS if paced else math.inf
    size, start = (FIRST_PIECE if paced else CHUNK), 0
    while start < len(groups):
        stored: list[tuple[list[G], R]] = []
        with writer_turn(factory):
            began = time.perf_counter()
            with transaction(factory, write=True) as session:
                end = start
                while end < len(groups) and end - start < CHUNK and time.perf_counter() - began < budget:
                    piece = groups[end:min(end + size, start + CHUNK)]
                    piece_began = time.perf_counter()
                    stored.append((piece, store(session, piece)))
                    end += len(piece)
                    took = max(time.perf_counter() - piece_began, 1e-3)
                    size = max(1, min(CHUNK, int(min(max(size * PIECE_SECONDS / took, size / 2), size * 2))))
        for piece, result in stored:
            done(piece, result)
        start = end
        if paced and start < len(groups):
            time.sleep(CHUNK_PAUSE)


def _import_sales(factory: sessionmaker[Session], tenant_id: int, sales: dict[str, list[Row]], m: Mapping,
                  report: ImportReport, advance: Callable[[int], None]) -> None:
    Built = list[tuple[list[Row], OrderIn]]

    def store(session: Session, piece: list[list[Row]]) -> tuple[Built, list[Outcome]]:
        built: Built = []
        for rows in piece:
            try:
                built.append((rows, _order(rows, m)))
            except (RowError, ValidationError) as exc:
                report.reject(rows, _reason(exc))
        return built, record_orders(session, get_cipher(), tenant_id, [o for _, o in built], source=m.source)

    def done(piece: list[list[Row]], result: tuple[Built, list[Outcome]]) -> None:
        for (rows, _), outcome in zip(*result, strict=True):
            if outcome.error is not None:
                _reject(report, rows, outcome.error)
                continue
            report.warn(rows, outcome.warnings)
            if outcome.status == "created":
                report.orders_created += 1
            else:
                report.orders_unchanged += 1
        advance(sum(len(rows) for rows in piece))

    _in_turns(factory, list(sales.values()), store, done)


def _reject(report: ImportReport, rows: list[Row], error: LianjieError) -> None:
    """An error about ``lines[i]`` is the fault of that row of the file (one row per line)."""
    found = re.match(r"lines\[(\d+)\]", error.field or "")
    culprit = int(found.group(1)) if found and int(found.group(1)) < len(rows) else None
    report.reject(rows, _reason(error), culprit)


def _import_returns(factory: sessionmaker[Session], tenant_id: int, returns: dict[tuple[str, str], list[Row]],
                    m: Mapping, report: ImportReport, advance: Callable[[int], None]) -> None:
    Returns = list[tuple[tuple[str, str], list[Row]]]
    Built = list[tuple[list[Row], str, RefundIn]]

    def store(session: Session, piece: Returns) -> tuple[Built, list[RefundOutcome]]:
        originals = {o.order_no: o for o in session.scalars(
            select(Order).where(Order.tenant_id == tenant_id,
                                Order.order_no.in_({original for (original, _), _ in piece})))}
        built: Built = []
        for (original, _), rows in piece:
            try:
                order = originals.get(original)
                if order is None:
                    raise RowError(f"order_not_found: no order {original!r} to return against")
                built.append((rows, original, _refund(rows, order)))
            except (RowError, ValidationError) as exc:
                report.reject(rows, _reason(exc))
        return built, record_refunds(session, get_cipher(), tenant_id, [(o, r) for _, o, r in built],
                                     source=m.source)

    def done(piece: Returns, result: tuple[Built, list[RefundOutcome]]) -> None:
        for (rows, _, _), outcome in zip(*result, strict=True):
            if outcome.error is not None:
                _reject(report, rows, outcome.error)
            elif outcome.status == "created":
                report.refunds_created += 1
            else:
                report.refunds_unchanged += 1
        advance(sum(len(rows) for _, rows in piece))

    _in_turns(factory, list(returns.items()), store, done)


def import_orders(factory: sessionmaker[Session], tenant_id: int, path: Path, mapping: Mapping, *,
                  rejects: Path | None = None, on_total: Callable[[int], None] | None = None,
                  advance: Callable[[int], None] | None = None) -> ImportReport:
    """Import an order file; each chunk of orders commits on its own (the caller owns no transaction).

    ``on_total`` is told the number of rows to store once the file is read, ``advance`` the rows done.
    """
    started = time.perf_counter()
    report = ImportReport()
    decoded = csvfiles.decode_file(path.read_bytes(), mapping.encoding, str(path))
    sales, returns = _group(csvfiles.rows_of(decoded.text, mapping.delimiter), mapping, report)
    skus = {row.sku for rows in [*sales.values(), *returns.values()] for row in rows}
    _load_products(factory, tenant_id, path, mapping, skus, report)
    if mapping.create_stores:
        _create_stores(factory, tenant_id, sales, mapping, report)
    if on_total:
        on_total(sum(len(r) for r in sales.values()) + sum(len(r) for r in returns.values()))
    step = advance or (lambda _: None)
    _import_sales(factory, tenant_id, sales, mapping, report, step)
    _import_returns(factory, tenant_id, returns, mapping, report, step)
    if report.rejects or report.warnings:
        target = rejects or default_rejects_path(path)
        write_rejects(target, [(line, "rejected", reason, raw) for line, reason, raw in report.rejects]
                      + report.warnings, encoding=decoded.encoding)
        report.rejects_file = str(target)
    report.seconds = round(time.perf_counter() - started, 2)
    return report


def write_rejects(path: Path, rows: list[tuple[int, str, str, dict[str, Any]]], *, encoding: str = "utf-8") -> None:
    """``line,outcome,reason`` and the row as it was, sorted by line, in the input's encoding, so it can
    be fixed and imported again. ``outcome`` is ``rejected`` (its order was not stored), ``skipped``
    (the row was left out, its order stored) or ``imported`` (stored, with the warning in ``reason``)."""
    columns: list[str] = []
    for *_, raw in rows:
        columns.extend(c for c in raw if c not in columns)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding=encoding, newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["line", "outcome", "reason", *columns])
        for line, outcome, reason, raw in sorted(rows, key=lambda r: r[0]):
            writer.writerow([line, outcome, reason, *[raw.get(c) or "" for c in columns]])
