"""Hedging what-if replay (nbp_kit.analysis.hedging)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from nbp_kit import ConfigError
from nbp_kit.analysis import hedging_whatif
from nbp_kit.analysis.synthetic import synthetic_attempts


def _frame(latencies: np.ndarray, cost: float = 0.134) -> pd.DataFrame:
    return pd.DataFrame({"status": "ok", "total_s": latencies, "cost_usd": cost, "resolution": "2K"})


def test_baseline_replays_the_recorded_distribution() -> None:
    x = np.random.default_rng(0).lognormal(3.5, 0.4, 5_000)
    h = hedging_whatif(_frame(x), by=(), quantiles=(0.95,), n_sim=50_000)
    base = h.iloc[0]
    assert base["policy"] == "no hedge" and base["extra_requests"] == 0 and base["extra_cost_usd"] == 0
    assert base["p50"] == pytest.approx(np.quantile(x, 0.5), rel=0.02)
    assert base["p95"] == pytest.approx(np.quantile(x, 0.95), rel=0.03)


def test_hedge_at_q_fires_on_about_one_minus_q_of_calls_and_cuts_the_tail() -> None:
    x = np.random.default_rng(1).lognormal(3.5, 0.5, 5_000)
    h = hedging_whatif(_frame(x, cost=0.2), by=(), quantiles=(0.9, 0.95, 0.99), n_sim=50_000).set_index("policy")
    for q in (0.9, 0.95, 0.99):
        row = h.loc[f"hedge at P{q * 100:g}"]
        assert row["extra_requests"] == pytest.approx(1 - q, abs=0.01)
        assert row["extra_cost_usd"] == pytest.approx(row["extra_requests"] * 0.2)
        assert row["p99"] <= h.loc["no hedge", "p99"]  # same draws for every policy: never worse
        assert q == 0.99 or row["p99"] < h.loc["no hedge", "p99"]
        assert row["p95_lo"] <= row["p95"] <= row["p95_hi"] and row["p99_lo"] <= row["p99"] <= row["p99_hi"]
        assert row["p99"] <= row["hedge_at_s"] + x.max()  # latency = min(first, t_q + second)
    assert h.loc["hedge at P90", "p95_change_pct"] < h.loc["hedge at P99", "p95_change_pct"] <= 1.0
    assert h.loc["hedge at P90", "p95_change_hi_pct"] < 0  # surely lower, not a lucky draw


def test_more_copies_more_requests_and_constant_latency_never_hedges() -> None:
    x = np.random.default_rng(2).lognormal(3.5, 0.6, 3_000)
    two = hedging_whatif(_frame(x), by=(), quantiles=(0.5,), max_copies=2).iloc[1]
    three = hedging_whatif(_frame(x), by=(), quantiles=(0.5,), max_copies=3).iloc[1]
    assert three["extra_requests"] > two["extra_requests"]
    assert three["p99"] <= two["p99"] * 1.02  # a third copy only trims the far tail (Monte Carlo noise aside)
    flat = hedging_whatif(_frame(np.full(100, 10.0)), by=(), quantiles=(0.9,)).iloc[1]
    assert flat["extra_requests"] == 0 and flat["p99"] == 10.0


def test_per_config_rows_skip_tiny_groups_and_reject_bad_input() -> None:
    df = synthetic_attempts(3_000, seed=0)
    h = hedging_whatif(df, by=("resolution",), quantiles=(0.95,))
    assert h["resolution"].tolist() == ["1K", "1K", "2K", "2K", "4K", "4K"]
    assert hedging_whatif(df.head(10), by=("resolution",), min_n=20).empty
    with pytest.raises(ConfigError, match="max_copies=1"):
        hedging_whatif(df, max_copies=1)
    with pytest.raises(ConfigError, match="quantiles=1.5"):
        hedging_whatif(df, quantiles=(1.5,))


def test_replay_does_not_depend_on_row_order() -> None:
    df = synthetic_attempts(2_000, seed=4)
    a = hedging_whatif(df, by=("resolution",), n_boot=20)
    b = hedging_whatif(df.sample(frac=1.0, random_state=1), by=("resolution",), n_boot=20)
    pd.testing.assert_frame_equal(a, b)


def test_threshold_is_chosen_on_one_half_and_judged_on_the_other() -> None:
    from nbp_kit.analysis.hedging import _cross_fitted

    # one half all 10 s, the other all 100 s: a threshold chosen on the half it is judged on
    # would never fire (every copy finishes at the threshold); chosen on the other half it does
    x = np.r_[np.full(50, 10.0), np.full(50, 100.0)]
    half = np.r_[np.ones(50, bool), np.zeros(50, bool)]
    u = np.random.default_rng(0).random((1_000, 2))
    r = _cross_fitted(x, half, (None, 0.5), u)
    assert r[1, 3] == pytest.approx(0.5)  # the 100 s half hedges at 10 s every time: half the calls
