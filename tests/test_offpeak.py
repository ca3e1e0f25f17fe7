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
def week() -> pd.DataFrame:
    # default truth: Mon-Fri 13:00-18:00 UTC is 1.35x slower, with 3x the 429/503 rate
    return synthetic_attempts(60_000, seed=0)


def test_hour_of_week_has_168_cells_and_flags_the_slow_ones(week: pd.DataFrame) -> None:
    t = hour_of_week(week)
    assert len(t) == 168 and t["n"].sum() == (week["status"] == "ok").sum()
    slow_truth = {d * 24 + h for d, h in DEFAULT_SLOW_WINDOW}
    flagged = set(np.flatnonzero(t["slower"]))
    assert flagged == slow_truth
    inside = t.index.isin(sorted(slow_truth))
    assert t.loc[inside, "median_ratio"].mean() / t.loc[~inside, "median_ratio"].mean() == pytest.approx(1.35, rel=0.05)
    assert t.loc[inside, "rate_429"].mean() > 2 * t.loc[~inside, "rate_429"].mean()
    ok = t["enough"]
    assert ((t.loc[ok, "median_ratio_lo"] <= t.loc[ok, "median_ratio"])
            & (t.loc[ok, "median_ratio"] <= t.loc[ok, "median_ratio_hi"])).all()
    assert (t.loc[ok, "p_adjusted"] >= t.loc[ok, "p_value"]).all()  # Holm only ever raises p


def test_configured_slow_window_is_recovered_as_peak_windows(week: pd.DataFrame) -> None:
    w = offpeak_windows(week)
    peaks = w[w["kind"] == "peak"]
    assert sorted(peaks["label"]) == sorted(f"{d} 13:00-18:00 UTC" for d in WEEKDAYS)
    assert (peaks["change_lo_pct"] > 25).all() and (peaks["change_hi_pct"] < 45).all()  # truth +35 %
    assert w["kind"].iloc[0] == "off-peak" and w["rank"].tolist() == list(range(1, len(w) + 1))
    first = w.iloc[0]
    assert first["change_hi_pct"] < 0 and first["advice"].startswith(first["label"])
    assert "vs" in first["advice"] and "at peak" in first["advice"] and "CI" in first["advice"]


def test_daily_period_gives_one_peak_and_one_offpeak_window(week: pd.DataFrame) -> None:
    w = offpeak_windows(week, period="day")
    assert w["label"].tolist() == ["18:00-13:00 UTC", "13:00-18:00 UTC"]
    assert w["kind"].tolist() == ["off-peak", "peak"]
    assert w["advice"].iloc[0].startswith("18:00-13:00 UTC: median ")


def test_time_zone_moves_the_window(week: pd.DataFrame) -> None:
    w = offpeak_windows(week, tz="Asia/Shanghai")
    peaks = sorted(w.loc[w["kind"] == "peak", "label"])
    assert "Mon 21:00-Tue 02:00 Asia/Shanghai" in peaks and len(peaks) == 5
    assert len(hour_of_week(week.head(2000), tz="local")) == 168
    with pytest.raises(ConfigError, match="tz='Mars/Olympus'"):
        hour_of_week(week, tz="Mars/Olympus")


def test_virtual_clock_is_used_for_time_of_day() -> None:
    df = synthetic_attempts(20_000, seed=3, clock="virtual", slow_window=((0, 3), (0, 4)))
    # wall-clock sent_at is meaningless under a virtual clock: move it, the answer must not move
    df["sent_at"] = 0.0
    peaks = offpeak_windows(df)
    assert peaks.loc[peaks["kind"] == "peak", "label"].tolist() == ["Mon 03:00-05:00 UTC"]


def test_flat_week_has_no_windows_and_tiny_frames_do_not_crash() -> None:
    flat = synthetic_attempts(40_000, seed=1, slow_window=())
    assert offpeak_windows(flat).empty
    tiny = synthetic_attempts(40, seed=1)
    t = hour_of_week(tiny, min_n=30)
    assert not t["enough"].any() and t["p_value"].isna().all() and t["median_ratio_lo"].isna().all()
    assert offpeak_windows(tiny).empty
    empty = hour_of_week(tiny.iloc[0:0])
    assert len(empty) == 168 and (empty["n"] == 0).all()


def test_multiple_comparison_correction_changes_significance(week: pd.DataFrame) -> None:
    sample = week.sample(8_000, random_state=0)
    none = hour_of_week(sample, correction="none")
    holm = hour_of_week(sample, correction="holm")
    bh = hour_of_week(sample, correction="bh")
    assert holm["slower"].sum() <= bh["slower"].sum() <= none["slower"].sum()
    with pytest.raises(ConfigError, match="correction='sidak'"):
        hour_of_week(sample, correction="sidak")


def test_drift_over_weeks_detects_a_slower_third_week() -> None:
    base = synthetic_attempts(20_000, seed=0, days=14, slow_window=())
    later = synthetic_attempts(10_000, seed=1, days=7, start_at=DEFAULT_START_AT + 14 * 86400,
                               slow_window=tuple((d, h) for d in range(7) for h in range(24)), slow_factor=1.2)
    later["call_id"] = "w3-" + later["call_id"].astype(str)
    d = drift_over_weeks(pd.concat([base, later], ignore_index=True))
    assert len(d) == 3
    assert d["drift"].tolist() == [False, False, True]
    assert 10 < d["change_pct"].iloc[2] < 30


def test_local_zone_and_fixed_offset_agree_with_iana(monkeypatch: pytest.MonkeyPatch) -> None:
    from nbp_kit.analysis.offpeak import _cells, _local_zone

    monkeypatch.setenv("TZ", "Asia/Shanghai")
    assert _local_zone() == ("Asia/Shanghai", "Asia/Shanghai (local)")
    t = np.random.default_rng(0).uniform(1.77e9, 1.78e9, 5_000)
    # Shanghai has no DST: the arithmetic fixed-offset path must match pandas' conversion
    assert (_cells(t, 8 * 3600, "week") == _cells(t, "Asia/Shanghai", "week")).all()
    assert (_cells(t, 0, "day") == (t // 3600 % 24)).all()
