"""Hedging what-if: replay recorded latencies under "fire another copy at quantile q" policies.

Per config, attempt latencies of successful attempts are resampled (Monte Carlo). Under the
policy *hedge at q, at most k copies*, copy ``j`` (``j = 1..k-1``) is fired at ``j * t_q``
(``t_q`` = the recorded q-quantile) if no earlier copy has finished by then, and the call ends
when the first copy finishes::

    latency = min_j ( j * t_q + L_j )    over the copies actually fired

Every fired copy is counted as a billed request (a conservative cost: the real client cancels
losers, but the server may already have generated them).

>>> from nbp_kit.analysis.synthetic import synthetic_attempts
>>> h = hedging_whatif(synthetic_attempts(3_000, seed=0), by=("resolution",), quantiles=(0.9,))
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


def _replay(lat: np.ndarray, hedge_at: float | None, copies: int, n_sim: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """(call latency, copies fired) for ``n_sim`` simulated calls."""
    draws = lat[rng.integers(0, len(lat), (n_sim, copies if hedge_at is not None else 1))]
    if hedge_at is None:
        return draws[:, 0], np.ones(n_sim)
    fire_at = np.arange(copies) * hedge_at  # copy 0 at 0, copy j at j * t_q
    finish = fire_at[None, :] + draws
    # copy j fires only if every earlier copy is still running at fire_at[j]
    running = np.minimum.accumulate(finish, axis=1)
    fired = np.ones_like(finish, dtype=bool)
    fired[:, 1:] = running[:, :-1] > fire_at[None, 1:]
    result = np.where(fired, finish, np.inf).min(axis=1)
    return result, fired.sum(axis=1)


def hedging_whatif(
    df: pd.DataFrame,
    by: str | Sequence[str] = CONFIG_COLUMNS,
    *,
    quantiles: Sequence[float] = (0.9, 0.95, 0.99),
    max_copies: int = 2,
    n_sim: int = 20_000,
    min_n: int = 20,
    seed: int = 0,
) -> pd.DataFrame:
    """Predicted P50/P95/P99, extra requests and extra cost per config and hedging policy.

    One row per (config, policy): the ``no hedge`` baseline, then ``hedge at Pxx`` for each of
    ``quantiles``. ``extra_requests`` is the mean number of extra copies per call (0.05 = 5 %
    more requests); ``extra_cost_usd`` per call is that times the mean cost of a successful
    attempt; ``p95_change_pct`` compares with the baseline. Configs with fewer than ``min_n``
    successes are skipped.

    >>> from nbp_kit.analysis.synthetic import synthetic_attempts
    >>> h = hedging_whatif(synthetic_attempts(3_000, seed=0), by=(), quantiles=(0.95,))
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
    by = present(df, as_columns(by))
    lat_all, ok = num(df, "total_s"), is_ok(df)
    use = ok & np.isfinite(lat_all)
    sub = df[use]
    lat = lat_all[use]
    cost = np.nan_to_num(num(sub, "cost_usd"))
    codes, keys = group_codes(sub, by)
    rows = []
    for g in range(len(keys)):
        x = np.sort(lat[codes == g])  # sorted: the replay never depends on row order
        if len(x) < min_n:
            continue
        unit_cost = float(cost[codes == g].mean())
        rng = np.random.default_rng([seed, g])
        base_p95 = np.nan
        for q in (None, *quantiles):
            hedge_at = None if q is None else float(np.quantile(x, q))
            res, fired = _replay(x, hedge_at, max_copies, n_sim, rng)
            p50, p95, p99 = np.quantile(res, [0.5, 0.95, 0.99])
            if q is None:
                base_p95 = p95
            extra = float(fired.mean() - 1)
            row = dict(keys.iloc[g]) if by else {}
            row.update(
                policy="no hedge" if q is None else f"hedge at P{round(q * 100, 6):g}",
                hedge_quantile=np.nan if q is None else q,
                hedge_at_s=np.nan if hedge_at is None else hedge_at,
                max_copies=1 if q is None else max_copies,
                n=len(x),
                p50=p50, p95=p95, p99=p99,
                extra_requests=extra,
                extra_cost_usd=extra * unit_cost,
                p95_change_pct=100 * (p95 / base_p95 - 1),
            )
            rows.append(row)
    cols = [*by, "policy", "hedge_quantile", "hedge_at_s", "max_copies", "n", "p50", "p95", "p99",
            "extra_requests", "extra_cost_usd", "p95_change_pct"]
    return pd.DataFrame(rows, columns=cols)
