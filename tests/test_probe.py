from __future__ import annotations

import threading

import pytest

from nbp_kit.errors import ConfigError
from nbp_kit.runs.probe import run_probe
from nbp_kit.runs.store import RunStore


def test_half_a_virtual_day_of_probes_runs_in_seconds(emulator_factory):
    speed = 3600.0 * 2  # two virtual hours per real second
    emu = emulator_factory(time_scale=0.01, clock_start="2026-01-05T00:00:00Z", clock_speed=speed)
    store = RunStore.memory()
    rounds_seen = []
    res = run_probe(
        emu,
        store=store,
        interval_min=120,
        jitter_frac=0.2,
        duration_h=12,
        seed=3,
        on_round=lambda n, usd: rounds_seen.append(n),
    )
    assert res.rounds == 6 and rounds_seen == list(range(1, 7))
    assert 7.5 <= res.virtual_span_h  # 5 gaps of 2 h - 20 % jitter at least
    frame = store.attempts(run_ids=[res.run_id])
    models = frame[frame["transport"] == "models"]
    gens = frame[frame["transport"] == "unary"]
    assert len(models) == 6 and len(gens) == 6
    assert (models["cost_usd"] == 0).all() and models["status"].eq("ok").all()
    assert models["wait_s"].notna().all() and models["virtual_at"].notna().all()
    assert set(gens["clock"]) == {"virtual"}
    # virtual times advance by roughly the interval, not by the real seconds between rounds
    gaps_h = models.sort_values("virtual_at")["virtual_at"].diff().dropna() / 3600
    # (a round that outlasts its gap on a loaded machine starts late, so only the median has an upper bound)
    # (the first round also opens the connection, a few virtual minutes at this clock speed)
    assert (gaps_h >= 1.3).all() and 1.6 <= gaps_h.median() <= 2.6
    assert store.get_run(res.run_id)["tags"] == ["probe"]


def test_probe_stops_on_event_and_at_spend_cap(emulator):
    stop = threading.Event()
    store = RunStore.memory()
    res = run_probe(
        emulator,
        store=store,
        interval_min=0.001,
        rounds=50,
        stop_event=stop,
        on_round=lambda n, usd: stop.set() if n == 2 else None,
    )
    assert res.rounds == 2 and res.stopped_reason == "stopped"
    capped = run_probe(emulator, store=store, interval_min=0.001, rounds=50, spend_cap_usd=0.3)
    assert capped.stopped_reason == "spend_cap" and capped.rounds == 2 and capped.cost_usd <= 0.3


@pytest.mark.parametrize(
    "kw, match",
    [
        ({"interval_min": 0, "rounds": 1}, "interval_min=0"),
        ({"rounds": 0}, "rounds=0"),
        ({}, "never end"),
        ({"rounds": 1, "spend_cap_usd": 0.01}, "below the price"),
        ({"rounds": 1, "specs": []}, "specs"),
        ({"rounds": 1, "jitter_frac": 1.5}, "jitter_frac"),
    ],
)
def test_probe_bad_input(emulator, kw, match):
    store = RunStore.memory()
    with pytest.raises(ConfigError, match=match):
        run_probe(emulator, store=store, **kw)
    assert store.runs().empty
