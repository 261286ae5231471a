"""The demo calendar: day-by-day demand multipliers per channel, hours of day and fast timestamps.

Demand is a product of a weekday pattern and festival effects (Spring Festival, 618, Double 11,
Double 12, National Day golden week), different per channel, because that is what makes a retail
time series recognisable: offline peaks at weekends, online peaks at midnight on 11.11, and a
supermarket fills up in the two weeks before Spring Festival and goes quiet during it.
"""

from __future__ import annotations

import datetime
import itertools
from dataclasses import dataclass, field

from lianjie.demo.reference import CHANNELS, SPRING_FESTIVALS

SECONDS_PER_DAY = 86_400
UTC_OFFSET_SECONDS = 8 * 3600
#: How far before the window day numbers can go (customers acquired up to two years earlier).
DAYS_BEFORE = 731

_WEEKDAY = {  # Monday .. Sunday
    "offline": (0.85, 0.85, 0.9, 0.95, 1.05, 1.35, 1.3),
    "online": (1.0, 0.98, 0.98, 1.0, 1.0, 1.05, 1.1),
    "miniprogram": (0.95, 0.95, 0.95, 1.0, 1.05, 1.1, 1.1),
    "wecom": (1.05, 1.05, 1.05, 1.0, 1.0, 0.95, 0.9),
}

_HOURS_OFFLINE = (0, 0, 0, 0, 0, 0, 0, 0, 0, .3, .8, 1, 1.1, 1, 1, 1, 1.1, 1.3, 1.5, 1.6, 1.4, .9, .3, 0)
_HOURS_MARKET = (0, 0, 0, 0, 0, 0, 0, .4, 1.2, 1.3, 1.1, 1, .9, .7, .6, .7, .9, 1.4, 1.6, 1.3, 1, .7, .3, 0)
_HOURS_ONLINE = (.4, .2, .1, .05, .05, .05, .1, .3, .6, .8, .8, .8, 1, .9, .8, .8, .8, .8, .9, 1.1, 1.4, 1.6,
                 1.5, .9)
_HOURS_PEAK = (12, 3, 1, .3, .1, .1, .2, .4, .8, 1, 1, 1, 1.2, 1.1, 1, 1, 1, 1, 1.2, 1.5, 2.5, 3, 3, 2)
_HOURS_WECOM = (0, 0, 0, 0, 0, 0, 0, 0, .2, .7, 1, 1, .9, .8, .9, 1, 1, 1, .9, 1.1, 1.4, 1.4, .8, .2)

_HMS: list[str] = [f"{h:02d}:{m:02d}:{s:02d}" for h in range(24) for m in range(60) for s in range(60)]


def hms(second_of_day: int) -> str:
    """``HH:MM:SS`` from a table: formatting a time is the hottest call of the generator."""
    return _HMS[second_of_day]


@dataclass
class Calendar:
    """The 12-month window and every per-day table a simulation needs.

    Times inside the generator are integer seconds since local midnight of the first day
    (Asia/Shanghai, no DST), so one integer division gives the day and one table lookup its text.
    """

    start: datetime.date
    end: datetime.date
    days: int = field(init=False)
    _day_iso: list[str] = field(init=False, repr=False)
    weekday: list[int] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.days = (self.end - self.start).days + 1
        first = self.start - datetime.timedelta(days=DAYS_BEFORE)
        self._day_iso = [(first + datetime.timedelta(days=i)).isoformat()
                         for i in range(DAYS_BEFORE + self.days + 1)]
        self.weekday = [(self.start + datetime.timedelta(days=d)).weekday() for d in range(self.days)]

    @property
    def end_second(self) -> int:
        """First second after the window."""
        return self.days * SECONDS_PER_DAY

    def date_iso(self, day: int) -> str:
        return self._day_iso[day + DAYS_BEFORE]

    def local_iso(self, t: int) -> str:
        """ISO 8601 local merchant time with its +08:00 offset."""
        day, second = divmod(t, SECONDS_PER_DAY)
        return f"{self._day_iso[day + DAYS_BEFORE]}T{_HMS[second]}+08:00"

    def utc_iso(self, t: int) -> str:
        """ISO 8601 UTC with ``Z``, as Segment timestamps are written."""
        day, second = divmod(t - UTC_OFFSET_SECONDS, SECONDS_PER_DAY)
        return f"{self._day_iso[day + DAYS_BEFORE]}T{_HMS[second]}Z"

    def day_of(self, date: datetime.date) -> int:
        return (date - self.start).days

    def dates_in_window(self, month: int, day: int) -> list[int]:
        """Day indices of every (month, day) anniversary inside the window."""
        out = []
        for year in range(self.start.year, self.end.year + 1):
            d = self.day_of(datetime.date(year, month, day))
            if 0 <= d < self.days:
                out.append(d)
        return out

    def peak_days(self) -> set[int]:
        """Shopping-festival days whose online orders cluster right after midnight."""
        return set(self.dates_in_window(11, 11) + self.dates_in_window(6, 18))


