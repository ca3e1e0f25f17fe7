"""Wire formats: how one image request looks for each API, and how its answers read.

``base`` holds the payload types and the :class:`Provider` profile; ``gemini`` and ``relay``
the two dialects; ``sse`` the stream parser; ``http_errors`` the error classification;
``pricing`` what a call costs; ``registry`` which providers and knobs exist.
"""

from __future__ import annotations

from .base import ParsedImage, Provider, Usage, WireRequest, load_json
from .http_errors import ErrorInfo, classify_http_error, server_retry_delay
from .pricing import attempt_cost, estimate_cost, price_row
from .registry import (
    PROVIDERS,
    Capabilities,
    capabilities,
    check_provider,
    check_spec,
    get_provider,
)

__all__ = [
    "PROVIDERS",
    "Capabilities",
    "ErrorInfo",
    "ParsedImage",
    "Provider",
    "Usage",
    "WireRequest",
    "attempt_cost",
    "capabilities",
    "check_provider",
    "check_spec",
    "classify_http_error",
    "estimate_cost",
    "get_provider",
    "load_json",
    "price_row",
    "server_retry_delay",
]
