"""Identity resolution for a batch of messages of one merchant, in arrival order.

Per message (identifiers sorted by priority, strongest first):

1. The strongest identifier already known decides the *base profile* the message is attributed to.
   If none is known, a new profile is started.
2. Every other known identifier that belongs to another customer (another root) asks for a merge.
   The merge is made unless the merged customer would hold more identifiers of some type than that
   type's limit (two unionids, four phones …); then the link is dropped and a conflict recorded.
   The oldest customer survives.
3. Every new identifier is attached to the base profile, again unless that breaks a limit.

Example: a web visitor ``anon-1`` (profile 7) logs in as ``u-42`` (profile 3, older). The message
``{anonymousId: anon-1, userId: u-42}`` is attributed to profile 3 (user_id outranks anonymous_id),
and profile 7 merges into 3. Undoing that merge later gives profile 7 back its events.

Everything is looked up once per batch and written with bulk statements at the end, which is what
keeps ingestion fast; new profiles get temporary negative ids until they are inserted.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Table, select, text
from sqlalchemy.orm import Session

from lianjie.crypto import PiiCipher
from lianjie.db import (
    allocate_ids,
    driver_execute,
    driver_insert,
    json_param,
    json_text,
    rows_by_key,
    time_binder,
    transaction_cache,
    utcnow,
)
from lianjie.domain_events import publish
from lianjie.identity.config import IdentityConfig
from lianjie.identity.events import ProfilesMerged
from lianjie.identity.identifiers import Ident, is_pii
from lianjie.identity.models import ErasedIdentifier, Identifier, Merge, Profile

# With the lock, for this transaction only: look rows up by index. Every read of the write path is a
# look-up by a unique key, but a merchant's events and identifiers grow by thousands a second while
# the planner's statistics still describe the table as it was at the last ANALYZE; with them it chose
# to read every event of the merchant to check a batch's messageIds (8 ms a batch at 30,000 events,
# growing with the table).
_GRAPH_LOCK = text("SELECT pg_advisory_xact_lock(:key), set_config('enable_seqscan', 'off', true),"
                   " set_config('enable_bitmapscan', 'off', true)")


_LOCKS_HELD = "lianjie.identity.graph_locks"


def lock_identity_graph(session: Session, tenant_id: int) -> None:
    """One writer of a merchant's identity graph at a time, until the transaction ends.

    Resolution reads the graph and then changes it; two batches doing that at once could both merge
    the same customer. SQLite's write lock (``transaction(write=True)``) already serialises them; on
    PostgreSQL a transaction-level advisory lock per merchant does, and the same statement tells the
    planner to use the indexes (see ``_GRAPH_LOCK``).
    """
    if session.get_bind().dialect.name != "postgresql":
        return
    held = transaction_cache(session, _LOCKS_HELD)
    if tenant_id not in held:  # taken once per transaction: a writer may lock before it resolves
        session.execute(_GRAPH_LOCK, {"key": 0x4C4A_0000_0000 + tenant_id})
        held[tenant_id] = True


PROFILES: Table = Profile.__table__  # type: ignore[assignment]
IDENTIFIERS: Table = Identifier.__table__  # type: ignore[assignment]
MERGES: Table = Merge.__table__  # type: ignore[assignment]


@dataclass
class Known:
    """An identifier row as far as this batch knows it."""

    id: int | None
    profile_id: int


@dataclass
class PendingMerge:
    survivor: int
    merged: int
    moved: list[int]
    message_id: str | None
    cause: Ident
    via: Ident


# An explicit ``alias`` may give a customer a second userId: the call says the two are one person.
ALIAS_RELAXES = frozenset({"user_id"})
_NOTHING_RELAXED: frozenset[str] = frozenset()


class BatchResolver:
    """Resolves the messages of one batch; :meth:`flush` writes what they created."""

    def __init__(self, session: Session, tenant_id: int, config: IdentityConfig, cipher: PiiCipher) -> None:
        self.session = session
        self.tenant_id = tenant_id
        self.config = config
        self.cipher = cipher
        self.known: dict[tuple[str, str], Known] = {}
        self.root_of: dict[int, int] = {}
        self.members: dict[int, set[int]] = {}
        self.counts: defaultdict[int, Counter[str]] = defaultdict(Counter)
        self.erased: set[tuple[str, str]] = set()
        self.reappeared: set[int] = set()
        self._next_temp = -1
        self.new_profiles: dict[int, dt.datetime] = {}
        self.new_identifiers: list[tuple[Ident, int, str | None]] = []
        self.merges: list[PendingMerge] = []
        self.conflicts: list[dict[str, Any]] = []
        self.merge_count = 0
        self.conflict_count = 0

    # ---- lookups ---------------------------------------------------------------------------------

    def prefetch(self, idents: Iterable[Ident]) -> None:
        """Load every identifier of the batch, its customer and that customer's identifier counts."""
        wanted = {i.hash for i in idents if i.key not in self.known}
        if not wanted:
            return
        rows = rows_by_key(self.session, "SELECT i.id, i.type, i.value_hash, i.profile_id,"
                                         " COALESCE(p.merged_into_id, p.id) FROM identifiers i"
                                         " JOIN profiles p ON p.id = i.profile_id WHERE i.tenant_id = ? AND"
                                         " i.value_hash {key}", (self.tenant_id,), list(wanted))
        self._load_erased(wanted - {row[2] for row in rows})
        roots = set()
        for ident_id, type_, value_hash, profile_id, root in rows:
            self.known[(type_, value_hash)] = Known(ident_id, profile_id)
            self.root_of[profile_id] = root
            roots.add(root)
        self._load_customers(roots - set(self.members))

    def _load_erased(self, unknown: set[str]) -> None:
        """Which never-seen values belonged to an erased person (most merchants have erased no one)."""
        if not unknown or driver_execute(self.session, "SELECT 1 FROM erased_identifiers WHERE tenant_id = ? LIMIT 1",
                                         (self.tenant_id,)).first() is None:
            return
        hashes = list(unknown)
        for start in range(0, len(hashes), 500):
            self.erased.update(self.session.execute(
                select(ErasedIdentifier.type, ErasedIdentifier.value_hash).where(
                    ErasedIdentifier.tenant_id == self.tenant_id,
                    ErasedIdentifier.value_hash.in_(hashes[start:start + 500]))).all())

    def _load_customers(self, roots: set[int]) -> None:
        """Members of these customers and their identifier counts.

        Two index searches (by id; by tenant and ``merged_into_id``): written as one ``OR``, SQLite
        scans every profile of the merchant.
        """
        if not roots:
            return
        keys = list(roots)
        found = set(rows_by_key(self.session, "SELECT id, merged_into_id FROM profiles WHERE tenant_id = ?"
                                              " AND id {key}", (self.tenant_id,), keys, key_type="bigint"))
        found.update(rows_by_key(self.session, "SELECT id, merged_into_id FROM profiles WHERE tenant_id = ?"
                                               " AND merged_into_id {key}", (self.tenant_id,), keys, key_type="bigint"))
        for profile_id, merged_into in found:
            root = merged_into or profile_id
            self.members.setdefault(root, set()).add(profile_id)
            self.root_of[profile_id] = root
        member_ids = [p for root in roots for p in self.members.get(root, ())]
        for profile_id, type_, count in rows_by_key(
                self.session, "SELECT profile_id, type, count(*) FROM identifiers WHERE profile_id {key}"
                              " GROUP BY profile_id, type", (), member_ids, key_type="bigint"):
            self.counts[self.root_of[profile_id]][type_] += count

    # ---- resolving -------------------------------------------------------------------------------

    def resolve(self, idents: Sequence[Ident], message_id: str | None, seen_at: dt.datetime,
                relax: frozenset[str] | None = None) -> int | None:
        """Attribute one message to a base profile (None: it carries no identifier).

        ``idents`` come strongest first (:func:`~lianjie.identity.identifiers.by_priority`); ``relax``
        names types whose limit an explicit ``alias`` may exceed. Merges and conflicts are counted in
        :attr:`merge_count` and :attr:`conflict_count`.
        """
        if not idents:
            return None
        relax = relax or _NOTHING_RELAXED
        known_map = self.known
        known = [(i, known_map[i.key]) for i in idents if i.key in known_map]
        if known:
            base = known[0][1].profile_id
        else:
            base = self._new_profile(seen_at, reappeared=any(i.key in self.erased for i in idents))
        target = self.root_of[base]
        for ident, record in known[1:]:
            other = self.root_of[record.profile_id]
            if other == target:
                continue
            survivor = self._try_merge(target, other, ident, known[0][0], message_id, relax)
            if survivor is None:
                self.conflict_count += 1
            else:
                self.merge_count += 1
                target = survivor
        if len(known) == len(idents):
            return base
        for ident in idents:
            if ident.key in known_map:
                continue
            limit = self.config.rule(ident.type).limit
            if ident.type not in relax and self.counts[target][ident.type] >= limit:
                self._conflict(ident.type, [target], message_id, None,
                               f"new {ident.type} not linked: the customer already has "
                               f"{self.counts[target][ident.type]} (limit {limit})")
                self.conflict_count += 1
                continue
            self._attach(ident, base, message_id)
        return base

    def _new_profile(self, seen_at: dt.datetime, *, reappeared: bool) -> int:
        temp = self._next_temp
        self._next_temp -= 1
        self.new_profiles[temp] = seen_at
        self.root_of[temp] = temp
        self.members[temp] = {temp}
        self.counts[temp] = Counter()
        if reappeared:
            self.reappeared.add(temp)
        return temp

    def _attach(self, ident: Ident, base: int, message_id: str | None) -> None:
        self.known[ident.key] = Known(None, base)
        self.counts[self.root_of[base]][ident.type] += 1
        self.new_identifiers.append((ident, base, message_id))

    def _try_merge(self, a: int, b: int, cause: Ident, via: Ident, message_id: str | None,
                   relax: frozenset[str]) -> int | None:
        """Merge customers ``a`` and ``b`` unless a limit forbids it; returns the survivor."""
        combined = self.counts[a] + self.counts[b]
        broken = [t for t, n in combined.items()
                  if t in self.config.types and t not in relax and n > self.config.rule(t).limit]
        if broken:
            kind = max(broken, key=lambda t: self.config.rule(t).priority)
            self._conflict(kind, [a, b], message_id, cause,
                           f"{cause.type} links two customers but together they would hold "
                           f"{combined[kind]} {kind} (limit {self.config.rule(kind).limit}); not merged")
            return None
        survivor, merged = self._older(a, b), b if self._older(a, b) == a else a
        moved = sorted(self.members[merged])
        for profile_id in moved:
            self.root_of[profile_id] = survivor
        self.members[survivor] |= self.members.pop(merged)
        self.counts[survivor] = combined
        self.counts.pop(merged, None)
        self.merges.append(PendingMerge(survivor, merged, moved, message_id, cause, via))
        return survivor

    @staticmethod
    def _older(a: int, b: int) -> int:
        """Stored profiles (positive ids, in creation order) are older than this batch's new ones."""
        if (a > 0) != (b > 0):
            return a if a > 0 else b
        return min(a, b) if a > 0 else max(a, b)

    def _conflict(self, type_: str, profiles: list[int], message_id: str | None, cause: Ident | None,
                  detail: str) -> None:
        """Keep a refused link for review; ``cause`` is the known identifier that would have merged
        ``profiles`` (None when a new identifier was left unlinked: it is stored nowhere)."""
        self.conflicts.append({"type": type_, "profiles": profiles, "message_id": message_id, "detail": detail,
                               "cause": cause})

    # ---- writing ---------------------------------------------------------------------------------

    def flush(self) -> dict[int, int]:
        """Insert new profiles, identifiers, merges and conflicts; returns temporary id -> real id."""
        real = self._insert_profiles()

        def fix(profile_id: int) -> int:
            return real.get(profile_id, profile_id)

        self._insert_identifiers(fix)
        self._apply_merges(fix)
        now = time_binder(self.session)(utcnow())
        driver_insert(self.session, "identity_conflicts (tenant_id, message_id, type, profile_ids, detail,"
                                    " identifier_id, identifier_type, created_at)",
                      f"(?, ?, ?, {json_param(self.session)}, ?, ?, ?, ?)",
                      [(self.tenant_id, c["message_id"], c["type"], json_text([fix(p) for p in c["profiles"]]),
                        c["detail"][:500], self._stored_id(c["cause"]), c["cause"] and c["cause"].type, now)
                       for c in self.conflicts])
        self._rebase(real)
        self.new_profiles, self.new_identifiers, self.merges, self.conflicts = {}, [], [], []
        return real

    def _stored_id(self, ident: Ident | None) -> int | None:
        """The row id of a known identifier (one first seen in this batch has it once inserted)."""
        record = None if ident is None else self.known.get(ident.key)
        return None if record is None else record.id

    def _insert_profiles(self) -> dict[int, int]:
        if not self.new_profiles:
            return {}
        temps = list(self.new_profiles)
        ids = allocate_ids(self.session, PROFILES, len(temps))
        bind_time = time_binder(self.session)
        rows = [(real_id, self.tenant_id, bind_time(self.new_profiles[t]),
                 json_text({"_reappeared_after_erasure": [True, self.new_profiles[t].isoformat()]}
                           if t in self.reappeared else {}), 0)
                for t, real_id in zip(temps, ids, strict=True)]
        driver_insert(self.session, "profiles (id, tenant_id, created_at, traits, event_count)",
                      f"(?, ?, ?, {json_param(self.session)}, ?)", rows)
        return dict(zip(temps, ids, strict=True))

    def _insert_identifiers(self, fix: Any) -> None:
        if not self.new_identifiers:
            return
        ids = allocate_ids(self.session, IDENTIFIERS, len(self.new_identifiers))
        rows = []
        now = time_binder(self.session)(utcnow())
        for (ident, base, message_id), ident_id in zip(self.new_identifiers, ids, strict=True):
            pii = is_pii(ident.type)
            rows.append((ident_id, self.tenant_id, ident.type, ident.hash, None if pii else ident.value,
                         self.cipher.encrypt(ident.value) if pii else None, fix(base), message_id, now))
            self.known[ident.key].id = ident_id
        driver_insert(self.session, "identifiers (id, tenant_id, type, value_hash, value, value_encrypted,"
                                    " profile_id, first_message_id, created_at)", "(?, ?, ?, ?, ?, ?, ?, ?, ?)", rows)

    def _apply_merges(self, fix: Any) -> None:
        """Write the batch's merges with two executemany statements, then tell the other domains.

        Pointers are updated in merge order, so a profile moved twice in one batch (B into A, then A
        into an older C) ends up pointing at the last survivor, as one UPDATE per merge would leave
        it. Subscribers run after every merge is written, as they did when the ORM flushed them.
        """
        if not self.merges:
            return
        ids = allocate_ids(self.session, MERGES, len(self.merges))
        now = time_binder(self.session)(utcnow())
        pointers: list[tuple[int, int]] = []
        rows, events = [], []
        for pending, merge_id in zip(self.merges, ids, strict=True):
            survivor, merged = fix(pending.survivor), fix(pending.merged)
            moved = [fix(p) for p in pending.moved]
            pointers += [(survivor, p) for p in moved]
            cause, via = self.known.get(pending.cause.key), self.known.get(pending.via.key)
            rows.append((merge_id, self.tenant_id, survivor, merged, json_text(moved), pending.message_id,
                         cause.id if cause else None, pending.cause.type, via.id if via else None, now))
            events.append(ProfilesMerged(self.tenant_id, merge_id, survivor, merged, tuple(moved)))
        driver_execute(self.session, "UPDATE profiles SET merged_into_id = ? WHERE id = ?", pointers)
        driver_insert(self.session, "profile_merges (id, tenant_id, survivor_id, merged_id, moved_ids,"
                                    " cause_message_id, cause_identifier_id, cause_type, via_identifier_id,"
                                    " created_at)",
                      f"(?, ?, ?, ?, {json_param(self.session)}, ?, ?, ?, ?, ?)", rows)
        for event in events:
            publish(self.session, event)

    def _rebase(self, real: dict[int, int]) -> None:
        """Replace temporary ids in the caches so the next batch on this resolver sees real ones."""
        if not real:
            return
        for record in self.known.values():
            record.profile_id = real.get(record.profile_id, record.profile_id)
        self.root_of = {real.get(p, p): real.get(r, r) for p, r in self.root_of.items()}
        self.members = {real.get(r, r): {real.get(p, p) for p in ms} for r, ms in self.members.items()}
        self.counts = defaultdict(Counter, {real.get(r, r): c for r, c in self.counts.items()})
        self.reappeared = set()
