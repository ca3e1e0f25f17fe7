"""When in the week is the API fast? Hour-of-week tables, off-peak windows, drift.

Time of day uses ``virtual_at`` where present (the emulator's virtual clock), else
``sent_at``. Mixed configs combine because every latency is first divided by its own
config's overall median (a *ratio*: 1.2 = 20 % slower than usual for that config); seconds
are shown by multiplying back by the pooled median. Each cell is tested against all other
cells with a Mann-Whitney rank-sum test (normal approximation), and the p-values are
corrected for the number of cells compared (Holm by default, or Benjamini-Hochberg).

>>> from nbp_kit.analysis.synthetic import synthetic_attempts
>>> t = hour_of_week(synthetic_attempts(20_000, seed=0))
>>> len(t), int(t["n"].sum()) > 0
(168, True)
"""

from __future__ import annotations

import dataclasses
import os
import time as _time
import zoneinfo
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from ..errors import ConfigError
from .frames import (
    CONFIG_COLUMNS,
    as_columns,
    group_codes,
    is_ok,
    num,
    present,
    require_frame,
)
from .stats import (
    benjamini_hochberg,
    grouped_quantiles,
    holm,
    normal_two_sided_p,
    quantile_diff_ci,
    rank_sum_z,
)

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
        raise ConfigError(f"tz={tz!r} is not accepted; use 'UTC', 'local' or an IANA name such as 'Asia/Shanghai'") from None
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


def _prepare(df: pd.DataFrame, tz: str, by: Sequence[str], period: str) -> _Prepared:
    if period not in ("week", "day"):
        raise ConfigError(f"period={period!r} is not accepted; use 'week' (168 cells) or 'day' (24 cells)")
    require_frame(df, ("status", "total_s"))
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
    return _Prepared(
        cells=cells,
        cell=_cells(t[use], zone, period),
        ratio=ratio,
        pooled_median_s=float(np.median(lat[use])) if use.any() else float("nan"),
        all_cell=_cells(t[timed], zone, period),
        all_code=num(df, "status_code")[timed],
        tz_label=label,
    )


def _table(p: _Prepared, *, min_n: int, ci: float, alpha: float, correction: str) -> pd.DataFrame:
    if correction not in _CORRECTIONS:
        raise ConfigError(f"correction={correction!r} is not accepted; use one of {sorted(_CORRECTIONS)}")
    g = grouped_quantiles(p.cell, p.ratio, n_groups=p.cells, qs=(0.5, 0.9), ci=ci, boot_max_n=0, min_n=min_n)
    idx = np.arange(p.cells)
    out = pd.DataFrame({
        "day": idx // 24 if p.cells == 168 else -1,
        "day_name": np.asarray(DAY_NAMES)[idx // 24] if p.cells == 168 else "every day",
        "hour": idx % 24,
        "n": g.n,
        "median_ratio": g.point[0.5], "median_ratio_lo": g.lo[0.5], "median_ratio_hi": g.hi[0.5],
        "p90_ratio": g.point[0.9], "p90_ratio_lo": g.lo[0.9], "p90_ratio_hi": g.hi[0.9],
    })
    for col in ("median", "p90"):
        for suffix in ("", "_lo", "_hi"):
            out[f"{col}_s{suffix}"] = out[f"{col}_ratio{suffix}"] * p.pooled_median_s
    n_all = np.bincount(p.all_cell, minlength=p.cells)
    with np.errstate(invalid="ignore", divide="ignore"):
        for code in (429, 503):
            out[f"rate_{code}"] = np.bincount(p.all_cell, weights=p.all_code == code, minlength=p.cells) / n_all
    out["n_attempts"] = n_all
    enough = g.n >= min_n
    z = rank_sum_z(p.cell, p.ratio, p.cells)
    z[~enough] = np.nan
    pv = normal_two_sided_p(z)
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
    ci: float = 0.95,
    alpha: float = 0.05,
    correction: str = "holm",
) -> pd.DataFrame:
    """One row per hour of the week (168; or 24 with ``period="day"``) in time zone ``tz``.

    Columns: ``day`` (0 = Monday), ``day_name``, ``hour``, ``n``, median and P90 as ratios to
    each config's median with CIs (``median_ratio``, ``..._lo``, ``..._hi``), the same in
    seconds (``median_s``... = ratio x pooled median), ``rate_429``/``rate_503`` over all
    attempts, the rank test (``z``, ``p_value``, ``p_adjusted`` by ``correction``) and
    ``slower``/``faster`` flags. Cells with fewer than ``min_n`` successes get no CI and no
    test (``enough=False``).

    >>> from nbp_kit.analysis.synthetic import synthetic_attempts
    >>> t = hour_of_week(synthetic_attempts(5_000, seed=0), tz="Asia/Shanghai", period="day")
    >>> len(t), t.attrs["tz"]
    (24, 'Asia/Shanghai')
    """
    prepared = _prepare(df, tz, as_columns(by), period)
    return _table(prepared, min_n=min_n, ci=ci, alpha=alpha, correction=correction)


