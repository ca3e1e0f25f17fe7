"""Phase timing: where every second of a request went, and timers for the user's own code.

:class:`PhaseClock` listens to httpx2's ``trace`` request extension (connection, TLS, request
sent, response headers) and to the client's own stages (body read, parse, decode, save), and
turns them into the phase durations of :data:`nbp_kit.records.PHASES`::

    queue    scheduled -> first network step (pacer, pool wait)
    connect  TCP connect (DNS folded in)          tls   TLS handshake
    send     request headers + body written       wait  request sent -> response headers
    download response body                        fetch relay: GET of the returned url
    parse / decode / save                         client-side stages

``@timed`` and :func:`timer` time any code into a :class:`Timings` registry (nothing printed)::

    >>> t = Timings()
    >>> @timed(registry=t)
    ... def work(x): return x * 2
    >>> work(3), len(t.records), t.records[0].name.endswith("work")
    (6, 1, True)
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import inspect
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import httpx2

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


# --------------------------------------------------------------------------- instrumenting other clients
class AttemptLog:
    """A thread-safe sink that keeps every :class:`~nbp_kit.records.Attempt` it is given.

    >>> log = AttemptLog()
    >>> len(log.attempts)
    0
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._items: list[Any] = []

    def attempt_started(self, attempt: Any) -> None:  # the sink protocol; nothing to keep yet
        pass

    def attempt_finished(self, attempt: Any) -> None:
        with self._lock:
            self._items.append(attempt)

    @property
    def attempts(self) -> tuple[Any, ...]:
        with self._lock:
            return tuple(self._items)

    def to_frame(self) -> Any:
        import pandas as pd

        from .records import ATTEMPT_FIELDS

        return pd.DataFrame([a.as_dict() for a in self.attempts], columns=list(ATTEMPT_FIELDS))


def _model_from_path(path: str) -> str:
    # ".../models/gemini-3-pro-image-preview:generateContent" -> the model id
    tail = path.rsplit("/models/", 1)[-1] if "/models/" in path else ""
    return tail.split(":", 1)[0]


class _Recorder:
    """Shared by the sync and async instrumented transports: one Attempt per request."""

    def __init__(self, sink: Any, provider: str) -> None:
        self.sink = sink
        self.provider = provider

    def begin(self, request: Any) -> tuple[PhaseClock, Any]:
        import uuid

        from .records import Attempt

        clock = PhaseClock()
        clock.marks["scheduled"] = clock.now()
        inner = request.extensions.get("trace")
        request.extensions["trace"] = clock.trace if not _is_async_request(request) else clock.atrace
        if inner is not None:  # keep a caller's own trace callback working
            request.extensions["trace"] = _chain(clock, inner, _is_async_request(request))
        call_id = uuid.uuid4().hex[:16]
        record = Attempt(attempt_id=f"{call_id}-1", call_id=call_id, attempt_no=1, provider=self.provider,
                         model=_model_from_path(request.url.path), base_host=request.url.netloc.decode("ascii"),
                         transport="stream" if "alt=sse" in str(request.url.query) else "unary",
                         scheduled_at=clock.wall_at(clock.marks["scheduled"]))
        if self.sink is not None:
            self.sink.attempt_started(record)
        return clock, record

    def finish(self, clock: PhaseClock, record: Any, *, response: Any = None, error: BaseException | None = None,
               bytes_down: int | None = None) -> None:
        from .errors import redact
        from .providers import _kind_for_status

        end = clock.now()
        fields: dict[str, Any] = {k: v for k, v in clock.phases().items()}
        if response is not None:
            fields.update(emulator_fields(response.headers))
            fields["status_code"] = response.status_code
            hv = response.extensions.get("http_version")
            fields["http_version"] = hv.decode("ascii") if isinstance(hv, bytes) else clock.http_version
        sent = clock.marks.get("send.started")
        ok = error is None and response is not None and response.status_code < 400
        dl = fields.get("download_s")
        fields.update(
            status="ok" if ok else "error",
            error_kind=None if ok else ("connection_reset" if error is not None
                                        else _kind_for_status(response.status_code, {}, [])),
            error_message=None if ok else redact(f"{type(error).__name__}: {error}" if error is not None
                                                 else f"HTTP {response.status_code}"),
            sent_at=clock.wall_at(sent), ended_at=clock.wall_at(end),
            total_s=end - clock.marks["scheduled"],
            connection_reused=(not clock.connect_seen) if sent is not None else None,
            bytes_down=bytes_down,
            download_mbps=(bytes_down * 8 / 1e6 / dl) if bytes_down and dl else None,
        )
        done = record.replace(**fields)
        if self.sink is not None:
            self.sink.attempt_finished(done)

    def wrap(self, clock: PhaseClock, record: Any, response: Any) -> Any:
        """Mark the headers and return ``response`` with a body stream that finishes the
        record when it has been read (or fails)."""
        clock.mark("headers")

        def done(n: int, error: BaseException | None) -> None:
            clock.mark("download.complete")
            self.finish(clock, record, response=response, error=error, bytes_down=n)

        return httpx2.Response(response.status_code, headers=response.headers,
                               stream=_CountingStream(response.stream, done), extensions=response.extensions)


