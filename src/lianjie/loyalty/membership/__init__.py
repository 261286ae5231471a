"""Paid membership (付费会员): plans sold through orders, terms, renewal, upgrade, refund, the reward
certificate, KPIs, and OneID merges. See models.py for how the tables hang together."""
