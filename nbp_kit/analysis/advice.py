"""Advice from the attempts frame: timeouts and retries, cost vs latency, throughput, grids.

>>> from nbp_kit.analysis.synthetic import synthetic_attempts
>>> df = synthetic_attempts(3_000, seed=0)
>>> advice = recommend_timeouts(df, by=("resolution",))
>>> bool((advice["timeout_s"] >= advice["p99"]).all())
True
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import numpy as np
import pandas as pd

from ..errors import ConfigError
from .censoring import censored_attempts, hedge_losers
from .frames import CONFIG_COLUMNS, as_columns, group_codes, is_ok, num, present, require_frame
from .reference import load_reference
from .stats import grouped_quantiles

_ADVICE_NOTE = re.compile(r"(\d+)\s+retries?\s+at\s+([\d.]+)\s*s")


def _article_advice() -> pd.DataFrame:
    """The seed article's fixed timeout table: resolution -> timeout, retries, back-off."""
    ref = load_reference()
    ref = ref[ref["table"] == "timeout_advice"]
    rows = []
    for r in ref.itertuples():
        m = _ADVICE_NOTE.search(str(r.note))
        rows.append(
            {
                "resolution": str(r.resolution),
                "article_timeout_s": float(r.mean_low_s),
                "article_retries": int(m.group(1)) if m else np.nan,
                "article_backoff_s": float(m.group(2)) if m else np.nan,
            }
        )
    return pd.DataFrame(rows, columns=["resolution", "article_timeout_s", "article_retries", "article_backoff_s"])


def _simulate_calls(
    lat: np.ndarray,
    ok: np.ndarray,
    timeout_s: float,
    retries: int,
    backoff_s: float,
    n_sim: int,
    rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray]:
    """Replay calls of up to ``retries + 1`` attempts drawn from the recorded (latency, ok).

    An attempt succeeds if it succeeded in the record and within ``timeout_s``; a failed one
    costs ``min(latency, timeout)`` then ``backoff_s`` before the next. Returns (user latency,
    call ok) per simulated call.
    """
    k = retries + 1
    idx = rng.integers(0, len(lat), (n_sim, k))
    a_lat, a_ok = lat[idx], ok[idx]
    success = a_ok & (a_lat <= timeout_s)
    spent = np.where(success, a_lat, np.minimum(a_lat, timeout_s))
    first = np.where(success.any(axis=1), success.argmax(axis=1), k - 1)
    used = np.arange(k)[None, :] <= first[:, None]
    user = (spent * used).sum(axis=1) + first * backoff_s
    return user, np.asarray(success.any(axis=1))


