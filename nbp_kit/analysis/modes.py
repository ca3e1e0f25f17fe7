"""Interactive or batch: cost and turnaround per mode, and which mode to use for N images by a deadline.

A mode is read from the attempts' ``transport``: ``unary``/``stream`` are *interactive*,
``batch`` is the Batch API (see :mod:`nbp_kit.runs.batch`), ``flex`` the Flex tier. Times are
converted to service seconds (``total_s / time_scale``) so emulator runs speak in the
service's time, like the deadline.

:func:`mode_summary` gives, per mode, cost per delivered image, images per dollar and the
turnaround distribution. :func:`recommend_mode` answers "N images by a deadline":

* **interactive**: ``k = ceil(N / success_rate / concurrency)`` rounds of calls back to back;
  the finish time is approximately normal, mean ``k * m``, standard deviation ``sqrt(k) * s``
  (``m``, ``s``: mean and standard deviation of one call's latency, retries included), so the
  risk of missing the deadline is ``1 - Phi((deadline - k m) / (sqrt(k) s))``. Quotas are not
  modelled: set ``concurrency`` to what the quota allows.
* **batch**: the unit of replication is the *job* (its items share one queue), so the risk is
  the share of past jobs that did not succeed within the deadline (expired, cancelled, failed or
  late), with a Clopper-Pearson 95 % upper bound (scipy). A few jobs give a wide bound: the
  advice says so rather than trusting the point estimate.

The cheapest mode whose risk is at most ``max_risk`` is chosen; when none is, the least risky.

>>> from nbp_kit.analysis.synthetic import synthetic_attempts
>>> advice = recommend_mode(synthetic_attempts(200, seed=1), n_images=100, deadline_s=3600)
>>> advice.choice
'interactive'
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from ..errors import ConfigError
from .frames import require_frame, user_calls

MODE_OF_TRANSPORT: dict[str, str] = {"unary": "interactive", "stream": "interactive", "batch": "batch", "flex": "flex"}
MODES: tuple[str, ...] = ("interactive", "flex", "batch")


def _with_mode(df: pd.DataFrame) -> pd.DataFrame:
    require_frame(df, ("transport", "status", "total_s", "cost_usd", "call_id", "run_id", "ended_at"))
    out = df[df["status"] != "started"].copy()
    out["mode"] = out["transport"].map(MODE_OF_TRANSPORT).fillna("interactive")
    scale = (
        pd.to_numeric(out["time_scale"], errors="coerce").fillna(1.0)
        if "time_scale" in out.columns
        else pd.Series(1.0, index=out.index)
    )
    out["_scale"] = scale.where(scale > 0, 1.0)
    out["service_s"] = pd.to_numeric(out["total_s"], errors="coerce") / out["_scale"]
    return out


def _calls(g: pd.DataFrame) -> pd.DataFrame:
    """One row per user call (retries included), latency in service seconds."""
    calls = user_calls(g, by=["_scale"])
    calls["user_latency_s"] = calls["user_latency_s"] / calls["_scale"]
    return calls


def _jobs(frame: pd.DataFrame) -> pd.DataFrame:
    """One row per batch job (run): its turnaround (service s) and whether it delivered."""
    rows = []
    for run_id, g in frame.groupby("run_id", sort=False):
        kinds = set(g["error_kind"].dropna()) if "error_kind" in g else set()
        failed_job = kinds & {"batch_expired", "batch_cancelled", "batch_failed"}
        rows.append(
            {
                "run_id": run_id,
                "turnaround_s": float(g["service_s"].max()),
                "succeeded": not failed_job,
                "outcome": min(failed_job) if failed_job else "succeeded",
            }
        )
    return pd.DataFrame(rows, columns=["run_id", "turnaround_s", "succeeded", "outcome"])


def mode_summary(df: pd.DataFrame) -> pd.DataFrame:
    """Per mode: items, delivered images, cost per delivered image, images per dollar,
    turnaround P50/P90/max (service seconds; per call for interactive, per job for batch),
    and for batch the jobs run and how many did not succeed.

    >>> from nbp_kit.analysis.synthetic import synthetic_attempts
    >>> mode_summary(synthetic_attempts(100, seed=1))["mode"].tolist()
    ['interactive']
    """
    frame = _with_mode(df)
    rows = []
    for mode in [m for m in MODES if m in set(frame["mode"])]:
        g = frame[frame["mode"] == mode]
        delivered = int((g["status"] == "ok").sum())
        cost = float(pd.to_numeric(g["cost_usd"], errors="coerce").fillna(0).sum())
        if mode == "batch":
            jobs = _jobs(g)
            turn = jobs.loc[jobs["succeeded"], "turnaround_s"].to_numpy(float)
            n_jobs, bad = len(jobs), int((~jobs["succeeded"]).sum())
        else:
            calls = _calls(g)
            turn = calls["user_latency_s"].to_numpy(float)
            n_jobs, bad = 0, 0
        turn = turn[np.isfinite(turn)]
        p50, p90 = (float(np.quantile(turn, p)) if len(turn) else float("nan") for p in (0.5, 0.9))
        rows.append(
            {
                "mode": mode,
                "items": len(g),
                "delivered": delivered,
                "success_rate": delivered / len(g) if len(g) else float("nan"),
                "cost_per_image_usd": cost / delivered if delivered else float("nan"),
                "images_per_usd": delivered / cost if cost else float("nan"),
                "turnaround_p50_s": p50,
                "turnaround_p90_s": p90,
                "turnaround_max_s": float(turn.max()) if len(turn) else float("nan"),
                "jobs": n_jobs,
                "jobs_not_succeeded": bad,
            }
        )
    return pd.DataFrame(rows)


@dataclasses.dataclass(frozen=True, slots=True)
class ModeOption:
    """One mode's answer for N images by a deadline."""

    mode: str
    expected_cost_usd: float
    expected_finish_s: float  # service seconds
    risk: float  # probability of missing the deadline (point estimate)
    risk_upper95: float  # one-sided 95 % upper bound where the data allow one, else = risk
    basis: str  # what the figures rest on

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclasses.dataclass(frozen=True, slots=True)
class ModeAdvice:
    """Which mode for ``n_images`` by ``deadline_s``, and why."""

    n_images: int
    deadline_s: float
    max_risk: float
    choice: str
    reason: str
    options: tuple[ModeOption, ...]

    def as_frame(self) -> pd.DataFrame:
        return pd.DataFrame([o.as_dict() for o in self.options])

    def __str__(self) -> str:
        return self.reason


