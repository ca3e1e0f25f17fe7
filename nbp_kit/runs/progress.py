"""Progress displays and the user's ``on_progress`` callback, run on a thread of their own.

A sweep's event loop stamps the times of every request in flight; a progress bar redraw, a
widget update or a slow user callback run on it would delay those stamps. :class:`ProgressThread`
takes each update as a function call and runs it on one thread, in the order submitted; the
loop only builds the event (a few counters) and queues it.

>>> seen = []
>>> relay = ProgressThread()
>>> for i in range(3):
...     relay.submit(seen.append, i)
>>> relay.close(); seen
[0, 1, 2]
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from typing import Any


class ProgressThread:
    """Runs submitted calls on one daemon thread, in order. The first exception a call raises
    is kept (``error``) and later calls are skipped; :meth:`close` waits for the queue to drain."""

    def __init__(self, name: str = "nbp-progress") -> None:
        self._queue: queue.SimpleQueue[tuple[Callable[..., Any], tuple[Any, ...]] | None] = queue.SimpleQueue()
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def submit(self, fn: Callable[..., Any], *args: Any) -> None:
        self._queue.put((fn, args))

    def close(self) -> None:
        """Run what is queued, then stop the thread (idempotent)."""
        if self._thread.is_alive():
            self._queue.put(None)
            self._thread.join()

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            if self.error is not None:
                continue
            fn, args = item
            try:
                fn(*args)
            except BaseException as exc:  # noqa: BLE001 - kept and raised by the sweep after its loop
                self.error = exc
