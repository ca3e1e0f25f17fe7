"""Vantage points: does latency depend on where you call from?

Workers of a shared run (:mod:`nbp_kit.runs.worker`) record a ``region`` label on every attempt.
:func:`compare_regions` puts the regions side by side: per region the success rate, median
and P95 with confidence intervals (:func:`~nbp_kit.analysis.summarize`), where the time goes
(:func:`~nbp_kit.analysis.phase_shares`), and the difference from a baseline region with its
interval and a plain verdict (:func:`~nbp_kit.analysis.knob_effect` with ``region`` as the
knob). :func:`offpeak_by_region` finds each region's own off-peak and peak windows
(:func:`~nbp_kit.analysis.offpeak.offpeak_windows` per region).

>>> import numpy as np
>>> from nbp_kit.analysis.synthetic import synthetic_attempts
>>> df = synthetic_attempts(1_000, seed=0, resolutions=("1K",), thinking_levels=("low",))
>>> df["region"] = np.where(np.arange(len(df)) % 2, "eu-west", "ap-south")
>>> df.loc[df["region"] == "ap-south", "total_s"] += 5.0
>>> compare_regions(df, baseline="eu-west")[["region", "verdict"]].values.tolist()[0][0]
'ap-south'
"""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd

from .._paths import DATA_DIR
from ..errors import ConfigError
from .frames import as_columns, require_frame
from .summaries import knob_effect, phase_shares, summarize

#: A shared run drained by 3 workers in 3 regions (recorded by scripts/record-regions-sample).
SAMPLE_PATH = DATA_DIR / "samples" / "regions-3-workers.parquet"

_SUMMARY = ["n", "success_rate", "p50", "p50_lo", "p50_hi", "p95", "p95_lo", "p95_hi"]
_SHARES = ["server_share", "network_share", "client_share"]
_EFFECT = ["median_diff_s", "median_diff_lo", "median_diff_hi", "p95_diff_s", "p95_diff_lo", "p95_diff_hi", "verdict"]


def compare_regions(
    df: pd.DataFrame,
    *,
    baseline: str | None = None,
    by: str | Sequence[str] = (),
    ci: float = 0.95,
    min_n: int = 10,
    seed: int = 0,
) -> pd.DataFrame:
    """One row per region (within each stratum of ``by``): latency, phase shares, and the
    difference from ``baseline`` (default: the first region alphabetically).

    Attempt latency (``total_s``) of successful attempts. Pass ``by=("resolution",)`` when the
    regions did not all run the same mix of configs (workers of one shared run draw from one
    plan, so pooling is fair there). The baseline's own row has no difference and the verdict
    ``"baseline"``.
    """
    require_frame(df, ("region", "status", "total_s", "call_id", "ended_at"))
    strata = as_columns(by)
    if "region" in strata:
        raise ConfigError(f"by={strata!r} is not accepted; it must not contain 'region'")
    labelled = df[df["region"].notna()]
    regions = sorted(labelled["region"].unique().tolist())
    if not regions:
        raise ConfigError("df has no region labels; run workers with --region (nbp-kit worker RUN --region LABEL)")
    base = regions[0] if baseline is None else baseline
    if base not in regions:
        raise ConfigError(f"baseline={baseline!r} is not accepted; regions in the data are {regions}")
    keys = [*strata, "region"]
    summary = summarize(labelled, by=keys, latency="attempt", ci=ci, min_n=min_n, seed=seed)[[*keys, *_SUMMARY]]
    shares = phase_shares(labelled, by=keys)[[*keys, *_SHARES]]
    out = summary.merge(shares, on=keys, how="left")
    if len(regions) > 1:
        effect = knob_effect(labelled, "region", baseline=base, by=strata, ci=ci, min_n=min_n, seed=seed)
        effect = effect.rename(columns={"level": "region"})[[*keys, *_EFFECT]]
        out = out.merge(effect, on=keys, how="left")
    else:
        for col in _EFFECT:
            out[col] = None
    out["baseline"] = base
    out.loc[out["region"] == base, "verdict"] = "baseline"
    return out.reset_index(drop=True)


def offpeak_by_region(df: pd.DataFrame, **options: object) -> pd.DataFrame:
    """:func:`~nbp_kit.analysis.offpeak.offpeak_windows` for each region, stacked with a ``region`` column.

    ``options`` go to ``offpeak_windows`` (``tz``, ``min_n``, ``period``...). A region's peak
    hours can differ from another's: the service's load is one thing, each path's another.
    """
    from .offpeak import offpeak_windows

    require_frame(df, ("region",))
    frames = []
    for region, group in df[df["region"].notna()].groupby("region", sort=True):
        found = offpeak_windows(group, **options)  # type: ignore[arg-type]
        frames.append(found.assign(region=region))
    if not frames:
        raise ConfigError("df has no region labels; run workers with --region (nbp-kit worker RUN --region LABEL)")
    out = pd.concat(frames, ignore_index=True)
    return out[["region", *[c for c in out.columns if c != "region"]]]


def sample_frame() -> pd.DataFrame:
    """The attempts of a recorded shared run: 150 items, 3 workers labelled ``eu-west``,
    ``us-east`` and ``ap-south``, reaching one emulated service (one quota) over the
    loopback, office-100mbps and cross-border-8mbps network profiles (time scale 0.02).

    >>> sorted(sample_frame()["region"].unique())
    ['ap-south', 'eu-west', 'us-east']
    """
    return pd.read_parquet(SAMPLE_PATH)
