"""loyalty: every saved programme version; a spend refused for too few points is remembered

- ``loyalty_programme_versions``: each saved programme document, numbered per merchant, with who
  saved it; a merchant's programme stored before this migration becomes its version 1.
- ``loyalty_apply`` (migration 0011) replaced: a spend or hold refused for too few points keeps its
  operation (no points, no entries, ``outcome`` naming the refusal) instead of giving the key back,
  so a retry under the same key answers the same refusal (lianjie/loyalty/ledger.py says why).

Revision ID: 0020
Revises: 0018
Create Date: 2026-12-08
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0020"
down_revision: str | None = "0018"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


# The one change: a refused spend is remembered as the Python ledger remembers it (ledger._remember):
# the operation stays, with no points, no hold and an outcome saying why and what was spendable.
_OLD_REFUSAL = """    IF p_points > spendable THEN
        DELETE FROM points_operations WHERE id = op_id;
        op_id := NULL;
        status := 'insufficient';
        RETURN;
    END IF;"""
_NEW_REFUSAL = """    IF p_points > spendable THEN
        UPDATE points_operations SET points = 0, hold_status = NULL, hold_expires_at = NULL,
               outcome = json_build_object('refused', 'insufficient_points', 'spendable', greatest(spendable, 0))
         WHERE id = op_id;
        status := 'insufficient';
        RETURN;
    END IF;"""

# loyalty_apply as migration 0011 made it, but for a refusal (status 'insufficient', which now also
# names the operation in op_id). See 0011 for what each status means.
APPLY = """
CREATE OR REPLACE FUNCTION loyalty_apply(
    p_tenant bigint, p_profile bigint, p_key text, p_kind text, p_request json, p_points bigint,
    p_reason text, p_operator text, p_order_no text, p_lot_expires_at timestamptz,
    p_hold_expires_at timestamptz, p_now timestamptz, p_programme text,
    OUT status text, OUT op_id bigint, OUT kind text, OUT points bigint, OUT hold_status text,
    OUT outcome json, OUT request json, OUT root bigint, OUT members bigint[], OUT programme text,
    OUT spendable bigint)
LANGUAGE plpgsql SET plan_cache_mode = force_generic_plan AS $$
#variable_conflict use_column
DECLARE
    v_accounts bigint[] := '{}';
    v_member bigint;
    v_account bigint;
    v_debt bigint;
    v_lot bigint;
    v_repay bigint;
    v_lots bigint[] := '{}';
    v_lot_accounts bigint[] := '{}';
    v_steps bigint[] := '{}';
    v_debits bigint[] := '{}';  -- per account of v_accounts, what it gives
    v_i int;
    v_taken bigint := 0;
    v_step bigint;
    r record;
