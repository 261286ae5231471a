"""One part of the world: a fixed slice of people, simulated at every merchant they shop at.

A part is the unit of parallelism and of determinism. Its random streams are seeded only from
(seed, merchant, part), so a part's files are the same whichever process runs it and however many
processes there are; the number of parts is fixed per scale.
"""

from __future__ import annotations

import datetime
import random
from bisect import bisect_left
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

from lianjie.demo import reference as ref
from lianjie.demo.behaviour import MerchantModel, cumulative
from lianjie.demo.customer import Customer
from lianjie.demo.events import Buffer, EventSink, ids_fragment
from lianjie.demo.output import ORDER_COLUMNS, MerchantOutput, Person, new_uuid
from lianjie.demo.seasons import Calendar
from lianjie.demo.world import MerchantWorld, build_world, person_name

#: Who shops where: (merchant indices, share of people, share of women). The last row is the coalition
#: overlap: the same person (same phone) is a customer of both the department store and the sports brand.
MEMBERSHIPS: tuple[tuple[tuple[int, ...], float, float], ...] = (
    ((2,), 0.42, 0.6),
    ((0,), 0.25, 0.7),
    ((1,), 0.20, 0.45),
    ((0, 1), 0.13, 0.6),
)
#: Customer records per person, used to turn a customer target into a number of people.
RECORDS_PER_PERSON = sum(len(m) * share for m, share, _ in MEMBERSHIPS)
#: Share of department-store and sportswear customers living in a city with one of its stores.
LOCAL_SHARE = 0.75
#: Anonymous-only web visitors per customer record (never identified, not in the truth files).
VISITOR_SHARE = (0.15, 0.15, 0.03)

ProgressCallback = Callable[[int], None]


@dataclass(frozen=True)
class PartTask:
    out_dir: str
    seed: int
    part: int
    first_person: int
    last_person: int
    store_counts: tuple[int, ...]
    skus: int
    start: datetime.date
    end: datetime.date


class PartCounts(NamedTuple):
    customers: int
    orders: int
    order_lines: int
    refunds: int
    events: int


def orders_path(slug: str, part: int) -> str:
    return f"orders/{slug}-{part + 1:02d}.csv"


def events_path(slug: str, source: str, part: int) -> str:
    return f"events/{slug}/{source}-{part + 1:02d}.ndjson"


def truth_part_path(slug: str, part: int) -> str:
    """A part's truth rows before the parent concatenates them into ``truth/<slug>-customers.csv``."""
    return f"truth/.{slug}-customers-{part + 1:02d}.csv.part"


class PhonePlan(NamedTuple):
    """An affine permutation of person indices onto eight-digit suffixes: unique phones with no lookup set.

    ``multiplier`` is coprime with 10**8, so ``index -> (multiplier * index + offset) % 10**8`` is a
    bijection and no two people share a suffix, whatever prefix they get.
    """

    multiplier: int
    offset: int
    prefix_offset: int

    @classmethod
    def for_seed(cls, seed: int) -> PhonePlan:
        rng = random.Random(f"{seed}:phones")
        multiplier = rng.randrange(10**7, 10**8) | 1
        while multiplier % 5 == 0:
            multiplier += 2
        return cls(multiplier, rng.randrange(10**8), rng.randrange(len(ref.PHONE_PREFIXES)))

    def phone(self, index: int) -> str:
        suffix = (self.multiplier * index + self.offset) % 10**8
        prefixes = ref.PHONE_PREFIXES
        phone = f"{prefixes[(index * 7 + self.prefix_offset) % len(prefixes)]}{suffix:08d}"
        if phone == ref.PLACEHOLDER_PHONE:  # the only person with this suffix moves to another prefix
            phone = f"199{suffix:08d}"
        return phone


