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
