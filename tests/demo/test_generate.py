"""The demo world generator: deterministic, internally consistent, and realistic where it matters."""

from __future__ import annotations

import csv
import datetime
import json
import re
import statistics
from collections import Counter, defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from lianjie.demo.generate import SCALES, GenerationReport, generate_world

SEED = 7
PLACEHOLDER = "13800138000"
MOBILE = re.compile(r"^1[3-9]\d{9}$")
UTC_TIMESTAMP = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?Z$")


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> GenerationReport:
    """One tiny world shared by the module's tests (read-only)."""
    return generate_world(tmp_path_factory.mktemp("tiny") / "world", scale="tiny", seed=SEED, workers=1)


@pytest.fixture(scope="module")
def world(report: GenerationReport) -> dict[str, Any]:
    result: dict[str, Any] = json.loads((report.out_dir / "world.json").read_text(encoding="utf-8"))
    return result


@pytest.fixture(scope="module")
def orders(report: GenerationReport, world: dict[str, Any]) -> dict[str, list[dict[str, str]]]:
    return {slug: [row for path in paths for row in _csv(report.out_dir / path)]
            for slug, paths in world["files"]["orders"].items()}


@pytest.fixture(scope="module")
def truth(report: GenerationReport, world: dict[str, Any]) -> dict[str, list[dict[str, str]]]:
    return {slug: _csv(report.out_dir / path) for slug, path in world["files"]["truth"].items()}


@pytest.fixture(scope="module")
def events(report: GenerationReport, world: dict[str, Any]) -> dict[str, dict[str, list[dict[str, Any]]]]:
    return {slug: {source: [msg for path in paths for msg in _ndjson(report.out_dir / path)]
                   for source, paths in sources.items()}
            for slug, sources in world["files"]["events"].items()}