class _People:
    """Draws people (name, sex, birthday, city, merchants) from the part's own stream."""

    def __init__(self, seed: int, part: int, worlds: tuple[MerchantWorld, ...], calendar: Calendar) -> None:
        self.rng = random.Random(f"{seed}:people:{part}")
        self.phones = PhonePlan.for_seed(seed)
        self.membership_cum = cumulative([share for _, share, _ in MEMBERSHIPS])
        self.city_names = [c.name for c in ref.CITIES]
        self.city_cum = cumulative([c.weight for c in ref.CITIES])
        # One entry per store, so a city with more stores is home to more of the merchant's customers.
        self.store_cities = [[s.city for s in world.physical_stores] for world in worlds]
        self.latest_birth = datetime.date(calendar.end.year - 18, 1, 1).toordinal()

    def draw(self, index: int) -> tuple[Person, tuple[int, ...]]:
        r = self.rng.random
        cum = self.membership_cum
        merchants, _, female_share = MEMBERSHIPS[bisect_left(cum, r() * cum[-1])]
        female = r() < female_share
        city = self._city(merchants)
        age_days = int(self.rng.triangular(0, 52, 14) * 365.25 + r() * 365)
        birthday = datetime.date.fromordinal(self.latest_birth - age_days).isoformat()
        name = person_name(self.rng, female)
        person = Person(f"P{index + 1:08d}", name, female, birthday, city, self.phones.phone(index))
        return person, merchants

    def _city(self, merchants: tuple[int, ...]) -> str:
        """Mostly near one of the merchants' stores (always, for the community supermarket)."""
        r = self.rng.random
        local = [city for m in merchants for city in self.store_cities[m]]
        if local and (merchants == (2,) or r() < LOCAL_SHARE):
            return local[int(r() * len(local))]
        return self.city_names[bisect_left(self.city_cum, r() * self.city_cum[-1])]


def run_part(task: PartTask, progress: ProgressCallback | None = None) -> tuple[PartCounts, ...]:
    """Simulate the part's people and write its order, event and truth files; counts per merchant."""
    calendar = Calendar(task.start, task.end)
    worlds = build_world(task.seed, task.store_counts, task.skus, task.start)
    out_dir = Path(task.out_dir)
    outputs = [_open_output(MerchantModel(world, calendar), out_dir, task) for world in worlds]
    rngs = [random.Random(f"{task.seed}:{world.slug}:{task.part}") for world in worlds]
    people = _People(task.seed, task.part, worlds, calendar)
    pending = 0
    for index in range(task.first_person, task.last_person):
        person, merchants = people.draw(index)
        for m in merchants:
            Customer(outputs[m].model, outputs[m], rngs[m], person).run()
            outputs[m].flush_if_full()
        pending += len(merchants)
        if progress is not None and pending >= 500:
            progress(pending)
            pending = 0
    if progress is not None and pending:
        progress(pending)
    for m, out in enumerate(outputs):
        for _ in range(round(out.customers * VISITOR_SHARE[m])):
            _visitor(out, rngs[m])
            out.flush_if_full()
    counts = tuple(
        PartCounts(out.customers, out.sales, out.orders.count, out.refunds, out.events.count)
        for out in outputs
    )
    for out in outputs:
        out.close()
    return counts


def _open_output(model: MerchantModel, out_dir: Path, task: PartTask) -> MerchantOutput:
    slug = model.world.slug
    orders = Buffer(out_dir / orders_path(slug, task.part), ",".join(ORDER_COLUMNS) + "\n")
    truth = Buffer(out_dir / truth_part_path(slug, task.part))
    paths = {source: out_dir / events_path(slug, source, task.part) for source in ref.SOURCES}
    events = EventSink(model.calendar, paths, task.seed, model.world.index, task.part)
    return MerchantOutput(model, orders, truth, events, task.part)


def _visitor(out: MerchantOutput, rng: random.Random) -> None:
    """An anonymous web visitor who never logs in: one to three sessions of browsing."""
    m, r = out.model, rng.random
    device = new_uuid(rng)
    ids = ids_fragment(None, device)
    context = m.web_contexts[int(r() * len(m.web_contexts))]
    sessions = sorted(int(r() * (m.calendar.end_second - 3600)) for _ in range(1 + int(r() * 3)))
    clock = 0
    for t in sessions:
        t = max(t, clock)
        out.events.page("web", t, ids, m.page_names["首页"], m.page_props["首页"], context)
        for _ in range(1 + int(r() * 2)):
            t += 20 + int(r() * 90)
            table = m.pick_all[int(r() * m.top_count)]
            viewed = f'{{{m.product_json[table.pick(r())]},"currency":"CNY"}}'
            out.events.track("web", t, ids, "Product Viewed", viewed, context)
        clock = t + 1
