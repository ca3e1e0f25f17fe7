"""Cost, turnaround and advice per mode, on frames with planted truth."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from nbp_kit.analysis.modes import mode_summary, recommend_mode
from nbp_kit.errors import ConfigError
from nbp_kit.plots import mode_turnaround_figure
from nbp_kit.records import Attempt


def _interactive(n=60, mean_s=20.0, sd_s=2.0, cost=0.134, seed=0):
    rng = np.random.default_rng(seed)
    rows = []
    for i, lat in enumerate(rng.normal(mean_s, sd_s, n)):
        rows.append(
            Attempt(
                attempt_id=f"i{i}",
                call_id=f"i{i}",
                attempt_no=1,
                status="ok",
                run_id="inter",
                transport="unary",
                scheduled_at=1000.0 + i,
                sent_at=1000.0 + i,
                ended_at=1000.0 + i + lat,
                total_s=lat,
                cost_usd=cost,
            )
        )
    return rows


def _batch_jobs(ok_jobs=8, expired_jobs=2, items=5, turnaround_s=3600.0, time_scale=1.0, cost=0.067):
    rows = []
    for j in range(ok_jobs + expired_jobs):
        expired = j >= ok_jobs
        for i in range(items):
            total = turnaround_s * (1 + 0.1 * j) * time_scale if not expired else 48 * 3600 * time_scale
            rows.append(
                Attempt(
                    attempt_id=f"b{j}-{i}",
                    call_id=f"b{j}-{i}",
                    attempt_no=1,
                    run_id=f"job{j}",
                    transport="batch",
                    status="error" if expired else "ok",
                    error_kind="batch_expired" if expired else None,
                    scheduled_at=0.0,
                    ended_at=total,
                    total_s=total,
                    cost_usd=None if expired else cost,
                    time_scale=time_scale,
                )
            )
    return rows


def _frame(rows):
    return pd.DataFrame([r.as_dict() for r in rows])


def test_summary_reads_cost_per_image_and_jobs_not_delivered():
    frame = _frame(_interactive() + _batch_jobs(time_scale=0.01))
    s = mode_summary(frame).set_index("mode")
    assert s.loc["interactive", "cost_per_image_usd"] == pytest.approx(0.134)
    assert s.loc["batch", "cost_per_image_usd"] == pytest.approx(0.067)
    assert s.loc["batch", "images_per_usd"] == pytest.approx(1 / 0.067)
    assert s.loc["batch", "jobs"] == 10 and s.loc["batch", "jobs_not_succeeded"] == 2
    # times scaled x0.01 on the emulator come back in service seconds, per job
    assert s.loc["batch", "turnaround_p50_s"] == pytest.approx(np.median([3600 * (1 + 0.1 * j) for j in range(8)]))
    assert s.loc["interactive", "turnaround_p50_s"] == pytest.approx(20, abs=1.5)


def test_a_billed_failure_raises_the_cost_per_delivered_image():
    rows = _interactive(n=10, cost=0.1)
    rows[0] = rows[0].replace(status="error", error_kind="timeout", cost_usd=0.1)
    s = mode_summary(_frame(rows)).set_index("mode")
    assert s.loc["interactive", "cost_per_image_usd"] == pytest.approx(1.0 / 9)


def test_a_risky_batch_queue_sends_the_job_interactive():
    frame = _frame(_interactive() + _batch_jobs(ok_jobs=8, expired_jobs=2))
    advice = recommend_mode(frame, n_images=1000, deadline_s=24 * 3600, concurrency=8)
    opts = advice.as_frame().set_index("mode")
    assert opts.loc["batch", "risk"] == pytest.approx(0.2)  # 2 of 10 jobs expired
    assert opts.loc["interactive", "risk"] < 1e-6  # 125 rounds x 20 s is far below a day
    assert opts.loc["interactive", "expected_finish_s"] == pytest.approx(125 * 20, rel=0.05)
    assert advice.choice == "interactive"
    assert opts.loc["batch", "expected_cost_usd"] == pytest.approx(1000 * 0.067)


def test_a_reliable_batch_queue_wins_on_price_but_few_jobs_are_flagged():
    frame = _frame(_interactive() + _batch_jobs(ok_jobs=40, expired_jobs=0, turnaround_s=600))
    advice = recommend_mode(frame, n_images=1000, deadline_s=24 * 3600)
    opt = advice.as_frame().set_index("mode").loc["batch"]
    assert advice.choice == "batch" and opt["risk"] == 0
    # exact binomial: 0 misses in 40 jobs -> upper bound 1 - 0.025 ** (1 / 40)
    assert opt["risk_upper95"] == pytest.approx(1 - 0.025 ** (1 / 40), rel=1e-6)
    assert "measure more jobs" in advice.reason


def test_a_tight_deadline_rules_out_batch_and_names_the_least_risky():
    frame = _frame(_interactive() + _batch_jobs(ok_jobs=10, expired_jobs=0, turnaround_s=3600))
    advice = recommend_mode(frame, n_images=80, deadline_s=600, concurrency=8)
    assert advice.choice == "interactive"  # 10 rounds x 20 s = 200 s < 600 s; every job took an hour
    assert advice.as_frame().set_index("mode").loc["batch", "risk"] == 1.0
    normal_risk = advice.as_frame().set_index("mode").loc["interactive", "risk"]
    assert normal_risk < 1e-6 and not math.isnan(normal_risk)


@pytest.mark.parametrize(
    "kw, message",
    [
        ({"n_images": 0}, "n_images=0 is not accepted"),
        ({"deadline_s": -1}, "deadline_s=-1 is not accepted"),
        ({"concurrency": 0}, "concurrency=0 is not accepted"),
        ({"max_risk": 1.5}, "max_risk=1.5 is not accepted"),
    ],
)
def test_bad_input_names_the_argument(kw, message):
    args = {"n_images": 10, "deadline_s": 60, **kw}
    with pytest.raises(ConfigError, match=message):
        recommend_mode(_frame(_interactive()), **args)


def test_figure_has_one_box_per_mode_with_data():
    fig = mode_turnaround_figure(_frame(_interactive() + _batch_jobs()))
    assert [t.type for t in fig.data] == ["box", "box"]
    assert fig.data[1].name.startswith("batch (2 of 10 jobs not delivered)") and len(fig.data[1].y) == 8
    assert fig.layout.yaxis.type == "log"
