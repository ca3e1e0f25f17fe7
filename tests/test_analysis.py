"""Summaries, reference comparison, knob effects and phase shares (nbp_kit.analysis)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from nbp_kit import ConfigError
from nbp_kit.analysis import (
    bottleneck,
    compare_reference,
    knob_effect,
    phase_shares,
    summarize,
    user_calls,
)
from nbp_kit.analysis.quantile_ci import min_n_for_quantile
from nbp_kit.analysis.stats import benjamini_hochberg, grouped_quantiles, holm
from nbp_kit.analysis.synthetic import synthetic_attempts

QS = ("p50", "p90", "p95", "p99")


def _frame(groups: list[list[float]], *, fail_every: int = 0) -> pd.DataFrame:
    """A minimal attempts frame: one call per latency, group i -> resolution "R{i}"."""
    rows = []
    for g, values in enumerate(groups):
        for i, v in enumerate(values):
            ok = not (fail_every and i % fail_every == fail_every - 1)
            rows.append(
                {
                    "call_id": f"{g}-{i}",
                    "status": "ok" if ok else "error",
                    "total_s": v,
                    "scheduled_at": 1000.0 + i,
                    "ended_at": 1000.0 + i + v,
                    "resolution": f"R{g}",
                }
            )
    return pd.DataFrame(rows, columns=["call_id", "status", "total_s", "scheduled_at", "ended_at", "resolution"])


latencies = st.lists(st.floats(min_value=0.01, max_value=500, allow_nan=False), min_size=0, max_size=60)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(latencies, min_size=1, max_size=4))
def test_percentiles_monotone_and_cis_contain_estimates(groups: list[list[float]]) -> None:
    s = summarize(_frame(groups), by="resolution", latency="attempt", min_n=5, n_boot=200)
    for row in s.itertuples():
        points = [getattr(row, q) for q in QS]
        if row.n_latency == 0:
            assert all(math.isnan(p) for p in points)
            continue
        assert points == sorted(points)
        for q in ("mean", *QS):
            lo, point, hi = getattr(row, f"{q}_lo"), getattr(row, q), getattr(row, f"{q}_hi")
            too_few = row.small_sample or (q != "mean" and row.n_latency < min_n_for_quantile(int(q[1:]) / 100))
            if too_few:
                assert math.isnan(lo) and math.isnan(hi)
            else:
                assert lo <= point + 1e-9 and point <= hi + 1e-9


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(latencies, min_size=1, max_size=3), st.randoms(use_true_random=False))
def test_results_do_not_depend_on_row_order(groups: list[list[float]], rnd) -> None:
    df = _frame(groups, fail_every=4)
    shuffled = df.iloc[rnd.sample(range(len(df)), len(df))].reset_index(drop=True)
    a = summarize(df, by="resolution", min_n=5, n_boot=200)
    b = summarize(shuffled, by="resolution", min_n=5, n_boot=200)
    pd.testing.assert_frame_equal(a, b)


def test_empty_frame_gives_empty_summary_with_columns() -> None:
    s = summarize(_frame([[]]), by="resolution")
    assert s.empty and {"n", "p95", "p95_lo", "small_sample"} <= set(s.columns)


def test_tiny_group_is_flagged_not_crashed() -> None:
    s = summarize(_frame([[3.0, 4.0], [1.0] * 30]), by="resolution", latency="attempt", min_n=20)
    tiny, big = s.iloc[0], s.iloc[1]
    assert tiny["small_sample"] and math.isnan(tiny["p50_lo"]) and tiny["p50"] == 3.5
    assert not big["small_sample"] and big["p50_lo"] == big["p50"] == 1.0


def test_all_failed_group_has_success_rate_zero_and_no_latency() -> None:
    df = _frame([[5.0, 6.0, 7.0]])
    df["status"] = "error"
    row = summarize(df, by="resolution", latency="attempt").iloc[0]
    assert row["success_rate"] == 0 and row["n_latency"] == 0 and math.isnan(row["p50"])


@pytest.mark.parametrize("boot_max_n", [5000, 0], ids=["bootstrap-mean", "normal-mean"])
def test_quantile_cis_cover_the_truth_about_95_percent_of_the_time(boot_max_n: int) -> None:
    truth = {0.5: 10 * math.log(2), 0.9: 10 * math.log(10), 0.95: 10 * math.log(20)}  # exponential(mean 10)
    covered = {q: 0 for q in truth}
    reps = 120
    for rep in range(reps):
        x = np.random.default_rng(1000 + rep).exponential(10.0, 300)
        t = grouped_quantiles(np.zeros(len(x), int), x, qs=(*truth, 0.99), n_boot=300, boot_max_n=boot_max_n, seed=rep)
        assert t.method[0] == ("order+bootstrap mean" if boot_max_n else "order")
        assert math.isnan(t.lo[0.99][0])  # 300 values cannot bound a P99: refused, not guessed
        for q, v in truth.items():
            covered[q] += t.lo[q][0] < v < t.hi[q][0]
    for q in truth:
        assert 0.9 <= covered[q] / reps, (q, covered[q] / reps)


def test_user_latency_includes_retries_and_backoff() -> None:
    df = pd.DataFrame(
        {
            "call_id": ["c1", "c1", "c2"],
            "status": ["error", "ok", "error"],
            "scheduled_at": [100.0, 112.0, 200.0],
            "ended_at": [110.0, 140.0, 205.0],
            "total_s": [10.0, 28.0, 5.0],
            "resolution": ["2K"] * 3,
        }
    )
    calls = user_calls(df)
    assert calls["user_latency_s"].tolist() == [40.0, 5.0] and calls["ok"].tolist() == [True, False]
    s = summarize(df, by="resolution", min_n=1)
    user = s[s["latency"] == "user"].iloc[0]
    attempt = s[s["latency"] == "attempt"].iloc[0]
    assert (user["n"], user["successes"], user["p50"]) == (2, 1, 40.0)
    assert (attempt["n"], attempt["successes"], attempt["p50"]) == (3, 1, 28.0)


def test_summarize_rejects_bad_arguments() -> None:
    df = synthetic_attempts(50, seed=0)
    with pytest.raises(ConfigError, match="latency='wall'"):
        summarize(df, latency="wall")
    with pytest.raises(ConfigError, match="lacks column"):
        summarize(df.drop(columns=["total_s"]))
    with pytest.raises(ConfigError, match="ci="):
        summarize(df, ci=1.5)


def test_holm_and_bh_adjustments() -> None:
    p = np.array([0.001, 0.02, np.nan, 0.04, 0.5])
    h, b = holm(p), benjamini_hochberg(p)
    assert np.isnan(h[2]) and np.isnan(b[2])
    assert (
        h[0] == pytest.approx(0.004) and h[1] == pytest.approx(0.06) and h[4] == 1.0 or h[4] == pytest.approx(0.5 * 1)
    )
    assert (b[[0, 1, 3, 4]] <= h[[0, 1, 3, 4]] + 1e-12).all()


# --- ground truth on synthetic data -------------------------------------------------------


def test_configured_thinking_effect_is_recovered_within_ci() -> None:
    sigma = 0.18
    df = synthetic_attempts(
        6_000, seed=0, resolutions=("2K",), thinking_extra_s={"low": 0.0, "high": 15.0}, slow_window=(), sigma=sigma
    )
    row = knob_effect(df, "thinking_level").iloc[0]
    truth = 15.0 * math.exp(-(sigma**2) / 2)  # median of the lognormal noise scales the added time
    assert (row["level"], row["baseline"]) == ("high", "low")
    assert row["median_diff_lo"] <= truth <= row["median_diff_hi"]
    assert row["median_diff_hi"] - row["median_diff_lo"] < 2.0  # and the interval is informative
    assert row["effect"] == "slower" and row["verdict"].startswith("high is slower than low by 1")


def test_knob_without_effect_is_reported_as_no_effect_beyond_the_margin() -> None:
    df = synthetic_attempts(6_000, seed=5, aspect_ratios=("1:1", "16:9"), resolutions=("2K",))
    e = knob_effect(df, "aspect_ratio")
    assert len(e) == 2  # one row per thinking level stratum
    assert (e["effect"] == "none").all() and e["verdict"].str.startswith("no effect larger than the").all()
    assert ((-e["margin_s"] < e["median_diff_lo"]) & (e["median_diff_hi"] < e["margin_s"])).all()
    # the same data with a margin too tight to prove: inconclusive, with how much more to collect
    tight = knob_effect(df, "aspect_ratio", margin_s=0.05)
    assert (tight["effect"] == "inconclusive").all()
    assert tight["verdict"].str.contains(r"about [\d,]+ more calls per level would settle it").all()


def test_knob_effect_strata_baseline_and_tiny_groups() -> None:
    df = synthetic_attempts(3_000, seed=2)
    e = knob_effect(df, "thinking_level")
    assert sorted(e["resolution"]) == ["1K", "2K", "4K"] and set(e["baseline"]) == {"low"}
    pooled = knob_effect(df, "resolution", by=(), baseline="4K")
    assert list(pooled["level"]) == ["1K", "2K"] and (pooled["median_diff_s"] < 0).all()
    assert "faster than 4K" in pooled["verdict"].iloc[0]
    tiny = knob_effect(df.head(30), "thinking_level", by=(), min_n=50)
    assert tiny["verdict"].iloc[0].startswith("too few samples")
    with pytest.raises(ConfigError, match="baseline='ultra'"):
        knob_effect(df, "thinking_level", baseline="ultra")


def test_compare_reference_puts_measured_beside_published() -> None:
    t = compare_reference(synthetic_attempts(8_000, seed=3, slow_window=()))
    assert list(zip(t["resolution"], t["thinking_level"])) == [
        ("1K", "low"),
        ("2K", "low"),
        ("2K", "high"),
        ("4K", "low"),
        ("4K", "high"),
    ]
    row = t[(t["resolution"] == "2K") & (t["thinking_level"] == "low")].iloc[0]
    assert row["published_mean_low_s"] == 30 and row["mean_in_range"]  # synthetic 2K/low mean ~33 s
    assert "inside the published 30-40 s" in row["verdict"]
    scaled = compare_reference(synthetic_attempts(8_000, seed=3, slow_window=(), time_scale=0.02))
    assert scaled["mean"].iloc[1] == pytest.approx(row["mean"], rel=0.1)  # rescaled back to real seconds


def test_phase_shares_uses_server_truth_and_rtt_estimate() -> None:
    base = {
        "status": "ok",
        "queue_s": 0.1,
        "connect_s": 0.2,
        "tls_s": 0.3,
        "send_s": 0.0,
        "download_s": 1.0,
        "fetch_s": None,
        "parse_s": 0.1,
        "decode_s": 0.2,
        "save_s": 0.1,
        "resolution": "2K",
    }
    emu = pd.DataFrame([{**base, "wait_s": 10.0, "server_generation_s": 9.5, "server_queue_s": 0.3}])
    p = phase_shares(emu, by="resolution").iloc[0]
    assert p["server_s"] == pytest.approx(9.8) and p["network_s"] == pytest.approx(1.5 + 0.2)
    assert p["client_s"] == pytest.approx(0.5) and p["server_source"] == "emulator"
    real = pd.DataFrame(
        [{**base, "wait_s": 10.0, "status_code": 200}, {**base, "status": "error", "wait_s": 0.4, "status_code": 429}]
    )
    r = phase_shares(real, by=()).iloc[0]
    assert r["server_s"] == pytest.approx(9.6) and r["n"] == 1  # rtt from the cheap 429
    assert phase_shares(real, by=(), rtt_s=0.0).iloc[0]["server_s"] == pytest.approx(10.0)


def test_bottleneck_answers_directly() -> None:
    assert bottleneck(synthetic_attempts(2_000, seed=0)).startswith("The API: server generation is 9")
    slow_net = synthetic_attempts(500, seed=0, resolutions=("4K",), bandwidth_mbps=0.5)
    assert bottleneck(slow_net).startswith("Your network:")
    none = synthetic_attempts(50, seed=0)
    none["status"] = "error"
    assert bottleneck(none) == "No successful attempts to judge from."


def test_frame_built_from_attempt_records_works_end_to_end() -> None:
    from nbp_kit.records import Attempt

    recs = []
    for i in range(40):
        ok = i % 10 != 9
        recs.append(
            Attempt(
                attempt_id=f"a{i}",
                call_id=f"c{i}",
                attempt_no=1,
                status="ok" if ok else "error",
                resolution="2K",
                aspect_ratio="1:1",
                thinking_level=None,
                scheduled_at=1000.0 + 60 * i,
                sent_at=1000.0 + 60 * i,
                ended_at=1030.0 + 60 * i + i * 0.1,
                total_s=30.0 + i * 0.1,
                wait_s=29.0,
                download_s=0.5,
                status_code=200 if ok else 503,
                cost_usd=0.134 if ok else 0.0,
            )
        )
    recs.append(Attempt(attempt_id="live", call_id="c-live", attempt_no=1, resolution="2K", sent_at=5000.0))
    df = pd.DataFrame([r.as_dict() for r in recs])
    s = summarize(df, by=("resolution", "thinking_level"), min_n=5)
    assert s["thinking_level"].tolist() == ["(none)", "(none)"]
    assert s.loc[0, "n"] == 40 and s.loc[0, "success_rate"] == pytest.approx(0.9)  # "started" row left out
    assert phase_shares(df, by="resolution").loc[0, "server_source"].startswith("wait - rtt")
    assert bottleneck(df).startswith("The API")
    assert knob_effect(df, "thinking_level").empty  # one level only: nothing to compare
