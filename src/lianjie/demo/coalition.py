"""Load the demo world's coalition points programme through the coalition's public services.

The world names a coalition and its two member merchants (``world.json`` ``coalitions``). Loading it
gives it what a live one has, decided from the world's files alone so a second load repeats every
step exactly (each is idempotent: the same coalition and terms, the same links, the same
idempotency keys), and changes nothing:

- an **operator**: a merchant of its own that runs the programme (as CCC runs T-Point for its
  partners), with an admin key in ``demo-keys.json``; it sets the terms and closes months;
- the **members' terms**: the first member postpaid, the second prepaid, with a block of points
  bought at the start of the earning window, large enough for what it will award;
- **cards**: the members of the member merchants who agreed at the till (a fixed share of people,
  chosen by a hash of their ``person_id``, so the same people at both merchants), consent recorded
  with the link; a person who is a member of both has one card linked at both;
- **points**: the member sales of the world's last ``EARN_MONTHS`` months earn 1 point per yuan paid
  at the merchant where they happen, and a card holding ``REDEEM_AT`` points or more pays
  ``REDEEM_POINTS`` of them at its next sale, wherever it is: so those months' statements have
  points issued, redeemed and bought, and money owed and due between the partners.
"""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
from collections import defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy.orm import Session, sessionmaker

from lianjie.crypto import get_cipher
from lianjie.db import transaction
from lianjie.identity.service import find_by_identifiers
from lianjie.loyalty.coalition import cards, points, setup
from lianjie.loyalty.coalition.models import Funding
from lianjie.loyalty.coalition.schemas import CoalitionIn, LinkIn, MemberIn
from lianjie.tenants import audit, keys, service
from lianjie.tenants.models import ApiKeyKind
from lianjie.tenants.schemas import ApiKeyCreate, MerchantCreate

CONSENT_PERCENT = 40
CONSENT_SOURCE = "demo: coalition card sign-up at the till"
EARN_MONTHS = 3
REDEEM_AT, REDEEM_POINTS = 2000, 1000
BLOCK_STEP = 10_000
BATCH = 500
ACTOR = "cli:demo-load"
# (issue price, redemption value, funding) of the first and the second member, fen per point.
TERMS = (("10", "8", Funding.POSTPAID), ("12", "9.5", Funding.PREPAID))


@dataclass
class CoalitionLoad:
    code: str
    operator: str
    operator_id: int
    created: bool
    timezone: str
    keys: dict[str, str] = field(default_factory=dict)
    members: list[str] = field(default_factory=list)
    cards: int = 0
    links: int = 0
    earned: int = 0
    redeemed: int = 0
    bought: int = 0
    operations: int = 0
    seconds: float = 0.0

    def summary(self) -> dict[str, Any]:
        return {"code": self.code, "operator": self.operator, "created": self.created, "members": self.members,
                "cards": self.cards, "links": self.links, "points_earned": self.earned,
                "points_redeemed": self.redeemed, "points_bought": self.bought, "operations": self.operations,
                "seconds": self.seconds}


@dataclass(frozen=True)
class Sale:
    at: dt.datetime
    slug: str
    order_no: str
    person: str
    points: int


def consents(person_id: str) -> bool:
    """Whether this person agreed to the coalition card (the same answer at every merchant)."""
    return int(hashlib.sha256(f"coalition:{person_id}".encode()).hexdigest(), 16) % 100 < CONSENT_PERCENT


def code_of(spec: dict[str, Any]) -> str:
    """Coalition codes are lowercase (worlds generated before said ``YUNYU-POINTS``)."""
    return str(spec["code"]).lower()


def operator_slug(spec: dict[str, Any]) -> str:
    return f"{code_of(spec).removesuffix('-points')}-alliance"


