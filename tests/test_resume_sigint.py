"""Ctrl-C (SIGINT) on a running `nbp-kit sweep`: exit 130, every record closed, resume finishes."""

from __future__ import annotations

import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

from nbp_kit.runs.store import RunStore


def _finished(store: Path) -> int:
    if not store.exists():
        return 0
    try:
        conn = sqlite3.connect(f"file:{store}?mode=ro", uri=True, timeout=5)
        try:
            return conn.execute("SELECT COUNT(*) FROM attempts WHERE status = 'ok'").fetchone()[0]
        finally:
            conn.close()
    except sqlite3.OperationalError:
        return 0


def test_ctrl_c_exits_130_with_records_intact_and_resume_completes(tmp_path):
    store = tmp_path / "s.sqlite"
    exe = Path(sys.executable).with_name("nbp-kit")
    argv = [
        str(exe),
        "sweep",
        "--store",
        str(store),
        "--output-dir",
        str(tmp_path / "img"),
        "--run-id",
        "ctrlc",
        "--emulator",
        "--time-scale",
        "0.01",
        "--no-faults",
        "--no-quotas",
        "--no-progress",
        "--prompt",
        "a",
        "--prompt",
        "b",
        "--repetitions",
        "20",
        "--concurrency",
        "4",
        "--spend-cap",
        "10",
    ]
    # A child of a background job inherits SIGINT ignored; give it the default, as a terminal would.
    proc = subprocess.Popen(
        argv,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    deadline = time.monotonic() + 120
    while proc.poll() is None and _finished(store) < 5 and time.monotonic() < deadline:
        time.sleep(0.005)  # polling another process's database
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err[-2000:]
    assert "interrupted" in err
    s = RunStore(store, read_only=True)
    frame = s.attempts(run_ids=["ctrlc"])
    assert "started" not in set(frame["status"])  # in-flight calls finished or were closed as cancelled
    assert "connect_error" not in set(frame["error_kind"].dropna())  # the emulator outlived the sweep
    assert s.get_run("ctrlc")["status"] == "stopped"
    assert 5 <= (frame["status"] == "ok").sum() < 40
    done = subprocess.run(argv, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    ok = RunStore(store, read_only=True).attempts(run_ids=["ctrlc"], status="ok")
    assert len(ok) == 40 and ok["request_key"].is_unique
