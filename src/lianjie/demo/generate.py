"""Deterministic demo retail world: three fictional merchants, a year of customers, orders and events.

``generate_world(out_dir, scale=..., seed=...)`` writes a self-contained world that the loaders, the
OneID engine, the warehouse and the recommenders can be developed and benchmarked against. The same
(scale, seed, end_date) gives byte-identical files whatever the number of worker processes: each
scale has a fixed number of *parts*, and a part's random streams are seeded only from
(seed, merchant, part). (Identical on any IEEE-754 machine with the same CPython minor version; a
libm that rounds log/exp differently could in principle flip one draw.)

The merchants: ``yunjin`` (云锦生活百货, lifestyle department store), ``qingyu-sports`` (青屿运动,
sportswear) and ``zhaolu-market`` (朝露社区超市, community supermarket). The first two share the
coalition points programme ``yunyu-points``; people who shop at both appear in both truth files
with the same phone, different member numbers and different unionids (unionids are per company).

Layout of ``out_dir`` (``<part>`` is two digits from ``01``; every path is listed in world.json)::

    world.json
        {"format": 1, "seed", "scale", "start", "end",             # window, ISO dates, end inclusive
         "merchants": [{"slug", "name", "currency": "CNY", "timezone": "Asia/Shanghai", "industry",
                        "wechat": {"miniprogram_appid", "official_account_appid"},
                        "sources": ["web", "miniprogram", "pos", "wecom"],
                        "stores": [{"code", "name", "city", "province", "type", "opened_on"}],
                        "staff": [{"staff_no", "name", "role", "store_code", "wecom_userid"}]}],
         "coalitions": [{"code", "name", "members": [slug, slug]}],
         "files": {"catalogue": {slug: {"categories": path, "products": path}},
                   "orders": {slug: [path, ...]},
                   "events": {slug: {source: [path, ...]}},
                   "truth": {slug: path}}}
    catalogue/<slug>-categories.csv   code,parent_code,name,level        (levels 1-3; parent empty at 1)
    catalogue/<slug>-products.csv     sku,name,brand,category_code,price_fen,status   (leaf categories)
    orders/<slug>-<part>.csv          one row per order line:
        order_no,order_type,original_order_no,order_time,channel,store_code,guide_staff_no,member_no,
        phone,wechat_unionid,wechat_openid,line_no,sku,quantity,unit_price_fen,discount_fen,
        line_amount_fen,payment_method
    events/<slug>/<source>-<part>.ndjson   one Segment message per line; source: web, miniprogram,
                                      pos, wecom (a file may be empty)
    truth/<slug>-customers.csv        one row per customer record:
        person_id,member_no,phone,wechat_unionid,wechat_openid,anonymous_ids,name,gender,birthday,
        city,acquired_on,churned_on,top_category,price_tier

Conventions: CSV is UTF-8 with a header and ``\\n`` line ends (no field needs quoting); money is
integer fen; order_time is local time with ``+08:00``; event ``timestamp`` is UTC with ``Z``; roles
are owner/admin/store_manager/guide (owner and admin have ``store_code`` null); store types are
flagship/mall/community/online, with exactly one online store per merchant, code ``ONLINE``.

Orders: order_type ``sale`` or ``refund``; channel offline/online/miniprogram/wecom; payment_method
wechat_pay/alipay/unionpay/card/cash. A refund row names its sale in original_order_no, is dated
after it, never returns more than was sold, and carries negative quantity, discount_fen and
line_amount_fen (line_amount_fen = quantity * unit_price_fen - discount_fen on every row). Order
numbers are unique per merchant. Online and mini-program orders are booked on store ``ONLINE``
(the supermarket's mini-program orders on the home store that delivers them); wecom orders on the
guide's store with the guide's staff_no; offline orders often with a guide. Identifiers are what
the channel would know: members give member_no and phone, non-members at the till only a phone,
mini-program orders the openid/unionid (plus member_no and phone once the phone is authorised).
About 3% of offline orders carry no identifier and about 1% the cashier's placeholder phone
13800138000. Rows are grouped by customer, not sorted by time; within one customer they are
chronological (a refund follows its sale).

Events: ``messageId`` is unique and deterministic; within one customer the messages are in
chronological order (across all four sources), but a file as a whole is not sorted by timestamp.
web: page, Products Searched, Product Viewed, Product Added, Checkout Started, Order Completed;
sign-up is ``alias`` (previousId = device id) + ``identify``, a login on a device is ``identify``
with userId = member_no and the device's anonymousId. miniprogram: the same with ``screen`` and
``Cart Viewed`` for reorders; the first open is an anonymous ``identify`` with traits
wechat_openid / wechat_unionid / wechat_appid and both ids in ``context.externalIds``; authorising
the phone is an ``identify`` with userId. pos: ``Store Visited`` (store_code) and ``identify`` when
someone joins at the till. wecom: ``Contact Added`` (staff_no, store_code, state) with anonymousId
= external_userid and ``context.externalIds`` of types wecom_external_userid and wechat_unionid,
sometimes followed by an ``identify`` with the phone the guide noted. Product properties are
product_id (= sku), name, category (leaf name) and price; prices are yuan numbers with
``currency: "CNY"``. ``Order Completed`` has order_id = the CSV order_no, total, revenue, discount
and products. identify traits: name, phone, gender, birthday, city and member_no when known. Web
visitors who never identify are in the event files but not in truth.

Truth: person_id (the same for one person at both coalition merchants), member_no (empty if never
joined), phone, wechat_unionid / wechat_openid (empty if never seen), anonymous_ids (``;``-joined web
device ids, mini-program id and WeCom external_userid), name, gender (female/male), birthday, city,
acquired_on (may precede the window), churned_on (the day of the purchase after which the customer
dropped out; empty if still active), top_category (code of the preferred top-level category) and
price_tier (low/mid/high).
"""

