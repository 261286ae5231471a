"""Customer lifetime value: BG/NBD for how often a customer buys (and whether they still do) and
Gamma-Gamma for how much they spend, both fitted by maximum likelihood.

The models and their likelihoods are those of Fader, Hardie & Lee (2005), "Counting Your Customers
the Easy Way", and Fader & Hardie (2013), "The Gamma-Gamma Model of Monetary Value". They need only
three numbers per customer, taken from the transactions up to the end of a calibration period:

* ``x``: repeat purchases (purchase *days* after the first, so two tickets on one day are one purchase);
* ``t_x``: when the last purchase happened, in weeks after the first;
* ``T``: how long the customer has been watched, in weeks from the first purchase to the period's last day.

Example: first purchase on 1 Jan, again on 15 Jan and 29 Jan, calibration ending 31 Mar: x = 2,
t_x = 4 weeks, T = 89 days / 7 = 12.71 weeks. A customer who bought once has x = t_x = 0.

The fit works on the customers' *distinct* (x, t_x, T) triples with their counts, so a merchant with
millions of customers fits in about the time of one with thousands that share those triples.
"""

from __future__ import annotations

import datetime as dt
import math
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray
from scipy import optimize, special

DAYS_PER_WEEK = 7.0


@dataclass(frozen=True, slots=True)
class Purchase:
    customer: str
    day: dt.date
    amount: float  # in the currency's major unit, as the models are usually quoted (yuan, dollars)


@dataclass(slots=True)
class CustomerSummary:
    """One customer's calibration-period figures (see the module docstring)."""

    customer: str
    first: dt.date
    x: int = 0
    t_x: float = 0.0
    T: float = 0.0
    repeat_spend: float = 0.0  # total of the repeat purchase days' amounts

    @property
    def mean_repeat_spend(self) -> float:
        return self.repeat_spend / self.x if self.x else 0.0


def _daily(purchases: Iterable[Purchase]) -> dict[str, dict[dt.date, float]]:
    """Purchases folded into purchase days per customer (amounts of one day added up)."""
    days: dict[str, dict[dt.date, float]] = defaultdict(lambda: defaultdict(float))
    for p in purchases:
        days[p.customer][p.day] += p.amount
    return days


def summarise(purchases: Iterable[Purchase], calibration_end: dt.date) -> list[CustomerSummary]:
    """Each customer's (x, t_x, T) and repeat spend from purchases up to and including ``calibration_end``.

    Customers whose first purchase is after the calibration period are left out (they are not in
    the cohort being modelled). Times are whole days over 7, as in the published CDNOW figures: a
    customer first seen on 1 Jan 1997 with calibration ending 30 Sep 1997 has T = 272 / 7 = 38.86."""
    end = calibration_end
    out = []
    for customer, days in _daily(purchases).items():
        seen = sorted(d for d in days if d <= end)
        if not seen:
            continue
        first = seen[0]
        summary = CustomerSummary(customer, first, x=len(seen) - 1, T=(end - first).days / DAYS_PER_WEEK)
        if summary.x:
            summary.t_x = (seen[-1] - first).days / DAYS_PER_WEEK
            summary.repeat_spend = sum(days[d] for d in seen[1:])
        out.append(summary)
    return sorted(out, key=lambda s: s.customer)


def holdout_repeats(purchases: Iterable[Purchase], summaries: list[CustomerSummary], calibration_end: dt.date,
                    holdout_end: dt.date) -> dict[str, int]:
    """Purchase days of the calibrated customers after ``calibration_end`` up to ``holdout_end`` inclusive."""
    cohort = {s.customer for s in summaries}
    counts: dict[str, int] = dict.fromkeys(cohort, 0)
    for customer, days in _daily(purchases).items():
        if customer in cohort:
            counts[customer] = sum(1 for d in days if calibration_end < d <= holdout_end)
    return counts


# ---- BG/NBD ------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class BgNbd:
    """Purchase rates are gamma(r, alpha) across customers; after each purchase a customer drops out
    with a probability that is beta(a, b) across customers."""

    r: float
    alpha: float
    a: float
    b: float
    log_likelihood: float

    def _dropped_odds(self, x: NDArray[np.float64], t_x: NDArray[np.float64],
                      T: NDArray[np.float64]) -> NDArray[np.float64]:
        """Odds that a customer dropped out after their last purchase (0 without a repeat purchase)."""
        return np.asarray(np.where(x > 0, self.a / (self.b + np.maximum(x, 1) - 1)
                                   * ((self.alpha + T) / (self.alpha + t_x)) ** (self.r + x), 0.0))

    def p_alive(self, x: NDArray[np.float64], t_x: NDArray[np.float64], T: NDArray[np.float64]) -> NDArray[np.float64]:
        """Probability each customer is still active at the end of calibration."""
        return np.asarray(1.0 / (1.0 + self._dropped_odds(x, t_x, T)))

    def expected_purchases(self, t: float, x: NDArray[np.float64], t_x: NDArray[np.float64],
                           T: NDArray[np.float64]) -> NDArray[np.float64]:
        """Expected purchases in the next ``t`` weeks after calibration (FHL 2005, equation 10)."""
        r, alpha, a, b = self.r, self.alpha, self.a, self.b
        hyp = special.hyp2f1(r + x, b + x, a + b + x - 1, t / (alpha + T + t))
        head = (a + b + x - 1) / (a - 1) * (1 - ((alpha + T) / (alpha + T + t)) ** (r + x) * hyp)
        return np.asarray(head / (1 + self._dropped_odds(x, t_x, T)))

    def expected_in_population(self, t: float) -> float:
        """Expected purchases in ``t`` weeks by a customer just acquired (FHL 2005, equation 7)."""
        r, alpha, a, b = self.r, self.alpha, self.a, self.b
        hyp = special.hyp2f1(r, b, a + b - 1, t / (alpha + t))
        return float((a + b - 1) / (a - 1) * (1 - (alpha / (alpha + t)) ** r * hyp))


