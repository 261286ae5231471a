"""loyalty: PostgreSQL functions for the till's hot ledger operations (earn, spend or hold, confirm)

The functions are the server half of lianjie.loyalty.fastpath, which explains why they exist and
how they are kept equal to the Python ledger. Nothing on SQLite (the Python ledger runs there).

Revision ID: 0011
Revises: 0010
Create Date: 2026-11-24
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Both functions run with cached generic plans: the engine's sessions plan every statement afresh
# (db.py), which costs more than running these key lookups.
#
# loyalty_apply: one earn (p_kind 'earn', p_points credited as a lot spendable at once and expiring at
# p_lot_expires_at) or spend (p_kind 'spend' or 'hold', p_points taken from the soonest-expiring lots),
# as lianjie.loyalty.ledger does it. p_programme is the programme document (its stored text, '' for
# none) the caller computed p_lot_expires_at and p_hold_expires_at from. The answer's status says:
#   'no_profile'   no such profile; nothing written
#   'programme'    the programme is not p_programme (returned in `programme`); nothing written
#   'taken'        the key was used before: the stored operation (the caller replays it or answers 409)
#   'insufficient' too few points (`spendable`); nothing written
#   'done'         applied
APPLY = """
CREATE FUNCTION loyalty_apply(
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
        DELETE FROM points_operations WHERE id = op_id;
        op_id := NULL;
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

# loyalty_confirm_hold: the hold as it was (NULL columns when there is no such operation), confirmed
# when it is the merchant's hold, still held and not lapsed at p_now.
CONFIRM = """
CREATE FUNCTION loyalty_confirm_hold(p_tenant bigint, p_hold bigint, p_now timestamptz,
    OUT tenant_id bigint, OUT kind text, OUT points bigint, OUT hold_status text, OUT hold_expires_at timestamptz)
LANGUAGE plpgsql SET plan_cache_mode = force_generic_plan AS $$
#variable_conflict use_column
BEGIN
    SELECT o.tenant_id, o.kind, o.points, o.hold_status, o.hold_expires_at
      INTO tenant_id, kind, points, hold_status, hold_expires_at
      FROM points_operations o WHERE o.id = p_hold FOR UPDATE;
    IF tenant_id = p_tenant AND kind = 'hold' AND hold_status = 'held'
       AND (hold_expires_at IS NULL OR hold_expires_at > p_now) THEN
        UPDATE points_operations SET hold_status = 'confirmed' WHERE id = p_hold;
    END IF;
END
$$
"""


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute(APPLY)
    op.execute(CONFIRM)


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute("DROP FUNCTION IF EXISTS loyalty_confirm_hold(bigint, bigint, timestamptz)")
    op.execute("DROP FUNCTION IF EXISTS loyalty_apply(bigint, bigint, text, text, json, bigint, text, text, text, "
               "timestamptz, timestamptz, timestamptz, text)")
