"""Analytics: KPIs over the warehouse (sales, members, repurchase, cohorts, RFM) for the console's charts.

Everything here reads the warehouse through Ibis expressions only, so the same queries run on DuckDB
and on PySpark; the merchant's local dates become UTC instants once (``periods``).
"""
