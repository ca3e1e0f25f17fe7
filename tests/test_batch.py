"""Batch runs through nbp_kit against the emulator: submit, poll, collect into the store."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from nbp_kit import Plan
from nbp_kit.errors import APIError, ConfigError, RateLimited
from nbp_kit.profiles import load_profile
from nbp_kit.runs.batch import (
    batch_status,
    cancel_batch,
    collect_batch,
    run_batch,
    submit_batch,
    wait_batch,
)
from nbp_kit.runs.runner import run_sweep
from nbp_kit.runs.store import RunStore

ROOT = Path(__file__).resolve().parents[1]
FAST_POLL = {"poll_s": 0.05, "max_poll_s": 0.2}


def _profile(**batch):
    return {**load_profile("default"), "batch": {"queue_median_s": 30, "queue_sigma": 0.5, **batch}}


def _plan(n_prompts=2, reps=2, **kw):
    return Plan(prompts=[f"a red bicycle {i}" for i in range(n_prompts)], repetitions=reps, **kw)


@pytest.mark.parametrize("mode", ["inline", "file"])
def test_batch_end_to_end_records_one_attempt_per_item(emulator_factory, tmp_path, mode):
    emu = emulator_factory(_profile(), time_scale=0.01)
    store = RunStore(tmp_path / "runs.sqlite")
    plan = _plan(resolutions=["1K", "2K"])
    status = run_batch(
        plan, base_url=emu.base_url, store=store, api_key="k", mode=mode, output_dir=tmp_path / "img", **FAST_POLL
    )
    assert status.state == "BATCH_STATE_SUCCEEDED" and status.collected and status.input_mode == mode
    frame = store.attempts(status.run_id)
    assert len(frame) == len(plan) == 8
    assert sorted(frame["request_key"]) == sorted(i.request_key for i in plan.items())
    assert (frame["status"] == "ok").all() and frame["size_ok"].all()
    assert (frame["transport"] == "batch").all()
    assert all(Path(p).is_file() for p in frame["image_path"])
    assert (frame["queue_s"].dropna() > 0).all() and (frame["total_s"] >= frame["queue_s"].fillna(0)).all()
    assert set(frame["time_scale"]) == {0.01}
    assert store.get_run(status.run_id)["status"] == "done"
    # collecting again records nothing twice
    collect_batch(store, status.run_id, api_key="k")
    assert len(store.attempts(status.run_id)) == 8


def test_batch_cost_per_image_is_half_the_interactive_cost(emulator_factory, tmp_path):
    emu = emulator_factory(_profile(), time_scale=0.01)
    store = RunStore(tmp_path / "runs.sqlite")
    plan = _plan(n_prompts=3, reps=1, resolutions=["1K", "4K"])
    batch = run_batch(
        plan, base_url=emu.base_url, store=store, api_key="k", mode="file", output_dir=tmp_path / "b", **FAST_POLL
    )
    inter = run_sweep(plan, emu, store=store, progress=False, concurrency=4, output_dir=tmp_path / "i")
    b = store.attempts(batch.run_id).set_index("request_key")["cost_usd"]
    i = store.attempts(inter.run_id).query("status == 'ok'").set_index("request_key")["cost_usd"]
    assert len(b) == len(i) == 6
    ratio = (b / i.reindex(b.index)).to_numpy()
    assert ratio == pytest.approx([0.5] * 6, abs=1e-4)  # Google's pricing page: Batch API at 50 % off


def test_expired_job_records_every_item_as_expired(emulator_factory, tmp_path):
    emu = emulator_factory(_profile(stuck_prob=1.0), time_scale=1e-5)  # 48 h = 1.7 s
    store = RunStore(tmp_path / "runs.sqlite")
    run_id = submit_batch(_plan(), base_url=emu.base_url, store=store, api_key="k", output_dir=tmp_path)
    seen = []
    status = wait_batch(store, run_id, api_key="k", timeout_s=60, on_poll=lambda s: seen.append(s.state), **FAST_POLL)
    assert status.state == "BATCH_STATE_EXPIRED" and set(seen[:-1]) == {"BATCH_STATE_PENDING"}
    collect_batch(store, run_id, api_key="k")
    frame = store.attempts(run_id)
    assert len(frame) == 4 and (frame["error_kind"] == "batch_expired").all()
    assert frame["cost_usd"].isna().all() and frame["queue_s"].isna().all()
    assert store.get_run(run_id)["status"] == "failed"


def test_failed_items_are_recorded_with_their_error(emulator_factory, tmp_path):
    prof = {**_profile(), "faults": {"503": 0.3, "image-safety": 0.2}}
    emu = emulator_factory(prof, time_scale=0.005, faults=True)
    store = RunStore(tmp_path / "runs.sqlite")
    status = run_batch(
        _plan(n_prompts=10, reps=3),
        base_url=emu.base_url,
        store=store,
        api_key="k",
        mode="file",
        output_dir=tmp_path,
        spend_cap_usd=10,
        **FAST_POLL,
    )
    frame = store.attempts(status.run_id)
    assert len(frame) == 30 and frame["request_key"].is_unique
    kinds = frame["error_kind"].value_counts().to_dict()
    assert kinds.get("overloaded", 0) >= 1 and kinds.get("safety_block", 0) >= 1
    assert (frame["status"] == "ok").sum() == 30 - sum(kinds.values())
    assert frame.loc[frame["error_kind"] == "overloaded", "status_code"].eq(503).all()
    assert status.failed == kinds.get("overloaded", 0)  # the service counts only errors, not blocked images


def test_cancel_records_items_as_cancelled(emulator_factory, tmp_path):
    emu = emulator_factory(_profile(queue_median_s=10**6, queue_sigma=0), time_scale=0.01)
    store = RunStore(tmp_path / "runs.sqlite")
    run_id = submit_batch(_plan(), base_url=emu.base_url, store=store, api_key="k", output_dir=tmp_path)
    assert batch_status(store, run_id, api_key="k").state == "BATCH_STATE_PENDING"
    assert cancel_batch(store, run_id, api_key="k").state == "BATCH_STATE_CANCELLED"
    collect_batch(store, run_id, api_key="k")
    assert (store.attempts(run_id)["error_kind"] == "batch_cancelled").all()


def test_inline_over_20_mb_fails_before_any_request(emulator_factory, tmp_path):
    emu = emulator_factory(_profile())
    store = RunStore(tmp_path / "runs.sqlite")
    plan = Plan(prompts=[f"{i} " + "x" * 1_100_000 for i in range(20)])
    before = emu.stats()["requests"]
    with pytest.raises(ConfigError, match=r"mode='inline'.*above the Batch API's 20 MB limit; use mode='file'"):
        submit_batch(
            plan, base_url=emu.base_url, store=store, api_key="k", mode="inline", output_dir=tmp_path, spend_cap_usd=100
        )
    assert emu.stats()["requests"] == before and store.runs().empty


def test_a_job_past_the_concurrent_limit_is_refused_clearly_and_recorded(emulator_factory, tmp_path):
    emu = emulator_factory(_profile(queue_median_s=10**6, queue_sigma=0, max_concurrent_jobs=3), time_scale=0.01)
    store = RunStore(tmp_path / "runs.sqlite")
    for _ in range(3):
        submit_batch(_plan(1, 1), base_url=emu.base_url, store=store, api_key="k", output_dir=tmp_path)
    with pytest.raises(RateLimited, match="limit of 3 concurrent batch jobs"):
        submit_batch(_plan(1, 1), base_url=emu.base_url, store=store, api_key="k", output_dir=tmp_path, run_id="r4")
    frame = store.attempts("r4")
    assert len(frame) == 1 and frame["error_kind"].iloc[0] == "rate_limited"
    assert store.get_run("r4")["status"] == "failed"


@pytest.mark.parametrize(
    "bad, message",
    [
        ({"mode": "fast"}, "mode='fast' is not accepted"),
        ({"api_key": ""}, "api_key=None is not accepted"),
        ({"base_url": "ftp://x"}, "base_url='ftp://x' is not accepted"),
        ({"plan": Plan(prompts=["a"], provider="relay", model="m")}, "plan.provider='relay' is not accepted"),
    ],
)
def test_bad_input_fails_before_any_request(tmp_path, bad, message, monkeypatch):
    monkeypatch.delenv("GEMINI_API_KEY", raising=False)
    args = {"plan": _plan(), "base_url": "http://127.0.0.1:9", "api_key": "k", **bad}
    store = RunStore(tmp_path / "runs.sqlite")
    with pytest.raises(ConfigError, match=message):
        submit_batch(args.pop("plan"), store=store, output_dir=tmp_path, **args)
    assert store.runs().empty


_POLLER = """
import sys
from nbp_kit.runs.batch import wait_batch, collect_batch
from nbp_kit.runs.store import RunStore
store = RunStore(sys.argv[1])
wait_batch(store, sys.argv[2], poll_s=0.05, max_poll_s=0.1)
collect_batch(store, sys.argv[2])
"""


def test_kill_9_while_polling_then_resume_collects_every_result_once(emulator_factory, tmp_path):
    # The job starts 20 s after submit: time for the poller to start (imports can take seconds
    # on a loaded machine) and poll a few times while it is PENDING.
    emu = emulator_factory(_profile(queue_median_s=2000, queue_sigma=0), time_scale=0.01)
    db = tmp_path / "runs.sqlite"
    store = RunStore(db)
    plan = _plan(n_prompts=5, reps=2)
    run_id = submit_batch(plan, base_url=emu.base_url, store=store, api_key="k", mode="file", output_dir=tmp_path)
    env = {**os.environ, "PYTHONPATH": str(ROOT), "GEMINI_API_KEY": "k"}
    proc = subprocess.Popen([sys.executable, "-c", _POLLER, str(db), run_id], env=env)
    try:
        deadline = time.monotonic() + 60
        while batch_polls(store, run_id) < 3 and time.monotonic() < deadline:
            time.sleep(0.02)
        assert batch_polls(store, run_id) >= 3, "the poller never polled"
        os.kill(proc.pid, signal.SIGKILL)
        assert store.get_run(run_id)["meta"]["batch"]["state"] == "BATCH_STATE_PENDING"  # killed while polling
        proc.wait(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert store.get_run(run_id)["meta"]["batch"]["collected"] is False
    assert (store.attempts(run_id)["status"] == "started").all()
    resumed = subprocess.run(
        [sys.executable, "-c", _POLLER, str(db), run_id],
        env=env,
        timeout=120,
        check=False,
        capture_output=True,
        text=True,
    )
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    frame = store.attempts(run_id)
    assert len(frame) == len(plan) == 10 and frame["request_key"].is_unique
    assert (frame["status"] == "ok").all()
    assert len(list((tmp_path / run_id).glob("*.jpg"))) == 10
    assert not list((tmp_path / run_id).glob(".*.tmp"))


def batch_polls(store, run_id):
    return int(store.get_run(run_id)["meta"]["batch"].get("polls", 0))


def test_cli_batch_submit_status_collect(emulator_factory, tmp_path, capsys, monkeypatch):
    from nbp_kit import cli

    monkeypatch.setenv("GEMINI_API_KEY", "k")
    emu = emulator_factory(_profile(), time_scale=0.01)
    db = str(tmp_path / "runs.sqlite")
    assert (
        cli.main(
            [
                "batch",
                "submit",
                "--store",
                db,
                "--base-url",
                emu.base_url,
                "--prompt",
                "a cat",
                "--repetitions",
                "3",
                "--output-dir",
                str(tmp_path),
            ]
        )
        == 0
    )
    run_id = RunStore(db).runs()["run_id"].iloc[0]
    assert cli.main(["batch", "status", run_id, "--store", db]) == 0
    assert (
        cli.main(["batch", "collect", run_id, "--store", db, "--wait", "--poll-s", "0.05", "--max-poll-s", "0.2"]) == 0
    )
    out = capsys.readouterr().out
    assert f"run {run_id}: job batches/" in out and "3 ok, 0 failed" in out and "recorded cost $" in out


def test_inline_results_too_large_to_fetch_say_to_use_a_file(emulator_factory, tmp_path):
    emu = emulator_factory(_profile(inline_result_limit_bytes=1000), time_scale=0.005)
    store = RunStore(tmp_path / "runs.sqlite")
    run_id = submit_batch(
        _plan(1, 1), base_url=emu.base_url, store=store, api_key="k", mode="inline", output_dir=tmp_path
    )
    assert wait_batch(store, run_id, api_key="k", **FAST_POLL).state == "BATCH_STATE_SUCCEEDED"
    with pytest.raises(APIError, match="Submit the plan again with mode='file'"):
        collect_batch(store, run_id, api_key="k")
    assert (store.attempts(run_id)["status"] == "started").all()  # nothing recorded as done


_COLLECTOR = """
import sys
from nbp_kit.runs.batch import collect_batch
from nbp_kit.runs.store import RunStore
collect_batch(RunStore(sys.argv[1]), sys.argv[2])
"""


def test_kill_9_while_collecting_then_resume_records_each_image_once(emulator_factory, tmp_path):
    emu = emulator_factory(_profile(queue_median_s=10, queue_sigma=0), time_scale=0.01)
    db = tmp_path / "runs.sqlite"
    store = RunStore(db)
    plan = _plan(n_prompts=10, reps=3)
    run_id = submit_batch(
        plan, base_url=emu.base_url, store=store, api_key="k", mode="file", output_dir=tmp_path, spend_cap_usd=10
    )
    assert wait_batch(store, run_id, api_key="k", **FAST_POLL).state == "BATCH_STATE_SUCCEEDED"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "GEMINI_API_KEY": "k"}
    proc = subprocess.Popen([sys.executable, "-c", _COLLECTOR, str(db), run_id], env=env)
    try:
        deadline = time.monotonic() + 60
        while (store.attempts(run_id)["status"] == "ok").sum() < 3 and time.monotonic() < deadline:
            time.sleep(0.01)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
    recorded = int((store.attempts(run_id)["status"] == "ok").sum())
    assert 3 <= recorded < 30, f"killed too late to test anything ({recorded} of 30 recorded)"
    resumed = subprocess.run(
        [sys.executable, "-c", _COLLECTOR, str(db), run_id],
        env=env,
        timeout=120,
        check=False,
        capture_output=True,
        text=True,
    )
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    frame = store.attempts(run_id)
    assert len(frame) == 30 and frame["request_key"].is_unique and (frame["status"] == "ok").all()
    assert len(list((tmp_path / run_id).glob("*.jpg"))) == 30
    assert not list((tmp_path / run_id).glob(".*.tmp"))


def test_the_key_appears_in_no_record(emulator_factory, tmp_path):
    key = "canary-batch-key-0123456789abcdef"
    emu = emulator_factory(_profile(), time_scale=0.01, api_key=key)
    store = RunStore(tmp_path / "runs.sqlite")
    status = run_batch(
        _plan(2, 1),
        base_url=emu.base_url,
        store=store,
        api_key=key,
        mode="file",
        output_dir=tmp_path / "img",
        **FAST_POLL,
    )
    assert status.succeeded == 2
    with pytest.raises(APIError) as err:  # a wrong key: the error names no key either
        batch_status(store, status.run_id, api_key=key[::-1])
    assert key[::-1] not in str(err.value)
    store.close()
    blobs = b"".join(p.read_bytes() for p in tmp_path.rglob("*") if p.is_file())
    assert key.encode() not in blobs and b"canary-batch-key" not in blobs
