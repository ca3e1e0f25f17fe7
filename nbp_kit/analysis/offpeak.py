"""When in the week is the API fast? Hour-of-week tables, off-peak windows, drift.

Time of day uses ``virtual_at`` where present (the emulator's virtual clock), else
``sent_at``. Mixed configs combine because every latency is first divided by its own
config's overall median (a *ratio*: 1.2 = 20 % slower than usual for that config); seconds
are shown by multiplying back by the pooled median. The unit of replication is the day, not
the request (requests of one hour of one day share its load): a cell's interval and test come
from the spread between its occurrences on distinct days, corrected across cells (Holm by
default, or Benjamini-Hochberg); windows are chosen on some weeks and judged on others
(:mod:`nbp_kit.analysis.recurrence`); drift compares weeks by their days, Holm across weeks.
Models-list probe rows and hedge copies that lost a race are left out by the functions.

>>> from nbp_kit.analysis.synthetic import synthetic_attempts
>>> t = hour_of_week(synthetic_attempts(20_000, seed=0))
>>> len(t), int(t["n"].sum()) > 0
(168, True)
"""

from __future__ import annotations

import dataclasses
import math
import os
import time as _time
import zoneinfo
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from ..errors import ConfigError
from .censoring import hedge_losers
from .frames import CONFIG_COLUMNS, as_columns, group_codes, is_ok, num, present, require_frame
from .recurrence import Occurrences, centre_by_period, find_windows
from .stats import benjamini_hochberg, grouped_quantiles, holm

DAY_NAMES = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_CORRECTIONS = {"holm": holm, "bh": benjamini_hochberg, "none": lambda p: p}


@dataclasses.dataclass(frozen=True, slots=True)
class _Prepared:
    cells: int  # 168 (week) or 24 (day)
    cell: np.ndarray  # cell of each successful row
    ratio: np.ndarray  # latency / its config's median
    pooled_median_s: float
    all_cell: np.ndarray  # cell of every timed attempt (for error rates)
    all_code: np.ndarray  # status code of every timed attempt
    tz_label: str
    day: np.ndarray  # local calendar day number of each successful row
    hour: np.ndarray  # local hour of each successful row
    all_day: np.ndarray  # local day number of every timed attempt
    all_hour: np.ndarray
    all_error: np.ndarray  # True where the attempt ended without an image