def recommend_timeouts(
    df: pd.DataFrame,
    by: str | Sequence[str] = CONFIG_COLUMNS,
    *,
    retries: int = 2,
    quantile: float = 0.99,
    multiplier: float = 3.0,
    floor_s: float = 10.0,
    backoff_s: float = 5.0,
    n_sim: int = 20_000,
    ci: float = 0.95,
    min_n: int = 20,
    seed: int = 0,
) -> pd.DataFrame:
    """Per config: a timeout from the measured quantile, and what a user would then see.

    ``timeout_s = max(floor_s, multiplier * P[quantile])`` of attempt latency, with the CI
    carried through. Attempts cut by a timeout or cancelled count as right-censored
    (Kaplan-Meier, ``n_censored``), so a tail cut by the old deadline does not pull the advice
    down; where the quantile lies beyond the longest time seen (``quantile_beyond_data``) the
    timeout is built on that time and is a lower bound. ``cut_attempts`` and
    ``article_cut_attempts`` count the recorded attempts each candidate timeout would have cut;
    ``cut_note`` says it in words. ``user_mean_s``, ``user_p95_s`` and ``call_failure_rate`` come from
    replaying calls of up to ``retries + 1`` attempts drawn from the recorded attempts (their
    latency and success), failing an attempt slower than the timeout, with ``backoff_s``
    between attempts. The seed article's fixed advice (1K 45 s / 2K 90 s / 4K 180 s) is shown
    beside it, replayed on the same data (``article_call_failure_rate``).

    >>> from nbp_kit.analysis.synthetic import synthetic_attempts
    >>> t = recommend_timeouts(synthetic_attempts(2_000, seed=1), by=("resolution",), retries=1)
    >>> t["resolution"].tolist()
    ['1K', '2K', '4K']
    """
    require_frame(df, ("status", "total_s"))
    if not isinstance(retries, int) or retries < 0:
        raise ConfigError(f"retries={retries!r} is not accepted; use a whole number >= 0")
    if not 0 < quantile < 1:
        raise ConfigError(f"quantile={quantile!r} is not accepted; use a value between 0 and 1, e.g. 0.99")
    if multiplier <= 0 or floor_s < 0 or backoff_s < 0:
        raise ConfigError(
            f"multiplier={multiplier!r}, floor_s={floor_s!r}, backoff_s={backoff_s!r} are not all accepted; "
            "use multiplier > 0 and floor_s, backoff_s >= 0"
        )
    by = present(df, as_columns(by))
    if "status" in df.columns and (df["status"] == "started").any():
        df = df[df["status"] != "started"]
    lost = hedge_losers(df)
    df = df[~lost]  # a hedge copy that lost the race is neither a failure nor a latency
    codes, keys = group_codes(df, by)
    lat, ok = num(df, "total_s"), is_ok(df)
    cut = censored_attempts(df)
    use = (ok | cut) & np.isfinite(lat)
    t = grouped_quantiles(
        codes[use],
        lat[use],
        n_groups=len(keys),
        qs=(quantile,),
        ci=ci,
        min_n=min_n,
        seed=seed,
        censored=cut[use] if cut.any() else None,
    )
    qcol = f"p{round(quantile * 100, 6):g}"
    out = keys.copy()
    out["n"] = np.bincount(codes, minlength=len(keys))
    out["n_censored"] = np.bincount(codes, weights=cut, minlength=len(keys)).astype(np.int64)
    out["attempt_failure_rate"] = 1 - np.bincount(codes, weights=ok, minlength=len(keys)) / np.maximum(out["n"], 1)
    out[qcol], out[f"{qcol}_lo"], out[f"{qcol}_hi"] = t.point[quantile], t.lo[quantile], t.hi[quantile]
    # a quantile beyond the last observed time (too many attempts cut there) has no finite
    # point: the timeout is then built on the longest time seen, a lower bound, and says so
    longest = pd.Series(lat[use]).groupby(codes[use]).max().reindex(range(len(keys))).to_numpy()
    basis = np.where(np.isinf(out[qcol]), longest, out[qcol])
    out["quantile_beyond_data"] = np.isinf(out[qcol].to_numpy(float))
    out["timeout_s"] = np.maximum(floor_s, multiplier * basis)
    out["timeout_lo_s"] = np.maximum(floor_s, multiplier * out[f"{qcol}_lo"])
    out["timeout_hi_s"] = np.maximum(floor_s, multiplier * out[f"{qcol}_hi"])
    out["retries"] = retries
    out["backoff_s"] = backoff_s
    article = _article_advice()
    if "resolution" in by:
        out = out.merge(article, on="resolution", how="left")
    else:
        for c in article.columns[1:]:
            out[c] = np.nan
    finite = np.isfinite(lat)
    rng = np.random.default_rng(seed)
    sims: dict[str, list[float]] = {
        k: [] for k in ("user_mean_s", "user_p95_s", "call_failure_rate", "article_call_failure_rate")
    }
    for g in range(len(keys)):
        rows = (codes == g) & finite
        if not rows.any() or not np.isfinite(out.at[g, "timeout_s"]):
            for v in sims.values():
                v.append(np.nan)
            continue
        user, call_ok = _simulate_calls(lat[rows], ok[rows], out.at[g, "timeout_s"], retries, backoff_s, n_sim, rng)
        sims["user_mean_s"].append(float(user[call_ok].mean()) if call_ok.any() else np.nan)
        sims["user_p95_s"].append(float(np.quantile(user[call_ok], 0.95)) if call_ok.any() else np.nan)
        sims["call_failure_rate"].append(float(1 - call_ok.mean()))
        a_t, a_r, a_b = out.at[g, "article_timeout_s"], out.at[g, "article_retries"], out.at[g, "article_backoff_s"]
        if np.isfinite(a_t) and np.isfinite(a_r):
            _, a_ok = _simulate_calls(lat[rows], ok[rows], a_t, int(a_r), float(a_b), n_sim, rng)
            sims["article_call_failure_rate"].append(float(1 - a_ok.mean()))
        else:
            sims["article_call_failure_rate"].append(np.nan)
    for k, v in sims.items():
        out[k] = v
    for col, timeout in (("cut", out["timeout_s"]), ("article_cut", out["article_timeout_s"])):
        out[f"{col}_attempts"] = _attempts_cut(codes, lat, ok | cut, timeout.to_numpy(float))
    out["cut_note"] = [_cut_note(r, qcol) for r in out.itertuples()]
    out["small_sample"] = t.small
    return out


