"""The circuit breaker rides out an overload incident: it stops burning attempts while the
service is down, probes, and lets the run complete afterwards."""

from __future__ import annotations

import asyncio
import copy

import pytest

from nbp_kit import emulator
from nbp_kit.emulator import load_profile
from nbp_kit.errors import ConfigError
from nbp_kit.records import Attempt
from nbp_kit.runs.breaker import CircuitBreaker
from nbp_kit.runs.plan import Plan
from nbp_kit.runs.runner import run_sweep
from nbp_kit.runs.store import RunStore


def _overloaded():
    return Attempt("a", "c", 1, status="error", error_kind="overloaded")


def test_breaker_opens_probes_half_open_and_closes_on_a_virtual_clock():
    t = [0.0]
    slept: list[float] = []

    async def sleep(s):
        slept.append(s)
        t[0] += s

    b = CircuitBreaker(threshold=3, open_s=30.0, max_open_s=100.0, clock=lambda: t[0], sleep=sleep)
    for _ in range(2):
        b.on_attempt(_overloaded())
    b.on_attempt(Attempt("a", "c", 1, status="ok"))  # a success resets the count
    for _ in range(3):
        b.on_attempt(_overloaded())
    assert b.state == "open" and b.open_until == 30.0
    asyncio.run(b.acquire())  # waits the open time out, then is the one probe
    assert t[0] == pytest.approx(30.0) and b.state == "half_open" and b.probing
    b.on_attempt(_overloaded())  # the probe failed: open twice as long
    assert b.state == "open" and b.open_until == pytest.approx(90.0)
    asyncio.run(b.acquire())
    b.on_attempt(Attempt("a", "c", 1, status="ok"))
    assert b.state == "closed" and b.open_s == 30.0
    assert [s for _, s in b.events] == ["open", "half_open", "open", "half_open", "closed"]
    with pytest.raises(ConfigError, match="breaker_threshold=0"):
        CircuitBreaker(threshold=0)


def _incident_profile(length_min: float):
    profile = copy.deepcopy(load_profile("instant"))
    profile["quotas"] = {"rpm": None, "images_per_min": None, "concurrent": None, "images_per_day": None}
    profile["incidents"] = [{"start_min": 0, "length_min": length_min, "severity": 1.0}]
    profile["name"] = "incident"
    return profile


def _sweep_through_incident(breaker: bool):
    scale = 0.02  # 30 service minutes = 36 s
    with emulator.start(_incident_profile(30), time_scale=scale, faults=False) as emu:
        store = RunStore.memory()
        res = run_sweep(
            Plan(prompts=["a cat"], repetitions=150),
            emu,
            store=store,
            progress=False,
            save_images=False,
            spend_cap_usd=60.0,
            breaker=breaker,
            max_error_rate=1.0,
            max_concurrency=4,
        )
    frame = store.attempts(run_ids=[res.run_id])
    return res, int((frame["error_kind"] == "overloaded").sum())


def test_a_30_minute_incident_wastes_5x_fewer_attempts_with_the_breaker_and_the_run_completes():
    with_breaker, wasted_with = _sweep_through_incident(True)
    without, wasted_without = _sweep_through_incident(False)
    assert wasted_without >= 5 * wasted_with, (wasted_without, wasted_with)
    assert with_breaker.stopped_reason == "completed" and with_breaker.ok >= 145
    assert with_breaker.breaker["opened"] >= 2 and with_breaker.breaker["state"] == "closed"
    assert without.ok < with_breaker.ok  # without it, calls ran into the incident and were lost


def test_fallback_model_takes_the_calls_while_the_breaker_holds_the_plans_model():
    """An incident hits Pro only (capacity is per model): with fallback_model the calls the
    breaker would hold go to Flash, every item succeeds once, and Pro takes the calls again
    after the incident."""
    flash = "gemini-3.1-flash-image-preview"
    profile = _incident_profile(8)  # 9.6 s at this scale, Pro only, after the canary call
    profile["incidents"][0].update(start_min=1, models=["gemini-3-pro-image"])
    profile["latency"]["zero"] = False  # Pro ~0.35 s a call; Flash made slower (0.7 s) so it cannot
    profile["models"][flash]["speed"] = 2.0  # drain the plan before the incident ends
    with emulator.start(profile, time_scale=0.02, faults=False) as emu:
        store = RunStore.memory()
        plan = Plan(prompts=["a cat"], repetitions=80)  # outlasts the incident and the breaker's reopenings
        res = run_sweep(
            plan,
            emu,
            store=store,
            progress=False,
            save_images=False,
            spend_cap_usd=60.0,
            max_concurrency=4,
            fallback_model=flash,
        )
    frame = store.attempts(run_ids=[res.run_id])
    ok = frame[frame["status"] == "ok"]
    assert res.stopped_reason == "completed" and sorted(ok["request_key"]) == sorted(
        i.request_key for i in plan.items()
    )
    assert res.breaker["opened"] >= 1 and res.fallback_calls >= 5
    by_model = ok.groupby("model")["sent_at"].agg(["count", "max"])
    assert by_model.loc[flash, "count"] == res.fallback_calls
    # back on Pro once the incident passed: the last success went to the plan's model
    assert ok.sort_values("sent_at")["model"].iloc[-1] == "gemini-3-pro-image"
    assert store.get_run(res.run_id)["meta"]["fallback_model"] == flash


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"fallback_model": "gemini-9"}, r"fallback_model='gemini-9' is not accepted; use one of"),
        (
            {"fallback_model": "gemini-3-pro-image"},
            r"fallback_model='gemini-3-pro-image' is not accepted; it is the plan",
        ),
        (
            {"fallback_model": "gemini-3.1-flash-image-preview", "breaker": False},
            r"fallback_model=.* needs breaker=True",
        ),
    ],
)
def test_fallback_model_bad_values_are_refused_before_any_request(options, message):
    with pytest.raises(ConfigError, match=message):
        run_sweep(Plan(prompts=["a"]), {"base_url": "http://127.0.0.1:9"}, store=RunStore.memory(), **options)


def test_incident_models_limit_an_incident_and_bad_ones_are_refused():
    from nbp_kit.emulator.model import Incidents

    spec = [{"start_min": 0, "length_min": 1, "severity": 0.7, "models": ["gemini-3-pro-image"]}]
    incidents = Incidents(spec, time_scale=1.0)
    assert incidents.severity("gemini-3-pro-image") == 0.7 and incidents.severity("other") == 0.0
    with pytest.raises(ConfigError, match="models is a list of model ids"):
        Incidents([{"start_min": 0, "length_min": 1, "severity": 1, "models": "pro"}], time_scale=1.0)