from __future__ import annotations

import datetime
import json
import multiprocessing
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from queue import Empty
from typing import Any

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from lianjie.demo import reference as ref
from lianjie.demo.output import TRUTH_COLUMNS
from lianjie.demo.part import RECORDS_PER_PERSON, PartCounts, PartTask, run_part
from lianjie.demo.part import events_path as _events_path
from lianjie.demo.part import orders_path as _orders_path
from lianjie.demo.part import truth_part_path as _truth_part_path
from lianjie.demo.world import build_world, merchant_json, write_catalogue

FORMAT = 1


@dataclass(frozen=True)
class ScaleSpec:
    """Size of a world. ``customers`` is the target number of customer records (a coalition person counts
    once per merchant); ``parts`` is fixed so that output never depends on the worker count."""

    customers: int
    parts: int
    stores: tuple[int, int, int]
    """Physical stores of the department store, the sportswear brand and the supermarket."""
    skus: int
    """Products per merchant (approximate: at least three per leaf category)."""

    @property
    def people(self) -> int:
        return round(self.customers / RECORDS_PER_PERSON)


SCALES: dict[str, ScaleSpec] = {
    "tiny": ScaleSpec(customers=300, parts=2, stores=(3, 4, 6), skus=120),
    "small": ScaleSpec(customers=5_000, parts=2, stores=(8, 12, 24), skus=400),
    "medium": ScaleSpec(customers=100_000, parts=4, stores=(24, 48, 96), skus=1_200),
    "large": ScaleSpec(customers=1_000_000, parts=8, stores=(60, 120, 240), skus=3_000),
}


@dataclass(frozen=True)
class GenerationReport:
    out_dir: Path
    scale: str
    seed: int
    merchants: int
    stores: int
    staff: int
    products: int
    customers: int
    """Customer records (truth rows) over all merchants."""
    orders: int
    """Sale orders (distinct sale order numbers)."""
    order_lines: int
    """Rows of the order files: sale lines and refund lines."""
    refunds: int
    """Refund orders."""
    events: int
    seconds: float

    @property
    def rows_per_second(self) -> float:
        return (self.order_lines + self.events) / self.seconds if self.seconds > 0 else 0.0


