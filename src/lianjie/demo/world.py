"""The static part of the demo world: merchants, stores, staff and catalogues.

Built from its own random streams (one per merchant, seeded from the world seed), so every worker
process can rebuild exactly the same world cheaply instead of receiving it pickled.
"""

from __future__ import annotations

import csv
import datetime
import itertools
import math
import random
from bisect import bisect_left
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lianjie.demo import reference as ref
from lianjie.demo.reference_catalogue import CATALOGUES, PRICE_POINTS_FEN, Leaf, Top

_SURNAME_CUM = list(itertools.accumulate(w for _, w in ref.SURNAMES))


@dataclass(frozen=True)
class Store:
    code: str
    name: str
    city: str
    province: str
    type: str
    opened_on: datetime.date


@dataclass(frozen=True)
class Staff:
    staff_no: str
    name: str
    role: str
    store_code: str | None
    wecom_userid: str


@dataclass(frozen=True)
class Category:
    code: str
    parent_code: str | None
    name: str
    level: int


@dataclass(frozen=True)
class Product:
    sku: str
    name: str
    brand: str
    category_code: str
    category_name: str
    price_fen: int
    top: int
    """Index of the product's top-level category in the merchant's tree."""
    tier: int
    """Price tier within its top-level category: 0 low, 1 mid, 2 high (tertiles by price)."""
    popularity: float
    """Zipf-like weight: a few best sellers, a long tail."""


@dataclass(frozen=True)
class MerchantWorld:
    index: int
    seed: ref.MerchantSeed
    miniprogram_appid: str
    official_account_appid: str
    stores: tuple[Store, ...]
    staff: tuple[Staff, ...]
    categories: tuple[Category, ...]
    top_codes: tuple[str, ...]
    products: tuple[Product, ...]

    @property
    def slug(self) -> str:
        return self.seed.slug

    @property
    def physical_stores(self) -> tuple[Store, ...]:
        return tuple(s for s in self.stores if s.type != "online")

    def guides_by_store(self) -> dict[str, tuple[str, ...]]:
        """Guide staff numbers per store code, in staff order."""
        out: dict[str, list[str]] = {}
        for member in self.staff:
            if member.role == "guide" and member.store_code:
                out.setdefault(member.store_code, []).append(member.staff_no)
        return {code: tuple(nos) for code, nos in out.items()}


def person_name(rng: random.Random, female: bool) -> str:
    """A plausible zh_CN name: a frequency-weighted surname and one or two given-name characters."""
    surname = ref.SURNAMES[bisect_left(_SURNAME_CUM, rng.random() * _SURNAME_CUM[-1])][0]
    pool = ref.GIVEN_FEMALE if female else ref.GIVEN_MALE
    first = pool[int(rng.random() * len(pool))]
    if rng.random() < 0.25:
        return surname + first
    second_pool = ref.GIVEN_NEUTRAL if rng.random() < 0.3 else pool
    return surname + first + second_pool[int(rng.random() * len(second_pool))]


def build_world(seed: int, store_counts: tuple[int, ...], skus: int,
                start: datetime.date) -> tuple[MerchantWorld, ...]:
    """Every merchant with its stores, staff and catalogue, identical for the same arguments."""
    return tuple(
        _build_merchant(index, merchant, seed, stores, skus, start)
        for index, (merchant, stores) in enumerate(zip(ref.MERCHANTS, store_counts, strict=True))
    )


def _build_merchant(index: int, merchant: ref.MerchantSeed, seed: int, n_stores: int, skus: int,
                    start: datetime.date) -> MerchantWorld:
    rng = random.Random(f"{seed}:world:{merchant.slug}")
    stores = _build_stores(rng, merchant, n_stores, start)
    staff = _build_staff(rng, merchant, stores)
    categories, leaves = _build_categories(merchant)
    products = _build_products(rng, merchant, leaves, skus)
    return MerchantWorld(
        index=index,
        seed=merchant,
        miniprogram_appid=f"wx{rng.getrandbits(64):016x}",
        official_account_appid=f"wx{rng.getrandbits(64):016x}",
        stores=stores,
        staff=staff,
        categories=categories,
        top_codes=tuple(c.code for c in categories if c.level == 1),
        products=products,
    )


