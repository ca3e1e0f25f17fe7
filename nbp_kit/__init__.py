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
from .client import AsyncClient, Client, Generation, Timeouts
from .providers import capabilities, estimate_cost
from .records import PHASES, Attempt
from .retry import HedgePolicy, RetryBudget, RetryPolicy
from .spec import ASPECT_RATIOS, RESOLUTIONS, ImageSpec, load_presets, preset
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
    "RESOLUTIONS",
    "RateLimited",
    "RequestFailed",
    "RetryBudget",
    "RetryPolicy",
    "SpendCapExceeded",
    "StoreError",
    "Timeouts",
    "Timings",
    "TransportFailed",
    "capabilities",
    "estimate_cost",
    "instrumented_httpx_client",
    "load_presets",
    "preset",
    "timed",
    "timer",
]
