"""OneID merges and unmerges of customers who hold paid memberships.

Memberships stay attributed to the base profile that bought them, so a merge moves nothing and a
merged customer simply sees the memberships of all its profiles. One person must not hold two live
paid memberships, though: when both sides of a merge have one, the plan of the one kept decides
(``merge_policy``). The kept membership is the higher plan's (the survivor's on equal rank). Under
``extend`` (the default) it is extended by the other's remaining days, so nobody loses what they paid
for; under ``keep`` it stays as it is. The other membership's live terms are marked ``merged`` and
the whole decision is recorded as a ``merge`` action naming the OneID merge.

Undoing the merge undoes exactly that: the other terms get their status back, the extension comes off
the kept membership's term (and any later terms of it follow the restored end). Example: A's Gold
year ends 2027-03-01, B's Gold year 2026-12-01; merged on 2026-06-01, A keeps Gold until
2027-09-01 (183 more days) and B's term is merged; unmerged later, A ends 2027-03-01 again and B's
term is active again until 2026-12-01.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import select
from sqlalchemy.orm import Session

from lianjie.db import utcnow
from lianjie.identity.events import MergeUndone, ProfilesMerged
from lianjie.identity.service import member_ids
from lianjie.loyalty.membership import periods, plans
from lianjie.loyalty.membership.models import (
    LIVE,
    Membership,
    MembershipAction,
    MembershipPeriod,
    MembershipPlan,
    MergePolicy,
    PeriodKind,
    PeriodStatus,
)
from lianjie.loyalty.membership.terms import add_months, days_between, local_date


def after_merge(session: Session, event: ProfilesMerged, now: dt.datetime | None = None) -> MembershipAction | None:
    if not plans.facts(session, event.tenant_id).skus:
        return None  # a merchant without paid plans: nothing to look at on this (ingestion's) hot path
    day = local_date(now or utcnow(), plans.zone_of(session, event.tenant_id))
    moved = set(event.moved_ids)
    everyone = list(session.scalars(member_ids(event.tenant_id, event.survivor_id)))
    ours = periods.live_memberships(session, event.tenant_id, [p for p in everyone if p not in moved], day)
    theirs = periods.live_memberships(session, event.tenant_id, sorted(moved), day)
    if not ours or not theirs:
        return None
    rank = {m.id: session.scalar(select(MembershipPlan.rank).where(MembershipPlan.id == m.plan_id)) or 0
            for m in ours + theirs}
    keep = max(ours + theirs, key=lambda m: (rank[m.id], m in ours, -m.id))
    plan = session.get(MembershipPlan, keep.plan_id)
    assert plan is not None
    extension, merged = 0, []
    for other in ours + theirs:
        if other is keep:
            continue
        live = [p for p in periods.periods_of(session, other.id) if p.status in LIVE]
        extension += max(0, days_between(day, live[-1].ends_on)) if live else 0
        for period in live:
            merged.append({"id": period.id, "status": period.status})
            period.status, period.closed_on = PeriodStatus.MERGED.value, max(day, period.starts_on)
    if plan.merge_policy != MergePolicy.EXTEND.value:
        extension = 0
    extended = periods.latest(session, keep.id)
    extended.ends_on += dt.timedelta(days=extension)
    extended.grace_until += dt.timedelta(days=extension)
    extended.extension_days += extension
    session.flush()
    return periods.record(session, event.tenant_id, "merge", membership_id=keep.id, period_id=extended.id,
                          merge_id=event.merge_id,
                          outcome={"policy": plan.merge_policy, "kept_membership": keep.id, "extended_period":
                                   extended.id, "extension_days": extension, "merged_periods": merged})


def after_unmerge(session: Session, event: MergeUndone) -> MembershipAction | None:
    done = session.scalar(select(MembershipAction).where(MembershipAction.tenant_id == event.tenant_id,
                                                         MembershipAction.kind == "merge",
                                                         MembershipAction.merge_id == event.merge_id))
    if done is None or session.scalar(select(MembershipAction.id).where(
            MembershipAction.tenant_id == event.tenant_id, MembershipAction.kind == "unmerge",
            MembershipAction.merge_id == event.merge_id)) is not None:
        return None
    for item in done.outcome["merged_periods"]:
        period = session.get(MembershipPeriod, item["id"])
        if period is not None and period.status == PeriodStatus.MERGED.value:
            period.status, period.closed_on = item["status"], None
    extension = int(done.outcome["extension_days"])
    extended = session.get(MembershipPeriod, done.outcome["extended_period"])
    while extended is not None and extended.status == PeriodStatus.UPGRADED.value:  # upgraded since: follow it
        extended = session.scalar(select(MembershipPeriod).where(MembershipPeriod.previous_id == extended.id,
                                                                 MembershipPeriod.kind == PeriodKind.UPGRADE.value))
    if extended is not None and extension:
        back = dt.timedelta(days=extension)
        extended.ends_on -= back
        extended.grace_until -= back
        extended.extension_days -= extension
        _reflow(session, extended)
    session.flush()
    return periods.record(session, event.tenant_id, "unmerge", membership_id=done.membership_id,
                          period_id=extended.id if extended is not None else None, merge_id=event.merge_id,
                          outcome={"restored_periods": done.outcome["merged_periods"], "extension_removed_days":
                                   extension})


def _months(start: dt.date, end: dt.date) -> int:
    return (end.year * 12 + end.month) - (start.year * 12 + start.month)


def _reflow(session: Session, changed: MembershipPeriod) -> None:
    """Terms after ``changed`` follow its new end, each keeping its length in months (from the
    membership's anchor day), as if they had been bought after the unmerged end: shifting by days
    would drift across a 29 February."""
    membership = session.get(Membership, changed.membership_id)
    assert membership is not None
    ends = {changed.id: changed.ends_on}
    for later in periods.periods_of(session, changed.membership_id):
        if later.seq <= changed.seq or later.previous_id not in ends:
            continue
        extension = dt.timedelta(days=later.extension_days)
        months = _months(later.starts_on, later.ends_on - extension)
        grace = later.grace_until - later.ends_on
        if later.kind == PeriodKind.UPGRADE.value:  # the rest of the term it replaced: same end
            later.ends_on = ends[later.previous_id] + extension
        else:
            later.starts_on = ends[later.previous_id]
            later.ends_on = add_months(later.starts_on, months, membership.anchor_day) + extension
        later.grace_until = later.ends_on + grace
        ends[later.id] = later.ends_on
