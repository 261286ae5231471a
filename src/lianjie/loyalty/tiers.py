"""Tiers: qualify on points earned or spend over a rolling window (or lifetime), upgrade at once,
downgrade only at the periodic evaluation and only after a grace period, manual tiers with an end date.

A customer's current tier is the newest assignment on any of its profiles. Assignments are written on
the customer's root at the time, so after an unmerge each side finds its own history again; the
unmerge then gives each side the tier it held before the merge, or what it qualifies for now if that is
higher (e.g. gold A merged with silver B became gold; undone, B is silver again).

A manual tier with an end date is a floor until that date: no evaluation moves the customer below it.
An upgrade the customer qualifies for *above* it still applies at once (they earned it), and when they
stop qualifying the normal grace period runs and they fall back to the manual tier, not lower, while
it lasts. After the end date the customer falls back to what they qualify for, after the grace period
as for anyone. Example: silver by hand until 1 March, gold earned in January; the points leave the
window in February: at risk, then silver after the grace days; from 1 March at risk again, then
member.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from decimal import Decimal

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from lianjie.db import utcnow
from lianjie.errors import ValidationFailed
from lianjie.identity.models import Merge, Profile
from lianjie.identity.service import member_ids
from lianjie.loyalty.models import OperationKind, PointsOperation, TierAssignment
from lianjie.loyalty.programme import ProgrammeConfig
from lianjie.tenants import audit

EARNING_KINDS = (OperationKind.EARN.value, OperationKind.ORDER.value, OperationKind.REVERSE.value)


def current(session: Session, profile_ids: Sequence[int], *,
            before: dt.datetime | None = None) -> TierAssignment | None:
    query = select(TierAssignment).where(TierAssignment.profile_id.in_(profile_ids))
    if before is not None:
        query = query.where(TierAssignment.created_at < before)
    return session.scalars(query.order_by(TierAssignment.created_at.desc(), TierAssignment.id.desc()).limit(1)).first()


def multiplier(session: Session, config: ProgrammeConfig, profile_ids: Sequence[int]) -> Decimal:
    """The points multiplier of the customer's tier (1 without tiers)."""
    if not config.tiers:
        return Decimal(1)
    row = current(session, profile_ids)
    tier = config.tier(row.tier_code) if row else None
    return tier.points_multiplier if tier else Decimal(1)


def measure(session: Session, config: ProgrammeConfig, profile_ids: Sequence[int], now: dt.datetime) -> int:
    """Points earned (net of reversals) or spend in fen over the qualifying window."""
    rule = config.qualification
    column = PointsOperation.points if rule.metric == "points_earned" else PointsOperation.spend_fen
    query = select(func.coalesce(func.sum(column), 0)).where(PointsOperation.profile_id.in_(profile_ids),
                                                             PointsOperation.kind.in_(EARNING_KINDS))
    if rule.window_days is not None:
        query = query.where(PointsOperation.created_at > now - dt.timedelta(days=rule.window_days))
    return int(session.scalar(query) or 0)


def _assign(session: Session, tenant_id: int, root: int, code: str, previous: TierAssignment | None, reason: str,
            **extra: object) -> TierAssignment:
    row = TierAssignment(tenant_id=tenant_id, profile_id=root, tier_code=code,
                         previous_code=previous.tier_code if previous else None, reason=reason,
                         created_at=utcnow(), **extra)
    session.add(row)
    session.flush()
    return row


def upgrade_if_qualified(session: Session, config: ProgrammeConfig, tenant_id: int, root: int,
                         profile_ids: Sequence[int], now: dt.datetime | None = None) -> TierAssignment | None:
    """Move the customer up at once when they qualify for a higher tier (never down here)."""
    if not config.tiers:
        return None
    now = now or utcnow()
    held = current(session, profile_ids)
    reached = config.qualifying_tier(measure(session, config, profile_ids, now))
    if reached is None or (held is not None and config.rank(reached.code) <= config.rank(held.tier_code)):
        if held is not None and held.downgrade_due_at is not None and reached is not None \
                and config.rank(reached.code) >= config.rank(held.tier_code):
            return _assign(session, tenant_id, root, held.tier_code, held, "requalified")
        return None
    return _assign(session, tenant_id, root, reached.code, held, "qualified" if held else "joined")


def manual_floor(session: Session, profile_ids: Sequence[int], now: dt.datetime) -> TierAssignment | None:
    """The operator's tier still in force at ``now``: the newest manual assignment, while its end date
    is ahead (one without an end date is a plain assignment that evaluation may move)."""
    row = session.scalars(select(TierAssignment).where(TierAssignment.profile_id.in_(profile_ids),
                                                       TierAssignment.reason == "manual")
                          .order_by(TierAssignment.created_at.desc(), TierAssignment.id.desc()).limit(1)).first()
    return row if row is not None and row.manual_until is not None and row.manual_until > now else None


