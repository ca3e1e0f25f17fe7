"""The seams of the client, as Protocols: where attempts go, what paces them, what one attempt needs.

A sweep plugs its store writer in as the :class:`AttemptSink` and its rate limiter as the
:class:`Pacer`; ``instrumented_httpx_client`` takes any sink. Nothing here imports a
concrete implementation, so the client depends on no layer above it.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

if TYPE_CHECKING:
    import httpx2

    from ..providers.base import Provider
    from ..records import Attempt
    from ..spec import ImageSpec
    from .retry import Hedger, RetryBudget, RetryPolicy


@runtime_checkable
class AttemptSink(Protocol):
    """Receives each attempt when it starts (status ``started``) and when it ends."""

    def attempt_started(self, attempt: Attempt) -> None: ...
    def attempt_finished(self, attempt: Attempt) -> None: ...


@runtime_checkable
class Pacer(Protocol):
    """Holds a request until the quota allows it, and learns from how it ended."""

    async def acquire(self, spec: ImageSpec | None = None) -> None: ...
    def release(self, attempt: Attempt) -> None: ...


@runtime_checkable
class ServiceEndpoint(Protocol):
    """Where a client can connect with a key: an emulator handle is one
    (``AsyncClient.for_emulator`` and ``run_sweep`` accept it)."""

    base_url: str
    api_key: str


class AttemptHost(Protocol):
    """What one attempt uses of the client that owns it (:class:`~nbp_kit.client.AsyncClient`)."""

    provider: Provider
    model: str
    base_url: str
    base_host: str
    timeouts: Any
    retry: RetryPolicy
    retry_budget: RetryBudget | None
    sink: AttemptSink | None
    pacer: Pacer | None
    output_dir: Path
    _api_key: str
    _hedger: Hedger | None

    def _client(self) -> httpx2.AsyncClient: ...
