"""Batch collection memory: a 1,000-image Batch API job collected with bounded memory.

The emulator (its own process, ``default`` latency profile with a fast batch queue,
``time_scale`` 0.001) runs a file-input job of ``N`` 1K images; a *fresh* child process
(``python -m benchmarks.bench_batch child ...``) submits it with nbp_kit, polls and collects it
into a SQLite store, saving every image. Its peak RSS (``VmHWM``) is compared with its RSS
after imports, for ``N`` = 100 and ``N`` = 1,000 side by side: bounded memory means the peak
does not grow with ``N`` although the results file grows tenfold. Run alone:
``python -m benchmarks.bench_batch [--quick]``.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks._harness import API_KEY, REPO, EmulatorProcess, Section, Target, markdown_table, run_alone, spread


def _status_kb(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


def _child(base_url: str, n: int) -> dict[str, Any]:
    from nbp_kit import Plan
    from nbp_kit.runs.batch import collect_batch, submit_batch, wait_batch
    from nbp_kit.runs.store import RunStore

    with tempfile.TemporaryDirectory() as tmp:
        store = RunStore(Path(tmp) / "runs.sqlite")
        plan = Plan(prompts=[f"catalogue item {i}" for i in range(n)])
        Path("/proc/self/clear_refs").write_text("5")  # reset VmHWM: the peak from here on
        base_kb = _status_kb("VmRSS")
        t0 = time.perf_counter()
        run_id = submit_batch(
            plan,
            base_url=base_url,
            store=store,
            api_key=API_KEY,
            mode="file",
            output_dir=Path(tmp) / "img",
            spend_cap_usd=n * 0.2,
        )
        wait_batch(store, run_id, api_key=API_KEY, poll_s=0.5, max_poll_s=2.0)
        t1 = time.perf_counter()
        status = collect_batch(store, run_id, api_key=API_KEY)
        t2 = time.perf_counter()
        peak_kb = _status_kb("VmHWM")  # before the check below reads every row into a DataFrame
        frame = store.attempts(run_id)
        results_mb = float(frame["bytes_down"].sum()) / 2**20
        return {
            "n": n,
            "ok": int((frame["status"] == "ok").sum()),
            "state": status.state,
            "base_mb": base_kb / 1024,
            "peak_mb": peak_kb / 1024,
            "results_mb": results_mb,
            "wait_s": t1 - t0,
            "collect_s": t2 - t1,
        }


def _run_child(base_url: str, n: int) -> dict[str, Any]:
    out = subprocess.run(
        [sys.executable, "-m", "benchmarks.bench_batch", "child", base_url, str(n)],
        cwd=str(REPO),
        capture_output=True,
        text=True,
        timeout=3600,
        check=False,
    )
    if out.returncode != 0:
        raise RuntimeError(out.stderr[-2000:])
    return json.loads(out.stdout.strip().splitlines()[-1])


def section(*, quick: bool = False) -> Section:
    from nbp_kit.emulator import load_profile

    sizes, reps = ((20, 100), 1) if quick else ((100, 1000), 2)
    profile = {**load_profile("default"), "batch": {"queue_median_s": 60, "queue_sigma": 1.0, "parallel": 64}}
    rows, growth = [], {n: [] for n in sizes}
    t0 = time.perf_counter()
    with EmulatorProcess(profile=profile, time_scale=0.001) as emu:
        for _ in range(reps):
            for n in sizes:
                r = _run_child(emu.base_url, n)
                growth[n].append(r["peak_mb"] - r["base_mb"])
                rows.append(
                    [
                        r["n"],
                        r["ok"],
                        r["state"].removeprefix("BATCH_STATE_"),
                        f"{r['results_mb']:.0f}",
                        f"{r['base_mb']:.0f}",
                        f"{r['peak_mb']:.0f}",
                        f"{r['peak_mb'] - r['base_mb']:.0f}",
                        f"{r['collect_s']:.1f}",
                    ]
                )
    small, large = sizes
    ratio = spread(g_l / max(1.0, g_s) for g_s, g_l in zip(growth[small], growth[large], strict=True))
    sec = Section("batch", "Batch collection memory", intro=__doc__.split("\n\n")[1].replace("\n", " "))
    sec.tables.append(
        markdown_table(
            ["images", "ok", "job", "results MB", "RSS after imports MB", "peak RSS MB", "growth MB", "collect s"], rows
        )
    )
    sec.targets.append(
        Target(
            "batch memory",
            f"peak RSS growth for {large} images <= 1.5 x that for {small} (bounded)",
            f"{ratio.fmt(2)} x; {large} images: peak growth {spread(growth[large]).fmt(0)} MB for "
            f"{max(float(r[3]) for r in rows if r[0] == large):.0f} MB of results",
            ratio.median <= 1.5,
        )
    )
    sec.seconds = time.perf_counter() - t0
    return sec


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "child":
        print(json.dumps(_child(sys.argv[2], int(sys.argv[3]))))
    else:
        run_alone(section, __doc__)