def _bgnbd_ll(params: NDArray[np.float64], x: NDArray[np.float64], t_x: NDArray[np.float64],
              T: NDArray[np.float64], weight: NDArray[np.float64]) -> float:
    r, alpha, a, b = np.exp(params)
    head = special.gammaln(r + x) - special.gammaln(r) + r * math.log(alpha)
    still = special.betaln(a, b + x) - special.betaln(a, b) - (r + x) * np.log(alpha + T)
    gone = np.where(x > 0, special.betaln(a + 1, b + np.maximum(x, 1) - 1) - special.betaln(a, b)
                    - (r + x) * np.log(alpha + t_x), -np.inf)
    return float(np.sum(weight * (head + np.logaddexp(still, gone))))


def fit_bgnbd(summaries: list[CustomerSummary]) -> BgNbd:
    """Maximum-likelihood BG/NBD (parameters fitted on the log scale, so they stay positive)."""
    return fit_bgnbd_counts(*_distinct([(s.x, s.t_x, s.T) for s in summaries]))


def fit_bgnbd_counts(x: NDArray[np.float64], t_x: NDArray[np.float64], T: NDArray[np.float64],
                     weight: NDArray[np.float64]) -> BgNbd:
    """BG/NBD on distinct (x, t_x, T) with how many customers share each (the traits job counts
    them in the warehouse, so a million customers arrive as a few thousand rows)."""
    if not len(x):
        raise ValueError("no customers to fit")
    result = _maximise(lambda p: _bgnbd_ll(p, x, t_x, T, weight), 4)
    r, alpha, a, b = (float(v) for v in np.exp(result.x))
    return BgNbd(r, alpha, a, b, -float(result.fun))


# ---- Gamma-Gamma -------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class GammaGamma:
    """A customer's transaction values are gamma(p, nu) around their own mean; nu is gamma(q, gamma)
    across customers. Fitted on customers with at least one repeat purchase."""

    p: float
    q: float
    gamma: float
    log_likelihood: float

    def expected_spend(self, x: NDArray[np.float64], mean_spend: NDArray[np.float64]) -> NDArray[np.float64]:
        """Expected value of a customer's future transactions: the population mean, weighted toward
        the customer's own mean the more repeat purchases they made (Fader & Hardie 2013, eq. 5)."""
        p, q, g = self.p, self.q, self.gamma
        population = p * g / (q - 1)
        weight = p * x / (p * x + q - 1)
        return np.asarray((1 - weight) * population + weight * np.where(x > 0, mean_spend, 0.0))


def _gamma_gamma_ll(params: NDArray[np.float64], x: NDArray[np.float64], m: NDArray[np.float64]) -> float:
    p, q, g = np.exp(params)
    ll = (special.gammaln(p * x + q) - special.gammaln(p * x) - special.gammaln(q) + q * math.log(g)
          + (p * x - 1) * np.log(m) + p * x * np.log(x) - (p * x + q) * np.log(g + x * m))
    return float(np.sum(ll))


def fit_gamma_gamma(summaries: list[CustomerSummary]) -> GammaGamma:
    """Maximum-likelihood Gamma-Gamma on the customers with a repeat purchase of positive value."""
    repeaters = [s for s in summaries if s.x > 0 and s.mean_repeat_spend > 0]
    if not repeaters:
        raise ValueError("no customer has a repeat purchase to fit spend on")
    return fit_gamma_gamma_arrays(np.array([s.x for s in repeaters], dtype=float),
                                  np.array([s.mean_repeat_spend for s in repeaters], dtype=float))


def fit_gamma_gamma_arrays(x: NDArray[np.float64], m: NDArray[np.float64]) -> GammaGamma:
    """Gamma-Gamma on the repeat buyers' purchase counts ``x`` (> 0) and mean repeat spends ``m`` (> 0)."""
    if not len(x):
        raise ValueError("no customer has a repeat purchase to fit spend on")
    result = _maximise(lambda v: _gamma_gamma_ll(v, x, m), 3)
    p, q, g = (float(v) for v in np.exp(result.x))
    return GammaGamma(p, q, g, -float(result.fun))


