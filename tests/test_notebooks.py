"""Every notebook, executed against the embedded emulator, with its outputs checked.

Each notebook runs under papermill in a fresh kernel from this venv with small parameters
(and no API key in its environment, so nothing can reach a real service). Checks: no cell
errored; every cell tagged ``expect-image`` displayed an image (image/png, image/jpeg or an
``<img>``); every cell tagged ``expect-figure`` displayed a plotly figure; every plotly figure
anywhere has data; the saved files are small, output-free and match ``notebooks/_build.py``.
"""

from __future__ import annotations

import base64
import importlib.util
import json
import re
from pathlib import Path
from typing import Any

import nbformat
import numpy as np
import pytest

from nbp_kit._paths import NOTEBOOKS_DIR

PLOTLY_MIME = "application/vnd.plotly.v1+json"
NOTEBOOKS = sorted(p.name for p in NOTEBOOKS_DIR.glob("[0-9][0-9]-*.ipynb"))
EXPECTED = [
    "01-quickstart.ipynb",
    "02-resolution-thinking-sweep.ipynb",
    "03-network-phases.ipynb",
    "04-off-peak-windows.ipynb",
    "05-batch-throughput-and-grids.ipynb",
    "06-timeouts-retries-hedging.ipynb",
    "07-provider-comparison.ipynb",
    "08-interactive-vs-batch.ipynb",
    "09-editing-latency.ipynb",
    "10-regions.ipynb",
]
#: Small parameters so the whole set runs in a few minutes on two cores.
TEST_PARAMETERS: dict[str, dict[str, Any]] = {
    "01-quickstart.ipynb": {},
    "02-resolution-thinking-sweep.ipynb": {"resolutions": ["1K", "2K"], "repetitions": 3, "min_n": 3},
    "03-network-phases.ipynb": {"calls_per_client": 3, "calls_per_network": 2},
    "04-off-peak-windows.ipynb": {},  # its defaults: four virtual weeks in about a minute
    "05-batch-throughput-and-grids.ipynb": {
        "concurrency_modes": [1, "adaptive"],
        "requests_per_mode": 6,
        "grid_repetitions": 2,
    },
    "06-timeouts-retries-hedging.ipynb": {"resolutions": ["1K"], "repetitions": 12, "min_n": 5},
    "07-provider-comparison.ipynb": {"resolutions": ["1K"], "repetitions": 4},
    "08-interactive-vs-batch.ipynb": {
        "images_per_job": 3,
        "jobs": 4,
        "interactive_repetitions": 2,
        "queue_median_s": 120,
        "stuck_prob": 0.0,
    },
    "10-regions.ipynb": {},  # the shipped sample; the live path runs in test_regions_notebook_on_a_team_store
    "09-editing-latency.ipynb": {
        "reference_sets": ["0x0", "2x256"],
        "repetitions": 2,
        "turns": 3,
        "slow_link_sets": ["1x128", "2x256"],
    },
}
KEY_VARS = ("GEMINI_API_KEY", "GOOGLE_API_KEY", "NBP_KIT_RELAY_KEY", "NBP_KIT_RELAY_BASE_URL", "OPENAI_API_KEY")


def _load_builder() -> Any:
    spec = importlib.util.spec_from_file_location("_nb_build", NOTEBOOKS_DIR / "_build.py")
    module = importlib.util.module_from_spec(spec)
    assert spec.loader is not None
    spec.loader.exec_module(module)
    return module


def _outputs(cell: Any) -> list[dict[str, Any]]:
    return [o for o in cell.get("outputs", []) if o.get("output_type") in ("display_data", "execute_result")]


def _has_image(cell: Any) -> bool:
    for out in _outputs(cell):
        data = out.get("data", {})
        if "image/png" in data or "image/jpeg" in data:
            return True
        html = data.get("text/html", "")
        html = "".join(html) if isinstance(html, list) else html
        if "<img" in html and "base64," in html:
            return True
    return False


def _figures(cell: Any) -> list[dict[str, Any]]:
    return [o["data"][PLOTLY_MIME] for o in _outputs(cell) if PLOTLY_MIME in o.get("data", {})]


def _numbers(value: Any) -> np.ndarray:
    """A trace attribute as floats: plotly's base64 typed arrays decoded, lists converted,
    anything non-numeric (category labels) as an empty array."""
    if isinstance(value, dict) and "bdata" in value:
        arr = np.frombuffer(base64.b64decode(value["bdata"]), dtype=np.dtype(value["dtype"]))
        shape = value.get("shape")
        if isinstance(shape, str):  # plotly writes "7, 24"
            shape = [int(v) for v in shape.split(",")]
        return arr.reshape(shape) if shape else arr
    if isinstance(value, list):
        try:
            return np.asarray(
                [
                    [np.nan if v is None else v for v in row]
                    if isinstance(row, list)
                    else (np.nan if row is None else row)
                    for row in value
                ],
                dtype=float,
            )
        except (TypeError, ValueError):
            return np.asarray([], dtype=float)
    return np.asarray([], dtype=float)


