"""One customer's year at one merchant: purchases, refunds, sessions and identity fragments.

The purchase process is BG/NBD-like and runs on a demand-weighted clock (see behaviour.py). Around
it the customer leaves the fragmented traces a OneID engine has to stitch back together: anonymous
web devices that log in later (or never), a mini-program openid/unionid before the phone is
authorised, phone-only till receipts before joining, a WeCom external contact id, guest orders with
no identifier at all, and the cashier's placeholder phone. Every trace is emitted in time order, so
within one customer the messages of each file are chronological.
"""

from __future__ import annotations

import random
from bisect import bisect_left

from lianjie.demo.behaviour import PRICE_TIERS, MerchantModel, cumulative
from lianjie.demo.events import dumps, ids_fragment, yuan
from lianjie.demo.output import MerchantOutput, Person, new_token, new_uuid
from lianjie.demo.reference import CHANNELS, PLACEHOLDER_PHONE
from lianjie.demo.seasons import SECONDS_PER_DAY

GUEST_SHARE = 0.03
PLACEHOLDER_SHARE = 0.01
_DISCOUNT_PERCENT = (5, 10, 15, 20, 30)
_OFFLINE, _ONLINE, _MINIPROGRAM, _WECOM = CHANNELS


class Customer:
    """A customer record: one person at one merchant, simulated from acquisition to drop-out or window end."""

    def __init__(self, model: MerchantModel, out: MerchantOutput, rng: random.Random, person: Person) -> None:
        self.m = model
        self.out = out
        self.ev = out.events
        self.rng = rng
        self.person = person
        self.clock = 0
        self.pending_refunds: list[tuple[int, list[str]]] = []
        self._draw_tastes()
        self._draw_habits()
        self._draw_identity()

    def _draw_tastes(self) -> None:
        """Dirichlet-like category preferences, a price tier, and spend heterogeneity via basket size."""
        m, rng, b = self.m, self.rng, self.m.behaviour
        weights = [rng.gammavariate(b.preference_alpha, 1.0) for _ in range(m.top_count)]
        self.top = max(range(m.top_count), key=weights.__getitem__)
        self.pref_cum = cumulative(weights)
        self.tier = bisect_left(m.tier_cum, rng.random() * m.tier_cum[-1])
        basket = rng.gammavariate(3.0, 1 / 3)
        self.more_lines = 1.0 - 1.0 / (1.0 + (b.lines_mean - 1.0) * basket)
        self.rate = rng.gammavariate(b.rate_shape, b.rate_mean / b.rate_shape) / 365.0
        self.dropout = rng.betavariate(b.dropout_a, b.dropout_b)

    def _draw_habits(self) -> None:
        """Home store and guide (if a store is in the home city) and the channel habit group."""
        m, r = self.m, self.rng.random
        local = m.stores_by_city.get(self.person.city, ())
        self.local = local
        if local:
            self.home = local[int(r() * len(local))]
            guides = m.guides.get(self.home, ())
            self.guide = guides[int(r() * len(guides))] if guides else ""
            self.guide_store = self.home
            self.group = bisect_left(m.local_group_cum, r() * m.local_group_cum[-1])
        else:
            self.home, self.guide, self.guide_store, self.group = "", "", "", m.remote_group
        mix = m.group_mix[self.group]
        self.digital = mix[1] + mix[2]
        self.web_share = mix[1] / self.digital if self.digital else 0.0
        # Browsing without buying scales with how digital the customer's habits are.
        self.browse_share = min(1.0, 2.0 * self.digital) * m.behaviour.browse_share

    def _draw_identity(self) -> None:
        m, rng, r = self.m, self.rng, self.rng.random
        self.member_no = ""
        self.will_join = r() < m.behaviour.member_share
        self.join_after = int(rng.expovariate(0.7))
        self.orders = 0
        self.web_devices: list[str] = []
        self.web_linked: list[bool] = []
        self.web_contexts: list[str] = []
        self.second_device_at = int(r() * m.calendar.end_second) if r() < 0.25 else -1
        self.second_device_logs_in = r() < 0.5
        self.mp_anonymous = ""
        self.openid = ""
        self.unionid = ""
        self.mp_linked = False
        self.mp_context = ""
        self.mp_identify_context = ""
        self._mp_first = False
        self.external_userid = ""
        self._traits = ""

    # ---------------------------------------------------------------- the year
    def run(self) -> None:
        """Simulate the window, then write the customer's ground-truth row."""
        m, rng, r = self.m, self.rng, self.rng.random
        calendar = m.calendar
        days = calendar.days
        op_cum = m.op_cum[self.group]
        channel_cum = m.channel_cum[self.group]
        acquired, churned = "", ""
        if r() < m.behaviour.pre_window_share:
            acquired = calendar.date_iso(-1 - int(r() * 730))
            if self.will_join and r() < 0.8:
                self.member_no = self.out.member_no()
            u = rng.expovariate(self.rate)
            previous = 0
        else:
            u = r() * days
            acquired = calendar.date_iso(min(bisect_left(op_cum, u), days - 1))
            previous = -1
        while u < days:
            day = min(bisect_left(op_cum, u), days - 1)
            cum = channel_cum[day]
            channel = CHANNELS[bisect_left(cum, r() * cum[-1])]
            hours = m.hours[channel][m.peak[day]]
            hour = bisect_left(hours, r() * hours[-1])
            t = day * SECONDS_PER_DAY + hour * 3600 + int(r() * 3600)
            t = self._order(t, channel, previous)
            if t < 0:
                break
            previous = t
            if r() < self.dropout:
                churned = calendar.date_iso(t // SECONDS_PER_DAY)
                break
            u += rng.expovariate(self.rate)
        self._flush_refunds(calendar.end_second)
        self._write_truth(acquired, churned)

    def _order(self, t: int, channel: str, previous: int) -> int:
        """One sale with its sessions; returns its time, or -1 when it would fall after the window."""
        if self.rng.random() < self.browse_share:
            start = previous if previous >= 0 else max(0, t - 30 * SECONDS_PER_DAY)
            self._browse(start + int(self.rng.random() * max(0, t - start)))
        lines = self._basket(min(t // SECONDS_PER_DAY, self.m.calendar.days - 1))
        if not self.home and channel in (_OFFLINE, _WECOM):  # only reachable through a zero-weight draw
            channel = _MINIPROGRAM
        if channel == _OFFLINE:
            return self._offline(t, lines)
        if channel == _ONLINE:
            return self._web_order(t, lines)
        if channel == _MINIPROGRAM:
            return self._miniprogram_order(t, lines)
        return self._wecom_order(t, lines)

    def _start(self, t: int, lead: int) -> int:
        """The order time pushed past everything already emitted, or -1 if that leaves the window."""
        t = max(t, self.clock + lead)
        if t >= self.m.calendar.end_second:
            return -1
        self._flush_refunds(t)
        return t

    # ---------------------------------------------------------------- baskets and rows
    def _pick(self) -> int:
        """Preferred category first, then popularity within it (mostly within the customer's tier)."""
        m, r = self.m, self.rng.random
        top = bisect_left(self.pref_cum, r() * self.pref_cum[-1])
        table = m.pick_tier[top][self.tier] if r() < m.behaviour.tier_loyalty else m.pick_all[top]
        return table.pick(r())

    def _basket(self, day: int) -> list[tuple[int, int, int, int]]:
        """Lines as (product index, quantity, discount fen, amount fen)."""
        m, r = self.m, self.rng.random
        n = 1
        while n < 8 and r() < self.more_lines:
            n += 1
        chosen: dict[int, int] = {}
        quantity_cum = m.quantity_cum
        for _ in range(n):
            i = self._pick()
            chosen[i] = chosen.get(i, 0) + 1 + bisect_left(quantity_cum, r() * quantity_cum[-1])
        discount_share = 0.45 if m.promo[day] else 0.12
        lines = []
        prices = m.prices
        for i, q in chosen.items():
            gross = q * prices[i]
            discount = 0
            if r() < discount_share:
                discount = gross * _DISCOUNT_PERCENT[int(r() * 5)] // 1000 * 10
            lines.append((i, q, discount, gross - discount))
        return lines

    def _write_sale(self, t: int, channel: str, store: str, guide: str, member: str, phone: str,
                    openid: str, lines: list[tuple[int, int, int, int]], order_no: str) -> None:
        m, r, out = self.m, self.rng.random, self.out
        payment_cum = m.payment_cum[channel]
        pay = m.payment_methods[bisect_left(payment_cum, r() * payment_cum[-1])]
        unionid = self.unionid if channel in (_MINIPROGRAM, _WECOM) else ""
        who = f"{channel},{store},{guide},{member},{phone},{unionid},{openid},"
        head = f"{order_no},sale,,{m.calendar.local_iso(t)},{who}"
        skus, prices, add = m.skus, m.prices, out.orders.lines.append
        for n, (i, q, discount, amount) in enumerate(lines, 1):
            add(f"{head}{n},{skus[i]},{q},{prices[i]},{discount},{amount},{pay}\n")
        out.sales += 1
        self.orders += 1
        if r() < m.behaviour.refund_share:
            self._plan_refund(t, channel, who, order_no, lines, pay)

    def _plan_refund(self, t: int, channel: str, who: str, order_no: str,
                     lines: list[tuple[int, int, int, int]], pay: str) -> None:
        """A later refund of the whole order (60%) or of part of some lines, never more than was sold."""
        m, r = self.m, self.rng.random
        delay = 3600 + int(r() * 14 * SECONDS_PER_DAY) if channel == _OFFLINE else \
            2 * SECONDS_PER_DAY + int(r() * 18 * SECONDS_PER_DAY)
        when = t + delay
        if when >= m.calendar.end_second:
            return
        full = r() < 0.6
        refunded = [(i, q, d) for i, q, d, _ in lines if full or r() < 0.5] or [lines[0][:3]]
        refund_no = self.out.order_no(when // SECONDS_PER_DAY, refund=True)
        head = f"{refund_no},refund,{order_no},{m.calendar.local_iso(when)},{who}"
        rows = []
        for n, (i, q, discount) in enumerate(refunded, 1):
            back = q if full else 1 + int(r() * q)
            back_discount = discount * back // q
            amount = back * m.prices[i] - back_discount
            rows.append(f"{head}{n},{m.skus[i]},{-back},{m.prices[i]},{-back_discount},{-amount},{pay}\n")
        self.pending_refunds.append((when, rows))

    def _flush_refunds(self, until: int) -> None:
        if not self.pending_refunds:
            return
        keep = []
        for when, rows in self.pending_refunds:
            if when <= until:
                self.out.orders.lines.extend(rows)
                self.out.refunds += 1
            else:
                keep.append((when, rows))
        self.pending_refunds = keep

    def _write_truth(self, acquired: str, churned: str) -> None:
        p = self.person
        anonymous = ";".join([*self.web_devices, *filter(None, (self.mp_anonymous, self.external_userid))])
        self.out.truth.lines.append(
            f"{p.person_id},{self.member_no},{p.phone},{self.unionid},{self.openid},{anonymous},{p.name},"
            f"{'female' if p.female else 'male'},{p.birthday},{p.city},{acquired},{churned},"
            f"{self.m.world.top_codes[self.top]},{PRICE_TIERS[self.tier]}\n"
        )
        self.out.customers += 1

    # ---------------------------------------------------------------- identity
    def _join(self) -> None:
        self.member_no = self.out.member_no()
        self._traits = ""

    def _due_to_join(self) -> bool:
        return not self.member_no and self.will_join and self.orders >= self.join_after

    def traits(self) -> str:
        """Profile traits as JSON, rebuilt only when membership changes."""
        if not self._traits:
            p = self.person
            traits = {"name": p.name, "phone": p.phone, "gender": "female" if p.female else "male",
                      "birthday": p.birthday, "city": p.city}
            if self.member_no:
                traits["member_no"] = self.member_no
            self._traits = dumps(traits)
        return self._traits

    def _wechat(self) -> None:
        """The person's unionid for this company, made at the first WeChat touch (mini-program or WeCom)."""
        if not self.unionid:
            self.unionid = "o" + self.m.code + new_token(self.rng, 25)

    # ---------------------------------------------------------------- channels
    def _offline(self, t: int, lines: list[tuple[int, int, int, int]]) -> int:
        """A till sale: maybe a member scan at the door, maybe joining at the till, maybe a WeCom add."""
        m, r, ev = self.m, self.rng.random, self.ev
        store = self._visit_store()
        guides = m.guides.get(store, ())
        guide = ""
        if guides and r() < m.behaviour.guide_share:
            own = store == self.guide_store and self.guide and r() < 0.8
            guide = self.guide if own else guides[int(r() * len(guides))]
        visited = bool(self.member_no) and r() < 0.3
        joins = self._due_to_join()
        lead = 120 + int(r() * 900) if visited else 30 if joins else 0
        t = self._start(t, lead)
        if t < 0:
            return -1
        context = m.pos_contexts[store]
        if visited:
            ev.track("pos", t - lead, ids_fragment(self.member_no, None), "Store Visited",
                     f'{{"store_code":"{store}"}}', context)
        if joins:
            self._join()
            ev.identify("pos", t - 30, ids_fragment(self.member_no, None), self.traits(), context)
        self.clock = t
        member, phone = self.member_no, self.person.phone
        draw = r()
        if draw < GUEST_SHARE:
            member, phone = "", ""
        elif draw < GUEST_SHARE + PLACEHOLDER_SHARE:
            member, phone = "", PLACEHOLDER_PHONE
        order_no = self.out.order_no(t // SECONDS_PER_DAY)
        self._write_sale(t, _OFFLINE, store, guide, member, phone, "", lines, order_no)
        if guide and not self.external_userid and r() < m.behaviour.contact_share:
            self._contact(t + 60 + int(r() * 600), guide, store)
        return t

    def _visit_store(self) -> str:
        """Mostly the home store, sometimes another one in town, rarely one in another city."""
        r = self.rng.random
        draw = r()
        if draw < 0.85 or (draw < 0.97 and len(self.local) == 1):
            return self.home
        if draw < 0.97:
            return self.local[int(r() * len(self.local))]
        stores = self.m.all_stores
        return stores[int(r() * len(stores))]

    def _contact(self, t: int, guide: str, store: str) -> None:
        """The customer adds a guide on WeCom (the store's channel QR code); the guide may note the phone."""
        if t >= self.m.calendar.end_second:
            return
        self._wechat()
        self.external_userid = "wm" + new_token(self.rng, 30)
        self.guide, self.guide_store = guide, store
        context = self.m.wecom_contact_context(self.external_userid, self.unionid)
        ids = ids_fragment(None, self.external_userid)
        properties = f'{{"staff_no":"{guide}","store_code":"{store}","state":"store:{store}"}}'
        self.ev.track("wecom", t, ids, "Contact Added", properties, context)
        self.clock = t
        if self.rng.random() < 0.4:
            self.clock = t + 30
            traits = dumps({"name": self.person.name, "phone": self.person.phone})
            self.ev.identify("wecom", t + 30, ids, traits, context)

    def _wecom_order(self, t: int, lines: list[tuple[int, int, int, int]]) -> int:
        """An order placed in the guide's WeCom chat and paid by WeChat Pay."""
        r = self.rng.random
        lead = 0 if self.external_userid else 600 + int(r() * 3000)
        t = self._start(t, lead)
        if t < 0:
            return -1
        if not self.external_userid:
            self._contact(t - lead, self.guide or self.m.guides[self.home][0], self.home)
        self.clock = t
        order_no = self.out.order_no(t // SECONDS_PER_DAY)
        self._write_sale(t, _WECOM, self.guide_store, self.guide, self.member_no,
                         self.person.phone if self.member_no else "", self.openid, lines, order_no)
        return t

    def _web_device(self, t: int, ordering: bool) -> int:
        """Index of the web device used at ``t``; a second device appears later for some customers."""
        if not self.web_devices:
            self._new_device()
        if 0 <= self.second_device_at <= t:
            if len(self.web_devices) == 1:
                self._new_device()
            if self.rng.random() < 0.5 and (self.second_device_logs_in or not ordering):
                return 1
        return 0

    def _new_device(self) -> None:
        self.web_devices.append(new_uuid(self.rng))
        self.web_linked.append(False)
        contexts = self.m.web_contexts
        self.web_contexts.append(contexts[int(self.rng.random() * len(contexts))])

    def _web_ids(self, device: int) -> str:
        return ids_fragment(self.member_no if self.web_linked[device] else None, self.web_devices[device])

    def _web_login(self, t: int, device: int) -> int:
        """Sign up (alias + identify) or log in (identify), linking the device to the member."""
        context, anonymous = self.web_contexts[device], self.web_devices[device]
        if not self.member_no:
            self._join()
            self.ev.alias("web", t, self.member_no, anonymous, context)
            t += 2
        self.web_linked[device] = True
        self.ev.identify("web", t, self._web_ids(device), self.traits(), context)
        return t

    def _products_viewed(self, source: str, t: int, step: int, ids: str, context: str,
                         products: list[int], search: bool) -> int:
        """Optional search, then product views one ``step`` apart; returns the next free slot."""
        track, product_json = self.ev.track, self.m.product_json
        if search:
            queries = self.m.search_queries
            query = queries[int(self.rng.random() * len(queries))]
            track(source, t, ids, "Products Searched", query, context)
            t += step
        for i in products:
            track(source, t, ids, "Product Viewed", f'{{{product_json[i]},"currency":"CNY"}}', context)
            t += step
        return t

    def _checkout(self, source: str, t: int, step: int, ids: str, context: str, order_no: str,
                  lines: list[tuple[int, int, int, int]], reorder: bool = False) -> None:
        """Product Added per line (or one Cart Viewed for a reorder), Checkout Started, and Order
        Completed one step later, at the order time."""
        track, product_json = self.ev.track, self.m.product_json
        products = ",".join(f'{{{product_json[i]},"quantity":{q}}}' for i, q, _, _ in lines)
        if reorder:
            track(source, t, ids, "Cart Viewed", f'{{"products":[{products}],"currency":"CNY"}}', context)
            t += step
        else:
            for i, q, _, _ in lines:
                added = f'{{{product_json[i]},"quantity":{q},"currency":"CNY"}}'
                track(source, t, ids, "Product Added", added, context)
                t += step
        total = sum(line[3] for line in lines)
        discount = sum(line[2] for line in lines)
        track(source, t, ids, "Checkout Started",
              f'{{"order_id":"{order_no}","value":{yuan(total)},"currency":"CNY"}}', context)
        track(source, t + step, ids, "Order Completed",
              f'{{"order_id":"{order_no}","total":{yuan(total)},"revenue":{yuan(total)},'
              f'"discount":{yuan(discount)},"currency":"CNY","products":[{products}]}}', context)

    def _web_order(self, t: int, lines: list[tuple[int, int, int, int]]) -> int:
        """Browse, add to cart, log in (or sign up) and pay on the web store; ordering needs an account."""
        r = self.rng.random
        device = self._web_device(t, ordering=True)
        viewed = [line[0] for line in lines[: self.m.behaviour.viewed_lines]]
        if r() < 0.25:
            viewed.append(self._pick())
        search = r() < 0.2
        step = 10 + int(r() * 50)
        login = not self.web_linked[device]
        lead = step * (1 + search + len(viewed) + login + len(lines) + 1)
        t = self._start(t, lead)
        if t < 0:
            return -1
        context = self.web_contexts[device]
        s = t - lead
        self.ev.page("web", s, self._web_ids(device), self.m.page_names["首页"], self.m.page_props["首页"],
                     context)
        track_context = self.m.web_track_context
        s = self._products_viewed("web", s + step, step, self._web_ids(device), track_context, viewed, search)
        if login:
            self._web_login(s, device)
            s += step
        order_no = self.out.order_no(t // SECONDS_PER_DAY)
        self._checkout("web", s, step, self._web_ids(device), track_context, order_no, lines)
        self.clock = t
        self._write_sale(t, _ONLINE, "ONLINE", "", self.member_no, self.person.phone, "", lines, order_no)
        return t

    def _miniprogram_ready(self) -> None:
        if not self.mp_anonymous:
            self._wechat()
            self.mp_anonymous = new_uuid(self.rng)
            self.openid = "o" + self.m.world.miniprogram_appid[2:7] + new_token(self.rng, 22)
            model = int(self.rng.random() * len(self.m.phone_models))
            self.mp_identify_context, self.mp_context = self.m.miniprogram_contexts(
                self.mp_anonymous, model, self.openid, self.unionid)
            self._mp_first = True

    def _mp_ids(self) -> str:
        return ids_fragment(self.member_no if self.mp_linked else None, self.mp_anonymous)

    def _mp_open(self, t: int) -> None:
        """First open registers the WeChat identity (openid + unionid), still without a phone."""
        if self._mp_first:
            self._mp_first = False
            traits = dumps({"wechat_openid": self.openid, "wechat_unionid": self.unionid,
                            "wechat_appid": self.m.world.miniprogram_appid})
            self.ev.identify("miniprogram", t, self._mp_ids(), traits, self.mp_identify_context)

    def _mp_authorise(self, t: int) -> None:
        """The customer authorises the phone number: now a member, and the openid is linked."""
        if not self.member_no:
            self._join()
        self.mp_linked = True
        self.ev.identify("miniprogram", t, self._mp_ids(), self.traits(), self.mp_identify_context)

    def _miniprogram_order(self, t: int, lines: list[tuple[int, int, int, int]]) -> int:
        """A mini-program purchase; before the phone is authorised the order carries only WeChat ids."""
        r = self.rng.random
        self._miniprogram_ready()
        authorise = not self.mp_linked and (bool(self.member_no) or self._due_to_join())
        browsing = self._mp_first or r() >= self.m.behaviour.reorder_share
        viewed = [line[0] for line in lines[: self.m.behaviour.viewed_lines]] if browsing else []
        search = browsing and r() < 0.1
        step = 8 + int(r() * 40)
        first = self._mp_first
        cart = len(lines) if browsing else 1
        lead = step * (first + browsing + search + len(viewed) + authorise + cart + 1)
        t = self._start(t, lead)
        if t < 0:
            return -1
        s = t - lead
        if first:
            self._mp_open(s)
            s += step
        if browsing:
            self.ev.screen("miniprogram", s, self._mp_ids(), self.m.page_names["首页"], self.mp_context)
            s += step
        s = self._products_viewed("miniprogram", s, step, self._mp_ids(), self.mp_context, viewed, search)
        if authorise:
            self._mp_authorise(s)
            s += step
        order_no = self.out.order_no(t // SECONDS_PER_DAY)
        self._checkout("miniprogram", s, step, self._mp_ids(), self.mp_context, order_no, lines, not browsing)
        self.clock = t
        linked = self.mp_linked
        store = self.home if self.m.behaviour.local_delivery and self.home else "ONLINE"
        self._write_sale(t, _MINIPROGRAM, store, "", self.member_no if linked else "",
                         self.person.phone if linked else "", self.openid, lines, order_no)
        return t

    def _browse(self, t: int) -> None:
        """A session without a purchase: views and maybe an abandoned cart; anonymous devices stay so."""
        r = self.rng.random
        t = max(t, self.clock)
        if t + 600 >= self.m.calendar.end_second:
            return
        step = 15 + int(r() * 60)
        viewed = [self._pick() for _ in range(1 + int(r() * 2.5))]
        if r() < self.web_share:
            device = self._web_device(t, ordering=False)
            context = self.web_contexts[device]
            ids = self._web_ids(device)
            self.ev.page("web", t, ids, self.m.page_names["分类"], self.m.page_props["分类"], context)
            t = self._products_viewed("web", t + step, step, ids, self.m.web_track_context, viewed, r() < 0.2)
            may_log_in = device == 0 or self.second_device_logs_in
            if self.member_no and not self.web_linked[device] and may_log_in and r() < 0.3:
                t = self._web_login(t, device)
        else:
            self._miniprogram_ready()
            if self._mp_first:
                self._mp_open(t)
                t += step
            self.ev.screen("miniprogram", t, self._mp_ids(), self.m.page_names["分类"], self.mp_context)
            t = self._products_viewed("miniprogram", t + step, step, self._mp_ids(), self.mp_context, viewed,
                                      r() < 0.1)
            if self.member_no and not self.mp_linked and r() < 0.3:
                self._mp_authorise(t)
        self.clock = t
