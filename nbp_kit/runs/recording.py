"""The store writer a sweep or a probe plugs into the client as its sink, with running counts.

:class:`RecordingSink` commits every attempt to the :class:`~nbp_kit.runs.store.RunStore`
when it starts and when it ends (the client calls it from whatever thread runs the attempt)
and keeps the counts the loop reads: attempts, successes, 429s, cost, and the attempts in
flight. It is the :class:`~nbp_kit.client.seams.AttemptSink` of both runners.
"""

from __future__ import annotations

import threading

from ..records import Attempt
from .store import RunStore
from .writer import StoreWriter


class RecordingSink:
    """Writes attempts to ``store`` and counts them (thread-safe; read counts under ``lock``)."""

    def __init__(self, store: RunStore, *, background: bool = False) -> None:
        self.store = store
        # background: finished rows are committed by a writer thread, off the loop that times
        # the other requests in flight (the "started" row is still committed before sending)
        self.writer = StoreWriter(store) if background else None
        self.lock = threading.Lock()
        self.attempts = 0
        self.ok = 0
        self.rate_limited = 0
        self.cost_usd = 0.0
        self.in_flight_attempts: set[str] = set()
        self.retries = 0  # attempts after which the client retried
        self.errors: dict[str, dict[str, object]] = {}  # kind -> {"attempts": n, "sample": redacted message}

    def attempt_started(self, attempt: Attempt) -> None:
        self.store.attempt_started(attempt)
        with self.lock:
            self.in_flight_attempts.add(attempt.attempt_id)

    def attempt_finished(self, attempt: Attempt) -> None:
        if self.writer is not None:
            self.writer.submit(attempt)
        else:
            self.store.attempt_finished(attempt)
        with self.lock:
            self.in_flight_attempts.discard(attempt.attempt_id)
            self.attempts += 1
            self.ok += attempt.status == "ok"
            self.cost_usd += attempt.cost_usd or 0.0
            if attempt.error_kind == "rate_limited":
                self.rate_limited += 1
            if attempt.retry_delay_s is not None:
                self.retries += 1
            if attempt.error_kind:
                entry = self.errors.setdefault(attempt.error_kind, {"attempts": 0, "sample": attempt.error_message})
                entry["attempts"] = int(str(entry["attempts"])) + 1

    def error_summary(self) -> dict[str, dict[str, object]]:
        """Error kinds seen, with how many attempts and one (redacted) sample message."""
        with self.lock:
            return {k: dict(v) for k, v in sorted(self.errors.items())}

    def close(self) -> None:
        """Wait until every finished attempt is committed (a no-op without a writer thread)."""
        if self.writer is not None:
            self.writer.close()

    def spent_usd(self) -> float:
        with self.lock:
            return self.cost_usd


__all__ = ["RecordingSink"]
