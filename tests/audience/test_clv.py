"""CLV: BG/NBD and Gamma-Gamma fitted by maximum likelihood reproduce the published CDNOW figures,
recover known parameters from simulated customers, and the CLI reads files and reports bad rows."""

from __future__ import annotations

import csv
import datetime as dt
from pathlib import Path

import numpy as np
import pytest

from lianjie.audience import clv
from tests.datasets import DATASETS, require
from tests.processes import Cli

CDNOW_SAMPLE = DATASETS / "cdnow" / "CDNOW_sample.txt"

# Published in Fader, Hardie & Lee (2005) and Fader & Hardie (2013), as quoted in shared/datasets/README.md.
PUBLISHED_BGNBD = {"r": 0.243, "alpha": 4.414, "a": 0.793, "b": 2.426, "log_likelihood": -9582.4}
PUBLISHED_GAMMA_GAMMA = {"p": 6.25, "q": 3.74, "gamma": 15.44, "log_likelihood": -4055.92}


@pytest.fixture(scope="module")
def cdnow_sample() -> Path:
    return require(CDNOW_SAMPLE)


def _within(got: float, published: float, tolerance: float = 0.005) -> bool:
    return abs(got - published) <= tolerance * abs(published)


def test_the_cli_reproduces_the_published_cdnow_parameters(cdnow_sample: Path, tmp_path: Path) -> None:
    out = Cli(tmp_path, None).json("clv", "fit", str(cdnow_sample), "--format", "cdnow",
                                   "--calibration-end", "1997-09-30", "--json")
    for name, published in PUBLISHED_BGNBD.items():
        assert _within(out["bgnbd"][name], published), (name, out["bgnbd"][name], published)
    for name, published in PUBLISHED_GAMMA_GAMMA.items():
        assert _within(out["gamma_gamma"][name], published), (name, out["gamma_gamma"][name], published)
    assert out["customers"] == 2357
    assert out["repeat_transactions"] == 2457
    # The holdout runs to the file's last purchase (30 Jun 1998): 39 weeks after calibration.
    holdout = out["holdout"]
    assert holdout["weeks"] == pytest.approx(39.0)
    assert holdout["actual_repeat_transactions"] == _repeat_days_after(cdnow_sample, dt.date(1997, 9, 30))
    assert 0.7 < holdout["predicted_repeat_transactions"] / holdout["actual_repeat_transactions"] < 1.3


def _repeat_days_after(path: Path, end: dt.date) -> int:
    """Distinct (customer, day) pairs after ``end``, read straight from the file (all customers of
    the sample bought first in the first quarter of 1997, so every later purchase is a repeat)."""
    days = set()
    for line in path.read_text().splitlines():
        fields = line.split()
        if fields and dt.datetime.strptime(fields[2], "%Y%m%d").date() > end:
            days.add((fields[0], fields[2]))
    return len(days)


def test_summaries_count_purchase_days_and_weeks_from_the_first_purchase() -> None:
    p = clv.Purchase
    purchases = [p("A", dt.date(2026, 1, 1), 10), p("A", dt.date(2026, 1, 15), 20), p("A", dt.date(2026, 1, 15), 5),
                 p("A", dt.date(2026, 1, 29), 30), p("A", dt.date(2026, 4, 2), 99),  # after calibration
                 p("B", dt.date(2026, 3, 31), 8),  # once, on the last day
                 p("C", dt.date(2026, 4, 1), 7)]  # first seen after calibration: not in the cohort
    a, b = clv.summarise(purchases, dt.date(2026, 3, 31))
    assert (a.customer, a.x, a.t_x, a.T) == ("A", 2, 4.0, 89 / 7)
    assert a.mean_repeat_spend == (25 + 30) / 2  # two tickets on 15 Jan are one purchase of 25
    assert (b.customer, b.x, b.t_x, b.T, b.mean_repeat_spend) == ("B", 0, 0.0, 0.0, 0.0)
    assert clv.holdout_repeats(purchases, [a, b], dt.date(2026, 3, 31), dt.date(2026, 6, 30)) == {"A": 1, "B": 0}


def _simulate(r: float, alpha: float, a: float, b: float, customers: int, weeks: float,
              rng: np.random.Generator) -> list[clv.CustomerSummary]:
    """Customers following the BG/NBD story: a gamma-distributed purchase rate, a beta-distributed
    chance of dropping out after each purchase; all first seen at time 0 and watched ``weeks``."""
    out = []
    for n in range(customers):
        rate, drop = rng.gamma(r, 1 / alpha), rng.beta(a, b)
        t, last, x = 0.0, 0.0, 0
        while True:
            t += rng.exponential(1 / rate)
            if t > weeks:
                break
            x, last = x + 1, t
            if rng.random() < drop:
                break
        out.append(clv.CustomerSummary(str(n), dt.date(2026, 1, 1), x=x, t_x=last, T=weeks))
    return out


