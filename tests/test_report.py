"""Write-ups: secret scrubbing, thumbnails, and the demo's HTML report end to end."""

from __future__ import annotations

import base64
import io
import os
import re
import subprocess
import sys
import urllib.parse
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from nbp_kit import report
from nbp_kit.errors import ConfigError

CANARY = "canary-0123456789abcdef"
CANARY_FORMS = (
    CANARY,
    urllib.parse.quote(CANARY, safe=""),
    base64.b64encode(CANARY.encode()).decode(),
    base64.urlsafe_b64encode(CANARY.encode()).decode().rstrip("="),
)


def _noise_png(path: Path, side: int) -> Path:
    # Noise does not compress: the worst case for a thumbnail's byte budget.
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 255, (side, side, 3), dtype=np.uint8)).save(path)
    return path


def test_scrub_secrets_removes_raw_url_and_base64_forms() -> None:
    text = " | ".join(CANARY_FORMS) + " | key=" + CANARY
    clean, count = report.scrub_secrets(text, [CANARY])
    assert count == len(CANARY_FORMS) + 1
    for form in CANARY_FORMS:
        assert form not in clean


def test_scrub_secrets_reads_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NBP_KIT_RELAY_KEY", CANARY)
    clean, count = report.scrub_secrets(f"leak {CANARY}")
    assert count == 1 and CANARY not in clean


def test_scrub_secrets_leaves_key_like_javascript_alone() -> None:
    # plotly.js contains things like key:"somethingLongEnough"; errors.redact would mangle them.
    js = 'var a={key:"abcdefghijklmnopqrstuvwxyz"};'
    assert report.scrub_secrets(js, [CANARY]) == (js, 0)


def test_thumbnails_are_small_and_labelled(tmp_path: Path) -> None:
    import pandas as pd

    big = _noise_png(tmp_path / "big.png", 2048)
    frame = pd.DataFrame(
        [
            {
                "status": "ok",
                "image_path": str(big),
                "resolution": "2K",
                "aspect_ratio": "1:1",
                "thinking_level": None,
                "grid": "1x1",
                "total_s": 1.234,
                "prompt": "a <b>cat</b>",
            },
            {
                "status": "error",
                "image_path": None,
                "resolution": "1K",
                "aspect_ratio": "1:1",
                "thinking_level": None,
                "grid": "1x1",
                "total_s": 0.5,
                "prompt": "x",
            },
            {
                "status": "ok",
                "image_path": str(tmp_path / "gone.png"),
                "resolution": "1K",
                "aspect_ratio": "1:1",
                "thinking_level": None,
                "grid": "1x1",
                "total_s": 0.5,
                "prompt": "y",
            },
        ]
    )
    html = report.thumbnails_html(frame)
    images = re.findall(r'src="data:image/(?:jpeg|png);base64,([^"]+)"', html)
    assert len(images) == 1  # the failed and the missing file are skipped
    raw = base64.b64decode(images[0])
    assert len(raw) <= report.THUMBNAIL_MAX_BYTES
    with Image.open(io.BytesIO(raw)) as im:
        assert max(im.size) <= 240
    assert "2K 1:1 think=default" in html and "1.23 s" in html
    assert "<b>cat</b>" not in html  # prompts are escaped


def test_thumbnails_of_nothing_say_so() -> None:
    assert "No images" in report.thumbnails_html(None)


def test_build_report_refuses_bad_input_before_running(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="run_id="):
        report.build_report("../etc/passwd", store_path=tmp_path / "x.sqlite")
    with pytest.raises(ConfigError, match="store_path="):
        report.build_report("r1", store_path=tmp_path / "missing.sqlite")


def test_open_session_refuses_real_mode_without_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("GEMINI_API_KEY", raising=False)
    with pytest.raises(ConfigError, match="GEMINI_API_KEY"):
        report.open_session("gemini", use_emulator=False)
    with pytest.raises(ConfigError, match="provider="):
        report.open_session("dalle")


def test_environment_names_python_and_packages() -> None:
    env = report.environment()
    assert env["python"].count(".") == 2
    assert env["plotly"] != "not installed"


# --------------------------------------------------------------------------- the demo's write-up


