from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from nbp_kit import cli
from nbp_kit.runs.store import RunStore

COMMANDS = ["emulator", "sweep", "probe", "runs", "export", "demo", "report"]
FAST = ["--emulator", "--time-scale", "0.01", "--no-faults", "--no-quotas", "--no-progress"]


@pytest.mark.parametrize("command", [[], *[[c] for c in COMMANDS]])
def test_help_for_every_command(command, capsys):
    assert cli.main([*command, "--help"]) == 0
    out = capsys.readouterr().out
    assert "usage: nbp-kit" in out
    if not command:
        assert all(c in out for c in COMMANDS)


def test_no_command_prints_help_and_is_bad_input(capsys):
    assert cli.main([]) == 2
    assert "COMMAND" in capsys.readouterr().out


def test_sweep_then_runs_export_and_resume(tmp_path, capsys):
    store = str(tmp_path / "s.sqlite")
    rc = cli.main(
        [
            "sweep",
            "--store",
            store,
            "--prompt",
            "a cat",
            "--resolution",
            "1K",
            "--aspect",
            "1:1,16:9",
            "--repetitions",
            "2",
            "--concurrency",
            "2",
            "--output-dir",
            str(tmp_path / "img"),
            "--tag",
            "first",
            *FAST,
        ]
    )
    out = capsys.readouterr().out
    assert rc == 0, out
    run_id = RunStore(store).runs().loc[0, "run_id"]
    assert f"run {run_id}: 4 ok" in out and "records:" in out
    # resume of a complete run does nothing
    assert cli.main(["sweep", "--store", store, "--run-id", run_id, *FAST]) == 0
    assert "0 calls (4 already done)" in capsys.readouterr().out
    assert cli.main(["runs", "list", "--store", store]) == 0
    assert run_id in capsys.readouterr().out
    assert cli.main(["runs", "tag", run_id, "keep", "--store", store]) == 0
    assert RunStore(store).get_run(run_id)["tags"] == ["first", "keep"]
    assert cli.main(["runs", "show", run_id, "--store", store]) == 0
    assert json.loads(capsys.readouterr().out.split("\n", 1)[1])["run_id"] == run_id
    out_path = tmp_path / "a.parquet"
    assert cli.main(["export", run_id, str(out_path), "--store", store]) == 0
    assert len(pd.read_parquet(out_path)) == 4
    assert cli.main(["runs", "delete", run_id, "--store", store]) == 2  # needs --yes
    assert cli.main(["runs", "delete", run_id, "--yes", "--store", store]) == 0
    assert RunStore(store).runs().empty


def test_sweep_from_plan_file_and_dry_run(tmp_path, capsys):
    plan = tmp_path / "plan.toml"
    plan.write_text('prompts = ["a", "b"]\nresolutions = ["1K", "2K"]\nrepetitions = 3\n')
    rc = cli.main(["sweep", "--plan", str(plan), "--dry-run", "--store", str(tmp_path / "s.sqlite"), "--emulator"])
    assert rc == 0
    assert "pre-flight: 12 requests" in capsys.readouterr().out
    rc = cli.main(
        ["sweep", "--plan", str(plan), "--repetitions", "30", "--dry-run", "--store", str(tmp_path / "s.sqlite")]
    )
    assert rc == 3
    assert "--spend-cap" in capsys.readouterr().err


