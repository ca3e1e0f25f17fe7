"""From records to answers: statistics over the tidy attempts frame, each with its uncertainty.

Every function takes the attempts frame (columns :data:`nbp_kit.records.ATTEMPT_FIELDS`) and
grouping column names, and returns a DataFrame (or a sentence). A *config* is one
combination of :data:`CONFIG_COLUMNS`; grouping columns a frame lacks are skipped.

- :func:`summarize`: n, success rate, mean and P50/P90/P95/P99 with confidence intervals,
  for attempt latency (``total_s``) and user latency (per call: retries and back-off included).
- :func:`compare_reference`: measured mean/P95 beside the seed article's published table.
- :func:`knob_effect`: difference in median and P95 between levels of a knob, with a CI and
  one of three verdicts (an effect; no effect beyond a practical margin; inconclusive, with
  how many more calls would settle it), Holm-corrected across rows.
- :func:`phase_shares` and :func:`bottleneck`: is the time the API's, the network's or yours?
- Advice (:mod:`nbp_kit.analysis.advice`): :func:`recommend_timeouts`, :func:`cost_latency`,
  :func:`best_config`, :func:`throughput`, :func:`grid_vs_single`; time of day
  (:mod:`nbp_kit.analysis.offpeak`): :func:`hour_of_week`, :func:`offpeak_windows`,
  :func:`drift_over_weeks`; :func:`hedging_whatif` (:mod:`nbp_kit.analysis.hedging`).

>>> from nbp_kit.analysis.synthetic import synthetic_attempts
>>> s = summarize(synthetic_attempts(3_000, seed=1), by=("resolution",), latency="attempt")
>>> s["resolution"].tolist(), bool((s["p50"] <= s["p95"]).all())
(['1K', '2K', '4K'], True)
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from ..errors import ConfigError
from .censoring import censored_attempts, censored_calls, hedge_losers
from .equivalence import classify, median_shift, quantile_diff_bounds
from .frames import (
    CONFIG_COLUMNS,
    MISSING_LABEL,
    as_columns,
    group_codes,
    is_ok,
    latency_view,
    level_key,
    num,
    present,
    qname,
    require_frame,
)
from .reference import load_reference
from .stats import grouped_quantiles, holm

__all__ = [
    "bottleneck",
    "compare_reference",
    "estimate_rtt",
    "knob_effect",
    "phase_shares",
    "real_seconds",
    "summarize",
]

DEFAULT_QUANTILES: tuple[float, ...] = (0.5, 0.9, 0.95, 0.99)


def _stat_columns(qs: Sequence[float]) -> list[str]:
    cols = ["n", "successes", "success_rate", "n_latency", "n_censored", "n_hedge_lost", "mean", "mean_lo", "mean_hi"]
    for q in qs:
        cols += [qname(q), f"{qname(q)}_lo", f"{qname(q)}_hi"]
    return cols + ["small_sample", "ci_method", "latency_basis"]


def _summary_block(
    keys: pd.DataFrame,
    codes: np.ndarray,
    latency: np.ndarray,
    ok: np.ndarray,
    *,
    ok_only: bool,
    censored: np.ndarray,
    lost: np.ndarray,
    qs: Sequence[float],
    ci: float,
    n_boot: int,
    boot_max_n: int,
    min_n: int,
    seed: int,
) -> pd.DataFrame:
    g = len(keys)
    # a hedge copy that lost the race is not a failure: out of the attempt count
    n = np.bincount(codes, weights=~lost, minlength=g).astype(np.int64)
    succ = np.bincount(codes, weights=ok, minlength=g).astype(np.int64)
    censored = censored & ok_only & np.isfinite(latency)
    use = np.isfinite(latency) & ((ok | censored) if ok_only else True)
    t = grouped_quantiles(
        codes[use],
        latency[use],
        n_groups=g,
        qs=qs,
        ci=ci,
        n_boot=n_boot,
        boot_max_n=boot_max_n,
        min_n=min_n,
        seed=seed,
        censored=censored[use] if censored.any() else None,
    )
    out = keys.copy()
    out["n"] = n
    out["successes"] = succ
    with np.errstate(invalid="ignore", divide="ignore"):
        out["success_rate"] = np.where(n > 0, succ / np.maximum(n, 1), np.nan)
    out["n_latency"] = t.n
    out["n_censored"] = np.bincount(codes, weights=censored, minlength=g).astype(np.int64)
    out["n_hedge_lost"] = np.bincount(codes, weights=lost, minlength=g).astype(np.int64)
    out["mean"], out["mean_lo"], out["mean_hi"] = t.mean, t.mean_lo, t.mean_hi
    for q in qs:
        out[qname(q)], out[f"{qname(q)}_lo"], out[f"{qname(q)}_hi"] = t.point[q], t.lo[q], t.hi[q]
    out["small_sample"] = t.small
    out["ci_method"] = t.method
    out["latency_basis"] = np.where(
        out["n_censored"] > 0,
        "successes + cut attempts censored (Kaplan-Meier)",
        "successes only" if ok_only else "all attempts",
    )
    return out


def summarize(
    df: pd.DataFrame,
    by: str | Sequence[str] = CONFIG_COLUMNS,
    *,
    latency: str | Sequence[str] = ("attempt", "user"),
    quantiles: Sequence[float] = DEFAULT_QUANTILES,
    ok_only: bool = True,
    censoring: str = "km",
    ci: float = 0.95,
    n_boot: int = 1000,
    boot_max_n: int = 5000,
    min_n: int = 20,
    seed: int = 0,
) -> pd.DataFrame:
    """Per config: n, successes, success rate, mean and quantiles with confidence intervals.

    Cut attempts (timeout, cancelled) are the slowest ones: with ``censoring="km"`` (default)
    they count as right-censored at their elapsed time and quantiles are Kaplan-Meier
    (``inf`` = beyond the last observed time: too many were cut there); with
    ``censoring="successes"`` only successful attempts count (the older, optimistic view).
    ``latency_basis`` says which one each row is; ``n_censored`` counts the cut attempts (or
    calls). Hedge copies that lost the race (:func:`nbp_kit.analysis.censoring.hedge_losers`) are not
    failures: they are left out of ``n`` and counted in ``n_hedge_lost``. The mean is over
    successful rows only. Quantile intervals are exact order-statistic intervals, NaN where
    the sample is too small for that quantile (P95 needs 100 latencies, P99 500).

    ``latency="attempt"`` summarises ``total_s`` of each attempt; ``"user"`` the user latency
    of each call (first scheduled -> last ended, retries and back-off included; success if
    any attempt succeeded); both by default, one row per (config, latency). Latency statistics
    use successful rows only unless ``ok_only=False``. Groups with fewer than ``min_n``
    latencies get NaN intervals and ``small_sample=True`` (the point estimates are still
    given); ``ci_method`` says how each interval was made (see :mod:`nbp_kit.analysis.stats`).

    >>> from nbp_kit.analysis.synthetic import synthetic_attempts
    >>> s = summarize(synthetic_attempts(2_000, seed=0), by="thinking_level", latency="user")
    >>> s[["thinking_level", "latency"]].values.tolist()
    [['low', 'user'], ['high', 'user']]
    """
    by = present(df, as_columns(by)) if isinstance(df, pd.DataFrame) else as_columns(by)
    require_frame(df, ("status", "total_s", "call_id", "ended_at"))
    kinds = (latency,) if isinstance(latency, str) else tuple(latency)
    if min_n < 1:
        raise ConfigError(f"min_n={min_n!r} is not accepted; use 1 or more")
    if censoring not in ("km", "successes"):
        raise ConfigError(f"censoring={censoring!r} is not accepted; use 'km' (cut attempts censored) or 'successes'")
    frames = []
    for kind in kinds:
        view, lat, ok = latency_view(df, by, kind)
        codes, keys = group_codes(view, by)
        if kind == "attempt":
            lost = hedge_losers(view)
            cut = censored_attempts(view) & ~lost if censoring == "km" else np.zeros(len(view), bool)
        else:
            lost = np.zeros(len(view), bool)
            done = df[df["status"] != "started"] if "status" in df.columns else df
            cut = censored_calls(done, view["call_id"]) if censoring == "km" else np.zeros(len(view), bool)
        block = _summary_block(
            keys,
            codes,
            lat,
            ok,
            ok_only=ok_only,
            censored=cut,
            lost=lost,
            qs=quantiles,
            ci=ci,
            n_boot=n_boot,
            boot_max_n=boot_max_n,
            min_n=min_n,
            seed=seed,
        )
        block.insert(len(by), "latency", kind)
        frames.append(block)
    out = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
    if out.empty:
        return pd.DataFrame(columns=[*by, "latency", *_stat_columns(quantiles)])
    return out.sort_values([*by, "latency"], kind="stable", key=_sort_key).reset_index(drop=True)


def _sort_key(col: pd.Series) -> pd.Series:
    if col.name == "latency":
        return col.map({"attempt": 0, "user": 1})
    return col.map(lambda v: level_key(v))


def real_seconds(df: pd.DataFrame) -> pd.DataFrame:
    """A copy in real-equivalent seconds for emulator runs (``time_scale != 1``): ``total_s``,
    ``wait_s`` and the server's own ``server_generation_s`` / ``server_queue_s``.

    Only the server's time was scaled: where the emulator reported it (``server-timing``),
    that part is scaled back and network/client time kept; otherwise the whole latency is
    divided by the scale. Rows of the real service (scale 1) are unchanged. Use it before
    comparing hours or knobs on a scaled run, where unscaled client jitter would otherwise
    weigh as much as the server's effect.

    >>> import pandas as pd
    >>> f = pd.DataFrame({"total_s": [0.5], "time_scale": [0.02], "server_generation_s": [0.4],
    ...                   "server_queue_s": [0.0]})
    >>> float(real_seconds(f)["total_s"].iloc[0])
    20.1
    """
    out = df.copy()
    scale = num(df, "time_scale")
    scale = np.where(np.isfinite(scale) & (scale > 0), scale, 1.0)
    total = num(df, "total_s")
    gen, queue = num(df, "server_generation_s"), num(df, "server_queue_s")
    server = gen + np.nan_to_num(queue)
    out["total_s"] = np.where(np.isfinite(server), total + server * (1 / scale - 1), total / scale)
    # the server's own phases, and the wait that holds them, by the same rule (so phase
    # shares of the copy describe the modelled service); the emulator's overrun is not scaled
    if "server_generation_s" in out.columns:
        out["server_generation_s"] = gen / scale
    if "server_queue_s" in out.columns:
        out["server_queue_s"] = queue / scale
    if "wait_s" in out.columns:
        wait = num(df, "wait_s")
        out["wait_s"] = np.where(np.isfinite(gen), wait + server * (1 / scale - 1), wait)
    if "time_scale" in out.columns:
        out["time_scale"] = 1.0
    return out


def _rescaled(df: pd.DataFrame) -> pd.DataFrame:
    cols = ["resolution", "thinking_level", "status", "total_s", "call_id", "ended_at"]
    return real_seconds(df)[cols]


def compare_reference(
    df: pd.DataFrame,
    *,
    reference: pd.DataFrame | None = None,
    rescale: bool = True,
    ci: float = 0.95,
    min_n: int = 20,
    seed: int = 0,
) -> pd.DataFrame:
    """Measured mean and P95 (with CI) beside the seed article's published latency table.

    One row per published (resolution, thinking level). ``mean_in_range``: the measured mean
    lies inside the published mean range; ``p95_in_ci``: the published P95 lies inside the
    measured P95's CI. With ``rescale=True``, emulator runs (``time_scale != 1``) are divided
    back by their scale first (approximate: network time is not scaled).

    >>> from nbp_kit.analysis.synthetic import synthetic_attempts
    >>> t = compare_reference(synthetic_attempts(3_000, seed=1))
    >>> t[["resolution", "thinking_level"]].values.tolist()[0]
    ['1K', 'low']
    """
    require_frame(df, ("resolution", "thinking_level", "status", "total_s", "call_id", "ended_at"))
    ref = load_reference() if reference is None else reference
    ref = ref[ref["table"] == "latency"].copy()
    data = _rescaled(df) if rescale else df
    s = summarize(
        data, by=("resolution", "thinking_level"), latency="attempt", quantiles=(0.95,), ci=ci, min_n=min_n, seed=seed
    )
    s = s[["resolution", "thinking_level", "n_latency", "mean", "mean_lo", "mean_hi", "p95", "p95_lo", "p95_hi"]]
    ref["thinking_level"] = ref["thinking_level"].fillna(MISSING_LABEL).astype(object)
    ref["resolution"] = ref["resolution"].astype(object)
    s = s.astype({"resolution": object, "thinking_level": object})
    out = ref[["resolution", "thinking_level", "mean_low_s", "mean_high_s", "p95_s", "note"]].merge(
        s, on=["resolution", "thinking_level"], how="left"
    )
    out = out.rename(
        columns={
            "mean_low_s": "published_mean_low_s",
            "mean_high_s": "published_mean_high_s",
            "p95_s": "published_p95_s",
            "n_latency": "n",
        }
    )
    out["n"] = out["n"].fillna(0).astype(int)
    out["mean_in_range"] = (out["mean"] >= out["published_mean_low_s"]) & (out["mean"] <= out["published_mean_high_s"])
    out["p95_in_ci"] = (out["published_p95_s"] >= out["p95_lo"]) & (out["published_p95_s"] <= out["p95_hi"])
    out["verdict"] = [_reference_verdict(r) for r in out.itertuples()]
    return out.reset_index(drop=True)


def _reference_verdict(r: Any) -> str:
    """One row of the comparison (a pandas itertuples row) as a sentence."""
    if not r.n or not math.isfinite(r.mean):
        return "not measured"
    where = "inside" if r.mean_in_range else ("below" if r.mean < r.published_mean_low_s else "above")
    text = (
        f"mean {r.mean:.1f} s {where} the published {r.published_mean_low_s:g}-{r.published_mean_high_s:g} s; "
        f"P95 {r.p95:.1f} s"
    )
    if math.isfinite(r.p95_lo):
        text += f" (CI {r.p95_lo:.1f}-{r.p95_hi:.1f})"
    return text + f" vs {r.published_p95_s:g} s published"


def knob_effect(
    df: pd.DataFrame,
    knob: str = "thinking_level",
    *,
    baseline: str | None = None,
    by: str | Sequence[str] | None = None,
    latency: str = "attempt",
    margin_frac: float = 0.05,
    margin_s: float | None = None,
    alpha: float = 0.05,
    ci: float = 0.95,
    n_boot: int = 1000,
    boot_max_n: int = 5000,
    min_n: int = 10,
    seed: int = 0,
) -> pd.DataFrame:
    """Effect of one knob on latency, versus a baseline level, with one of three verdicts.

    Compared within each stratum of ``by`` (default: the other config columns the frame has,
    so resolution does not masquerade as a thinking effect); pass ``by=()`` to pool. The
    practical margin is ``margin_s`` seconds if given, else ``margin_frac`` of the stratum's
    baseline median (5 % by default). ``verdict`` (see :mod:`nbp_kit.analysis.equivalence`) is one of

    - "high is slower than low by 14.8 s at the median (CI +12.1 to +17.5 s)": the rank test,
      Holm-corrected across all rows of this answer (``p_adjusted < alpha``);
    - "no effect larger than the +/-1.6 s margin (CI ...)": the whole interval is inside;
    - "inconclusive: CI ..., margin ...; about N more calls per level would settle it".

    ``effect`` holds the short form ("slower", "faster", "none", "inconclusive", "too few").
    Median and P95 differences come with intervals; the P95 interval (conservative, from the
    two exact order-statistic intervals) needs about 120 calls per level and is NaN below.
    The default baseline is the knob's first natural level (minimal < low < medium < high,
    1K < 2K < 4K, 1x1 < 2x2, else alphabetical).

    >>> from nbp_kit.analysis.synthetic import synthetic_attempts
    >>> df = synthetic_attempts(4_000, seed=0, aspect_ratios=("1:1", "16:9"))
    >>> knob_effect(df, "aspect_ratio", by=("resolution", "thinking_level"))["effect"].iloc[0]
    'none'
    """
    if not isinstance(knob, str):
        raise ConfigError(f"knob={knob!r} is not accepted; use a column name such as 'thinking_level'")
    if margin_s is not None and not (isinstance(margin_s, (int, float)) and margin_s > 0):
        raise ConfigError(f"margin_s={margin_s!r} is not accepted; use seconds > 0, or None to use margin_frac")
    if not (isinstance(margin_frac, (int, float)) and 0 < margin_frac < 1):
        raise ConfigError(f"margin_frac={margin_frac!r} is not accepted; use a fraction between 0 and 1, e.g. 0.05")
    if not 0 < alpha < 1:
        raise ConfigError(f"alpha={alpha!r} is not accepted; use a level between 0 and 1, e.g. 0.05")
    require_frame(df, (knob, "status", "total_s", "call_id", "ended_at"))
    strata = present(df, [c for c in CONFIG_COLUMNS if c != knob]) if by is None else as_columns(by)
    if knob in strata:
        raise ConfigError(f"by={strata!r} is not accepted; it must not contain the knob {knob!r}")
    view, lat, ok = latency_view(df, (*strata, knob), latency)
    use = ok & np.isfinite(lat)
    view, lat = view[use], lat[use]
    scodes, skeys = group_codes(view, strata)
    kcodes, kkeys = group_codes(view, (knob,))
    levels = kkeys[knob].tolist()
    if baseline is None:
        base_label = levels[0] if levels else None
    else:
        base_label = MISSING_LABEL if baseline == MISSING_LABEL else str(baseline)
        if base_label not in levels:
            raise ConfigError(f"baseline={baseline!r} is not accepted; levels of {knob!r} in the data are {levels}")
    rows, results = [], []
    order = np.lexsort((kcodes, scodes))
    bounds = np.flatnonzero(np.diff(scodes[order])) + 1
    for chunk in np.split(order, bounds) if len(order) else []:
        s = int(scodes[chunk[0]])
        by_level = {levels[k]: lat[chunk[kcodes[chunk] == k]] for k in np.unique(kcodes[chunk])}
        if base_label not in by_level:
            continue
        a = by_level[base_label]
        margin = float(margin_s) if margin_s is not None else margin_frac * float(np.median(a))
        for level, b in by_level.items():
            if level == base_label:
                continue
            row = dict(skeys.iloc[s]) if strata else {}
            row.update(knob=knob, level=level, baseline=base_label, n_level=len(b), n_baseline=len(a))
            r = median_shift(a, b, margin_s=margin, ci=ci, n_boot=n_boot, seed=seed + s)
            row["median_baseline_s"], row["median_level_s"] = float(np.median(a)), float(np.median(b))
            row["median_diff_s"], row["median_diff_lo"], row["median_diff_hi"] = r.diff_s, r.lo_s, r.hi_s
            p95_lo, p95_hi = quantile_diff_bounds(a, b, 0.95, ci)
            row["p95_baseline_s"], row["p95_level_s"] = float(np.quantile(a, 0.95)), float(np.quantile(b, 0.95))
            row["p95_diff_s"] = row["p95_level_s"] - row["p95_baseline_s"]
            row["p95_diff_lo"], row["p95_diff_hi"] = p95_lo, p95_hi
            row["margin_s"] = margin
            enough = min(len(a), len(b)) >= min_n
            row["p_value"] = r.p_value if enough else np.nan
            rows.append(row)
            results.append(r)
    p_adj = holm(np.array([row["p_value"] for row in rows], dtype=float)) if rows else np.zeros(0)
    for row, r, pa in zip(rows, results, p_adj, strict=True):
        row["p_adjusted"] = pa
        if not np.isfinite(row["p_value"]):
            row["verdict"] = f"too few samples (n={min(r.n_a, r.n_b)} < {min_n})"
            row["effect"] = "too few"
            continue
        row["verdict"] = classify(r, p_adjusted=pa, alpha=alpha, level=row["level"], baseline=str(base_label))
        row["effect"] = (
            ("slower" if r.diff_s > 0 else "faster") if pa < alpha else ("none" if r.inside_margin else "inconclusive")
        )
    cols = [*strata, "knob", "level", "baseline", "n_level", "n_baseline"]
    for stat in ("median", "p95"):
        cols += [f"{stat}_baseline_s", f"{stat}_level_s", f"{stat}_diff_s", f"{stat}_diff_lo", f"{stat}_diff_hi"]
    return pd.DataFrame(rows, columns=[*cols, "margin_s", "p_value", "p_adjusted", "effect", "verdict"])


_NETWORK_PHASES = ("connect_s", "tls_s", "send_s", "download_s", "fetch_s")
_CLIENT_PHASES = ("queue_s", "parse_s", "decode_s", "save_s")


def estimate_rtt(df: pd.DataFrame) -> float:
    """Round-trip estimate: the smallest ``wait_s`` among cheap requests (answered without
    generating: HTTP 4xx), else 0.

    >>> import pandas as pd
    >>> estimate_rtt(pd.DataFrame({"wait_s": [0.09, 30.0], "status_code": [429, 200]}))
    0.09
    """
    if "wait_s" not in df.columns or "status_code" not in df.columns:
        return 0.0
    code = num(df, "status_code")
    wait = num(df, "wait_s")
    cheap = wait[(code >= 400) & (code < 500) & np.isfinite(wait)]
    return float(cheap.min()) if len(cheap) else 0.0


def _split(
    df: pd.DataFrame, rtt_s: float, *, real_equivalent: bool = True
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per-row (server, network, client, server_known) seconds.

    The server's time is, in order of preference: the emulator's ``server_queue_s +
    server_generation_s``; Google's front-end time ``server_total_s`` (``gfet4t7``) on a
    unary answer (on a stream it covers only the time to headers); else ``wait_s`` minus a
    round trip. With ``real_equivalent``, the server part of a time-scaled run is divided by
    its ``time_scale`` (the emulator scaled only the server); network and client stay as
    measured.
    """
    gen, sq, wait = num(df, "server_generation_s"), num(df, "server_queue_s"), num(df, "wait_s")
    front = num(df, "server_total_s")
    stream = (df["transport"] == "stream").to_numpy() if "transport" in df.columns else np.zeros(len(df), bool)
    front = np.where(stream, np.nan, front)
    emulated = np.isfinite(gen)
    known = emulated | np.isfinite(front)
    wait0 = np.nan_to_num(wait)
    late = np.nan_to_num(num(df, "emulator_late_s"))  # the emulator's own overrun: server side, never scaled
    modeled = np.where(
        emulated,
        np.nan_to_num(gen) + np.nan_to_num(sq),
        np.where(np.isfinite(front), np.nan_to_num(front), np.maximum(wait0 - rtt_s, 0.0)),
    )
    modeled = np.minimum(modeled, np.where(np.isfinite(wait), wait0, modeled))
    late = np.minimum(late, np.where(np.isfinite(wait), np.maximum(wait0 - modeled, 0.0), late))
    network = sum(np.nan_to_num(num(df, c)) for c in _NETWORK_PHASES) + np.maximum(wait0 - modeled - late, 0.0)
    client = sum(np.nan_to_num(num(df, c)) for c in _CLIENT_PHASES)
    if real_equivalent:
        scale = num(df, "time_scale")
        modeled = modeled / np.where(np.isfinite(scale) & (scale > 0), scale, 1.0)
    return modeled + late, network, client, known


