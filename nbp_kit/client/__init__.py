"""The tuned client: one long-lived HTTP/2-capable pool, one record per attempt, every phase timed.

``core`` holds :class:`Client` / :class:`AsyncClient`; ``attempt`` one try on the wire;
``retry`` retry policy, budget and hedging; ``timing`` the phase clock; ``images`` decode,
verify and save; ``instrument`` phase records for other clients (google-genai, openai).
"""

from __future__ import annotations

from .core import AsyncClient, Client, Generation, Timeouts
from .instrument import AttemptLog, instrumented_httpx_client
from .retry import HedgePolicy, RetryBudget, RetryPolicy
from .session import EditSession

__all__ = [
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
]
