"""ipywidgets panels: thin shells over plans, sweeps, the store, analysis and plots.

- :class:`SweepPanel` builds a :class:`~nbp_kit.runs.plan.Plan` from its controls, shows the
  pre-flight estimate as you type, runs the sweep in the background (``start_sweep``) so the
  kernel stays responsive, and draws latency by configuration live in a plotly ``FigureWidget``.
- :class:`Gallery` shows a run's images as labelled thumbnails: filter by configuration,
  enlarge one (still a downscaled copy), see a grid's tiles, compare two configs side by side.
- :class:`RunExplorer` picks runs, a metric and a grouping and shows the figure and table.

Each panel is a plain object whose ``.widget`` is the ipywidgets tree (``display(panel)``
works too); tests drive the controls headless and assert on traits.

Callbacks run inside ``Output.capture(clear_output=True)`` so their errors are visible in
the panel; the sweep's background thread only ever writes with ``out.append_stdout``.

>>> panel = SweepPanel(session.client, store=session.store)   # doctest: +SKIP
>>> panel                                                      # doctest: +SKIP
"""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import ipywidgets as W
import pandas as pd
import plotly.graph_objects as go

from .analysis.frames import CONFIG_COLUMNS
from .errors import ConfigError, NbpError
from .spec import ASPECT_RATIOS, DEFAULT_MODEL, MODELS, RESOLUTIONS

#: Concurrency choices offered by the panel ("adaptive" is AIMD).
CONCURRENCY_CHOICES: tuple[str, ...] = ("adaptive", "1", "2", "4", "8", "16")
#: Label used for "send no thinking knob".
DEFAULT_THINKING = "default"
#: What the explorer can show: label -> (figure function, table function) in plots/analysis.
METRICS: dict[str, tuple[str, str]] = {
    "attempt latency": ("latency_box", "summarize"),
    "user latency (retries included)": ("latency_ecdf", "summarize"),
    "phase split": ("phase_stacked", "phase_shares"),
    "cost vs latency": ("pareto_scatter", "cost_latency"),
}
#: Groupings the explorer offers ("config" = every config column the frame has).
GROUPINGS: tuple[str, ...] = (
    "config",
    "resolution",
    "thinking_level",
    "aspect_ratio",
    "grid",
    "http_version",
    "transport",
    "provider",
    "run_id",
)


def config_label(row: Mapping[str, Any]) -> str:
    """``2K 16:9 think=low`` (+ ``grid=2x2``) for an attempts-frame row, as ImageSpec.config_label.

    >>> config_label({"resolution": "2K", "aspect_ratio": "16:9", "thinking_level": None, "grid": "1x1"})
    '2K 16:9 think=default'
    """
    level = row.get("thinking_level")
    level = level if isinstance(level, str) and level else DEFAULT_THINKING
    parts = [str(row.get("resolution") or "?"), str(row.get("aspect_ratio") or "?"), f"think={level}"]
    grid = row.get("grid")
    if isinstance(grid, str) and grid not in ("", "1x1"):
        parts.append(f"grid={grid}")
    return " ".join(parts)


def _with_config(frame: pd.DataFrame) -> pd.DataFrame:
    if len(frame) == 0:
        return frame.assign(config=pd.Series(dtype="object"))
    return frame.assign(config=[config_label(r) for r in frame.to_dict("records")])


class _Panel:
    """Shared display plumbing: ``display(panel)`` shows ``panel.widget``."""

    widget: W.Widget

    def _repr_mimebundle_(self, **kwargs: Any) -> Any:
        return self.widget._repr_mimebundle_(**kwargs)


# --------------------------------------------------------------------------- SweepPanel