def window_start(end_date: datetime.date) -> datetime.date:
    """First day of the twelve months ending on ``end_date`` inclusive."""
    try:
        year_before = end_date.replace(year=end_date.year - 1)
    except ValueError:  # 29 February
        year_before = end_date.replace(year=end_date.year - 1, day=28)
    return year_before + datetime.timedelta(days=1)


def generate_world(out_dir: Path, *, scale: str = "small", seed: int = 42,
                   end_date: datetime.date = datetime.date(2026, 10, 31),
                   workers: int | None = None, show_progress: bool = False) -> GenerationReport:
    """Write a demo world under ``out_dir`` (created if missing) and report what was written."""
    if scale not in SCALES:
        raise ValueError(f"unknown scale {scale!r}; valid scales: {', '.join(SCALES)}")
    began = time.perf_counter()
    spec = SCALES[scale]
    out_dir = Path(out_dir)
    _prepare(out_dir)
    start = window_start(end_date)
    worlds = build_world(seed, spec.stores, spec.skus, start)
    files: dict[str, Any] = {"catalogue": {}, "orders": {}, "events": {}, "truth": {}}
    (out_dir / "catalogue").mkdir(parents=True, exist_ok=True)
    for world in worlds:
        paths = {"categories": f"catalogue/{world.slug}-categories.csv",
                 "products": f"catalogue/{world.slug}-products.csv"}
        write_catalogue(world, out_dir / paths["categories"], out_dir / paths["products"])
        files["catalogue"][world.slug] = paths
    tasks = _tasks(out_dir, spec, seed, start, end_date)
    counts = _run_parts(tasks, workers, show_progress, expected=spec.customers)
    for world in worlds:
        files["orders"][world.slug] = [_orders_path(world.slug, t.part) for t in tasks]
        files["events"][world.slug] = {
            source: [_events_path(world.slug, source, t.part) for t in tasks] for source in ref.SOURCES
        }
        files["truth"][world.slug] = _merge_truth(out_dir, world.slug, tasks)
    manifest = {
        "format": FORMAT, "seed": seed, "scale": scale,
        "start": start.isoformat(), "end": end_date.isoformat(),
        "merchants": [merchant_json(world) for world in worlds],
        "coalitions": [{"code": ref.COALITION_CODE, "name": ref.COALITION_NAME,
                        "members": list(ref.COALITION_MEMBERS)}],
        "files": files,
    }
    text = json.dumps(manifest, ensure_ascii=False, indent=2) + "\n"
    (out_dir / "world.json").write_text(text, encoding="utf-8")
    totals = PartCounts(*(sum(column) for column in zip(*(c for part in counts for c in part), strict=True)))
    return GenerationReport(
        out_dir=out_dir, scale=scale, seed=seed, merchants=len(worlds),
        stores=sum(len(w.stores) for w in worlds), staff=sum(len(w.staff) for w in worlds),
        products=sum(len(w.products) for w in worlds), customers=totals.customers, orders=totals.orders,
        order_lines=totals.order_lines, refunds=totals.refunds, events=totals.events,
        seconds=time.perf_counter() - began,
    )


def _prepare(out_dir: Path) -> None:
    """Refuse to mix a world into unrelated files; a previous world is replaced (its listed files only)."""
    if not out_dir.exists():
        out_dir.mkdir(parents=True)
        return
    manifest_path = out_dir / "world.json"
    if manifest_path.exists():
        previous = json.loads(manifest_path.read_text(encoding="utf-8"))
        for relative in _listed_paths(previous.get("files", {})):
            (out_dir / relative).unlink(missing_ok=True)
        manifest_path.unlink()
    leftovers = [p for p in out_dir.rglob("*") if p.is_file()]
    if leftovers:
        raise FileExistsError(f"{out_dir} is not empty (e.g. {leftovers[0]}); give an empty or new directory")


