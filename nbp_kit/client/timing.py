"""Phase timing: where every second of a request went.

:class:`PhaseClock` listens to httpx2's ``trace`` request extension (connection, TLS, request
sent, response headers) and to the client's own stages (body read, parse, decode, save), and
turns them into the phase durations of :data:`nbp_kit.records.PHASES`::

    queue    scheduled -> first network step (pacer, pool wait)
    connect  TCP connect (DNS folded in)          tls   TLS handshake
    send     request headers + body written       wait  request sent -> response headers
    download response body                        fetch relay: GET of the returned url
    parse / decode / save                         client-side stages

docs/client.md defines each phase for every path.
"""

from __future__ import annotations

import time
import weakref
from collections.abc import Callable
from typing import Any, TypeVar

F = TypeVar("F", bound=Callable[..., Any])


# --------------------------------------------------------------------------- trace events
class PhaseClock:
    """Timestamps for one attempt, on one monotonic clock anchored to wall-clock time.

    Pass :meth:`atrace` (async client) or :meth:`trace` (sync client) as the request's
    ``trace`` extension; call :meth:`mark` for client-side stages.
    """

    __slots__ = ("marks", "_mono0", "_wall0", "_clock", "connect_seen", "http_version", "setups", "joined_setup")

    def __init__(
        self, *, clock: Callable[[], float] = time.perf_counter, wall: Callable[[], float] = time.time
    ) -> None:
        self._clock = clock
        self._mono0 = clock()
        self._wall0 = wall()
        self.marks: dict[str, float] = {}
        self.connect_seen = False
        self.http_version: str | None = None
        #: Connection set-ups seen on this attempt's pool (shared by its attempts): see :func:`pool_setups`.
        self.setups: list[tuple[float, float]] | None = None
        #: True when the attempt waited for an HTTP/2 connection another attempt was opening.
        self.joined_setup = False

    def now(self) -> float:
        return self._clock()

    def wall_at(self, mono: float | None) -> float | None:
        """Epoch seconds of a monotonic timestamp."""
        return None if mono is None else self._wall0 + (mono - self._mono0)

    def mark(self, name: str, at: float | None = None) -> float:
        """Record (first occurrence wins) a named moment; return it."""
        t = self._clock() if at is None else at
        self.marks.setdefault(name, t)
        return t

    def mark_last(self, name: str, at: float | None = None) -> float:
        t = self._clock() if at is None else at
        self.marks[name] = t
        return t

    def trace(self, name: str, info: dict[str, Any]) -> None:
        """httpcore event -> marks (``http11.send_request_headers.started`` etc.)."""
        t = self._clock()
        _, _, event = name.partition(".")  # drop the "connection."/"http11."/"http2." prefix
        if name.startswith("http11."):
            self.http_version = "HTTP/1.1"
        elif name.startswith("http2."):
            self.http_version = "HTTP/2"
        if event.startswith("connect_tcp.") or event.startswith("connect_unix_socket."):
            self.connect_seen = True
            self.marks.setdefault("connect." + event.rsplit(".", 1)[1], t)
        elif event.startswith("start_tls."):
            self.marks.setdefault("tls." + event.rsplit(".", 1)[1], t)
        elif event.startswith("send_connection_init."):
            self.marks.setdefault("h2init." + event.rsplit(".", 1)[1], t)
            if event.endswith(".complete") and self.setups is not None and "connect.started" in self.marks:
                # The connection is usable from here: requests that joined it waited until now.
                self.setups.append((self.marks["connect.started"], t))
                del self.setups[:-_SETUPS_KEPT]
        elif event == "send_request_headers.started":
            self.marks.setdefault("send.started", t)
        elif event == "send_request_body.complete":
            self.marks.setdefault("send.complete", t)
        elif event == "receive_response_headers.complete":
            self.marks.setdefault("headers", t)
        elif event == "receive_response_body.started":
            self.marks.setdefault("body.started", t)
        elif event == "receive_response_body.complete":
            self.marks.setdefault("body.complete", t)

    async def atrace(self, name: str, info: dict[str, Any]) -> None:
        self.trace(name, info)

    # ----------------------------------------------------------------- phases
    def _joined_at(self) -> float | None:
        """When this attempt began waiting for a connection another attempt was opening.

        An HTTP/2 request that finds the pool's only connection still connecting is handed
        that connection and waits (no connect events of its own) until its preface is sent.
        That wait is connection set-up, not queue: it ends where the other attempt's set-up
        window ends, and starts when both this attempt was ready and that set-up had begun.
        """
        m = self.marks
        sent = m.get("send.started")
        if self.connect_seen or sent is None or not self.setups or "h2init.started" in m:
            return None
        ready = m.get("ready", m.get("scheduled"))
        if ready is None:
            return None
        starts = [max(ready, ws) for ws, we in self.setups if ready < we <= sent and ws < sent]
        return min(starts) if starts else None

    def boundaries(self, end: float) -> list[tuple[str, float]]:
        """The attempt's timeline as (phase, start) pairs in order, closed by ``("end", end)``.

        Each phase runs from its start to the next present start, so the phases partition
        ``scheduled -> end`` and sum to ``total_s`` exactly; a phase whose start mark is
        absent is not on this path (``None``). Out-of-order marks are clamped forward.
        """
        m = self.marks
        joined = self._joined_at()
        self.joined_setup = joined is not None
        starts: list[tuple[str, float | None]] = [
            ("queue", m.get("scheduled")),
            ("connect", joined if joined is not None else m.get("connect.started")),
            ("tls", m.get("tls.started")),
            ("send", m.get("h2init.started", m.get("send.started"))),
            ("wait", m.get("send.complete")),
            ("download", m.get("download.started", m.get("headers"))),
            ("parse", m.get("parse.started")),
            ("fetch", m.get("fetch.started")),
            ("decode", m.get("decode.started")),
            ("save", m.get("save.started")),
        ]
        out: list[tuple[str, float]] = []
        last = m.get("scheduled", end)
        for name, t in starts:
            if t is None or t > end:
                continue
            last = max(last, t)
            out.append((name, last))
        out.append(("end", max(last, end)))
        return out

    def phases(self, end: float | None = None) -> dict[str, float | None]:
        """Durations (seconds) of the phases up to ``end`` (now): they sum to ``end - scheduled``."""
        marks = self.boundaries(self._clock() if end is None else end)
        out: dict[str, float | None] = {p + "_s": None for p in _PHASE_ORDER}
        for (name, t0), (_, t1) in zip(marks, marks[1:]):
            out[name + "_s"] = t1 - t0
        return out