def _local_zone() -> tuple[Any, str]:
    """The machine's zone as an IANA name (fast in pandas, DST-aware), else its fixed offset.

    dateutil's ``tzlocal()`` would also work but converts row by row (a minute per million).
    """
    candidates = [os.environ.get("TZ", "").lstrip(":")]
    try:
        link = os.path.realpath("/etc/localtime")
        if "zoneinfo/" in link:
            candidates.append(link.split("zoneinfo/", 1)[1])
    except OSError:
        pass
    for name in candidates:
        if name:
            try:
                zoneinfo.ZoneInfo(name)
                return name, f"{name} (local)"
            except (zoneinfo.ZoneInfoNotFoundError, ValueError):
                continue
    offset = _time.localtime().tm_gmtoff
    sign = "+" if offset >= 0 else "-"
    hh, mm = divmod(abs(offset) // 60, 60)
    return int(offset), f"UTC{sign}{hh:02d}:{mm:02d} (local)"


def _tz(tz: str) -> tuple[Any, str]:
    """(zone for :func:`_cells`, label). A zone is an IANA name or a fixed offset in seconds."""
    if not isinstance(tz, str) or not tz:
        raise ConfigError(f"tz={tz!r} is not accepted; use 'UTC', 'local' or an IANA name such as 'Asia/Shanghai'")
    if tz.upper() == "UTC":
        return 0, "UTC"
    if tz == "local":
        return _local_zone()
    try:
        zoneinfo.ZoneInfo(tz)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise ConfigError(
            f"tz={tz!r} is not accepted; use 'UTC', 'local' or an IANA name such as 'Asia/Shanghai'"
        ) from None
    return tz, tz


def event_times(df: pd.DataFrame) -> np.ndarray:
    """Epoch seconds used for time of day: ``virtual_at`` where present, else ``sent_at``."""
    t = num(df, "virtual_at")
    for fallback in ("sent_at", "scheduled_at"):
        t = np.where(np.isnan(t), num(df, fallback), t)
    return t


def _cells(t: np.ndarray, tz: Any, period: str) -> np.ndarray:
    """Hour-of-week (Monday 00:00 = 0) or hour-of-day cell of epoch seconds (finite only)."""
    if isinstance(tz, int):
        # fixed offset (UTC included): plain arithmetic; epoch 0 was a Thursday (day 3)
        hours = np.floor((t + tz) / 3600).astype(np.int64)
        how = (hours + 72) % 168
    else:
        ts = pd.DatetimeIndex(pd.to_datetime(t, unit="s", utc=True)).tz_convert(tz)
        how = np.asarray(ts.day_of_week, dtype=np.int64) * 24 + np.asarray(ts.hour, dtype=np.int64)
    return how % 24 if period == "day" else how


def _local_day_hour(t: np.ndarray, tz: Any) -> tuple[np.ndarray, np.ndarray]:
    """Local calendar day number (days since 1970-01-01) and hour of epoch seconds."""
    if isinstance(tz, int):
        local = np.floor((t + tz) / 3600).astype(np.int64)
    else:
        ts = pd.DatetimeIndex(pd.to_datetime(t, unit="s", utc=True)).tz_convert(tz).tz_localize(None)
        local = np.floor(ts.asi8 / 3.6e12).astype(np.int64) if len(ts) else np.zeros(0, np.int64)
    return np.floor_divide(local, 24), local % 24


def generation_rows(df: pd.DataFrame) -> pd.DataFrame:
    """The rows that are image generations with an outcome: probes' models-list requests
    (``transport="models"``), rows still ``"started"`` and hedge copies that lost a race are
    left out, so a notebook need not filter them."""
    keep = np.ones(len(df), bool)
    if "transport" in df.columns:
        keep &= np.asarray(df["transport"] != "models", dtype=bool)
    if "status" in df.columns:
        keep &= np.asarray(df["status"] != "started", dtype=bool)
    keep &= ~hedge_losers(df)
    return df if keep.all() else df[keep]


def _prepare(df: pd.DataFrame, tz: str, by: Sequence[str], period: str) -> _Prepared:
    if period not in ("week", "day"):
        raise ConfigError(f"period={period!r} is not accepted; use 'week' (168 cells) or 'day' (24 cells)")
    require_frame(df, ("status", "total_s"))
    df = generation_rows(df)
    if not any(c in df.columns for c in ("virtual_at", "sent_at", "scheduled_at")):
        raise ConfigError("df lacks a time column; it needs 'sent_at' (or 'virtual_at')")
    zone, label = _tz(tz)
    t = event_times(df)
    timed = np.isfinite(t)
    lat = num(df, "total_s")
    use = timed & is_ok(df) & np.isfinite(lat) & (lat > 0)
    codes, keys = group_codes(df, present(df, by))
    med = pd.Series(lat[use]).groupby(codes[use]).median().reindex(range(len(keys))).to_numpy()
    ratio = lat[use] / med[codes[use]]
    cells = 168 if period == "week" else 24
    day, hour = _local_day_hour(t[use], zone)
    all_day, all_hour = _local_day_hour(t[timed], zone)
    return _Prepared(
        cells=cells,
        cell=_cells(t[use], zone, period),
        ratio=ratio,
        pooled_median_s=float(np.median(lat[use])) if use.any() else float("nan"),
        all_cell=_cells(t[timed], zone, period),
        all_code=num(df, "status_code")[timed],
        tz_label=label,
        day=day,
        hour=hour,
        all_day=all_day,
        all_hour=all_hour,
        all_error=~is_ok(df)[timed],
    )


def occurrences(p: _Prepared) -> Occurrences:
    """One row per (local day, hour) holding successful requests: their median log ratio."""
    if not len(p.day):
        z = np.zeros(0, np.int64)
        return Occurrences(z, z, np.zeros(0), z)
    key = p.day * 24 + p.hour
    frame = pd.DataFrame({"key": key, "log": np.log(p.ratio)})
    g = frame.groupby("key", sort=True)["log"]
    med, n = g.median(), g.size()
    k = med.index.to_numpy(np.int64)
    return Occurrences(np.floor_divide(k, 24), k % 24, med.to_numpy(float), n.to_numpy(np.int64))


def _period_min(period: str, min_weeks: int, min_days: int) -> int:
    return min_weeks if period == "week" else min_days


def _table(p: _Prepared, *, min_n: int, ci: float, alpha: float, correction: str, min_periods: int) -> pd.DataFrame:
    from scipy import stats  # heavy import, only where cells are tested

    if correction not in _CORRECTIONS:
        raise ConfigError(f"correction={correction!r} is not accepted; use one of {sorted(_CORRECTIONS)}")
    g = grouped_quantiles(p.cell, p.ratio, n_groups=p.cells, qs=(0.5, 0.9), ci=ci, boot_max_n=0, min_n=1)
    idx = np.arange(p.cells)
    out = pd.DataFrame(
        {
            "day": idx // 24 if p.cells == 168 else -1,
            "day_name": np.asarray(DAY_NAMES)[idx // 24] if p.cells == 168 else "every day",
            "hour": idx % 24,
            "n": g.n,
            "median_ratio": g.point[0.5],
            "p90_ratio": g.point[0.9],
        }
    )
    # day-level replication: each occurrence of a cell (one hour of one calendar day) is one
    # value, centred on its period's median; the interval and the test come from those values
    occ = occurrences(p)
    period = "week" if p.cells == 168 else "day"
    y = centre_by_period(occ, period) if len(occ.day) else np.zeros(0)
    occ_cell = (occ.weekday * 24 + occ.hour) if p.cells == 168 else occ.hour
    k = np.bincount(occ_cell, minlength=p.cells)
    s1 = np.bincount(occ_cell, weights=y, minlength=p.cells)
    s2 = np.bincount(occ_cell, weights=y * y, minlength=p.cells)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = s1 / k
        sd = np.sqrt(np.maximum(s2 - k * mean**2, 0) / (k - 1))
        se = sd / np.sqrt(k)
        tstat = mean / se
    enough = (g.n >= min_n) & (k >= max(min_periods, 2)) & (se > 0)
    dof = np.maximum(k - 1, 1)
    half = np.where(enough, stats.t.ppf(0.5 + ci / 2, dof) * se, np.nan)
    out["n_periods"] = k
    out["median_ratio_lo"] = out["median_ratio"] * np.exp(-half)
    out["median_ratio_hi"] = out["median_ratio"] * np.exp(half)
    out["p90_ratio_lo"] = np.nan
    out["p90_ratio_hi"] = np.nan
    for col in ("median", "p90"):
        for suffix in ("", "_lo", "_hi"):
            out[f"{col}_s{suffix}"] = out[f"{col}_ratio{suffix}"] * p.pooled_median_s
    n_all = np.bincount(p.all_cell, minlength=p.cells)
    with np.errstate(invalid="ignore", divide="ignore"):
        for code in (429, 503):
            out[f"rate_{code}"] = np.bincount(p.all_cell, weights=p.all_code == code, minlength=p.cells) / n_all
        out["error_rate"] = np.bincount(p.all_cell, weights=p.all_error, minlength=p.cells) / n_all
    out["n_attempts"] = n_all
    z = np.where(enough, tstat, np.nan)
    pv = np.where(enough, 2 * stats.t.sf(np.abs(np.nan_to_num(tstat)), dof), np.nan)
    out["z"] = z
    out["p_value"] = pv
    out["p_adjusted"] = _CORRECTIONS[correction](pv)
    out["enough"] = enough
    sig = out["p_adjusted"].to_numpy() < alpha
    out["slower"] = sig & (z > 0)
    out["faster"] = sig & (z < 0)
    out.attrs["tz"] = p.tz_label
    out.attrs["pooled_median_s"] = p.pooled_median_s
    return out


def hour_of_week(
    df: pd.DataFrame,
    *,
    tz: str = "UTC",
    by: str | Sequence[str] = CONFIG_COLUMNS,
    period: str = "week",
    min_n: int = 30,
    min_weeks: int = 3,
    min_days: int = 4,
    ci: float = 0.95,
    alpha: float = 0.05,
    correction: str = "holm",
) -> pd.DataFrame:
    """One row per hour of the week (168; or 24 with ``period="day"``) in time zone ``tz``.

    Columns: ``day`` (0 = Monday), ``day_name``, ``hour``, ``n`` (successful requests),
    ``n_periods`` (distinct weeks, or days, the cell was seen in), median and P90 as ratios to
    each config's median (``median_ratio``...), the same in seconds (``median_s``... = ratio x
    pooled median), ``rate_429``, ``rate_503`` and ``error_rate`` over all attempts (incidents
    are part of when to run a batch), and the cell's test. The unit of replication is the
    cell's occurrence (one hour of one day, its requests summarised by their median), not the
    request: the interval of ``median_ratio`` and the t-test (``z`` holds t, ``p_value``,
    ``p_adjusted`` by ``correction`` across cells) come from the spread between occurrences.
    A cell needs ``min_n`` successes and ``min_weeks`` distinct weeks (``min_days`` days for
    ``period="day"``) for an interval and a test (``enough``); ``slower``/``faster`` flag the
    cells significant after correction. Models-list probe rows are left out.

    >>> from nbp_kit.analysis.synthetic import synthetic_attempts
    >>> t = hour_of_week(synthetic_attempts(5_000, seed=0), tz="Asia/Shanghai", period="day")
    >>> len(t), t.attrs["tz"]
    (24, 'Asia/Shanghai')
    """
    prepared = _prepare(df, tz, as_columns(by), period)
    return _table(
        prepared,
        min_n=min_n,
        ci=ci,
        alpha=alpha,
        correction=correction,
        min_periods=_period_min(period, min_weeks, min_days),
    )


def _fmt_s(seconds: float) -> str:
    """Whole seconds, or two significant digits below 10 s (scaled emulator runs: "0.12 s", not "0 s")."""
    if not np.isfinite(seconds) or abs(seconds) >= 10:
        return f"{seconds:.0f}"
    return f"{seconds:.2g}"


_WINDOW_COLUMNS = [
    "rank",
    "kind",
    "label",
    "start_day",
    "end_day",
    "start_hour",
    "hours",
    "n",
    "n_days",
    "median_s",
    "reference_median_s",
    "change_pct",
    "change_lo_pct",
    "change_hi_pct",
    "p_value",
    "p_adjusted",
    "error_rate",
    "reference_error_rate",
    "advice",
]


def offpeak_windows(
    df: pd.DataFrame,
    *,
    tz: str = "UTC",
    by: str | Sequence[str] = CONFIG_COLUMNS,
    period: str = "week",
    min_n: int = 30,
    min_weeks: int = 3,
    min_days: int = 4,
    ci: float = 0.95,
    alpha: float = 0.05,
    min_change_pct: float = 5.0,
) -> pd.DataFrame:
    """Off-peak (faster) and peak (slower) windows that recur, each phrased as advice.

    See :mod:`nbp_kit.analysis.recurrence` for the method: days are the replicates; windows (a run of
    weekdays x 1-6 consecutive hours, or hours of every day with ``period="day"``) are chosen
    on half the weeks (days) and judged on the other half, both ways round; one test per kind,
    Holm across the two; a claim also needs ``|change| >= min_change_pct``. ``change_pct`` and its interval are the held-out change relative to
    the period's median, from day-to-day variation; ``error_rate`` is the share of attempts
    without an image in the held-out window hours, beside ``reference_error_rate`` (all
    other hours). At most one window of each kind; off-peak first. With fewer than
    ``min_weeks`` distinct weeks (``min_days`` days) nothing is claimed: the one row has
    ``kind="not enough data"`` and says so. ``attrs["note"]`` always says what was judged.
    ``min_n`` is the fewest successful requests for the search to run at all.

    >>> from nbp_kit.analysis.synthetic import synthetic_attempts
    >>> w = offpeak_windows(synthetic_attempts(20_000, seed=0, days=7))
    >>> w["kind"].tolist(), w["advice"].iloc[0]
    (['not enough data'], '1 week of data: one week cannot tell a recurring window from a passing one; collect at least 3 weeks')
    """
    prepared = _prepare(df, tz, as_columns(by), period)
    occ = occurrences(prepared)
    min_periods = _period_min(period, min_weeks, min_days)
    if len(prepared.ratio) < min_n:
        search = find_windows(
            Occurrences(*(np.zeros(0, np.int64),) * 2, np.zeros(0), np.zeros(0, np.int64)),
            period=period,
            min_periods=min_periods,
        )
        search = dataclasses.replace(
            search,
            note=f"{len(prepared.ratio)} successful requests (< min_n={min_n}): " + search.note.split(": ", 1)[-1],
        )
    else:
        search = find_windows(
            occ, period=period, min_periods=min_periods, alpha=alpha, ci=ci, min_change_pct=min_change_pct
        )
    if search.periods < max(min_periods, 2) or len(prepared.ratio) < min_n:
        out = pd.DataFrame(
            [
                {c: np.nan for c in _WINDOW_COLUMNS}
                | {"rank": 0, "kind": "not enough data", "label": "", "advice": search.note}
            ],
            columns=_WINDOW_COLUMNS,
        )
        out.attrs.update(tz=prepared.tz_label, note=search.note)
        return out
    err_key = prepared.all_day * 24 + prepared.all_hour
    rows = []
    for c in sorted(search.claims, key=lambda c: c.kind != "off-peak"):
        judged = occ.day[c.held_out] * 24 + occ.hour[c.held_out]
        in_w = np.isin(err_key, judged)
        err = float(prepared.all_error[in_w].mean()) if in_w.any() else np.nan
        ref_err = float(prepared.all_error[~in_w].mean()) if (~in_w).any() else np.nan
        label = " / ".join(w.label(prepared.tz_label) for w in c.windows)
        change, lo, hi = (100 * (math.exp(v) - 1) for v in (c.mean_log, c.lo_log, c.hi_log))
        ref_s = prepared.pooled_median_s
        med_s = ref_s * math.exp(c.mean_log)
        unit = "weeks" if period == "week" else "days"
        advice = (
            f"{label}{' (peak)' if c.kind == 'peak' else ''}: {change:+.0f} % (CI {lo:+.0f} to {hi:+.0f} %) "
            f"vs the {'week' if period == 'week' else 'day'}'s median, median {_fmt_s(med_s)} s vs {_fmt_s(ref_s)} s, "
            f"judged on held-out {unit} ({c.n_days} days, n={c.n_requests}); errors {100 * err:.1f} % vs "
            f"{100 * ref_err:.1f} % otherwise"
        )
        w0 = c.windows[0]
        rows.append(
            {
                "kind": c.kind,
                "label": label,
                "start_day": w0.first_day,
                "end_day": w0.last_day,
                "start_hour": w0.start_hour,
                "hours": w0.hours,
                "n": c.n_requests,
                "n_days": c.n_days,
                "median_s": med_s,
                "reference_median_s": ref_s,
                "change_pct": change,
                "change_lo_pct": lo,
                "change_hi_pct": hi,
                "p_value": c.p_value,
                "p_adjusted": c.p_adjusted,
                "error_rate": err,
                "reference_error_rate": ref_err,
                "advice": advice,
            }
        )
    out = pd.DataFrame(rows, columns=_WINDOW_COLUMNS)
    out["rank"] = np.arange(1, len(out) + 1)
    out.attrs.update(tz=prepared.tz_label, note=search.note)
    return out


def drift_over_weeks(
    df: pd.DataFrame,
    *,
    by: str | Sequence[str] = CONFIG_COLUMNS,
    min_n: int = 30,
    ci: float = 0.95,
    alpha: float = 0.05,
) -> pd.DataFrame:
    """Weekly median (as a ratio to each config's overall median, and in seconds) and its
    change versus the first week, with days as the replicates.

    Each day's requests are summarised by their median log ratio; a week's change is the
    difference of its days' mean from the first week's (Welch t interval), and ``drift`` is
    True where that change is significant after Holm across all weeks compared (so a flat
    series of many weeks is not flagged by chance). Weeks start on Monday 00:00 UTC; weeks
    with fewer than ``min_n`` requests or 2 days are shown but not judged.

    >>> from nbp_kit.analysis.synthetic import synthetic_attempts
    >>> w = drift_over_weeks(synthetic_attempts(4_000, seed=0, days=21))
    >>> len(w), bool(w["drift"].iloc[0])
    (3, False)
    """
    from scipy import stats  # heavy import, only where weeks are compared

    require_frame(df, ("status", "total_s"))
    df = generation_rows(df)
    by = present(df, as_columns(by))
    t = event_times(df)
    lat = num(df, "total_s")
    use = is_ok(df) & np.isfinite(t) & np.isfinite(lat) & (lat > 0)
    codes, keys = group_codes(df, by)
    med = pd.Series(lat[use]).groupby(codes[use]).median().reindex(range(len(keys))).to_numpy()
    ratio = lat[use] / med[codes[use]]
    day = np.floor(t[use] / 86400).astype(np.int64)
    monday0 = 4  # day number of 1970-01-05, a Monday
    week = np.floor_divide(day - monday0, 7)
    cols = [
        "week_start",
        "n",
        "n_days",
        "median_ratio",
        "median_ratio_lo",
        "median_ratio_hi",
        "median_s",
        "change_pct",
        "change_lo_pct",
        "change_hi_pct",
        "p_value",
        "p_adjusted",
        "drift",
    ]
    if not len(week):
        return pd.DataFrame(columns=cols)
    daily = pd.DataFrame({"day": day, "log": np.log(ratio)}).groupby("day")["log"].median()
    day_week = np.floor_divide(daily.index.to_numpy(np.int64) - monday0, 7)
    day_val = daily.to_numpy(float)
    weeks = np.unique(week)
    pooled = float(np.median(lat[use]))
    first = day_val[day_week == weeks[0]]
    n_first = int((week == weeks[0]).sum())
    rows = []
    for k, w in enumerate(weeks):
        x = day_val[day_week == w]
        n = int((week == w).sum())
        point = float(np.median(ratio[week == w]))
        row = {
            "week_start": pd.Timestamp((monday0 + int(w) * 7) * 86400, unit="s", tz="UTC"),
            "n": n,
            "n_days": len(x),
            "median_ratio": point,
            "median_s": point * pooled,
        }
        lo = hi = change = lo_c = hi_c = p = np.nan
        if len(x) >= 2:
            half = stats.t.ppf(0.5 + ci / 2, len(x) - 1) * x.std(ddof=1) / math.sqrt(len(x))
            lo, hi = point * math.exp(-half), point * math.exp(half)
        judged = k > 0 and len(x) >= 2 and len(first) >= 2 and n >= min_n and n_first >= min_n
        if judged:
            r = stats.ttest_ind(x, first, equal_var=False)
            d = float(x.mean() - first.mean())
            ci_d = r.confidence_interval(ci)
            change, lo_c, hi_c = (100 * (math.exp(v) - 1) for v in (d, ci_d.low, ci_d.high))
            p = float(r.pvalue)
        row.update(
            median_ratio_lo=lo, median_ratio_hi=hi, change_pct=change, change_lo_pct=lo_c, change_hi_pct=hi_c, p_value=p
        )
        rows.append(row)
    out = pd.DataFrame(rows, columns=[c for c in cols if c not in ("p_adjusted", "drift")])
    out["p_adjusted"] = holm(out["p_value"].to_numpy(float))
    out["drift"] = out["p_adjusted"].to_numpy(float) < alpha
    if len(out):
        out.loc[0, "change_pct"] = 0.0
    return out[cols]