def _trace_has_data(trace: dict[str, Any]) -> bool:
    """The trace holds at least one finite number (a figure of NaNs draws nothing)."""
    return any(
        np.isfinite(_numbers(trace.get(k)).astype(float)).any() for k in ("y", "z", "median", "q1", "values", "x")
    )


def test_every_topic_notebook_exists() -> None:
    assert NOTEBOOKS == EXPECTED
    assert (NOTEBOOKS_DIR / "report.ipynb").is_file()


@pytest.mark.parametrize("name", [*EXPECTED, "report.ipynb"])
def test_saved_notebook_is_small_output_free_and_generated(name: str) -> None:
    path = NOTEBOOKS_DIR / name
    assert path.stat().st_size < 2_000_000
    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    code_cells = [c for c in nb.cells if c.cell_type == "code"]
    assert all(not c.get("outputs") for c in code_cells)
    tagged = [c for c in code_cells if "parameters" in c.metadata.get("tags", [])]
    assert len(tagged) == 1, "exactly one papermill parameters cell"
    assert path.read_text() == _load_builder().render(name), "run python notebooks/_build.py"


def test_notebooks_define_no_functions() -> None:
    # Notebooks only orchestrate: a function defined in a notebook belongs in the package.
    for name in [*EXPECTED, "report.ipynb"]:
        nb = nbformat.read(NOTEBOOKS_DIR / name, as_version=4)
        for cell in nb.cells:
            if cell.cell_type == "code":
                assert "def " not in cell.source and "class " not in cell.source, name


@pytest.fixture()
def keyless_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    for var in KEY_VARS:
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("NBP_KIT_RUNS", str(tmp_path / "runs"))
    return tmp_path


def _execute(name: str, out_dir: Path, parameters: dict[str, Any]) -> Any:
    import papermill as pm

    out = out_dir / name
    pm.execute_notebook(
        str(NOTEBOOKS_DIR / name),
        str(out),
        parameters=parameters,
        kernel_name="python3",
        progress_bar=False,
        cwd=str(NOTEBOOKS_DIR),
        execution_timeout=240,
    )
    return nbformat.read(out, as_version=4)


def _check_outputs(nb: Any) -> dict[str, int]:
    counts = {"images": 0, "figures": 0}
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        errors = [o for o in cell.get("outputs", []) if o.get("output_type") == "error"]
        assert not errors, f"cell errored: {cell.source[:80]!r}: {errors[0].get('evalue')}"
        tags = cell.metadata.get("tags", [])
        figures = _figures(cell)
        for fig in figures:
            assert fig.get("data"), f"empty figure in {cell.source[:80]!r}"
            assert any(_trace_has_data(t) for t in fig["data"]), f"figure without data in {cell.source[:80]!r}"
        if "expect-image" in tags:
            assert _has_image(cell), f"no image displayed by {cell.source[:80]!r}"
            counts["images"] += 1
        if "expect-figure" in tags:
            assert figures, f"no plotly figure displayed by {cell.source[:80]!r}"
            counts["figures"] += 1
        # Thumbnails only: nothing inline is bigger than ~50 KB of image.
        for out in _outputs(cell):
            for mime in ("image/png", "image/jpeg"):
                if mime in out.get("data", {}):
                    assert len(out["data"][mime]) * 3 / 4 <= 52_000
    return counts


@pytest.mark.parametrize("name", EXPECTED)
def test_notebook_executes_against_the_emulator(name: str, keyless_env: Path) -> None:
    nb = _execute(
        name,
        keyless_env,
        {"use_emulator": True, **TEST_PARAMETERS[name]}
        if name != "04-off-peak-windows.ipynb"
        else TEST_PARAMETERS[name],
    )
    counts = _check_outputs(nb)
    wanted = _load_builder().NOTEBOOKS[name]
    n_fig = sum("expect-figure" in c.get("metadata", {}).get("tags", []) for c in wanted)
    n_img = sum("expect-image" in c.get("metadata", {}).get("tags", []) for c in wanted)
    assert counts == {"images": n_img, "figures": n_fig}
    assert n_fig >= 1
    # The executed notebook stays small enough to keep or share.
    assert len(json.dumps(nb)) < 12_000_000
    if name == "04-off-peak-windows.ipynb":
        _check_offpeak_findings(nb)


