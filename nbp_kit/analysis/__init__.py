"""Answers from tidy frames of attempts: summaries, knob effects, phases, advice, off-peak, hedging.

Every function takes a frame from :meth:`nbp_kit.RunStore.attempts` (or
:func:`synthetic_attempts`) and returns a frame or a sentence; nothing here reads anything
but its arguments.
"""

from __future__ import annotations

from .advice import (
    best_config,
    cost_latency,
    grid_vs_single,
    recommend_timeouts,
    throughput,
)
from .editing import EditingAdvice, editing_advice, editing_breakdown
from .frames import CONFIG_COLUMNS, MISSING_LABEL, user_calls
from .hedging import hedging_whatif
from .offpeak import drift_over_weeks, hour_of_week, offpeak_windows
from .reference import load_reference
from .summaries import (
    bottleneck,
    compare_reference,
    estimate_rtt,
    knob_effect,
    phase_shares,
    real_seconds,
    summarize,
)
from .synthetic import synthetic_attempts

__all__ = [
    "CONFIG_COLUMNS",
    "EditingAdvice",
    "MISSING_LABEL",
    "best_config",
    "bottleneck",
    "compare_reference",
    "cost_latency",
    "drift_over_weeks",
    "editing_advice",
    "editing_breakdown",
    "estimate_rtt",
    "grid_vs_single",
    "hedging_whatif",
    "hour_of_week",
    "knob_effect",
    "load_reference",
    "offpeak_windows",
    "phase_shares",
    "real_seconds",
    "recommend_timeouts",
    "summarize",
    "synthetic_attempts",
    "throughput",
    "user_calls",
]
