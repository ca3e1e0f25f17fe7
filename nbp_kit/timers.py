"""Timers for the user's own code: ``@timed`` and :func:`timer` record into a :class:`Timings` registry.

Nothing is printed::

    >>> t = Timings()
    >>> @timed(registry=t)
    ... def work(x): return x * 2
    >>> work(3), len(t.records), t.records[0].name.endswith("work")
    (6, 1, True)
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import inspect
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

F = TypeVar("F", bound=Callable[..., Any])


# --------------------------------------------------------------------------- user timers
@dataclasses.dataclass(frozen=True, slots=True)
class TimedRecord:
    """One timed call or block."""

    name: str
    started_at: float  # epoch seconds
    duration_s: float
    ok: bool
    error_type: str | None = None
    thread: str = ""

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


class Timings:
    """A thread-safe collection of :class:`TimedRecord` (the default one is :data:`TIMINGS`).

    >>> t = Timings()
    >>> with timer("load", registry=t): pass
    >>> t.records[0].name
    'load'
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._records: list[TimedRecord] = []

    def add(self, record: TimedRecord) -> None:
        with self._lock:
            self._records.append(record)

    @property
    def records(self) -> tuple[TimedRecord, ...]:
        with self._lock:
            return tuple(self._records)

    def clear(self) -> None:
        with self._lock:
            self._records.clear()

    def as_dicts(self) -> list[dict[str, Any]]:
        return [r.as_dict() for r in self.records]

    def to_frame(self) -> Any:
        """The records as a pandas DataFrame."""
        import pandas as pd

        return pd.DataFrame(self.as_dicts(), columns=[f.name for f in dataclasses.fields(TimedRecord)])

    def summary(self) -> dict[str, dict[str, float]]:
        """Per name: count, total_s, mean_s, max_s."""
        out: dict[str, dict[str, float]] = {}
        for r in self.records:
            s = out.setdefault(r.name, {"count": 0, "total_s": 0.0, "max_s": 0.0})
            s["count"] += 1
            s["total_s"] += r.duration_s
            s["max_s"] = max(s["max_s"], r.duration_s)
        for s in out.values():
            s["mean_s"] = s["total_s"] / s["count"]
        return out

    def __len__(self) -> int:
        return len(self.records)


#: The registry ``@timed`` and ``timer()`` use unless given another.
TIMINGS = Timings()


@dataclasses.dataclass(slots=True)
class _Running:
    name: str
    elapsed_s: float | None = None


@contextlib.contextmanager
def timer(name: str, *, registry: Timings | None = None) -> Iterator[_Running]:
    """Time a block; the handle's ``elapsed_s`` is set when the block ends.

    >>> t = Timings()
    >>> with timer("step", registry=t) as h: pass
    >>> h.elapsed_s is not None
    True
    """
    reg = TIMINGS if registry is None else registry
    handle = _Running(name)
    wall, t0 = time.time(), time.perf_counter()
    try:
        yield handle
    except BaseException as exc:
        handle.elapsed_s = time.perf_counter() - t0
        reg.add(TimedRecord(name, wall, handle.elapsed_s, False, type(exc).__name__, threading.current_thread().name))
        raise
    handle.elapsed_s = time.perf_counter() - t0
    reg.add(TimedRecord(name, wall, handle.elapsed_s, True, None, threading.current_thread().name))


def timed(func: F | None = None, *, name: str | None = None, registry: Timings | None = None) -> Any:
    """Decorator recording each call's duration; works on sync and async functions.

    ``functools.wraps`` keeps the name, docstring and signature. Use bare (``@timed``) or
    with options (``@timed(name="resize", registry=my_timings)``).

    >>> import asyncio, inspect
    >>> t = Timings()
    >>> @timed(registry=t)
    ... async def fetch(n: int) -> int: return n
    >>> asyncio.run(fetch(1)), list(inspect.signature(fetch).parameters), len(t)
    (1, ['n'], 1)
    """

    def decorate(fn: F) -> F:
        label = name or f"{fn.__module__}.{fn.__qualname__}"
        if inspect.iscoroutinefunction(fn):

            @functools.wraps(fn)
            async def awrapper(*args: Any, **kwargs: Any) -> Any:
                with timer(label, registry=registry):
                    return await fn(*args, **kwargs)

            return awrapper  # type: ignore[return-value]

        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            with timer(label, registry=registry):
                return fn(*args, **kwargs)

        return wrapper  # type: ignore[return-value]

    return decorate(func) if func is not None else decorate


__all__ = ["TIMINGS", "TimedRecord", "Timings", "timed", "timer"]
