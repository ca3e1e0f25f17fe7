"""Runner logic against a scripted in-process client (the emulator tests are in test_runner_emulator.py)."""

from __future__ import annotations

import asyncio
import threading
import time
import types
import uuid

import pytest

from nbp_kit.errors import ConfigError, SpendCapExceeded
from nbp_kit.records import Attempt
from nbp_kit.runs.plan import Plan
from nbp_kit.runs.runner import run_sweep, start_sweep
from nbp_kit.runs.store import RunStore


class ScriptedClient:
    """Behaves like AsyncClient for the runner: pacer, sink, one Generation per call.

    ``outcome(prompt, n)`` returns None for success or an error kind.
    """

    def __init__(self, *, sink, pacer, retry_budget=None, output_dir=None, outcome=None, delay_s=0.001, gate=None):
        self.sink, self.pacer, self.outcome = sink, pacer, outcome or (lambda prompt, n: None)
        self.delay_s, self.gate = delay_s, gate
        self.calls = 0
        self.max_in_flight = 0
        self.in_flight = 0

    async def generate(
        self,
        prompt,
        spec,
        *,
        seed=None,
        stream=False,
        run_id=None,
        request_key=None,
        scheduled_at=None,
        raise_on_error=True,
        save=True,
    ):
        self.calls += 1
        n = self.calls
        call_id = uuid.uuid4().hex[:8]
        await self.pacer.acquire(spec)
        a = Attempt(
            f"{call_id}-1",
            call_id,
            1,
            run_id=run_id,
            request_key=request_key,
            prompt=prompt,
            resolution=spec.resolution,
            aspect_ratio=spec.aspect_ratio,
            grid=spec.grid,
            scheduled_at=scheduled_at,
            sent_at=time.time(),
            tiles=spec.tiles,
        )
        self.sink.attempt_started(a)
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            if self.gate is not None:
                await asyncio.get_running_loop().run_in_executor(None, self.gate.wait)
            await asyncio.sleep(self.delay_s)
        finally:
            self.in_flight -= 1
        kind = self.outcome(prompt, n)
        done = a.replace(
            status="ok" if kind is None else "error",
            error_kind=kind,
            ended_at=time.time(),
            cost_usd=0.134 if kind is None else None,
        )
        self.sink.attempt_finished(done)
        self.pacer.release(done)
        return types.SimpleNamespace(ok=kind is None, attempts=(done,), tile_paths=(), cost_usd=done.cost_usd or 0.0)


def factory(**kw):
    made = []

    def make(*, sink, pacer, retry_budget, output_dir):
        c = ScriptedClient(sink=sink, pacer=pacer, **kw)
        made.append(c)
        return c

    make.made = made
    return make


def _run(plan, make, store, **kw):
    kw.setdefault("progress", False)
    kw.setdefault("spend_cap_usd", 100.0)
    return run_sweep(plan, make, store=store, **kw)


def test_every_item_runs_once_and_is_recorded():
    store = RunStore.memory()
    plan = Plan(prompts=["a", "b"], resolutions=["1K", "2K"], repetitions=3)
    events = []
    res = _run(plan, factory(), store, concurrency=3, on_progress=events.append)
    assert (res.calls, res.ok, res.failed) == (12, 12, 0)
    frame = store.attempts(run_ids=[res.run_id])
    assert len(frame) == 12 and set(frame["status"]) == {"ok"}
    assert set(frame["request_key"]) == {i.request_key for i in plan.items()}
    assert res.cost_usd == pytest.approx(12 * 0.134) == pytest.approx(res.est_cost_usd, rel=0.03)
    assert [e.done for e in events] == list(range(1, 13)) and events[-1].ok == 12
    run = store.get_run(res.run_id)
    assert run["status"] == "complete" and run["summary"]["ok"] == 12