def _store_cities(merchant: ref.MerchantSeed, n_stores: int) -> list[ref.City]:
    """Cities of the physical stores, biggest markets first, counts proportional to market size.

    The supermarket is a regional community chain, so it concentrates on fewer cities.
    """
    if merchant.industry == "supermarket":
        max_cities = max(2, min(12, n_stores // 6))
    else:
        max_cities = max(3, n_stores // 2)
    cities = sorted(ref.CITIES, key=lambda c: -c.weight)[: min(n_stores, max_cities, len(ref.CITIES))]
    counts = [1] * len(cities)
    extra = n_stores - len(cities)
    total = sum(c.weight for c in cities)
    shares = [extra * c.weight / total for c in cities]
    for i, share in enumerate(shares):
        counts[i] += int(share)
    leftover = n_stores - sum(counts)
    for i in sorted(range(len(cities)), key=lambda i: -(shares[i] - int(shares[i])))[:leftover]:
        counts[i] += 1
    return [city for city, count in zip(cities, counts, strict=True) for _ in range(count)]


def _build_stores(rng: random.Random, merchant: ref.MerchantSeed, n_stores: int,
                  start: datetime.date) -> tuple[Store, ...]:
    stores: list[Store] = []
    seen_per_city: dict[str, int] = {}
    places_per_city: dict[str, list[str]] = {}
    type_names = [t for t, _ in merchant.store_types]
    type_cum = list(itertools.accumulate(w for _, w in merchant.store_types))
    first_day = datetime.date(2008, 1, 1).toordinal()
    last_day = (start - datetime.timedelta(days=30)).toordinal()
    for city in _store_cities(merchant, n_stores):
        number = seen_per_city.get(city.name, 0) + 1
        seen_per_city[city.name] = number
        flagship = number == 1 and sum(s.type == "flagship" for s in stores) < merchant.flagships
        if flagship:
            kind, place = "flagship", "旗舰"
        else:
            kind = type_names[bisect_left(type_cum, rng.random() * type_cum[-1])]
            place = _next_place(rng, places_per_city, city.name, number)
        stores.append(Store(
            code=f"{city.code}{number:03d}",
            name=f"{merchant.short}·{city.name}{place}店",
            city=city.name,
            province=city.province,
            type=kind,
            opened_on=datetime.date.fromordinal(rng.randint(first_day, last_day)),
        ))
    hq = stores[0] if stores else None
    stores.append(Store(
        code=ref.ONLINE_STORE_CODE,
        name=f"{merchant.short}官方商城",
        city=hq.city if hq else ref.CITIES[0].name,
        province=hq.province if hq else ref.CITIES[0].province,
        type="online",
        opened_on=datetime.date.fromordinal(rng.randint(first_day, last_day)),
    ))
    return tuple(stores)


def _next_place(rng: random.Random, places_per_city: dict[str, list[str]], city: str, number: int) -> str:
    places = places_per_city.get(city)
    if places is None:
        places = list(ref.STORE_PLACES)
        rng.shuffle(places)
        places_per_city[city] = places
    if places:
        return places.pop()
    return f"第{number}"


def _build_staff(rng: random.Random, merchant: ref.MerchantSeed,
                 stores: tuple[Store, ...]) -> tuple[Staff, ...]:
    staff: list[Staff] = []

    def add(role: str, store_code: str | None) -> None:
        number = len(staff) + 1
        staff.append(Staff(
            staff_no=f"{merchant.code}{number:05d}",
            name=person_name(rng, rng.random() < 0.6),
            role=role,
            store_code=store_code,
            wecom_userid=f"{merchant.code.lower()}.staff{number:05d}",
        ))

    add("owner", None)
    add("admin", None)
    for store in stores:
        if store.type == "online":
            continue
        add("store_manager", store.code)
        for _ in range(rng.randint(2, 6)):
            add("guide", store.code)
    return tuple(staff)


def _build_categories(merchant: ref.MerchantSeed) -> tuple[tuple[Category, ...], list[tuple[int, str, Leaf]]]:
    """The category tree and its leaves as (top index, leaf code, leaf)."""
    categories: list[Category] = []
    leaves: list[tuple[int, str, Leaf]] = []
    for t, top in enumerate(CATALOGUES[merchant.slug]):
        top_code = f"{merchant.code}{t + 1:02d}"
        categories.append(Category(top_code, None, top.name, 1))
        for s, child in enumerate(top.children):
            sub_code = f"{top_code}{s + 1:02d}"
            categories.append(Category(sub_code, top_code, child.name, 2))
            if isinstance(child, Leaf):
                leaves.append((t, sub_code, child))
                continue
            for n, leaf in enumerate(child.leaves):
                leaf_code = f"{sub_code}{n + 1:02d}"
                categories.append(Category(leaf_code, sub_code, leaf.name, 3))
                leaves.append((t, leaf_code, leaf))
    return tuple(categories), leaves


def _snap_price(fen: float) -> int:
    """The psychological price point nearest to ``fen``."""
    i = bisect_left(PRICE_POINTS_FEN, fen)
    if i == 0:
        return PRICE_POINTS_FEN[0]
    if i == len(PRICE_POINTS_FEN):
        return PRICE_POINTS_FEN[-1]
    below, above = PRICE_POINTS_FEN[i - 1], PRICE_POINTS_FEN[i]
    return below if fen - below <= above - fen else above


def _build_products(rng: random.Random, merchant: ref.MerchantSeed, leaves: list[tuple[int, str, Leaf]],
                    skus: int) -> tuple[Product, ...]:
    tops: tuple[Top, ...] = CATALOGUES[merchant.slug]
    per_leaf, remainder = divmod(max(skus, 3 * len(leaves)), len(leaves))
    drafts: list[tuple[int, str, str, str, str, int]] = []
    names: set[str] = set()
    for i, (t, code, leaf) in enumerate(leaves):
        top = tops[t]
        for _ in range(per_leaf + (1 if i < remainder else 0)):
            brand = rng.choice(top.brands)
            position = rng.random()
            log_lo, log_hi = math.log(leaf.lo_yuan * 100), math.log(leaf.hi_yuan * 100)
            price = _snap_price(math.exp(log_lo + position * (log_hi - log_lo)))
            if top.sized:
                variant = top.variants[int(position * len(top.variants))]
            else:
                variant = rng.choice(top.variants)
            name = f"{brand} {rng.choice(top.adjectives)}{rng.choice(leaf.nouns)} {variant}"
            while name in names:
                name = f"{name}·{len(names) % 97 + 1}"
            names.add(name)
            drafts.append((t, code, leaf.name, name, brand, price))
    tiers = _price_tiers(drafts)
    popularity = _popularity(rng, drafts)
    return tuple(
        Product(sku=f"{merchant.code}{100001 + i}", name=name, brand=brand, category_code=code,
                category_name=leaf_name, price_fen=price, top=t, tier=tiers[i], popularity=popularity[i])
        for i, (t, code, leaf_name, name, brand, price) in enumerate(drafts)
    )


def _price_tiers(drafts: list[tuple[int, str, str, str, str, int]]) -> list[int]:
    tiers = [0] * len(drafts)
    by_top: dict[int, list[int]] = {}
    for i, draft in enumerate(drafts):
        by_top.setdefault(draft[0], []).append(i)
    for members in by_top.values():
        ranked = sorted(members, key=lambda i: (drafts[i][5], i))
        for rank, i in enumerate(ranked):
            tiers[i] = min(2, 3 * rank // len(ranked))
    return tiers


def _popularity(rng: random.Random, drafts: list[tuple[int, str, str, str, str, int]]) -> list[float]:
    weights = [0.0] * len(drafts)
    by_top: dict[int, list[int]] = {}
    for i, draft in enumerate(drafts):
        by_top.setdefault(draft[0], []).append(i)
    for members in by_top.values():
        order = list(members)
        rng.shuffle(order)
        for rank, i in enumerate(order):
            weights[i] = 1.0 / (rank + 1) ** 1.07
    return weights


def merchant_json(world: MerchantWorld) -> dict[str, Any]:
    """The merchant's entry in world.json."""
    merchant = world.seed
    return {
        "slug": merchant.slug,
        "name": merchant.name,
        "currency": "CNY",
        "timezone": "Asia/Shanghai",
        "industry": merchant.industry,
        "wechat": {
            "miniprogram_appid": world.miniprogram_appid,
            "official_account_appid": world.official_account_appid,
        },
        "sources": list(ref.SOURCES),
        "stores": [
            {"code": s.code, "name": s.name, "city": s.city, "province": s.province, "type": s.type,
             "opened_on": s.opened_on.isoformat()}
            for s in world.stores
        ],
        "staff": [
            {"staff_no": s.staff_no, "name": s.name, "role": s.role, "store_code": s.store_code,
             "wecom_userid": s.wecom_userid}
            for s in world.staff
        ],
    }


def write_catalogue(world: MerchantWorld, categories_path: Path, products_path: Path) -> None:
    """The merchant's category tree and products as two CSV files."""
    with categories_path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(("code", "parent_code", "name", "level"))
        writer.writerows((c.code, c.parent_code or "", c.name, c.level) for c in world.categories)
    with products_path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(("sku", "name", "brand", "category_code", "price_fen", "status"))
        writer.writerows((p.sku, p.name, p.brand, p.category_code, p.price_fen, "active")
                         for p in world.products)