class SweepPanel(_Panel):
    """Controls for a sweep, a live estimate, Run/Stop, progress and a live latency figure.

    ``target`` is what :func:`~nbp_kit.runs.plan.run_sweep` takes: an emulator handle (both
    providers are then offered) or a dict of client settings for a real provider. The
    thinking levels offered are the ones :func:`~nbp_kit.providers.capabilities` lists for
    the chosen provider and model. ``time_scale`` feeds the estimate (default: the emulator's).

    >>> panel = SweepPanel(emu, store=store)                                  # doctest: +SKIP
    >>> panel.resolutions.value = ("1K", "2K"); panel.run_button.click()      # doctest: +SKIP
    >>> panel.wait().ok                                                       # doctest: +SKIP
    6
    """

    def __init__(
        self,
        target: Any,
        *,
        store: Any,
        providers: tuple[str, ...] | None = None,
        prompts: tuple[str, ...] = ("an orange cat on a window sill",),
        time_scale: float | None = None,
        spend_cap_usd: float = 2.0,
        sweep_options: Mapping[str, Any] | None = None,
    ) -> None:
        if providers is None:
            if isinstance(target, Mapping) and "provider" in target:
                providers = (str(target["provider"]),)
            else:
                providers = ("gemini", "relay")
        if not providers:
            raise ConfigError("providers=() is not accepted; pass at least one of 'gemini', 'relay'")
        self.target = target
        self.store = store
        scale = time_scale if time_scale is not None else getattr(target, "time_scale", 1.0)
        if isinstance(scale, bool) or not isinstance(scale, (int, float)) or scale <= 0:
            raise ConfigError(f"time_scale={time_scale!r} is not accepted; use a number above 0")
        self.time_scale = float(scale)
        self.sweep_options = dict(sweep_options or {})
        self.handle: Any = None
        self.result: Any = None
        self.error: BaseException | None = None
        self.plan: Any = None
        self._points: dict[str, list[float]] = {}
        self._pending: list[dict[str, Any]] = []
        self._last_flush = 0.0
        self._lock = threading.Lock()
        self.finished = threading.Event()  # set when a sweep started from the panel ends

        style = {"description_width": "100px"}
        self.provider = W.Dropdown(
            options=providers, value=providers[0], description="provider", style=style, layout=_fill()
        )
        self.model = W.Dropdown(options=MODELS, value=DEFAULT_MODEL, description="model", style=style, layout=_fill())
        self.resolutions = W.SelectMultiple(
            options=RESOLUTIONS, value=("1K",), description="resolutions", rows=3, style=style, layout=_fill()
        )
        self.thinking_levels = W.SelectMultiple(
            options=(DEFAULT_THINKING,),
            value=(DEFAULT_THINKING,),
            description="thinking",
            rows=4,
            style=style,
            layout=_fill(),
        )
        self.aspect_ratios = W.SelectMultiple(
            options=ASPECT_RATIOS, value=("1:1",), description="aspect ratios", rows=4, style=style, layout=_fill()
        )
        self.prompts = W.Textarea(
            value="\n".join(prompts),
            description="prompts",
            placeholder="one prompt per line",
            layout=_fill(height="80px"),
            style=style,
        )
        self.repetitions = W.BoundedIntText(
            value=3, min=1, max=1000, description="repetitions", style=style, layout=_fill()
        )
        self.concurrency = W.Dropdown(
            options=CONCURRENCY_CHOICES, value="adaptive", description="concurrency", style=style, layout=_fill()
        )
        self.spend_cap = W.BoundedFloatText(
            value=spend_cap_usd, min=0.0, max=10_000.0, step=0.5, description="spend cap $", style=style, layout=_fill()
        )
        self.estimate = W.HTML(value="", layout=_fill())
        self.run_button = W.Button(description="Run", button_style="success", icon="play")
        self.stop_button = W.Button(description="Stop", button_style="danger", icon="stop", disabled=True)
        self.progress = W.IntProgress(value=0, min=0, max=1, description="progress", style=style, layout=_fill())
        self.status = W.HTML(value="idle", layout=_fill())
        self.out = W.Output(layout=W.Layout(max_height="160px", overflow="auto"))
        scaled = self.time_scale != 1.0
        self.figure = go.FigureWidget(
            layout=go.Layout(
                title="Latency by configuration (live)",
                xaxis_title="configuration",
                xaxis={"type": "category"},
                yaxis_title="latency (real-equivalent s)" if scaled else "latency (s)",
                height=320,
                margin={"t": 40, "b": 40},
                showlegend=False,
            ),
        )

        # Callbacks: errors land in self.out instead of vanishing.
        capture = self.out.capture(clear_output=True)
        for control in (self.provider, self.model):
            control.observe(capture(self._on_model_change), names="value")
        for control in (
            self.resolutions,
            self.thinking_levels,
            self.aspect_ratios,
            self.prompts,
            self.repetitions,
            self.concurrency,
            self.spend_cap,
        ):
            control.observe(capture(self._on_change), names="value")
        self.run_button.on_click(capture(self._on_run))
        self.stop_button.on_click(capture(self._on_stop))
        self._on_model_change()

        # Two columns that share the width and wrap to one below ~760 px: nothing is clipped
        # (fixed-width children in an HBox overflow into each other in a narrow notebook).
        self.controls = W.VBox(
            [self.provider, self.model, self.resolutions, self.thinking_levels, self.aspect_ratios],
            layout=W.Layout(min_width="0"),
        )
        self.actions = W.VBox(
            [
                self.prompts,
                self.repetitions,
                self.concurrency,
                self.spend_cap,
                self.estimate,
                W.HBox([self.run_button, self.stop_button], layout=W.Layout(flex_flow="row wrap")),
                self.progress,
                self.status,
            ],
            layout=W.Layout(min_width="0"),
        )
        self.form = W.GridBox(
            [self.controls, self.actions],
            layout=W.Layout(
                grid_template_columns="repeat(auto-fit, minmax(360px, 1fr))", grid_gap="4px 16px", width="100%"
            ),
        )
        self.widget = W.VBox([self.form, self.figure, self.out], layout=W.Layout(width="100%"))

    # -- plan and estimate --------------------------------------------------------------
    def _on_model_change(self, change: Any = None) -> None:
        from .providers.registry import capabilities

        caps = capabilities(self.provider.value, self.model.value)
        options = (DEFAULT_THINKING, *caps.thinking_levels)
        keep = tuple(v for v in self.thinking_levels.value if v in options) or (DEFAULT_THINKING,)
        self.thinking_levels.options = options
        self.thinking_levels.value = keep
        self._on_change()

    def _concurrency_value(self) -> int | str:
        return "adaptive" if self.concurrency.value == "adaptive" else int(self.concurrency.value)

    def build_plan(self) -> Any:
        """The :class:`~nbp_kit.runs.plan.Plan` the controls describe (ConfigError if invalid)."""
        from .runs.plan import Plan

        prompts = [p.strip() for p in self.prompts.value.splitlines() if p.strip()]
        if not prompts:
            raise ConfigError("prompts='' is not accepted; write at least one prompt, one per line")
        levels = [None if v == DEFAULT_THINKING else v for v in self.thinking_levels.value] or [None]
        if not self.resolutions.value:
            raise ConfigError("resolutions=() is not accepted; select at least one of " + ", ".join(RESOLUTIONS))
        if not self.aspect_ratios.value:
            raise ConfigError("aspect_ratios=() is not accepted; select at least one")
        return Plan(
            prompts=prompts,
            resolutions=list(self.resolutions.value),
            thinking_levels=levels,
            aspect_ratios=list(self.aspect_ratios.value),
            repetitions=int(self.repetitions.value),
            model=self.model.value,
            provider=self.provider.value,
        )

    def _on_change(self, change: Any = None) -> None:
        try:
            plan = self.build_plan()
            conc = self._concurrency_value()
            pre = plan.preflight(concurrency=4 if conc == "adaptive" else conc, time_scale=self.time_scale)
        except NbpError as exc:
            self.estimate.value = f"<span style='color:#b00'>{_escape(str(exc))}</span>"
            self.run_button.disabled = True
            return
        over = pre.est_cost_usd > float(self.spend_cap.value)
        colour = "#b00" if over else "#333"
        self.estimate.value = (
            f"<span style='color:{colour}'>Estimate: {_escape(str(pre))}"
            + (" — above the spend cap" if over else "")
            + "</span>"
        )
        self.run_button.disabled = over or self.running

    # -- run and stop -------------------------------------------------------------------
    @property
    def running(self) -> bool:
        """True while a sweep started from this panel is in flight."""
        return self.handle is not None and not self.finished.is_set()

    def _on_run(self, button: Any = None) -> None:
        from .runs.runner import start_sweep

        if self.running:
            return
        plan = self.build_plan()
        self.plan = plan
        self.finished.clear()
        self.result = None
        with self._lock:
            self._points = {}
            self._pending = []
        self.figure.data = []  # a new run starts an empty figure
        self.progress.max = max(1, len(plan))
        self.progress.value = 0
        self.status.value = f"running {len(plan)} requests…"
        self.run_button.disabled = True
        self.stop_button.disabled = False
        options = {"progress": False, **self.sweep_options}
        self.handle = start_sweep(
            plan,
            self.target,
            store=self.store,
            spend_cap_usd=float(self.spend_cap.value),
            concurrency=self._concurrency_value(),
            on_progress=self._on_progress,
            **options,
        )
        threading.Thread(target=self._wait_for_end, args=(self.handle,), name="nbp-sweep-panel", daemon=True).start()

    def _on_stop(self, button: Any = None) -> None:
        if self.handle is not None:
            self.status.value = "stopping…"
            self.handle.stop()

    def _on_progress(self, event: Any) -> None:
        """Runs on the sweep's progress thread: update traits only, write text with append_stdout."""
        attempt = getattr(event, "last", None)
        done = getattr(event, "done", None)
        if done is not None:
            self.progress.value = min(int(done), self.progress.max)
        if attempt is not None and getattr(attempt, "status", None) == "ok" and attempt.total_s is not None:
            with self._lock:
                self._pending.append(attempt.as_dict())
                due = (
                    len(self._pending) >= self.batch_points or time.monotonic() - self._last_flush >= self.flush_every_s
                )
            if due:
                self.flush()

    #: Points are sent to the figure in batches of at most this many...
    batch_points = 20
    #: ...or at least this often (seconds), whichever comes first.
    flush_every_s = 0.5

    def flush(self) -> None:
        """Append the latencies received since the last flush as one new trace.

        Only the new points cross to the browser (``addTraces``), never the ones already
        drawn, so a long sweep costs linear, not quadratic, traffic. Latencies are
        real-equivalent seconds (:func:`nbp_kit.analysis.real_seconds`).
        """
        from .analysis import real_seconds

        with self._lock:
            batch, self._pending = self._pending, []
            self._last_flush = time.monotonic()
        if not batch:
            return
        frame = real_seconds(pd.DataFrame(batch))
        labels = [config_label(r) for r in frame.to_dict("records")]
        ys = [float(y) for y in frame["total_s"]]
        with self._lock:
            for label, y in zip(labels, ys, strict=True):
                self._points.setdefault(label, []).append(y)
            order = list(self._points)
        colours = [_PALETTE[order.index(label) % len(_PALETTE)] for label in labels]
        self.figure.add_trace(
            go.Scatter(
                x=labels,
                y=ys,
                mode="markers",
                marker={"color": colours, "size": 7},
                hovertemplate="%{x}: %{y:.1f} s<extra></extra>",
                showlegend=False,
            )
        )

    @property
    def points(self) -> dict[str, list[float]]:
        """Latencies drawn so far, by configuration label (real-equivalent seconds)."""
        with self._lock:
            return {label: list(ys) for label, ys in self._points.items()}

    def _wait_for_end(self, handle: Any) -> None:
        try:
            self.result = handle.result()
            self.status.value = _escape(_result_line(self.result))
        except BaseException as exc:  # shown in the panel; the thread must not die silently
            self.error = exc
            self.status.value = f"<span style='color:#b00'>failed: {_escape(str(exc))}</span>"
            self.out.append_stdout(f"sweep failed: {exc}\n")
        finally:
            self.flush()  # the last partial batch
            self.stop_button.disabled = True
            self.finished.set()
            self._on_change()

    def wait(self, timeout_s: float | None = None) -> Any:
        """Block until the running sweep ends; returns its result (for scripts and tests)."""
        if not self.finished.wait(timeout_s):
            raise TimeoutError(f"sweep still running after timeout_s={timeout_s}")
        return self.result