def test_progress_runs_off_the_timing_loop_in_order_and_its_failure_is_raised():
    """on_progress runs on a thread with no event loop (the loop that stamps request times is
    never held by a callback), events arrive in order, and a failing callback is raised after
    the sweep has recorded every call."""
    seen = []

    def slow_callback(event):
        with pytest.raises(RuntimeError):
            asyncio.get_running_loop()  # not the sweep's loop: no loop runs on this thread
        seen.append((event.done, threading.current_thread().name))
        time.sleep(0.002)

    store = RunStore.memory()
    res = _run(Plan(prompts=["a"], repetitions=8), factory(), store, concurrency=4, on_progress=slow_callback)
    assert [d for d, _ in seen] == list(range(1, 9)) and {name for _, name in seen} == {"nbp-progress"}
    assert res.ok == 8

    def broken(event):
        raise ValueError("a broken progress callback")

    with pytest.raises(ValueError, match="broken progress callback"):
        _run(Plan(prompts=["b"], repetitions=3), factory(), store, concurrency=2, on_progress=broken)
    assert (store.attempts()["status"] == "ok").sum() == 8 + 3  # every call recorded before the raise


def test_fixed_concurrency_is_respected():
    make = factory(delay_s=0.01)
    _run(Plan(prompts=["a"], repetitions=20), make, RunStore.memory(), concurrency=4)
    assert make.made[0].max_in_flight == 4


def test_adaptive_starts_small_and_grows():
    make = factory(delay_s=0.005)
    res = _run(Plan(prompts=["a"], repetitions=60), make, RunStore.memory(), concurrency="adaptive", max_concurrency=6)
    assert res.final_concurrency_limit > 2 and res.peak_concurrency <= 6


def test_spend_cap_refuses_plan_before_any_request():
    make = factory()
    with pytest.raises(SpendCapExceeded, match="spend_cap_usd=1.0"):
        run_sweep(Plan(prompts=["a"], repetitions=10), make, store=RunStore.memory(), spend_cap_usd=1.0, progress=False)
    assert make.made == []


def test_spend_cap_stops_a_running_sweep_when_recorded_cost_reaches_it():
    # Failures cost nothing, so the plan fits the cap; the scripted client charges more than estimated.
    store = RunStore.memory()

    class Dear(ScriptedClient):
        async def generate(self, *a, **kw):
            gen = await super().generate(*a, **kw)
            extra = gen.attempts[0].replace(cost_usd=0.5)
            self.sink.attempt_finished(extra)
            return gen

    def make(*, sink, pacer, retry_budget, output_dir):
        return Dear(sink=sink, pacer=pacer)

    res = _run(Plan(prompts=["a"], repetitions=10), make, store, spend_cap_usd=1.5, concurrency=1)
    assert res.stopped_reason == "spend_cap"
    assert res.run_cost_usd <= 1.5 and res.calls < 10


def test_error_rate_stops_the_sweep():
    make = factory(outcome=lambda p, n: "server_error" if n > 3 else None)
    res = _run(
        Plan(prompts=["a"], repetitions=100),
        make,
        RunStore.memory(),
        concurrency=1,
        max_error_rate=0.5,
        error_window=10,
    )
    assert res.stopped_reason == "error_rate" and res.calls < 30


@pytest.mark.parametrize(
    "kw, match",
    [
        ({"concurrency": 0}, "concurrency=0"),
        ({"concurrency": -3}, "concurrency=-3"),
        ({"concurrency": "fast"}, "concurrency='fast'"),
        ({"spend_cap_usd": 0.01}, "below the price of one request"),
        ({"arrival": "poisson"}, "needs rate_per_min"),
        ({"arrival": "bursty", "rate_per_min": 5}, "arrival='bursty'"),
        ({"rate_per_min": -1}, "rate_per_min=-1"),
        ({"run_id": "no-such-run"}, "run_id='no-such-run'"),
    ],
)
def test_bad_options_fail_before_any_request(kw, match):
    make = factory()
    plan = None if "run_id" in kw else Plan(prompts=["a"])
    with pytest.raises(ConfigError, match=match):
        run_sweep(plan, make, store=RunStore.memory(), progress=False, **kw)
    assert make.made == []


