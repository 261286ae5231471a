"""Deterministic demo retail world: generator of merchants, customers, orders and events."""