def _attempts_cut(codes: np.ndarray, lat: np.ndarray, timed: np.ndarray, timeout_s: np.ndarray) -> np.ndarray:
    """Per group: recorded attempts that ran past the timeout (they would have been cut)."""
    g = len(timeout_s)
    over = timed & np.isfinite(lat) & (lat > np.nan_to_num(timeout_s, nan=np.inf)[codes])
    cut = np.bincount(codes, weights=over, minlength=g).astype(float)
    cut[~np.isfinite(timeout_s)] = np.nan
    return cut


def _cut_note(r: object, qcol: str) -> str:
    """The advice's cost in plain words: how many recorded attempts each timeout cuts."""
    n = int(r.n)  # type: ignore[attr-defined]
    if not np.isfinite(r.timeout_s) or not np.isfinite(r.cut_attempts):  # type: ignore[attr-defined]
        return f"no timeout can be advised from {n} recorded attempts (no latency measured)"
    text = f"{r.timeout_s:.0f} s would have cut {int(r.cut_attempts)} of {n} recorded attempts"  # type: ignore[attr-defined]
    if np.isfinite(r.article_timeout_s) and np.isfinite(r.article_cut_attempts):  # type: ignore[attr-defined]
        text += f"; the article's {r.article_timeout_s:g} s: {int(r.article_cut_attempts)}"  # type: ignore[attr-defined]
    if r.quantile_beyond_data:  # type: ignore[attr-defined]
        text += (
            f"; more than {100 - float(qcol[1:]):g} % were cut at the longest time seen, so the "
            f"{qcol.upper()} lies beyond it: this timeout is a lower bound"
        )
    return text


def _pareto(cost: np.ndarray, lat: np.ndarray) -> np.ndarray:
    """True where no other point is at least as cheap and as fast, and better in one."""
    ok = np.isfinite(cost) & np.isfinite(lat)
    front = ok.copy()
    for i in np.flatnonzero(ok):
        dom = ok & (cost <= cost[i]) & (lat <= lat[i]) & ((cost < cost[i]) | (lat < lat[i]))
        front[i] = not dom.any()
    return front


