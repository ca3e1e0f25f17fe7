"""Store benchmark: attempts recorded per second into PostgreSQL from 3 workers vs SQLite from one.

What a sweep does per attempt: ``attempt_started`` then ``attempt_finished``, each its own
committed transaction (a full attempt row, upserted). Side by side in one run, repeated:

* SQLite, one writer process (WAL, ``synchronous=FULL``: the default store);
* PostgreSQL, one writer process, then 3 writer processes at once (one database);

on a throw-away PostgreSQL cluster with durable commits (``fsync=on``,
``synchronous_commit=on``) over a Unix socket, started as in the tests (tests/_postgres.py).
Each writer is its own process started with a common start time; the rate is all attempts
over (last end - first start). Ratios are against SQLite's single writer in the same repetition.
Run: ``python -m benchmarks.bench_store [--quick]``.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks._harness import REPO, Section, Target, markdown_table, run_alone, spread


def _attempt(i: int, run_id: str, tag: str) -> Any:
    from nbp_kit.records import Attempt

    return Attempt(
        attempt_id=f"{tag}-{i}",
        call_id=f"{tag}-c{i}",
        attempt_no=1,
        run_id=run_id,
        request_key=f"{tag}-k{i}",
        model="gemini-3-pro-image-preview",
        base_host="127.0.0.1:9",
        resolution="1K",
        aspect_ratio="1:1",
        prompt="a benchmark prompt",
        scheduled_at=time.time(),
        sent_at=time.time(),
        worker_id=tag,
        host="bench",
        region="bench",
    )


def write(store_url: str, run_id: str, n: int, tag: str, start_at: float) -> dict[str, float]:
    """One writer: ``n`` attempts, started then finished, into ``store_url``; its own start and end."""
    from nbp_kit.runs.store import RunStore

    store = RunStore(store_url)
    rows = [_attempt(i, run_id, tag) for i in range(n)]
    finished = [
        a.replace(
            status="ok",
            ended_at=time.time(),
            total_s=20.0,
            wait_s=19.0,
            cost_usd=0.134,
            bytes_down=1_900_000,
            image_path=f"/tmp/{a.attempt_id}.png",
            image_sha256="0" * 64,
            http_version="HTTP/2",
            connection_reused=True,
        )
        for a in rows
    ]
    time.sleep(max(0.0, start_at - time.time()))
    t0 = time.time()
    for started, done in zip(rows, finished, strict=True):
        store.attempt_started(started)
        store.attempt_finished(done)
    t1 = time.time()
    store.close()
    return {"start": t0, "end": t1, "n": n}


def _writers(store_url: str, run_id: str, n_each: int, k: int) -> float:
    """Attempts per second from ``k`` writer processes started together."""
    start_at = time.time() + 1.5  # every process has imported and connected by then
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "benchmarks.bench_store",
                "--write",
                store_url,
                run_id,
                str(n_each),
                f"w{j}-{time.time_ns()}",
                str(start_at),
            ],
            cwd=REPO,
            stdout=subprocess.PIPE,
            text=True,
        )
        for j in range(k)
    ]
    outs = [json.loads(p.communicate(timeout=600)[0]) for p in procs]
    if any(p.returncode for p in procs):
        raise RuntimeError("a writer process failed")
    total = sum(o["n"] for o in outs)
    return total / (max(o["end"] for o in outs) - min(o["start"] for o in outs))


def section(*, quick: bool = False) -> Section:
    sys.path.insert(0, str(REPO / "tests"))
    from _postgres import start_cluster

    from nbp_kit.runs.store import RunStore

    n, reps = (60, 1) if quick else (600, 3)
    cluster = start_cluster(fsync=True)
    rates: dict[str, list[float]] = {"sqlite1": [], "pg1": [], "pg3": []}
    try:
        with tempfile.TemporaryDirectory(prefix="nbp-bench-store-") as tmp:
            for rep in range(reps):
                sqlite_path = str(Path(tmp) / f"s{rep}.sqlite")
                pg_url = cluster.new_database()
                for url in (sqlite_path, pg_url):
                    with RunStore(url) as store:
                        store.create_run(plan={}, provider="gemini", run_id="bench")
                rates["sqlite1"].append(_writers(sqlite_path, "bench", n, 1))
                rates["pg1"].append(_writers(pg_url, "bench", n, 1))
                rates["pg3"].append(_writers(pg_url, "bench", n // 3, 3))
    finally:
        cluster.stop()
    sec = Section(
        "store",
        "Run store: attempts recorded per second",
        intro=(
            f"Each attempt is recorded as a sweep records it: committed as started, then committed as finished "
            f"(2 transactions). {n} attempts per configuration, {reps} repetitions; SQLite in WAL mode with "
            "synchronous=FULL; PostgreSQL 15 with fsync and synchronous_commit on, over a Unix socket, all on "
            "this machine (benchmarks/bench_store.py)."
        ),
    )
    base = rates["sqlite1"]
    rows = []
    for key, label in (
        ("sqlite1", "SQLite, 1 writer"),
        ("pg1", "PostgreSQL, 1 writer"),
        ("pg3", "PostgreSQL, 3 writer processes"),
    ):
        rows.append(
            [label, spread(rates[key]).fmt(0), spread(r / b for r, b in zip(rates[key], base, strict=True)).fmt(2)]
        )
    sec.tables.append(markdown_table(["store", "attempts/s", "ratio to SQLite, 1 writer"], rows))
    ratio = spread(r / b for r, b in zip(rates["pg3"], base, strict=True))
    sec.figures["pg3_over_sqlite1"] = ratio.median
    sec.targets.append(
        Target(
            "store",
            "attempts/s: PostgreSQL from 3 workers vs SQLite from one (reported)",
            f"{ratio.fmt(2)} x",
            None,
            "not judged: no target was set; a team store must keep up "
            "with several workers, and one attempt takes seconds",
        )
    )
    return sec


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--write":
        url, run_id, count, tag, start = sys.argv[2:7]
        print(json.dumps(write(url, run_id, int(count), tag, float(start))))
    else:
        run_alone(section, __doc__)
