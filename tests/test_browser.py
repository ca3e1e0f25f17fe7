"""The notebooks as users see them: a real JupyterLab driven by a real Chromium.

JupyterLab runs on loopback with a token, over a temporary copy of ``notebooks/``; Playwright
drives Debian's Chromium through ``executable_path`` (no browser download). Each step saves a
screenshot under ``test-artifacts/browser/``.

Chromium is installed by ``scripts/ensure-browser`` (``make test`` runs it). Only a machine
where it is missing *and* cannot be installed (not root) skips these tests, saying so.
"""

from __future__ import annotations

import os
import re
import secrets
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx2
import pytest

pytestmark = pytest.mark.browser

ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS = ROOT / "test-artifacts" / "browser"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
CELL_TIMEOUT_MS = 240_000
#: Images a cell displayed: image/png outputs and <img> inside HTML outputs (thumbnails).
OUTPUT_IMAGES = ".jp-OutputArea-output.jp-RenderedImage img, .jp-OutputArea-output.jp-RenderedHTMLCommon img"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _ensure_chromium() -> None:
    if Path(CHROMIUM).exists():
        return
    if os.geteuid() != 0:
        pytest.skip("chromium is not installed and this user cannot install it (run scripts/ensure-browser as root)")
    subprocess.run(["bash", str(ROOT / "scripts" / "ensure-browser")], check=True)


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """A JupyterLab server over a copy of the notebooks; yields its URL and token."""
    _ensure_chromium()
    work = tmp_path_factory.mktemp("lab")
    shutil.copytree(ROOT / "notebooks", work / "notebooks")
    settings = work / "settings" / "@jupyterlab" / "apputils-extension"
    settings.mkdir(parents=True)
    (settings / "notification.jupyterlab-settings").write_text('{"fetchNews": "false", "checkForUpdates": false}')
    token = os.environ.get("NBP_KIT_LAB_TOKEN") or secrets.token_hex(16)
    port = _free_port()
    env = {
        **os.environ,
        "NBP_KIT_RUNS": str(work / "runs"),
        "JUPYTERLAB_SETTINGS_DIR": str(work / "settings"),
        "JUPYTER_RUNTIME_DIR": str(work / "runtime"),
    }
    for key in ("GEMINI_API_KEY", "NBP_KIT_RELAY_KEY", "NBP_KIT_RELAY_BASE_URL"):
        env.pop(key, None)  # the notebooks must run against the embedded emulator here
    log = open(work / "lab.log", "w")
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "jupyterlab",
            "--no-browser",
            "--ip=127.0.0.1",
            f"--port={port}",
            f"--IdentityProvider.token={token}",
            f"--ServerApp.root_dir={work / 'notebooks'}",
            "--allow-root",
            "--ServerApp.open_browser=False",
        ],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        cwd=work,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 90
    while True:
        try:
            if (
                httpx2.get(f"{url}/api/status", headers={"Authorization": f"token {token}"}, timeout=2).status_code
                == 200
            ):
                break
        except httpx2.HTTPError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            pytest.fail(f"JupyterLab did not start; log:\n{(work / 'lab.log').read_text()[-3000:]}")
        time.sleep(0.3)
    try:
        yield {"url": url, "token": token, "dir": str(work / "notebooks")}
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


@pytest.fixture(scope="module")
def chromium() -> Iterator[object]:
    """One headless Chromium for the module (one Playwright per thread: tests share it)."""
    from playwright.sync_api import sync_playwright

    _ensure_chromium()
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        try:
            yield b
        finally:
            b.close()


@pytest.fixture(scope="module")
def browser(lab: dict[str, str], chromium: object) -> object:
    return chromium


def _shot(page: object, name: str) -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)  # type: ignore[attr-defined]
    return path


def open_and_run_all(browser: object, lab: dict[str, str], notebook: str) -> object:
    """Open a notebook in JupyterLab, run all cells, wait until every code cell has run."""
    page = browser.new_page(viewport={"width": 1400, "height": 1000})  # type: ignore[attr-defined]
    page.set_default_timeout(CELL_TIMEOUT_MS)
    # a workspace of its own, reset, so no other notebook is restored beside this one
    workspace = notebook.replace(".ipynb", "").replace(".", "-")
    page.goto(f"{lab['url']}/lab/workspaces/{workspace}/tree/{notebook}?reset&token={lab['token']}")
    page.wait_for_selector(".jp-NotebookPanel .jp-CodeCell")
    page.wait_for_selector("text=Python 3 (ipykernel) | Idle")
    page.click(".lm-MenuBar-itemLabel:text-is('Run')")
    page.click(".lm-Menu-itemLabel:text-is('Run All Cells')")
    page.wait_for_function(
        """() => {
            const panel = document.querySelector('.jp-NotebookPanel:not(.lm-mod-hidden)');
            const prompts = [...panel.querySelectorAll('.jp-CodeCell .jp-InputPrompt')];
            const running = prompts.some(p => p.textContent.includes('*'));
            const allRan = prompts.length > 0 && prompts.every(p => /\\[\\d+\\]/.test(p.textContent));
            const failed = panel.querySelector('.jp-OutputArea-output[data-mime-type="application/vnd.jupyter.stderr"]') !== null
                && [...panel.querySelectorAll('.jp-OutputArea-output')].some(o => o.textContent.includes('Traceback'));
            return allRan || (failed && !running);
        }""",
        timeout=CELL_TIMEOUT_MS,
        polling=500,
    )
    page.wait_for_selector("text=Python 3 (ipykernel) | Idle")
    return page


