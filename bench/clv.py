"""Benchmark: fitting BG/NBD and Gamma-Gamma (`lianjie clv fit`) on --customers simulated customers,
next to the time to fold the same purchases into per-customer summaries (the pass every CLV tool
makes over the data before fitting), measured in the same run.

Customers follow the models' stories (gamma purchase rates, beta drop-out after each purchase, gamma
amounts around a gamma-distributed personal mean) over a year of daily purchases, so the fit has
realistic (x, t_x, T) and spend spreads.

    python bench/clv.py [--customers 1000000] [--seed 7]
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from lianjie.audience import clv  # noqa: E402

START = dt.date(2025, 1, 1)
CALIBRATION_END = dt.date(2025, 9, 30)
HOLDOUT_END = dt.date(2025, 12, 31)


def simulate(customers: int, seed: int) -> list[clv.Purchase]:
    """Purchases of ``customers`` people over 2025, first purchases spread over the first quarter."""
    rng = np.random.default_rng(seed)
    rates = rng.gamma(0.5, 1 / 4.0, customers)  # purchases a week
    drops = rng.beta(1.0, 3.0, customers)
    firsts = rng.integers(0, 90, customers)
    spend_rates = rng.gamma(3.0, 1 / 60.0, customers)  # each customer's own typical amount: 4 / rate
    purchases = []
    horizon = (HOLDOUT_END - START).days
    for n in range(customers):
        day, name = int(firsts[n]), f"C{n}"
        while day <= horizon:
            amount = float(rng.gamma(4.0, 1 / spend_rates[n]))
            purchases.append(clv.Purchase(name, START + dt.timedelta(days=day), amount))
            if rng.random() < drops[n]:
                break
            day += 1 + int(rng.exponential(7 / max(rates[n], 1e-6)))
    return purchases


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--customers", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    purchases = simulate(args.customers, args.seed)
    started = time.perf_counter()
    summaries = clv.summarise(purchases, CALIBRATION_END)
    baseline = time.perf_counter() - started
    started = time.perf_counter()
    fit = clv.fit(purchases, CALIBRATION_END, HOLDOUT_END)
    seconds = time.perf_counter() - started
    started = time.perf_counter()
    predictions = clv.predict(fit, 90)
    predict_s = time.perf_counter() - started
    distinct = len({(s.x, s.t_x, s.T) for s in summaries})
    print(f"{'customers':>10} {'purchases':>10} {'distinct (x,t_x,T)':>19} {'fit s':>7} {'predict s':>10} "
          f"{'summaries s':>12} {'fit/summaries':>14}")
    print(f"{len(summaries):>10,} {len(purchases):>10,} {distinct:>19,} {seconds:>7.1f} {predict_s:>10.1f} "
          f"{baseline:>12.1f} {seconds / baseline:>14.2f}")
    h = fit.holdout
    assert h is not None
    print(f"(fit = summaries + BG/NBD + Gamma-Gamma + holdout check; predictions for {len(predictions):,} customers; "
          f"holdout {h.predicted:,.0f} predicted vs {h.actual:,} actual repeat purchases)")


if __name__ == "__main__":
    main()
