"""Learning a per-minute quota nobody told the sweep, and pacing spend per rolling 10 minutes.

:class:`QuotaLearner` paces sends at a rate it learns from 429s:

* a 429 that states its limit (``quotaValue`` or ``limit: N``) of a per-minute quota sets the
  rate to 97 % of it at once;
* a bare 429 cuts the rate CUBIC-style, as botocore's adaptive retry mode does: the rate
  measured over the last minute becomes ``w_max``, the rate drops to ``beta * w_max``, and
  then grows back along ``C * (t - K)**3 + w_max`` (``t`` in service minutes since the cut,
  ``K = cbrt(w_max * (1 - beta) / C)``), flat near ``w_max`` and probing above it later, never
  above twice the measured rate;
* before the first 429 it does not limit at all (the concurrency limit does).

:class:`SpendWindow` keeps the dollars of calls started in a rolling window (10 service
minutes): a call starts only if the window's settled spend plus what is in flight plus its own
estimate stays within the limit. A finished call's cost is booked at its end time, which is
never earlier than its start, so every rolling window of billed spend stays within the limit.

Clocks are parameters, so both are tested on a virtual clock::

    >>> t = [0.0]
    >>> q = QuotaLearner(time_scale=1.0, clock=lambda: t[0])
    >>> q.reserve(), q.rate_per_min is None
    (0.0, True)
"""

from __future__ import annotations

import collections
import math
import threading
import time
from collections.abc import Callable
from typing import Any

from ..errors import ConfigError
from ..records import Attempt

STATED_MARGIN = 0.97  # pace at this share of a stated limit (arrival jitter at the service), as a told rate
BETA = 0.7  # CUBIC multiplicative decrease (botocore: 0.7)
CUBIC_C = 0.4  # CUBIC scaling constant (botocore: 0.4, per second; here per service minute)
SPEND_PRESETS_USD_PER_10MIN = {"tier1": 10.0, "tier2": 50.0, "tier3": 200.0}


def is_per_minute(attempt: Attempt) -> bool:
    """A rate quota (per minute), not a daily, concurrency or spend one."""
    named = f"{attempt.quota_id or ''} {attempt.quota_metric or ''}".lower()
    return "perday" not in named and "concurrent" not in named and "spend" not in named