def cost_latency(
    df: pd.DataFrame,
    by: str | Sequence[str] = CONFIG_COLUMNS,
    *,
    latency: str = "p95",
    ci: float = 0.95,
    min_n: int = 5,
) -> pd.DataFrame:
    """Per config: cost per delivered image vs latency P50/P95, with the Pareto front flagged.

    ``cost_per_image_usd`` = all recorded ``cost_usd`` (thinking tokens and billed failures
    included) / images delivered (``tiles`` of successful attempts: a 2x2 grid is 4 images).
    ``pareto``: no other config is both cheaper and faster on ``latency`` ("p50" or "p95").

    >>> from nbp_kit.analysis.synthetic import synthetic_attempts
    >>> t = cost_latency(synthetic_attempts(2_000, seed=0), by=("resolution",))
    >>> bool(t["pareto"].any())
    True
    """
    if latency not in ("p50", "p95"):
        raise ConfigError(f"latency={latency!r} is not accepted; use 'p50' or 'p95'")
    require_frame(df, ("status", "total_s"))
    by = present(df, as_columns(by))
    codes, keys = group_codes(df, by)
    g = len(keys)
    ok = is_ok(df)
    lat = num(df, "total_s")
    tiles = np.nan_to_num(num(df, "tiles"), nan=1.0) if "tiles" in df.columns else np.ones(len(df))
    images = np.bincount(codes, weights=tiles * ok, minlength=g)
    cost = np.bincount(codes, weights=np.nan_to_num(num(df, "cost_usd")), minlength=g)
    use = ok & np.isfinite(lat)
    t = grouped_quantiles(codes[use], lat[use], n_groups=g, qs=(0.5, 0.95), ci=ci, min_n=min_n)
    out = keys.copy()
    out["n"] = np.bincount(codes, minlength=g)
    out["images"] = images
    with np.errstate(invalid="ignore", divide="ignore"):
        out["cost_per_image_usd"] = np.where(images > 0, cost / images, np.nan)
        per_call_tiles = np.bincount(codes[use], weights=tiles[use], minlength=g) / np.maximum(t.n, 1)
    out["p50"], out["p50_lo"], out["p50_hi"] = t.point[0.5], t.lo[0.5], t.hi[0.5]
    out["p95"], out["p95_lo"], out["p95_hi"] = t.point[0.95], t.lo[0.95], t.hi[0.95]
    out["p50_per_image_s"] = out["p50"] / np.where(per_call_tiles > 0, per_call_tiles, np.nan)
    out["pareto"] = _pareto(out["cost_per_image_usd"].to_numpy(float), out[latency].to_numpy(float))
    return out


def best_config(
    df: pd.DataFrame,
    by: str | Sequence[str] = CONFIG_COLUMNS,
    *,
    max_latency_s: float | None = None,
    max_cost_usd: float | None = None,
    latency: str = "p95",
) -> pd.DataFrame:
    """The best config within a budget, as a one-row frame (empty when nothing fits).

    With only ``max_latency_s``: the cheapest config whose ``latency`` quantile is within it.
    With ``max_cost_usd`` (per image): the fastest config within it (and within the latency
    budget if one is given too). With neither: the fastest overall. ``reason`` says why.

    >>> from nbp_kit.analysis.synthetic import synthetic_attempts
    >>> best_config(synthetic_attempts(2_000, seed=0), by=("resolution",), max_latency_s=60.0)["resolution"].tolist()
    ['1K']
    """
    for name, v in (("max_latency_s", max_latency_s), ("max_cost_usd", max_cost_usd)):
        if v is not None and (not isinstance(v, (int, float)) or v <= 0):
            raise ConfigError(f"{name}={v!r} is not accepted; use a positive number or None")
    t = cost_latency(df, by, latency=latency)
    fit = t[np.isfinite(t[latency]) & np.isfinite(t["cost_per_image_usd"])]
    if max_latency_s is not None:
        fit = fit[fit[latency] <= max_latency_s]
    if max_cost_usd is not None:
        fit = fit[fit["cost_per_image_usd"] <= max_cost_usd]
    if max_latency_s is not None and max_cost_usd is None:
        fit = fit.sort_values(["cost_per_image_usd", latency], kind="stable")
        reason = f"cheapest with {latency.upper()} <= {max_latency_s:g} s"
    else:
        fit = fit.sort_values([latency, "cost_per_image_usd"], kind="stable")
        reason = "fastest" + (f" at <= ${max_cost_usd:g} per image" if max_cost_usd is not None else "")
        if max_latency_s is not None:
            reason += f" and {latency.upper()} <= {max_latency_s:g} s"
    out = fit.head(1).copy()
    out["reason"] = reason
    return out.reset_index(drop=True)


