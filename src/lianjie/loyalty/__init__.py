"""Loyalty: the points programme, ledger and tiers (later paid plans, coupons, coalitions)."""
