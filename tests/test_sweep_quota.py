"""Quotas and money as the service enforces them: fatal errors stop at once, an untold quota is
learned, spend is paced per rolling 10 minutes. Real emulator on loopback; clocks injected for
the arithmetic."""

from __future__ import annotations

import copy
import random

import pytest

from nbp_kit import cli, emulator
from nbp_kit.emulator import load_profile
from nbp_kit.errors import ConfigError
from nbp_kit.records import Attempt
from nbp_kit.runs.plan import Plan
from nbp_kit.runs.quota import STATED_MARGIN, QuotaLearner, SpendWindow, spend_limit_value
from nbp_kit.runs.runner import run_sweep
from nbp_kit.runs.store import RunStore


def _profile(**quotas):
    profile = copy.deepcopy(load_profile("instant"))
    profile["quotas"] = {"rpm": None, "images_per_min": None, "concurrent": None, "images_per_day": None, **quotas}
    profile["name"] = "quota-test"
    return profile


# --------------------------------------------------------------------------- fatal errors
def test_wrong_key_sweep_sends_one_request_stops_says_why_and_fails(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("GEMINI_API_KEY", "not-the-key-0000")
    with emulator.start("instant", time_scale=0.01, api_key="the-right-key", quotas=False, faults=False) as emu:
        rc = cli.main(
            [
                "sweep",
                "--base-url",
                emu.base_url,
                "--prompt",
                "a cat",
                "--repetitions",
                "40",
                "--spend-cap",
                "10",
                "--no-progress",
                "--store",
                str(tmp_path / "s.sqlite"),
                "--output-dir",
                str(tmp_path),
            ]
        )
    captured = capsys.readouterr()
    attempts = RunStore(str(tmp_path / "s.sqlite")).attempts()
    assert len(attempts) == 1 and attempts["error_kind"].tolist() == ["auth"]  # one request was sent
    assert rc == cli.EXIT_FAILURES
    assert "auth" in captured.err and "API key" in captured.err
    assert "errors: auth x1" in captured.out
    assert "not-the-key-0000" not in captured.out + captured.err


def test_limit_0_stops_at_once_and_is_not_retried():
    with emulator.start(_profile(images_per_min=0), time_scale=0.01, faults=False) as emu:
        res = run_sweep(
            Plan(prompts=["a cat"], repetitions=10), emu, store=RunStore.memory(), progress=False, save_images=False
        )
    assert res.stopped_reason == "fatal" and res.fatal_kind == "no_quota"
    assert res.calls == 1 and res.attempts == 1  # one request, no retry
    assert "limit: 0" in res.fatal_message and "quota" in res.fatal_message
    assert res.errors["no_quota"]["attempts"] == 1


def test_spend_limit_429_is_clear_and_not_retried():
    with emulator.start(_profile(spend_usd_per_10min=0.3), time_scale=0.01, faults=False) as emu:
        store = RunStore.memory()
        res = run_sweep(
            Plan(prompts=["a cat"], repetitions=6), emu, store=store, progress=False, save_images=False, concurrency=1
        )
    assert res.ok == 2  # $0.268 fits under $0.30; the third image does not
    assert res.stopped_reason == "fatal" and res.fatal_kind == "spend_limit"
    assert res.attempts == 3 and "spend limit" in res.fatal_message
    frame = store.attempts(run_ids=[res.run_id])
    row = frame[frame["error_kind"] == "spend_limit"].iloc[0]
    assert "Spend" in row["quota_id"] and row["retry_delay_s"] != row["retry_delay_s"]  # NaN: no retry


def test_all_failed_run_summary_names_error_kinds():
    with emulator.start(_profile(), time_scale=0.01, faults=False) as emu:
        res = run_sweep(
            Plan(prompts=["a cat"], repetitions=3, model="gemini-no-such-model"),
            emu,
            store=RunStore.memory(),
            progress=False,
            save_images=False,
        )
    assert res.ok == 0 and res.fatal_kind == "not_found" and res.calls == 1
    assert set(res.errors) == {"not_found"} and res.errors["not_found"]["sample"]


# --------------------------------------------------------------------------- learning the quota
def _throttle(**quota):
    return Attempt("a", "c", 1, status="error", error_kind="rate_limited", **quota)


def test_learner_takes_a_stated_limit_at_once():
    t = [0.0]
    q = QuotaLearner(time_scale=1.0, clock=lambda: t[0])
    assert [q.reserve() for _ in range(3)] == [0.0, 0.0, 0.0]  # nothing learned: no pacing
    q.on_attempt(_throttle(quota_id="GenerateContentImagesPerMinutePerProject", quota_value=7.0))
    assert q.rate_per_min == pytest.approx(7 * STATED_MARGIN)
    waits = [q.reserve() for _ in range(3)]
    assert waits[1] - waits[0] == pytest.approx(60 / (7 * STATED_MARGIN))
    q.on_attempt(_throttle(quota_id="GenerateRequestsPerDayPerProjectPerModel", quota_value=20.0))
    assert q.rate_per_min == pytest.approx(7 * STATED_MARGIN)  # a daily quota is not a rate


def test_learner_cuts_on_a_bare_429_and_recovers_cubically():
    t = [0.0]
    q = QuotaLearner(time_scale=1.0, clock=lambda: t[0])
    for _ in range(10):  # 10 sends in the last minute
        q.reserve()
        t[0] += 5.0
    q.on_attempt(_throttle())
    assert q.rate_per_min == pytest.approx(7.0)  # 0.7 x the measured 10/min
    q.on_attempt(_throttle())
    assert q.rate_per_min == pytest.approx(7.0)  # one cut per minute
    rates = []
    while t[0] < 6 * 60.0:  # six minutes of sends as fast as the learned rate allows
        t[0] += q.reserve() + 0.01
        rates.append(q.rate_per_min)
    assert rates == sorted(rates) and rates[-1] > 10.0  # flat near w_max, then probing above it


@pytest.mark.parametrize("quota_per_min", [13])
def test_untold_per_minute_quota_is_learned_nothing_lost(quota_per_min):
    with emulator.start(_profile(images_per_min=quota_per_min), time_scale=0.05, faults=False) as emu:
        res = run_sweep(
            Plan(prompts=["a cat"], repetitions=40),
            emu,
            store=RunStore.memory(),
            progress=False,
            save_images=False,
            spend_cap_usd=10.0,
        )
    assert res.ok == 40 and res.failed == 0
    assert res.stated_quota_per_min == quota_per_min
    assert res.learned_rate_per_min == pytest.approx(quota_per_min * STATED_MARGIN)
    # The first 429 states the limit; after it the pause and the bucket hold. Calls already in
    # flight when it arrived can still meet one each (no slow start before the first 429 yet).
    assert res.rate_limited <= res.peak_concurrency
    assert res.rate_history and res.retries >= res.rate_limited


# --------------------------------------------------------------------------- spend per 10 minutes
def test_spend_presets_and_bad_values():
    assert [spend_limit_value(v) for v in ("tier1", "tier2", "tier3", 25, None)] == [10.0, 50.0, 200.0, 25.0, None]
    with pytest.raises(ConfigError, match=r"spend_rate_usd_per_10min='tier9' is not accepted"):
        spend_limit_value("tier9")
    with pytest.raises(ConfigError, match="spend_rate_usd_per_10min=-1"):
        run_sweep(Plan(prompts=["a"]), {}, spend_rate_usd_per_10min=-1)


def test_spend_window_never_exceeds_10_dollars_in_any_rolling_10_minutes():
    # A virtual clock: 300 calls of $0.134 each, durations 20-120 s, up to 8 at a time.
    rng = random.Random(3)
    now = [0.0]
    window = SpendWindow(10.0, clock=lambda: now[0])
    charges: list[tuple[float, float]] = []
    in_flight: list[tuple[float, int]] = []  # (end time, ticket)
    pending = 300
    while pending or in_flight:
        wait = None
        while pending and len(in_flight) < 8:
            ticket, w = window.try_start(0.134)
            if ticket is None:
                wait = w
                break
            in_flight.append((now[0] + rng.uniform(20, 120), ticket))
            pending -= 1
        in_flight.sort()
        candidates = [in_flight[0][0]] if in_flight else []
        if wait is not None:
            candidates.append(now[0] + wait)
        now[0] = min(candidates)
        while in_flight and in_flight[0][0] <= now[0]:
            _, ticket = in_flight.pop(0)
            window.finish(ticket, 0.134)
            charges.append((now[0], 0.134))
    ends = [t for t, _ in charges]
    worst = max(sum(u for t, u in charges if s <= t < s + 600) for s in ends)
    assert len(charges) == 300 and worst <= 10.0 + 1e-9
    assert worst > 9.0  # the limit is used, not just respected
    assert window.implied_time_s(300 * 0.134) == pytest.approx((40.2 / 10 - 1) * 600)


def test_sweep_under_a_spend_rate_keeps_every_window_within_it():
    scale = 0.005  # a service minute is 0.3 s
    with emulator.start(_profile(spend_usd_per_10min=1.0), time_scale=scale, faults=False) as emu:
        store = RunStore.memory()
        res = run_sweep(
            Plan(prompts=["a cat"], repetitions=20),
            emu,
            store=store,
            progress=False,
            save_images=False,
            spend_rate_usd_per_10min=1.0,
            spend_cap_usd=10.0,
        )
    assert res.ok == 20 and "spend_limit" not in res.errors  # the service's own limit never tripped
    frame = store.attempts(run_ids=[res.run_id])
    frame = frame[frame["cost_usd"] > 0]
    ends = sorted(frame["ended_at"].tolist())
    costs = dict(zip(frame["ended_at"], frame["cost_usd"], strict=True))
    window = 600 * scale
    worst = max(sum(costs[t] for t in ends if s <= t < s + window) for s in ends)
    assert worst <= 1.0 + 1e-9
    assert res.spend_wait_s > 0 and res.wall_s >= 2 * window * 0.9  # $2.68 at $1 per window: >= 2 windows
    pf = store.get_run(res.run_id)["meta"]["preflight"]
    assert pf["spend_rate_time_s"] == pytest.approx((res.est_cost_usd / 1.0 - 1) * window)


def test_a_stated_concurrency_quota_caps_calls_in_flight():
    from nbp_kit.runs.pacing import ConcurrencyLimiter, SweepPacer

    limiter = ConcurrencyLimiter(cap=16, adaptive=True)
    pacer = SweepPacer(limiter=limiter)
    pacer.release(_throttle(quota_id="GenerateContentConcurrentRequestsPerProject", quota_value=10.0))
    assert limiter.cap == 10 and limiter.limit <= 10
