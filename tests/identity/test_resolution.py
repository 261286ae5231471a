"""OneID through the ingestion pipeline: linking, merging, limits, blocked values, unmerging."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from lianjie.crypto import get_cipher
from lianjie.identity import merging, service
from lianjie.identity.models import Event, IdentityConflict, Merge
from lianjie.tenants.models import Merchant
from tests.factories import make_merchant
from tests.identity.helpers import T0, customers, msg, profile, send

APP = {"app": {"name": "华美小程序", "namespace": "wx-huamei"}}


@pytest.fixture
def shop(db: Session) -> Merchant:
    return make_merchant(db)


def test_web_visitor_then_miniprogram_then_store_is_one_customer(db: Session, shop: Merchant) -> None:
    send(db, shop.id, msg("page", anonymousId="dev-1", name="首页"), msg(anonymousId="dev-1"), source="web")
    send(db, shop.id, msg("identify", anonymousId="dev-1", userId="U1",
                          traits={"wechat_unionid": "UNION-1", "wechat_openid": "OPEN-1", "wechat_appid": "wx-a"}),
         source="miniprogram")
    send(db, shop.id, msg("identify", userId="U1", traits={"phone": "138 1234 5678", "name": "李娜"}), source="pos")
    paid = msg(event="Order Completed", anonymousId="till-txn-1", context={"traits": {"phone": "+86 13812345678"}})
    send(db, shop.id, paid, source="pos")
    person = profile(db, shop.id, phone="13812345678")
    assert customers(db, shop.id, anonymous_id="dev-1") == {person.id}
    assert customers(db, shop.id, wechat_unionid="UNION-1") == {person.id}
    assert person.event_count == 5
    assert {e.source for e in person.recent_events} == {"web", "miniprogram", "pos"}
    assert {(i.type, i.value) for i in person.identifiers} >= {
        ("anonymous_id", "dev-1"), ("user_id", "U1"), ("wechat_unionid", "UNION-1"),
        ("wechat_openid", "wx-a:OPEN-1"), ("phone", "+8613812345678")}
    assert person.traits["name"] == "李娜"


def test_a_message_linking_two_customers_merges_them_into_the_older(db: Session, shop: Merchant) -> None:
    send(db, shop.id, msg(userId="U-old"))
    send(db, shop.id, msg(anonymousId="dev-2"), msg(anonymousId="dev-2"))
    old, young = customers(db, shop.id, user_id="U-old").pop(), customers(db, shop.id, anonymous_id="dev-2").pop()
    assert old < young
    result = send(db, shop.id, msg("identify", userId="U-old", anonymousId="dev-2"))
    assert result.merges == 1
    merged = profile(db, shop.id, anonymous_id="dev-2")
    assert merged.id == old
    assert merged.merged_ids == [young]
    assert merged.event_count == 4
    merge = db.scalar(select(Merge).where(Merge.survivor_id == old))
    assert merge is not None
    assert merge.merged_id == young
    assert merge.cause_message_id is not None


def test_unmerge_gives_back_events_and_identifiers(db: Session, shop: Merchant) -> None:
    send(db, shop.id, msg(userId="U-a"), msg(anonymousId="dev-a"), msg(anonymousId="dev-a"))
    send(db, shop.id, msg(userId="U-a", anonymousId="dev-a"))
    merge = merging.list_merges(db, shop.id)[0][0]
    merging.unmerge(db, shop.id, merge.id, "wrong link")
    a, b = profile(db, shop.id, user_id="U-a"), profile(db, shop.id, anonymous_id="dev-a")
    assert a.id != b.id
    assert (a.event_count, b.event_count) == (2, 2)
    assert {i.type for i in b.identifiers} == {"anonymous_id"}
    with pytest.raises(Exception, match="already undone"):
        merging.unmerge(db, shop.id, merge.id)


def test_a_chain_of_merges_undone_in_the_middle(db: Session, shop: Merchant) -> None:
    send(db, shop.id, msg(userId="A"), msg(anonymousId="b"), msg(anonymousId="c"), msg(anonymousId="d"))
    for anon in ("b", "c", "d"):
        send(db, shop.id, msg(userId="A", anonymousId=anon))
    merges = sorted(merging.list_merges(db, shop.id)[0], key=lambda m: m.id)
    assert len(merges) == 3
    merging.unmerge(db, shop.id, merges[1].id)  # the one that brought "c"
    a = profile(db, shop.id, user_id="A")
    assert customers(db, shop.id, anonymous_id="b") == {a.id}
    assert customers(db, shop.id, anonymous_id="d") == {a.id}
    assert customers(db, shop.id, anonymous_id="c") != {a.id}
    assert profile(db, shop.id, anonymous_id="c").event_count == 1


def test_undoing_an_inner_merge_of_a_nested_chain(db: Session, shop: Merchant) -> None:
    """C joins B, then B's customer joins A; undoing the first puts C alone and leaves A+B."""
    member_b = {"traits": {"member_no": "B-1"}}
    send(db, shop.id, msg(userId="A"), msg(anonymousId="b", context=member_b), msg(anonymousId="c"))
    send(db, shop.id, msg(anonymousId="c", context=member_b))   # C into B
    send(db, shop.id, msg(userId="A", context=member_b))         # B (with C) into A
    inner, outer = sorted(merging.list_merges(db, shop.id)[0], key=lambda m: m.id)
    assert len(outer.moved_ids) == 2
    merging.unmerge(db, shop.id, inner.id)
    a = profile(db, shop.id, user_id="A")
    assert customers(db, shop.id, member_no="B-1") == {a.id}
    assert customers(db, shop.id, anonymous_id="c") != {a.id}
    merging.unmerge(db, shop.id, outer.id)
    assert len({*customers(db, shop.id, user_id="A"), *customers(db, shop.id, member_no="B-1"),
                *customers(db, shop.id, anonymous_id="c")}) == 3


