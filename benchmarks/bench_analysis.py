"""Analysis at scale: summary + hour-of-week heatmap over a million synthetic attempts.

Not a test: a script that prints a Markdown table. Target (issue 5): summary + heatmap in at
most 3 s on this machine, figure JSON at most 1 MB. Each step is timed ``--repeat`` times and
the best run reported (the machine is shared; the best run is the least disturbed one)::

    .venv/bin/python benchmarks/bench_analysis.py --rows 1000000
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from typing import Any

from nbp_kit import analysis, plots
from nbp_kit.analysis.synthetic import synthetic_attempts


def _best(fn: Callable[[], Any], repeat: int) -> tuple[float, Any]:
    best, out = float("inf"), None
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
    return best, out


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)

    gen_s, df = _best(lambda: synthetic_attempts(args.rows, seed=args.seed), args.repeat)
    steps: list[tuple[str, float, str]] = [("synthetic_attempts (generate)", gen_s, f"{len(df):,} rows")]
    att_s, s_att = _best(lambda: analysis.summarize(df, latency="attempt"), args.repeat)
    steps.append(("summarize, attempt latency", att_s, f"{len(s_att)} configs"))
    both_s, s_both = _best(lambda: analysis.summarize(df), args.repeat)
    steps.append(("summarize, attempt + user latency", both_s, f"{len(s_both)} rows"))
    heat_s, fig = _best(lambda: plots.hour_of_week_heatmap(df), args.repeat)
    size = len(fig.to_json())
    steps.append(("hour_of_week_heatmap", heat_s, f"figure JSON {size / 1e3:.1f} kB"))
    win_s, w = _best(lambda: analysis.offpeak_windows(df), args.repeat)
    steps.append(("offpeak_windows", win_s, f"{len(w)} windows"))
    ecdf_s, ecdf = _best(lambda: plots.latency_ecdf(df), args.repeat)
    steps.append(("latency_ecdf", ecdf_s, f"figure JSON {len(ecdf.to_json()) / 1e3:.1f} kB"))

    print(f"| step ({args.rows:,} synthetic attempts, best of {args.repeat}) | time (s) | result |")
    print("|---|---:|---|")
    for name, secs, note in steps:
        print(f"| {name} | {secs:.3f} | {note} |")
    total = both_s + heat_s
    verdict = "PASS" if total <= 3.0 and size <= 1_000_000 else "FAIL"
    print(f"| **summary (attempt + user) + heatmap** | **{total:.3f}** | target <= 3 s, JSON <= 1 MB: {verdict} |")


if __name__ == "__main__":
    main()
