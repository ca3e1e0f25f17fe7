"""Write the notebooks from their source below: ``python notebooks/_build.py``.

Notebooks are stored without outputs; keeping their text here makes reviews readable
(diffs of Python, not JSON) and keeps every notebook to the same shape: a title, one
``parameters`` cell (papermill), calls into the package, and prose for the reader.
``tests/test_notebooks.py`` checks the saved files match this source.
"""

from __future__ import annotations

import sys
from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

HERE = Path(__file__).resolve().parent

_SETUP = """\
from nbp_kit import report
report.use_inline_plotly()  # figures work offline, in Jupyter and in exported HTML
"""

_SESSION = """\
session = report.open_session(provider, use_emulator=use_emulator, time_scale=time_scale)
print(session.describe())
"""


def md(text: str) -> nbformat.NotebookNode:
    return new_markdown_cell(text.strip("\n"))


def code(text: str) -> nbformat.NotebookNode:
    return new_code_cell(text.strip("\n"))


def params(text: str) -> nbformat.NotebookNode:
    cell = new_code_cell(text.strip("\n"))
    cell.metadata["tags"] = ["parameters"]
    return cell


NOTEBOOKS: dict[str, list[nbformat.NotebookNode]] = {}

# --------------------------------------------------------------------------- report
NOTEBOOKS["report.ipynb"] = [
    md("""
# nbp_kit run report

A reproducible write-up of one run: what was asked, how long each configuration took and
where the time went, a few of the images, and the environment that produced the numbers.
Regenerate it with `nbp-kit report RUN_ID`.
"""),
    params("""
run_id = ""       # the run to report on
store_path = ""   # the run store (SQLite); empty means the default store
"""),
    code(_SETUP + """
from IPython.display import HTML, Markdown, display
from nbp_kit import analysis, plots
from nbp_kit.store import RunStore

store = RunStore(store_path or report.default_store_path(), read_only=True)
frame = store.attempts([run_id])
meta = report.run_metadata(store, run_id)
display(Markdown(f"**Run `{run_id}`**: {meta['attempts']} attempts, {meta.get('ok', 0)} succeeded."))
"""),
    md("""
## Run metadata
What was measured, against which host and clock. Against the emulator, `clock` says
`scaled` and `time_scale` gives the factor: the latencies are the emulator's model, not the real service's.
"""),
    code("""
report.metadata_table(meta)
"""),
    md("""
## Latency by configuration
Each row is one configuration; the percentiles come with bootstrap confidence intervals.
Look at the P95 column: that is what your users wait for on a bad day.
"""),
    code("""
summary = analysis.summarize(frame)
summary
"""),
    code("""
plots.latency_by_config(frame)
"""),
    md("""
## Where the time goes
The phase split of successful attempts: `wait` is the server generating (plus one round trip),
`download` the image transfer, the rest is client set-up and processing.
"""),
    code("""
plots.phase_breakdown(frame)
"""),
    md("""
## Images
A few of the run's images as small thumbnails (never the full files), labelled with their
configuration and latency.
"""),
    code("""
HTML(report.thumbnails_html(frame, limit=8))
"""),
    md("""
## Environment
"""),
    code("""
report.metadata_table(report.environment())
"""),
]


def build(names: list[str] | None = None) -> list[Path]:
    """Write the named notebooks (all by default); returns the paths written."""
    written = []
    for name, cells in NOTEBOOKS.items():
        if names and name not in names:
            continue
        nb = new_notebook(cells=cells)
        nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3 (ipykernel)", "language": "python"}
        nb.metadata["language_info"] = {"name": "python"}
        # Stable cell ids keep re-generated files identical (clean diffs).
        for i, cell in enumerate(nb.cells):
            cell["id"] = f"{Path(name).stem.replace('.', '-')}-{i:02d}"
        path = HERE / name
        text = nbformat.writes(nb) + "\n"
        if not path.exists() or path.read_text() != text:
            path.write_text(text)
        written.append(path)
    return written


if __name__ == "__main__":
    for p in build(sys.argv[1:] or None):
        print(p.relative_to(HERE.parent))
