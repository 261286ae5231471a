"""Build a DuckDB warehouse straight from a generated demo world's files, for the warehouse benchmarks.

Loading the large world (1M customers, ~10M orders, ~22M events) through the API and the operational
store would take hours; the segment and KPI benchmarks measure the warehouse, so this fills the
warehouse's tables (the layouts in ``lianjie.warehouse.tables``) with DuckDB reading the files
directly. It resolves identities the simple way the truth file allows, not through OneID:

* each customer record in ``truth/<slug>-customers.csv`` is a profile and a customer;
* each of its anonymous ids (web and mini-program devices) is a profile merged into it, so the
  identity map has merges as a real one does;
* an order belongs to the record with its member number, else its phone, else its unionid, else its
  openid; the cashier's placeholder phone and orders with no identifier are guests;
* an event belongs to the profile of its ``userId`` (member number) or ``anonymousId``, else to the
  record of the unionid among its ``context.externalIds`` (WeCom contacts); other events are dropped.

What the files do not hold is derived deterministically from what they do: members (a member number)
earn a point per yuan on each order and hold a tier by their year's spend; one yunjin member in
twenty holds the paid plan ``PLUS``; one customer in fifty carries the tag ``vip-event``.

``python bench/world_warehouse.py WORLD_DIR OUT.duckdb`` builds the file (skipped when OUT exists and
is newer than the world, unless ``--force``); benchmarks call :func:`ensure`.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from pathlib import Path

import duckdb
import ibis

from lianjie.warehouse.tables import LAYOUTS, TABLES

PLACEHOLDER_PHONES = ("13800138000", "00000000000")
# Where the warehouse benchmarks look by default (var/ is not versioned).
LARGE_WORLD = Path(__file__).resolve().parents[1] / "var" / "bench" / "large-seed42"
GENERATE = "python bench/demo_generate.py --scale large --out var/bench/large-seed42"
TIERS = "CASE WHEN spend >= 2000000 THEN 'platinum' WHEN spend >= 500000 THEN 'gold' ELSE 'silver' END"


def _create_empty(path: Path) -> None:
    con = ibis.duckdb.connect(str(path))
    for name, layout in LAYOUTS.items():
        con.create_table(name, schema=layout, overwrite=True)
    con.disconnect()


def _paths(world: Path, files: list[str]) -> str:
    return "[" + ", ".join(f"'{world / f}'" for f in files) + "]"


def _merchants(db: duckdb.DuckDBPyConnection, world: Path, meta: dict) -> None:  # type: ignore[type-arg]
    """Stores, staff, categories and the customer records with their profile ids, per merchant."""
    db.execute("CREATE TEMP TABLE merchant (tenant_id BIGINT, slug VARCHAR)")
    db.execute("CREATE TEMP TABLE record (tenant_id BIGINT, person_id VARCHAR, member_no VARCHAR, phone VARCHAR, "
               "unionid VARCHAR, openid VARCHAR, anonymous_ids VARCHAR, gender VARCHAR, birthday VARCHAR, "
               "city VARCHAR, acquired_on DATE)")
    for tenant_id, merchant in enumerate(meta["merchants"], start=1):
        slug = merchant["slug"]
        db.execute("INSERT INTO merchant VALUES (?, ?)", [tenant_id, slug])
        for store_id, store in enumerate(merchant["stores"], start=tenant_id * 10_000):
            db.execute("INSERT INTO stores VALUES (?, ?, ?, ?, ?, ?, ?, 'open')",
                       [store_id, tenant_id, store["code"], store["name"], store["city"], store["province"],
                        store["type"]])
        for staff_id, staff in enumerate(merchant["staff"], start=tenant_id * 100_000):
            db.execute("INSERT INTO staff SELECT ?, ?, ?, ?, ?, (SELECT id FROM stores WHERE tenant_id = ? "
                       "AND code = ?), 'active'", [staff_id, tenant_id, staff["staff_no"], staff["name"],
                                                   staff["role"], tenant_id, staff["store_code"]])
        files = meta["files"]
        db.execute(f"INSERT INTO categories SELECT {tenant_id}, code, name, NULLIF(parent_code, ''), level "
                   f"FROM read_csv('{world / files['catalogue'][slug]['categories']}', all_varchar=true, "
                   "header=true) t(code, parent_code, name, level)")
        db.execute(f"INSERT INTO record SELECT {tenant_id}, person_id, NULLIF(member_no, ''), NULLIF(phone, ''), "
                   "NULLIF(wechat_unionid, ''), NULLIF(wechat_openid, ''), anonymous_ids, gender, birthday, city, "
                   f"acquired_on::DATE FROM read_csv('{world / files['truth'][slug]}', all_varchar=true, "
                   "header=true)")
    db.execute("CREATE TEMP TABLE customer AS SELECT row_number() OVER (ORDER BY tenant_id, person_id) AS "
               "profile_id, * FROM record")
    db.execute("CREATE TEMP TABLE anon AS SELECT (SELECT max(profile_id) FROM customer) + row_number() OVER "
               "(ORDER BY c.profile_id, a.anonymous_id) AS profile_id, c.tenant_id, c.profile_id AS customer_id, "
               "a.anonymous_id FROM customer c, unnest(string_split(c.anonymous_ids, ';')) AS a(anonymous_id) "
               "WHERE a.anonymous_id <> ''")
    db.execute("INSERT INTO identity_map SELECT tenant_id, profile_id, profile_id, false FROM customer "
               "UNION ALL SELECT tenant_id, profile_id, customer_id, false FROM anon")
    db.execute("INSERT INTO profiles SELECT tenant_id, profile_id, acquired_on::TIMESTAMPTZ, "
               "acquired_on::TIMESTAMPTZ, NULL, 0, json_object('city', city, 'gender', gender, 'birthday', "
               "birthday), NULL FROM customer UNION ALL SELECT tenant_id, profile_id, NULL, NULL, NULL, 0, NULL, "
               "NULL FROM anon")


def _orders(db: duckdb.DuckDBPyConnection, world: Path, meta: dict) -> None:  # type: ignore[type-arg]
    """Sales with their refunds folded in (refunded amounts and status), and their lines."""
    db.execute("CREATE TEMP TABLE row_ (tenant_id BIGINT, order_no VARCHAR, order_type VARCHAR, "
               "original_order_no VARCHAR, order_time TIMESTAMPTZ, channel VARCHAR, store_code VARCHAR, "
               "guide_staff_no VARCHAR, member_no VARCHAR, phone VARCHAR, unionid VARCHAR, openid VARCHAR, "
               "line_no BIGINT, sku VARCHAR, quantity BIGINT, unit_price_fen BIGINT, discount_fen BIGINT, "
               "line_amount_fen BIGINT, payment_method VARCHAR)")
    for tenant_id, merchant in enumerate(meta["merchants"], start=1):
        files = _paths(world, meta["files"]["orders"][merchant["slug"]])
        db.execute(f"INSERT INTO row_ SELECT {tenant_id}, order_no, order_type, NULLIF(original_order_no, ''), "
                   "order_time::TIMESTAMPTZ, channel, store_code, NULLIF(guide_staff_no, ''), NULLIF(member_no, ''), "
                   "NULLIF(phone, ''), NULLIF(wechat_unionid, ''), NULLIF(wechat_openid, ''), line_no::BIGINT, sku, "
                   "quantity::BIGINT, unit_price_fen::BIGINT, discount_fen::BIGINT, line_amount_fen::BIGINT, "
                   f"payment_method FROM read_csv({files}, all_varchar=true, header=true)")
    placeholders = ", ".join(f"'{p}'" for p in PLACEHOLDER_PHONES)
    db.execute("CREATE TEMP TABLE sale AS SELECT row_number() OVER (ORDER BY tenant_id, order_no) AS id, * FROM ("
               "SELECT tenant_id, order_no, any_value(order_time) AS ordered_at, any_value(channel) AS channel, "
               "any_value(store_code) AS store_code, any_value(guide_staff_no) AS guide_staff_no, "
               "any_value(member_no) AS member_no, any_value(phone) AS phone, any_value(unionid) AS unionid, "
               "any_value(openid) AS openid, any_value(payment_method) AS payment_method, "
               "sum(quantity * unit_price_fen) AS list_fen, sum(discount_fen) AS discount_fen, "
               "sum(line_amount_fen) AS paid_fen FROM row_ WHERE order_type = 'sale' GROUP BY ALL)")
    db.execute("CREATE TEMP TABLE refund AS SELECT tenant_id, original_order_no AS order_no, line_no, "
               "-sum(quantity) AS quantity, -sum(line_amount_fen) AS amount, max(order_time) AS refunded_at "
               "FROM row_ WHERE order_type = 'refund' GROUP BY ALL")
    for kind in ("member_no", "phone", "unionid", "openid"):  # one profile per identifier value
        db.execute(f"CREATE TEMP TABLE by_{kind} AS SELECT tenant_id, {kind} AS value, min(profile_id) AS "
                   f"profile_id FROM customer WHERE {kind} IS NOT NULL AND {kind} NOT IN ({placeholders}) "
                   "GROUP BY ALL")
    buyer = "coalesce(bm.profile_id, bp.profile_id, bu.profile_id, bo.profile_id)"
    db.execute("INSERT INTO orders SELECT s.id, s.tenant_id, s.order_no, " + buyer + ", st.id, sf.id, s.channel, "
               "s.payment_method, 'CNY', s.list_fen, s.discount_fen, s.paid_fen, coalesce(r.amount, 0), "
               "CASE WHEN r.amount IS NULL THEN 'completed' WHEN r.amount >= s.paid_fen THEN 'refunded' "
               "ELSE 'partially_refunded' END, s.ordered_at, coalesce(r.refunded_at, s.ordered_at) FROM sale s "
               "LEFT JOIN (SELECT tenant_id, order_no, sum(amount) AS amount, max(refunded_at) AS refunded_at "
               "FROM refund GROUP BY ALL) r USING (tenant_id, order_no) "
               "LEFT JOIN stores st ON st.tenant_id = s.tenant_id AND st.code = s.store_code "
               "LEFT JOIN staff sf ON sf.tenant_id = s.tenant_id AND sf.staff_no = s.guide_staff_no "
               "LEFT JOIN by_member_no bm ON bm.tenant_id = s.tenant_id AND bm.value = s.member_no "
               "LEFT JOIN by_phone bp ON bp.tenant_id = s.tenant_id AND bp.value = s.phone "
               "LEFT JOIN by_unionid bu ON bu.tenant_id = s.tenant_id AND bu.value = s.unionid "
               "LEFT JOIN by_openid bo ON bo.tenant_id = s.tenant_id AND bo.value = s.openid "
               "ORDER BY s.id")
    db.execute("INSERT INTO order_lines SELECT row_number() OVER (ORDER BY s.id, l.line_no), l.tenant_id, s.id, "
               "l.line_no, l.sku, p.category_code, l.quantity, l.line_amount_fen, coalesce(r.quantity, 0), "
               "coalesce(r.amount, 0) FROM row_ l JOIN sale s USING (tenant_id, order_no) "
               "LEFT JOIN refund r USING (tenant_id, order_no, line_no) "
               "LEFT JOIN product p ON p.tenant_id = l.tenant_id AND p.sku = l.sku WHERE l.order_type = 'sale'")


def _products(db: duckdb.DuckDBPyConnection, world: Path, meta: dict) -> None:  # type: ignore[type-arg]
    db.execute("CREATE TEMP TABLE product (tenant_id BIGINT, sku VARCHAR, category_code VARCHAR)")
    for tenant_id, merchant in enumerate(meta["merchants"], start=1):
        path = world / meta["files"]["catalogue"][merchant["slug"]]["products"]
        db.execute(f"INSERT INTO product SELECT {tenant_id}, sku, category_code FROM read_csv('{path}', "
                   "all_varchar=true, header=true)")


def _event_columns(source: str) -> str:
    """The NDJSON columns to parse: ``context`` (most of each line) only where an event's person is
    known by nothing else, the WeCom contacts' unionid, and then only its ``externalIds``."""
    columns = ("{type: 'VARCHAR', event: 'VARCHAR', timestamp: 'TIMESTAMPTZ', userId: 'VARCHAR', "
               "anonymousId: 'VARCHAR', properties: 'JSON', traits: 'JSON'")
    if source == "wecom":
        columns += ", context: 'STRUCT(externalIds STRUCT(id VARCHAR, type VARCHAR)[])'"
    return columns + "}"