@pytest.mark.parametrize(
    "argv, code, message",
    [
        (["sweep", "--prompt", "x", "--repetitions", "0", "--emulator"], 2, "repetitions=0"),
        (["sweep", "--prompt", "x", "--repetitions", "-1", "--emulator"], 2, "repetitions=-1"),
        (["sweep", "--prompt", "x", "--concurrency", "0", "--emulator"], 2, "concurrency=0"),
        (["sweep", "--prompt", "x", "--concurrency", "lots", "--emulator"], 2, "concurrency='lots'"),
        (["sweep", "--prompt", "x", "--spend-cap", "0.01", "--emulator"], 2, "below the price of one request"),
        (["sweep", "--prompt", "x", "--repetitions", "50", "--emulator"], 3, "spend_cap_usd=2.0"),
        (["sweep", "--run-id", "nope", "--emulator"], 2, "run_id='nope'"),
        (["sweep", "--plan", "/nonexistent/plan.json", "--emulator"], 2, "cannot be read"),
        (["sweep", "--prompt", "x"], 2, "no target"),
        (["sweep", "--emulator"], 2, "no prompts"),
        (["sweep", "--prompt", "x", "--resolution", "3K", "--emulator"], 2, "resolution='3K'"),
        (["runs", "tag", "nope", "t"], 2, "run_id='nope'"),
        (["runs", "show"], 2, "needs a RUN_ID"),
        (["export", "nope", "x.parquet"], 2, "run_id='nope'"),
        (["report", "nope"], 2, "run_id='nope'"),
        (["probe", "--emulator"], 2, "--rounds"),
        (["probe", "--emulator", "--rounds", "0"], 2, "rounds=0"),
        (["demo", "--time-scale", "0"], 2, "time-scale"),
    ],
)
def test_bad_input_exit_codes(tmp_path, capsys, argv, code, message):
    assert cli.main([*argv, "--store", str(tmp_path / "s.sqlite")]) == code
    assert message in capsys.readouterr().err


def test_unwritable_store_path_is_bad_input(tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    rc = cli.main(["sweep", "--prompt", "x", "--emulator", "--store", str(blocker / "s.sqlite")])
    assert rc == 2 and "cannot be opened for writing" in capsys.readouterr().err


def test_probe_command(tmp_path, capsys):
    store = str(tmp_path / "s.sqlite")
    rc = cli.main(
        [
            "probe",
            "--store",
            store,
            "--rounds",
            "2",
            "--interval-min",
            "60",
            "--clock-speed",
            "36000",
            "--clock-start",
            "2026-01-05T00:00:00Z",
            "--emulator",
            "--time-scale",
            "0.01",
            "--no-faults",
        ]
    )
    assert rc == 0
    assert "2 rounds" in capsys.readouterr().out
    frame = RunStore(store).attempts()
    assert sorted(set(frame["transport"])) == ["models", "unary"]


def test_demo_prints_phase_table_and_where_records_are(tmp_path, capsys):
    store = str(tmp_path / "s.sqlite")
    rc = cli.main(
        [
            "demo",
            "--store",
            store,
            "--repetitions",
            "1",
            "--time-scale",
            "0.01",
            "--output-dir",
            str(tmp_path / "img"),
            "--no-report",
        ]
    )
    out = capsys.readouterr().out
    assert rc == 0, out
    assert "median seconds per phase" in out and "wait_s" in out and "1K 1:1" in out
    assert store in out and "images:" in out
    assert RunStore(store).runs().loc[0, "tags"] == ["demo"]
    # the emulator kept up with its model, so the answer is the API, in real-equivalent time
    assert "emulator kept up with its model: yes" in out, out
    share = re.search(r"where the time goes: The API: server generation is (\d+) % of the time", out)
    assert share is not None and int(share.group(1)) >= 90, out


def test_demo_epilogue_hands_over_to_the_report(monkeypatch, capsys):
    import nbp_kit.report as report

    calls = []
    monkeypatch.setattr(
        report, "build_report", lambda run_id, store_path: calls.append((run_id, store_path)) or "r.html"
    )
    assert cli.demo_epilogue("r1", "s.sqlite", report=True) == 0
    assert calls == [("r1", "s.sqlite")] and "report: r.html" in capsys.readouterr().out
    assert cli.demo_epilogue("r1", "s.sqlite", report=False) == 0 and len(calls) == 1


def test_console_script_runs_and_returns_codes(tmp_path):
    exe = Path(sys.executable).with_name("nbp-kit")
    done = subprocess.run([str(exe), "--help"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and "sweep" in done.stdout
    bad = subprocess.run(
        [str(exe), "sweep", "--prompt", "x", "--concurrency", "0", "--emulator", "--store", str(tmp_path / "s.sqlite")],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "NBP_KIT_RUNS": str(tmp_path)},
    )
    assert bad.returncode == 2 and "concurrency=0" in bad.stderr