def _check_offpeak_findings(nb: Any) -> None:
    """Notebook 04 with its defaults: every weekday cell of the heatmap holds a median, and the
    emulator's weekday 13:00-18:00 UTC slow window is among the recommended windows."""
    heatmaps = [
        f
        for c in nb.cells
        if c.cell_type == "code"
        for f in _figures(c)
        if f["data"] and f["data"][0].get("type") == "heatmap"
    ]
    assert len(heatmaps) == 1
    z = _numbers(heatmaps[0]["data"][0]["z"]).astype(float)
    assert z.shape == (7, 24)
    assert np.isfinite(z[:5]).all(), f"empty weekday cells: {int((~np.isfinite(z[:5])).sum())}"
    peaks = re.findall(r"<td>peak</td>\s*<td>(\d\d):00-(\d\d):00 UTC</td>", _text_outputs(nb))
    assert peaks, "no peak window found"
    slow = set(range(13, 18))
    assert any(
        set(range(int(a), int(b))) & slow and set(range(int(a), int(b))) <= set(range(12, 19)) for a, b in peaks
    ), peaks


def test_report_notebook_executes_on_a_stored_run(keyless_env: Path, emulator: Any) -> None:
    from nbp_kit.runs import Plan, run_sweep
    from nbp_kit.runs.store import RunStore

    store_path = keyless_env / "store.sqlite"
    store = RunStore(store_path)
    result = run_sweep(
        Plan(prompts=["a teal teapot"], resolutions=["1K", "2K"], repetitions=2),
        emulator,
        store=store,
        output_dir=keyless_env / "images",
        progress=False,
    )
    store.close()
    nb = _execute("report.ipynb", keyless_env, {"run_id": result.run_id, "store_path": str(store_path)})
    counts = _check_outputs(nb)
    assert counts["images"] == 1 and counts["figures"] == 2
    text = json.dumps(nb)
    assert result.run_id in text


def test_regions_notebook_on_a_team_store(keyless_env: Path, pg_url: str) -> None:
    # The live path: a shared run made in the kernel, drained by three workers, then compared.
    nb = _execute("10-regions.ipynb", keyless_env, {"store_url": pg_url, "repetitions": 4, "min_n": 2})
    counts = _check_outputs(nb)
    assert counts["figures"] == 2
    text = json.dumps(nb)
    assert "made here" in text and "ap-south" in text


def _text_outputs(nb: Any) -> str:
    parts = []
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            if out.get("output_type") == "stream":
                parts.append(out.get("text", ""))
            for mime in ("text/markdown", "text/html", "text/plain"):
                value = out.get("data", {}).get(mime)
                if value:
                    parts.append("".join(value) if isinstance(value, list) else value)
    return "\n".join(parts)


def test_report_template_alone_without_a_store_says_how_to_make_one(keyless_env: Path) -> None:
    # NBP_KIT_RUNS points at an empty folder: no default store exists.
    nb = _execute("report.ipynb", keyless_env, {})
    errors = [o for c in nb.cells for o in c.get("outputs", []) if o.get("output_type") == "error"]
    assert not errors, errors[0].get("evalue")
    text = _text_outputs(nb)
    assert "No run store" in text and "make demo" in text and "nbp-kit sweep" in text
    assert "Traceback" not in text and "StoreError" not in text


def test_report_template_alone_reports_the_newest_run(keyless_env: Path, emulator: Any) -> None:
    from nbp_kit.runs import Plan, run_sweep
    from nbp_kit.runs.store import RunStore

    store_path = keyless_env / "runs" / "nbp_kit.sqlite"  # the default store under NBP_KIT_RUNS
    store_path.parent.mkdir(parents=True)
    store = RunStore(store_path)
    run_sweep(
        Plan(prompts=["a first run"], repetitions=1),
        emulator,
        store=store,
        output_dir=keyless_env / "images",
        progress=False,
    )
    newest = run_sweep(
        Plan(prompts=["a teal teapot"], resolutions=["1K", "2K"], repetitions=2),
        emulator,
        store=store,
        output_dir=keyless_env / "images",
        progress=False,
    )
    store.close()
    nb = _execute("report.ipynb", keyless_env, {})
    counts = _check_outputs(nb)
    assert counts["images"] == 1 and counts["figures"] == 2
    text = _text_outputs(nb)
    assert f"Run `{newest.run_id}`" in text and "(the newest in the store)" in text
    assert "## The answer" in text and "Recommended configuration" in text
