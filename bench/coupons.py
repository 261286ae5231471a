"""Benchmark: coupon validate + redeem operations/s with concurrent tills, next to a single-row UPDATE loop.

For each database (SQLite, and PostgreSQL when a server can be started or --postgres-url is given):
migrates a fresh database, creates a merchant with a small category tree and catalogue, a 满200减30
template scoped to a category (so every validation walks the tree and looks up the lines'
categories), --customers customers, and --ops coupons issued to random customers. Then --clients
threads spread over --processes processes (as requests over the server's workers) each act as a
till: one operation is a validation of a two-line basket (a read transaction) followed by the
redemption of that coupon for the customer's order (a write transaction, queued as the API queues
writers; the orders are stored in the setup, as a coupon is redeemed for a stored order).
The same-run baseline is the same threads running ``UPDATE … SET n = n + 1 WHERE id = ?``, one
transaction per statement, as bench/ledger.py does.

Then, as bench/settlement.py does, it times closing a coalition's month over --settlement-entries
ledger entries (1,000,000; 0 skips it) next to a plain GROUP BY over the same rows.

    python bench/coupons.py [--ops 4000] [--clients 16] [--processes 2] [--customers 1000] [--postgres-url URL]
                            [--settlement-entries 1000000]
"""

from __future__ import annotations

import argparse
import random
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from rich.progress import Progress  # noqa: E402
from sqlalchemy import Engine, insert, select  # noqa: E402
from sqlalchemy.orm import Session, sessionmaker  # noqa: E402

from bench import settlement  # noqa: E402
from bench.ledger import create_counters, figures, run_bench, run_clients, update_maker  # noqa: E402
from lianjie import migrate  # noqa: E402
from lianjie.commerce import catalogue  # noqa: E402
from lianjie.commerce.models import Order  # noqa: E402
from lianjie.commerce.schemas import CategoryIn, ProductIn  # noqa: E402
from lianjie.db import create_db_engine, make_session_factory, transaction, utcnow, writer_turn  # noqa: E402
from lianjie.identity.models import Profile  # noqa: E402
from lianjie.loyalty.coupons import issuing, redemption, templates  # noqa: E402
from lianjie.loyalty.coupons.models import Coupon  # noqa: E402
from lianjie.loyalty.coupons.schemas import BasketIn, IssueIn, RedeemIn, TemplateIn  # noqa: E402
from lianjie.tenants import service as tenants  # noqa: E402
from lianjie.tenants.schemas import MerchantCreate  # noqa: E402

LINES = [{"sku": "DRESS", "quantity": 1, "amount_fen": 39900},
         {"sku": "LIPSTICK", "quantity": 2, "amount_fen": 39800}]


def setup(factory: sessionmaker[Session], customers: int, coupons: int) -> tuple[int, list[tuple[str, int | None]]]:
    """The merchant, its catalogue and template, and ``coupons`` coupons as (code, owner)."""
    with transaction(factory, write=True) as session:
        merchant, _ = tenants.create_merchant(session, MerchantCreate(slug="bench", name="压测商户"))
        for code, parent in [("C1", None), ("C11", "C1"), ("C111", "C11"), ("C2", None)]:
            catalogue.upsert_category(session, merchant.id, CategoryIn(code=code, name=code, parent_code=parent))
        for sku, category in [("DRESS", "C111"), ("LIPSTICK", "C2")]:
            catalogue.upsert_product(session, merchant.id, ProductIn(sku=sku, name=sku, category_code=category,
                                                                     price_fen=19900))
        templates.create(session, merchant.id, TemplateIn.model_validate({
            "code": "MJ200", "name": "满200减30", "kind": "spend_save", "threshold_fen": 20000,
            "amount_off_fen": 3000, "scope": {"categories": ["C1"]}, "valid_days": 30}))
        profiles = [Profile(tenant_id=merchant.id, traits={}, event_count=0) for _ in range(customers)]
        session.add_all(profiles)
        session.flush()
        rng = random.Random(7)
        step = min(1000, customers)  # one coupon per customer and issue
        for start in range(0, coupons, step):
            owners = rng.sample([p.id for p in profiles], min(step, coupons - start))
            issuing.issue(session, merchant.id, "MJ200", IssueIn(idempotency_key=f"setup-{start}", profile_ids=owners))
        rows = session.execute(select(Coupon.code, Coupon.profile_id).order_by(Coupon.id)).all()
        now = utcnow()
        session.execute(insert(Order), [  # the orders the coupons are redeemed for (without the discount)
            {"tenant_id": merchant.id, "order_no": f"B-{i}", "ordered_at": now, "channel": "offline",
             "currency": "CNY", "profile_id": owner, "list_fen": 79700, "discount_fen": 0, "paid_fen": 79700,
             "source": "bench"} for i, (_, owner) in enumerate(rows)])
        return merchant.id, [(code, owner) for code, owner in rows]


def coupon_maker(engine: Engine, factory: sessionmaker[Session], tenant_id: int,
                 coupons: list[Any]) -> Callable[[random.Random, int], None]:
    def work(rng: random.Random, i: int) -> None:
        code, owner = coupons[i]
        basket = {"code": code, "profile_id": owner, "store_code": None, "channel": "offline", "lines": LINES}
        with transaction(factory) as session:  # validation only reads
            answer = redemption.validate(session, tenant_id, BasketIn.model_validate(basket))
        if not answer.applicable or answer.discount_fen != 3000:
            raise AssertionError(answer)
        with writer_turn(factory), transaction(factory, write=True) as session:  # as the API's entry point does
            redemption.redeem(session, tenant_id, RedeemIn.model_validate(basket | {"order_no": f"B-{i}"}))
    return work


def run_one(label: str, url: str, args: argparse.Namespace, progress: Progress) -> dict[str, Any]:
    engine = create_db_engine(url)
    migrate.upgrade_engine(engine)
    tenant_id, coupons = setup(make_session_factory(engine), args.customers, args.ops)
    create_counters(engine, args.customers)
    engine.dispose()
    base_s, base_lat = run_clients(update_maker, url, tenant_id, list(range(args.customers)), args, progress,
                                   f"{label}: UPDATE loop")
    run = run_clients(coupon_maker, url, tenant_id, coupons, args, progress, f"{label}: validate+redeem")
    return figures(label, args.ops, run, (base_s, base_lat))


def main() -> None:
    args = run_bench(__doc__, "coupons", "validate+redeem/s", run_one, lambda args: (
        f"({args.clients} client threads in {args.processes} processes; one operation = validate a 2-line basket "
        f"(read transaction) + redeem that coupon for its stored order (write transaction); {args.ops} coupons of a "
        "category-scoped 满200减30 template; baseline = single-row UPDATE per transaction)"),
        more_options=lambda parser: settlement.add_options(parser, "settlement-"))
    if args.settlement_entries > 0:
        print("\ncoalition settlement (bench/settlement.py):")
        settlement.run(argparse.Namespace(
            entries=args.settlement_entries, merchants=args.settlement_merchants, cards=args.settlement_cards,
            lots=args.settlement_lots, postgres_url=args.postgres_url, skip_postgres=args.skip_postgres))


if __name__ == "__main__":
    main()