def channel_demand(calendar: Calendar, industry: str) -> dict[str, list[float]]:
    """Per channel, a demand multiplier for every day of the window."""
    demand = {c: [_WEEKDAY[c][calendar.weekday[d]] for d in range(calendar.days)] for c in CHANNELS}
    market = industry == "supermarket"
    promo = 0.35 if market else 1.0
    _apply_double_11(calendar, demand, promo)
    _apply_618(calendar, demand, promo)
    for d in calendar.dates_in_window(12, 12):
        _scale(demand, d, online=1 + 1.5 * promo, miniprogram=1 + promo)
    _apply_spring_festival(calendar, demand, market)
    if not market:
        for first in calendar.dates_in_window(10, 1):
            for d in range(first, min(first + 7, calendar.days)):
                _scale(demand, d, offline=1.5, wecom=1.2)
    return demand


def _scale(demand: dict[str, list[float]], day: int, **factors: float) -> None:
    if 0 <= day < len(demand["offline"]):
        for channel, factor in factors.items():
            demand[channel][day] *= factor


def _apply_double_11(calendar: Calendar, demand: dict[str, list[float]], promo: float) -> None:
    for peak in calendar.dates_in_window(11, 11):
        for k in range(10):  # Nov 1-10: presales ramp up
            ramp = (k + 1) / 10
            _scale(demand, peak - 10 + k, online=1 + promo * (0.3 + 1.2 * ramp),
                   miniprogram=1 + promo * (0.2 + 0.6 * ramp))
        _scale(demand, peak, online=1 + 8 * promo, miniprogram=1 + 3 * promo, offline=1 + 0.4 * promo,
               wecom=1 + 1.5 * promo)
        _scale(demand, peak + 1, online=1 + 0.3 * promo)


def _apply_618(calendar: Calendar, demand: dict[str, list[float]], promo: float) -> None:
    for peak in calendar.dates_in_window(6, 18):
        for k in range(17):  # June 1-17
            ramp = (k + 1) / 17
            _scale(demand, peak - 17 + k, online=1 + promo * (0.2 + 0.8 * ramp),
                   miniprogram=1 + promo * (0.1 + 0.5 * ramp))
        _scale(demand, peak, online=1 + 4 * promo, miniprogram=1 + 2 * promo, offline=1 + 0.2 * promo)


def _apply_spring_festival(calendar: Calendar, demand: dict[str, list[float]], market: bool) -> None:
    for festival in SPRING_FESTIVALS:
        day = calendar.day_of(festival)
        if not -30 < day < calendar.days + 30:
            continue
        if market:
            for k in range(14):  # New Year shopping: the two weeks before the festival
                surge = 1.3 + 1.1 * (k + 1) / 14
                _scale(demand, day - 15 + k, offline=surge, miniprogram=surge, wecom=surge)
            _scale(demand, day - 1, offline=1.6, miniprogram=1.2)
        else:
            for k in range(20):
                _scale(demand, day - 21 + k, offline=1.3, miniprogram=1.1)
        for k in range(7):  # festival week: stores half-empty, couriers at home
            _scale(demand, day + k, offline=0.7 if market else 0.55, wecom=0.5)
        for k in range(-5, 7):
            _scale(demand, day + k, online=0.5, miniprogram=0.8 if market else 0.55)


def hour_cum(channel: str, industry: str, peak: bool) -> list[float]:
    """Cumulative weights of the hour of day an order in ``channel`` is placed."""
    table: tuple[float, ...]
    if channel == "offline":
        table = _HOURS_MARKET if industry == "supermarket" else _HOURS_OFFLINE
    elif channel == "wecom":
        table = _HOURS_WECOM
    else:
        table = _HOURS_PEAK if peak else _HOURS_ONLINE
    return list(itertools.accumulate(table))
