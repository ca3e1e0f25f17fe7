"""Runs: plans, the sweep runner and its pacing, probes, and the run store.

``plan`` turns knobs into request items and a pre-flight (cost, time); ``runner`` sends
them under a spend cap at the pace the quota allows; ``pacing`` holds the rate and
concurrency limiters; ``probe`` samples the service over hours or a virtual week; ``store``
keeps runs and attempts (SQLite).
"""

from __future__ import annotations

from .plan import Plan, Preflight
from .probe import ProbeResult, run_probe
from .runner import ProgressEvent, SweepHandle, SweepResult, run_sweep, start_sweep
from .store import RunStore

__all__ = [
    "Plan",
    "Preflight",
    "ProbeResult",
    "ProgressEvent",
    "RunStore",
    "SweepHandle",
    "SweepResult",
    "run_probe",
    "run_sweep",
    "start_sweep",
]
