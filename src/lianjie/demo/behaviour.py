"""How each merchant's customers behave, and the lookup tables that make simulating them cheap.

The parameters follow the models the rest of lianjie fits to this data: a BG/NBD-like purchase
process (rate λ ~ Gamma, drop-out after each purchase with probability p ~ Beta), Gamma-like spend
heterogeneity (basket size and price tier), and Dirichlet-like category preferences. Values are
chosen so the whole world averages about ten orders per customer-year: the supermarket far more,
the department store and the sportswear brand fewer.
"""

from __future__ import annotations

import itertools
from bisect import bisect_left
from typing import NamedTuple

from lianjie.demo.events import dumps, yuan
from lianjie.demo.reference import CHANNELS, PAYMENT_METHODS, PHONE_MODELS, WEB_USER_AGENTS
from lianjie.demo.seasons import Calendar, channel_demand, hour_cum
from lianjie.demo.world import MerchantWorld

ChannelMix = tuple[float, float, float, float]
"""Shares of offline, online (web), miniprogram and wecom orders."""

PRICE_TIERS = ("low", "mid", "high")


class Behaviour(NamedTuple):
    rate_mean: float
    """Mean purchase rate (orders per year) of an active customer."""
    rate_shape: float
    dropout_a: float
    dropout_b: float
    pre_window_share: float
    """Share of customers acquired before the window (they are active when it opens)."""
    lines_mean: float
    quantity_weights: tuple[float, ...]
    member_share: float
    refund_share: float
    guide_share: float
    """Share of offline orders rung up with a shopping guide's staff_no."""
    contact_share: float
    """Chance that a guide-served customer adds the guide on WeCom at that visit."""
    tier_weights: tuple[float, float, float]
    tier_loyalty: float
    """Chance that a product is chosen within the customer's own price tier."""
    preference_alpha: float
    """Dirichlet concentration: lower means customers stick to fewer categories."""
    local_groups: tuple[tuple[float, ChannelMix], ...]
    """Channel habits of customers living near a store, with their shares."""
    remote_mix: ChannelMix
    browse_share: float
    """Chance of a browse-only session before an order, for customers who order online at least half
    the time (scaled down for more offline habits)."""
    local_delivery: bool
    """Mini-program orders are fulfilled (and booked) by the customer's home store."""
    viewed_lines: int
    """How many of an online basket's products are viewed before being added (groceries: fewer)."""
    reorder_share: float
    """Mini-program orders placed straight from the cart or order history, with no browsing first."""


BEHAVIOURS: dict[str, Behaviour] = {
    "department_store": Behaviour(
        rate_mean=10.0, rate_shape=1.4, dropout_a=1.2, dropout_b=11.0, pre_window_share=0.55,
        lines_mean=1.5, quantity_weights=(90, 8, 2), member_share=0.75, refund_share=0.055,
        guide_share=0.6, contact_share=0.3, tier_weights=(0.35, 0.4, 0.25), tier_loyalty=0.7,
        preference_alpha=0.45,
        local_groups=((0.45, (0.82, 0.02, 0.08, 0.08)), (0.35, (0.45, 0.2, 0.22, 0.13)),
                      (0.2, (0.1, 0.45, 0.4, 0.05))),
        remote_mix=(0.0, 0.55, 0.45, 0.0), browse_share=0.25, local_delivery=False, viewed_lines=2,
        reorder_share=0.1,
    ),
    "sportswear": Behaviour(
        rate_mean=6.7, rate_shape=1.3, dropout_a=1.2, dropout_b=10.0, pre_window_share=0.55,
        lines_mean=1.6, quantity_weights=(88, 10, 2), member_share=0.7, refund_share=0.05,
        guide_share=0.55, contact_share=0.25, tier_weights=(0.3, 0.45, 0.25), tier_loyalty=0.7,
        preference_alpha=0.4,
        local_groups=((0.4, (0.8, 0.05, 0.08, 0.07)), (0.35, (0.4, 0.3, 0.2, 0.1)),
                      (0.25, (0.1, 0.55, 0.3, 0.05))),
        remote_mix=(0.0, 0.65, 0.35, 0.0), browse_share=0.25, local_delivery=False, viewed_lines=2,
        reorder_share=0.1,
    ),
    "supermarket": Behaviour(
        rate_mean=42.0, rate_shape=2.0, dropout_a=1.0, dropout_b=32.0, pre_window_share=0.55,
        lines_mean=2.1, quantity_weights=(60, 25, 10, 3, 2), member_share=0.6, refund_share=0.035,
        guide_share=0.08, contact_share=0.15, tier_weights=(0.45, 0.4, 0.15), tier_loyalty=0.75,
        preference_alpha=0.6,
        local_groups=((0.55, (0.9, 0.0, 0.06, 0.04)), (0.3, (0.62, 0.02, 0.26, 0.1)),
                      (0.15, (0.3, 0.05, 0.6, 0.05))),
        remote_mix=(0.0, 0.1, 0.9, 0.0), browse_share=0.15, local_delivery=True, viewed_lines=1,
        reorder_share=0.5,
    ),
}

