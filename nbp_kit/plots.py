"""Figures: a tidy attempts frame and column names in, a plotly ``go.Figure`` out (never shown).

Large frames are aggregated before plotting (an ECDF is at most ``max_points`` quantile
points per group, a box is its five numbers, a timeline is binned), so a million attempts
still give a figure of a few hundred kilobytes. Every axis title carries its unit, and when
the frame's times were scaled or virtual (emulator) the figure says so in a visible note.

>>> from nbp_kit.analysis.synthetic import synthetic_attempts
>>> fig = latency_ecdf(synthetic_attempts(2_000, seed=0), by="resolution")
>>> [t.name for t in fig.data], fig.layout.xaxis.title.text
(['1K', '2K', '4K'], 'latency (s)')
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from .analysis import cost_latency, hedging_whatif, hour_of_week, throughput
from .analysis.frames import (
    CONFIG_COLUMNS,
    as_columns,
    group_codes,
    is_ok,
    latency_view,
    num,
    present,
    require_frame,
    time_base_note,
)
from .analysis.offpeak import DAY_NAMES, event_times
from .analysis.stats import sort_by_group
from .errors import ConfigError
from .records import PHASES

__all__ = [
    "hedging_tradeoff",
    "mode_turnaround_figure",
    "hour_of_week_heatmap",
    "latency_box",
    "latency_ecdf",
    "latency_violin",
    "pareto_scatter",
    "phase_stacked",
    "phase_waterfall",
    "throughput_curve",
    "timeline",
]


def _mark(fig: go.Figure, df: pd.DataFrame) -> go.Figure:
    """Add a visible note when times were scaled or virtual, so nobody mistakes them for real."""
    note = time_base_note(df)
    if note:
        fig.add_annotation(
            text=note,
            xref="paper",
            yref="paper",
            x=1,
            y=1.08,
            showarrow=False,
            xanchor="right",
            font={"color": "firebrick"},
            name="time-base",
        )
    return fig


def _label(keys: pd.DataFrame, i: int) -> str:
    if keys.shape[1] == 0:
        return "all"
    return " ".join(str(v) for v in keys.iloc[i].tolist())


def _default_by(df: pd.DataFrame, by: str | Sequence[str] | None) -> tuple[str, ...]:
    """The config columns that vary in this frame (constant ones only lengthen labels)."""
    if by is not None:
        cols = as_columns(by)
        require_frame(df, cols)
        return cols
    return tuple(c for c in present(df, CONFIG_COLUMNS) if df[c].nunique(dropna=False) > 1)


def _quantile_points(df: pd.DataFrame, by: Sequence[str], latency: str, max_points: int):
    """(keys, per-group arrays of ``max_points`` evenly spaced quantiles, per-group n)."""
    if max_points < 2:
        raise ConfigError(f"max_points={max_points!r} is not accepted; use 2 or more")
    view, lat, ok = latency_view(df, by, latency)
    use = ok & np.isfinite(lat)
    codes, keys = group_codes(view[use], by)
    sv, counts, starts = sort_by_group(codes, lat[use], len(keys))
    probs = np.linspace(0, 1, max_points)
    pts = []
    for g in range(len(keys)):
        x = sv[starts[g] : starts[g] + counts[g]]
        pts.append(np.quantile(x, probs) if len(x) > max_points else x)
    return keys, pts, counts


def latency_ecdf(
    df: pd.DataFrame, by: str | Sequence[str] | None = None, *, latency: str = "attempt", max_points: int = 500
) -> go.Figure:
    """ECDF of latency, one line per config (at most ``max_points`` points each).

    >>> from nbp_kit.analysis.synthetic import synthetic_attempts
    >>> len(latency_ecdf(synthetic_attempts(500, seed=0), by=()).data)
    1
    """
    by = _default_by(df, by)
    keys, pts, counts = _quantile_points(df, by, latency, max_points)
    fig = go.Figure()
    for g, x in enumerate(pts):
        y = np.linspace(1 / len(x), 1, len(x)) if len(x) else x
        fig.add_trace(
            go.Scatter(
                x=x,
                y=y,
                mode="lines",
                line_shape="hv",
                name=_label(keys, g),
                hovertemplate="%{x:.1f} s: %{y:.0%}<extra>" + f"n={counts[g]}</extra>",
            )
        )
    fig.update_layout(
        title=f"{latency} latency ECDF",
        xaxis_title="latency (s)",
        yaxis_title="fraction of calls (ratio)",
        yaxis_tickformat=".0%",
    )
    return _mark(fig, df)


def latency_box(df: pd.DataFrame, by: str | Sequence[str] | None = None, *, latency: str = "attempt") -> go.Figure:
    """Box per config from precomputed quartiles (whiskers at P5 and P95, so the JSON is tiny).

    >>> from nbp_kit.analysis.synthetic import synthetic_attempts
    >>> latency_box(synthetic_attempts(500, seed=0), by="resolution").data[0].type
    'box'
    """
    by = _default_by(df, by)
    keys, pts, counts = _quantile_points(df, by, latency, 101)
    fig = go.Figure()
    for g, x in enumerate(pts):
        if not len(x):
            continue
        q = np.quantile(x, [0.05, 0.25, 0.5, 0.75, 0.95])
        name = _label(keys, g)
        fig.add_trace(
            go.Box(
                name=name,
                x=[name],
                q1=[q[1]],
                median=[q[2]],
                q3=[q[3]],
                lowerfence=[q[0]],
                upperfence=[q[4]],
                boxpoints=False,
            )
        )
    fig.update_layout(
        title=f"{latency} latency by config (whiskers P5-P95)",
        yaxis_title="latency (s)",
        xaxis_title="config",
        showlegend=False,
    )
    return _mark(fig, df)


def latency_violin(
    df: pd.DataFrame, by: str | Sequence[str] | None = None, *, latency: str = "attempt", max_points: int = 300
) -> go.Figure:
    """Violin per config drawn from evenly spaced quantiles (a faithful, small stand-in sample).

    >>> from nbp_kit.analysis.synthetic import synthetic_attempts
    >>> latency_violin(synthetic_attempts(500, seed=0), by="resolution").data[0].type
    'violin'
    """
    by = _default_by(df, by)
    keys, pts, _ = _quantile_points(df, by, latency, max_points)
    fig = go.Figure()
    for g, x in enumerate(pts):
        fig.add_trace(go.Violin(y=x, name=_label(keys, g), box_visible=True, meanline_visible=False, points=False))
    fig.update_layout(
        title=f"{latency} latency distribution", yaxis_title="latency (s)", xaxis_title="config", showlegend=False
    )
    return _mark(fig, df)


def phase_waterfall(df: pd.DataFrame, attempt_id: str | None = None) -> go.Figure:
    """Where one attempt's time went, phase by phase (the first successful one by default).

    >>> from nbp_kit.analysis.synthetic import synthetic_attempts
    >>> fig = phase_waterfall(synthetic_attempts(50, seed=0))
    >>> fig.data[0].type, list(fig.data[0].x)[-1]
    ('waterfall', 'total')
    """
    require_frame(df, ("attempt_id", "status"))
    if attempt_id is None:
        rows = df[is_ok(df)]
        if rows.empty:
            raise ConfigError("df has no successful attempt; pass attempt_id= to draw a failed one")
        row = rows.iloc[0]
    else:
        rows = df[df["attempt_id"].astype(str) == str(attempt_id)]
        if rows.empty:
            raise ConfigError(f"attempt_id={attempt_id!r} is not in df")
        row = rows.iloc[0]
    names = [p for p in PHASES if f"{p}_s" in df.columns]
    values = [float(row[f"{p}_s"]) if pd.notna(row[f"{p}_s"]) else 0.0 for p in names]
    fig = go.Figure(
        go.Waterfall(
            x=[*names, "total"],
            y=[*values, 0.0],
            measure=["relative"] * len(names) + ["total"],
            texttemplate="%{y:.2f}",
            name=str(row["attempt_id"]),
        )
    )
    fig.update_layout(title=f"phases of attempt {row['attempt_id']}", xaxis_title="phase", yaxis_title="time (s)")
    return _mark(fig, df)


def phase_stacked(df: pd.DataFrame, by: str | Sequence[str] | None = None) -> go.Figure:
    """Mean seconds per phase, stacked, one bar per config (successful attempts).

    >>> from nbp_kit.analysis.synthetic import synthetic_attempts
    >>> fig = phase_stacked(synthetic_attempts(500, seed=0), by="resolution")
    >>> fig.layout.barmode, len(fig.data[0].x)
    ('stack', 3)
    """
    by = _default_by(df, by)
    ok = df[is_ok(df)]
    codes, keys = group_codes(ok, by)
    n = np.maximum(np.bincount(codes, minlength=len(keys)), 1)
    labels = [_label(keys, g) for g in range(len(keys))]
    fig = go.Figure()
    for p in PHASES:
        if f"{p}_s" not in df.columns:
            continue
        mean = np.bincount(codes, weights=np.nan_to_num(num(ok, f"{p}_s")), minlength=len(keys)) / n
        if np.any(mean > 0):
            fig.add_trace(go.Bar(x=labels, y=mean, name=p))
    fig.update_layout(barmode="stack", title="mean time per phase", xaxis_title="config", yaxis_title="time (s)")
    return _mark(fig, df)


def hour_of_week_heatmap(
    df: pd.DataFrame,
    *,
    tz: str = "UTC",
    value: str = "median_s",
    by: str | Sequence[str] = CONFIG_COLUMNS,
    min_n: int = 30,
) -> go.Figure:
    """Hour-of-week heatmap (days x 24 hours) of ``value`` from :func:`nbp_kit.analysis.hour_of_week`;
    cells under ``min_n`` are blank.

    >>> from nbp_kit.analysis.synthetic import synthetic_attempts
    >>> fig = hour_of_week_heatmap(synthetic_attempts(5_000, seed=0))
    >>> fig.data[0].type, len(fig.data[0].z), len(fig.data[0].z[0])
    ('heatmap', 7, 24)
    """
    table = hour_of_week(df, tz=tz, by=by, min_n=min_n)
    if value not in table.columns:
        raise ConfigError(
            f"value={value!r} is not accepted; use a column of hour_of_week(), e.g. 'median_s', 'rate_429'"
        )
    z = np.where(table["enough"] | value.startswith("rate_"), table[value], np.nan).reshape(7, 24)
    n = table["n"].to_numpy().reshape(7, 24)
    unit = "ratio" if value.endswith("ratio") else ("share" if value.startswith("rate_") else "s")
    fig = go.Figure(
        go.Heatmap(
            z=np.round(z, 4),
            x=[f"{h:02d}" for h in range(24)],
            y=list(DAY_NAMES),
            customdata=n,
            colorscale="RdYlGn_r",
            colorbar={"title": f"{value} ({unit})"},
            hovertemplate="%{y} %{x}:00 -> %{z}<br>n=%{customdata}<extra></extra>",
        )
    )
    fig.update_layout(
        title=f"{value} by hour of week ({table.attrs['tz']})",
        xaxis_title=f"hour of day ({table.attrs['tz']})",
        yaxis_title="day of week",
        yaxis_autorange="reversed",
    )
    return _mark(fig, df)


def timeline(df: pd.DataFrame, *, window: int = 50, max_points: int = 2000, bins: int = 300) -> go.Figure:
    """Latency over time with a rolling P95 (over ``window`` attempts). Frames larger than
    ``max_points`` are binned in time: the median and P95 of each bin instead of every point.

    >>> from nbp_kit.analysis.synthetic import synthetic_attempts
    >>> [t.name for t in timeline(synthetic_attempts(300, seed=0)).data]
    ['attempts', 'rolling P95']
    """
    require_frame(df, ("status", "total_s"))
    if window < 1 or bins < 1:
        raise ConfigError(f"window={window!r}, bins={bins!r} are not accepted; use whole numbers >= 1")
    t = event_times(df)
    lat = num(df, "total_s")
    use = is_ok(df) & np.isfinite(t) & np.isfinite(lat)
    order = np.argsort(t[use], kind="stable")
    ts, ys = t[use][order], lat[use][order]
    fig = go.Figure()
    if len(ts) <= max_points:
        x = pd.to_datetime(ts, unit="s", utc=True)
        fig.add_trace(go.Scattergl(x=x, y=ys, mode="markers", name="attempts", marker={"size": 4, "opacity": 0.5}))
        roll = pd.Series(ys).rolling(window, min_periods=1).quantile(0.95).to_numpy()
        fig.add_trace(go.Scatter(x=x, y=roll, mode="lines", name="rolling P95"))
    else:
        edges = np.linspace(ts[0], ts[-1], bins + 1)
        b = np.clip(np.searchsorted(edges, ts, side="right") - 1, 0, bins - 1)
        s = pd.Series(ys).groupby(b)
        mid = pd.to_datetime((edges[:-1] + edges[1:])[s.median().index] / 2, unit="s", utc=True)
        fig.add_trace(go.Scatter(x=mid, y=s.median().to_numpy(), mode="lines", name="median per bin"))
        fig.add_trace(go.Scatter(x=mid, y=s.quantile(0.95).to_numpy(), mode="lines", name="P95 per bin"))
    fig.update_layout(title="latency over time", xaxis_title="time (UTC)", yaxis_title="latency (s)")
    return _mark(fig, df)


def pareto_scatter(df: pd.DataFrame, by: str | Sequence[str] | None = None, *, latency: str = "p95") -> go.Figure:
    """Cost per image vs latency, one point per config; the Pareto front joined by a line.

    >>> from nbp_kit.analysis.synthetic import synthetic_attempts
    >>> [t.name for t in pareto_scatter(synthetic_attempts(1_000, seed=0), by="resolution").data]
    ['configs', 'Pareto front']
    """
    by = _default_by(df, by)
    t = cost_latency(df, by, latency=latency)
    labels = [_label(t[list(by)], i) for i in range(len(t))]
    fig = go.Figure()
    fig.add_trace(
        go.Scatter(
            x=t["cost_per_image_usd"],
            y=t[latency],
            mode="markers+text",
            text=labels,
            textposition="top center",
            name="configs",
        )
    )
    front = t[t["pareto"]].sort_values("cost_per_image_usd")
    fig.add_trace(go.Scatter(x=front["cost_per_image_usd"], y=front[latency], mode="lines", name="Pareto front"))
    fig.update_layout(
        title="cost vs latency", xaxis_title="cost per image (USD)", yaxis_title=f"{latency.upper()} latency (s)"
    )
    return _mark(fig, df)


def throughput_curve(df: pd.DataFrame, by: str | Sequence[str] | None = None) -> go.Figure:
    """Images per minute against concurrency (see :func:`nbp_kit.analysis.throughput`).

    >>> from nbp_kit.analysis.synthetic import synthetic_attempts
    >>> throughput_curve(synthetic_attempts(300, seed=0)).layout.yaxis.title.text
    'throughput (images/min)'
    """
    t = throughput(df, by)
    fig = go.Figure(
        go.Scatter(x=t["achieved_concurrency"], y=t["images_per_min"], mode="lines+markers", name="achieved")
    )
    fig.update_layout(
        title="throughput vs concurrency",
        xaxis_title="concurrency (requests in flight)",
        yaxis_title="throughput (images/min)",
    )
    return _mark(fig, df)


def hedging_tradeoff(df: pd.DataFrame, by: str | Sequence[str] | None = None, **kwargs: object) -> go.Figure:
    """P95 latency against extra requests for each hedging policy, one line per config.

    >>> from nbp_kit.analysis.synthetic import synthetic_attempts
    >>> hedging_tradeoff(synthetic_attempts(2_000, seed=0), by="resolution").layout.xaxis.title.text
    'extra requests (%)'
    """
    by = _default_by(df, by)
    h = hedging_whatif(df, by, **kwargs)  # type: ignore[arg-type]
    codes, keys = group_codes(h, by)
    fig = go.Figure()
    for g in range(len(keys)):
        part = h[codes == g]
        fig.add_trace(
            go.Scatter(
                x=100 * part["extra_requests"],
                y=part["p95"],
                mode="lines+markers+text",
                text=part["policy"],
                textposition="top center",
                name=_label(keys, g),
            )
        )
    fig.update_layout(
        title="hedging: P95 vs extra requests", xaxis_title="extra requests (%)", yaxis_title="P95 latency (s)"
    )
    return _mark(fig, df)


def mode_turnaround_figure(df: pd.DataFrame) -> go.Figure:
    """Turnaround per mode (service seconds, log axis): one box per mode
    (:func:`nbp_kit.analysis.modes.mode_turnarounds`); batch jobs that never delivered are
    counted in the batch label."""
    from .analysis.modes import mode_turnarounds

    t = mode_turnarounds(df)
    fig = go.Figure()
    for label, g in t.groupby("label", sort=False):
        fig.add_trace(go.Box(y=g["turnaround_s"].tolist(), name=str(label), boxpoints="all"))
    fig.update_layout(
        title="Turnaround per mode", yaxis_title="turnaround (service seconds)", yaxis_type="log", showlegend=False
    )
    return fig
