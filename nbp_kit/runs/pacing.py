"""Pacing for sweeps: a per-minute token bucket, a pause after 429, and adaptive concurrency.

* :class:`TokenBucket` spaces requests (or images) to a per-minute rate. A "minute" lasts
  ``60 * time_scale`` seconds, so a scaled emulator run paces exactly as a real one would.
* :class:`ConcurrencyLimiter` caps calls in flight, fixed or adaptive (AIMD, ``quality.md``)::

      on success, while in_use >= limit / 2:  limit += 1
      on 429:                                  limit *= 0.5
      on timeout or 5xx:                       limit *= 0.9
      limit stays in [1, cap]; one decrease per round trip (attempts sent before the last
      decrease do not decrease again)

* :class:`SweepPacer` is the client's ``pacer`` hook (with an optional
  :class:`~nbp_kit.runs.quota.QuotaLearner` that learns an untold per-minute quota): ``await acquire(spec)`` before every
  attempt (retries included) waits out any 429 pause and the bucket; ``release(attempt)``
  starts a pause on a 429 (for the server's delay) and feeds the limiter.

Clocks and sleeps are parameters, so the arithmetic is tested without sleeping::

    >>> t = [0.0]
    >>> bucket = TokenBucket(rate_per_min=60, clock=lambda: t[0])
    >>> [bucket.reserve() for _ in range(3)]  # the first is free, then one a second
    [0.0, 1.0, 2.0]
"""

from __future__ import annotations

import asyncio
import math
import threading
import time
from collections.abc import Awaitable, Callable
from typing import Any

from ..errors import ConfigError
from ..records import Attempt
from .breaker import CircuitBreaker
from .quota import QuotaLearner, is_per_minute

_DECREASE_429 = 0.5
_DECREASE_OTHER = 0.9
_OVERLOAD_KINDS = frozenset({"server_error", "overloaded", "server_timeout", "timeout"})
_SERVER_DELAY_SOURCES = frozenset({"retry-after-ms", "retry-after", "retry-info"})


