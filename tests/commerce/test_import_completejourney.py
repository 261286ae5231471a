"""POS import end to end on a public data set (Dunnhumby The Complete Journey) and on crafted bad files.

The expected figures are computed here from the CSV with the csv module, independently of the
importer: rows of quantity 0 are skipped, orders = baskets all of whose other rows are valid, paid =
sum of their sales_value in cents, buyers = their distinct households.
"""

from __future__ import annotations

import csv
import datetime as dt
import gzip
import io
import time
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from lianjie.commerce import importing, orders
from lianjie.commerce.models import Order, OrderLine, Refund
from lianjie.identity.models import Event
from lianjie.tenants import service
from lianjie.tenants.schemas import MerchantCreate
from tests.commerce.test_catalogue import tree
from tests.datasets import DATASETS, require
from tests.factories import make_merchant
from tests.processes import Cli

COMPLETEJOURNEY = DATASETS / "completejourney"
TRANSACTIONS = COMPLETEJOURNEY / "transactions_sample.csv.gz"
POSTGRES_PREFIX = 10_000  # rows of the sample imported on PostgreSQL (the whole file on SQLite)


@pytest.fixture(scope="module")
def dataset() -> Path:
    require(TRANSACTIONS)
    return COMPLETEJOURNEY


def _read(path: Path) -> list[dict[str, str]]:
    with gzip.open(path, "rt", encoding="utf-8", newline="") as handle:
        return list(csv.DictReader(handle))


def _cents(text: str) -> int | None:
    try:
        value = Decimal(text) * 100
    except InvalidOperation:
        return None
    return int(value) if value == value.to_integral_value() else None


def _valid(row: dict[str, str], products: set[str]) -> bool:
    try:
        dt.datetime.strptime(row["transaction_timestamp"], "%Y-%m-%d %H:%M:%S")
        quantity = Decimal(row["quantity"])
    except (ValueError, InvalidOperation):
        return False
    amounts = [_cents(row[c]) for c in ("sales_value", "retail_disc", "coupon_disc", "coupon_match_disc")]
    return (row["product_id"] in products and quantity > 0 and quantity == quantity.to_integral_value()
            and None not in amounts)


def _zero(row: dict[str, str]) -> bool:
    try:
        return Decimal(row["quantity"]) == 0
    except InvalidOperation:
        return False


def expected(rows: list[dict[str, str]], products: set[str]) -> dict[str, int]:
    selling = [r for r in rows if not _zero(r)]
    bad_baskets = {r["basket_id"] for r in selling if not _valid(r, products)}
    good = [r for r in selling if r["basket_id"] not in bad_baskets]
    return {"orders": len({r["basket_id"] for r in good}), "paid": sum(_cents(r["sales_value"]) or 0 for r in good),
            "buyers": len({r["household_id"] for r in good}), "rejected_rows": len(selling) - len(good),
            "skipped_rows": len(rows) - len(selling), "lines": len(good)}


def counts(db: Session, tenant_id: int) -> dict[str, int]:
    def n(model: Any) -> int:
        return db.scalar(select(func.count()).select_from(model).where(model.tenant_id == tenant_id)) or 0

    return {"orders": n(Order), "lines": n(OrderLine), "refunds": n(Refund), "events": n(Event),
            "paid": db.scalar(select(func.sum(Order.paid_fen)).where(Order.tenant_id == tenant_id)) or 0,
            "buyers": db.scalar(select(func.count(func.distinct(Order.profile_id)))
                                .where(Order.tenant_id == tenant_id)) or 0}