def _csv(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8", newline="") as handle:
        return list(csv.DictReader(handle))


def _ndjson(path: Path) -> Iterator[dict[str, Any]]:
    with path.open(encoding="utf-8") as handle:
        for line in handle:
            yield json.loads(line)


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def _listed(files: Any) -> list[str]:
    if isinstance(files, str):
        return [files]
    values = files.values() if isinstance(files, dict) else files
    return [path for value in values for path in _listed(value)]


def _sales(rows: list[dict[str, str]]) -> dict[str, list[dict[str, str]]]:
    out: dict[str, list[dict[str, str]]] = defaultdict(list)
    for row in rows:
        if row["order_type"] == "sale":
            out[row["order_no"]].append(row)
    return out


# ---------------------------------------------------------------------------- determinism
def test_unknown_scale_is_refused_with_the_valid_ones(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="tiny.*small.*medium.*large"):
        generate_world(tmp_path, scale="huge")


def test_same_seed_is_byte_identical_whatever_the_worker_count(report: GenerationReport,
                                                               tmp_path: Path) -> None:
    assert SCALES["tiny"].parts > 1, "tiny needs several parts for this test to mean something"
    again = generate_world(tmp_path / "again", scale="tiny", seed=SEED, workers=2, show_progress=True)
    assert _files(again.out_dir) == _files(report.out_dir)
    assert (again.orders, again.events) == (report.orders, report.events)


def test_another_seed_gives_another_world(report: GenerationReport, tmp_path: Path) -> None:
    other = generate_world(tmp_path / "other", scale="tiny", seed=SEED + 1)
    mine, theirs = _files(report.out_dir), _files(other.out_dir)
    assert mine.keys() == theirs.keys()
    assert all(mine[name] != theirs[name] for name in mine if name.startswith(("orders/", "truth/")))


def test_a_previous_world_is_replaced_but_foreign_files_are_refused(tmp_path: Path) -> None:
    out = tmp_path / "w"
    generate_world(out, scale="tiny", seed=1)
    first = _files(out)
    generate_world(out, scale="tiny", seed=1)
    assert _files(out) == first
    (tmp_path / "foreign").mkdir()
    (tmp_path / "foreign" / "notes.txt").write_text("mine")
    with pytest.raises(FileExistsError):
        generate_world(tmp_path / "foreign", scale="tiny")


# ---------------------------------------------------------------------------- world.json
def test_world_json_lists_exactly_the_files_written(report: GenerationReport, world: dict[str, Any]) -> None:
    written = set(_files(report.out_dir)) - {"world.json"}
    assert set(_listed(world["files"])) == written
    assert (world["format"], world["seed"], world["scale"]) == (1, SEED, "tiny")
    start, end = datetime.date.fromisoformat(world["start"]), datetime.date.fromisoformat(world["end"])
    assert (end, (end - start).days) == (datetime.date(2026, 10, 31), 364)


def test_merchants_stores_and_staff_follow_the_contract(world: dict[str, Any]) -> None:
    slugs = [m["slug"] for m in world["merchants"]]
    assert len(slugs) == 3 == len(set(slugs))
    for merchant in world["merchants"]:
        assert re.fullmatch(r"[a-z0-9-]+", merchant["slug"])
        assert (merchant["currency"], merchant["timezone"]) == ("CNY", "Asia/Shanghai")
        assert merchant["sources"] == ["web", "miniprogram", "pos", "wecom"]
        stores = merchant["stores"]
        assert len({s["code"] for s in stores}) == len(stores)
        assert all(re.fullmatch(r"[A-Z0-9-]+", s["code"]) for s in stores)
        assert {s["type"] for s in stores} <= {"flagship", "mall", "community", "online"}
        assert [s["code"] for s in stores if s["type"] == "online"] == ["ONLINE"]
        staff = merchant["staff"]
        assert len({s["staff_no"] for s in staff}) == len(staff)
        assert Counter(s["role"] for s in staff if s["store_code"] is None) == {"owner": 1, "admin": 1}
        for store in stores:
            roles = Counter(s["role"] for s in staff if s["store_code"] == store["code"])
            expected = {} if store["type"] == "online" else {"store_manager": 1}
            assert {k: v for k, v in roles.items() if k != "guide"} == expected
            assert store["type"] == "online" or 2 <= roles["guide"] <= 6
    coalition = world["coalitions"][0]
    assert len(coalition["members"]) == 2
    assert set(coalition["members"]) <= set(slugs)


def test_catalogue_is_a_tree_with_products_on_leaves(report: GenerationReport, world: dict[str, Any]) -> None:
    for paths in world["files"]["catalogue"].values():
        categories = {c["code"]: c for c in _csv(report.out_dir / paths["categories"])}
        for category in categories.values():
            parent = categories.get(category["parent_code"])
            assert (parent is None) == (category["level"] == "1")
            assert parent is None or int(parent["level"]) + 1 == int(category["level"])
        parents = {c["parent_code"] for c in categories.values()}
        products = _csv(report.out_dir / paths["products"])
        assert len({p["sku"] for p in products}) == len(products) >= 100
        assert all(p["category_code"] in categories and p["category_code"] not in parents for p in products)
        assert all(int(p["price_fen"]) > 0 and p["status"] == "active" for p in products)


# ---------------------------------------------------------------------------- orders
def test_order_lines_reference_the_catalogue_stores_and_guides(
        report: GenerationReport, world: dict[str, Any], orders: dict[str, list[dict[str, str]]]) -> None:
    start, end = world["start"], world["end"]
    for merchant in world["merchants"]:
        slug = merchant["slug"]
        skus = {p["sku"] for p in _csv(report.out_dir / world["files"]["catalogue"][slug]["products"])}
        stores = {s["code"] for s in merchant["stores"]}
        guides = {s["staff_no"]: s["store_code"] for s in merchant["staff"] if s["role"] == "guide"}
        for row in orders[slug]:
            assert row["sku"] in skus
            assert row["store_code"] in stores
            assert row["guide_staff_no"] == "" or guides[row["guide_staff_no"]] == row["store_code"]
            assert row["channel"] in {"offline", "online", "miniprogram", "wecom"}
            assert row["payment_method"] in {"wechat_pay", "alipay", "unionpay", "card", "cash"}
            quantity, price = int(row["quantity"]), int(row["unit_price_fen"])
            assert int(row["line_amount_fen"]) == quantity * price - int(row["discount_fen"])
            assert row["order_time"].endswith("+08:00")
            assert start <= row["order_time"][:10] <= end
            assert (row["channel"] == "online") <= (row["store_code"] == "ONLINE")


def test_order_numbers_are_unique_per_merchant(orders: dict[str, list[dict[str, str]]]) -> None:
    for rows in orders.values():
        heads = {(r["order_no"], r["order_type"], r["order_time"], r["member_no"]) for r in rows}
        assert len(heads) == len({r["order_no"] for r in rows})
        for lines in _sales(rows).values():
            assert [int(line["line_no"]) for line in lines] == list(range(1, len(lines) + 1))


def test_refunds_follow_a_sale_and_never_return_more_than_was_sold(
        orders: dict[str, list[dict[str, str]]]) -> None:
    all_refunds = all_sales = 0
    for rows in orders.values():
        sales = _sales(rows)
        returned: Counter[tuple[str, str]] = Counter()
        refunds = set()
        for row in rows:
            if row["order_type"] != "refund":
                assert row["original_order_no"] == ""
                assert int(row["quantity"]) > 0
                continue
            refunds.add(row["order_no"])
            sale = sales[row["original_order_no"]]
            assert row["order_time"] > sale[0]["order_time"]
            assert int(row["quantity"]) < 0
            assert int(row["line_amount_fen"]) <= 0
            returned[(row["original_order_no"], row["sku"])] -= int(row["quantity"])
        sold = {(no, line["sku"]): int(line["quantity"]) for no, lines in sales.items() for line in lines}
        assert all(quantity <= sold[key] for key, quantity in returned.items())
        assert 0.015 < len(refunds) / len(sales) < 0.09
        all_refunds += len(refunds)
        all_sales += len(sales)
    assert 0.025 < all_refunds / all_sales < 0.06


def test_placeholder_phone_and_guests_are_rare_offline_patterns(
        orders: dict[str, list[dict[str, str]]]) -> None:
    offline = [lines[0] for rows in orders.values() for lines in _sales(rows).values()
               if lines[0]["channel"] == "offline"]
    placeholder = sum(o["phone"] == PLACEHOLDER for o in offline) / len(offline)
    guests = sum(not (o["phone"] or o["member_no"]) for o in offline) / len(offline)
    assert 0 < placeholder < 0.03
    assert 0.01 < guests < 0.06
    online = [lines[0] for rows in orders.values() for lines in _sales(rows).values()
              if lines[0]["channel"] != "offline"]
    assert all(o["phone"] != PLACEHOLDER for o in online)


def test_about_ten_orders_per_customer_with_the_supermarket_busiest(
        report: GenerationReport, orders: dict[str, list[dict[str, str]]],
        truth: dict[str, list[dict[str, str]]]) -> None:
    per_customer = {slug: len(_sales(rows)) / len(truth[slug]) for slug, rows in orders.items()}
    assert 7 < report.orders / report.customers < 14
    assert per_customer["zhaolu-market"] > 2 * max(per_customer["yunjin"], per_customer["qingyu-sports"])


@pytest.fixture(scope="module")
def small_orders(tmp_path_factory: pytest.TempPathFactory) -> list[dict[str, str]]:
    """First lines of the sales of a ``small`` world: seasonality needs more than a few hundred customers."""
    out = generate_world(tmp_path_factory.mktemp("small") / "world", scale="small", seed=SEED).out_dir
    return [row for path in sorted((out / "orders").glob("*.csv")) for row in _csv(path)
            if row["order_type"] == "sale" and row["line_no"] == "1"]


def _orders_per_day(rows: list[dict[str, str]], channels: set[str], slug_prefix: str = "") -> Counter[str]:
    return Counter(r["order_time"][:10] for r in rows
                   if r["channel"] in channels and r["order_no"].startswith(slug_prefix))


def test_festivals_and_weekends_shape_the_year(small_orders: list[dict[str, str]]) -> None:
    online = _orders_per_day(small_orders, {"online"})
    assert online["2025-11-11"] > 4 * statistics.median(online.values())
    assert online["2026-06-18"] > 2 * statistics.median(online.values())
    offline = _orders_per_day(small_orders, {"offline"})
    weekday: defaultdict[int, list[int]] = defaultdict(list)
    for day, count in offline.items():
        weekday[datetime.date.fromisoformat(day).weekday()].append(count)
    weekend, midweek = weekday[5] + weekday[6], weekday[0] + weekday[1] + weekday[2]
    assert statistics.mean(weekend) > 1.2 * statistics.mean(midweek)
    market = _orders_per_day(small_orders, {"offline"}, "ZL")
    festival = datetime.date(2026, 2, 17)
    before = [market[(festival - datetime.timedelta(days=k)).isoformat()] for k in range(2, 15)]
    during = [market[(festival + datetime.timedelta(days=k)).isoformat()] for k in range(1, 7)]
    assert statistics.mean(before) > 1.3 * statistics.median(market.values()) > 1.3 * statistics.mean(during)


def test_purchases_concentrate_in_the_customers_top_category(
        report: GenerationReport, world: dict[str, Any], orders: dict[str, list[dict[str, str]]],
        truth: dict[str, list[dict[str, str]]]) -> None:
    for slug, rows in orders.items():
        paths = world["files"]["catalogue"][slug]
        parent = {c["code"]: c["parent_code"] for c in _csv(report.out_dir / paths["categories"])}
        tops = [code for code, up in parent.items() if not up]
        products = _csv(report.out_dir / paths["products"])
        product_top = {p["sku"]: _top_of(parent, p["category_code"]) for p in products}
        favourite = {c["member_no"]: c["top_category"] for c in truth[slug] if c["member_no"]}
        lines = [r for r in rows if r["order_type"] == "sale" and r["member_no"]]
        hits = sum(product_top[r["sku"]] == favourite[r["member_no"]] for r in lines)
        assert hits / len(lines) > 2.0 / len(tops)


def _top_of(parent: dict[str, str], code: str) -> str:
    while parent[code]:
        code = parent[code]
    return code


# ---------------------------------------------------------------------------- truth and identities
def test_truth_phones_are_valid_mobiles_unique_per_merchant(truth: dict[str, list[dict[str, str]]]) -> None:
    for customers in truth.values():
        phones = [c["phone"] for c in customers]
        assert all(MOBILE.match(p) for p in phones)
        assert len(set(phones)) == len(phones)
        assert not {PLACEHOLDER, "00000000000"} & set(phones)
        assert len({c["person_id"] for c in customers}) == len(customers)
        assert all(c["price_tier"] in {"low", "mid", "high"} and c["acquired_on"] for c in customers)


def test_coalition_people_share_a_phone_but_not_member_numbers_or_unionids(
        world: dict[str, Any], truth: dict[str, list[dict[str, str]]]) -> None:
    first, second = ({c["phone"]: c for c in truth[slug]} for slug in world["coalitions"][0]["members"])
    shared = first.keys() & second.keys()
    assert len(shared) > 10
    for phone in shared:
        a, b = first[phone], second[phone]
        assert (a["person_id"], a["name"]) == (b["person_id"], b["name"])
        assert not (a["member_no"] and a["member_no"] == b["member_no"])
        assert not (a["wechat_unionid"] and a["wechat_unionid"] == b["wechat_unionid"])
    others = {c["phone"] for c in truth["zhaolu-market"]}
    assert not others & (first.keys() | second.keys())


def test_every_order_identifier_belongs_to_a_true_customer(
        orders: dict[str, list[dict[str, str]]], truth: dict[str, list[dict[str, str]]]) -> None:
    for slug, rows in orders.items():
        known = {field: {c[field] for c in truth[slug]} | {""}
                 for field in ("member_no", "phone", "wechat_unionid", "wechat_openid")}
        known["phone"].add(PLACEHOLDER)
        for row in rows:
            assert all(row[field] in values for field, values in known.items())


def test_identity_is_fragmented_the_way_oneid_must_resolve(
        orders: dict[str, list[dict[str, str]]], truth: dict[str, list[dict[str, str]]],
        events: dict[str, dict[str, list[dict[str, Any]]]]) -> None:
    all_orders = [r for rows in orders.values() for r in rows]
    assert any(r["phone"] and not r["member_no"] and r["channel"] == "offline" for r in all_orders)
    assert any(r["wechat_openid"] and not r["member_no"] for r in all_orders)
    assert any(len(c["anonymous_ids"].split(";")) >= 2 for rows in truth.values() for c in rows)
    web = [m for sources in events.values() for m in sources["web"]]
    assert any(m["type"] == "alias" for m in web)
    assert any("userId" not in m for m in web)
    assert any("userId" in m for m in web)
    truth_ids = {a for rows in truth.values() for c in rows for a in c["anonymous_ids"].split(";") if a}
    assert {m.get("anonymousId") for m in web} - truth_ids - {None}, "some visitors never identify"


# ---------------------------------------------------------------------------- events
def test_events_are_segment_messages(events: dict[str, dict[str, list[dict[str, Any]]]]) -> None:
    ids = []
    for sources in events.values():
        for source, messages in sources.items():
            for m in messages:
                ids.append(m["messageId"])
                assert m["type"] in {"identify", "track", "page", "screen", "alias"}
                assert UTC_TIMESTAMP.match(m["timestamp"])
                assert m.get("userId") or m.get("anonymousId")
                assert isinstance(m["context"]["library"]["name"], str)
                assert "ip" not in m["context"]
                if m["type"] == "track":
                    assert m["event"]
                    assert isinstance(m["properties"], dict)
                if m["type"] == "identify":
                    assert m["traits"]
                if source == "miniprogram":
                    assert m["context"]["app"]["namespace"].startswith("wx")
    assert len(ids) == len(set(ids))


def test_each_customer_messages_are_chronological(events: dict[str, dict[str, list[dict[str, Any]]]]) -> None:
    for sources in events.values():
        for messages in sources.values():
            last: dict[str, str] = {}
            for m in messages:
                key = m.get("anonymousId") or m["userId"]
                assert m["timestamp"] >= last.get(key, "")
                last[key] = m["timestamp"]


def test_wechat_and_wecom_ids_are_carried_as_external_ids(
        events: dict[str, dict[str, list[dict[str, Any]]]]) -> None:
    for sources in events.values():
        mp_types = {e["type"] for m in sources["miniprogram"] for e in m["context"].get("externalIds", [])}
        assert {"wechat_openid", "wechat_unionid"} <= mp_types
        contacts = [m for m in sources["wecom"] if m.get("event") == "Contact Added"]
        assert contacts
        for m in contacts:
            assert m["properties"]["staff_no"]
            assert m["context"]["externalIds"][0]["type"] == "wecom_external_userid"
        visits = [m for m in sources["pos"] if m.get("event") == "Store Visited"]
        assert visits
        assert all(m["properties"]["store_code"] for m in visits)


def test_online_orders_complete_with_the_same_order_number(
        orders: dict[str, list[dict[str, str]]], events: dict[str, dict[str, list[dict[str, Any]]]]) -> None:
    for slug, rows in orders.items():
        digital = {no: lines for no, lines in _sales(rows).items()
                   if lines[0]["channel"] in {"online", "miniprogram"}}
        completed = {m["properties"]["order_id"]: m for source in ("web", "miniprogram")
                     for m in events[slug][source] if m.get("event") == "Order Completed"}
        assert completed.keys() == digital.keys()
        for no, message in completed.items():
            total = sum(int(line["line_amount_fen"]) for line in digital[no])
            assert round(message["properties"]["total"] * 100) == total
            assert message["properties"]["currency"] == "CNY"
            assert [p["product_id"] for p in message["properties"]["products"]] == [
                line["sku"] for line in digital[no]]


def test_report_counts_what_was_written(
        report: GenerationReport, orders: dict[str, list[dict[str, str]]],
        truth: dict[str, list[dict[str, str]]], events: dict[str, dict[str, list[dict[str, Any]]]]) -> None:
    rows = [r for rs in orders.values() for r in rs]
    assert report.order_lines == len(rows)
    assert report.orders == len({(r["order_no"]) for r in rows if r["order_type"] == "sale"})
    assert report.refunds == len({(r["order_no"]) for r in rows if r["order_type"] == "refund"})
    assert report.customers == sum(len(c) for c in truth.values())
    assert report.events == sum(len(m) for sources in events.values() for m in sources.values())
    assert 200 <= report.customers <= 400
    assert report.rows_per_second > 0
    assert 1.5 < report.events / report.orders < 5