class TokenBucket:
    """Reservations at ``rate_per_min`` with ``burst`` tokens of slack (thread-safe).

    ``reserve(n)`` books ``n`` tokens and returns how long to wait before using them.
    """

    def __init__(
        self,
        *,
        rate_per_min: float,
        burst: float = 1.0,
        time_scale: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not (isinstance(rate_per_min, (int, float)) and rate_per_min > 0) or isinstance(rate_per_min, bool):
            raise ConfigError(f"rate_per_min={rate_per_min!r} is not accepted; use a number > 0")
        if not burst >= 1:
            raise ConfigError(f"burst={burst!r} is not accepted; use a number >= 1")
        self.rate_per_min = float(rate_per_min)
        self.interval_s = 60.0 * time_scale / self.rate_per_min  # seconds per token
        self.burst = float(burst)
        self._clock = clock
        self._lock = threading.Lock()
        self._next_free: float | None = None  # time at which the bucket is full again minus burst

    def reserve(self, n: float = 1.0) -> float:
        with self._lock:
            now = self._clock()
            earliest = now - (self.burst - 1.0) * self.interval_s
            start = earliest if self._next_free is None else max(self._next_free, earliest)
            wait = max(0.0, start - now)
            self._next_free = start + n * self.interval_s
            return wait


class ConcurrencyLimiter:
    """Calls in flight, at most ``limit``: fixed, or adaptive (AIMD) between 1 and ``cap``.

    >>> lim = ConcurrencyLimiter(cap=8, adaptive=True, initial=4)
    >>> lim.in_use = 4; lim.on_attempt(Attempt("a", "c", 1, status="ok")); lim.limit
    5.0
    >>> lim.on_attempt(Attempt("b", "c", 1, status="error", error_kind="rate_limited", sent_at=1e12)); lim.limit
    2.5
    """

    def __init__(
        self, *, cap: int, adaptive: bool, initial: int | None = None, clock: Callable[[], float] = time.time
    ) -> None:
        if isinstance(cap, bool) or not isinstance(cap, int) or cap < 1:
            raise ConfigError(f"concurrency={cap!r} is not accepted; use a whole number >= 1 or 'adaptive'")
        self.cap = cap
        self.adaptive = adaptive
        # Adaptive starts at half the cap: one round trip of +1s reaches the cap, and a cap
        # the service cannot take is halved by the first 429 anyway.
        self.limit = float(cap if not adaptive else min(cap, initial or max(1, cap // 2)))
        self.in_use = 0
        self.peak_in_use = 0
        self._last_decrease_at = -math.inf
        self._clock = clock
        self._lock = threading.Lock()
        self._waiters: list[tuple[asyncio.AbstractEventLoop, asyncio.Future[None]]] = []
        self.history: list[tuple[float, float]] = []  # (time, limit) on every change

    @property
    def slots(self) -> int:
        return max(1, int(self.limit))

    async def acquire(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            with self._lock:
                if self.in_use < self.slots:
                    self.in_use += 1
                    self.peak_in_use = max(self.peak_in_use, self.in_use)
                    return
                fut: asyncio.Future[None] = loop.create_future()
                self._waiters.append((loop, fut))
            await fut

    def release(self) -> None:
        with self._lock:
            self.in_use -= 1
        self._wake()

    def take(self) -> None:
        """Take a slot without waiting (to keep a caller's count balanced when it is cancelled)."""
        with self._lock:
            self.in_use += 1

    def _wake(self) -> None:
        with self._lock:
            waiters, self._waiters = self._waiters, []
        for loop, fut in waiters:
            loop.call_soon_threadsafe(_resolve, fut)

    def on_attempt(self, attempt: Attempt) -> None:
        """Adjust the window from one finished attempt."""
        if not self.adaptive:
            return
        grew = False
        with self._lock:
            kind = attempt.error_kind
            if attempt.status == "ok":
                if self.in_use >= self.limit / 2:
                    new = min(float(self.cap), self.limit + 1.0)
                    grew = new > self.limit
                    self._set(new)
            elif kind in ("rate_limited",) or kind in _OVERLOAD_KINDS:
                # One decrease per round trip: attempts already in flight at the last cut
                # saw the same congestion and must not cut again.
                sent = attempt.sent_at if attempt.sent_at is not None else self._clock()
                if sent >= self._last_decrease_at:
                    factor = _DECREASE_429 if kind == "rate_limited" else _DECREASE_OTHER
                    self._set(max(1.0, self.limit * factor))
                    self._last_decrease_at = self._clock()
        if grew:
            self._wake()

    def cap_at(self, cap: int) -> None:
        """Lower the cap (and the limit) to a concurrency quota the service stated."""
        with self._lock:
            if 1 <= cap < self.cap:
                self.cap = cap
                self._set(min(self.limit, float(cap)))

    def _set(self, value: float) -> None:
        if value != self.limit:
            self.limit = value
            self.history.append((self._clock(), value))


def _resolve(fut: asyncio.Future[None]) -> None:
    if not fut.done():
        fut.set_result(None)


class SweepPacer:
    """The client's ``pacer`` hook for a sweep: per-minute buckets, pause after 429, AIMD feed.

    ``time_scale`` shrinks the minute and the default pause like the emulator does.
    """

    def __init__(
        self,
        *,
        requests_per_min: float | None = None,
        images_per_min: float | None = None,
        time_scale: float = 1.0,
        limiter: ConcurrencyLimiter | None = None,
        learner: QuotaLearner | None = None,
        breaker: CircuitBreaker | None = None,
        fallback_model: str | None = None,
        default_pause_s: float = 2.0,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep,
    ) -> None:
        self.requests = (
            TokenBucket(rate_per_min=requests_per_min, time_scale=time_scale, clock=clock) if requests_per_min else None
        )
        self.images = (
            TokenBucket(rate_per_min=images_per_min, time_scale=time_scale, clock=clock) if images_per_min else None
        )
        self.limiter = limiter
        self.learner = learner
        self.breaker = breaker
        # Calls to the fallback model pass the breaker and do not teach it or the quota learner:
        # capacity and quotas are per model.
        self.fallback_model = fallback_model
        self.default_pause_s = default_pause_s * time_scale
        self._clock = clock
        self._sleep = sleep
        self._lock = threading.Lock()
        self.pause_until = -math.inf
        self.pauses = 0
        self.rate_limited = 0
        self.attempts = 0

    async def acquire(self, spec: Any = None) -> None:
        if self.breaker is not None and not self._is_fallback(getattr(spec, "model", None)):
            await self._pass_breaker()  # held while an overload incident keeps it open
        while True:
            await self._wait_pause()
            pauses = self.pauses
            wait = 0.0
            if self.requests is not None:
                wait = max(wait, self.requests.reserve(1))
            if self.images is not None:
                # Quotas count billed images; a grid call is one image.
                wait = max(wait, self.images.reserve(1))
            if self.learner is not None:
                wait = max(wait, self.learner.reserve())
            if wait > 0:
                await self._sleep(wait)
            if self.pauses == pauses:
                await self._wait_pause()
                return
            # A 429 paused everyone while this one waited for its slot: book a new slot after the
            # pause, so the waiters do not all go at once when it ends.

    async def _pass_breaker(self) -> None:
        """Wait for the breaker. With a fallback model, a held call gives up its concurrency slot
        while it waits (it is not at the service), so a call to the fallback can take it; it
        waits for a slot again once the breaker lets it go."""
        assert self.breaker is not None
        limiter = self.limiter
        if self.fallback_model is None or limiter is None or self.breaker.admits():
            await self.breaker.acquire()
            return
        limiter.release()
        try:
            await self.breaker.acquire()
            await limiter.acquire()
        except BaseException:
            limiter.take()  # the caller releases the slot it thinks it holds
            raise

    async def _wait_pause(self) -> None:
        while True:
            with self._lock:
                left = self.pause_until - self._clock()
            if left <= 0:
                return
            await self._sleep(left)

    def release(self, attempt: Attempt) -> None:
        with self._lock:
            self.attempts += 1
            if attempt.error_kind == "rate_limited":
                self.rate_limited += 1
                server = attempt.retry_delay_s if attempt.retry_delay_source in _SERVER_DELAY_SOURCES else None
                delay = server if server is not None else self.default_pause_s
                until = self._clock() + delay
                if until > self.pause_until:
                    self.pause_until = until
                    self.pauses += 1
        fallback = self._is_fallback(attempt.model)
        if self.learner is not None and not fallback:
            self.learner.on_attempt(attempt)
        if self.limiter is not None and attempt.quota_value and "concurrent" in (attempt.quota_id or "").lower():
            self.limiter.cap_at(int(attempt.quota_value))  # a stated concurrency quota caps calls in flight
        if self.breaker is not None and not fallback:
            self.breaker.on_attempt(attempt)
        if self.limiter is not None and not self._rate_learned(attempt):
            self.limiter.on_attempt(attempt)

    def _is_fallback(self, model: str | None) -> bool:
        return self.fallback_model is not None and model == self.fallback_model

    def _rate_learned(self, attempt: Attempt) -> bool:
        """A per-minute quota's 429 while a learner paces the rate: the rate is cut, not the
        calls in flight (halving them would slow the run below the quota it just learned)."""
        return self.learner is not None and attempt.error_kind == "rate_limited" and is_per_minute(attempt)