def _event_unionid(source: str) -> str:
    if source != "wecom":
        return "NULL"
    return "list_filter(e.context.externalIds, x -> x.type = 'wechat_unionid')[1].id"


def _events(db: duckdb.DuckDBPyConnection, world: Path, meta: dict) -> None:  # type: ignore[type-arg]
    db.execute("CREATE TEMP TABLE profile_key AS SELECT tenant_id, member_no AS key, profile_id FROM customer "
               "WHERE member_no IS NOT NULL UNION ALL SELECT tenant_id, anonymous_id, profile_id FROM anon")
    db.execute("CREATE TEMP TABLE unionid_key AS SELECT tenant_id, unionid, profile_id FROM customer "
               "WHERE unionid IS NOT NULL")
    for tenant_id, merchant in enumerate(meta["merchants"], start=1):
        for source, files in meta["files"]["events"][merchant["slug"]].items():
            paths = _paths(world, [f for f in files if (world / f).stat().st_size > 0])
            if paths == "[]":
                continue
            db.execute(f"INSERT INTO events SELECT NULL, {tenant_id}, coalesce(k.profile_id, u.profile_id), e.type, "
                       f"e.event, '{source}', e.timestamp, e.timestamp, coalesce(e.properties, e.traits) "
                       f"FROM read_ndjson({paths}, columns={_event_columns(source)}) e "
                       f"LEFT JOIN profile_key k ON k.tenant_id = {tenant_id} "
                       "AND k.key = coalesce(e.userId, e.anonymousId) "
                       f"LEFT JOIN unionid_key u ON k.profile_id IS NULL AND u.tenant_id = {tenant_id} "
                       f"AND u.unionid = {_event_unionid(source)} "
                       "WHERE coalesce(k.profile_id, u.profile_id) IS NOT NULL")
    db.execute("CREATE TEMP TABLE numbered AS SELECT row_number() OVER (ORDER BY tenant_id, timestamp) AS id, "
               "* EXCLUDE (id) FROM events")
    db.execute("DELETE FROM events")
    db.execute("INSERT INTO events SELECT * FROM numbered")


