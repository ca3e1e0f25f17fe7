"""Latency model calibration, load curve, quotas and clock (no HTTP)."""

from __future__ import annotations

import csv

import numpy as np
import pytest

from nbp_kit._paths import REFERENCE_DIR
from nbp_kit.emulator.model import (
    Clock,
    LatencyModel,
    Quotas,
    hour_of_week_factors,
    parse_clock_start,
)
from nbp_kit.errors import ConfigError
from nbp_kit.profiles import load_profile


def _published_rows():
    with open(REFERENCE_DIR / "seed_measurements.csv") as f:
        rows = [r for r in csv.DictReader(line for line in f if not line.startswith("#"))]
    return [r for r in rows if r["table"] == "latency"]


@pytest.mark.parametrize("row", _published_rows(), ids=lambda r: f"{r['resolution']}-{r['thinking_level']}")
def test_default_profile_reproduces_the_seed_table(row):
    model = LatencyModel(load_profile("default"))
    rng = np.random.default_rng(7)
    draws = np.array(
        [
            model.draw(
                model="gemini-3-pro-image-preview",
                resolution=row["resolution"],
                level=row["thinking_level"],
                grid="1x1",
                load_factor=1.0,
                rng=rng,
            ).generation_s
            for _ in range(2000)
        ]
    )
    mean, p95 = draws.mean(), np.quantile(draws, 0.95)
    assert float(row["mean_low_s"]) <= mean <= float(row["mean_high_s"])
    assert abs(p95 - float(row["p95_s"])) <= 0.10 * float(row["p95_s"])


def test_heavy_tail_profile_has_a_longer_p99_than_default():
    rng = np.random.default_rng(0)
    d = LatencyModel(load_profile("default")).sample_generation("2K", "low", rng, 20000)
    h = LatencyModel(load_profile("heavy-tail")).sample_generation("2K", "low", rng, 20000)
    assert np.quantile(h, 0.99) > 1.5 * np.quantile(d, 0.99)


def test_time_scale_multiplies_generation_and_queue():
    m1 = LatencyModel(load_profile("default"), time_scale=1.0)
    m2 = LatencyModel(load_profile("default"), time_scale=0.02)
    kw = dict(model="gemini-3-pro-image-preview", resolution="2K", level="low", grid="1x1", load_factor=1.0)
    a, b = m1.draw(rng=np.random.default_rng(3), **kw), m2.draw(rng=np.random.default_rng(3), **kw)
    assert b.generation_s == pytest.approx(a.generation_s * 0.02)
    assert b.queue_s == pytest.approx(a.queue_s * 0.02)


def test_instant_profile_draws_zero():
    m = LatencyModel(load_profile("instant"))
    d = m.draw(
        model="gemini-3-pro-image-preview",
        resolution="4K",
        level="high",
        grid="3x3",
        load_factor=1.3,
        rng=np.random.default_rng(0),
    )
    assert (d.generation_s, d.queue_s) == (0.0, 0.0)


def test_us_office_hours_are_slower_on_weekdays_only():
    f = hour_of_week_factors(load_profile("default"))
    assert len(f) == 168
    peak = [f[d * 24 + h] for d in range(5) for h in range(13, 18)]
    assert all(1.1 <= x <= 1.3 for x in peak)
    assert f[2 * 24 + 3] == 1.0  # Wednesday 03:00 UTC
    assert all(f[d * 24 + h] == 1.0 for d in (5, 6) for h in range(24))


def test_virtual_clock_runs_a_week_in_minutes():
    now = [0.0]
    c = Clock(time_scale=0.02, clock_start="2026-01-05T00:00:00Z", clock_speed=2016.0, monotonic=lambda: now[0])
    assert c.kind == "virtual" and c.hour_of_week() == 0  # Monday 00:00
    now[0] = 300.0  # five real minutes = one virtual week at speed 2016
    assert c.virtual_now() - parse_clock_start("2026-01-05T00:00:00Z") == pytest.approx(7 * 86400)
    now[0] = 15 * 3600 / 2016
    assert c.hour_of_week() == 15


@pytest.mark.parametrize("bad", ["yesterday", "2026-13-45T00:00", [1]])
def test_malformed_clock_start_names_the_setting(bad):
    with pytest.raises(ConfigError, match="clock_start"):
        parse_clock_start(bad)


def test_quotas_per_minute_window_and_retry_delay():
    now = [100.0]
    q = Quotas(
        {"rpm": 2, "images_per_min": None, "concurrent": None}, time_scale=0.5, enabled=True, monotonic=lambda: now[0]
    )
    assert q.admit(1) is None
    q.release()
    now[0] += 10
    assert q.admit(1) is None
    q.release()
    quota_id, delay, daily, limit, kind = q.admit(1)
    q.release()
    assert "PerMinute" in quota_id and not daily and limit == 2 and kind == "quota"
    assert delay == pytest.approx(30 - 10)  # the window is 60 s x time_scale
    now[0] += delay
    assert q.admit(1) is None


def test_concurrency_quota():
    q = Quotas({"concurrent": 1}, time_scale=1.0, enabled=True)
    assert q.admit(1) is None
    assert q.admit(1)[0].startswith("GenerateContentConcurrent")
    q.release()
    q.release()
    assert q.active == 0


def test_app_load_factor_follows_the_virtual_clock():
    from nbp_kit.emulator.app import EmulatorApp

    def app_at(start):
        return EmulatorApp(
            profile=load_profile("default"),
            time_scale=0.02,
            clock=Clock(time_scale=0.02, clock_start=start, clock_speed=1.0),
        )

    assert app_at("2026-01-07T15:30:00Z").load_factor() == 1.3  # Wednesday, US office hours
    assert app_at("2026-01-07T03:30:00Z").load_factor() == 1.0
    assert app_at("2026-01-10T15:30:00Z").load_factor() == 1.0  # Saturday


def test_spend_limit_per_rolling_10_minutes():
    now = [0.0]
    q = Quotas(
        {"spend_usd_per_10min": 1.0, "usd_per_image": 0.25}, time_scale=0.1, enabled=True, monotonic=lambda: now[0]
    )
    for _ in range(4):
        assert q.admit(1) is None
        q.release()
        now[0] += 1.0
    rejection = q.admit(1)
    q.release()
    assert rejection is not None and rejection.kind == "spend" and rejection.limit == 1.0
    assert rejection.delay_s == pytest.approx(60.0 - 4.0)  # the first charge leaves the 60 s window
    now[0] = 60.0
    assert q.admit(1) is None