def _classes(t: pd.DataFrame, max_gap: int) -> np.ndarray:
    """+1 slow, -1 fast, 0 neither; short gaps between same-class cells are bridged when the
    gap's point estimates lean the same way (a noisy cell should not split a window)."""
    cls = np.where(t["slower"], 1, np.where(t["faster"], -1, 0))
    ratio = t["median_ratio"].to_numpy()
    m = len(cls)
    out = cls.copy()
    for i in np.flatnonzero(cls != 0):
        for gap in range(1, max_gap + 1):
            j = (i + gap + 1) % m
            between = [(i + k) % m for k in range(1, gap + 1)]
            if cls[j] == cls[i] and all(cls[b] == 0 for b in between):
                lean = all(np.isnan(ratio[b]) or np.sign(ratio[b] - 1) == cls[i] for b in between)
                if lean:
                    out[between] = cls[i]
                break
    return out


def _runs(cls: np.ndarray) -> list[tuple[int, int, int]]:
    """Circular runs of equal non-zero class: (start, length, class)."""
    m = len(cls)
    if (cls == cls[0]).all():
        return [] if cls[0] == 0 else [(0, m, int(cls[0]))]
    # start scanning just after a class change so runs across the wrap stay whole
    shift = int(np.flatnonzero(cls != np.roll(cls, 1))[0])
    runs = []
    i = 0
    while i < m:
        c = cls[(shift + i) % m]
        j = i
        while j < m and cls[(shift + j) % m] == c:
            j += 1
        if c != 0:
            runs.append(((shift + i) % m, j - i, int(c)))
        i = j
    return runs


def _label(start: int, length: int, cells: int, tz: str) -> str:
    if cells == 24:
        end = (start + length) % 24
        return f"{start:02d}:00-{end if end else 24:02d}:00 {tz}"
    d0, h0 = divmod(start, 24)
    last = (start + length - 1) % 168
    d1, h1 = divmod(last, 24)
    if d0 == d1 and length <= 24:
        return f"{DAY_NAMES[d0]} {h0:02d}:00-{h1 + 1:02d}:00 {tz}"
    d2, h2 = divmod((last + 1) % 168, 24)
    return f"{DAY_NAMES[d0]} {h0:02d}:00-{DAY_NAMES[d2]} {h2:02d}:00 {tz}"


def _fmt_s(seconds: float) -> str:
    """Whole seconds, or two significant digits below 10 s (scaled emulator runs: "0.12 s", not "0 s")."""
    if not np.isfinite(seconds) or abs(seconds) >= 10:
        return f"{seconds:.0f}"
    return f"{seconds:.2g}"


def offpeak_windows(
    df: pd.DataFrame,
    *,
    tz: str = "UTC",
    by: str | Sequence[str] = CONFIG_COLUMNS,
    period: str = "week",
    min_n: int = 30,
    ci: float = 0.95,
    alpha: float = 0.05,
    correction: str = "holm",
    max_gap: int = 2,
) -> pd.DataFrame:
    """Contiguous windows that are significantly faster (off-peak) or slower (peak), ranked,
    each phrased as advice.

    Cells come from :func:`hour_of_week`; runs of significantly slower (or faster) cells form
    windows (gaps of up to ``max_gap`` non-significant cells leaning the same way are bridged).
    Each off-peak window is compared with the pooled peak cells (or, when no cell is
    significantly slow, with all other cells); each peak window with all non-peak cells.
    ``change_pct`` is the difference of medians relative to the reference median, with a CI.
    Off-peak windows come first, best first (ranked by the CI bound nearest zero, so a long,
    surely faster window beats a noisy hour), then peak windows, worst first. Empty when no
    cell differs significantly.

    >>> from nbp_kit.analysis.synthetic import synthetic_attempts
    >>> w = offpeak_windows(synthetic_attempts(40_000, seed=0), period="day")
    >>> w["kind"].iloc[-1], w["label"].iloc[-1]
    ('peak', '13:00-18:00 UTC')
    """
    prepared = _prepare(df, tz, as_columns(by), period)
    t = _table(prepared, min_n=min_n, ci=ci, alpha=alpha, correction=correction)
    cls = _classes(t, max_gap)
    runs = _runs(cls)
    cols = ["rank", "kind", "label", "start_day", "start_hour", "hours", "n", "median_s", "reference_median_s",
            "change_pct", "change_lo_pct", "change_hi_pct", "advice"]
    if not runs:
        return pd.DataFrame(columns=cols)
    slow_cells = np.flatnonzero(cls == 1)
    rows = []
    for start, length, c in runs:
        in_window = np.zeros(prepared.cells, dtype=bool)
        in_window[(start + np.arange(length)) % prepared.cells] = True
        inside = in_window[prepared.cell]  # a table lookup, not np.isin over every row
        if c < 0 and len(slow_cells):
            ref = (cls == 1)[prepared.cell]
            ref_name = "at peak"
        else:
            ref = (~in_window & (cls != c))[prepared.cell]
            ref_name = "otherwise"
        a, b = prepared.ratio[ref], prepared.ratio[inside]
        d, lo, hi = quantile_diff_ci(a, b, 0.5, ci=ci, seed=start)
        ref_med = float(np.median(a)) if len(a) else np.nan
        scale = prepared.pooled_median_s
        label = _label(start, length, prepared.cells, prepared.tz_label)
        change, clo, chi = (100 * d / ref_med, 100 * lo / ref_med, 100 * hi / ref_med) if ref_med else (np.nan,) * 3
        med_s, ref_s = (ref_med + d) * scale, ref_med * scale
        kind = "peak" if c > 0 else "off-peak"
        advice = (f"{label}{' (peak)' if c > 0 else ''}: median {_fmt_s(med_s)} s vs {_fmt_s(ref_s)} s {ref_name}, "
                  f"{change:+.0f} % (CI {clo:+.0f} to {chi:+.0f} %), n={len(b)}")
        rows.append({
            "kind": kind, "label": label,
            "start_day": start // 24 if prepared.cells == 168 else -1, "start_hour": start % 24,
            "hours": length, "n": len(b), "median_s": med_s, "reference_median_s": ref_s,
            "change_pct": change, "change_lo_pct": clo, "change_hi_pct": chi, "advice": advice,
        })
    out = pd.DataFrame(rows)
    out["_k"] = (out["kind"] == "peak").astype(int)
    # rank by the CI bound nearest zero: "at least this much faster", so a long window with a
    # tight interval beats a one-hour blip with the same point estimate
    out["_s"] = np.where(out["kind"] == "peak", -out["change_lo_pct"], out["change_hi_pct"])
    out = out.sort_values(["_k", "_s", "hours"], ascending=[True, True, False], kind="stable")
    out["rank"] = np.arange(1, len(out) + 1)
    out.attrs["tz"] = prepared.tz_label
    return out[cols].reset_index(drop=True)