def throughput(df: pd.DataFrame, by: str | Sequence[str] | None = None) -> pd.DataFrame:
    """Images per minute against concurrency, one row per group.

    Groups are ``by`` if given, else the ``concurrency`` column if the frame has one (the
    requested concurrency), else ``run_id``. ``achieved_concurrency`` is the mean number of
    attempts in flight (sum of attempt durations / wall span, Little's law), so it is there
    even when nothing was requested.

    >>> from nbp_kit.analysis.synthetic import synthetic_attempts
    >>> t = throughput(synthetic_attempts(500, seed=0))
    >>> bool(t["images_per_min"].iloc[0] > 0)
    True
    """
    require_frame(df, ("status", "total_s", "ended_at"))
    if by is None:
        cols = ("concurrency",) if "concurrency" in df.columns else present(df, ("run_id",))
    else:
        cols = as_columns(by)
        require_frame(df, cols)
    codes, keys = group_codes(df, cols)
    g = len(keys)
    start = num(df, "scheduled_at")
    start = np.where(np.isnan(start), num(df, "sent_at"), start)
    end = num(df, "ended_at")
    s = pd.Series(start).groupby(codes).min().reindex(range(g)).to_numpy()
    e = pd.Series(end).groupby(codes).max().reindex(range(g)).to_numpy()
    ok = is_ok(df)
    tiles = np.nan_to_num(num(df, "tiles"), nan=1.0) if "tiles" in df.columns else np.ones(len(df))
    busy = np.bincount(codes, weights=np.nan_to_num(num(df, "total_s")), minlength=g)
    out = keys.copy()
    out["n"] = np.bincount(codes, minlength=g)
    out["images"] = np.bincount(codes, weights=tiles * ok, minlength=g)
    out["span_s"] = e - s
    with np.errstate(invalid="ignore", divide="ignore"):
        out["images_per_min"] = np.where(out["span_s"] > 0, out["images"] / out["span_s"] * 60, np.nan)
        out["achieved_concurrency"] = np.where(out["span_s"] > 0, busy / out["span_s"], np.nan)
    return out.sort_values("achieved_concurrency", kind="stable").reset_index(drop=True)


def grid_vs_single(df: pd.DataFrame, by: str | Sequence[str] = ("resolution",), *, min_n: int = 5) -> pd.DataFrame:
    """Time and cost per image for 1x1 vs 2x2 vs 3x3 grids (within each ``by`` group).

    ``time_ratio`` and ``cost_ratio`` are per-image figures relative to the 1x1 row of the
    same group (NaN when the group has no 1x1).

    >>> from nbp_kit.analysis.synthetic import synthetic_attempts
    >>> t = grid_vs_single(synthetic_attempts(3_000, seed=0, grids=("1x1", "2x2")), by=())
    >>> t["grid"].tolist(), bool(t["p50_per_image_s"].iloc[1] < t["p50_per_image_s"].iloc[0])
    (['1x1', '2x2'], True)
    """
    require_frame(df, ("grid", "status", "total_s"))
    by = present(df, as_columns(by))
    t = cost_latency(df, (*by, "grid"), min_n=min_n)
    t = t[[*by, "grid", "n", "images", "p50", "p50_lo", "p50_hi", "p50_per_image_s", "cost_per_image_usd"]].copy()
    t["tiles"] = t["grid"].astype(str).str.extract(r"^(\d+)x", expand=False).astype(float) ** 2
    base = t[t["grid"] == "1x1"].set_index(list(by)) if by else t[t["grid"] == "1x1"]
    if by:
        ref = t[list(by)].merge(base[["p50_per_image_s", "cost_per_image_usd"]].reset_index(), on=list(by), how="left")
        ref_time, ref_cost = ref["p50_per_image_s"].to_numpy(), ref["cost_per_image_usd"].to_numpy()
    else:
        ref_time = np.full(len(t), base["p50_per_image_s"].iloc[0] if len(base) else np.nan)
        ref_cost = np.full(len(t), base["cost_per_image_usd"].iloc[0] if len(base) else np.nan)
    t["time_ratio"] = t["p50_per_image_s"].to_numpy() / ref_time
    t["cost_ratio"] = t["cost_per_image_usd"].to_numpy() / ref_cost
    return t.reset_index(drop=True)
