"""Figures: structure (trace types, axis titles, number of groups, time-base mark), not pixels."""

from __future__ import annotations

import plotly.graph_objects as go
import pytest

from nbp_kit import ConfigError, plots
from nbp_kit.analysis.synthetic import synthetic_attempts


@pytest.fixture(scope="module")
def df():
    return synthetic_attempts(4_000, seed=0)


@pytest.fixture(scope="module")
def scaled():
    return synthetic_attempts(2_000, seed=0, time_scale=0.02)


def _notes(fig: go.Figure) -> list[str]:
    return [a.text for a in fig.layout.annotations]


@pytest.mark.parametrize(
    ("func", "trace_type", "y_title"),
    [
        (plots.latency_ecdf, "scatter", "fraction of calls (ratio)"),
        (plots.latency_box, "box", "latency (s)"),
        (plots.latency_violin, "violin", "latency (s)"),
    ],
)
def test_distribution_figures_have_one_trace_per_config(df, func, trace_type, y_title) -> None:
    fig = func(df, by="resolution")
    assert isinstance(fig, go.Figure) and [t.type for t in fig.data] == [trace_type] * 3
    assert [t.name for t in fig.data] == ["1K", "2K", "4K"]
    assert fig.layout.yaxis.title.text == y_title
    six = func(df)  # default: the config columns that vary (resolution x thinking level)
    assert len(six.data) == 6 and six.data[0].name == "1K low"
    assert _notes(fig) == []


def test_ecdf_is_aggregated_and_monotone(df) -> None:
    fig = plots.latency_ecdf(df, by=(), max_points=200)
    x, y = list(fig.data[0].x), list(fig.data[0].y)
    assert len(x) == 200 and x == sorted(x) and y == sorted(y) and y[-1] == 1.0
    assert fig.layout.xaxis.title.text == "latency (s)"
    user = plots.latency_ecdf(df, by="resolution", latency="user")
    assert user.layout.title.text.startswith("user latency")


def test_scaled_and_virtual_times_are_marked(scaled) -> None:
    for fig in (plots.latency_ecdf(scaled), plots.hour_of_week_heatmap(scaled), plots.timeline(scaled)):
        assert "emulator: times scaled x0.02" in _notes(fig)
    virtual = synthetic_attempts(500, seed=1, clock="virtual")
    assert _notes(plots.phase_stacked(virtual)) == ["virtual clock"]


def test_phase_figures(df) -> None:
    wf = plots.phase_waterfall(df)
    assert wf.data[0].type == "waterfall" and list(wf.data[0].x)[0] == "queue" and list(wf.data[0].x)[-1] == "total"
    assert wf.layout.yaxis.title.text == "time (s)"
    one = df.iloc[5]["attempt_id"]
    assert plots.phase_waterfall(df, attempt_id=one).data[0].name == one
    with pytest.raises(ConfigError, match="attempt_id='nope'"):
        plots.phase_waterfall(df, attempt_id="nope")
    st = plots.phase_stacked(df, by="resolution")
    assert st.layout.barmode == "stack" and {t.type for t in st.data} == {"bar"}
    assert "wait" in [t.name for t in st.data] and "fetch" not in [t.name for t in st.data]  # all-empty phase dropped
    assert st.layout.yaxis.title.text == "time (s)"


def test_heatmap_is_days_by_hours_with_units(df) -> None:
    fig = plots.hour_of_week_heatmap(df, tz="Asia/Shanghai", min_n=5)
    hm = fig.data[0]
    assert hm.type == "heatmap" and len(hm.z) == 7 and len(hm.z[0]) == 24 and list(hm.y)[0] == "Mon"
    assert fig.layout.xaxis.title.text == "hour of day (Asia/Shanghai)"
    assert hm.colorbar.title.text == "median_s (s)"
    rate = plots.hour_of_week_heatmap(df, value="rate_429")
    assert rate.data[0].colorbar.title.text == "rate_429 (share)"
    with pytest.raises(ConfigError, match="value='nope'"):
        plots.hour_of_week_heatmap(df, value="nope")


def test_timeline_small_is_points_large_is_binned(df) -> None:
    small = plots.timeline(df.head(300))
    assert [t.name for t in small.data] == ["attempts", "rolling P95"]
    big = plots.timeline(df, max_points=1000, bins=50)
    assert [t.name for t in big.data] == ["median per bin", "P95 per bin"] and len(big.data[0].x) <= 50
    assert big.layout.yaxis.title.text == "latency (s)" and big.layout.xaxis.title.text == "time (UTC)"


def test_pareto_throughput_and_hedging_figures(df) -> None:
    p = plots.pareto_scatter(df, by="resolution")
    assert [t.name for t in p.data] == ["configs", "Pareto front"] and len(p.data[0].x) == 3
    assert p.layout.xaxis.title.text == "cost per image (USD)" and p.layout.yaxis.title.text == "P95 latency (s)"
    th = plots.throughput_curve(df)
    assert th.layout.xaxis.title.text == "concurrency (requests in flight)" and len(th.data[0].x) == 1
    h = plots.hedging_tradeoff(df, by="resolution", quantiles=(0.9, 0.95))
    assert len(h.data) == 3 and len(h.data[0].x) == 3  # no hedge + 2 policies per config
    assert h.layout.xaxis.title.text == "extra requests (%)"


def test_large_frames_give_small_figures() -> None:
    big = synthetic_attempts(200_000, seed=2)
    for fig in (
        plots.latency_ecdf(big),
        plots.latency_violin(big),
        plots.hour_of_week_heatmap(big),
        plots.timeline(big),
        plots.latency_box(big),
    ):
        assert len(fig.to_json()) < 200_000


def test_empty_frames_give_empty_figures_not_errors() -> None:
    empty = synthetic_attempts(10, seed=0).iloc[0:0]
    for name in plots.__all__:
        if name == "phase_waterfall":
            with pytest.raises(ConfigError, match="no successful attempt"):
                plots.phase_waterfall(empty)
            continue
        fig = getattr(plots, name)(empty)
        assert isinstance(fig, go.Figure), name
