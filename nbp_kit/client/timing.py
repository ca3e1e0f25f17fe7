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
from collections.abc import Callable
from typing import Any, TypeVar

F = TypeVar("F", bound=Callable[..., Any])


# --------------------------------------------------------------------------- trace events
class PhaseClock:
    """Timestamps for one attempt, on one monotonic clock anchored to wall-clock time.

    Pass :meth:`atrace` (async client) or :meth:`trace` (sync client) as the request's
    ``trace`` extension; call :meth:`mark` for client-side stages.
    """

    __slots__ = ("marks", "_mono0", "_wall0", "_clock", "connect_seen", "http_version")

    def __init__(self, *, clock: Callable[[], float] = time.perf_counter, wall: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._mono0 = clock()
        self._wall0 = wall()
        self.marks: dict[str, float] = {}
        self.connect_seen = False
        self.http_version: str | None = None

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
    def _span(self, a: str, b: str) -> float | None:
        ta, tb = self.marks.get(a), self.marks.get(b)
        return None if ta is None or tb is None else max(0.0, tb - ta)

    def phases(self) -> dict[str, float | None]:
        """Durations (seconds) of the network and client phases seen so far."""
        m = self.marks
        first_net = min(
            (m[k] for k in ("connect.started", "tls.started", "h2init.started", "send.started") if k in m),
            default=None,
        )
        queue = None if first_net is None or "scheduled" not in m else max(0.0, first_net - m["scheduled"])
        send = self._span("send.started", "send.complete")
        if "h2init.started" in m and "send.started" in m:  # HTTP/2 preface: part of setting up the request
            send = (send or 0.0) + (self._span("h2init.started", "h2init.complete") or 0.0)
        return {
            "queue_s": queue,
            "connect_s": self._span("connect.started", "connect.complete"),
            "tls_s": self._span("tls.started", "tls.complete"),
            "send_s": send,
            "wait_s": self._span("send.complete", "headers"),
            "download_s": self._span("headers", "download.complete"),
            "fetch_s": self._span("fetch.started", "fetch.complete"),
            "parse_s": self._span("parse.started", "parse.complete"),
            "decode_s": self._span("decode.started", "decode.complete"),
            "save_s": self._span("save.started", "save.complete"),
        }


def parse_server_timing(value: str | None) -> dict[str, float]:
    """``"queue;dur=12.5, gen;dur=830"`` -> ``{"queue": 0.0125, "gen": 0.83}`` (seconds).

    Malformed entries are skipped: this header is advisory.

    >>> parse_server_timing("queue;dur=12.5, gen;dur=830")
    {'queue': 0.0125, 'gen': 0.83}
    """
    out: dict[str, float] = {}
    for entry in (value or "").split(","):
        name, *params = (p.strip() for p in entry.split(";"))
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
    """Ground truth and time base from the emulator's response headers (empty elsewhere)."""
    out: dict[str, Any] = {}
    st = parse_server_timing(headers.get("server-timing"))
    if "queue" in st:
        out["server_queue_s"] = st["queue"]
    if "gen" in st:
        out["server_generation_s"] = st["gen"]
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