def test_stop_event_cancels_cleanly_with_every_record_intact():
    store = RunStore.memory()
    gate = threading.Event()
    make = factory(gate=gate)
    handle = start_sweep(
        Plan(prompts=["a"], repetitions=50), make, store=store, progress=False, concurrency=4, spend_cap_usd=100.0
    )
    while store.attempts(run_ids=[handle.run_id]).empty:
        time.sleep(0.001)  # polling a condition, not sleeping to wait for one
    handle.stop()
    gate.set()
    res = handle.result(timeout=10)
    assert handle.done and res.stopped_reason == "stopped"
    frame = store.attempts(run_ids=[res.run_id])
    assert 1 <= len(frame) <= 8 and "started" not in set(frame["status"])
    assert store.get_run(res.run_id)["status"] == "stopped"


def test_resume_runs_only_what_is_missing_and_marks_interrupted():
    store = RunStore.memory()
    plan = Plan(prompts=["a", "b"], repetitions=5)
    make = factory(outcome=lambda p, n: "server_error" if n % 3 == 0 else None)
    first = _run(plan, make, store, concurrency=2, max_error_rate=1.0)
    assert first.failed > 0
    # simulate a crash: one attempt left "started"
    store.attempt_started(Attempt("crash-1", "crash", 1, run_id=first.run_id, request_key="zzz"))
    second = _run(None, factory(), store, run_id=first.run_id)
    assert second.skipped == first.ok and second.calls == first.failed and second.interrupted_marked == 1
    frame = store.attempts(run_ids=[first.run_id])
    ok = frame[frame.status == "ok"]
    assert ok["request_key"].is_unique and set(ok["request_key"]) == {i.request_key for i in plan.items()}
    assert (frame.loc[frame.attempt_id == "crash-1", "error_kind"] == "cancelled").all()
    assert store.run_cost_usd(first.run_id) == pytest.approx(10 * 0.134)
    third = _run(None, factory(), store, run_id=first.run_id)
    assert third.calls == 0 and third.skipped == 10
    with pytest.raises(ConfigError, match="differs"):
        _run(Plan(prompts=["other"]), factory(), store, run_id=first.run_id)


def test_open_loop_records_arrival_times_as_scheduled():
    store = RunStore.memory()
    res = _run(
        Plan(prompts=["a"], repetitions=10), factory(), store, arrival="fixed", rate_per_min=600, time_scale=0.1
    )  # one arrival every 10 ms
    frame = store.attempts(run_ids=[res.run_id]).sort_values("scheduled_at")
    gaps = frame["scheduled_at"].diff().dropna()
    assert gaps.mean() == pytest.approx(0.01, rel=0.05)
    assert res.requested_rate_per_min == 600 and res.achieved_rate_per_min > 300


def test_poisson_arrivals_are_seeded():
    def gaps(seed):
        store = RunStore.memory()
        res = _run(
            Plan(prompts=["a"], repetitions=8, seed=seed),
            factory(),
            store,
            arrival="poisson",
            rate_per_min=6000,
            time_scale=1.0,
        )
        s = store.attempts(run_ids=[res.run_id]).sort_values("scheduled_at")["scheduled_at"]
        return s.diff().dropna().round(4).tolist()

    g = gaps(1)
    assert len(g) == 7 and len(set(g)) > 3  # not evenly spaced


def test_open_loop_caps_calls_in_flight_and_records_the_wait_as_queue():
    # arrivals every 10 ms, each call takes 100 ms: uncapped, ~10 would be in flight
    store = RunStore.memory()
    make = factory(delay_s=0.1)
    res = _run(
        Plan(prompts=["a"], repetitions=20),
        make,
        store,
        arrival="fixed",
        rate_per_min=6000,
        time_scale=1.0,
        concurrency=3,
        canary=False,
    )  # no lone first call: the schedule from the start
    assert res.ok == 20
    assert make.made[0].max_in_flight == 3
    frame = store.attempts(run_ids=[res.run_id]).sort_values("scheduled_at")
    waited = (frame["sent_at"] - frame["scheduled_at"]).to_numpy()
    # the later arrivals queued behind the cap: 20 calls / 3 at a time x 0.1 s vs 0.2 s of arrivals
    assert waited[-1] > 0.3 and waited[0] < 0.05
    gaps = frame["scheduled_at"].diff().dropna()
    assert gaps.mean() == pytest.approx(0.01, rel=0.1)  # arrivals kept their schedule