def _interactive(g: pd.DataFrame, n: int, deadline_s: float, concurrency: int) -> ModeOption | None:
    calls = _calls(g)
    lat = calls["user_latency_s"].to_numpy(float)
    lat = lat[np.isfinite(lat)]
    ok_rate = float(calls["ok"].mean()) if len(calls) else 0.0
    delivered = int(calls["ok"].sum())
    if len(lat) < 2 or not delivered:
        return None
    m, s = float(lat.mean()), float(lat.std(ddof=1))
    k = math.ceil(n / ok_rate / concurrency)
    risk = float(stats.norm.sf((deadline_s - k * m) / max(1e-9, math.sqrt(k) * s)))
    cost = float(calls["cost_usd"].sum()) / delivered * n
    return ModeOption(
        "interactive",
        cost,
        k * m,
        risk,
        risk,
        f"{len(calls)} calls: mean {m:.1f} s, sd {s:.1f} s, success {ok_rate:.0%}; "
        f"{k} rounds at concurrency {concurrency}",
    )


def _batch(g: pd.DataFrame, n: int, deadline_s: float) -> ModeOption | None:
    jobs = _jobs(g)
    if jobs.empty:
        return None
    delivered = int((g["status"] == "ok").sum())
    cost_per_image = float(pd.to_numeric(g["cost_usd"], errors="coerce").fillna(0).sum()) / max(1, delivered)
    item_ok = delivered / max(1, int(g["run_id"].isin(jobs.loc[jobs["succeeded"], "run_id"]).sum()))
    misses = int((~jobs["succeeded"] | (jobs["turnaround_s"] > deadline_s)).sum())
    upper = float(stats.binomtest(misses, len(jobs)).proportion_ci(0.95, method="exact").high)
    done = jobs.loc[jobs["succeeded"], "turnaround_s"]
    finish = float(done.median()) if len(done) else float("inf")
    return ModeOption(
        "batch",
        cost_per_image * n / max(item_ok, 1e-9),
        finish,
        misses / len(jobs),
        upper,
        f"{len(jobs)} jobs ({int((~jobs['succeeded']).sum())} not succeeded), median turnaround "
        f"{finish:.0f} s; items succeed {item_ok:.0%}",
    )