#: Marker colours by configuration (plotly's default sequence).
_PALETTE = (
    "#636efa",
    "#ef553b",
    "#00cc96",
    "#ab63fa",
    "#ffa15a",
    "#19d3f3",
    "#ff6692",
    "#b6e880",
    "#ff97ff",
    "#fecb52",
)


def _fill(**kwargs: str) -> W.Layout:
    """A layout that takes its column's width and may shrink (no fixed widths to overflow)."""
    # No side margins: width 100% plus ipywidgets' default 2px margins would overflow the column.
    return W.Layout(width="100%", max_width="100%", min_width="0", margin="2px 0px", **kwargs)


def _result_line(result: Any) -> str:
    if result is None:
        return "done"
    from .presenting import fmt_money, fmt_seconds

    labels = {
        "stopped_reason": "",
        "run_id": "run",
        "ok": "ok",
        "failed": "failed",
        "cost_usd": "cost",
        "wall_s": "wall time",
    }
    parts = []
    for name, label in labels.items():
        value = getattr(result, name, None)
        if value is None:
            continue
        text = fmt_money(value) if name == "cost_usd" else fmt_seconds(value) if name == "wall_s" else str(value)
        parts.append(f"{label} {text}".strip())
    return "finished: " + ", ".join(parts) if parts else "finished"


