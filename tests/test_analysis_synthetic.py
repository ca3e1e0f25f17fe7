"""The synthetic attempt generator used by tests, benchmarks and docs (nbp_kit.analysis.synthetic)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from nbp_kit import ConfigError
from nbp_kit.analysis.synthetic import synthetic_attempts
from nbp_kit.records import ATTEMPT_FIELDS, PHASES


def test_columns_are_the_attempt_fields_and_rows_are_consistent() -> None:
    df = synthetic_attempts(5_000, seed=0)
    assert tuple(df.columns) == ATTEMPT_FIELDS and len(df) == 5_000
    phases = sum(df[f"{p}_s"].fillna(0) for p in PHASES)
    assert np.allclose(phases, df["total_s"])
    assert np.allclose(df["ended_at"] - df["scheduled_at"], df["total_s"])
    assert (df["wait_s"] >= df["server_generation_s"] + df["server_queue_s"]).all()
    ok = df["status"] == "ok"
    assert (df.loc[~ok, "status_code"].isin([429, 503])).all() and (df.loc[ok, "status_code"] == 200).all()
    assert (df.loc[~ok, "cost_usd"] == 0).all() and (df.loc[ok, "cost_usd"] > 0.134).all()


def test_retries_follow_failures_within_a_call() -> None:
    df = synthetic_attempts(20_000, seed=1, rate_429=0.2)
    calls = df.groupby("call_id", sort=False)
    assert (calls["attempt_no"].min() == 1).all()
    multi = df[df["attempt_no"] > 1]
    assert len(multi) > 1000
    prev = df.set_index(["call_id", "attempt_no"]).loc[list(zip(multi["call_id"], multi["attempt_no"] - 1))]
    assert (prev["status"] == "error").all()
    # the next try starts after the previous one ended plus its back-off
    assert np.allclose(multi["scheduled_at"].to_numpy(), prev["ended_at"].to_numpy() + prev["retry_delay_s"].to_numpy())


def test_seeded_and_configurable() -> None:
    a, b = synthetic_attempts(1_000, seed=7), synthetic_attempts(1_000, seed=7)
    pd.testing.assert_frame_equal(a, b)
    assert not synthetic_attempts(1_000, seed=8)["total_s"].equals(a["total_s"])
    scaled = synthetic_attempts(1_000, seed=7, time_scale=0.02)
    assert set(scaled["clock"]) == {"scaled"} and set(scaled["time_scale"]) == {0.02}
    assert np.allclose(scaled["server_generation_s"], 0.02 * a["server_generation_s"])  # only the server is scaled
    assert np.allclose(scaled["download_s"], a["download_s"])
    virtual = synthetic_attempts(100, seed=7, clock="virtual")
    assert virtual["virtual_at"].notna().all()
    assert len(synthetic_attempts(0)) == 0
    with pytest.raises(ConfigError, match="resolutions='3K'"):
        synthetic_attempts(10, resolutions=("3K",))
    with pytest.raises(ConfigError, match="n=-1"):
        synthetic_attempts(-1)
