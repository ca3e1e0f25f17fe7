"""Retry policy, retry budget and hedging policy: *whether* and *when* to try again.

The client loops with ``stamina.retry_context``; :meth:`RetryPolicy.decide` is the backoff
hook's brain. The rules (``quality.md``):

* at most ``max_attempts`` (4) attempts;
* retry 408/429/500/502/503/504, connection errors and timeouts (a timed-out attempt may
  have been billed, so the record says so); never other 4xx, safety blocks, per-day quota
  429s or ``x-should-retry: false``; bad payloads at most once;
* wait = the server's delay when it gave one (``retry-after-ms``, ``Retry-After``, then
  the body's ``RetryInfo.retryDelay``), up to ``max_server_delay_s`` (120 s; beyond that the
  call stops with kind ``retry_delay_too_long``); otherwise *full jitter*::

      delay = random.uniform(0, min(cap_s, base_s * 2 ** n))     # n = retries so far

>>> d = RetryPolicy().decide(kind="rate_limited", attempt_no=1, server_delay_s=3.0, server_delay_source="retry-after")
>>> (d.retry, d.delay_s, d.source)
(True, 3.0, 'retry-after')
"""

from __future__ import annotations

import dataclasses
import random
import statistics
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any

from ..errors import ERROR_KINDS, ConfigError

#: Kinds retried at most once per call (a bad payload rarely fixes itself twice).
_ONCE_KINDS = frozenset({"bad_payload", "wrong_image"})


