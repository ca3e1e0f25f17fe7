"""Confidence intervals of quantiles that cover: exact binomial order-statistic ranks.

For a sample of ``n`` independent values, the number ``B`` of values below the true
q-quantile is Binomial(n, q) whatever the distribution. So the order statistics
``x(l) <= x(u)`` (1-based ranks) bracket the true quantile with probability
``P(l <= B <= u - 1)``. The ranks are chosen equal-tailed:

    l = the largest rank with P(B <= l - 1) <= alpha / 2
    u = the smallest rank with P(B >= u) <= alpha / 2

so the coverage is at least ``1 - alpha`` for every continuous distribution and every n
(not only asymptotically, as the bootstrap is). Where the ranks needed fall outside
``1..n`` (a P99 from 100 values: even the maximum is below the true P99 in 37 % of samples)
no interval is given: :func:`min_n_for_quantile` says how many values one needs. The rule
is ``n * min(q, 1 - q) >= 5`` *and* both ranks inside the sample, so a P95 interval appears
from 100 values and a P99 interval from 500.

Right-censored values (attempts cut at a deadline, cancelled: their latency is only known to
be at least the recorded time) are handled by bounds that stay valid whatever the censored
values were: the lower limit uses the censored values as if they ended when cut (the
smallest they could be), the upper limit as if they never ended (the largest). The point
estimate is the Kaplan-Meier quantile; it is infinite where more than ``1 - q`` of the
values are censored below it (the quantile lies beyond the last observed time).

>>> import numpy as np
>>> x = np.arange(1.0, 101.0)
>>> lo, hi = order_statistic_ci(x, 0.5)
>>> float(lo), float(hi)
(40.0, 61.0)
>>> bool(np.isnan(order_statistic_ci(x, 0.99)[0])), min_n_for_quantile(0.99)
(True, 500)
"""

from __future__ import annotations

import math

import numpy as np

from ..errors import ConfigError

#: The smallest expected count of values beyond the quantile for an interval to be shown.
MIN_TAIL_COUNT = 5


def _check(q: float, ci: float) -> None:
    if not 0 < q < 1:
        raise ConfigError(f"quantile={q!r} is not accepted; use a value strictly between 0 and 1, e.g. 0.95")
    if not 0 < ci < 1:
        raise ConfigError(f"ci={ci!r} is not accepted; use a confidence level between 0 and 1, e.g. 0.95")


def order_statistic_ranks(n: np.ndarray | int, q: float, ci: float = 0.95) -> tuple[np.ndarray, np.ndarray]:
    """1-based ranks ``(l, u)`` of the exact equal-tailed interval for each sample size.

    ``l`` may be 0 (no lower limit in the sample) and ``u`` may be ``n + 1`` (no upper limit).

    >>> [int(v[0]) for v in order_statistic_ranks(100, 0.95)]
    [90, 100]
    """
    from scipy.stats import binom  # heavy import, only where intervals are computed

    _check(q, ci)
    n = np.atleast_1d(np.asarray(n, dtype=np.int64))
    alpha = (1 - ci) / 2
    # smallest k with P(B <= k) >= alpha; then l - 1 = k, or k - 1 when P(B <= k) > alpha
    k = binom.ppf(alpha, n, q)
    k = np.where(binom.cdf(k, n, q) > alpha, k - 1, k)
    lo = k + 1
    # smallest j with P(B >= j) <= alpha, i.e. P(B <= j - 1) >= 1 - alpha
    j = binom.ppf(1 - alpha, n, q) + 1
    hi = j
    lo = np.where(n > 0, lo, 0).astype(np.int64)
    hi = np.where(n > 0, hi, 1).astype(np.int64)
    return lo, hi


def min_n_for_quantile(q: float, ci: float = 0.95) -> int:
    """The smallest sample that gets an interval for the q-quantile (see the module rule).

    >>> min_n_for_quantile(0.95), min_n_for_quantile(0.5)
    (100, 10)
    """
    _check(q, ci)
    n = max(1, math.ceil(MIN_TAIL_COUNT / min(q, 1 - q) - 1e-9))
    while True:
        lo, hi = order_statistic_ranks(n, q, ci)
        if lo[0] >= 1 and hi[0] <= n:
            return n
        n += 1


