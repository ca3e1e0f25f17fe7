"""Sweeps against the real emulator on loopback."""

from __future__ import annotations

import copy
import hashlib
from pathlib import Path

import pytest

from nbp_kit.emulator import load_profile
from nbp_kit.runs.plan import Plan
from nbp_kit.runs.runner import run_sweep
from nbp_kit.runs.store import RunStore


def test_preflight_cost_matches_recorded_cost_within_one_percent(emulator, tmp_path):
    store = RunStore(tmp_path / "s.sqlite")
    plan = Plan(
        prompts=["an orange cat", "a lighthouse at dusk in watercolour", "a bowl of ramen, top view"],
        resolutions=["1K", "2K"],
        repetitions=2,
        seed=5,
    )
    pf = plan.preflight(concurrency=4, time_scale=emulator.time_scale, profile=emulator.profile_name)
    res = run_sweep(plan, emulator, store=store, concurrency=4, progress=False, output_dir=tmp_path / "img")
    assert res.ok == 12 and res.failed == 0
    assert res.run_cost_usd == pytest.approx(pf.est_cost_usd, rel=0.01)
    frame = store.attempts(run_ids=[res.run_id])
    assert frame["cost_usd"].sum() == pytest.approx(res.run_cost_usd)
    # every image is on disk and matches its recorded hash
    for row in frame.itertuples():
        data = Path(row.image_path).read_bytes()
        assert hashlib.sha256(data).hexdigest() == row.image_sha256
    assert set(frame["clock"]) == {"scaled"} and set(frame["time_scale"]) == {emulator.time_scale}
    run = store.get_run(res.run_id)
    assert run["base_host"].startswith("127.0.0.1:") and run["profile"] == "default"


def test_grid_is_a_dimension_and_tiles_are_stored_with_their_attempt(emulator, tmp_path):
    store = RunStore.memory()
    plan = Plan(
        prompts=["four cats"], grids=["1x1", "2x2"], provider="relay", model="gemini-3-pro-image-preview", repetitions=2
    )
    res = run_sweep(plan, emulator, store=store, concurrency=2, progress=False, output_dir=tmp_path)
    assert res.ok == 4 and res.images == 2 * 1 + 2 * 4
    frame = store.attempts(run_ids=[res.run_id])
    grid = frame[frame["grid"] == "2x2"]
    assert all(len(p) == 4 and all(Path(x).is_file() for x in p) for p in grid["tile_paths"])
    assert res.run_cost_usd == pytest.approx(4 * 0.05)


def test_stream_transport_is_a_dimension(emulator, tmp_path):
    store = RunStore.memory()
    plan = Plan(prompts=["a cat"], transports=["unary", "stream"])
    res = run_sweep(plan, emulator, store=store, concurrency=2, progress=False, output_dir=tmp_path)
    assert res.ok == 2
    assert sorted(store.attempts(run_ids=[res.run_id])["transport"]) == ["stream", "unary"]


def test_bucket_keeps_under_an_image_quota(emulator_factory, tmp_path):
    profile = copy.deepcopy(load_profile("default"))
    profile["quotas"] = {"rpm": None, "images_per_min": 30, "concurrent": 10, "images_per_day": None}
    emu = emulator_factory(profile=profile, quotas=True, time_scale=0.02)
    store = RunStore.memory()
    plan = Plan(prompts=["a cat", "a dog"], repetitions=15)
    res = run_sweep(
        plan,
        emu,
        store=store,
        concurrency="adaptive",
        max_concurrency=10,
        images_per_min=29,
        progress=False,
        output_dir=tmp_path,
        save_images=False,
        spend_cap_usd=10,
    )
    assert res.ok == 30
    assert res.rate_limited_share < 0.05
    # 30 images at 29/min cannot finish in much under a (scaled) minute
    assert res.wall_s >= 0.9 * 60 * 0.02 * 29 / 29  # (30 - 1) gaps of 60 s / 29, scaled