def test_two_unionids_never_merge_and_the_conflict_is_kept(db: Session, shop: Merchant) -> None:
    send(db, shop.id, msg("identify", userId="U1", traits={"wechat_unionid": "X1"}))
    send(db, shop.id, msg("identify", userId="U2", traits={"wechat_unionid": "X2", "phone": "13900000001"}))
    result = send(db, shop.id, msg("identify", userId="U1", traits={"phone": "13900000001"}))
    assert result.merges == 0
    assert result.conflicts == 1
    assert customers(db, shop.id, user_id="U1") != customers(db, shop.id, user_id="U2")
    conflict = db.scalar(select(IdentityConflict).where(IdentityConflict.tenant_id == shop.id))
    assert conflict is not None
    assert conflict.type in {"user_id", "wechat_unionid"}
    # The message is attributed to the strongest identifier it carried: U1.
    assert profile(db, shop.id, user_id="U1").event_count == 2


def test_new_identifier_beyond_the_limit_is_not_linked(db: Session, shop: Merchant) -> None:
    send(db, shop.id, msg("identify", userId="U1", traits={"wechat_unionid": "X1"}))
    result = send(db, shop.id, msg("identify", userId="U1", traits={"wechat_unionid": "X9"}))
    assert result.conflicts == 1
    assert customers(db, shop.id, wechat_unionid="X9") == set()


def test_placeholder_phone_and_null_ids_link_nobody(db: Session, shop: Merchant) -> None:
    send(db, shop.id, msg(anonymousId="t1", context={"traits": {"member_no": "M1", "phone": "13800138000"}}),
         msg(anonymousId="t2", context={"traits": {"member_no": "M2", "phone": "138-0013-8000"}}),
         msg(anonymousId="null"), msg(anonymousId="undefined"), msg(userId="U5", anonymousId=""))
    assert customers(db, shop.id, member_no="M1") != customers(db, shop.id, member_no="M2")
    assert db.scalar(select(func.count()).select_from(Merge)) == 0
    stored = db.scalars(select(Event.profile_id).where(Event.tenant_id == shop.id, Event.anonymous_id == "null")).all()
    assert stored == [None]  # the event is kept, attributed to nobody