_PHASE_ORDER = ("queue", "connect", "tls", "send", "wait", "download", "parse", "fetch", "decode", "save")
_SETUPS_KEPT = 64
_POOL_SETUPS: weakref.WeakKeyDictionary[Any, list[tuple[float, float]]] = weakref.WeakKeyDictionary()


def pool_setups(pool: Any) -> list[tuple[float, float]]:
    """The connection set-up windows seen on one HTTP pool (shared by all its attempts)."""
    found = _POOL_SETUPS.get(pool)
    if found is None:
        found = _POOL_SETUPS[pool] = []
    return found


def parse_server_timing(value: str | None) -> dict[str, float]:
    """``"queue;dur=12.5, gen;dur=830"`` -> ``{"queue": 0.0125, "gen": 0.83}`` (seconds).

    Malformed entries are skipped: this header is advisory.

    >>> parse_server_timing("queue;dur=12.5, gen;dur=830")
    {'queue': 0.0125, 'gen': 0.83}
    """
    out: dict[str, float] = {}
    for entry in (value or "").split(","):
        name, *params = (p.strip() for p in entry.split(";"))
        name = name.strip('"')
        if not name:
            continue
        for p in params:
            key, _, val = p.partition("=")
            if key.strip().lower() == "dur":
                try:
                    out[name] = float(val.strip().strip('"')) / 1000.0
                except ValueError:
                    pass
    return out


def emulator_fields(headers: Any) -> dict[str, Any]:
    """Server time (Google's ``gfet4t7`` entry) and the emulator's ground truth and time base."""
    out: dict[str, Any] = {}
    st = parse_server_timing(headers.get("server-timing"))
    if "queue" in st:
        out["server_queue_s"] = st["queue"]
    if "gen" in st:
        out["server_generation_s"] = st["gen"]
    if "late" in st:
        out["emulator_late_s"] = st["late"]
    if "gfet4t7" in st:
        # Google's front end: the whole server time on a unary answer, time to headers on a stream.
        out["server_total_s"] = st["gfet4t7"]
    for header, field, conv in (
        ("x-emulator-time-scale", "time_scale", float),
        ("x-emulator-virtual-time", "virtual_at", float),
        ("x-emulator-clock", "clock", str),
    ):
        raw = headers.get(header)
        if raw:
            try:
                out[field] = conv(raw)
            except ValueError:
                pass
    return out
