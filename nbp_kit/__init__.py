"""nbp_kit: measure and tune Nano Banana Pro (Gemini 3 Pro Image) latency from a notebook.

The public surface is listed in ``__all__`` (kept sorted; a test holds it). Names load when
first used, so ``import nbp_kit`` stays light: the client does not pull in pandas, plotly or
the emulator's server until something needs them.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING
from typing import Any as _Any

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
from .records import PHASES, Attempt
from .spec import ASPECT_RATIOS, RESOLUTIONS, ImageSpec, load_presets, preset

if TYPE_CHECKING:
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
        synthetic_attempts,
    )
    from .client import (
        AsyncClient,
        AttemptLog,
        Client,
        EditSession,
        Generation,
        HedgePolicy,
        RetryBudget,
        RetryPolicy,
        Timeouts,
        instrumented_httpx_client,
    )
    from .providers import capabilities, estimate_cost
    from .runs import (
        Plan,
        Preflight,
        ProbeResult,
        ProgressEvent,
        RunStore,
        SweepHandle,
        SweepResult,
        run_probe,
        run_sweep,
        start_sweep,
    )
    from .timers import Timings, timed, timer

__version__ = "0.1.0"

#: Where each lazily loaded public name lives.
_LAZY: dict[str, str] = {
    **dict.fromkeys(
        (
            "best_config",
            "bottleneck",
            "compare_reference",
            "cost_latency",
            "hedging_whatif",
            "knob_effect",
            "offpeak_windows",
            "phase_shares",
            "recommend_timeouts",
            "summarize",
            "synthetic_attempts",
        ),
        "nbp_kit.analysis",
    ),
    **dict.fromkeys(
        (
            "AsyncClient",
            "AttemptLog",
            "Client",
            "EditSession",
            "Generation",
            "HedgePolicy",
            "RetryBudget",
            "RetryPolicy",
            "Timeouts",
            "instrumented_httpx_client",
        ),
        "nbp_kit.client",
    ),
    **dict.fromkeys(("capabilities", "estimate_cost"), "nbp_kit.providers"),
    **dict.fromkeys(
        (
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
        ),
        "nbp_kit.runs",
    ),
    **dict.fromkeys(("Timings", "timed", "timer"), "nbp_kit.timers"),
}


def __getattr__(name: str) -> _Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'nbp_kit' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))


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
    "EditSession",
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