def test_bgnbd_recovers_the_parameters_customers_were_simulated_with() -> None:
    truth = {"r": 0.6, "alpha": 4.0, "a": 0.9, "b": 3.0}
    summaries = _simulate(**truth, customers=20_000, weeks=52, rng=np.random.default_rng(7))
    fitted = clv.fit_bgnbd(summaries)
    for name, value in truth.items():
        assert abs(getattr(fitted, name) - value) <= 0.2 * value, (name, getattr(fitted, name), value)


def test_gamma_gamma_recovers_the_parameters_spend_was_simulated_with() -> None:
    rng = np.random.default_rng(11)
    p, q, gamma = 5.0, 4.0, 20.0
    summaries = []
    for n in range(20_000):
        nu = rng.gamma(q, 1 / gamma)
        x = int(rng.integers(1, 12))
        spends = rng.gamma(p, 1 / nu, size=x)
        summaries.append(clv.CustomerSummary(str(n), dt.date(2026, 1, 1), x=x, repeat_spend=float(spends.sum())))
    fitted = clv.fit_gamma_gamma(summaries)
    for name, value in (("p", p), ("q", q), ("gamma", gamma)):
        assert abs(getattr(fitted, name) - value) <= 0.1 * value, (name, getattr(fitted, name), value)


def test_predictions_behave_as_the_models_say(cdnow_sample: Path) -> None:
    from lianjie.audience.purchase_files import read_cdnow

    fit = clv.fit(read_cdnow(cdnow_sample), dt.date(1997, 9, 30))
    x, t_x, T = np.array([0.0, 5, 5]), np.array([0.0, 37, 2]), np.array([38.0, 38, 38])
    alive = fit.bgnbd.p_alive(x, t_x, T)
    assert alive[0] == 1.0  # never bought again: BG/NBD says nobody drops out before a repeat purchase
    assert alive[1] > 0.8
    assert alive[2] < 0.01
    soon, later = fit.bgnbd.expected_purchases(4, x, t_x, T), fit.bgnbd.expected_purchases(52, x, t_x, T)
    assert (later > soon).all()
    assert soon[1] > soon[2]
    assert fit.gamma_gamma is not None
    population = fit.gamma_gamma.p * fit.gamma_gamma.gamma / (fit.gamma_gamma.q - 1)
    spend = fit.gamma_gamma.expected_spend(np.array([1.0, 20.0]), np.array([100.0, 100.0]))
    assert population < spend[0] < spend[1] < 100  # shrunk toward the population mean, less so with more purchases
    predictions = clv.predict(fit, 90)
    assert len(predictions) == 2357
    assert all(0 <= p["p_alive"] <= 1 and p["expected_value"] >= 0 for p in predictions.values())


def test_the_cli_reads_a_csv_and_writes_predictions(tmp_path: Path) -> None:
    data = tmp_path / "orders.csv"
    rng = np.random.default_rng(3)
    with data.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["会员号", "下单日期", "实付金额"])
        for n in range(300):
            day = dt.date(2026, 1, 1) + dt.timedelta(days=int(rng.integers(0, 30)))
            for _ in range(int(rng.integers(1, 6))):
                writer.writerow([f"M{n}", day.isoformat(), f"{rng.uniform(20, 200):.2f}"])
                day += dt.timedelta(days=int(rng.integers(3, 60)))
    predictions = tmp_path / "clv.csv"
    out = Cli(tmp_path, None).json("clv", "fit", str(data), "--calibration-end", "2026-06-30",
                                   "--customer-column", "会员号", "--date-column", "下单日期",
                                   "--amount-column", "实付金额", "--predictions", str(predictions), "--json")
    assert out["customers"] == 300
    assert out["bgnbd"]["r"] > 0
    assert out["gamma_gamma"]["p"] > 0
    with predictions.open(encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 300
    assert {"p_alive", "expected_value"} <= set(rows[0])


def test_the_cli_names_the_line_and_field_of_a_bad_row(tmp_path: Path) -> None:
    data = tmp_path / "orders.csv"
    data.write_text("customer_id,date,amount\nA,2026-01-01,10\nA,2026-13-01,12\n", encoding="utf-8")
    cli = Cli(tmp_path, None)
    result = cli.run("clv", "fit", str(data), "--calibration-end", "2026-06-30", ok=False)
    assert result.returncode == 2
    assert "line 3" in result.stderr
    assert "2026-13-01" in result.stderr
    data.write_text("customer_id,day,amount\nA,2026-01-01,10\n", encoding="utf-8")
    result = cli.run("clv", "fit", str(data), "--calibration-end", "2026-06-30", ok=False)
    assert result.returncode == 2
    assert "no column 'date'" in result.stderr