@dataclasses.dataclass(frozen=True, slots=True)
class RetryDecision:
    """What to do after a failed attempt."""

    retry: bool
    delay_s: float | None = None
    source: str | None = None  # retry-after-ms | retry-after | retry-info | backoff
    stop_kind: str | None = None  # set when the stop itself is the error (retry_delay_too_long)
    reason: str = ""

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclasses.dataclass(frozen=True, slots=True)
class RetryPolicy:
    """When to retry and how long to wait (see the module docstring for the formula).

    >>> RetryPolicy(max_attempts=1).decide(kind="overloaded", attempt_no=1).retry
    False
    """

    max_attempts: int = 4
    base_s: float = 2.0
    cap_s: float = 60.0
    max_server_delay_s: float = 120.0
    bad_payload_retries: int = 1
    retry_kinds: frozenset[str] = frozenset(k for k, v in ERROR_KINDS.items() if v)
    random: Callable[[float, float], float] = dataclasses.field(default=random.uniform, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not isinstance(self.max_attempts, int) or isinstance(self.max_attempts, bool) or self.max_attempts < 1:
            raise ConfigError(
                f"max_attempts={self.max_attempts!r} is not accepted; use an integer >= 1 (4 is the default)"
            )
        for name in ("base_s", "cap_s", "max_server_delay_s"):
            v = getattr(self, name)
            if not isinstance(v, (int, float)) or isinstance(v, bool) or not v >= 0:
                raise ConfigError(f"{name}={v!r} is not accepted; use a number of seconds >= 0")
        if not isinstance(self.bad_payload_retries, int) or self.bad_payload_retries < 0:
            raise ConfigError(f"bad_payload_retries={self.bad_payload_retries!r} is not accepted; use an integer >= 0")
        unknown = set(self.retry_kinds) - set(ERROR_KINDS)
        if unknown:
            raise ConfigError(f"retry_kinds contains {sorted(unknown)!r}; accepted kinds are {sorted(ERROR_KINDS)!r}")

    def backoff_s(self, retries_so_far: int) -> float:
        """Full-jitter delay before retry number ``retries_so_far + 1``."""
        return self.random(0.0, min(self.cap_s, self.base_s * 2.0**retries_so_far))

    def decide(
        self,
        *,
        kind: str,
        attempt_no: int,
        server_delay_s: float | None = None,
        server_delay_source: str | None = None,
        once_kind_failures: int = 1,
    ) -> RetryDecision:
        """Decide after attempt ``attempt_no`` (1-based) failed with ``kind``.

        ``once_kind_failures`` counts the bad-payload/wrong-image failures of this call so far
        (including this one).
        """
        if kind not in self.retry_kinds:
            return RetryDecision(False, reason=f"{kind} is not retried")
        if kind in _ONCE_KINDS and once_kind_failures > self.bad_payload_retries:
            return RetryDecision(False, reason=f"{kind} already retried {self.bad_payload_retries} time(s)")
        if attempt_no >= self.max_attempts:
            return RetryDecision(False, reason=f"{self.max_attempts} attempts used")
        if server_delay_s is not None:
            if server_delay_s > self.max_server_delay_s:
                return RetryDecision(
                    False,
                    server_delay_s,
                    server_delay_source,
                    "retry_delay_too_long",
                    f"server asked to wait {server_delay_s:.1f} s, more than max_server_delay_s={self.max_server_delay_s}",
                )
            return RetryDecision(True, float(server_delay_s), server_delay_source)
        return RetryDecision(True, self.backoff_s(attempt_no - 1), "backoff")

    def as_dict(self) -> dict[str, Any]:
        return {
            f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name not in ("random", "retry_kinds")
        }


class RetryBudget:
    """A token bucket for retries shared across calls (gRPC style), thread-safe.

    Each retry costs 1 token; each success refunds ``per_success``; no tokens, no retry.
    It keeps retries near ``per_success`` of traffic when the service is failing.

    >>> b = RetryBudget(tokens=1, per_success=0.5)
    >>> b.try_spend(), b.try_spend()
    (True, False)
    >>> b.record_success(); b.record_success(); b.try_spend()
    True
    """

    def __init__(self, *, tokens: float = 10.0, per_success: float = 0.1) -> None:
        if not tokens > 0:
            raise ConfigError(f"tokens={tokens!r} is not accepted; use a number > 0")
        if not per_success >= 0:
            raise ConfigError(f"per_success={per_success!r} is not accepted; use a number >= 0")
        self.max_tokens = float(tokens)
        self.per_success = float(per_success)
        self._tokens = float(tokens)
        self._lock = threading.Lock()

    @property
    def tokens(self) -> float:
        with self._lock:
            return self._tokens

    def try_spend(self, cost: float = 1.0) -> bool:
        with self._lock:
            if self._tokens >= cost:
                self._tokens -= cost
                return True
            return False

    def record_success(self) -> None:
        with self._lock:
            self._tokens = min(self.max_tokens, self._tokens + self.per_success)

    def __repr__(self) -> str:
        return f"RetryBudget(tokens={self.tokens:.2f}/{self.max_tokens}, per_success={self.per_success})"


@dataclasses.dataclass(frozen=True, slots=True)
class HedgePolicy:
    """Send one extra copy when the first is slow. Off unless passed to the client.

    ``after_s`` fixes the delay; without it the delay is the rolling ``quantile`` of recent
    successful latencies (needs ``min_samples``). At most ``max_extra_fraction`` of calls
    are hedged, and hedging pauses for ``suspend_after_429_s`` after any 429. Every copy is
    a billed image.

    >>> HedgePolicy(after_s=20.0).after_s
    20.0
    """

    after_s: float | None = None
    quantile: float = 0.95
    max_extra_fraction: float = 0.05
    min_samples: int = 20
    window: int = 200
    suspend_after_429_s: float = 60.0

    def __post_init__(self) -> None:
        if self.after_s is not None and not self.after_s > 0:
            raise ConfigError(
                f"after_s={self.after_s!r} is not accepted; use seconds > 0 or None for the rolling quantile"
            )
        if not 0 < self.quantile < 1:
            raise ConfigError(f"quantile={self.quantile!r} is not accepted; use a number between 0 and 1, e.g. 0.95")
        if not 0 <= self.max_extra_fraction <= 1:
            raise ConfigError(f"max_extra_fraction={self.max_extra_fraction!r} is not accepted; use 0..1")

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


class Hedger:
    """Mutable hedging state for one client: recent latencies, counts, 429 suspension."""

    def __init__(self, policy: HedgePolicy, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.policy = policy
        self._clock = clock
        self._lat: deque[float] = deque(maxlen=policy.window)
        self._calls = 0
        self._hedges = 0
        self._suspended_until = 0.0
        self._lock = threading.Lock()

    def observe_call(self) -> None:
        with self._lock:
            self._calls += 1

    def observe_success(self, latency_s: float) -> None:
        with self._lock:
            self._lat.append(latency_s)

    def observe_429(self) -> None:
        with self._lock:
            self._suspended_until = self._clock() + self.policy.suspend_after_429_s

    def delay_s(self) -> float | None:
        """Seconds to wait before hedging this call, or None for no hedge."""
        with self._lock:
            if self._clock() < self._suspended_until:
                return None
            if (self._hedges + 1) > self.policy.max_extra_fraction * max(self._calls, 1):
                return None
            if self.policy.after_s is not None:
                return self.policy.after_s
            if len(self._lat) < self.policy.min_samples:
                return None
            qs = statistics.quantiles(self._lat, n=100, method="inclusive")
            return qs[min(98, max(0, round(self.policy.quantile * 100) - 1))]

    def claim(self) -> bool:
        """Take a hedge slot (re-checks the fraction at the moment of firing)."""
        with self._lock:
            if self._clock() < self._suspended_until:
                return False
            if (self._hedges + 1) > self.policy.max_extra_fraction * max(self._calls, 1):
                return False
            self._hedges += 1
            return True


__all__ = ["HedgePolicy", "Hedger", "RetryBudget", "RetryDecision", "RetryPolicy"]