def drift_over_weeks(
    df: pd.DataFrame,
    *,
    by: str | Sequence[str] = CONFIG_COLUMNS,
    min_n: int = 30,
    ci: float = 0.95,
) -> pd.DataFrame:
    """Weekly median (as a ratio to each config's overall median, and in seconds) with CIs,
    and its change versus the first week; ``drift`` is True where that change's CI excludes 0.

    Weeks start on Monday 00:00 UTC.

    >>> from nbp_kit.analysis.synthetic import synthetic_attempts
    >>> w = drift_over_weeks(synthetic_attempts(4_000, seed=0, days=21))
    >>> len(w), bool(w["drift"].iloc[0])
    (3, False)
    """
    require_frame(df, ("status", "total_s"))
    by = present(df, as_columns(by))
    t = event_times(df)
    lat = num(df, "total_s")
    use = is_ok(df) & np.isfinite(t) & np.isfinite(lat) & (lat > 0)
    codes, keys = group_codes(df, by)
    med = pd.Series(lat[use]).groupby(codes[use]).median().reindex(range(len(keys))).to_numpy()
    ratio = lat[use] / med[codes[use]]
    monday0 = 4 * 86400  # 1970-01-05 was a Monday
    week = np.floor((t[use] - monday0) / (7 * 86400)).astype(np.int64)
    cols = ["week_start", "n", "median_ratio", "median_ratio_lo", "median_ratio_hi", "median_s",
            "change_pct", "change_lo_pct", "change_hi_pct", "drift"]
    if not len(week):
        return pd.DataFrame(columns=cols)
    weeks = np.unique(week)
    wcode = np.searchsorted(weeks, week)
    g = grouped_quantiles(wcode, ratio, n_groups=len(weeks), qs=(0.5,), ci=ci, boot_max_n=0, min_n=min_n)
    pooled = float(np.median(lat[use]))
    first = ratio[wcode == 0]
    rows = []
    for k, w in enumerate(weeks):
        d, lo, hi = quantile_diff_ci(first, ratio[wcode == k], 0.5, ci=ci, seed=k)
        base = float(np.median(first))
        enough = g.n[k] >= min_n and len(first) >= min_n
        rows.append({
            "week_start": pd.Timestamp(monday0 + int(w) * 7 * 86400, unit="s", tz="UTC"),
            "n": int(g.n[k]),
            "median_ratio": g.point[0.5][k], "median_ratio_lo": g.lo[0.5][k], "median_ratio_hi": g.hi[0.5][k],
            "median_s": g.point[0.5][k] * pooled,
            "change_pct": 100 * d / base, "change_lo_pct": 100 * lo / base, "change_hi_pct": 100 * hi / base,
            "drift": bool(enough and k > 0 and (lo > 0 or hi < 0)),
        })
    return pd.DataFrame(rows, columns=cols)
