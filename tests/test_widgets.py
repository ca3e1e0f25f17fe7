"""Widgets, headless: build the panels, set values, click, and assert on traits and the store."""

from __future__ import annotations

import re
import threading
from pathlib import Path
from typing import Any

import pytest

from nbp_kit.runs.store import RunStore
from nbp_kit.widgets import DEFAULT_THINKING, Gallery, RunExplorer, SweepPanel


@pytest.fixture()
def emu(emulator: Any) -> Any:
    """The session emulator from conftest (loopback, time_scale 0.02, no faults or quotas)."""
    return emulator


@pytest.fixture()
def store() -> RunStore:
    return RunStore.memory()


def _panel(emu: Any, store: RunStore, tmp_path: Path, **kw: Any) -> SweepPanel:
    return SweepPanel(emu, store=store, sweep_options={"output_dir": tmp_path}, **kw)


def test_thinking_levels_follow_capabilities(emu: Any, store: RunStore, tmp_path: Path) -> None:
    panel = _panel(emu, store, tmp_path)
    panel.provider.value = "gemini"
    panel.model.value = "gemini-3-pro-image-preview"
    assert panel.thinking_levels.options == (DEFAULT_THINKING,)  # Pro documents no thinkingLevel
    panel.model.value = "gemini-3.1-flash-image-preview"
    assert panel.thinking_levels.options == (DEFAULT_THINKING, "minimal", "high")
    panel.thinking_levels.value = ("high",)
    panel.model.value = "gemini-3-pro-image-preview"
    assert panel.thinking_levels.value == (DEFAULT_THINKING,)  # an unsupported choice is dropped
    panel.provider.value = "relay"
    assert "low" in panel.thinking_levels.options


def test_estimate_updates_and_guards_the_cap(emu: Any, store: RunStore, tmp_path: Path) -> None:
    panel = _panel(emu, store, tmp_path)
    panel.prompts.value = "a cat\na dog"
    panel.resolutions.value = ("1K", "4K")
    panel.repetitions.value = 2
    assert "8 requests" in panel.estimate.value
    assert panel.run_button.disabled is False
    panel.spend_cap.value = 0.1  # below one image's price
    assert "spend cap" in panel.estimate.value
    assert panel.run_button.disabled is True
    panel.spend_cap.value = 5.0
    panel.prompts.value = "   "
    assert "prompts=" in panel.estimate.value and panel.run_button.disabled is True


def test_run_completes_a_sweep_into_the_store(emu: Any, store: RunStore, tmp_path: Path) -> None:
    panel = _panel(emu, store, tmp_path)
    panel.prompts.value = "an orange cat\na blue bicycle"
    panel.resolutions.value = ("1K", "2K")
    panel.repetitions.value = 2
    panel.concurrency.value = "4"
    panel.run_button.click()
    assert panel.running and panel.stop_button.disabled is False
    result = panel.wait(120)
    assert panel.error is None
    assert result.ok == 8 and result.stopped_reason == "completed"
    frame = store.attempts([result.run_id])
    assert (frame["status"] == "ok").sum() == 8
    assert panel.progress.value == panel.progress.max == 8
    # The live figure holds one latency per successful call, labelled by config, appended in
    # batches (each trace is one batch: points already drawn are never re-sent).
    ys = [y for trace in panel.figure.data for y in trace.y]
    xs = {x for trace in panel.figure.data for x in trace.x}
    assert len(ys) == 8 and sum(len(v) for v in panel.points.values()) == 8
    assert xs == {"1K 1:1 think=default", "2K 1:1 think=default"}
    # Real-equivalent seconds: the emulator runs at time scale 0.02, a 1K image models ~17 s.
    assert min(ys) > 3.0, ys
    assert panel.figure.layout.yaxis.title.text == "latency (real-equivalent s)"
    assert "completed" in panel.status.value
    assert panel.stop_button.disabled is True and panel.run_button.disabled is False


def test_stop_cancels_cleanly(emu: Any, store: RunStore, tmp_path: Path) -> None:
    panel = _panel(emu, store, tmp_path)
    panel.prompts.value = "a slow lighthouse"
    panel.resolutions.value = ("1K",)
    panel.repetitions.value = 200
    panel.concurrency.value = "1"
    panel.spend_cap.value = 100.0
    first = threading.Event()
    panel.progress.observe(lambda change: first.set() if change["new"] >= 1 else None, names="value")
    panel.run_button.click()
    assert first.wait(60), "no progress from the sweep"
    panel.stop_button.click()
    result = panel.wait(60)
    assert result.stopped_reason == "stopped"
    assert 1 <= result.calls < 200
    frame = store.attempts([result.run_id])
    assert not (frame["status"] == "started").any()  # nothing left half-recorded
    assert panel.running is False