class QuotaLearner:
    """A send rate learned from 429s (thread-safe). ``rate_per_min`` is None until the first one."""

    def __init__(self, *, time_scale: float = 1.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.minute_s = 60.0 * time_scale
        self._clock = clock
        self._lock = threading.Lock()
        self.rate_per_min: float | None = None
        self.stated_limit: float | None = None
        self.w_max = 0.0
        self._cut_at = 0.0
        self._next_free: float | None = None
        self._sent: collections.deque[float] = collections.deque()
        self.history: list[tuple[float, float]] = []  # (clock time, rate per minute) on each change
        self.throttles = 0

    def reserve(self) -> float:
        """Book one send; return how long to wait before it (0 while no rate is learned)."""
        with self._lock:
            now = self._clock()
            self._grow(now)
            wait = 0.0
            if self.rate_per_min is not None:
                interval = self.minute_s / self.rate_per_min
                start = now if self._next_free is None else max(self._next_free, now)
                wait = start - now
                self._next_free = start + interval
            self._sent.append(now + wait)
            return wait

    def measured_per_min(self, now: float) -> float:
        while self._sent and now - self._sent[0] > self.minute_s:
            self._sent.popleft()
        return float(len(self._sent))

    def on_attempt(self, attempt: Attempt) -> None:
        if attempt.error_kind != "rate_limited" or not is_per_minute(attempt):
            return
        with self._lock:
            now = self._clock()
            self.throttles += 1
            if attempt.retry_delay_s:
                # Nothing goes before the server's delay, and the slots after it stay spaced.
                self._next_free = max(self._next_free or now, now + attempt.retry_delay_s)
            if attempt.quota_value:
                self.stated_limit = float(attempt.quota_value)
                self._set(now, self.stated_limit * STATED_MARGIN)
                return
            if self.stated_limit is not None:
                return  # a stated limit stands; a stray bare 429 does not undo it
            if now - self._cut_at < self.minute_s and self.rate_per_min is not None:
                return  # one cut per service minute: the sends in flight saw the same limit
            measured = self.measured_per_min(now)
            self.w_max = max(1.0, measured if self.rate_per_min is None else min(measured, self.rate_per_min))
            self._cut_at = now
            self._set(now, max(0.5, self.w_max * BETA))

    def _grow(self, now: float) -> None:
        if self.rate_per_min is None or self.stated_limit is not None:
            return
        t = (now - self._cut_at) / self.minute_s
        k = (self.w_max * (1 - BETA) / CUBIC_C) ** (1 / 3)
        cubic = CUBIC_C * (t - k) ** 3 + self.w_max
        ceiling = max(2.0 * self.measured_per_min(now), self.w_max * BETA)
        new = max(0.5, min(cubic, ceiling))
        if abs(new - self.rate_per_min) >= 0.05 * self.rate_per_min:
            self._set(now, new)

    def _set(self, now: float, rate: float) -> None:
        self.rate_per_min = rate
        self.history.append((now, round(rate, 3)))

    def as_dict(self) -> dict[str, Any]:
        return {
            "learned_rate_per_min": self.rate_per_min,
            "stated_limit": self.stated_limit,
            "throttles": self.throttles,
            "rate_history": self.history[-200:],
        }


def spend_limit_value(value: float | str | None) -> float | None:
    """``"tier1"``/``"tier2"``/``"tier3"`` ($10/$50/$200 per 10 minutes), dollars, or None."""
    if value is None:
        return None
    if isinstance(value, str):
        if value in SPEND_PRESETS_USD_PER_10MIN:
            return SPEND_PRESETS_USD_PER_10MIN[value]
    elif not isinstance(value, bool) and isinstance(value, (int, float)) and value > 0 and math.isfinite(value):
        return float(value)
    raise ConfigError(
        f"spend_rate_usd_per_10min={value!r} is not accepted; use dollars > 0, one of "
        f"{', '.join(map(repr, SPEND_PRESETS_USD_PER_10MIN))}, or None"
    )


class SpendWindow:
    """Dollars per rolling window (``600 * time_scale`` s): admits calls, books their cost."""

    def __init__(
        self, limit_usd: float, *, time_scale: float = 1.0, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.limit_usd = limit_usd
        self.window_s = 600.0 * time_scale
        self._clock = clock
        self._lock = threading.Lock()
        self._settled: collections.deque[tuple[float, float]] = collections.deque()  # (end time, usd)
        self._in_flight: dict[int, float] = {}
        self._next_id = 0
        self.waited_s = 0.0

    def try_start(self, est_usd: float) -> tuple[int | None, float]:
        """(ticket, 0) when the call may start now, else (None, seconds until it may)."""
        with self._lock:
            now = self._clock()
            while self._settled and self._settled[0][0] <= now - self.window_s:
                self._settled.popleft()
            used = sum(u for _, u in self._settled) + sum(self._in_flight.values())
            if used + est_usd <= self.limit_usd + 1e-9:
                self._next_id += 1
                self._in_flight[self._next_id] = est_usd
                return self._next_id, 0.0
            # Wait for enough settled spend to leave the window (in-flight calls settle later).
            need = used + est_usd - self.limit_usd
            freed = 0.0
            for end, usd in self._settled:
                freed += usd
                if freed >= need - 1e-9:
                    return None, max(1e-3, end + self.window_s - now)
            return None, max(1e-3, self.window_s / 60.0)  # in flight holds it: look again soon

    def finish(self, ticket: int, actual_usd: float) -> None:
        with self._lock:
            self._in_flight.pop(ticket, None)
            if actual_usd > 0:
                self._settled.append((self._clock(), actual_usd))

    def implied_time_s(self, total_usd: float) -> float:
        """Wall time the limit alone implies for ``total_usd`` (the first window is free)."""
        return max(0.0, total_usd / self.limit_usd - 1.0) * self.window_s


__all__ = ["QuotaLearner", "SPEND_PRESETS_USD_PER_10MIN", "SpendWindow", "spend_limit_value"]