def test_the_complete_journey_sample_imports_exactly_and_reimports_as_a_no_op(
        dataset: Path, db: Session, session_factory: sessionmaker[Session], tmp_path: Path) -> None:
    rows = _read(TRANSACTIONS)
    source = TRANSACTIONS
    if db.get_bind().dialect.name == "postgresql":
        rows = rows[:POSTGRES_PREFIX]
        source = tmp_path / "transactions_prefix.csv.gz"
        with gzip.open(source, "wt", encoding="utf-8", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)
        (tmp_path / "products.csv.gz").symlink_to((COMPLETEJOURNEY / "products.csv.gz").resolve())
    products = {r["product_id"] for r in _read(COMPLETEJOURNEY / "products.csv.gz")}
    want = expected(rows, products)
    merchant, _ = service.create_merchant(db, MerchantCreate(slug="cj", name="Complete Journey", currency="USD",
                                                             timezone="America/Chicago"))  # a US chain
    db.commit()
    mapping = importing.load_mapping("completejourney")
    started = time.perf_counter()
    first = importing.import_orders(session_factory, merchant.id, source, mapping, rejects=tmp_path / "rejects.csv")
    took = time.perf_counter() - started
    print(f"\n{db.get_bind().dialect.name}: {len(rows):,} rows in {took:.1f} s, {len(rows) / took:,.0f} rows/s")
    assert (first.rows_read, first.orders_created, first.rejected_rows, first.skipped_rows) == (
        len(rows), want["orders"], want["rejected_rows"], want["skipped_rows"])
    stored = counts(db, merchant.id)
    assert {k: stored[k] for k in ("orders", "paid", "buyers", "lines")} == {
        k: want[k] for k in ("orders", "paid", "buyers", "lines")}
    assert stored["events"] == want["orders"]  # one Order Completed per order, in the buyer's stream
    rejects = list(csv.DictReader((tmp_path / "rejects.csv").open(encoding="utf-8")))
    assert sum(r["outcome"] == "rejected" for r in rejects) == want["rejected_rows"]
    assert sum(r["outcome"] == "skipped" for r in rejects) == want["skipped_rows"]
    assert all(r["line"].isdigit() and r["reason"] for r in rejects)
    again = importing.import_orders(session_factory, merchant.id, source, mapping, rejects=tmp_path / "again.csv")
    assert (again.orders_created, again.orders_unchanged, again.refunds_created) == (0, want["orders"], 0)
    assert counts(db, merchant.id) == stored


CUSTOM = """
encoding = "auto"
delimiter = ";"
amounts = "yuan"
currency = "CNY"
create_stores = true
[time]
column = "time"
format = "%Y/%m/%d %H:%M"
timezone = "Asia/Shanghai"
[columns]
order_no = "invoice"
store_code = "store"
sku = "sku"
quantity = "qty"
unit_price = "price"
payment_method = "pay"
[buyer]
phone = "mobile"
[returns]
negative_quantity = true
"""

HEADER = "invoice;time;store;sku;qty;price;pay;mobile\n"
GOOD = [
    "A1;2026/03/01 10:00;SH001;SKU-1;2;199.90;微信支付;13912345678",
    "A1;2026/03/01 10:00;SH001;SKU-2;1;9.90;微信支付;13912345678",
    "A2;2026/03/01 11:00;SH001;SKU-2;3;9.90;现金;",
    "A1;2026/03/05 12:00;SH001;SKU-1;-1;199.90;微信支付;13912345678",
]
BAD = [
    "B1;2026/13/01 10:00;SH001;SKU-1;1;1.00;现金;",
    "B2;2026/03/01 10:00;SH001;SKU-1;1;1.005;现金;",
    "B3;2026/03/01 10:00;SH001;SKU-1;1;1.00;现金;",
    "B3;2026/03/01 10:00;SH001;NOPE;1;1.00;现金;",
]


@pytest.fixture
def shop(db: Session, tmp_path: Path) -> tuple[int, importing.Mapping]:
    merchant = make_merchant(db, "huamei")
    tree(db, merchant.id)
    db.commit()
    path = tmp_path / "custom.toml"
    path.write_text(CUSTOM, encoding="utf-8")
    return merchant.id, importing.load_mapping(path)


