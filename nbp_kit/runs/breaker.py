"""A circuit breaker for overload incidents: stop burning attempts while the service is down.

The service's "model is overloaded" 503s come in incidents lasting minutes to hours, not as
independent draws. :class:`CircuitBreaker` sits in the sweep's pacer (so retries pass through
it too)::

    closed    -- ``threshold`` overloaded attempts in a row -->  open
    open      -- ``open_s`` (service seconds) later           -->  half-open
    half-open -- one probe attempt at a time: success closes the breaker, an overload opens it
                 again for twice as long (up to ``max_open_s``)

While open, attempts wait in ``acquire`` instead of being sent. Every change is recorded in
``events`` as ``(clock time, state)``. The clock and the sleep are parameters (tested on a
virtual clock).
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Awaitable, Callable
from typing import Any

from ..errors import ConfigError
from ..records import Attempt

OVERLOAD_KINDS = frozenset({"overloaded"})


class CircuitBreaker:
    """Opens after ``threshold`` consecutive overloads; half-open probes; thread-safe."""

    def __init__(
        self,
        *,
        threshold: int = 5,
        open_s: float = 30.0,
        max_open_s: float = 300.0,
        time_scale: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep,
    ) -> None:
        if isinstance(threshold, bool) or not isinstance(threshold, int) or threshold < 1:
            raise ConfigError(f"breaker_threshold={threshold!r} is not accepted; use a whole number >= 1")
        self.threshold = threshold
        self.base_open_s = open_s * time_scale
        self.max_open_s = max_open_s * time_scale
        self._clock = clock
        self._sleep = sleep
        self._lock = threading.Lock()
        self.state = "closed"
        self.consecutive = 0
        self.open_s = self.base_open_s
        self.open_until = 0.0
        self.probing = False
        self.opened = 0
        self.probes = 0
        self.held_s = 0.0
        self.events: list[tuple[float, str]] = []

    async def acquire(self) -> None:
        while True:
            with self._lock:
                now = self._clock()
                if self.state == "open" and now >= self.open_until:
                    self._move(now, "half_open")
                if self.state == "closed":
                    return
                if self.state == "half_open" and not self.probing:
                    self.probing = True
                    self.probes += 1
                    return
                wait = self.open_until - now if self.state == "open" else self.base_open_s / 10
            wait = max(wait, 1e-3)
            self.held_s += wait
            await self._sleep(wait)

    def admits(self) -> bool:
        """Would a call to the guarded model go now (closed, or a half-open probe is due)?
        A sweep with a fallback model sends elsewhere what this would hold."""
        with self._lock:
            if self.state == "closed":
                return True
            if self.state == "open":
                return self._clock() >= self.open_until
            return not self.probing

    def on_attempt(self, attempt: Attempt) -> None:
        overloaded = attempt.error_kind in OVERLOAD_KINDS
        with self._lock:
            now = self._clock()
            if self.state == "half_open":
                self.probing = False
                if overloaded:
                    self.open_s = min(self.max_open_s, self.open_s * 2)
                    self._open(now)
                elif attempt.status == "ok":
                    self.open_s = self.base_open_s
                    self.consecutive = 0
                    self._move(now, "closed")
                return
            if overloaded:
                self.consecutive += 1
                if self.state == "closed" and self.consecutive >= self.threshold:
                    self._open(now)
            elif attempt.status == "ok":
                self.consecutive = 0

    def _open(self, now: float) -> None:
        self.open_until = now + self.open_s
        self.opened += 1
        self._move(now, "open")

    def _move(self, now: float, state: str) -> None:
        self.state = state
        self.events.append((now, state))

    def as_dict(self, since: float = 0.0) -> dict[str, Any]:
        return {
            "opened": self.opened,
            "probes": self.probes,
            "state": self.state,
            "events": [(round(t - since, 3), s) for t, s in self.events[-200:]],
        }


__all__ = ["CircuitBreaker"]