def page_problems(page: object) -> list[str]:
    """Errors a user would see: tracebacks in outputs, widgets that failed to render."""
    problems = []
    tracebacks = page.locator(".jp-OutputArea-output:has-text('Traceback')").count()  # type: ignore[attr-defined]
    if tracebacks:
        problems.append(f"{tracebacks} cell output(s) show a traceback")
    widget_errors = page.locator("text=Error displaying widget").count()  # type: ignore[attr-defined]
    if widget_errors:
        problems.append(f"{widget_errors} widget(s) failed to display")
    return problems


def loaded_images(page: object, selector: str) -> list[int]:
    """Natural widths of the images matching ``selector`` (0 means it did not load)."""
    return page.eval_on_selector_all(selector, "els => els.map(e => e.naturalWidth)")  # type: ignore[attr-defined]


def drawn_traces(page: object) -> int:
    return page.locator(
        ".jp-OutputArea-output.js-plotly-plot .trace, .jp-OutputArea-output .js-plotly-plot .trace"
    ).count()  # type: ignore[attr-defined]


def test_quickstart_shows_image_and_figures(browser: object, lab: dict[str, str]) -> None:
    page = open_and_run_all(browser, lab, "01-quickstart.ipynb")
    _shot(page, "01-quickstart")
    assert page_problems(page) == []
    widths = loaded_images(page, OUTPUT_IMAGES)
    assert widths and all(w > 0 for w in widths), widths
    assert drawn_traces(page) > 0
    page.close()  # type: ignore[attr-defined]


def test_sweep_notebook_panel_runs_and_gallery_shows(browser: object, lab: dict[str, str]) -> None:
    page = open_and_run_all(browser, lab, "02-resolution-thinking-sweep.ipynb")
    _shot(page, "02-sweep-after-run-all")
    assert page_problems(page) == []
    assert drawn_traces(page) > 0

    panels = page.locator(".jp-OutputArea-output:has(.widget-button:has-text('Run'))")  # type: ignore[attr-defined]
    assert panels.count() >= 1, "the SweepPanel did not render (is the widget front-end installed?)"
    panel = panels.last
    panel.scroll_into_view_if_needed()
    assert panel.locator(".widget-button:has-text('Stop')").count() == 1
    assert panel.locator(".widget-select-multiple").count() >= 2  # resolutions, thinking, aspect ratios
    points_before = panel.locator(".js-plotly-plot .point").count()
    _shot(page, "02-sweep-panel-before")

    _assert_panel_fits(page, panel)

    panel.locator(".widget-button:has-text('Run')").click()
    # progress advances: the bar's width grows past zero, then the live figure gains points
    page.wait_for_function(
        """(el) => { const bar = el.querySelector('.progress-bar');
                    return bar && parseFloat(bar.style.width || '0') > 0; }""",
        arg=panel.element_handle(),
        timeout=CELL_TIMEOUT_MS,
    )
    page.wait_for_function(
        """([el, before]) => el.querySelectorAll('.js-plotly-plot .point').length > before""",
        arg=[panel.element_handle(), points_before],
        timeout=CELL_TIMEOUT_MS,
    )
    _shot(page, "02-sweep-panel-running")
    assert page_problems(page) == []

    gallery_images = page.locator(".jp-OutputArea-output .widget-image")
    assert gallery_images.count() > 0
    gallery_images.first.scroll_into_view_if_needed()
    widths = loaded_images(page, ".jp-OutputArea-output .widget-image")
    assert sum(w > 0 for w in widths) >= 2, widths  # thumbnails (the empty 'enlarged' slot is 0)
    _shot(page, "02-gallery")
    page.close()  # type: ignore[attr-defined]


def test_detector_sees_a_failing_cell(browser: object, lab: dict[str, str]) -> None:
    """The checks above would catch an erroring cell: run one and look."""
    import nbformat

    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3 (ipykernel)", "language": "python"}
    nb.cells = [nbformat.v4.new_code_cell("raise RuntimeError('this cell fails on purpose')")]
    nbformat.write(nb, Path(lab["dir"]) / "zz-failing.ipynb")
    page = open_and_run_all(browser, lab, "zz-failing.ipynb")
    _shot(page, "detector-failing-cell")
    assert page_problems(page) == ["1 cell output(s) show a traceback"]
    page.close()  # type: ignore[attr-defined]