def recommend_mode(
    df: pd.DataFrame, *, n_images: int, deadline_s: float, concurrency: int = 8, max_risk: float = 0.05
) -> ModeAdvice:
    """Which mode to use for ``n_images`` by ``deadline_s`` (service seconds), from measured runs.

    See the module docstring for the formulas. Modes without data are left out.
    """
    if isinstance(n_images, bool) or not isinstance(n_images, int) or n_images < 1:
        raise ConfigError(f"n_images={n_images!r} is not accepted; use a whole number >= 1")
    if isinstance(deadline_s, bool) or not isinstance(deadline_s, (int, float)) or not deadline_s > 0:
        raise ConfigError(f"deadline_s={deadline_s!r} is not accepted; use a number of seconds > 0")
    if isinstance(concurrency, bool) or not isinstance(concurrency, int) or concurrency < 1:
        raise ConfigError(f"concurrency={concurrency!r} is not accepted; use a whole number >= 1")
    if not isinstance(max_risk, (int, float)) or not 0 < max_risk < 1:
        raise ConfigError(f"max_risk={max_risk!r} is not accepted; use a probability between 0 and 1")
    frame = _with_mode(df)
    options = []
    for mode in MODES:
        g = frame[frame["mode"] == mode]
        if g.empty:
            continue
        opt = _batch(g, n_images, deadline_s) if mode == "batch" else _interactive(g, n_images, deadline_s, concurrency)
        if opt is not None:
            options.append(dataclasses.replace(opt, mode=mode))
    if not options:
        raise ConfigError("df has no finished attempts of any mode; run a pilot (interactive and/or batch) first")
    safe = [o for o in options if o.risk <= max_risk]
    pick = min(safe, key=lambda o: o.expected_cost_usd) if safe else min(options, key=lambda o: o.risk)
    reason = (
        f"{pick.mode}: {n_images} images for about ${pick.expected_cost_usd:.2f}, finished in about "
        f"{pick.expected_finish_s / 60:.1f} min; risk of missing the {deadline_s / 60:.0f} min deadline "
        f"{pick.risk:.0%}"
    )
    if pick.risk_upper95 > max_risk:
        reason += (
            f" (95 % upper bound {pick.risk_upper95:.0%} is above the {max_risk:.0%} you accept: "
            "measure more jobs before betting on it)"
        )
    if not safe:
        reason += f"; no mode meets a {max_risk:.0%} risk, this is the least risky"
    return ModeAdvice(n_images, float(deadline_s), float(max_risk), pick.mode, reason, tuple(options))


def mode_turnarounds(df: pd.DataFrame) -> pd.DataFrame:
    """Turnaround per call (interactive, flex) or per delivered job (batch), tidy: ``label``,
    ``mode``, ``turnaround_s`` (service seconds). Batch labels count the jobs that never delivered."""
    frame = _with_mode(df)
    parts = []
    for mode in [m for m in MODES if m in set(frame["mode"])]:
        g = frame[frame["mode"] == mode]
        if mode == "batch":
            jobs = _jobs(g)
            y = jobs.loc[jobs["succeeded"], "turnaround_s"]
            label = f"batch ({int((~jobs['succeeded']).sum())} of {len(jobs)} jobs not delivered)"
        else:
            y = _calls(g)["user_latency_s"]
            label = mode
        parts.append(pd.DataFrame({"label": label, "mode": mode, "turnaround_s": y.to_numpy(dtype=float)}))
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=["label", "mode", "turnaround_s"])


__all__ = ["ModeAdvice", "ModeOption", "mode_summary", "mode_turnarounds", "recommend_mode"]
