"""One small hand-written warehouse for the KPI tests, with the figures worked out by hand beside it.

Merchant 1 (Asia/Shanghai, UTC+8) sells in October 2026 (the range) and September (the previous
range, 2026-08-31 to 2026-09-30, as many days). Customer 101 has two profiles (102 was merged into
it); 103 has an order a second before local midnight at the range's end and one at midnight (out);
104 one a second before the range starts (previous range); a guest buys once. Members: 101 (tier on
its merged profile 102 in September), 103 (tier in mid-October: a new member), 106 (tier in
September), 105 (paid plan in November: not yet a member at the end of October). Merchant 2 has
rows on the same days that must never show. Merchant 3 holds three cohorts (January to March
2026), merchant 4 two orders around the end of daylight saving in America/Chicago.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

SHANGHAI = dt.timezone(dt.timedelta(hours=8))


def at(text: str, zone: dt.tzinfo = SHANGHAI) -> dt.datetime:
    """A local wall-clock time as the UTC instant the warehouse stores."""
    return dt.datetime.fromisoformat(text).replace(tzinfo=zone).astimezone(dt.UTC)


_next_id = iter(range(1, 10_000))


def order(tenant: int, profile: int | None, when: dt.datetime, paid: int, *, refunded: int = 0,
          store: int | None = None, guide: int | None = None, channel: str = "offline") -> dict[str, Any]:
    status = "completed" if refunded == 0 else "refunded" if refunded == paid else "partially_refunded"
    n = next(_next_id)
    return {"id": n, "tenant_id": tenant, "order_no": f"SO-{n}", "profile_id": profile, "store_id": store,
            "guide_id": guide, "channel": channel, "currency": "CNY", "list_fen": paid, "discount_fen": 0,
            "paid_fen": paid, "refunded_fen": refunded, "status": status, "ordered_at": when, "updated_at": when}


def profiles(tenant: int, *pairs: tuple[int, int]) -> list[dict[str, Any]]:
    return [{"tenant_id": tenant, "profile_id": p, "customer_id": c, "erased": False} for p, c in pairs]


ORDERS = [
    # merchant 1, October (the range)
    order(1, 101, at("2026-10-01T00:00:00"), 10000, store=10, guide=20),                  # O1: first instant
    order(1, 102, at("2026-10-15T12:00:00"), 5000, refunded=2000, store=11, guide=21),    # O2: merged profile
    order(1, 103, at("2026-10-31T23:59:59"), 3000, refunded=3000, store=10, channel="miniprogram"),  # O3
    order(1, 103, at("2026-11-01T00:00:00"), 7000, store=10),                             # O4: out (November)
    order(1, None, at("2026-10-20T10:00:00"), 2500, store=11),                            # O5: guest
    order(1, 104, at("2026-09-30T23:59:59"), 4000, store=10, guide=20, channel="online"),  # O6: previous range
    order(1, 104, at("2026-10-10T09:00:00"), 1001, channel="online"),                     # O7: no store
    order(1, 106, at("2026-09-05T10:00:00"), 600, store=11),                              # O8: previous range
    order(1, 105, at("2026-10-25T20:00:00"), 1999, store=11, guide=21, channel="wecom"),  # O10
    order(2, 901, at("2026-10-05T10:00:00"), 99999, store=90),                            # another merchant
    order(2, 901, at("2026-09-05T10:00:00"), 88888, store=90),
    # merchant 3: cohorts
    order(3, 301, at("2026-01-05T10:00:00"), 100), order(3, 301, at("2026-02-10T10:00:00"), 100),
    order(3, 301, at("2026-03-03T10:00:00"), 100), order(3, 301, at("2026-04-02T10:00:00"), 100),
    order(3, 302, at("2026-01-20T10:00:00"), 100), order(3, 306, at("2026-02-11T10:00:00"), 100),
    order(3, 302, at("2026-03-15T10:00:00"), 100),
    order(3, 303, at("2026-01-31T23:00:00"), 100), order(3, 303, at("2026-01-31T23:30:00"), 100),
    order(3, 311, at("2026-02-01T07:00:00"), 100),  # 2026-01-31 23:00 UTC: a February customer locally
    order(3, 311, at("2026-04-01T00:30:00"), 100),  # 2026-03-31 16:30 UTC: April locally, not March
    order(3, 312, at("2026-02-14T10:00:00"), 100), order(3, 312, at("2026-03-01T10:00:00"), 100),
    order(3, 321, at("2026-03-08T10:00:00"), 100),
    order(3, 331, at("2025-12-20T10:00:00"), 100), order(3, 331, at("2026-01-10T10:00:00"), 100),
    order(3, None, at("2026-01-10T10:00:00"), 100),
    # merchant 4 (America/Chicago): daylight saving ends 2026-11-01 at 02:00 CDT
    order(4, 401, dt.datetime(2026, 11, 1, 5, 30, tzinfo=dt.UTC), 100),  # 00:30 CDT on 1 November
    order(4, 401, dt.datetime(2026, 11, 2, 5, 30, tzinfo=dt.UTC), 200),  # 23:30 CST on 1 November
]

ROWS: dict[str, list[dict[str, Any]]] = {
    "orders": ORDERS,
    "identity_map": [*profiles(1, (101, 101), (102, 101), (103, 103), (104, 104), (105, 105), (106, 106)),
                     *profiles(2, (901, 901)),
                     *profiles(3, (301, 301), (302, 302), (306, 302), (303, 303), (311, 311), (312, 312),
                               (321, 321), (331, 331)),
                     *profiles(4, (401, 401))],
    "tier_assignments": [
        {"id": 1, "tenant_id": 1, "profile_id": 102, "tier_code": "silver", "created_at": at("2026-09-10T12:00:00")},
        {"id": 2, "tenant_id": 1, "profile_id": 103, "tier_code": "silver", "created_at": at("2026-10-15T12:00:00")},
        {"id": 3, "tenant_id": 1, "profile_id": 106, "tier_code": "silver", "created_at": at("2026-09-20T12:00:00")},
        {"id": 4, "tenant_id": 1, "profile_id": 101, "tier_code": "gold", "created_at": at("2026-10-02T12:00:00")},
        {"id": 5, "tenant_id": 2, "profile_id": 901, "tier_code": "silver", "created_at": at("2026-10-05T12:00:00")},
    ],
    "membership_periods": [
        {"id": 1, "tenant_id": 1, "profile_id": 105, "membership_id": 1, "plan_code": "PLUS", "kind": "join",
         "status": "active", "starts_on": dt.date(2026, 11, 5), "ends_on": dt.date(2027, 11, 5),
         "fee_fen": 29900, "refunded_fen": 0, "created_at": at("2026-11-05T12:00:00")},
    ],
    "stores": [
        {"id": 10, "tenant_id": 1, "code": "SH001", "name": "上海店", "city": "上海", "type": "mall", "status": "open"},
        {"id": 11, "tenant_id": 1, "code": "BJ001", "name": "北京店", "city": "北京", "type": "mall", "status": "open"},
        {"id": 90, "tenant_id": 2, "code": "SH001", "name": "别家", "city": "上海", "type": "mall", "status": "open"},
    ],
    "staff": [
        {"id": 20, "tenant_id": 1, "staff_no": "G001", "name": "王芳", "role": "guide", "store_id": 10},
        {"id": 21, "tenant_id": 1, "staff_no": "G002", "name": "李娜", "role": "guide", "store_id": 11},
    ],
    "customer_traits": [
        {"tenant_id": 1, "customer_id": 101, "computed_at": at("2026-11-01T03:00:00"), "recency_days": 10,
         "frequency": 4, "monetary_fen": 30000, "rfm_group": "important_value"},
        {"tenant_id": 1, "customer_id": 103, "computed_at": at("2026-11-01T03:00:00"), "recency_days": 20,
         "frequency": 1, "monetary_fen": 1000, "rfm_group": "important_value"},
        {"tenant_id": 1, "customer_id": 104, "computed_at": at("2026-11-01T03:00:00"), "recency_days": 300,
         "frequency": 2, "monetary_fen": 5001, "rfm_group": "general_retain"},
        {"tenant_id": 2, "customer_id": 901, "computed_at": at("2026-11-01T03:00:00"), "recency_days": 1,
         "frequency": 9, "monetary_fen": 999999, "rfm_group": "general_retain"},
    ],
}