@pytest.fixture(scope="module")
def demo_report(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """Run the README's main command (``nbp-kit demo``) with a canary key in the environment."""
    runs = tmp_path_factory.mktemp("runs")
    env = {**os.environ, "NBP_KIT_RUNS": str(runs), "GEMINI_API_KEY": CANARY, "NBP_KIT_RELAY_KEY": CANARY}
    exe = Path(sys.executable).with_name("nbp-kit")
    cmd = [str(exe)] if exe.exists() else [sys.executable, "-m", "nbp_kit.cli"]
    proc = subprocess.run([*cmd, "demo"], env=env, capture_output=True, text=True, timeout=300)
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output[-3000:]
    paths = re.findall(r"(\S+\.html)", output)
    assert paths, f"demo did not print where the write-up is:\n{output[-2000:]}"
    path = Path(paths[-1])
    assert path.is_file()
    return path, output


def test_demo_writeup_has_figures_thumbnails_and_metadata(demo_report: tuple[Path, str]) -> None:
    path, _ = demo_report
    html = path.read_text(encoding="utf-8")
    # plotly.js embedded exactly once, figures drawn from inline data, nothing fetched.
    assert html.count("window.PlotlyConfig") == 1
    assert html.count("Plotly.newPlot(") >= 2
    assert not re.findall(r'<script[^>]*src="https?://', html)
    # thumbnails are inline, small, and the full images are not.
    thumbs = re.findall(r'src="data:image/(?:jpeg|png);base64,([^"]+)"', html)
    assert thumbs
    assert max(len(base64.b64decode(t)) for t in thumbs) <= report.THUMBNAIL_MAX_BYTES
    # run metadata and environment.
    for needle in ("The answer", "Run metadata", "time scale", "Environment", "plotly"):
        assert needle in html
    assert path.stat().st_size < 12_000_000


def test_demo_writeup_and_output_hold_no_canary(demo_report: tuple[Path, str]) -> None:
    path, output = demo_report
    html = path.read_text(encoding="utf-8")
    for form in CANARY_FORMS:
        assert form not in html
        assert form not in output


def test_summary_table_keeps_only_varying_config_columns() -> None:
    from nbp_kit.analysis.synthetic import synthetic_attempts

    frame = synthetic_attempts(600, seed=0, resolutions=("1K", "2K"), thinking_levels=("low",))
    table = report.summary_table(frame)
    assert table.columns[0] == "resolution" and "thinking_level" not in table
    assert table["resolution"].tolist() == ["1K", "2K"]
    assert bool((table["p50"] <= table["p95"]).all())


def test_session_on_the_emulator_records_calls_and_sweeps(monkeypatch: pytest.MonkeyPatch) -> None:
    from nbp_kit.runs.plan import Plan

    monkeypatch.setenv("GEMINI_API_KEY", CANARY)  # use_emulator=True wins over a key in the environment
    with report.open_session("gemini", use_emulator=True, time_scale=0.02) as session:
        assert session.mode == "emulator" and session.providers == ("gemini", "relay")
        assert "emulator" in session.describe()
        gen = session.client().generate("a teal teapot")
        assert session.store.attempts()["status"].tolist() == ["ok"]  # the client's sink is the store
        shown = report.show_image(gen.image_path)
        assert 0 < len(shown.data) <= report.THUMBNAIL_MAX_BYTES
        result = session.sweep(Plan(prompts=["a dog"], repetitions=2, provider="relay"))
        labelled = report.labelled_attempts(session.store, {"relay run": result.run_id}, column="variant")
        assert labelled["variant"].tolist() == ["relay run", "relay run"]
        assert set(labelled["provider"]) == {"relay"}
        images = session.output_dir
        assert images.is_dir()
    assert not images.exists()  # the temporary image folder goes with the session


# --------------------------------------------------------------------------- the answer and readable text

RAW_REPR = re.compile(r"\{'|\['|': |Timestamp\(|np\.float|dtype|\bNaN\b|\d\.\d{4,}")


def _scaled_frame() -> Any:
    """A synthetic run made to look like an emulator run at time scale 0.02."""
    from nbp_kit.analysis.synthetic import synthetic_attempts

    frame = synthetic_attempts(800, seed=3, resolutions=("1K", "2K"), thinking_levels=("low",))
    scale = 0.02
    for column in ("total_s", "wait_s", "server_generation_s", "server_queue_s"):
        if column in frame:
            frame[column] = frame[column] * scale
    return frame.assign(time_scale=scale, clock="scaled")


def test_answer_facts_are_the_analysis_functions_output() -> None:
    from nbp_kit import analysis, presenting

    frame = _scaled_frame()
    answer = presenting.run_answer(frame, {"provider": "gemini", "time_scale": 0.02})
    real = analysis.real_seconds(frame)
    best = analysis.best_config(real, by=["resolution"]).iloc[0]
    assert answer.recommended["resolution"] == best["resolution"] == "1K"
    assert answer.recommended["p95"] == pytest.approx(best["p95"])
    assert presenting.fmt_seconds(best["p95"]) in answer.recommendation
    assert presenting.fmt_money(best["cost_per_image_usd"]) in answer.recommendation
    # Real-equivalent: a 1K P95 near the article's 25 s, not the scaled 0.5 s.
    assert 10 < best["p95"] < 60
    # The bottleneck of the modelled service: server phases scaled back like total_s.
    assert answer.bottleneck == analysis.bottleneck(presenting.latency_frame(frame))
    assert answer.bottleneck.startswith("The API")
    reference = analysis.compare_reference(frame)
    measured = reference[reference["n"] > 0]
    assert [c.split(": ", 1)[1].rstrip(".") for c in answer.comparison] == measured["verdict"].tolist()
    timeouts = analysis.recommend_timeouts(real, by=["resolution"])
    for line, (_, row) in zip(answer.timeout_advice, timeouts.iterrows(), strict=True):
        assert line.startswith(f"{row['resolution']}: {presenting.fmt_seconds(row['timeout_s'], decimals=0)}")
    effects = analysis.knob_effect(real, "resolution", min_n=10)
    assert answer.effects["verdict"].tolist() == effects["verdict"].tolist()
    text = answer.markdown()
    assert text.startswith("## The answer")
    assert "time scale 0.02" in text and "real-equivalent" in text
    assert text.count("time scale 0.02") == 1  # the scale is stated once
    assert "When in the week" in text  # what a one-hour run cannot say


def test_answer_names_what_the_data_cannot_say_for_small_samples() -> None:
    from nbp_kit import presenting
    from nbp_kit.analysis.synthetic import synthetic_attempts

    frame = synthetic_attempts(60, seed=1, resolutions=("1K",), thinking_levels=("low",), aspect_ratios=("1:1", "16:9"))
    answer = presenting.run_answer(frame, {}, min_n=40)
    assert any("fewer than 40" in u for u in answer.unknowns)
    assert any("too few" in u or "no detectable" in u or "inconclusive" in u for u in answer.unknowns)


def test_tables_and_metadata_have_no_raw_reprs_or_index() -> None:
    from nbp_kit import presenting
    from nbp_kit.runs.plan import Plan

    frame = _scaled_frame()
    answer = presenting.run_answer(frame, {})
    for table in (
        presenting.summary_rows(frame),
        presenting.effects_table(answer.effects),
        presenting.reference_table(answer.reference),
    ):
        html = table.to_html()
        assert len(table) > 0
        assert "<th></th>" not in html  # no index column
        assert not RAW_REPR.search(table.frame.to_string()), table.frame.to_string()
    plan = Plan(
        prompts=["an orange cat on a window sill"],
        resolutions=["1K", "2K"],
        thinking_levels=[None, "low"],
        repetitions=3,
        provider="relay",
    )
    meta = {
        "run_id": "r1",
        "created_at": 1767618000.0,
        "plan": plan.as_dict(),
        "time_scale": 0.02,
        "meta": {
            "concurrency": "adaptive",
            "preflight": {"requests": 12, "est_cost_usd": 0.6, "est_time_s": 3.2},
            "spend_cap_usd": 2.0,
        },
        "cost_usd": 0.5361,
        "tags": [],
    }
    items = dict(presenting.metadata_items(meta))
    assert items["plan: resolutions"] == "1K, 2K"
    assert items["plan: thinking levels"] == "default, low"
    assert items["plan: prompts"] == '1: "an orange cat on a window sill"'
    assert items["recorded cost"] == "$0.536"
    assert items["created"] == "2026-01-05 13:00 UTC"
    assert items["preflight"] == "12 requests, estimated $0.600 and 3.20 s"
    for value in items.values():
        assert not RAW_REPR.search(value), value


def test_load_run_without_a_store_says_how_to_make_one(tmp_path: Path) -> None:
    run = report.load_run("", tmp_path / "none.sqlite")
    assert not run.found
    assert "make demo" in run.headline and "nbp-kit sweep" in run.headline
    assert run.answer() is None and run.metadata_html() == ""


def test_load_run_defaults_to_the_newest_run(tmp_path: Path) -> None:
    from nbp_kit.runs.store import RunStore

    path = tmp_path / "s.sqlite"
    with RunStore(path) as store:
        store.create_run(plan={}, run_id="r-old")
        store.create_run(plan={}, run_id="r-new")
    run = report.load_run("", path)
    assert run.found and run.run_id == "r-new" and "newest" in run.headline
    missing = report.load_run("r-gone", path)
    assert not missing.found and "r-gone" in missing.headline and "r-new" in missing.headline
