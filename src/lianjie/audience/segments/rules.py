"""The segment rule language: JSON an operator's UI builds, parsed into pydantic models.

A rule is one JSON object; which kind it is follows from its key (``all``, ``any``, ``not``,
``trait``, ``tag``, ``did``, ``purchased``). Members are *customers* (a survivor profile and every
profile merged into it); erased customers never match. Examples::

    {"all": [
        {"trait": "rfm_group", "op": "in", "value": ["important_value", "important_maintain"]},
        {"purchased": {"category": "C01"}, "within_days": 90},
        {"not": {"tag": "staff"}}
    ]}

    {"any": [
        {"trait": "traits.city", "op": "=", "value": "杭州"},          # the profile's identify traits
        {"trait": "tier", "op": "in", "value": ["gold", "platinum"]},  # current tier
        {"trait": "points", "op": ">=", "value": 5000},                 # points balance
        {"trait": "paid_plan", "op": "is_set"}                          # a paid membership term running today
    ]}

    {"did": "Product Viewed", "where": [{"property": "category", "op": "=", "value": "跑鞋"}],
     "at_least": 3, "within_days": 30}

    {"purchased": {"city": "上海", "store": ["SH001", "SH002"]}, "measure": "amount_fen",
     "at_least": 100000, "between_dates": ["2026-01-01", "2026-03-31"]}

Traits (``trait``): ``traits.<key>`` is a value of the profile's identify traits (the survivor's own
value wins over a merged profile's); the computed traits of ``customer_traits``: ``rfm_group``,
``lifecycle_stage``, ``r_score``, ``f_score``, ``m_score``, ``recency_days``, ``frequency``,
``monetary_fen``, ``clv_p_alive``, ``clv_expected_purchases``, ``clv_expected_value_fen``,
``first_order_at``, ``last_order_at`` (only customers the traits job scored have them); and
``tier`` (the newest tier assignment), ``paid_plan`` (the plan code of a live term covering the
as-of date, grace included, as for member benefits), ``points`` (the balance, 0 without entries).

Operators: ``=``, ``!=``, ``<``, ``<=``, ``>``, ``>=``, ``in`` (a list), ``between`` (``[low, high]``,
both included), ``contains`` (a substring), ``is_set`` (no value). A comparison never matches a
customer who lacks the trait (``!=`` too); ``{"not": ...}`` is the complement among all customers.
Only ``points`` has a value for everyone (0), so ``points < 100`` includes customers who never earned.

Behaviour (``did``: a tracked event name, optionally ``type`` page/screen/track...; ``where``
property filters with the same operators; ``purchased``: orders, filtered by ``sku``, ``category``
(subcategories included), ``store`` code, store ``city``, ``channel``; ``measure`` orders, amount_fen
(paid minus refunded) or quantity) counts per customer, kept when ``at_least`` <= n <= ``at_most``
(defaults 1 and none). ``at_least: 0`` with ``at_most: 0`` is "never did". A window is either
``within_days: D`` (today and the D-1 days before it, in the merchant's time zone, up to the as-of
moment) or ``between_dates: [first, last]`` (local dates, both included); none means all time.
Fully refunded orders and fully returned lines are not purchases.
"""

from __future__ import annotations

import datetime as dt
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Discriminator, Field, Tag, ValidationError

from lianjie.errors import BadRequest
from lianjie.validation import INT64_MAX

MAX_DEPTH = 12
MAX_NODES = 200
MAX_NUMBER = 2**53  # JSON's safe integers; a larger literal would overflow a warehouse's int64 compare
YEARS = range(1900, 3000)  # dates a window or a time trait may name (and still shift by a day or a zone)


class Op(StrEnum):
    EQ = "="
    NE = "!="
    LT = "<"
    LE = "<="
    GT = ">"
    GE = ">="
    IN = "in"
    BETWEEN = "between"
    CONTAINS = "contains"
    IS_SET = "is_set"


ORDERED = frozenset({Op.LT, Op.LE, Op.GT, Op.GE, Op.BETWEEN})
Kind = Literal["string", "int", "float", "timestamp"]

#: Computed traits (``customer_traits``) and membership facts, with the type their values take.
COMPUTED: dict[str, Kind] = {
    "rfm_group": "string", "lifecycle_stage": "string", "r_score": "int", "f_score": "int", "m_score": "int",
    "recency_days": "int", "frequency": "int", "monetary_fen": "int", "clv_p_alive": "float",
    "clv_expected_purchases": "float", "clv_expected_value_fen": "int", "first_order_at": "timestamp",
    "last_order_at": "timestamp",
}
MEMBERSHIP: dict[str, Kind] = {"tier": "string", "paid_plan": "string", "points": "int"}
PROFILE_PREFIX = "traits."

Scalar = str | int | float | bool
Value = Scalar | list[Scalar] | None