def set_manual(session: Session, config: ProgrammeConfig, tenant_id: int, root: int, profile_ids: Sequence[int],
               code: str, *, until: dt.datetime | None, reason: str, operator: str) -> TierAssignment:
    """An operator's tier, a floor until ``until`` whatever the customer qualifies for (then evaluated again;
    see the module's docstring)."""
    if config.tier(code) is None:
        raise ValidationFailed(f"no tier {code!r} in the programme", field="tier_code", code="unknown_tier")
    if until is not None and until <= utcnow():
        raise ValidationFailed("the manual tier's end must be in the future", field="until")
    held = current(session, profile_ids)
    row = _assign(session, tenant_id, root, code, held, "manual", detail=reason[:200], operator=operator[:100],
                  manual_until=until)
    audit.record(session, tenant_id, "tier.set", f"profile:{root}",
                 before={"tier_code": held.tier_code if held is not None else None},
                 after={"tier_code": code, "until": until, "reason": reason, "operator": operator})
    return row


def evaluate(session: Session, config: ProgrammeConfig, tenant_id: int, root: int, profile_ids: Sequence[int],
             now: dt.datetime) -> TierAssignment | None:
    """The periodic evaluation of one customer: upgrade, start a grace period, or downgrade after it."""
    if not config.tiers:
        return None
    upgraded = upgrade_if_qualified(session, config, tenant_id, root, profile_ids, now)
    if upgraded is not None:
        return upgraded
    held = current(session, profile_ids)
    if held is None or (held.manual_until is not None and held.manual_until > now):
        return None
    reached = config.qualifying_tier(measure(session, config, profile_ids, now))
    floor = manual_floor(session, profile_ids, now)
    target = reached.code if reached is not None else None
    if floor is not None and (target is None or config.rank(floor.tier_code) > config.rank(target)):
        target = floor.tier_code  # an upgrade above a manual tier falls back to it, not below, while it lasts
    if target is None or config.rank(target) >= config.rank(held.tier_code):
        return None
    if held.downgrade_due_at is None:
        due = now + dt.timedelta(days=config.qualification.grace_days)
        if config.qualification.grace_days > 0:
            return _assign(session, tenant_id, root, held.tier_code, held, "at_risk", downgrade_due_at=due,
                           detail=f"qualifies for {target}; downgrade due {due.date().isoformat()}")
    elif held.downgrade_due_at > now:
        return None
    if floor is not None and target == floor.tier_code:
        return _assign(session, tenant_id, root, target, held, "downgraded", manual_until=floor.manual_until,
                       detail=f"to the manual tier, kept until {floor.manual_until:%Y-%m-%d}")
    return _assign(session, tenant_id, root, target, held, "downgraded")


def evaluate_all(session: Session, config: ProgrammeConfig, tenant_id: int, now: dt.datetime) -> int:
    """Evaluate every customer holding a tier; returns how many changed."""
    roots = session.scalars(
        select(func.coalesce(Profile.merged_into_id, Profile.id)).distinct()
        .join(TierAssignment, TierAssignment.profile_id == Profile.id).where(TierAssignment.tenant_id == tenant_id)
    ).all()
    changed = 0
    for root in roots:
        ids = _members(session, tenant_id, root)
        changed += evaluate(session, config, tenant_id, root, ids, now) is not None
    return changed


def _members(session: Session, tenant_id: int, root: int) -> list[int]:
    return list(session.scalars(member_ids(tenant_id, root)))


def after_merge(session: Session, config: ProgrammeConfig, tenant_id: int, survivor: int,
                merged: Sequence[int]) -> None:
    """The joined customer keeps the higher of the two tiers, then qualifies on the combined activity."""
    if not config.tiers:
        return
    ids = _members(session, tenant_id, survivor)
    own = current(session, [p for p in ids if p not in set(merged)])
    theirs = current(session, merged)
    if theirs is not None and (own is None or config.rank(theirs.tier_code) > config.rank(own.tier_code)):
        _assign(session, tenant_id, survivor, theirs.tier_code, own, "merged",
                detail=f"kept the higher tier of merged profile {merged[0]}", manual_until=theirs.manual_until)
    upgrade_if_qualified(session, config, tenant_id, survivor, ids)


def after_unmerge(session: Session, config: ProgrammeConfig, tenant_id: int, merge_id: int) -> None:
    """Each side gets back the tier it held before the merge, or a higher one it now qualifies for."""
    if not config.tiers:
        return
    merge = session.get(Merge, merge_id)
    if merge is None:
        return
    for side in (merge.merged_id, merge.survivor_id):
        root = session.scalar(select(func.coalesce(Profile.merged_into_id, Profile.id)).where(Profile.id == side))
        if root is None:
            continue
        ids = _members(session, tenant_id, root)
        before = current(session, ids, before=merge.created_at)
        now_held = current(session, ids)
        if before is not None and (now_held is None or now_held.tier_code != before.tier_code):
            _assign(session, tenant_id, root, before.tier_code, now_held, "unmerged",
                    detail=f"merge {merge_id} undone", manual_until=before.manual_until)
        upgrade_if_qualified(session, config, tenant_id, root, ids)
