"""Sweep knobs for editing: reference images (count x size) and edit turns, run against the emulator."""

from __future__ import annotations

import pytest

from nbp_kit import Plan, RunStore, run_sweep
from nbp_kit.errors import ConfigError
from nbp_kit.runs.editing import synthetic_references


def test_plan_crosses_reference_sets_and_turns_and_keeps_plain_keys() -> None:
    plan = Plan(prompts=["a chair"], reference_images=["0x0", "2x256"], edit_turns=[1, 3])
    items = plan.items()
    assert sorted((i.references, i.edit_turns) for i in items) == [
        ((0, 0), 1),
        ((0, 0), 3),
        ((2, 256), 1),
        ((2, 256), 3),
    ]
    plain = [i for i in items if i.references == (0, 0) and i.edit_turns == 1][0]
    assert plain.request_key == Plan(prompts=["a chair"]).items()[0].request_key  # old keys unchanged
    assert len({i.request_key for i in items}) == 4
    pf = plan.preflight()
    assert pf.requests == 1 + 3 + 1 + 3
    assert pf.est_cost_usd > Plan(prompts=["a chair"]).preflight().est_cost_usd * 8
    assert plan.as_dict()["reference_images"] == ["0x0", "2x256"]
    assert Plan.from_dict(plan.as_dict()).items()[1].request_key == items[1].request_key


@pytest.mark.parametrize(
    ("kw", "needle"),
    [
        ({"reference_images": ["15x512"]}, "reference_images"),
        ({"reference_images": ["big"]}, "COUNTxSIDE"),
        ({"edit_turns": [0]}, "edit_turns"),
        ({"edit_turns": [2], "provider": "relay"}, "provider"),
    ],
)
def test_plan_refuses_bad_editing_knobs(kw: dict, needle: str) -> None:
    with pytest.raises(ConfigError, match=needle):
        Plan(prompts=["a"], **kw)


def test_synthetic_references_are_stable_and_sized() -> None:
    refs = synthetic_references(2, 128)
    assert [(r.width, r.height, r.mime) for r in refs] == [(128, 128, "image/png")] * 2
    assert synthetic_references(2, 128)[1].data == refs[1].data
    assert refs[0].data != refs[1].data


def test_sweep_runs_reference_sets_and_edit_sessions(emulator, tmp_path) -> None:
    plan = Plan(prompts=["a chair"], reference_images=["0x0", "2x128"], edit_turns=[1, 3])
    store = RunStore.memory()
    res = run_sweep(plan, emulator, store=store, concurrency=2, progress=False, output_dir=tmp_path, save_images=False)
    df = store.attempts(res.run_id)
    assert (df["status"] == "ok").all() and len(df) == 8
    sessions = df[df["session_id"].notna()]
    assert sorted(sessions.groupby("session_id")["turn"].apply(sorted).tolist()) == [[1, 2, 3], [1, 2, 3]]
    with_refs = df[df["input_images"] == 2]
    assert len(with_refs) == 2 and set(with_refs["input_pixels"]) == {2 * 128 * 128}
    # later turns replay the history: bigger uploads than the first turn
    for _, turns in sessions.groupby("session_id"):
        sizes = turns.sort_values("turn")["bytes_up"].tolist()
        assert sizes[0] < sizes[1] < sizes[2]
