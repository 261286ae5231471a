"""A merchant's points programme as data: earning rules, pending period, expiry, overdraw policy, tiers.

One JSON document per merchant (``loyalty_programmes``), validated by :class:`ProgrammeConfig`; until
an operator saves one the defaults apply (1 point per yuan, spendable after 7 days, expiring at the
end of the year after next, no tiers). Reading never writes.

Edits never lose settings by accident: the API's ``PUT`` takes the whole document only (a body that
leaves a top-level field out is a 422 naming every missing one), and ``PATCH`` merges a JSON merge
patch (RFC 7396) into the stored document, where ``null`` resets a key to its default. Every save is
kept as a numbered version (``loyalty_programme_versions``) with who saved it, and a rollback saves
an older version's document as a new version. Each save is recorded in the audit log. The CLI's
``--set FILE`` replaces the document whole, as it always did: what the file leaves out takes the
defaults.
"""

from __future__ import annotations

import datetime as dt
import math
from decimal import ROUND_FLOOR, Decimal
from enum import StrEnum
from fractions import Fraction
from functools import lru_cache
from typing import Annotated, Any
from zoneinfo import ZoneInfo

import orjson
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator
from sqlalchemy import Table, func, select
from sqlalchemy.orm import Session

from lianjie.db import (
    driver_execute,
    forget_cached,
    insert_ignoring_duplicates,
    json_value,
    store_document,
    transaction_cache,
    utcnow,
)
from lianjie.errors import NotFound, ValidationFailed
from lianjie.loyalty.models import LoyaltyProgramme, ProgrammeVersion
from lianjie.pagination import paginate
from lianjie.tenants import audit

Multiplier = Annotated[Decimal, Field(ge=0, le=100, max_digits=8, decimal_places=4)]


class ExpiryKind(StrEnum):
    DAYS = "days"  # N days after the points become spendable
    END_OF_MONTH = "end_of_month"  # end of the month N months after (0: this month)
    END_OF_YEAR = "end_of_year"  # end of the year N years after (0: this year)
    NEVER = "never"


class Overdraw(StrEnum):
    """What a refund does when the points it takes back were already spent."""

    NEGATIVE_BALANCE = "negative_balance"  # the rest becomes a debt that future points repay
    CLAWBACK = "clawback"  # take from the customer's other lots; any rest becomes a debt
    CLAWBACK_THEN_WRITE_OFF = "clawback_then_write_off"  # other lots, then write the rest off (recorded)


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Expiry(Strict):
    kind: ExpiryKind = ExpiryKind.END_OF_YEAR
    n: int = Field(1, ge=0, le=3650)


class Multipliers(Strict):
    categories: dict[str, Multiplier] = Field(default_factory=dict)
    skus: dict[str, Multiplier] = Field(default_factory=dict)


class Exclusions(Strict):
    categories: list[str] = Field(default_factory=list)
    skus: list[str] = Field(default_factory=list)


class Tier(Strict):
    code: str = Field(min_length=1, max_length=40, pattern=r"^[A-Za-z0-9_-]+$")
    name: str = Field(min_length=1, max_length=40)
    threshold: int = Field(ge=0, description="Points earned or spend in fen, over the qualifying window.")
    points_multiplier: Multiplier = Decimal(1)
    member_price: bool = False


class Qualification(Strict):
    metric: str = Field("points_earned", pattern="^(points_earned|spend_fen)$")
    window_days: int | None = Field(365, ge=1, le=3650, description="None: lifetime.")
    grace_days: int = Field(30, ge=0, le=3650)