def test_a_new_placeholder_shows_up_in_the_report_and_blocking_undoes_it(db: Session, shop: Merchant) -> None:
    for n in range(6):
        send(db, shop.id, msg(anonymousId=f"guest-{n}"))
        send(db, shop.id, msg(anonymousId=f"guest-{n}", context={"traits": {"phone": "13999999999"}}))
    assert len(customers(db, shop.id, phone="13999999999")) == 1
    report = merging.suspicious_values(db, get_cipher(), shop.id, min_merges=5)
    assert [(r.type, r.merges) for r in report] == [("phone", 5)]
    assert "9999" in report[0].value
    assert "13999999999" not in report[0].value
    undone = merging.block_value(db, get_cipher(), shop.id, "phone", "139 9999 9999", undo_merges=True)
    assert len(undone) == 5
    assert len({next(iter(customers(db, shop.id, anonymous_id=f"guest-{n}"))) for n in range(6)}) == 6
    send(db, shop.id, msg(anonymousId="guest-x", context={"traits": {"phone": "13999999999"}}))
    assert len({next(iter(customers(db, shop.id, anonymous_id=a))) for a in ("guest-0", "guest-x")}) == 2


def test_late_older_traits_never_overwrite_newer(db: Session, shop: Merchant) -> None:
    send(db, shop.id, msg("identify", userId="U1", at=T0 + dt.timedelta(days=2), traits={"city": "杭州"}))
    send(db, shop.id, msg("identify", userId="U1", at=T0, traits={"city": "上海", "gender": "female"}))
    traits = profile(db, shop.id, user_id="U1").traits
    assert traits["city"] == "杭州"
    assert traits["gender"] == "female"


def test_alias_links_a_previous_id_to_the_new_one(db: Session, shop: Merchant) -> None:
    send(db, shop.id, msg(anonymousId="dev-9"), msg(userId="old-id"))
    send(db, shop.id, msg("alias", userId="new-id", previousId="dev-9"))
    assert customers(db, shop.id, user_id="new-id") == customers(db, shop.id, anonymous_id="dev-9")
    send(db, shop.id, msg("alias", userId="new-id", previousId="old-id"))
    assert customers(db, shop.id, user_id="old-id") == customers(db, shop.id, user_id="new-id")


def test_a_retried_message_is_stored_once(db: Session, shop: Merchant) -> None:
    message = msg(userId="U1")
    first, again = send(db, shop.id, message, dict(message)), send(db, shop.id, dict(message))
    assert (first.accepted, first.duplicates) == (1, 1)
    assert (again.accepted, again.duplicates) == (0, 1)
    assert profile(db, shop.id, user_id="U1").event_count == 1


def test_merchants_never_share_customers(db: Session, shop: Merchant) -> None:
    other = make_merchant(db, "yuedong", "悦动运动")
    send(db, shop.id, msg("identify", userId="U1", traits={"phone": "13700000000"}))
    send(db, other.id, msg("identify", userId="U1", traits={"phone": "13700000000"}))
    ours, theirs = profile(db, shop.id, phone="13700000000"), profile(db, other.id, phone="13700000000")
    assert ours.id != theirs.id
    assert ours.event_count == theirs.event_count == 1


def test_search_sums_activity_over_merged_profiles(db: Session, shop: Merchant) -> None:
    send(db, shop.id, msg(userId="U1", traits={"city": "杭州"}, type_="identify"))
    send(db, shop.id, msg(anonymousId="d-late", at=T0 + dt.timedelta(days=30)),
         msg(anonymousId="d-late", at=T0 + dt.timedelta(days=31)))
    send(db, shop.id, msg(userId="U1", anonymousId="d-late"))
    rows, total = service.search(db, shop.id, trait=("city", "杭州"))
    assert total == 1
    assert rows[0].event_count == profile(db, shop.id, user_id="U1").event_count == 4
    assert rows[0].last_seen_at == T0 + dt.timedelta(days=31)
    recent, _ = service.search(db, shop.id, seen_after=T0 + dt.timedelta(days=20))
    assert [r.id for r in recent] == [rows[0].id]
