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
from .records import PHASES, Attempt
from .spec import ASPECT_RATIOS, RESOLUTIONS, ImageSpec, load_presets, preset

__version__ = "0.1.0"

__all__ = [
    "APIError",
    "ASPECT_RATIOS",
    "Attempt",
    "BadPayload",
    "ConfigError",
    "ContentBlocked",
    "ImageSpec",
    "NbpError",
    "PHASES",
    "RESOLUTIONS",
    "RateLimited",
    "RequestFailed",
    "SpendCapExceeded",
    "StoreError",
    "TransportFailed",
    "load_presets",
    "preset",
]