def _loyalty(db: duckdb.DuckDBPyConnection) -> None:
    """Points, tiers, a paid plan and a tag, derived from the orders as the module docstring says."""
    db.execute("INSERT INTO points_entries SELECT row_number() OVER (ORDER BY o.id), o.tenant_id, o.profile_id, "
               "o.profile_id, o.id, 'earn', (o.paid_fen - o.refunded_fen) // 100, o.ordered_at FROM orders o "
               "JOIN customer c ON c.profile_id = o.profile_id WHERE c.member_no IS NOT NULL "
               "AND o.paid_fen > o.refunded_fen")
    db.execute("INSERT INTO tier_assignments SELECT row_number() OVER (ORDER BY profile_id), tenant_id, profile_id, "
               f"{TIERS}, NULL, 'evaluation', last_at FROM (SELECT c.tenant_id, c.profile_id, "
               "coalesce(sum(o.paid_fen - o.refunded_fen), 0) AS spend, coalesce(max(o.ordered_at), "
               "c.acquired_on::TIMESTAMPTZ) AS last_at FROM customer c LEFT JOIN orders o ON "
               "o.profile_id = c.profile_id WHERE c.member_no IS NOT NULL "
               "GROUP BY c.tenant_id, c.profile_id, c.acquired_on)")
    db.execute("INSERT INTO membership_periods SELECT row_number() OVER (ORDER BY c.profile_id), c.tenant_id, "
               "c.profile_id, c.profile_id, 'PLUS', 'join', 'active', d, d + INTERVAL 1 YEAR, "
               "d + INTERVAL 1 YEAR + INTERVAL 30 DAY, 29900, 0, d::TIMESTAMPTZ FROM (SELECT *, "
               "greatest(acquired_on, DATE '2026-01-01') AS d FROM customer) c JOIN merchant m USING (tenant_id) "
               "WHERE m.slug = 'yunjin' AND c.member_no IS NOT NULL AND hash(c.person_id) % 20 = 0")
    db.execute("INSERT INTO profile_tags SELECT tenant_id, profile_id, 'vip-event', acquired_on::TIMESTAMPTZ "
               "FROM customer WHERE hash(person_id, 'tag') % 50 = 0")