def _escape(text: str) -> str:
    import html

    return html.escape(text)


# --------------------------------------------------------------------------- Gallery


class Gallery(_Panel):
    """A run's images as labelled thumbnails, with a config filter, enlarge, tiles and compare.

    ``source`` is an attempts frame or a store (with ``run_ids``). Only successful attempts
    with an image on disk are shown; thumbnails are small JPEGs, never the full files.

    >>> Gallery(store, run_ids=[run_id])   # doctest: +SKIP
    """

    def __init__(
        self, source: Any, *, run_ids: Any = None, limit: int = 60, thumb_px: int = 160, enlarged_px: int = 640
    ) -> None:
        if limit < 1:
            raise ConfigError(f"limit={limit!r} is not accepted; use 1 or more")
        frame = source if isinstance(source, pd.DataFrame) else source.attempts(run_ids)
        ok = frame[frame["status"] == "ok"] if len(frame) else frame
        if len(ok):
            from .analysis import real_seconds

            ok = real_seconds(ok)  # labels in real-equivalent seconds for emulator runs
        rows = [
            r
            for r in _with_config(ok).to_dict("records")
            if isinstance(r.get("image_path"), str) and Path(r["image_path"]).is_file()
        ]
        self.rows: list[dict[str, Any]] = rows[:limit]
        self.thumb_px = thumb_px
        self.enlarged_px = enlarged_px
        self._thumbs: dict[str, bytes] = {}
        self.out = W.Output()
        capture = self.out.capture(clear_output=True)

        configs = sorted({r["config"] for r in self.rows})
        self.filter = W.Dropdown(options=("all", *configs), value="all", description="config")
        self.filter.observe(capture(self._on_filter), names="value")
        self.grid = W.GridBox(layout=W.Layout(grid_template_columns=f"repeat(auto-fill, {thumb_px + 20}px)"))
        self.enlarged = W.Image(format="jpeg", layout=W.Layout(max_width=f"{enlarged_px}px"))
        self.enlarged_label = W.HTML()
        self.tiles_box = W.HBox()
        self.tiles: list[W.VBox] = []

        prompts = sorted({str(r.get("prompt") or "") for r in self.rows})
        self.compare_prompt = W.Dropdown(options=prompts or ("",), description="prompt")
        self.compare_left = W.Dropdown(options=configs or ("",), description="left")
        self.compare_right = W.Dropdown(
            options=configs or ("",),
            value=(configs[1] if len(configs) > 1 else (configs or ("",))[0]),
            description="right",
        )
        self.compare_box = W.HBox()
        for control in (self.compare_prompt, self.compare_left, self.compare_right):
            control.observe(capture(self._on_compare), names="value")

        self._on_filter()
        self._on_compare()
        self.widget = W.VBox(
            [
                W.HTML(f"<b>{len(self.rows)} images</b>"),
                self.filter,
                self.grid,
                W.HTML("<b>Enlarged</b> (downscaled copy)"),
                self.enlarged_label,
                self.enlarged,
                self.tiles_box,
                W.HTML("<b>Side by side</b>"),
                W.HBox([self.compare_prompt, self.compare_left, self.compare_right]),
                self.compare_box,
                self.out,
            ]
        )

    def _thumb(self, path: str, px: int) -> bytes:
        from .client.images import thumbnail

        key = f"{path}@{px}"
        if key not in self._thumbs:
            self._thumbs[key] = thumbnail(
                Path(path).read_bytes(), max_side=px, max_bytes=50_000 if px <= 400 else 150_000
            )
        return self._thumbs[key]

    def _label(self, row: Mapping[str, Any]) -> str:
        from .presenting import fmt_money, fmt_seconds

        return f"{row['config']} · {fmt_seconds(row.get('total_s'))} · {fmt_money(row.get('cost_usd'))}"

    def visible_rows(self) -> list[dict[str, Any]]:
        """Rows shown under the current filter."""
        return [r for r in self.rows if self.filter.value in ("all", r["config"])]

    def _on_filter(self, change: Any = None) -> None:
        tiles = []
        for row in self.visible_rows():
            image = W.Image(
                value=self._thumb(row["image_path"], self.thumb_px),
                format="jpeg",
                layout=W.Layout(max_width=f"{self.thumb_px}px"),
            )
            button = W.Button(
                description="enlarge", layout=W.Layout(width=f"{self.thumb_px}px"), tooltip=str(row.get("prompt") or "")
            )
            button.on_click(self.out.capture(clear_output=True)(lambda _b, r=row: self.enlarge(r)))
            tiles.append(W.VBox([image, W.HTML(f"<small>{_escape(self._label(row))}</small>"), button]))
        self.tiles = tiles
        self.grid.children = tuple(tiles)

    def enlarge(self, row: Mapping[str, Any]) -> None:
        """Show a bigger (still downscaled) copy of ``row``'s image, and its tiles for a grid."""
        self.enlarged.value = self._thumb(row["image_path"], self.enlarged_px)
        self.enlarged_label.value = f"{_escape(self._label(row))}<br/><i>{_escape(str(row.get('prompt') or ''))}</i>"
        paths = [p for p in (row.get("tile_paths") or []) if isinstance(p, str) and Path(p).is_file()]
        self.tiles_box.children = tuple(W.Image(value=self._thumb(p, self.thumb_px), format="jpeg") for p in paths)

    def _first(self, prompt: str, config: str) -> dict[str, Any] | None:
        for row in self.rows:
            if str(row.get("prompt") or "") == prompt and row["config"] == config:
                return row
        return None

    def _on_compare(self, change: Any = None) -> None:
        boxes = []
        for config in (self.compare_left.value, self.compare_right.value):
            row = self._first(self.compare_prompt.value, config)
            if row is None:
                boxes.append(W.HTML(f"<i>no image for {_escape(config)} with this prompt</i>"))
                continue
            boxes.append(
                W.VBox(
                    [
                        W.Image(value=self._thumb(row["image_path"], 320), format="jpeg"),
                        W.HTML(f"<small>{_escape(self._label(row))}</small>"),
                    ]
                )
            )
        self.compare_box.children = tuple(boxes)