def phase_shares(
    df: pd.DataFrame,
    by: str | Sequence[str] = CONFIG_COLUMNS,
    *,
    rtt_s: float | None = None,
    real_equivalent: bool = True,
) -> pd.DataFrame:
    """Mean server, network and client seconds per config, and their shares of the total.

    server = ``server_generation_s + server_queue_s`` where known (emulator; plus its own
    overrun ``emulator_late_s``, which is never rescaled), else the
    front end's ``server_total_s`` on unary answers, else ``wait_s`` minus a round-trip
    estimate (``rtt_s``, default :func:`estimate_rtt`);
    network = connect + tls + send + download + fetch + (wait - server);
    client = queue + parse + decode + save. Successful attempts only.

    Seconds are real-equivalent by default: on a time-scaled emulator run the server part is
    divided by the time scale (what the real service would have taken), network and client
    stay as measured; the ``time_base`` column says which. ``real_equivalent=False`` gives
    the raw, as-measured mix.

    >>> from nbp_kit.analysis.synthetic import synthetic_attempts
    >>> p = phase_shares(synthetic_attempts(1_000, seed=0), by=())
    >>> round(float(p["server_share"].iloc[0] + p["network_share"].iloc[0] + p["client_share"].iloc[0]), 6)
    1.0
    """
    require_frame(df, ("status", "wait_s"))
    by = present(df, as_columns(by))
    if rtt_s is not None and (not isinstance(rtt_s, (int, float)) or rtt_s < 0):
        raise ConfigError(f"rtt_s={rtt_s!r} is not accepted; use seconds >= 0 or None to estimate it")
    rtt = estimate_rtt(df) if rtt_s is None else float(rtt_s)
    okdf = df[is_ok(df)]
    codes, keys = group_codes(okdf, by)
    g = len(keys)
    server, network, client, known = _split(okdf, rtt, real_equivalent=real_equivalent)
    n = np.bincount(codes, minlength=g)
    out = keys.copy()
    out["n"] = n
    with np.errstate(invalid="ignore", divide="ignore"):
        for name, arr in (("server_s", server), ("network_s", network), ("client_s", client)):
            out[name] = np.bincount(codes, weights=arr, minlength=g) / n
        total = out["server_s"] + out["network_s"] + out["client_s"]
        out["total_s"] = total
        for part in ("server", "network", "client"):
            out[f"{part}_share"] = out[f"{part}_s"] / total
    k = np.bincount(codes, weights=known, minlength=g)
    out["server_source"] = np.where(k == n, "emulator", np.where(k == 0, f"wait - rtt ({rtt:.3f} s)", "mixed"))
    scaled = (
        np.bincount(codes, weights=(num(okdf, "time_scale") != 1.0) & np.isfinite(num(okdf, "time_scale")), minlength=g)
        > 0
    )
    out["time_base"] = np.where(scaled & real_equivalent, "real-equivalent", "as measured")
    return out[out["n"] > 0].reset_index(drop=True)


