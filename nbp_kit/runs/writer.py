"""Store writes off the timing loop: one writer thread commits finished attempts.

The loop that stamps phase times must not wait for a SQLite commit (``synchronous=FULL``
fsyncs) while other requests are in flight. :class:`StoreWriter` takes finished records
on a queue and commits them from its own thread, in order. The "started" row is not
queued: it is committed before the request goes out (that is what makes a killed sweep
resumable), so it stays a synchronous write; docs/client.md gives its measured cost.

>>> from nbp_kit.runs.store import RunStore                           # doctest: +SKIP
>>> writer = StoreWriter(RunStore(":memory:"))                        # doctest: +SKIP
>>> writer.submit(attempt); writer.close()                            # doctest: +SKIP
"""

from __future__ import annotations

import logging
import queue
import threading
from typing import Any

log = logging.getLogger("nbp_kit.runs")

_STOP = object()


class StoreWriter:
    """Commit ``store.attempt_finished(record)`` calls from a daemon thread, in order.

    ``close()`` drains the queue and joins the thread; a write that fails is logged and
    re-raised by ``close()`` (nothing is dropped silently).
    """

    def __init__(self, store: Any, *, name: str = "nbp_kit-store-writer") -> None:
        self._store = store
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._loop, name=name, daemon=True)
        self._thread.start()

    def submit(self, record: Any) -> None:
        """Queue one finished attempt for commit (returns at once)."""
        if self._error is not None:
            raise self._error
        self._queue.put(record)

    def _loop(self) -> None:
        while True:
            item = self._queue.get()
            if item is _STOP:
                return
            if self._error is not None:
                continue  # keep draining; close() reports the first failure
            try:
                self._store.attempt_finished(item)
            except BaseException as exc:  # noqa: BLE001 - reported by close()
                log.error("store write failed for attempt %s: %s", getattr(item, "attempt_id", "?"), exc)
                self._error = exc

    def close(self) -> None:
        """Wait until every queued record is committed; raise the first write failure."""
        if self._thread.is_alive():
            self._queue.put(_STOP)
            self._thread.join()
        if self._error is not None:
            raise self._error
