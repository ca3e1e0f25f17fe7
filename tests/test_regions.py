"""compare_regions: regions side by side, the difference from a baseline found where it exists."""

from __future__ import annotations

import numpy as np
import pytest

from nbp_kit.errors import ConfigError
from nbp_kit.regions import compare_regions, offpeak_by_region
from nbp_kit.synthetic import synthetic_attempts


def _three_regions():
    df = synthetic_attempts(1_500, seed=3, resolutions=("1K",), thinking_levels=("low",))
    df["region"] = np.array(["eu-west", "us-east", "ap-south"])[np.arange(len(df)) % 3]
    slow = df["region"] == "ap-south"
    df.loc[slow, "total_s"] += 4.0  # e.g. the article's "+3-8 s from China"
    df.loc[slow, "download_s"] = df.loc[slow, "download_s"].fillna(0) + 4.0
    return df


def test_a_slower_region_is_found_and_an_equal_one_is_not():
    out = compare_regions(_three_regions(), baseline="eu-west").set_index("region")
    assert out.loc["eu-west", "verdict"] == "baseline"
    assert out.loc["ap-south", "verdict"].startswith("ap-south is +")
    assert out.loc["ap-south", "median_diff_lo"] > 2.0 and out.loc["ap-south", "median_diff_hi"] < 6.0
    assert out.loc["us-east", "verdict"].startswith("no detectable effect")  # at the median, at least
    assert out.loc["us-east", "median_diff_lo"] < 0 < out.loc["us-east", "median_diff_hi"]
    # The extra time is the network's: its share grows in the slow region only.
    assert out.loc["ap-south", "network_share"] > 2 * out.loc["eu-west", "network_share"]
    assert set(out["n"]) == {500}


def test_bad_input_names_the_argument():
    df = _three_regions()
    with pytest.raises(ConfigError, match="baseline='mars'"):
        compare_regions(df, baseline="mars")
    with pytest.raises(ConfigError, match="must not contain 'region'"):
        compare_regions(df, by=("region",))
    with pytest.raises(ConfigError, match="no region labels"):
        compare_regions(df.assign(region=None))


def test_offpeak_windows_are_found_per_region():
    import pandas as pd

    busy = synthetic_attempts(12_000, seed=4, resolutions=("1K",), thinking_levels=("low",)).assign(region="eu-west")
    flat = synthetic_attempts(12_000, seed=5, resolutions=("1K",), thinking_levels=("low",),
                              slow_factor=1.0).assign(region="ap-south")
    out = offpeak_by_region(pd.concat([busy, flat], ignore_index=True), by=())
    peaks = out[out["kind"] == "peak"]
    eu = sorted(peaks.loc[peaks["region"] == "eu-west", "label"])
    assert eu == [f"{d} 13:00-18:00 UTC" for d in ("Fri", "Mon", "Thu", "Tue", "Wed")]  # the slow window put in
    ap = peaks.loc[peaks["region"] == "ap-south"]
    assert not ap["label"].str.contains("13:00-18:00").any()  # none put in there
    assert (ap["hours"] <= 1).all()  # at most a stray hour (multiple testing leaves a few)