#: Every control of the SweepPanel, as JupyterLab renders it.
_PANEL_CONTROLS = ".widget-dropdown, .widget-select-multiple, .widget-textarea, .widget-text, .widget-button"


def _assert_panel_fits(page: object, panel: object) -> None:
    """At 1280x800 every control of the panel lies inside the panel's grid, its columns do not
    overlap, and no control is wider than the box it is drawn in (nothing clipped)."""
    page.set_viewport_size({"width": 1280, "height": 800})  # type: ignore[attr-defined]
    page.wait_for_timeout(500)  # type: ignore[attr-defined]  # let JupyterLab re-lay out
    grid = panel.locator(".widget-gridbox").first  # type: ignore[attr-defined]
    grid.scroll_into_view_if_needed()
    report = grid.evaluate(
        """(grid, selector) => {
            const box = grid.getBoundingClientRect();
            const columns = [...grid.children].map(c => c.getBoundingClientRect());
            const out = [];
            for (const el of grid.querySelectorAll(selector)) {
                const r = el.getBoundingClientRect();
                if (r.width === 0) continue;
                const label = (el.textContent || el.className).trim().slice(0, 40);
                if (r.left < box.left - 1 || r.right > box.right + 1) out.push(`outside the panel: ${label}`);
                if (el.scrollWidth > el.clientWidth + 1) out.push(`clipped inside: ${label}`);
                const inner = el.querySelector('select, textarea, input');
                if (inner && inner.getBoundingClientRect().right > r.right + 1) out.push(`input overflows: ${label}`);
            }
            for (let i = 1; i < columns.length; i++) {
                const a = columns[i - 1], b = columns[i];
                const sameRow = a.top < b.bottom && b.top < a.bottom;
                if (sameRow && a.right > b.left + 1) out.push(`columns overlap by ${a.right - b.left}px`);
            }
            return {problems: out, width: box.width, controls: grid.querySelectorAll(selector).length};
        }""",
        _PANEL_CONTROLS,
    )
    _shot(page, "02-sweep-panel-1280x800")
    assert report["controls"] >= 8, report
    assert report["problems"] == [], report


# --------------------------------------------------------------------------- the write-up in a browser


@pytest.fixture(scope="module")
def report_html(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A write-up of a small emulator sweep, built as `nbp-kit report` builds it."""
    from nbp_kit import emulator as _emulator
    from nbp_kit.report import build_report
    from nbp_kit.runs import Plan, run_sweep
    from nbp_kit.runs.store import RunStore

    _ensure_chromium()
    work = tmp_path_factory.mktemp("report")
    emu = _emulator.start(profile="default", time_scale=0.02, faults=False, quotas=False)
    try:
        with RunStore(work / "store.sqlite") as store:
            result = run_sweep(
                Plan(prompts=["a teal teapot"], resolutions=["1K", "2K"], repetitions=3),
                emu,
                store=store,
                output_dir=work / "images",
                progress=False,
            )
    finally:
        emu.stop()
    return build_report(result.run_id, store_path=work / "store.sqlite", out_dir=work)


def test_report_reads_well_in_chromium(report_html: Path, chromium: object) -> None:
    html = report_html.read_text(encoding="utf-8")
    expected_figures = html.count("Plotly.newPlot(")
    assert expected_figures >= 2
    page = chromium.new_page(viewport={"width": 1280, "height": 800})  # type: ignore[attr-defined]
    try:
        page.set_default_timeout(60_000)
        page.goto(report_html.as_uri())
        page.wait_for_function(f"document.querySelectorAll('.js-plotly-plot .main-svg').length >= {expected_figures}")
        _shot(page, "report")
        text = page.inner_text("body")
        # The answer comes first, in words.
        assert "The answer" in text and "Recommended configuration" in text and "Timeout to use" in text
        assert text.index("The answer") < text.index("The evidence") < text.index("Run metadata")
        # No raw Python reprs, no long floats, no "{'prompts': [...]}".
        for raw in ("{'", "['", "': [", "Timestamp(", "dtype"):
            assert raw not in text, raw
        assert not re.search(r"\d\.\d{5,}", text), re.search(r".{30}\d\.\d{5,}.{10}", text)
        # Every figure is drawn with data: traces in each plot.
        traces = page.eval_on_selector_all(
            ".js-plotly-plot", "els => els.map(e => e.querySelectorAll('.trace').length)"
        )
        assert len(traces) == expected_figures and all(n > 0 for n in traces), traces
        # The environment is folded away until asked for.
        assert page.locator("details:has-text('Environment')").count() == 1
        assert not page.locator("details:has-text('Environment')").evaluate("d => d.open")
        # Thumbnails loaded.
        widths = page.eval_on_selector_all("img", "els => els.map(e => e.naturalWidth)")
        assert widths and all(w > 0 for w in widths)
    finally:
        page.close()
