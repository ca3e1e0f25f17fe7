"""nbp_kit: measure and tune Nano Banana Pro (Gemini 3 Pro Image) latency from a notebook.

The public surface is listed in ``__all__`` (kept sorted; a test holds it).
"""

from __future__ import annotations

from .errors import (
    APIError,
    BadPayload,
    ConfigError,
    ContentBlocked,
    NbpError,
    RateLimited,
    RequestFailed,
    SpendCapExceeded,
    StoreError,
    TransportFailed,
)
from .analysis import (
    best_config,
    bottleneck,
    compare_reference,
    cost_latency,
    hedging_whatif,
    knob_effect,
    offpeak_windows,
    phase_shares,
    recommend_timeouts,
    summarize,
)
from .client import AsyncClient, Client, Generation, Timeouts
from .providers import capabilities, estimate_cost
from .probe import ProbeResult, run_probe
from .records import PHASES, Attempt
from .retry import HedgePolicy, RetryBudget, RetryPolicy
from .runner import ProgressEvent, SweepHandle, SweepResult, run_sweep, start_sweep
from .spec import ASPECT_RATIOS, RESOLUTIONS, ImageSpec, load_presets, preset
from .store import RunStore
from .sweep import Plan, Preflight
from .synthetic import synthetic_attempts
from .timing import AttemptLog, Timings, instrumented_httpx_client, timed, timer

__version__ = "0.1.0"

__all__ = [
    "APIError",
    "ASPECT_RATIOS",
    "AsyncClient",
    "Attempt",
    "AttemptLog",
    "BadPayload",
    "Client",
    "ConfigError",
    "ContentBlocked",
    "Generation",
    "HedgePolicy",
    "ImageSpec",
    "NbpError",
    "PHASES",
    "Plan",
    "Preflight",
    "ProbeResult",
    "ProgressEvent",
    "RESOLUTIONS",
    "RateLimited",
    "RequestFailed",
    "RetryBudget",
    "RetryPolicy",
    "RunStore",
    "SpendCapExceeded",
    "StoreError",
    "SweepHandle",
    "SweepResult",
    "Timeouts",
    "Timings",
    "TransportFailed",
    "best_config",
    "bottleneck",
    "capabilities",
    "compare_reference",
    "cost_latency",
    "estimate_cost",
    "hedging_whatif",
    "instrumented_httpx_client",
    "knob_effect",
    "load_presets",
    "offpeak_windows",
    "phase_shares",
    "preset",
    "recommend_timeouts",
    "run_probe",
    "run_sweep",
    "start_sweep",
    "summarize",
    "synthetic_attempts",
    "timed",
    "timer",
]