_PAYMENT_WEIGHTS: dict[str, tuple[float, ...]] = {  # per channel, in PAYMENT_METHODS order
    "offline": (55, 30, 7, 5, 3),
    "online": (40, 50, 10, 0, 0),
    "miniprogram": (100, 0, 0, 0, 0),
    "wecom": (100, 0, 0, 0, 0),
}


def cumulative(weights: tuple[float, ...] | list[float]) -> list[float]:
    return list(itertools.accumulate(weights))


class ProductTable(NamedTuple):
    """Products of one (top category, tier) slice with cumulative popularity, for bisect picks."""

    indices: tuple[int, ...]
    cum: tuple[float, ...]

    def pick(self, x: float) -> int:
        """The product at uniform draw ``x`` in [0, 1)."""
        return self.indices[bisect_left(self.cum, x * self.cum[-1])]


class MerchantModel:
    """Everything static a customer simulation of one merchant looks up, precomputed once per process."""

    def __init__(self, world: MerchantWorld, calendar: Calendar) -> None:
        self.world = world
        self.calendar = calendar
        self.code = world.seed.code
        self.behaviour = BEHAVIOURS[world.seed.industry]
        self._build_channel_tables()
        self._build_places()
        self._build_products()
        self._build_contexts()

    def _build_channel_tables(self) -> None:
        """Operational-time tables: a customer's Poisson clock runs in demand-weighted days.

        Mapping an exponential gap through the cumulative demand of the customer's channel habit
        gives an exact non-homogeneous Poisson process with a single bisect per order.
        """
        calendar, b = self.calendar, self.behaviour
        demand = channel_demand(calendar, self.world.seed.industry)
        mixes = [mix for _, mix in b.local_groups] + [b.remote_mix]
        self.local_group_cum = cumulative([share for share, _ in b.local_groups])
        self.remote_group = len(mixes) - 1
        self.group_mix = mixes
        self.op_cum: list[list[float]] = []
        self.channel_cum: list[list[list[float]]] = []
        for mix in mixes:
            per_day = [[mix[c] * demand[ch][d] for c, ch in enumerate(CHANNELS)]
                       for d in range(calendar.days)]
            intensity = [sum(row) for row in per_day]
            scale = calendar.days / sum(intensity)
            self.op_cum.append(cumulative([w * scale for w in intensity]))
            self.channel_cum.append([cumulative(row) for row in per_day])
        peaks = calendar.peak_days()
        industry = self.world.seed.industry
        self.hours = {
            ch: (hour_cum(ch, industry, False), hour_cum(ch, industry, True)) for ch in CHANNELS
        }
        self.peak = [d in peaks for d in range(calendar.days)]
        self.promo = [max(demand["online"][d], demand["offline"][d]) > 1.6 for d in range(calendar.days)]
        self.compact_date = [calendar.date_iso(d).replace("-", "") for d in range(calendar.days)]
        self.payment_cum = {ch: cumulative(_PAYMENT_WEIGHTS[ch]) for ch in CHANNELS}
        self.payment_methods = PAYMENT_METHODS
        self.quantity_cum = cumulative(b.quantity_weights)
        self.tier_cum = cumulative(b.tier_weights)

    def _build_places(self) -> None:
        by_city: dict[str, list[str]] = {}
        for store in self.world.physical_stores:
            by_city.setdefault(store.city, []).append(store.code)
        self.stores_by_city = {city: tuple(codes) for city, codes in by_city.items()}
        self.all_stores = tuple(s.code for s in self.world.physical_stores)
        self.guides = self.world.guides_by_store()

    def _build_products(self) -> None:
        products = self.world.products
        self.skus = [p.sku for p in products]
        self.prices = [p.price_fen for p in products]
        self.product_top = [p.top for p in products]
        self.product_json = [
            f'"product_id":"{p.sku}","name":{dumps(p.name)},"category":{dumps(p.category_name)},'
            f'"price":{yuan(p.price_fen)}'
            for p in products
        ]
        self.top_count = len(self.world.top_codes)
        self.pick_all: list[ProductTable] = []
        self.pick_tier: list[list[ProductTable]] = []
        for top in range(self.top_count):
            members = [i for i, p in enumerate(products) if p.top == top]
            self.pick_all.append(self._table(members))
            tiers = [[i for i in members if products[i].tier == tier] for tier in range(3)]
            self.pick_tier.append([self._table(t) if t else self._table(members) for t in tiers])
        queries = sorted({p.category_name for p in products})
        self.search_queries = [dumps({"query": q}) for q in queries]

    def _table(self, members: list[int]) -> ProductTable:
        weights = [self.world.products[i].popularity for i in members]
        return ProductTable(tuple(members), tuple(cumulative(weights)))

    def _build_contexts(self) -> None:
        world = self.world
        library = {"name": "analytics.js", "version": "5.2.1"}
        # Pages and identifies carry the user agent; tracks only the library, to keep the files small.
        self.web_contexts = [dumps({"library": library, "locale": "zh-CN", "userAgent": agent})
                             for agent in WEB_USER_AGENTS]
        self.web_track_context = dumps({"library": library, "locale": "zh-CN"})
        self.pos_contexts = {
            store.code: dumps({"library": {"name": "lianjie-pos", "version": "2.3.0"},
                               "device": {"id": f"{store.code}-POS1", "type": "pos"},
                               "timezone": "Asia/Shanghai"})
            for store in world.physical_stores
        }
        self.wecom_context = dumps({"library": {"name": "lianjie-wecom", "version": "1.4.0"},
                                    "timezone": "Asia/Shanghai"})
        self.miniprogram_app = {"name": f"{world.seed.short}小程序", "version": "3.8.2",
                                "namespace": world.miniprogram_appid}
        self.phone_models = PHONE_MODELS
        self.page_names = {name: dumps(name) for name in ("首页", "分类")}
        self.page_props = {
            "首页": dumps({"path": "/", "title": world.seed.short}),
            "分类": dumps({"path": "/category", "title": "分类"}),
        }
        self.wechat_traits_app = world.miniprogram_appid

    def miniprogram_contexts(self, device_id: str, model_index: int, openid: str,
                             unionid: str) -> tuple[str, str]:
        """A customer's mini-program contexts: in full (device, os, WeChat ids as externalIds) for
        identify, and slim (library and app) for everything else, to keep the files small."""
        manufacturer, model, os_name, os_version = self.phone_models[model_index]
        library = {"name": "analytics-miniprogram", "version": "1.6.0"}
        full = dumps({
            "library": library,
            "app": self.miniprogram_app,
            "device": {"id": device_id, "manufacturer": manufacturer, "model": model, "type": "wechat"},
            "os": {"name": os_name, "version": os_version},
            "timezone": "Asia/Shanghai",
            "externalIds": [
                {"id": openid, "type": "wechat_openid", "collection": "users", "encoding": "none"},
                {"id": unionid, "type": "wechat_unionid", "collection": "users", "encoding": "none"},
            ],
        })
        app = self.miniprogram_app
        return full, dumps({"library": library, "app": {"namespace": app["namespace"]}})

    def wecom_contact_context(self, external_userid: str, unionid: str) -> str:
        return dumps({
            "library": {"name": "lianjie-wecom", "version": "1.4.0"},
            "timezone": "Asia/Shanghai",
            "externalIds": [
                {"id": external_userid, "type": "wecom_external_userid", "collection": "users",
                 "encoding": "none"},
                {"id": unionid, "type": "wechat_unionid", "collection": "users", "encoding": "none"},
            ],
        })