class _Node(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Condition(_Node):
    """``op`` applied to a value; ``value`` must fit the operator (checked by :func:`parse`)."""

    op: Op
    value: Value = None


class Trait(Condition):
    trait: str = Field(min_length=1, max_length=100)


class PropertyFilter(Condition):
    property: str = Field(min_length=1, max_length=100)


class Window(_Node):
    within_days: int | None = Field(default=None, ge=1, le=3660)
    between_dates: tuple[dt.date, dt.date] | None = None
    at_least: int = Field(default=1, ge=0, le=INT64_MAX)
    at_most: int | None = Field(default=None, ge=0, le=INT64_MAX)


class Did(Window):
    did: str = Field(min_length=1, max_length=200, description="The tracked event's name.")
    type: str | None = Field(default=None, max_length=16, description="track, page, screen, identify …")
    where: list[PropertyFilter] = Field(default_factory=list, max_length=20)


Codes = str | list[str]


class PurchaseFilter(_Node):
    sku: Codes | None = None
    category: Codes | None = None
    store: Codes | None = None
    city: Codes | None = None
    channel: Codes | None = None


class Purchased(Window):
    purchased: PurchaseFilter
    measure: Literal["orders", "amount_fen", "quantity"] = "orders"


class HasTag(_Node):
    tag: Codes


class All(_Node):
    all: list[Rule] = Field(min_length=1)


class Any_(_Node):
    any: list[Rule] = Field(min_length=1)


class Not(_Node):
    not_: Rule = Field(alias="not")


KINDS = ("all", "any", "not", "trait", "tag", "did", "purchased")


def _kind(raw: Any) -> str | None:
    if isinstance(raw, dict):
        return next((k for k in KINDS if k in raw), None)
    if isinstance(raw, BaseModel):
        return next((k for k in KINDS if hasattr(raw, k if k != "not" else "not_")), None)
    return None


Rule = Annotated[
    Annotated[All, Tag("all")] | Annotated[Any_, Tag("any")] | Annotated[Not, Tag("not")]
    | Annotated[Trait, Tag("trait")] | Annotated[HasTag, Tag("tag")] | Annotated[Did, Tag("did")]
    | Annotated[Purchased, Tag("purchased")],
    Discriminator(_kind, custom_error_type="invalid_rule",
                  custom_error_message=f"a rule is an object with one of the keys {', '.join(KINDS)}"),
]


class _Root(BaseModel):
    rule: Rule


All.model_rebuild()
Any_.model_rebuild()
Not.model_rebuild()
_Root.model_rebuild()


# ---- parsing with JSON paths in the errors --------------------------------------------------------

def _join(path: str, part: Any) -> str:
    return f"{path}[{part}]" if isinstance(part, int) else f"{path}.{part}"


def _error_path(loc: tuple[Any, ...], prefix: str) -> str:
    """Pydantic's location without the union tags: ``("rule", "all", 2, "trait", "op")`` is
    ``rule.all[2].op`` (a tag comes right where a rule starts)."""
    path, rule_starts, previous = prefix, True, None
    for part in loc[1:]:
        if rule_starts and part in KINDS:
            rule_starts = False
            continue
        path = _join(path, part)
        rule_starts = part == "not" or (isinstance(part, int) and previous in ("all", "any"))
        previous = part
    return path


def _check_size(raw: Any, prefix: str) -> None:
    """Depth and node limits before pydantic recurses into it (a hostile body must not blow the stack)."""
    stack: list[tuple[Any, int]] = [(raw, 1)]
    nodes = 0
    while stack:
        node, depth = stack.pop()
        if depth > MAX_DEPTH * 3:
            raise BadRequest(f"the rule nests deeper than {MAX_DEPTH} levels", code="invalid_rule", field=prefix)
        nodes += 1
        if nodes > MAX_NODES * 20:
            raise BadRequest("the rule is too large", code="invalid_rule", field=prefix)
        children = node.values() if isinstance(node, dict) else node if isinstance(node, list) else ()
        stack.extend((child, depth + 1) for child in children)


def parse(raw: Any, prefix: str = "rule") -> Rule:
    """A rule from JSON, or :class:`BadRequest` (400) naming the JSON path of the first problem."""
    _check_size(raw, prefix)
    try:
        rule = _Root.model_validate({"rule": raw}).rule
    except ValidationError as exc:
        first = exc.errors()[0]
        path = _error_path(tuple(first["loc"]), prefix)
        raise BadRequest(f"{path}: {first['msg']}", code="invalid_rule", field=path,
                         details={"errors": [{"field": _error_path(tuple(e["loc"]), prefix), "message": e["msg"]}
                                             for e in exc.errors()[:20]]}) from None
    _check(rule, prefix, 1)
    return rule


def _bad(path: str, message: str) -> BadRequest:
    return BadRequest(f"{path}: {message}", code="invalid_rule", field=path)


def trait_kind(name: str) -> Kind | None:
    """The value type of a computed or membership trait; None for a profile trait (any JSON value)."""
    return COMPUTED.get(name) or MEMBERSHIP.get(name)


def _check(rule: Rule, path: str, depth: int) -> None:
    if depth > MAX_DEPTH:
        raise _bad(path, f"rules nest at most {MAX_DEPTH} levels deep")
    if isinstance(rule, All | Any_):
        for i, child in enumerate(rule.all if isinstance(rule, All) else rule.any):
            _check(child, f"{path}.{'all' if isinstance(rule, All) else 'any'}[{i}]", depth + 1)
    elif isinstance(rule, Not):
        _check(rule.not_, f"{path}.not", depth + 1)
    elif isinstance(rule, Trait):
        if not rule.trait.startswith(PROFILE_PREFIX) and trait_kind(rule.trait) is None:
            known = ", ".join([*COMPUTED, *MEMBERSHIP, "traits.<name>"])
            raise _bad(f"{path}.trait", f"unknown trait {rule.trait!r}; known: {known}")
        if rule.trait == PROFILE_PREFIX:
            raise _bad(f"{path}.trait", "name the profile trait: traits.<name>")
        check_condition(rule, path, trait_kind(rule.trait))
    elif isinstance(rule, Did | Purchased):
        _check_window(rule, path)
        if isinstance(rule, Did):
            for i, where in enumerate(rule.where):
                check_condition(where, f"{path}.where[{i}]", None)
        else:
            for name in ("sku", "category", "store", "city", "channel"):
                codes = getattr(rule.purchased, name)
                if isinstance(codes, list) and not codes:
                    raise _bad(f"{path}.purchased.{name}", "give at least one value")
    elif isinstance(rule, HasTag) and isinstance(rule.tag, list) and not rule.tag:
        raise _bad(f"{path}.tag", "give at least one tag")


def _check_window(rule: Window, path: str) -> None:
    if rule.within_days is not None and rule.between_dates is not None:
        raise _bad(f"{path}.between_dates", "give within_days or between_dates, not both")
    if rule.between_dates is not None and not all(d.year in YEARS for d in rule.between_dates):
        raise _bad(f"{path}.between_dates", f"dates must lie in the years {YEARS.start}-{YEARS.stop - 1}")
    if rule.between_dates is not None and rule.between_dates[0] > rule.between_dates[1]:
        raise _bad(f"{path}.between_dates", "the first date is after the last")
    if rule.at_most is not None and rule.at_most < rule.at_least:
        raise _bad(f"{path}.at_most", f"at_most ({rule.at_most}) is below at_least ({rule.at_least})")


def _fits(value: Any, kind: Kind | None) -> bool:
    if isinstance(value, list):
        return False
    if kind is None:
        return value is not None and (_number(value) or not isinstance(value, int | float) or isinstance(value, bool))
    if kind == "string":
        return isinstance(value, str)
    if kind in ("int", "float"):
        return _number(value)
    return isinstance(value, str) and parse_time(value) is not None


def _number(value: Any) -> bool:
    """A finite JSON number a warehouse can compare with (no NaN, no 10**20)."""
    return isinstance(value, int | float) and not isinstance(value, bool) and abs(value) <= MAX_NUMBER


def parse_time(text: str) -> dt.datetime | dt.date | None:
    """An ISO date (a local day) or date-time (with an offset), for timestamp traits."""
    try:
        moment = dt.date.fromisoformat(text) if len(text) == 10 else dt.datetime.fromisoformat(text)
    except ValueError:
        return None
    return moment if moment.year in YEARS else None


def check_condition(cond: Condition, path: str, kind: Kind | None) -> None:
    """The value fits the operator and the trait's type (profile traits and properties: any JSON scalar)."""
    where, value, op = f"{path}.value", cond.value, cond.op
    expected = f"a value of type {kind}" if kind else "a string, number or boolean"
    if op is Op.IS_SET:
        if value is not None:
            raise _bad(where, "is_set takes no value")
        return
    if op is Op.IN:
        if not isinstance(value, list) or not value:
            raise _bad(where, "in takes a non-empty list")
        if not all(_fits(v, kind) for v in value) or len({_family(v) for v in value}) > 1:
            raise _bad(where, f"every value of the list must be {expected}, all of one type")
        return
    if op is Op.BETWEEN:
        if not isinstance(value, list) or len(value) != 2 or not all(_fits(v, kind) for v in value) \
                or _family(value[0]) != _family(value[1]):
            raise _bad(where, f"between takes [low, high], each {expected}")
        if _family(value[0]) in ("bool", "string") and kind != "timestamp":
            raise _bad(where, "between compares numbers or times")
        return
    if not _fits(value, kind):
        raise _bad(where, f"{op.value} takes {expected}")
    if op is Op.CONTAINS and not isinstance(value, str):
        raise _bad(where, "contains takes a string")
    if op is Op.CONTAINS and kind not in (None, "string"):
        raise _bad(f"{path}.op", f"contains applies to text, not to a {kind} trait")
    if op in ORDERED and isinstance(value, bool):
        raise _bad(where, f"{op.value} compares numbers, text or times, not booleans")


def _family(value: Any) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int | float):
        return "number"
    return "string"


def dump(rule: Rule) -> Any:
    """The rule as JSON (with ``not`` spelled as in the language)."""
    return rule.model_dump(mode="json", by_alias=True, exclude_defaults=True)