def load_coalition(factory: sessionmaker[Session], world_dir: Path, world: dict[str, Any], spec: dict[str, Any],
                   tenant_ids: dict[str, int], advance: Callable[[int], None] | None = None) -> CoalitionLoad:
    """The coalition ``spec`` of the world, its operator, terms, cards and points (safe to repeat)."""
    members = list(spec["members"])
    with _unit(factory) as session:
        load = _setup(session, spec, members, world["merchants"][0]["timezone"])
    people = _consenting_members(world_dir, world, members)
    linked = _link_cards(factory, load, people, tenant_ids)
    sales = _sales(world_dir, world, members, people, linked)
    _buy_blocks(factory, load, members, tenant_ids, sales, world)
    _earn_and_redeem(factory, load, tenant_ids, sales, linked, advance)
    return load


@contextmanager
def _unit(factory: sessionmaker[Session]) -> Iterator[Session]:
    """One of the load's transactions; its writes are the demo load's in the audit log."""
    with transaction(factory, write=True) as session:
        audit.act_as(session, ACTOR)
        yield session


def _setup(session: Session, spec: dict[str, Any], members: list[str], timezone: str) -> CoalitionLoad:
    slug = operator_slug(spec)
    operator, created = service.create_merchant(session, MerchantCreate(
        slug=slug, name=f"{spec['name']}运营", timezone=timezone))
    load = CoalitionLoad(code=code_of(spec), operator=slug, operator_id=operator.id, created=created,
                         timezone=timezone, members=members)
    if created:
        _, secret = keys.create_api_key(session, operator.id, ApiKeyCreate(
            kind=ApiKeyKind.ADMIN, name="demo admin", scopes=[keys.ALL]))
        load.keys = {"admin": secret}
    setup.create(session, operator.id, CoalitionIn(code=load.code, name=spec["name"], timezone=timezone))
    acc = setup.access(session, load.code, operator.id)
    for member, (issue, redeem, funding) in zip(members, TERMS, strict=False):
        setup.put_member(session, acc, member, MemberIn(issue_price_fen_per_point=Decimal(issue),
                                                        redemption_value_fen_per_point=Decimal(redeem),
                                                        funding=funding))
    return load


def _consenting_members(world_dir: Path, world: dict[str, Any], members: list[str]) -> dict[str, dict[str, str]]:
    """person_id -> {merchant slug: member_no} of the people who agreed, from the truth files."""
    people: dict[str, dict[str, str]] = defaultdict(dict)
    for slug in members:
        with (world_dir / world["files"]["truth"][slug]).open(encoding="utf-8") as handle:
            for row in csv.DictReader(handle):
                if row["member_no"] and consents(row["person_id"]):
                    people[row["person_id"]][slug] = row["member_no"]
    return dict(sorted(people.items()))


def _link_cards(factory: sessionmaker[Session], load: CoalitionLoad, people: dict[str, dict[str, str]],
                tenant_ids: dict[str, int]) -> dict[tuple[str, str], str]:
    """Link each person's member profile at each member merchant to one card; (person, slug) -> card_no."""
    cipher = get_cipher()
    linked: dict[tuple[str, str], str] = {}
    persons = list(people.items())
    for start in range(0, len(persons), BATCH):
        with _unit(factory) as session:
            accesses = {slug: setup.access(session, load.code, tenant_ids[slug]) for slug in load.members}
            for person, member_nos in persons[start:start + BATCH]:
                card_no: str | None = None
                for slug in load.members:
                    if slug not in member_nos:
                        continue
                    found = find_by_identifiers(session, cipher, tenant_ids[slug], {"member_no": member_nos[slug]})
                    if len(found) != 1:
                        continue  # never seen by this merchant's OneID
                    card_no, _, _ = cards.link(session, accesses[slug], LinkIn(
                        profile_id=found.pop(), card_no=card_no, consent_source=CONSENT_SOURCE))
                    linked[(person, slug)] = card_no
                    load.links += 1
    load.cards = len(set(linked.values()))
    return linked


