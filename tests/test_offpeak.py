"""Hour-of-week tables, off-peak windows and drift (nbp_kit.analysis.offpeak), against a known truth."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from nbp_kit import ConfigError
from nbp_kit.analysis import drift_over_weeks, hour_of_week, offpeak_windows
from nbp_kit.analysis.synthetic import (
    DEFAULT_SLOW_WINDOW,
    DEFAULT_START_AT,
    synthetic_attempts,
)

WEEKDAYS = ("Mon", "Tue", "Wed", "Thu", "Fri")


@pytest.fixture(scope="module")
def weeks() -> pd.DataFrame:
    # default truth, four weeks: Mon-Fri 13:00-18:00 UTC is 1.35x slower, with 3x the 429/503 rate
    return synthetic_attempts(80_000, seed=0, days=28)


@pytest.fixture(scope="module")
def week() -> pd.DataFrame:
    return synthetic_attempts(30_000, seed=0)


def test_hour_of_week_has_168_cells_and_flags_the_slow_ones(weeks: pd.DataFrame) -> None:
    t = hour_of_week(weeks)
    assert len(t) == 168 and t["n"].sum() == (weeks["status"] == "ok").sum()
    assert (t["n_periods"] == 4).all()  # each hour of the week seen in four distinct weeks
    slow_truth = {d * 24 + h for d, h in DEFAULT_SLOW_WINDOW}
    flagged = set(np.flatnonzero(t["slower"]))
    assert flagged <= slow_truth and len(flagged) >= 20, sorted(flagged)
    inside = t.index.isin(sorted(slow_truth))
    assert t.loc[inside, "median_ratio"].mean() / t.loc[~inside, "median_ratio"].mean() == pytest.approx(1.35, rel=0.05)
    assert t.loc[inside, "rate_429"].mean() > 2 * t.loc[~inside, "rate_429"].mean()
    assert t.loc[inside, "error_rate"].mean() > 2 * t.loc[~inside, "error_rate"].mean()
    ok = t["enough"]
    assert ok.all()
    assert (
        (t.loc[ok, "median_ratio_lo"] <= t.loc[ok, "median_ratio"])
        & (t.loc[ok, "median_ratio"] <= t.loc[ok, "median_ratio_hi"])
    ).all()
    assert (t.loc[ok, "p_adjusted"] >= t.loc[ok, "p_value"]).all()  # Holm only ever raises p


def test_one_week_cannot_claim_a_recurring_window(week: pd.DataFrame) -> None:
    t = hour_of_week(week)
    assert not t["enough"].any() and t["median_ratio_lo"].isna().all() and not t["slower"].any()
    w = offpeak_windows(week)
    assert w["kind"].tolist() == ["not enough data"]
    assert "one week cannot tell a recurring window from a passing one" in w["advice"].iloc[0]
    assert w.attrs["note"] == w["advice"].iloc[0]


def test_configured_slow_window_is_recovered_as_a_peak_window(weeks: pd.DataFrame) -> None:
    w = offpeak_windows(weeks)
    assert w["kind"].tolist() == ["peak"], w["advice"].tolist()  # nothing is faster than the week's median
    peak = w.iloc[0]
    assert peak["label"].startswith("Mon-Fri 1") and (peak["start_day"], peak["end_day"]) == (0, 4)
    assert 13 <= peak["start_hour"] and peak["start_hour"] + peak["hours"] <= 18
    assert 25 < peak["change_lo_pct"] <= peak["change_pct"] <= peak["change_hi_pct"] < 45  # truth ~+35 %, held out
    assert peak["error_rate"] > 2 * peak["reference_error_rate"]
    assert peak["advice"].startswith(peak["label"] + " (peak): +3") and "held-out weeks" in peak["advice"]


def test_daily_period_uses_days_as_replicates(week: pd.DataFrame) -> None:
    w = offpeak_windows(week, period="day")  # seven days: enough for hours of every day
    peak = w[w["kind"] == "peak"].iloc[0]
    assert 13 <= peak["start_hour"] and peak["start_hour"] + peak["hours"] <= 18
    assert "held-out days" in peak["advice"] and peak["change_lo_pct"] > 0


def test_time_zone_moves_the_window(weeks: pd.DataFrame) -> None:
    w = offpeak_windows(weeks, tz="Asia/Shanghai")
    peak = w[w["kind"] == "peak"].iloc[0]
    hours = {(peak["start_hour"] + k) % 24 for k in range(int(peak["hours"]))}
    assert hours <= {21, 22, 23, 0, 1} and peak["label"].endswith("Asia/Shanghai"), peak["label"]
    assert len(hour_of_week(weeks.head(2000), tz="local")) == 168
    with pytest.raises(ConfigError, match="tz='Mars/Olympus'"):
        hour_of_week(weeks, tz="Mars/Olympus")


def test_virtual_clock_is_used_for_time_of_day() -> None:
    # one weekday's window needs more weeks than a window over several days: 8 Mondays
    df = synthetic_attempts(60_000, seed=3, days=56, clock="virtual", slow_window=((0, 3), (0, 4)))
    # wall-clock sent_at is meaningless under a virtual clock: move it, the answer must not move
    df["sent_at"] = 0.0
    peak = offpeak_windows(df)
    peak = peak[peak["kind"] == "peak"].iloc[0]
    assert (peak["start_day"], peak["end_day"]) == (0, 0) and peak["start_hour"] in (3, 4), peak["label"]


def test_flat_weeks_have_no_windows_and_tiny_frames_do_not_crash() -> None:
    flat = synthetic_attempts(40_000, seed=1, days=28, slow_window=())
    w = offpeak_windows(flat)
    assert w.empty and "no window recurs" in w.attrs["note"]
    tiny = synthetic_attempts(40, seed=1)
    t = hour_of_week(tiny, min_n=30)
    assert not t["enough"].any() and t["p_value"].isna().all() and t["median_ratio_lo"].isna().all()
    assert offpeak_windows(tiny)["kind"].tolist() == ["not enough data"]
    empty = hour_of_week(tiny.iloc[0:0])
    assert len(empty) == 168 and (empty["n"] == 0).all()


def test_probe_models_rows_are_left_out_by_the_function(week: pd.DataFrame) -> None:
    models = week.head(500).copy()
    models["transport"] = "models"
    models["total_s"] = 0.05  # a models-list request is fast: as a "config" it would skew every hour
    both = pd.concat([week, models], ignore_index=True)
    pd.testing.assert_frame_equal(hour_of_week(both, period="day"), hour_of_week(week, period="day"))


def test_multiple_comparison_correction_changes_significance(weeks: pd.DataFrame) -> None:
    sample = weeks.sample(20_000, random_state=0)
    none = hour_of_week(sample, correction="none")
    holm = hour_of_week(sample, correction="holm")
    bh = hour_of_week(sample, correction="bh")
    assert holm["slower"].sum() <= bh["slower"].sum() <= none["slower"].sum()
    with pytest.raises(ConfigError, match="correction='sidak'"):
        hour_of_week(sample, correction="sidak")


def test_drift_over_weeks_detects_a_slower_third_week() -> None:
    base = synthetic_attempts(20_000, seed=0, days=14, slow_window=())
    later = synthetic_attempts(
        10_000,
        seed=1,
        days=7,
        start_at=DEFAULT_START_AT + 14 * 86400,
        slow_window=tuple((d, h) for d in range(7) for h in range(24)),
        slow_factor=1.2,
    )
    later["call_id"] = "w3-" + later["call_id"].astype(str)
    d = drift_over_weeks(pd.concat([base, later], ignore_index=True))
    assert len(d) == 3
    assert d["drift"].tolist() == [False, False, True]
    assert 10 < d["change_pct"].iloc[2] < 30
    assert (d["n_days"] == 7).all() and d["p_adjusted"].iloc[2] >= d["p_value"].iloc[2]  # Holm across weeks


def test_local_zone_and_fixed_offset_agree_with_iana(monkeypatch: pytest.MonkeyPatch) -> None:
    from nbp_kit.analysis.offpeak import _cells, _local_zone

    monkeypatch.setenv("TZ", "Asia/Shanghai")
    assert _local_zone() == ("Asia/Shanghai", "Asia/Shanghai (local)")
    t = np.random.default_rng(0).uniform(1.77e9, 1.78e9, 5_000)
    # Shanghai has no DST: the arithmetic fixed-offset path must match pandas' conversion
    assert (_cells(t, 8 * 3600, "week") == _cells(t, "Asia/Shanghai", "week")).all()
    assert (_cells(t, 0, "day") == (t // 3600 % 24)).all()