def _listed_paths(files: Any) -> list[str]:
    if isinstance(files, str):
        return [files]
    if isinstance(files, dict):
        return [p for value in files.values() for p in _listed_paths(value)]
    if isinstance(files, list):
        return [p for value in files for p in _listed_paths(value)]
    return []


def _tasks(out_dir: Path, spec: ScaleSpec, seed: int, start: datetime.date,
           end: datetime.date) -> list[PartTask]:
    people, parts = spec.people, spec.parts
    bounds = [people * k // parts for k in range(parts + 1)]
    return [
        PartTask(out_dir=str(out_dir), seed=seed, part=k, first_person=bounds[k], last_person=bounds[k + 1],
                 store_counts=spec.stores, skus=spec.skus, start=start, end=end)
        for k in range(parts)
    ]


def _merge_truth(out_dir: Path, slug: str, tasks: list[PartTask]) -> str:
    """Concatenate the parts' truth rows in part order under one header."""
    relative = f"truth/{slug}-customers.csv"
    with (out_dir / relative).open("w", encoding="utf-8", newline="") as merged:
        merged.write(",".join(TRUTH_COLUMNS) + "\n")
        for task in tasks:
            part_file = out_dir / _truth_part_path(slug, task.part)
            with part_file.open("r", encoding="utf-8", newline="") as rows:
                shutil.copyfileobj(rows, merged, 1 << 20)
            part_file.unlink()
    return relative


# ---------------------------------------------------------------------------- running the parts
_worker_queue: Any = None


def _init_worker(queue: Any) -> None:
    global _worker_queue
    _worker_queue = queue


def _run_in_worker(task: PartTask) -> tuple[PartCounts, ...]:
    queue = _worker_queue
    return run_part(task, queue.put if queue is not None else None)


def _run_parts(tasks: list[PartTask], workers: int | None, show_progress: bool,
               expected: int) -> list[tuple[PartCounts, ...]]:
    processes = max(1, min(workers or os.cpu_count() or 1, len(tasks)))
    if processes == 1:
        with _progress(show_progress, expected) as advance:
            return [run_part(task, advance) for task in tasks]
    # fork where available: no re-import of the caller's __main__ (scripts need no main guard) and a
    # fast start. The pool is created before the progress bar starts its refresh thread.
    method = "fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn"
    context = multiprocessing.get_context(method)
    queue = context.Queue() if show_progress else None
    with context.Pool(processes, initializer=_init_worker, initargs=(queue,)) as pool, \
            _progress(show_progress, expected) as advance:
        pending = [pool.apply_async(_run_in_worker, (task,)) for task in tasks]
        while not all(result.ready() for result in pending):
            if queue is None:
                next(r for r in pending if not r.ready()).wait(0.5)
            else:
                _drain(queue, advance, timeout=0.2)
        results = [result.get() for result in pending]
        _drain(queue, advance, timeout=0.0)
    return results


def _drain(queue: Any, advance: Callable[[int], None] | None, timeout: float) -> None:
    if queue is None or advance is None:
        return
    try:
        advance(queue.get(timeout=timeout) if timeout else queue.get_nowait())
        while True:
            advance(queue.get_nowait())
    except Empty:
        pass


class _progress:
    """A Rich bar of customers generated (or nothing), usable as ``with _progress(...) as advance``."""

    def __init__(self, enabled: bool, expected: int) -> None:
        self._enabled = enabled
        self._expected = expected
        self._bar: Progress | None = None
        self._task: Any = None

    def __enter__(self) -> Callable[[int], None] | None:
        if not self._enabled:
            return None
        self._bar = Progress(TextColumn("customers"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
        self._bar.start()
        self._task = self._bar.add_task("customers", total=self._expected)
        return self._advance

    def _advance(self, n: int) -> None:
        if self._bar is not None:
            self._bar.advance(self._task, n)

    def __exit__(self, *exc: object) -> None:
        if self._bar is not None:
            done = self._bar.tasks[0].completed
            self._bar.update(self._task, total=done)
            self._bar.stop()