def build(world: Path, out: Path) -> dict[str, int]:
    """Write the warehouse file ``out`` from the world in ``world``; returns each table's row count."""
    meta = json.loads((world / "world.json").read_text())
    partial = out.with_suffix(".partial")
    partial.unlink(missing_ok=True)
    _create_empty(partial)
    db = duckdb.connect(str(partial))
    db.execute("SET TimeZone = 'UTC'")
    steps: list[tuple[str, Callable[[], None]]] = [
        ("merchants", lambda: _merchants(db, world, meta)), ("products", lambda: _products(db, world, meta)),
             ("orders", lambda: _orders(db, world, meta)), ("events", lambda: _events(db, world, meta)),
             ("loyalty", lambda: _loyalty(db))]
    for name, step in steps:
        clock = time.perf_counter()
        step()
        print(f"  {name}: {time.perf_counter() - clock:.1f} s", flush=True)
    counts = {t.name: int(db.execute(f"SELECT count(*) FROM {t.name}").fetchone()[0])  # type: ignore[index]
              for t in TABLES}
    db.close()
    partial.rename(out)
    return counts


def ensure(world: Path, out: Path, *, force: bool = False) -> Path:
    """The warehouse file for ``world``, built unless an up-to-date one exists."""
    if not (world / "world.json").exists():
        raise SystemExit(f"no generated world in {world}: make it with `{GENERATE}` (about 4 min, 13 GB), "
                         "or name one with --world")
    if force or not out.exists() or out.stat().st_mtime < (world / "world.json").stat().st_mtime:
        print(f"building {out} from {world} ...", flush=True)
        counts = build(world, out)
        print("  " + ", ".join(f"{name} {n:,}" for name, n in counts.items()), flush=True)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("world", type=Path, help="a generated world's directory (world.json inside)")
    parser.add_argument("out", type=Path, help="the DuckDB file to write")
    parser.add_argument("--force", action="store_true", help="rebuild even if OUT is up to date")
    args = parser.parse_args()
    ensure(args.world, args.out, force=args.force)


if __name__ == "__main__":
    main()