@pytest.mark.parametrize("encoding", ["utf-8", "gbk"])
def test_bad_rows_are_listed_with_line_and_reason_and_good_ones_kept(
        db: Session, session_factory: sessionmaker[Session], shop: tuple[int, importing.Mapping], tmp_path: Path,
        encoding: str) -> None:
    tenant, mapping = shop
    body = HEADER + "\n".join([*GOOD[:3], GOOD[2], *BAD, GOOD[3]]) + "\n"
    path = tmp_path / "till.csv"
    path.write_bytes(body.encode(encoding))
    report = importing.import_orders(session_factory, tenant, path, mapping)
    assert (report.rows_read, report.duplicate_rows) == (9, 1)
    assert (report.orders_created, report.refunds_created, report.rejected_orders, report.rejected_rows) == (
        2, 1, 3, 4)
    rejects = {r["line"]: r["reason"] for r in csv.DictReader(io.StringIO(  # written as the input was
        Path(report.rejects_file or "").read_text(encoding="gb18030" if encoding == "gbk" else "utf-8")))}
    assert set(rejects) == {"6", "7", "8", "9"}
    assert "is not a time" in rejects["6"]
    assert "whole number of fen" in rejects["7"]
    assert "another row of order B3" in rejects["8"]
    assert rejects["9"].startswith("unknown_sku: lines[1]: no product")
    a1 = orders.order_out(db, orders.get_order(db, tenant, "A1"))
    assert (a1.paid_fen, a1.payment_method, a1.status) == (2 * 19990 + 990, "微信支付", "partially_refunded")
    assert a1.ordered_at == dt.datetime(2026, 3, 1, 2, 0, tzinfo=dt.UTC)
    assert [(r.refund_no, r.amount_fen) for r in a1.refunds] == [("A1-R10", 19990)]
    assert a1.profile_id is not None
    assert orders.get_order(db, tenant, "A2").profile_id is None  # a guest: no customer id on the row
    again = importing.import_orders(session_factory, tenant, path, mapping)
    assert (again.orders_created, again.orders_unchanged, again.refunds_created, again.refunds_unchanged) == (
        0, 2, 0, 1)


def test_the_cli_imports_prints_a_summary_and_reimports_unchanged(database_url: str | None, tmp_path: Path) -> None:
    """A GBK export in a read-only folder: the rejects go under the var dir, in GBK, and the CLI says where."""
    cli = Cli(tmp_path, database_url)
    cli.run("db", "upgrade")
    cli.run("tenant", "create", "--slug", "huamei", "--name", "华美生活")
    (tmp_path / "products.csv").write_text("sku,name,price_fen\nSKU-1,连衣裙,19990\nSKU-2,袜子,990\n",
                                           encoding="utf-8")
    cli.run("catalogue", "import", "-t", "huamei", "--products", "products.csv")
    (tmp_path / "custom.toml").write_text(CUSTOM, encoding="utf-8")
    export = tmp_path / "export"
    export.mkdir()
    with gzip.open(export / "till.csv.gz", "wt", encoding="gbk") as handle:
        handle.write(HEADER + "\n".join([*GOOD, BAD[0]]) + "\n")
    export.chmod(0o555)  # a mounted share the import may only read
    try:
        args = ("orders", "import", "export/till.csv.gz", "-t", "huamei", "--mapping", "custom.toml")
        human = cli.run(*args)
        assert "orders created" in human.stdout
        assert sorted(p.name for p in export.iterdir()) == ["till.csv.gz"]  # nothing written beside the input
        written = sorted((tmp_path / "var" / "rejects").glob("till-*.rejects.csv"))
        assert len(written) == 1
        assert written[0].name in human.stdout.replace("\n", "")
        raw = written[0].read_bytes()
        with pytest.raises(UnicodeDecodeError):
            raw.decode("utf-8")
        rejects = list(csv.DictReader(io.StringIO(raw.decode("gbk"))))
        assert [(r["line"], r["outcome"], r["pay"]) for r in rejects] == [("6", "rejected", "现金")]
        assert "is not a time" in rejects[0]["reason"]
        summary = cli.json(*args, "--rejects", "again.csv")
        assert (summary["orders_created"], summary["orders_unchanged"], summary["refunds_unchanged"],
                summary["rejected_rows"], summary["rejects_file"]) == (0, 2, 1, 1, "again.csv")
        assert "is not a time" in (tmp_path / "again.csv").read_text(encoding="gbk")
        assert cli.run("orders", "import", "export/till.csv.gz", "-t", "huamei", "--mapping", "nope",
                       ok=False).returncode == 1
    finally:
        export.chmod(0o755)
