"""Timeout advice, cost vs latency, best config, throughput and grids (nbp_kit.analysis.advice)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from nbp_kit import ConfigError
from nbp_kit.analysis import (
    best_config,
    cost_latency,
    grid_vs_single,
    recommend_timeouts,
    throughput,
)
from nbp_kit.analysis.synthetic import synthetic_attempts


def test_timeout_is_max_of_floor_and_multiple_of_p99_with_ci() -> None:
    df = synthetic_attempts(4_000, seed=0)
    t = recommend_timeouts(df, by=("resolution",), multiplier=3.0, floor_s=200.0)
    assert t["resolution"].tolist() == ["1K", "2K", "4K"]
    assert np.allclose(t["timeout_s"], np.maximum(200.0, 3 * t["p99"]))
    assert (t["timeout_lo_s"] <= t["timeout_s"]).all() and (t["timeout_s"] <= t["timeout_hi_s"]).all()
    assert t.loc[0, "timeout_s"] == 200.0 and t.loc[2, "timeout_s"] > 200.0  # 1K: 3 x P99 is below the floor
    assert t["article_timeout_s"].tolist() == [45.0, 90.0, 180.0]
    assert t["article_retries"].tolist() == [2, 2, 3] and t["article_backoff_s"].tolist() == [5.0, 10.0, 15.0]


def test_retries_lower_the_failure_rate_and_cost_latency() -> None:
    df = synthetic_attempts(4_000, seed=1, rate_429=0.1, rate_503=0.05)
    none = recommend_timeouts(df, by=(), retries=0).iloc[0]
    two = recommend_timeouts(df, by=(), retries=2).iloc[0]
    fail = 1 - (df["status"] == "ok").mean()
    assert none["call_failure_rate"] == pytest.approx(fail, abs=0.02)
    assert two["call_failure_rate"] < none["call_failure_rate"] / 5
    assert two["user_mean_s"] > none["user_mean_s"]  # failed tries and back-off add up


def test_tight_timeout_fails_slow_attempts() -> None:
    df = pd.DataFrame({"status": ["ok"] * 100, "total_s": np.r_[np.full(90, 10.0), np.full(10, 100.0)]})
    t = recommend_timeouts(df, by=(), retries=0, quantile=0.5, multiplier=2.0, floor_s=0.0).iloc[0]
    assert t["timeout_s"] == 20.0 and t["call_failure_rate"] == pytest.approx(0.10, abs=0.01)
    assert np.isnan(t["article_timeout_s"])
    with pytest.raises(ConfigError, match="retries=-1"):
        recommend_timeouts(df, retries=-1)


def _configs() -> pd.DataFrame:
    rows = []
    # (config, cost per attempt, latency, tiles)
    for name, cost, lat in (("cheap-slow", 0.05, 60.0), ("dear-fast", 0.20, 20.0), ("dear-slow", 0.25, 70.0)):
        for i in range(30):
            rows.append({"resolution": name, "status": "ok", "total_s": lat + i * 0.01, "cost_usd": cost, "tiles": 1})
    return pd.DataFrame(rows)


def test_pareto_front_and_best_config_under_budgets() -> None:
    t = cost_latency(_configs(), by="resolution")
    assert dict(zip(t["resolution"], t["pareto"])) == {"cheap-slow": True, "dear-fast": True, "dear-slow": False}
    assert t.set_index("resolution").loc["dear-fast", "cost_per_image_usd"] == pytest.approx(0.20)
    assert best_config(_configs(), by="resolution", max_latency_s=65)["resolution"].tolist() == ["cheap-slow"]
    assert best_config(_configs(), by="resolution", max_cost_usd=0.21)["resolution"].tolist() == ["dear-fast"]
    assert best_config(_configs(), by="resolution", max_latency_s=10).empty
    with pytest.raises(ConfigError, match="max_cost_usd=-1"):
        best_config(_configs(), by="resolution", max_cost_usd=-1)


def test_cost_per_image_counts_billed_failures_and_grid_tiles() -> None:
    df = pd.DataFrame(
        {
            "resolution": ["2K"] * 3,
            "status": ["ok", "error", "ok"],
            "total_s": [40.0, 5.0, 42.0],
            "cost_usd": [0.134, 0.134, 0.134],
            "tiles": [4, 4, 4],
        }
    )
    row = cost_latency(df, by="resolution", min_n=1).iloc[0]
    assert row["images"] == 8 and row["cost_per_image_usd"] == pytest.approx(3 * 0.134 / 8)


def test_throughput_from_overlap_and_requested_concurrency() -> None:
    rows = []
    for i in range(10):  # run a: one at a time, 10 s each
        rows.append(
            {"run_id": "a", "status": "ok", "scheduled_at": 10.0 * i, "ended_at": 10.0 * i + 10, "total_s": 10.0}
        )
    for i in range(10):  # run b: four in flight
        start = 10.0 * (i // 4)
        rows.append({"run_id": "b", "status": "ok", "scheduled_at": start, "ended_at": start + 10, "total_s": 10.0})
    t = throughput(pd.DataFrame(rows))
    assert t["run_id"].tolist() == ["a", "b"]
    assert t["achieved_concurrency"].round(2).tolist() == [1.0, round(100 / 30, 2)]
    assert t["images_per_min"].round(1).tolist() == [6.0, 20.0]
    with_col = pd.DataFrame(rows).assign(concurrency=[1] * 10 + [4] * 10)
    assert throughput(with_col)["concurrency"].tolist() == [1, 4]


def test_grid_vs_single_per_image_time_and_cost() -> None:
    df = synthetic_attempts(
        6_000, seed=4, resolutions=("2K",), thinking_levels=("low",), grids=("1x1", "2x2", "3x3"), slow_window=()
    )
    g = grid_vs_single(df)
    assert g["grid"].tolist() == ["1x1", "2x2", "3x3"] and g["tiles"].tolist() == [1.0, 4.0, 9.0]
    # synthetic truth: a 2x2 render takes 1.3x as long and yields 4 images
    assert g.loc[1, "time_ratio"] == pytest.approx(1.3 / 4, rel=0.08)
    assert g.loc[1, "cost_ratio"] == pytest.approx(0.25, rel=0.05)
    assert np.isnan(grid_vs_single(df[df["grid"] != "1x1"])["time_ratio"]).all()
