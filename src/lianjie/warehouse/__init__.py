"""Warehouse: the operational store copied into an analytics engine (DuckDB by default) for segments,
traits and KPIs written as Ibis expressions."""