def interval_shown(n: np.ndarray | int, q: float, ci: float = 0.95) -> np.ndarray:
    """True where a sample of ``n`` gets an interval for the q-quantile."""
    n = np.atleast_1d(np.asarray(n, dtype=np.int64))
    lo, hi = order_statistic_ranks(n, q, ci)
    return (n * min(q, 1 - q) >= MIN_TAIL_COUNT - 1e-9) & (lo >= 1) & (hi <= n)


def order_statistic_ci(x: np.ndarray, q: float, ci: float = 0.95) -> tuple[float, float]:
    """Exact interval ``(x(l), x(u))`` for the q-quantile of ``x``; NaNs when too few values."""
    x = np.sort(np.asarray(x, dtype=float))
    n = len(x)
    lo, hi = order_statistic_ranks(n, q, ci)
    if not interval_shown(n, q, ci)[0]:
        return math.nan, math.nan
    return float(x[lo[0] - 1]), float(x[hi[0] - 1])


def grouped_order_statistic_ci(
    sv: np.ndarray, starts: np.ndarray, counts: np.ndarray, q: float, ci: float = 0.95
) -> tuple[np.ndarray, np.ndarray]:
    """Per-group exact intervals of values sorted within groups (see ``sort_by_group``)."""
    g = len(counts)
    lo_v, hi_v = np.full(g, np.nan), np.full(g, np.nan)
    if g == 0:
        return lo_v, hi_v
    lo, hi = order_statistic_ranks(counts, q, ci)
    shown = interval_shown(counts, q, ci)
    idx = np.flatnonzero(shown)
    lo_v[idx] = sv[starts[idx] + lo[idx] - 1]
    hi_v[idx] = sv[starts[idx] + hi[idx] - 1]
    return lo_v, hi_v


def kaplan_meier_quantile(time_s: np.ndarray, event: np.ndarray, q: float) -> float:
    """Kaplan-Meier q-quantile of right-censored times (``event`` False = censored).

    The smallest event time ``t`` with ``S(t) <= 1 - q``; ``inf`` when the curve never gets
    that low (the quantile lies beyond the last observed time); NaN for no data.

    >>> kaplan_meier_quantile(np.array([1.0, 2.0, 3.0, 4.0]), np.array([True] * 4), 0.5)
    2.0
    >>> kaplan_meier_quantile(np.array([1.0, 2.0, 3.0, 3.0]), np.array([True, True, False, False]), 0.9)
    inf
    """
    t = np.asarray(time_s, dtype=float)
    e = np.asarray(event, dtype=bool)
    if len(t) == 0:
        return math.nan
    # events before censorings at equal times (the usual convention)
    order = np.lexsort((~e, t))
    t, e = t[order], e[order]
    at_risk = len(t) - np.arange(len(t))
    factors = np.where(e, 1 - 1 / at_risk, 1.0)
    surv = np.cumprod(factors)
    hit = np.flatnonzero(e & (surv <= 1 - q + 1e-12))
    return float(t[hit[0]]) if len(hit) else math.inf


def censored_quantile_ci(
    time_s: np.ndarray, event: np.ndarray, q: float, ci: float = 0.95
) -> tuple[float, float, float]:
    """(Kaplan-Meier point, lower, upper) for the q-quantile of right-censored times.

    Bounds valid whatever the censored values were: lower from censored-as-ended, upper from
    censored-as-never-ended (``inf`` when the upper rank falls on a censored value). NaN
    bounds when the sample is too small for an interval at all.

    >>> t = np.r_[np.arange(1.0, 96.0), np.full(5, 96.0)]
    >>> e = np.r_[np.ones(95, bool), np.zeros(5, bool)]
    >>> censored_quantile_ci(t, e, 0.99)
    (inf, nan, nan)
    """
    t = np.asarray(time_s, dtype=float)
    e = np.asarray(event, dtype=bool)
    point = kaplan_meier_quantile(t, e, q)
    low_lo, _ = order_statistic_ci(t, q, ci)
    _, high_hi = order_statistic_ci(np.where(e, t, np.inf), q, ci)
    if math.isfinite(point):
        low_lo = min(low_lo, point) if math.isfinite(low_lo) else low_lo
        high_hi = max(high_hi, point) if not math.isnan(high_hi) else high_hi
    return point, low_lo, high_hi