def bottleneck(df: pd.DataFrame, *, rtt_s: float | None = None) -> str:
    """A direct answer to "is my bottleneck the API or my network?", in real-equivalent time
    (a time-scaled emulator run is judged as the real service would have run it).

    >>> from nbp_kit.analysis.synthetic import synthetic_attempts
    >>> bottleneck(synthetic_attempts(1_000, seed=0)).startswith("The API")
    True
    """
    p = phase_shares(df, by=(), rtt_s=rtt_s)
    if p.empty or not math.isfinite(p["total_s"].iloc[0]) or p["total_s"].iloc[0] <= 0:
        return "No successful attempts to judge from."
    r = p.iloc[0]
    pct = {k: round(100 * float(r[f"{k}_share"])) for k in ("server", "network", "client")}
    note = " (real-equivalent time)" if r["time_base"] == "real-equivalent" else ""
    top = max(pct, key=lambda k: pct[k])
    if top == "server":
        return (
            f"The API: server generation is {pct['server']} % of the time; "
            f"your network {pct['network']} %, your client {pct['client']} %{note}."
        )
    if top == "network":
        return (
            f"Your network: connection set-up and transfer are {pct['network']} % of the time; "
            f"server generation {pct['server']} %, your client {pct['client']} %{note}."
        )
    return (
        f"Your client: queueing, parsing, decoding and saving are {pct['client']} % of the time; "
        f"server generation {pct['server']} %, your network {pct['network']} %{note}."
    )