class ProgrammeConfig(Strict):
    points_per_yuan: Multiplier = Decimal(1)
    multipliers: Multipliers = Multipliers()
    exclusions: Exclusions = Exclusions()
    max_points_per_order: int | None = Field(None, ge=1)
    events: dict[str, int] = Field(default_factory=lambda: {"Signed Up": 100, "Birthday": 200,
                                                            "Review Submitted": 20, "Store Checked In": 5},
                                   description="Points a tracked event (Segment track) of this name earns.")
    once_per_customer: list[str] = Field(
        default_factory=lambda: ["Signed Up"],
        description="Events that earn once per customer, however often they are tracked; the others earn "
                    "once per messageId.")
    pending_days: int = Field(7, ge=0, le=365)
    expiry: Expiry = Expiry()
    overdraw: Overdraw = Overdraw.CLAWBACK
    hold_minutes: int = Field(30, ge=1, le=7 * 24 * 60)
    expiring_soon_days: int = Field(30, ge=1, le=365)
    time_zone: str = "Asia/Shanghai"
    tiers: list[Tier] = Field(default_factory=list, description="Lowest first; the first has threshold 0.")
    qualification: Qualification = Qualification()

    @model_validator(mode="after")
    def _check(self) -> ProgrammeConfig:
        try:
            ZoneInfo(self.time_zone)
        except (KeyError, ValueError) as exc:
            raise ValueError(f"unknown time zone {self.time_zone!r}") from exc
        if any(points < 0 for points in self.events.values()):
            raise ValueError("event points must not be negative")
        if self.tiers:
            if self.tiers[0].threshold != 0:
                raise ValueError("the first tier is the entry tier and needs threshold 0")
            thresholds = [t.threshold for t in self.tiers]
            if thresholds != sorted(set(thresholds)):
                raise ValueError("tier thresholds must rise strictly, lowest tier first")
            if len({t.code for t in self.tiers}) != len(self.tiers):
                raise ValueError("tier codes must be unique")
        return self

    # ---- rules -------------------------------------------------------------------------------------

    def line_points(self, sku: str, category_code: str | None, paid_fen: int) -> Decimal:
        """Unrounded points for one order line; the order rounds its total down once."""
        if sku in self.exclusions.skus or (category_code and category_code in self.exclusions.categories):
            return Decimal(0)
        factor = self.multipliers.skus.get(sku)
        if factor is None and category_code:
            factor = self.multipliers.categories.get(category_code)
        return Decimal(paid_fen) / 100 * self.points_per_yuan * (factor if factor is not None else Decimal(1))

    def order_points(self, lines: list[tuple[str, str | None, int]], tier_multiplier: Decimal) -> int:
        """Points for an order: lines' points times the tier's multiplier, rounded down, capped."""
        total = sum((self.line_points(*line) for line in lines), Decimal(0)) * tier_multiplier
        points = int(total.to_integral_value(rounding=ROUND_FLOOR))
        return min(points, self.max_points_per_order) if self.max_points_per_order else points

    def order_line_points(self, lines: list[tuple[str, str | None, int]], tier_multiplier: Decimal) -> list[int]:
        """What each line earned of :meth:`order_points`, so that a refund of a line takes back its own.

        Each line's exact points (its multiplier or exclusion, times the tier's) are scaled to the
        order's total, rounded down, and the few points rounding leaves go to the largest remainders
        (the first line among equals), so the lines always add up to the order exactly. Scaling is
        also what a per-order cap does: capped at 100, lines worth 300 and 150 earned 66.67 and 33.33,
        that is 67 and 33.
        """
        total = self.order_points(lines, tier_multiplier)
        exact = [Fraction(self.line_points(*line) * tier_multiplier) for line in lines]
        whole = sum(exact, Fraction(0))
        if total == 0 or whole == 0:
            return [0] * len(lines)
        scaled = [value * total / whole for value in exact]
        shares = [math.floor(value) for value in scaled]
        by_remainder = sorted(range(len(lines)), key=lambda i: (shares[i] - scaled[i], i))
        for i in by_remainder[:total - sum(shares)]:
            shares[i] += 1
        return shares

    def tier(self, code: str | None) -> Tier | None:
        return next((t for t in self.tiers if t.code == code), None)

    def qualifying_tier(self, measure: int) -> Tier | None:
        """The highest tier whose threshold ``measure`` reaches."""
        reached = [t for t in self.tiers if measure >= t.threshold]
        return reached[-1] if reached else None

    def rank(self, code: str | None) -> int:
        return next((i for i, t in enumerate(self.tiers) if t.code == code), -1)

    # ---- time --------------------------------------------------------------------------------------

    def available_at(self, moment: dt.datetime) -> dt.datetime:
        return moment + dt.timedelta(days=self.pending_days)

    def expires_at(self, available: dt.datetime) -> dt.datetime | None:
        """When points spendable from ``available`` expire; month and year ends in the merchant's zone."""
        kind, n = self.expiry.kind, self.expiry.n
        if kind == ExpiryKind.NEVER:
            return None
        if kind == ExpiryKind.DAYS:
            return available + dt.timedelta(days=max(n, 1))
        local = available.astimezone(ZoneInfo(self.time_zone))
        if kind == ExpiryKind.END_OF_MONTH:
            months = local.year * 12 + local.month - 1 + n + 1  # first day of the month after
            first_after = dt.datetime(months // 12, months % 12 + 1, 1, tzinfo=local.tzinfo)
        else:
            first_after = dt.datetime(local.year + n + 1, 1, 1, tzinfo=local.tzinfo)
        return first_after.astimezone(dt.UTC)


def parse(doc: dict[str, Any]) -> ProgrammeConfig:
    try:
        return ProgrammeConfig.model_validate(doc)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or None
        raise ValidationFailed(f"programme: {first['msg']}" + (f" at {where}" if where else ""), field=where,
                               code="invalid_programme") from exc


_DEFAULT = ProgrammeConfig()


@lru_cache(maxsize=256)
def _parse_text(text: bytes) -> ProgrammeConfig:
    return parse(orjson.loads(text))


def from_stored(doc: dict[str, Any] | None) -> ProgrammeConfig:
    """The programme from its stored document (None: the defaults); parsed once per distinct document,
    since every ledger operation needs it."""
    if doc is None:
        return _DEFAULT
    return _parse_text(orjson.dumps(doc, option=orjson.OPT_SORT_KEYS))


_LOADED = "lianjie.loyalty.programme"


def load(session: Session, tenant_id: int) -> ProgrammeConfig:
    """The merchant's programme, read once per transaction: every merge of profiles asks for it, and a
    merchant without a programme has no row, which the session's identity map cannot remember.

    Read with the driver rather than ``session.get``: ingestion asks once per transaction while it
    holds the write lock, and the ORM's load cost ten times the query (writes flush, so it sees them).
    """
    cache = transaction_cache(session, _LOADED)
    if tenant_id not in cache:
        row = driver_execute(session, "SELECT config FROM loyalty_programmes WHERE tenant_id = ?", (tenant_id,)).first()
        cache[tenant_id] = from_stored(json_value(row[0]) if row is not None else None)
    config: ProgrammeConfig = cache[tenant_id]
    return config


PROGRAMMES: Table = LoyaltyProgramme.__table__  # type: ignore[assignment]
FIELDS = tuple(ProgrammeConfig.model_fields)


class Change(StrEnum):
    """How a version was saved."""

    REPLACE = "replace"  # the whole document (the API's PUT, the CLI's --set)
    PATCH = "patch"  # a JSON merge patch onto the version before
    ROLLBACK = "rollback"  # an older version's document saved again
    MIGRATED = "migrated"  # the document stored before versions were kept


def _lock(session: Session, tenant_id: int) -> dict[str, Any] | None:
    """The stored document (None: the defaults apply), its row locked until the transaction ends, so
    two saves of one merchant take turns and each version follows the one it was made from."""
    conn = session.connection()
    placeholder = {"tenant_id": tenant_id, "config": {}, "updated_at": utcnow()}
    created = conn.execute(insert_ignoring_duplicates(conn, PROGRAMMES, ("tenant_id",), returning="tenant_id"),
                           placeholder).scalar()
    stored = conn.execute(select(PROGRAMMES.c.config).where(PROGRAMMES.c.tenant_id == tenant_id)
                          .with_for_update()).scalar()
    return None if created is not None or not stored else dict(stored)


def save(session: Session, tenant_id: int, doc: dict[str, Any], *, change: Change = Change.REPLACE,
         rolled_back_to: int | None = None) -> ProgrammeConfig:
    """Validate ``doc`` and make it the programme (what it leaves out takes the defaults), as a new version."""
    config = parse(doc)
    before = _lock(session, tenant_id)
    stored = config.model_dump(mode="json")
    store_document(session, LoyaltyProgramme, tenant_id, stored)
    forget_cached(session, _LOADED)
    number = (session.scalar(select(func.max(ProgrammeVersion.version))
                             .where(ProgrammeVersion.tenant_id == tenant_id)) or 0) + 1
    session.add(ProgrammeVersion(tenant_id=tenant_id, version=number, config=stored, change=change.value,
                                 rolled_back_to=rolled_back_to, saved_by=audit.actor_of(session), saved_at=utcnow()))
    action = {Change.PATCH: "patch", Change.ROLLBACK: "rollback"}.get(change, "update")
    audit.record(session, tenant_id, f"loyalty_programme.{action}", f"loyalty_programme:v{number}",
                 before=before, after=stored)
    return config


def replace(session: Session, tenant_id: int, doc: dict[str, Any]) -> ProgrammeConfig:
    """The API's PUT: the whole document, every top-level field given, so nothing is reset by omission."""
    missing = [name for name in FIELDS if name not in doc]
    if missing:
        raise ValidationFailed(f"PUT takes the whole programme; missing: {', '.join(missing)} (PATCH changes "
                               "some fields)", code="programme_incomplete", field="body",
                               details={"missing": missing})
    return save(session, tenant_id, doc)


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7396: objects merge key by key, ``null`` removes a key, anything else replaces the value."""
    if not isinstance(patch, dict):
        return patch
    merged = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            merged.pop(key, None)
        else:
            merged[key] = merge_patch(merged.get(key), value)
    return merged


def patch(session: Session, tenant_id: int, changes: dict[str, Any]) -> ProgrammeConfig:
    """Merge ``changes`` into the stored programme; a key removed by ``null`` takes its default."""
    _lock(session, tenant_id)  # before reading: a concurrent patch is merged into, not lost
    forget_cached(session, _LOADED)
    current = load(session, tenant_id).model_dump(mode="json")
    return save(session, tenant_id, merge_patch(current, changes), change=Change.PATCH)


def rollback(session: Session, tenant_id: int, version: int) -> ProgrammeConfig:
    """Save version ``version``'s document again, as the newest version."""
    row = session.scalar(select(ProgrammeVersion).where(ProgrammeVersion.tenant_id == tenant_id,
                                                        ProgrammeVersion.version == version))
    if row is None:
        raise NotFound(f"no programme version {version}", code="programme_version_not_found", field="version")
    return save(session, tenant_id, row.config, change=Change.ROLLBACK, rolled_back_to=version)


def versions(session: Session, tenant_id: int, *, limit: int, offset: int) -> tuple[Any, int]:
    """The merchant's saved versions, newest first."""
    query = (select(ProgrammeVersion).where(ProgrammeVersion.tenant_id == tenant_id)
             .order_by(ProgrammeVersion.version.desc()))
    return paginate(session, query, limit, offset)