def _maximise(log_likelihood: Callable[[NDArray[np.float64]], float], n: int) -> Any:
    """Maximise over ``n`` log-parameters with L-BFGS-B: about a hundred likelihood evaluations where
    Nelder-Mead takes several hundred (each is a pass over all customers), and the bounds keep a
    degenerate data set (every customer spending alike) from running a parameter off to infinity."""
    return optimize.minimize(lambda p: -log_likelihood(p), np.zeros(n), method="L-BFGS-B",
                             bounds=[(-15.0, 15.0)] * n)


def _distinct(triples: list[tuple[int, float, float]]) -> tuple[NDArray[np.float64], ...]:
    """The distinct (x, t_x, T) and how many customers have each."""
    counts: dict[tuple[int, float, float], int] = defaultdict(int)
    for triple in triples:
        counts[triple] += 1
    keys = list(counts)
    as_array = np.array(keys, dtype=float).reshape(-1, 3)
    return as_array[:, 0], as_array[:, 1], as_array[:, 2], np.array([counts[k] for k in keys], dtype=float)


# ---- the whole fit -----------------------------------------------------------------------------------


@dataclass(slots=True)
class Holdout:
    """Predicted against actual repeat purchases in the weeks after calibration."""

    weeks: float
    predicted: float
    actual: int

    @property
    def error(self) -> float:
        return (self.predicted - self.actual) / self.actual if self.actual else 0.0


@dataclass(slots=True)
class ClvFit:
    bgnbd: BgNbd
    gamma_gamma: GammaGamma | None
    summaries: list[CustomerSummary]
    holdout: Holdout | None = None
    predictions: dict[str, dict[str, float]] = field(default_factory=dict)

    @property
    def repeat_transactions(self) -> int:
        return sum(s.x for s in self.summaries)

    def as_dict(self) -> dict[str, object]:
        b = self.bgnbd
        out: dict[str, object] = {
            "bgnbd": {"r": b.r, "alpha": b.alpha, "a": b.a, "b": b.b, "log_likelihood": b.log_likelihood},
            "gamma_gamma": None,
            "customers": len(self.summaries),
            "repeat_transactions": self.repeat_transactions,
        }
        if self.gamma_gamma is not None:
            g = self.gamma_gamma
            out["gamma_gamma"] = {"p": g.p, "q": g.q, "gamma": g.gamma, "log_likelihood": g.log_likelihood}
        if self.holdout is not None:
            out["holdout"] = {"weeks": self.holdout.weeks, "predicted_repeat_transactions": self.holdout.predicted,
                              "actual_repeat_transactions": self.holdout.actual, "error": self.holdout.error}
        return out


def _arrays(summaries: list[CustomerSummary]) -> tuple[NDArray[np.float64], ...]:
    """x, t_x and T of every customer, in the summaries' order."""
    return tuple(np.array([getattr(c, name) for c in summaries], dtype=float) for name in ("x", "t_x", "T"))


def predict(fit: ClvFit, horizon_days: int) -> dict[str, dict[str, float]]:
    """Per customer: probability alive, expected purchases and expected value in the next ``horizon_days``."""
    s = fit.summaries
    x, t_x, T = _arrays(s)
    alive = fit.bgnbd.p_alive(x, t_x, T)
    purchases = fit.bgnbd.expected_purchases(horizon_days / DAYS_PER_WEEK, x, t_x, T)
    spend = (fit.gamma_gamma.expected_spend(x, np.array([c.mean_repeat_spend for c in s], dtype=float))
             if fit.gamma_gamma is not None else np.zeros(len(s)))
    return {c.customer: {"p_alive": float(alive[i]), "expected_purchases": float(purchases[i]),
                         "expected_spend": float(spend[i]), "expected_value": float(purchases[i] * spend[i])}
            for i, c in enumerate(s)}


def fit(purchases: list[Purchase], calibration_end: dt.date, holdout_end: dt.date | None = None) -> ClvFit:
    """Fit both models on the calibration period and, with ``holdout_end``, compare the predicted
    repeat purchases after it with what the customers actually did."""
    summaries = summarise(purchases, calibration_end)
    bgnbd = fit_bgnbd(summaries)
    gamma_gamma = fit_gamma_gamma(summaries) if any(s.x for s in summaries) else None
    result = ClvFit(bgnbd, gamma_gamma, summaries)
    if holdout_end is not None and holdout_end > calibration_end:
        weeks = (holdout_end - calibration_end).days / DAYS_PER_WEEK
        x, t_x, T = _arrays(summaries)
        predicted = float(np.sum(bgnbd.expected_purchases(weeks, x, t_x, T)))
        actual = sum(holdout_repeats(purchases, summaries, calibration_end, holdout_end).values())
        result.holdout = Holdout(weeks, predicted, actual)
    return result
