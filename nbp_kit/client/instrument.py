"""Phase records for other clients: an httpx2 client (for google-genai or openai) that times each request.

``instrumented_httpx_client(sink=AttemptLog())`` gives a client to pass to an SDK
(``HttpOptions(httpx_client=...)``); every request becomes an :class:`~nbp_kit.records.Attempt`.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from typing import Any

import httpx2

from .timing import PhaseClock, emulator_fields


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

        from ..records import ATTEMPT_FIELDS

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

        from ..records import Attempt

        clock = PhaseClock()
        clock.marks["scheduled"] = clock.now()
        inner = request.extensions.get("trace")
        request.extensions["trace"] = clock.trace if not _is_async_request(request) else clock.atrace
        if inner is not None:  # keep a caller's own trace callback working
            request.extensions["trace"] = _chain(clock, inner, _is_async_request(request))
        call_id = uuid.uuid4().hex[:16]
        record = Attempt(
            attempt_id=f"{call_id}-1",
            call_id=call_id,
            attempt_no=1,
            provider=self.provider,
            model=_model_from_path(request.url.path),
            base_host=request.url.netloc.decode("ascii"),
            transport="stream" if "alt=sse" in str(request.url.query) else "unary",
            scheduled_at=clock.wall_at(clock.marks["scheduled"]),
        )
        if self.sink is not None:
            self.sink.attempt_started(record)
        return clock, record

    def finish(
        self,
        clock: PhaseClock,
        record: Any,
        *,
        response: Any = None,
        error: BaseException | None = None,
        bytes_down: int | None = None,
    ) -> None:
        from ..errors import redact
        from ..providers.http_errors import kind_for_status

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
            error_kind=None
            if ok
            else ("connection_reset" if error is not None else kind_for_status(response.status_code, {}, [])),
            error_message=None
            if ok
            else redact(f"{type(error).__name__}: {error}" if error is not None else f"HTTP {response.status_code}"),
            sent_at=clock.wall_at(sent),
            ended_at=clock.wall_at(end),
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

        return httpx2.Response(
            response.status_code,
            headers=response.headers,
            stream=_CountingStream(response.stream, done),
            extensions=response.extensions,
        )


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


def instrumented_httpx_client(
    *, sink: Any = None, provider: str = "gemini", asynchronous: bool = False, **httpx_kwargs: Any
) -> Any:
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
            http2=httpx_kwargs.pop("http2", True), verify=httpx_kwargs.pop("verify", True)
        )

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
        http2=httpx_kwargs.pop("http2", True), verify=httpx_kwargs.pop("verify", True)
    )

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