BEGIN
    SELECT coalesce(p.merged_into_id, p.id) INTO root FROM profiles p WHERE p.tenant_id = p_tenant AND p.id = p_profile;
    IF root IS NULL THEN
        status := 'no_profile';
        RETURN;
    END IF;
    SELECT coalesce(g.config::text, '') INTO programme FROM loyalty_programmes g WHERE g.tenant_id = p_tenant;
    programme := coalesce(programme, '');
    IF programme IS DISTINCT FROM p_programme THEN
        status := 'programme';
        RETURN;
    END IF;
    programme := NULL;
    members := ARRAY(SELECT p.id FROM profiles p WHERE p.tenant_id = p_tenant AND p.id = root
                     UNION ALL SELECT p.id FROM profiles p WHERE p.tenant_id = p_tenant AND p.merged_into_id = root
                     ORDER BY 1);

    -- 1. claim the idempotency key; a key taken before answers with the stored operation
    INSERT INTO points_operations AS o (tenant_id, idempotency_key, kind, profile_id, request, points, spend_fen,
        order_no, reason, operator, outcome, hold_status, hold_expires_at, created_at)
    VALUES (p_tenant, p_key, p_kind, root, p_request,
        CASE WHEN p_kind = 'earn' THEN p_points ELSE -p_points END, 0, p_order_no, p_reason, p_operator, '{}',
        CASE WHEN p_kind = 'hold' THEN 'held' END, p_hold_expires_at, p_now)
    ON CONFLICT (tenant_id, idempotency_key) DO NOTHING RETURNING o.id INTO op_id;
    IF op_id IS NULL THEN
        SELECT o.id, o.kind, o.points, o.hold_status, o.outcome, o.request
          INTO op_id, kind, points, hold_status, outcome, request
          FROM points_operations o WHERE o.tenant_id = p_tenant AND o.idempotency_key = p_key;
        status := 'taken';
        RETURN;
    END IF;
    kind := p_kind;

    IF p_kind = 'earn' THEN
        -- 2. lock the root's account (made on first use); 3. a new lot, repaying the account's debt first
        SELECT a.id, a.debt INTO v_account, v_debt FROM points_accounts a
         WHERE a.tenant_id = p_tenant AND a.profile_id = root FOR UPDATE;
        IF v_account IS NULL THEN
            INSERT INTO points_accounts (tenant_id, profile_id, balance, debt, created_at)
            VALUES (p_tenant, root, 0, 0, p_now) ON CONFLICT (tenant_id, profile_id) DO NOTHING;
            SELECT a.id, a.debt INTO v_account, v_debt FROM points_accounts a
             WHERE a.tenant_id = p_tenant AND a.profile_id = root FOR UPDATE;
        END IF;
        v_repay := least(v_debt, p_points);
        INSERT INTO points_lots (tenant_id, account_id, operation_id, amount, remaining, available_at, expires_at,
                                 created_at)
        VALUES (p_tenant, v_account, op_id, p_points, p_points - v_repay, p_now, p_lot_expires_at, p_now)
        RETURNING id INTO v_lot;
        UPDATE points_accounts SET balance = balance + p_points, debt = debt - v_repay WHERE id = v_account;
        INSERT INTO points_entries (tenant_id, account_id, operation_id, lot_id, kind, amount, created_at)
        SELECT p_tenant, v_account, op_id, e.lot, e.kind, e.amount, p_now
          FROM (VALUES (1, v_lot, 'credit', p_points), (2, v_lot, 'repay', -v_repay), (3, NULL, 'repay', v_repay))
               AS e(n, lot, kind, amount)
         WHERE e.n = 1 OR v_repay > 0 ORDER BY e.n;
        points := p_points;
        status := 'done';
        RETURN;
    END IF;

    -- 2. lock the customer's accounts in id order; 3. take from the spendable lots, soonest-expiring first
    -- Found profile by profile, then locked by id: a generic plan for ``profile_id = ANY(members)``
    -- reads every account of the merchant.
    FOREACH v_member IN ARRAY members LOOP
        SELECT a.id INTO v_account FROM points_accounts a WHERE a.tenant_id = p_tenant AND a.profile_id = v_member;
        IF FOUND THEN
            v_accounts := v_accounts || v_account;
        END IF;
    END LOOP;
    SELECT array_agg(a.id ORDER BY a.id), coalesce(sum(a.debt), 0) INTO v_accounts, v_debt
      FROM (SELECT a.id, a.debt FROM points_accounts a WHERE a.id = ANY(v_accounts) ORDER BY a.id FOR UPDATE) a;
    spendable := -v_debt;
    FOR r IN SELECT l.id, l.account_id, l.remaining FROM points_lots l
              WHERE l.account_id = ANY(v_accounts) AND l.remaining > 0 AND l.available_at <= p_now
                AND (l.expires_at IS NULL OR l.expires_at > p_now)
              ORDER BY l.expires_at IS NULL, l.expires_at, l.id LOOP
        spendable := spendable + r.remaining;
        v_step := least(r.remaining, p_points - v_taken);
        IF v_step > 0 THEN
            v_lots := v_lots || r.id;
            v_lot_accounts := v_lot_accounts || r.account_id;
            v_steps := v_steps || v_step;
            v_taken := v_taken + v_step;
            v_i := array_position(v_accounts, r.account_id);
            v_debits[v_i] := coalesce(v_debits[v_i], 0) + v_step;
        END IF;
    END LOOP;
    IF p_points > spendable THEN
        UPDATE points_operations SET points = 0, hold_status = NULL, hold_expires_at = NULL,
               outcome = json_build_object('refused', 'insufficient_points', 'spendable', greatest(spendable, 0))
         WHERE id = op_id;
        status := 'insufficient';
        RETURN;
    END IF;
    -- Row by row, by primary key: a join to unnest() may be planned as a scan of the whole table. The
    -- rows are updated before the entries that name them are inserted: the entries' foreign key checks
    -- then find them locked by this transaction already, where they would otherwise share-lock them and
    -- make the update that follows record both (a multixact, which costs more than the rest together).
    FOR v_i IN 1..coalesce(array_length(v_lots, 1), 0) LOOP
        UPDATE points_lots SET remaining = remaining - v_steps[v_i] WHERE id = v_lots[v_i];
    END LOOP;
    FOR v_i IN 1..coalesce(array_length(v_accounts, 1), 0) LOOP
        IF v_debits[v_i] IS NOT NULL THEN
            UPDATE points_accounts SET balance = balance - v_debits[v_i] WHERE id = v_accounts[v_i];
        END IF;
    END LOOP;
    INSERT INTO points_entries (tenant_id, account_id, operation_id, lot_id, kind, amount, created_at)
    SELECT p_tenant, e.account, op_id, e.lot, 'debit', -e.step, p_now
      FROM unnest(v_lot_accounts, v_lots, v_steps) WITH ORDINALITY AS e(account, lot, step, n) ORDER BY e.n;
    points := -p_points;
    hold_status := CASE WHEN p_kind = 'hold' THEN 'held' END;
    status := 'done';
END
$$
"""

# What downgrade() puts back: 0011's function, which gave a refused spend's key back.
assert _NEW_REFUSAL in APPLY
APPLY_0011 = APPLY.replace(_NEW_REFUSAL, _OLD_REFUSAL)


def upgrade() -> None:
    op.create_table(
        "loyalty_programme_versions",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("tenant_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("version", sa.BigInteger(), nullable=False),
        sa.Column("config", sa.JSON(), nullable=False),
        sa.Column("change", sa.String(length=16), nullable=False),
        sa.Column("rolled_back_to", sa.BigInteger(), nullable=True),
        sa.Column("saved_by", sa.String(length=120), nullable=False),
        sa.Column("saved_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["tenant_id"], ["merchants.id"],
                                name=op.f("fk_loyalty_programme_versions_tenant_id_merchants"), ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_loyalty_programme_versions")),
        sa.UniqueConstraint("tenant_id", "version", name=op.f("uq_loyalty_programme_versions_tenant_id_version")),
    )
    op.execute("INSERT INTO loyalty_programme_versions (tenant_id, version, config, change, saved_by, saved_at) "
               "SELECT tenant_id, 1, config, 'migrated', 'system', updated_at FROM loyalty_programmes")
    if op.get_bind().dialect.name == "postgresql":
        op.execute(APPLY)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(APPLY_0011)
    op.drop_table("loyalty_programme_versions")