def _is_async_request(request: Any) -> bool:
    return bool(request.extensions.get("_nbp_async"))


def _chain(clock: PhaseClock, inner: Callable[..., Any], is_async: bool) -> Callable[..., Any]:
    if is_async:
        async def both(name: str, info: dict[str, Any]) -> None:
            clock.trace(name, info)
            await inner(name, info)

        return both

    def both_sync(name: str, info: dict[str, Any]) -> None:
        clock.trace(name, info)
        inner(name, info)

    return both_sync


class _CountingStream(httpx2.SyncByteStream, httpx2.AsyncByteStream):
    """Wraps a transport response stream: counts raw bytes, stamps the end, records once."""

    def __init__(self, stream: Any, on_done: Callable[[int, BaseException | None], None]) -> None:
        self._stream = stream
        self._on_done = on_done
        self._n = 0
        self._done = False

    def _finish(self, error: BaseException | None) -> None:
        if not self._done:
            self._done = True
            self._on_done(self._n, error)

    def __iter__(self) -> Iterator[bytes]:
        try:
            for chunk in self._stream:
                self._n += len(chunk)
                yield chunk
        except BaseException as exc:
            self._finish(exc)
            raise
        self._finish(None)

    async def __aiter__(self) -> Any:
        try:
            async for chunk in self._stream:
                self._n += len(chunk)
                yield chunk
        except BaseException as exc:
            self._finish(exc)
            raise
        self._finish(None)

    def close(self) -> None:
        try:
            self._stream.close()
        finally:
            self._finish(None)

    async def aclose(self) -> None:
        try:
            await self._stream.aclose()
        finally:
            self._finish(None)


def instrumented_httpx_client(*, sink: Any = None, provider: str = "gemini", asynchronous: bool = False,
                              **httpx_kwargs: Any) -> Any:
    """An ``httpx2.Client`` (``AsyncClient`` with ``asynchronous=True``) that records one
    phase-timed :class:`~nbp_kit.records.Attempt` per request into ``sink``.

    For users who keep the google-genai SDK::

        log = AttemptLog()
        http = instrumented_httpx_client(sink=log)
        client = genai.Client(api_key=KEY, http_options=types.HttpOptions(
            base_url=emu.base_url, api_version="v1beta", httpx_client=http))
        ...; log.to_frame()[["wait_s", "download_s", "connection_reused"]]

    Parsing, decoding and saving stay with the SDK, so only the network phases are filled in.
    """
    recorder = _Recorder(sink if sink is not None else AttemptLog(), provider)
    httpx_kwargs.setdefault("timeout", httpx2.Timeout(connect=10.0, read=300.0, write=60.0, pool=600.0))
    if asynchronous:
        inner_async = httpx_kwargs.pop("transport", None) or httpx2.AsyncHTTPTransport(
            http2=httpx_kwargs.pop("http2", True), verify=httpx_kwargs.pop("verify", True))

        class _AsyncTransport(httpx2.AsyncBaseTransport):
            async def handle_async_request(self, request: Any) -> Any:
                request.extensions["_nbp_async"] = True
                clock, record = recorder.begin(request)
                try:
                    response = await inner_async.handle_async_request(request)
                except BaseException as exc:
                    recorder.finish(clock, record, error=exc)
                    raise
                return recorder.wrap(clock, record, response)

            async def aclose(self) -> None:
                await inner_async.aclose()

        return httpx2.AsyncClient(transport=_AsyncTransport(), **httpx_kwargs)

    inner = httpx_kwargs.pop("transport", None) or httpx2.HTTPTransport(
        http2=httpx_kwargs.pop("http2", True), verify=httpx_kwargs.pop("verify", True))

    class _Transport(httpx2.BaseTransport):
        def handle_request(self, request: Any) -> Any:
            clock, record = recorder.begin(request)
            try:
                response = inner.handle_request(request)
            except BaseException as exc:
                recorder.finish(clock, record, error=exc)
                raise
            return recorder.wrap(clock, record, response)

        def close(self) -> None:
            inner.close()

    return httpx2.Client(transport=_Transport(), **httpx_kwargs)


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




__all__ = [
    "TIMINGS",
    "AttemptLog",
    "PhaseClock",
    "TimedRecord",
    "Timings",
    "emulator_fields",
    "instrumented_httpx_client",
    "parse_server_timing",
    "timed",
    "timer",
]
