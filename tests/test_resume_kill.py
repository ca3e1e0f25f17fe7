"""Acceptance: kill -9 a 200-request sweep at 5 random moments; nothing is lost or doubled."""

from __future__ import annotations

import hashlib
import random
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from nbp_kit.runs.plan import Plan
from nbp_kit.runs.store import RunStore

PROMPTS = ["p-one", "p-two", "p-three", "p-four"]
ASPECTS = ["1:1", "16:9", "9:16", "3:2", "2:3"]


def _argv(store: Path, images: Path) -> list[str]:
    exe = Path(sys.executable).with_name("nbp-kit")
    argv = [
        str(exe),
        "sweep",
        "--store",
        str(store),
        "--output-dir",
        str(images),
        "--run-id",
        "killme",
        "--emulator",
        "--time-scale",
        "0.01",
        "--no-faults",
        "--no-quotas",
        "--no-progress",
        "--repetitions",
        "10",
        "--resolution",
        "1K",
        "--aspect",
        ",".join(ASPECTS),
        "--concurrency",
        "8",
        "--spend-cap",
        "40",
        "--seed",
        "11",
    ]
    for p in PROMPTS:
        argv += ["--prompt", p]
    return argv


def _rows(store: Path) -> dict[str, tuple]:
    conn = sqlite3.connect(f"file:{store}?mode=ro", uri=True)
    try:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        return {
            r[0]: r[1:]
            for r in conn.execute(
                "SELECT attempt_id, status, request_key, image_path, image_sha256, cost_usd FROM attempts"
            )
        }
    finally:
        conn.close()


def _count_finished(store: Path) -> int:
    if not store.exists():
        return 0
    try:
        conn = sqlite3.connect(f"file:{store}?mode=ro", uri=True, timeout=5)
        try:
            return conn.execute("SELECT COUNT(*) FROM attempts WHERE status != 'started'").fetchone()[0]
        finally:
            conn.close()
    except sqlite3.OperationalError:  # the file exists but the schema is not there yet
        return 0


def test_kill9_five_times_then_resume_loses_nothing(tmp_path):
    store, images = tmp_path / "runs.sqlite", tmp_path / "images"
    plan = Plan(prompts=PROMPTS, resolutions=["1K"], aspect_ratios=ASPECTS, repetitions=10, seed=11)
    assert len(plan) == 200
    rng = random.Random(20261127)
    seen: dict[str, tuple] = {}
    kills = 0
    for _round in range(5):
        before = _count_finished(store)
        target = before + rng.randint(3, 25)
        proc = subprocess.Popen(_argv(store, images), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 120
        while proc.poll() is None and _count_finished(store) < target and time.monotonic() < deadline:
            time.sleep(0.005)  # polling another process's database; there is no event to wait on
        if proc.poll() is None:
            proc.kill()  # SIGKILL: no cleanup, no finally blocks
            kills += 1
        proc.wait(timeout=30)
        rows = _rows(store)  # the database opens, and its integrity check passes
        for attempt_id, old in seen.items():
            new = rows[attempt_id]
            if old[0] != "started":
                assert new == old, f"committed row {attempt_id} changed: {old} -> {new}"
            else:  # a crash left it started; resume closes it as an interrupted error
                assert new[0] in ("started", "error", "ok")
        seen.update(rows)
        ok_keys = [r[1] for r in rows.values() if r[0] == "ok"]
        assert len(ok_keys) == len(set(ok_keys)), "duplicate success"
    assert kills >= 4

    # resume to the end
    done = subprocess.run(_argv(store, images), capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    rows = _rows(store)
    assert set(seen) <= set(rows), "lost attempts"
    statuses = [r[0] for r in rows.values()]
    assert "started" not in statuses
    ok = {k: r for k, r in rows.items() if r[0] == "ok"}
    ok_keys = [r[1] for r in ok.values()]
    assert sorted(ok_keys) == sorted(i.request_key for i in plan.items()), "duplicate or missing success"
    # images: no temp files, every file belongs to an ok row and matches its hash, every ok row has its file
    files = [p for p in (images / "killme").iterdir()]
    assert not [p for p in files if ".tmp" in p.name or p.name.startswith(".")]
    by_path = {r[2]: r[3] for r in ok.values()}
    assert {str(p) for p in files} == set(by_path)
    for path, sha in by_path.items():
        assert hashlib.sha256(Path(path).read_bytes()).hexdigest() == sha
    # cost: only what was recorded, never counted twice
    s = RunStore(store)
    interrupted = [r for r in rows.values() if r[0] == "error"]
    assert all(r[4] is None for r in interrupted)  # interrupted attempts carry no cost
    assert s.run_cost_usd("killme") == pytest.approx(sum(r[4] for r in ok.values()), rel=1e-12)
    assert len(ok) == 200  # each success billed once
    assert s.get_run("killme")["status"] == "complete"
