"""Where a part's rows go: the per-merchant output files, their column lists and id helpers."""

from __future__ import annotations

import base64
import random
import uuid
from typing import NamedTuple

from lianjie.demo.behaviour import MerchantModel
from lianjie.demo.events import Buffer, EventSink

ORDER_COLUMNS = (
    "order_no", "order_type", "original_order_no", "order_time", "channel", "store_code", "guide_staff_no",
    "member_no", "phone", "wechat_unionid", "wechat_openid", "line_no", "sku", "quantity", "unit_price_fen",
    "discount_fen", "line_amount_fen", "payment_method",
)
TRUTH_COLUMNS = (
    "person_id", "member_no", "phone", "wechat_unionid", "wechat_openid", "anonymous_ids", "name", "gender",
    "birthday", "city", "acquired_on", "churned_on", "top_category", "price_tier",
)


class Person(NamedTuple):
    """Who someone is, identical at every merchant they buy from (coalition members share it)."""

    person_id: str
    name: str
    female: bool
    birthday: str
    city: str
    phone: str


class MerchantOutput:
    """The files and counters of one merchant in one part, and its order/member number sequences."""

    def __init__(self, model: MerchantModel, orders: Buffer, truth: Buffer, events: EventSink,
                 part: int) -> None:
        self.model = model
        self.orders = orders
        self.truth = truth
        self.events = events
        self._part = f"{part + 1:02d}"
        self._orders_issued = 0
        self._members_issued = 0
        self.sales = 0
        self.refunds = 0
        self.customers = 0

    def order_no(self, day: int, refund: bool = False) -> str:
        """Unique per merchant: the part number and a per-part sequence make it so."""
        self._orders_issued += 1
        kind = "R" if refund else ""
        return f"{self.model.code}{kind}{self.model.compact_date[day]}{self._part}{self._orders_issued:08d}"

    def member_no(self) -> str:
        self._members_issued += 1
        return f"{self.model.code}{self._part}{self._members_issued:07d}"

    def flush_if_full(self) -> None:
        self.orders.flush_if_full()
        self.truth.flush_if_full()
        self.events.flush_if_full()

    def close(self) -> None:
        self.orders.close()
        self.truth.close()
        self.events.close()


def new_uuid(rng: random.Random) -> str:
    """A UUID4-shaped id (device ids) from the caller's stream, so it is reproducible."""
    return str(uuid.UUID(bytes=rng.randbytes(16), version=4))


def new_token(rng: random.Random, length: int) -> str:
    """A URL-safe base64 token (WeChat and WeCom ids look like this) from the caller's stream."""
    return base64.urlsafe_b64encode(rng.randbytes((length * 3 + 3) // 4)).decode()[:length]
