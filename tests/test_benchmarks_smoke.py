"""The benchmarks' entry point must not rot: its table writer, and one tiny benchmark run
through ``python -m benchmarks --quick`` end to end (emulator in its own process)."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from benchmarks import __main__ as bench_main
from benchmarks._harness import Section, Target, markdown_table, render_document, spread


def test_spread_and_table_writer() -> None:
    s = spread([1.05, 1.01, 1.02])
    assert (s.min, s.median, s.max, s.n) == (1.01, 1.02, 1.05, 3)
    assert s.fmt(2) == "1.02 (1.01-1.05)"
    assert math.isnan(spread([]).median) and spread([]).fmt() == "n/a"
    assert markdown_table(["a", "b|c"], [[1, "x|y"]]).splitlines() == ["| a | b\\|c |", "|---|---|", "| 1 | x\\|y |"]
    sec = Section(
        "k",
        "Title",
        intro="why",
        tables=["| t |\n|---|"],
        targets=[Target("k", "<= 1.02", "1.05", False, "cause"), Target("k", "x", "y", True)],
    )
    doc = render_document([sec], machine={"CPU": "test"}, command="python -m benchmarks", quick=False, wall_s=60)
    assert "| k | <= 1.02 | 1.05 | **missed** | cause |" in doc
    assert "| k | x | y | met |  |" in doc
    assert "## Title" in doc and "| CPU | test |" in doc


@pytest.mark.timeout(60)
def test_quick_per_image_benchmark_writes_a_document(tmp_path: Path) -> None:
    out = tmp_path / "bench.md"
    assert bench_main.main(["--quick", "--only", "per_image", "--out", str(out)]) == 0
    doc = out.read_text()
    assert "QUICK smoke run" in doc and "## Per image vs the physical floor" in doc
    assert "Failed to run" not in doc
    rows = [line for line in doc.splitlines() if line.startswith("| 1K | nbp_kit |")]
    assert len(rows) == 1
    # End-to-end can never beat the physical floor: a ratio below 1 means the floor is wrong.
    ratio = float(rows[0].split("|")[5].split()[0])
    assert 1.0 <= ratio < 3.0, rows[0]
