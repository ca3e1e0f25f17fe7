"""Hedging what-if: replay recorded latencies under "fire another copy at quantile q" policies.

Per config, attempt latencies of successful attempts are resampled (Monte Carlo). Under the
policy *hedge at q, at most k copies*, copy ``j`` (``j = 1..k-1``) is fired at ``j * t_q``
(``t_q`` = the recorded q-quantile) if no earlier copy has finished by then, and the call ends
when the first copy finishes::

    latency = min_j ( j * t_q + L_j )    over the copies actually fired

Every fired copy is counted as a billed request (a conservative cost: the real client cancels
losers, but the server may already have generated them).

Honest comparisons:

- **chosen on one part, judged on another**: the recorded latencies are split in two halves
  (seeded); ``t_q`` is taken from one half and the policy replayed on draws from the other,
  both ways round (cross-fitting), so a threshold is never judged on the samples that set it.
  ``hedge_at_s`` reported for use is the quantile of all the data;
- **common random numbers**: every policy of a config replays the same draws, so differences
  between policies are not Monte Carlo noise;
- **bootstrap interval**: ``n_boot`` resamples of the recorded latencies repeat the whole
  procedure; ``p95_lo``/``p95_hi`` (and the same for P50, P99, extra requests and the P95
  change) are their percentile interval at ``ci``.

>>> from nbp_kit.analysis.synthetic import synthetic_attempts
>>> h = hedging_whatif(synthetic_attempts(3_000, seed=0), by=("resolution",), quantiles=(0.9,), n_boot=20)
>>> h["policy"].tolist()[:2]
['no hedge', 'hedge at P90']
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from ..errors import ConfigError
from .frames import (
    CONFIG_COLUMNS,
    as_columns,
    group_codes,
    is_ok,
    num,
    present,
    require_frame,
)


def _replay(draws: np.ndarray, hedge_at: float | None) -> tuple[np.ndarray, np.ndarray]:
    """(call latency, copies fired) for simulated calls whose copies take ``draws`` (rows =
    calls, columns = copies in firing order)."""
    if hedge_at is None:
        return draws[:, 0], np.ones(len(draws))
    fire_at = np.arange(draws.shape[1]) * hedge_at  # copy 0 at 0, copy j at j * t_q
    finish = fire_at[None, :] + draws
    # copy j fires only if every earlier copy is still running at fire_at[j]
    running = np.minimum.accumulate(finish, axis=1)
    fired = np.ones_like(finish, dtype=bool)
    fired[:, 1:] = running[:, :-1] > fire_at[None, 1:]
    result = np.where(fired, finish, np.inf).min(axis=1)
    return result, fired.sum(axis=1)


def _cross_fitted(x: np.ndarray, half: np.ndarray, qs: Sequence[float | None], u: np.ndarray) -> np.ndarray:
    """Per policy: (p50, p95, p99, extra requests), the threshold from one half of ``x`` and
    the replay on the other, both ways; ``u`` are the common uniforms (calls x copies)."""
    out = np.empty((len(qs), 4))
    parts = (x[half], x[~half])
    m = len(u) // 2
    res: list[list[np.ndarray]] = [[] for _ in qs]
    fired: list[list[np.ndarray]] = [[] for _ in qs]
    for k in (0, 1):
        choose, judge = parts[k], parts[1 - k]
        uu = u[k * m : (k + 1) * m]
        draws = judge[np.minimum((uu * len(judge)).astype(np.int64), len(judge) - 1)]
        for i, q in enumerate(qs):
            at = None if q is None else float(np.quantile(choose, q))
            r, f = _replay(draws, at)
            res[i].append(r)
            fired[i].append(f)
    for i in range(len(qs)):
        r = np.concatenate(res[i])
        out[i, :3] = np.quantile(r, [0.5, 0.95, 0.99])
        out[i, 3] = float(np.concatenate(fired[i]).mean() - 1)
    return out


def hedging_whatif(
    df: pd.DataFrame,
    by: str | Sequence[str] = CONFIG_COLUMNS,
    *,
    quantiles: Sequence[float] = (0.9, 0.95, 0.99),
    max_copies: int = 2,
    n_sim: int = 20_000,
    n_boot: int = 100,
    ci: float = 0.95,
    min_n: int = 20,
    seed: int = 0,
) -> pd.DataFrame:
    """Predicted P50/P95/P99 with bootstrap intervals, extra requests and extra cost per config
    and hedging policy (see the module docstring for how it stays honest).

    One row per (config, policy): the ``no hedge`` baseline, then ``hedge at Pxx`` for each of
    ``quantiles``. ``extra_requests`` is the mean number of extra copies per call (0.05 = 5 %
    more requests); ``extra_cost_usd`` per call is that times the mean cost of a successful
    attempt; ``p95_change_pct`` compares with the baseline on the same draws. ``_lo``/``_hi``
    columns are bootstrap intervals (``n_boot`` resamples; 0 for none). Configs with fewer
    than ``min_n`` successes are skipped.

    >>> from nbp_kit.analysis.synthetic import synthetic_attempts
    >>> h = hedging_whatif(synthetic_attempts(3_000, seed=0), by=(), quantiles=(0.95,), n_boot=20)
    >>> bool(h["p99"].iloc[1] <= h["p99"].iloc[0]), bool(0 < h["extra_requests"].iloc[1] < 0.1)
    (True, True)
    """
    require_frame(df, ("status", "total_s"))
    if not isinstance(max_copies, int) or max_copies < 2:
        raise ConfigError(f"max_copies={max_copies!r} is not accepted; use a whole number >= 2 (the first copy counts)")
    for q in quantiles:
        if not 0 < q < 1:
            raise ConfigError(f"quantiles={q!r} is not accepted; use values between 0 and 1, e.g. 0.95")
    if n_sim < 100:
        raise ConfigError(f"n_sim={n_sim!r} is not accepted; use 100 or more")
    if not isinstance(n_boot, int) or n_boot < 0:
        raise ConfigError(f"n_boot={n_boot!r} is not accepted; use a whole number >= 0 (0: no intervals)")
    by = present(df, as_columns(by))
    lat_all, ok = num(df, "total_s"), is_ok(df)
    use = ok & np.isfinite(lat_all)
    sub = df[use]
    lat = lat_all[use]
    cost = np.nan_to_num(num(sub, "cost_usd"))
    codes, keys = group_codes(sub, by)
    policies: tuple[float | None, ...] = (None, *quantiles)
    alpha = (1 - ci) / 2
    rows = []
    for g in range(len(keys)):
        x = np.sort(lat[codes == g])  # sorted: the replay never depends on row order
        if len(x) < min_n:
            continue
        unit_cost = float(cost[codes == g].mean())
        rng = np.random.default_rng([seed, g])
        half = rng.permutation(len(x)) < len(x) // 2
        u = rng.random((n_sim, max_copies))  # common random numbers for every policy
        point = _cross_fitted(x, half, policies, u)
        boot = np.full((n_boot, len(policies), 5), np.nan)
        ub = u[: min(n_sim, 4_000)]
        for b in range(n_boot):
            xb = np.sort(x[rng.integers(0, len(x), len(x))])
            r = _cross_fitted(xb, half, policies, ub)
            boot[b, :, :4] = r
            boot[b, :, 4] = 100 * (r[:, 1] / r[0, 1] - 1)
        lo = np.quantile(boot, alpha, axis=0) if n_boot else np.full((len(policies), 5), np.nan)
        hi = np.quantile(boot, 1 - alpha, axis=0) if n_boot else np.full((len(policies), 5), np.nan)
        # the bootstrap replays fewer calls than the point estimate: widen to contain it
        full = np.c_[point, 100 * (point[:, 1] / point[0, 1] - 1)]
        if n_boot:
            lo, hi = np.fmin(lo, full), np.fmax(hi, full)
        for i, pol in enumerate(policies):
            p50, p95, p99, extra = point[i]
            row = dict(keys.iloc[g]) if by else {}
            row.update(
                policy="no hedge" if pol is None else f"hedge at P{round(pol * 100, 6):g}",
                hedge_quantile=np.nan if pol is None else pol,
                hedge_at_s=np.nan if pol is None else float(np.quantile(x, pol)),
                max_copies=1 if pol is None else max_copies,
                n=len(x),
                p50=p50,
                p50_lo=lo[i, 0],
                p50_hi=hi[i, 0],
                p95=p95,
                p95_lo=lo[i, 1],
                p95_hi=hi[i, 1],
                p99=p99,
                p99_lo=lo[i, 2],
                p99_hi=hi[i, 2],
                extra_requests=extra,
                extra_requests_lo=lo[i, 3],
                extra_requests_hi=hi[i, 3],
                extra_cost_usd=extra * unit_cost,
                p95_change_pct=100 * (p95 / point[0, 1] - 1),
                p95_change_lo_pct=lo[i, 4],
                p95_change_hi_pct=hi[i, 4],
            )
            rows.append(row)
    cols = [
        *by,
        "policy",
        "hedge_quantile",
        "hedge_at_s",
        "max_copies",
        "n",
        "p50",
        "p50_lo",
        "p50_hi",
        "p95",
        "p95_lo",
        "p95_hi",
        "p99",
        "p99_lo",
        "p99_hi",
        "extra_requests",
        "extra_requests_lo",
        "extra_requests_hi",
        "extra_cost_usd",
        "p95_change_pct",
        "p95_change_lo_pct",
        "p95_change_hi_pct",
    ]
    return pd.DataFrame(rows, columns=cols)
