"""Property test of the identity graph: random messages and undos never leave it inconsistent."""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from sqlalchemy import select
from sqlalchemy.orm import Session

from lianjie.identity import merging
from lianjie.identity.config import DEFAULT_TYPES
from lianjie.identity.models import Identifier, Merge, Profile
from tests.factories import make_merchant
from tests.identity.helpers import msg, send

# A small universe of values so that random messages collide often.
IDS = {"userId": [f"U{i}" for i in range(3)], "anonymousId": [f"d{i}" for i in range(8)]}
TRAITS = {"phone": [f"1390000000{i}" for i in range(4)], "wechat_unionid": [f"X{i}" for i in range(2)],
          "member_no": [f"M{i}" for i in range(2)]}


@st.composite
def messages(draw: st.DrawFn) -> dict[str, Any]:
    fields: dict[str, Any] = {"anonymousId": draw(st.sampled_from(IDS["anonymousId"]))}
    if draw(st.booleans()):
        fields["userId"] = draw(st.sampled_from(IDS["userId"]))
    traits = {k: draw(st.sampled_from(v)) for k, v in TRAITS.items() if draw(st.booleans())}
    return msg("identify", traits=traits, **fields)


steps = st.lists(st.one_of(st.tuples(st.just("send"), st.lists(messages(), min_size=1, max_size=6)),
                           st.tuples(st.just("undo"), st.integers(0, 20))), min_size=3, max_size=16)


def check_graph(db: Session, tenant_id: int) -> None:
    profiles = {p.id: p for p in db.scalars(select(Profile).where(Profile.tenant_id == tenant_id))}
    for profile in profiles.values():  # every pointer goes straight to a survivor
        if profile.merged_into_id is not None:
            assert profiles[profile.merged_into_id].merged_into_id is None
    counts: Counter[tuple[int, str]] = Counter()
    for ident in db.scalars(select(Identifier).where(Identifier.tenant_id == tenant_id)):
        owner = profiles[ident.profile_id]
        counts[(owner.merged_into_id or owner.id, ident.type)] += 1
    for (_, type_), n in counts.items():  # no customer exceeds a limit
        assert n <= DEFAULT_TYPES[type_]["limit"], (type_, n)


@pytest.mark.slow
@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(plan=steps)
def test_random_links_and_undos_keep_the_graph_consistent(db: Session, plan: list[tuple[str, Any]]) -> None:
    savepoint = db.begin_nested()
    shop = make_merchant(db, "prop-shop")
    for action, arg in plan:
        if action == "send":
            send(db, shop.id, *arg)
        else:
            live = db.scalars(select(Merge.id).where(Merge.tenant_id == shop.id, Merge.undone_at.is_(None))
                              .order_by(Merge.id)).all()
            if live:
                merging.unmerge(db, shop.id, live[arg % len(live)])
        check_graph(db, shop.id)
    event(f"merges made: {min(len(db.scalars(select(Merge.id).where(Merge.tenant_id == shop.id)).all()), 3)}+")
    # Undoing every merge, newest first, leaves every base profile on its own again.
    for merge_id in db.scalars(select(Merge.id).where(Merge.tenant_id == shop.id, Merge.undone_at.is_(None))
                               .order_by(Merge.id.desc())).all():
        merging.unmerge(db, shop.id, merge_id)
    assert db.scalars(select(Profile.id).where(Profile.tenant_id == shop.id,
                                               Profile.merged_into_id.is_not(None))).all() == []
    savepoint.rollback()