def _window_start(world: dict[str, Any]) -> dt.date:
    end = dt.date.fromisoformat(world["end"])
    month = end.year * 12 + end.month - 1 - (EARN_MONTHS - 1)
    return dt.date(month // 12, month % 12 + 1, 1)


def _sales(world_dir: Path, world: dict[str, Any], members: list[str], people: dict[str, dict[str, str]],
           linked: dict[tuple[str, str], str]) -> list[Sale]:
    """The card holders' sales of the earning window at the member merchants, in time order."""
    start = _window_start(world)
    sales = []
    for slug in members:
        person_of = {nos[slug]: person for person, nos in people.items() if (person, slug) in linked}
        paid: dict[str, int] = defaultdict(int)
        first: dict[str, tuple[dt.datetime, str]] = {}
        for rel in world["files"]["orders"][slug]:
            with (world_dir / rel).open(encoding="utf-8") as handle:
                for row in csv.DictReader(handle):
                    if row["order_type"] != "sale" or row["member_no"] not in person_of:
                        continue
                    at = dt.datetime.fromisoformat(row["order_time"])
                    if at.date() < start:
                        continue
                    paid[row["order_no"]] += int(row["line_amount_fen"])
                    first.setdefault(row["order_no"], (at, person_of[row["member_no"]]))
        sales += [Sale(at, slug, order_no, person, paid[order_no] // 100)
                  for order_no, (at, person) in first.items() if paid[order_no] >= 100]
    return sorted(sales, key=lambda s: (s.at, s.slug, s.order_no))


def _buy_blocks(factory: sessionmaker[Session], load: CoalitionLoad, members: list[str], tenant_ids: dict[str, int],
                sales: list[Sale], world: dict[str, Any]) -> None:
    """A prepaid member buys, at the window's start, a block rounded up to cover what it will award."""
    bought_at = dt.datetime.combine(_window_start(world), dt.time(9), ZoneInfo(load.timezone))
    for slug, (_, _, funding) in zip(members, TERMS, strict=False):
        if funding is not Funding.PREPAID:
            continue
        awarded = sum(s.points for s in sales if s.slug == slug)
        block = -(-max(awarded, 1) // BLOCK_STEP) * BLOCK_STEP
        with _unit(factory) as session:
            points.purchase(session, setup.access(session, load.code, tenant_ids[slug]), "demo:block", block,
                            now=bought_at)
        load.bought += block
        load.operations += 1


def _earn_and_redeem(factory: sessionmaker[Session], load: CoalitionLoad, tenant_ids: dict[str, int],
                     sales: list[Sale], linked: dict[tuple[str, str], str],
                     advance: Callable[[int], None] | None) -> None:
    """Each sale earns; a card at ``REDEEM_AT`` or more first pays ``REDEEM_POINTS`` at that sale. The
    balances are followed here, not read back, so a second load makes the same calls (all replays)."""
    balance: dict[str, int] = defaultdict(int)
    for start in range(0, len(sales), BATCH):
        chunk = sales[start:start + BATCH]
        with _unit(factory) as session:
            accesses = {slug: setup.access(session, load.code, tenant_ids[slug]) for slug in load.members}
            for sale in chunk:
                card = linked[(sale.person, sale.slug)]
                acc = accesses[sale.slug]
                if balance[card] >= REDEEM_AT:
                    points.redeem(session, acc, card, f"demo:redeem:{sale.order_no}", REDEEM_POINTS,
                                  order_no=sale.order_no, now=sale.at)
                    balance[card] -= REDEEM_POINTS
                    load.redeemed += REDEEM_POINTS
                    load.operations += 1
                points.earn(session, acc, card, f"demo:earn:{sale.order_no}", sale.points, order_no=sale.order_no,
                            now=sale.at + dt.timedelta(seconds=1))
                balance[card] += sale.points
                load.earned += sale.points
                load.operations += 1
        if advance is not None:
            advance(len(chunk))