# --------------------------------------------------------------------------- RunExplorer


class RunExplorer(_Panel):
    """Pick runs, a metric and a grouping; see the matching figure and table.

    Figures come from :mod:`nbp_kit.plots`, tables from :mod:`nbp_kit.analysis` (see
    :data:`METRICS`); the explorer only wires the choices to them.

    >>> RunExplorer(store)   # doctest: +SKIP
    """

    def __init__(self, store: Any) -> None:
        self.store = store
        runs = store.runs()
        run_ids = tuple(runs["run_id"]) if len(runs) else ()
        self.runs = W.SelectMultiple(
            options=run_ids, value=run_ids[:1], description="runs", rows=min(6, max(2, len(run_ids)))
        )
        self.metric = W.Dropdown(options=tuple(METRICS), value="attempt latency", description="metric")
        self.grouping = W.Dropdown(options=GROUPINGS, value="config", description="group by")
        self.figure = go.FigureWidget(layout=go.Layout(height=380, margin={"t": 50, "b": 40}))
        self.table = W.Output()
        self.out = W.Output()
        self.summary: pd.DataFrame = pd.DataFrame()
        capture = self.out.capture(clear_output=True)
        for control in (self.runs, self.metric, self.grouping):
            control.observe(capture(self.refresh), names="value")
        self.refresh()
        self.widget = W.VBox(
            [W.HBox([self.runs, W.VBox([self.metric, self.grouping])]), self.figure, self.table, self.out]
        )

    def frame(self) -> pd.DataFrame:
        """The selected runs' attempts."""
        return self.store.attempts(list(self.runs.value))

    def refresh(self, change: Any = None) -> None:
        """Recompute the figure and the table for the current selection."""
        from . import analysis, plots

        frame = self.frame()
        by = CONFIG_COLUMNS if self.grouping.value == "config" else (self.grouping.value,)
        fig_name, table_name = METRICS[self.metric.value]
        if len(frame) == 0:
            fig, self.summary = go.Figure(layout={"title": "no attempts in the selected runs"}), pd.DataFrame()
        else:
            kw = {"latency": "user"} if self.metric.value.startswith("user") else {}
            if fig_name == "latency_box":
                kw = {"latency": "attempt"}
            # For "config", plots label by the config columns that vary (shorter labels).
            fig = getattr(plots, fig_name)(frame, None if self.grouping.value == "config" else by, **kw)
            table_kw = kw if table_name == "summarize" else {}
            self.summary = getattr(analysis, table_name)(frame, by, **table_kw)
        with self.figure.batch_update():
            self.figure.data = []
            for trace in fig.data:
                self.figure.add_trace(trace)
            self.figure.layout = fig.layout
        self.table.clear_output()
        with self.table:  # main thread only: the context manager is safe here
            from IPython.display import display

            display(self.summary)
