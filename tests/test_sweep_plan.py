from __future__ import annotations

import json

import pytest

from nbp_kit.errors import ConfigError, SpendCapExceeded
from nbp_kit.runs.plan import DEFAULT_SPEND_CAP_USD, Plan, check_spend_cap


def _plan(**kw):
    base = dict(
        prompts=["a cat", "a dog"], resolutions=["1K", "2K"], aspect_ratios=["1:1", "16:9"], repetitions=3, seed=0
    )
    base.update(kw)
    return Plan(**base)


def test_items_are_cross_product_times_repetitions_with_stable_keys():
    plan = _plan()
    items = plan.items()
    assert len(items) == len(plan) == 2 * 2 * 2 * 3
    keys = [i.request_key for i in items]
    assert len(set(keys)) == len(keys)
    assert [i.block for i in items] == sorted(i.block for i in items)
    # each block holds every configuration once
    for rep in range(3):
        block = [(i.prompt, i.spec.config_label) for i in items if i.block == rep]
        assert len(set(block)) == 8
    # keys do not depend on the shuffle seed: resume works after changing nothing but the order
    assert sorted(keys) == sorted(i.request_key for i in _plan(seed=99).items())


def test_same_seed_same_order_different_seed_different_order():
    a = [i.request_key for i in _plan(seed=1).items()]
    b = [i.request_key for i in _plan(seed=1).items()]
    c = [i.request_key for i in _plan(seed=2).items()]
    assert a == b
    assert a != c
    # blocks are shuffled, not left in declaration order
    declared = [(s.resolution, s.aspect_ratio) for s in _plan().specs()]
    first_block = [(i.spec.resolution, i.spec.aspect_ratio) for i in _plan(seed=1).items()[:8]]
    assert first_block != [d for d in declared for _ in range(2)]


def test_preflight_counts_cost_and_time():
    plan = _plan(grids=["1x1"])
    pf = plan.preflight(concurrency=4, time_scale=0.5)
    assert pf.requests == 24 and pf.images == 24
    assert pf.est_cost_usd == pytest.approx(24 * (1120 * 120 + 190 * 12 + 2 * 2) / 1e6)  # image + thoughts + prompt
    one = Plan(prompts=["x"], resolutions=["1K"]).preflight(concurrency=1, time_scale=1.0)
    assert one.est_time_s == pytest.approx(17.5)
    assert pf.est_time_s == pytest.approx((12 * 17.5 + 12 * 35.0) * 0.5 / 4)
    assert "24 requests" in str(pf)


def test_preflight_grid_images_and_rate_limit():
    plan = Plan(prompts=["x"], grids=["2x2"], provider="relay", model="relay-model", repetitions=10)
    pf = plan.preflight(concurrency=10, rate_per_min=5)
    assert pf.images == 40 and pf.requests == 10
    assert pf.est_time_s == pytest.approx(10 / 5 * 60)


def test_preflight_uses_emulator_profile_means():
    profile = {
        "name": "p",
        "latency": {
            "cells": {"1K": {"low": {"mean_s": 10.0, "p95_s": 12}}},
            "grid_factor": {"1x1": 1.0},
            "queue": {"mean_s": 1.0},
        },
        "models": {},
    }
    pf = Plan(prompts=["x"]).preflight(profile=profile, time_scale=0.1)
    assert pf.est_time_s == pytest.approx(1.1) and pf.source == "p"


@pytest.mark.parametrize(
    "kw, match",
    [
        ({"repetitions": 0}, "repetitions=0"),
        ({"repetitions": -2}, "repetitions=-2"),
        ({"prompts": []}, "prompts"),
        ({"prompts": [""]}, "prompts"),
        ({"resolutions": ["3K"]}, "resolution='3K'"),
        ({"provider": "openai"}, "provider='openai'"),
        ({"thinking_levels": ["high"]}, "thinking_levels contains 'high'"),
        ({"grids": ["2x2"]}, "grids contains '2x2'"),
        ({"transports": ["carrier-pigeon"]}, "transports"),
    ],
)
def test_bad_plans_are_config_errors(kw, match):
    with pytest.raises(ConfigError, match=match):
        _plan(**kw)


def test_preflight_bad_concurrency():
    for bad in (0, -1, 1.5, True):
        with pytest.raises(ConfigError, match="concurrency"):
            _plan().preflight(concurrency=bad)


def test_spend_cap():
    pf = Plan(prompts=["x"], repetitions=20).preflight()
    with pytest.raises(SpendCapExceeded) as info:
        check_spend_cap(pf, DEFAULT_SPEND_CAP_USD)
    msg = str(info.value)
    assert "spend_cap_usd=2.0" in msg and "$2.73" in msg and "--spend-cap 2.74" in msg
    check_spend_cap(pf, 2.74)
    with pytest.raises(SpendCapExceeded, match="already spent"):
        check_spend_cap(pf, 2.8, already_spent_usd=1.0)
    with pytest.raises(ConfigError, match="below the price of one request"):
        check_spend_cap(pf, 0.1)
    with pytest.raises(ConfigError, match="spend_cap_usd"):
        check_spend_cap(pf, "lots")


def test_plan_files(tmp_path):
    j = tmp_path / "p.json"
    j.write_text(json.dumps({"prompts": ["a"], "resolutions": ["1K", "2K"], "repetitions": 2, "seed": 3}))
    assert len(Plan.from_file(j)) == 4
    t = tmp_path / "p.toml"
    t.write_text('[plan]\nprompts = ["a", "b"]\nthinking_levels = ["default"]\nrepetitions = 2\n')
    plan = Plan.from_file(t)
    assert len(plan) == 4 and plan.thinking_levels == (None,)
    assert Plan.from_dict(plan.as_dict()).items() == plan.items()
    with pytest.raises(ConfigError, match="cannot be read"):
        Plan.from_file(tmp_path / "missing.json")
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(ConfigError, match="not valid"):
        Plan.from_file(bad)
    unknown = tmp_path / "u.json"
    unknown.write_text(json.dumps({"prompts": ["a"], "colour": "red"}))
    with pytest.raises(ConfigError, match="colour"):
        Plan.from_file(unknown)
