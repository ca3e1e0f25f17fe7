"""compare_regions: regions side by side, the difference from a baseline found where it exists."""

from __future__ import annotations

import numpy as np
import pytest

from nbp_kit.analysis.regions import compare_regions, offpeak_by_region
from nbp_kit.analysis.synthetic import synthetic_attempts
from nbp_kit.errors import ConfigError


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
    assert out.loc["ap-south", "verdict"].startswith("ap-south is slower than eu-west")
    assert out.loc["ap-south", "median_diff_lo"] > 2.0 and out.loc["ap-south", "median_diff_hi"] < 6.0
    assert out.loc["us-east", "verdict"].startswith("no effect larger than")  # equivalence within the margin
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

    # four weeks each: a recurring window needs several weeks (one week cannot tell it from a passing one)
    busy = synthetic_attempts(60_000, seed=4, days=28, resolutions=("1K",), thinking_levels=("low",)).assign(
        region="eu-west"
    )
    flat = synthetic_attempts(
        60_000, seed=5, days=28, resolutions=("1K",), thinking_levels=("low",), slow_window=()
    ).assign(region="ap-south")
    out = offpeak_by_region(pd.concat([busy, flat], ignore_index=True), by=())
    peaks = out[out["kind"] == "peak"]
    eu = peaks.loc[peaks["region"] == "eu-west"]
    assert len(eu) == 1 and eu["label"].iloc[0].startswith("Mon-Fri 1"), eu["label"].tolist()  # the slow window put in
    assert (eu["start_day"].iloc[0], eu["end_day"].iloc[0]) == (0, 4)
    assert peaks.loc[peaks["region"] == "ap-south"].empty  # none put in there