def test_gallery_lists_filters_enlarges_and_compares(emu: Any, store: RunStore, tmp_path: Path) -> None:
    panel = _panel(emu, store, tmp_path)
    panel.prompts.value = "a red kite"
    panel.resolutions.value = ("1K", "2K")
    panel.repetitions.value = 2
    panel.run_button.click()
    run_id = panel.wait(120).run_id

    gallery = Gallery(store, run_ids=[run_id])
    ok = store.attempts([run_id], status="ok")
    assert len(gallery.rows) == len(ok) == 4
    assert len(gallery.tiles) == 4 and len(gallery.grid.children) == 4
    label = gallery.tiles[0].children[1].value
    assert "think=default" in label and " s" in label and "$" in label  # latency and cost
    latency = float(re.search(r"· ([\d.]+) s ·", label).group(1))
    assert latency > 3.0  # real-equivalent seconds, not the emulator's scaled 0.3 s
    for tile in gallery.tiles:
        assert 0 < len(tile.children[0].value) <= 50_000  # thumbnails, not the full images

    gallery.filter.value = "2K 1:1 think=default"
    assert len(gallery.tiles) == 2

    gallery.tiles[0].children[2].click()  # "enlarge"
    assert 0 < len(gallery.enlarged.value) <= 150_000
    assert "2K" in gallery.enlarged_label.value

    gallery.compare_prompt.value = "a red kite"
    gallery.compare_left.value = "1K 1:1 think=default"
    gallery.compare_right.value = "2K 1:1 think=default"
    assert len(gallery.compare_box.children) == 2
    assert all(len(box.children[0].value) > 0 for box in gallery.compare_box.children)


def test_run_explorer_shows_figure_and_table(emu: Any, store: RunStore, tmp_path: Path) -> None:
    panel = _panel(emu, store, tmp_path)
    panel.prompts.value = "a green teapot"
    panel.resolutions.value = ("1K", "2K")
    panel.repetitions.value = 3
    panel.run_button.click()
    run_id = panel.wait(120).run_id

    explorer = RunExplorer(store)
    assert explorer.runs.value == (run_id,)
    # One box per config, drawn from the run's data.
    assert [t.type for t in explorer.figure.data] == ["box", "box"]
    assert all(t.median[0] > 0 for t in explorer.figure.data)
    assert len(explorer.summary) == 2 and set(explorer.summary["n"]) == {3}  # one row per config
    explorer.grouping.value = "resolution"
    explorer.metric.value = "phase split"
    assert set(explorer.summary["resolution"]) == {"1K", "2K"}
    assert {"server_share", "network_share"} <= set(explorer.summary.columns)
    assert len(explorer.figure.data) >= 2 and explorer.figure.layout.barmode == "stack"


def test_live_figure_appends_batches_without_resending(emu: Any, store: RunStore, tmp_path: Path) -> None:
    panel = _panel(emu, store, tmp_path)
    panel.batch_points = 3
    panel.flush_every_s = 3600.0  # batches by size only, so their count is known
    panel.prompts.value = "a tin robot"
    panel.resolutions.value = ("1K",)
    panel.repetitions.value = 7
    panel.concurrency.value = "1"
    panel.run_button.click()
    assert panel.wait(120).ok == 7
    sizes = [len(trace.y) for trace in panel.figure.data]
    assert sizes == [1, 3, 3]  # the first point at once, then full batches of 3 (never all points again)


def test_sweep_panel_controls_fill_their_column() -> None:
    panel = SweepPanel({"provider": "relay", "base_url": "http://127.0.0.1:9"}, store=RunStore.memory())
    assert "minmax(" in panel.form.layout.grid_template_columns  # columns wrap instead of overlapping
    for control in (
        panel.provider,
        panel.model,
        panel.resolutions,
        panel.thinking_levels,
        panel.aspect_ratios,
        panel.prompts,
        panel.repetitions,
    ):
        assert control.layout.width == "100%" and control.layout.min_width == "0"
