"""One attempt, executed: pace, send, stream or read, parse, fetch, decode, save, record.

The :class:`~nbp_kit.client.AsyncClient` owns the call (validation, retries through stamina,
hedging) and hands each try to :func:`run_attempt`, which turns it into one
:class:`~nbp_kit.records.Attempt` with its phases. Low-level errors (httpx2, JSON, Pillow) are
translated here, at one seam, into :mod:`nbp_kit.errors`. :func:`models_attempt` is the
cheap ``GET /v1beta/models`` request, recorded the same way.

Private to the client: these functions read the client's settings and its pool.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import time
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx2

from ..errors import (
    BadPayload,
    ConfigError,
    RateLimited,
    RequestFailed,
    TransportFailed,
    redact,
)
from ..providers.base import ParsedImage, load_json
from ..providers.gemini import StreamState
from ..providers.pricing import attempt_cost, failed_attempt_cost
from ..providers.sse import SSEParser
from ..records import Attempt
from ..spec import ImageSpec
from . import images
from .retry import RetryDecision
from .safety import MAX_IMAGE_BYTES, check_image_url
from .timing import PhaseClock, emulator_fields, pool_setups

if TYPE_CHECKING:
    from .seams import AttemptHost

# The client's logger name, unchanged by the split: the redacting log filter sits on it.
log = logging.getLogger("nbp_kit.client")


class Call:
    """Mutable state of one generate() call across its attempts."""

    def __init__(
        self,
        *,
        call_id: str,
        prompt: str,
        spec: ImageSpec,
        seed: int | None,
        stream: bool,
        run_id: str | None,
        request_key: str | None,
        scheduled_wall: float,
        save: bool,
        headers: Any,
        images: tuple[Any, ...] = (),
        history: tuple[dict[str, Any], ...] = (),
        session_id: str | None = None,
        turn: int | None = None,
    ) -> None:
        self.call_id = call_id
        self.images, self.history, self.session_id, self.turn = images, history, session_id, turn
        self.model_parts: tuple[dict[str, Any], ...] = ()
        self.prompt, self.spec, self.seed, self.stream = prompt, spec, seed, stream
        self.run_id, self.request_key, self.save, self.headers = run_id, request_key, save, headers
        self.scheduled_wall = scheduled_wall
        self.scheduled_mono = time.perf_counter() - max(0.0, time.time() - scheduled_wall)
        self.next_no = 0
        self.records: list[Attempt] = []
        self.once_failures = 0
        self.decisions: dict[int, RetryDecision] = {}
        self.image: bytes | None = None

    def hook(self, exc: Exception) -> bool | float:
        """stamina's backoff hook: the decision was taken when the attempt was recorded."""
        decision = self.decisions.get(id(exc))
        if decision is None or not decision.retry:
            return False
        return float(decision.delay_s or 0.0)


# --------------------------------------------------------------------------- one attempt
async def run_attempt(client: AttemptHost, call: Call, *, hedge: bool = False) -> Attempt:
    """One try of ``call``: the record is appended to ``call.records`` and sent to the sink.

    Failures are recorded first, then raised (``RequestFailed`` with the retry decision
    stored in ``call.decisions`` for stamina's hook); a success is returned.
    """
    call.next_no += 1
    no = call.next_no
    spec = call.spec
    clock = PhaseClock()
    clock.marks["scheduled"] = call.scheduled_mono if no == 1 else clock.now()
    record = Attempt(
        attempt_id=f"{call.call_id}-{no}",
        call_id=call.call_id,
        attempt_no=no,
        run_id=call.run_id,
        request_key=call.request_key,
        hedge=hedge,
        provider=client.provider.name,
        model=spec.model,
        base_host=client.base_host,
        transport="stream" if call.stream else "unary",
        resolution=spec.resolution,
        aspect_ratio=spec.aspect_ratio,
        thinking_level=spec.thinking_level,
        grid=spec.grid,
        prompt=call.prompt,
        seed=call.seed,
        scheduled_at=clock.wall_at(clock.marks["scheduled"]),
        tiles=spec.tiles,
        **_input_fields(call),
    )
    fields: dict[str, Any] = {}
    acquired = False
    try:
        if client.pacer is not None:
            await client.pacer.acquire(spec)
            acquired = True
        clock.mark("ready")
        if client.sink is not None:
            client.sink.attempt_started(record)
        try:
            async with asyncio.timeout(client.timeouts.deadline_for(spec.resolution)):
                await _exchange(client, call, clock, fields, no)
        except TimeoutError as exc:
            raise TransportFailed(
                f"attempt passed its {client.timeouts.deadline_for(spec.resolution):g} s deadline for "
                f"{spec.resolution} (maybe billed)",
                kind="timeout",
            ) from exc
        except httpx2.TimeoutException as exc:
            kind = "connect_error" if isinstance(exc, httpx2.ConnectTimeout) else "timeout"
            raise TransportFailed(
                f"{type(exc).__name__}: {exc} (maybe billed)" if kind == "timeout" else f"{type(exc).__name__}: {exc}",
                kind=kind,
            ) from exc
        except httpx2.ConnectError as exc:
            raise TransportFailed(f"ConnectError: {exc}", kind="connect_error") from exc
        except (
            httpx2.RemoteProtocolError,
            httpx2.ReadError,
            httpx2.WriteError,
            httpx2.CloseError,
            httpx2.NetworkError,
            httpx2.LocalProtocolError,
        ) as exc:
            raise TransportFailed(f"{type(exc).__name__}: {exc}", kind="connection_reset") from exc
        except httpx2.DecodingError as exc:
            raise BadPayload(f"response body could not be decoded: {exc}", kind="bad_payload") from exc
        except httpx2.HTTPError as exc:
            raise TransportFailed(f"{type(exc).__name__}: {exc}", kind="connection_reset") from exc
    except asyncio.CancelledError:
        done = _finish(record, clock, fields, status="error", kind="cancelled", message="cancelled")
        call.records.append(done)
        _emit(client, done, acquired)
        raise
    except RequestFailed as exc:
        if exc.kind in ("bad_payload", "wrong_image"):
            call.once_failures += 1
        decision = _decide(client, call, exc, no)
        kind = decision.stop_kind or exc.kind
        if decision.stop_kind:
            exc.kind = decision.stop_kind
        call.decisions[id(exc)] = decision
        if exc.status_code is not None:
            fields["status_code"] = exc.status_code
        if exc.quota:
            fields.update(exc.quota)
        if exc.usage is not None:
            fields.update(exc.usage.as_dict())
        if "cost_usd" not in fields:  # refusals bill their tokens; a timed-out attempt may be billed
            fields["cost_usd"] = failed_attempt_cost(
                client.provider.name, call.spec.model, call.spec, exc.kind, exc.usage
            )
        done = _finish(
            record,
            clock,
            fields,
            status="error",
            kind=kind,
            message=str(exc),
            retry_delay_s=decision.delay_s if decision.retry else None,
            retry_delay_source=decision.source if decision.retry else None,
        )
        call.records.append(done)
        _emit(client, done, acquired)
        if decision.retry:
            log.info(
                "retrying call %s after attempt %d (%s) in %.2f s [%s]",
                call.call_id,
                no,
                kind,
                decision.delay_s or 0.0,
                decision.source,
            )
        raise
    except Exception as exc:  # a bug on our side: recorded, then re-raised as it is
        done = _finish(
            record, clock, fields, status="error", kind="client_error", message=redact(f"{type(exc).__name__}: {exc}")
        )
        call.records.append(done)
        _emit(client, done, acquired)
        raise
    done = _finish(record, clock, fields, status="ok")
    call.records.append(done)
    if client.retry_budget is not None:
        client.retry_budget.record_success()
    if client._hedger is not None and done.total_s is not None:
        client._hedger.observe_success(done.total_s)
    _emit(client, done, acquired)
    return done


def _input_fields(call: Call) -> dict[str, Any]:
    """What the attempt sends besides the prompt: reference images and its editing session."""
    out: dict[str, Any] = {"session_id": call.session_id, "turn": call.turn}
    if call.images:
        out.update(
            input_images=len(call.images),
            input_bytes=sum(len(i.data) for i in call.images),
            input_pixels=sum(i.pixels for i in call.images),
        )
    return out


def _decide(client: AttemptHost, call: Call, exc: RequestFailed, no: int) -> RetryDecision:
    if isinstance(exc, RateLimited) and client._hedger is not None:
        client._hedger.observe_429()
    decision = client.retry.decide(
        kind=exc.kind,
        attempt_no=no,
        server_delay_s=exc.retry_wait_s,
        server_delay_source=exc.retry_delay_source,
        once_kind_failures=call.once_failures,
    )
    if decision.retry and client.retry_budget is not None and not client.retry_budget.try_spend():
        return RetryDecision(False, reason="retry budget exhausted")
    return decision


def _emit(client: AttemptHost, record: Attempt, acquired: bool) -> None:
    if client.sink is not None:
        client.sink.attempt_finished(record)
    if acquired and client.pacer is not None:
        client.pacer.release(record)


def _finish(
    record: Attempt,
    clock: PhaseClock,
    fields: dict[str, Any],
    *,
    status: str,
    kind: str | None = None,
    message: str | None = None,
    **extra: Any,
) -> Attempt:
    end = clock.now()
    phases = clock.phases(end)
    sent = clock.marks.get("send.started")
    dl, nbytes = phases.get("download_s"), fields.get("bytes_down")
    values: dict[str, Any] = {**phases, **fields, **extra}
    values.update(
        status=status,
        error_kind=kind,
        error_message=redact(message) if message else None,
        sent_at=clock.wall_at(sent),
        ended_at=clock.wall_at(end),
        total_s=max(0.0, end - clock.marks["scheduled"]),
        http_version=fields.get("http_version") or clock.http_version,
        connection_reused=(not clock.connect_seen and not clock.joined_setup) if sent is not None else None,
        download_mbps=(nbytes * 8 / 1e6 / dl) if nbytes and dl else None,
    )
    return record.replace(**{k: v for k, v in values.items() if k in _ATTEMPT_FIELDS})


# --------------------------------------------------------------------------- one HTTP exchange
async def _exchange(client: AttemptHost, call: Call, clock: PhaseClock, fields: dict[str, Any], no: int) -> None:
    spec, provider = call.spec, client.provider
    inputs = {"images": call.images, "history": call.history} if (call.images or call.history) else {}
    wire = provider.build_request(call.prompt, spec, seed=call.seed, stream=call.stream, **inputs)
    extra = call.headers(no) if callable(call.headers) else (call.headers or {})
    hdrs = {
        "content-type": "application/json",
        **{k: v for k, v in extra.items()},
        **provider.auth_headers(client._api_key),
    }
    if call.stream:
        hdrs["accept"] = "text/event-stream"
    http = client._client()
    content = json.dumps(wire.json).encode()
    fields["bytes_up"] = len(content)
    clock.setups = pool_setups(http)
    request = http.build_request(
        wire.method,
        client.base_url + wire.path,
        params=wire.params or None,
        content=content,
        headers=hdrs,
        extensions={"trace": clock.atrace},
    )
    response = await http.send(request, stream=True)
    try:
        clock.mark("headers")
        fields["status_code"] = response.status_code
        fields["http_version"] = response.http_version
        fields.update(emulator_fields(response.headers))
        body: bytes | bytearray
        if response.status_code != 200:
            body = await response.aread()
            clock.mark("download.complete")
            fields["bytes_down"] = response.num_bytes_downloaded
            raise provider.classify_error(response.status_code, response.headers, body).to_exception()
        if call.stream:
            parsed = await _read_stream(client, response, clock, fields)
        else:
            # Not aread(): it would also keep the body on the response (response.content),
            # one more 15 MB copy of a 4K image alive while it is decoded.
            body = await _read_body(response)
            clock.mark("download.complete")
            fields["bytes_down"] = response.num_bytes_downloaded
            clock.mark("parse.started")
            parsed = provider.parse_body(body, spec)
            clock.mark("parse.complete")
            del body  # the parsed base64 is all we need: don't hold a second copy while decoding
    finally:
        await response.aclose()
    if parsed.usage is not None:
        fields.update(parsed.usage.as_dict())
    fields.update(response_id=parsed.response_id, model_version=parsed.model_version)
    call.model_parts = parsed.model_parts
    # Billed from here on, whatever the checks below find (a wrong-size image is paid for too).
    fields["cost_usd"] = attempt_cost(provider.name, spec.model, spec, parsed.usage)
    if parsed.image_url is not None:
        clock.mark("fetch.started")
        raw = await _fetch(client, parsed.image_url)
        clock.mark("fetch.complete")
        fields["bytes_fetched"] = len(raw)
    else:
        raw = None
    # Decode/verify/save are CPU and disk work: a worker thread keeps the loop free for
    # the other requests in flight, so their phase timings stay honest.
    clock.mark("decode.started")
    info, image = await asyncio.to_thread(_decode, parsed, raw)
    clock.mark("decode.complete")
    size_ok = images.size_matches(info, spec.pixel_size) and (parsed.mime in (None, info.mime))
    fields.update(
        bytes_decoded=info.bytes_decoded,
        image_sha256=info.sha256,
        image_width=info.width,
        image_height=info.height,
        image_mime=info.mime,
        size_ok=size_ok,
    )
    if not size_ok:
        raise BadPayload(
            f"image is {info.width}x{info.height} {info.mime} (declared {parsed.mime}); "
            f"requested {spec.pixel_size[0]}x{spec.pixel_size[1]}",
            kind="wrong_image",
        )
    call.image = image
    if call.save:
        clock.mark("save.started")
        path = client.output_dir / (call.run_id or "adhoc") / f"{call.call_id}-{no}{info.ext}"
        try:
            tiles = await asyncio.to_thread(_save, path, image, spec.grid, info.sha256)
        except OSError as exc:  # full or read-only disk: a recorded failure, not a crash
            raise RequestFailed(
                f"image could not be saved under {str(path.parent)!r}: {exc.strerror or exc} "
                "(it was generated, and may be billed); free space or pass a writable output_dir",
                kind="save_failed",
            ) from exc
        clock.mark("save.complete")
        fields.update(image_path=str(path), tile_paths=tiles)


async def _read_stream(
    client: AttemptHost, response: httpx2.Response, clock: PhaseClock, fields: dict[str, Any]
) -> ParsedImage:
    """Read and fold an SSE stream as it arrives.

    The split: ``wait`` runs to the arrival of the chunk that opens the event carrying the
    final image (the server's work), ``download`` from there to the last byte (its transfer).
    Parsing done while the stream arrives stays inside those two (it overlaps the network);
    ``parse`` is the fold at the end. Milestones are seconds from ``send.started``.
    """
    parser, state = SSEParser(), StreamState()
    t0 = clock.marks.get("send.started", clock.now())
    observe = client.provider.observe_event  # type: ignore[attr-defined]
    opened: float | None = None  # arrival of the chunk that began the event being assembled
    async for chunk in response.aiter_bytes():
        now = clock.now()
        if opened is None:
            opened = now
        for data in parser.feed(chunk):
            had_final = state.final_image_s is not None
            observe(state, load_json(data, what="stream event"), now - t0)
            if not had_final and state.final_image_s is not None:
                clock.mark("download.started", opened)
            opened = now  # the next event began in this chunk at the latest
        if parser.idle:
            opened = None
    for data in parser.close():
        had_final = state.final_image_s is not None
        observe(state, load_json(data, what="stream event"), clock.now() - t0)
        if not had_final and state.final_image_s is not None and opened is not None:
            clock.mark("download.started", opened)
    clock.mark("download.complete")
    fields["bytes_down"] = response.num_bytes_downloaded
    fields.update(
        first_thought_s=state.first_thought_s,
        first_interim_image_s=state.first_interim_image_s,
        final_image_s=state.final_image_s,
    )
    clock.mark("parse.started")
    parsed = client.provider.finish_stream(state)  # type: ignore[attr-defined]
    clock.mark("parse.complete")
    return parsed


async def _read_body(response: httpx2.Response) -> bytes | bytearray:
    """The whole body in one buffer. With a known length (no content encoding) it is filled
    in place: joining a list of chunks would hold the 15 MB of a 4K answer twice."""
    length = response.headers.get("content-length")
    if response.headers.get("content-encoding") or not (length or "").isdigit():
        return b"".join([chunk async for chunk in response.aiter_bytes()])
    buf = bytearray(int(length or 0))
    filled = 0
    async for chunk in response.aiter_bytes():
        if filled + len(chunk) > len(buf):
            buf.extend(b"\0" * (filled + len(chunk) - len(buf)))  # longer than announced: keep all of it
        buf[filled : filled + len(chunk)] = chunk
        filled += len(chunk)
    del buf[filled:]  # shorter than announced (a cut body): what arrived, for the parser to judge
    return buf


async def _fetch(client: AttemptHost, url: str) -> bytes:
    # The key is not sent with the follow-up GET: relay URLs are pre-signed, and the
    # host may be a CDN that must never see it. The URL is checked first (https, no private or
    # link-local address unless allowed) and the body bounded like an inline image.
    target = check_image_url(
        url, base_url=client.base_url, allow_private=getattr(client, "allow_private_image_urls", False)
    )
    async with client._client().stream("GET", target) as response:
        if response.status_code != 200:
            body = await response.aread()
            raise client.provider.classify_error(response.status_code, response.headers, body).to_exception()
        chunks, size = [], 0
        async for chunk in response.aiter_bytes():
            size += len(chunk)
            if size > MAX_IMAGE_BYTES:
                raise BadPayload(
                    f"image at {target[:120]!r} is larger than {MAX_IMAGE_BYTES} bytes", kind="bad_payload"
                )
            chunks.append(chunk)
    return b"".join(chunks)


def _decode(parsed: ParsedImage, raw: bytes | None) -> tuple[images.ImageInfo, bytes]:
    if raw is None:
        raw = images.decode_base64(parsed.image_b64 or "")
    return images.inspect_image(raw), raw


def _save(path: Path, raw: bytes, grid: str, sha256: str) -> tuple[str, ...]:
    images.save_atomic(path, raw, sha256=sha256)
    if grid == "1x1":
        return ()
    return images.save_tiles(path, images.split_grid(raw, grid))


_ATTEMPT_FIELDS = frozenset(f.name for f in dataclasses.fields(Attempt))


# --------------------------------------------------------------------------- models list


async def models_attempt(client: AttemptHost, *, run_id: str | None = None, request_key: str | None = None) -> Attempt:
    """``GET {models_path}`` on the client's pool, timed and recorded with ``transport="models"``.

    One try, no retries, no pacer, no cost: it measures the network and the front end
    without the model. ``wait_s`` runs from the request's start to the response headers
    (a cold connection's connect included), ``download_s`` from there to the last byte. Transport failures are recorded, not raised.
    """
    path = client.provider.models_path
    if path is None:
        raise ConfigError(
            f"list_models is not accepted for provider {client.provider.name!r}; "
            "it has no models-list request the kit knows (use provider='gemini')"
        )
    call_id = uuid.uuid4().hex[:16]
    now = time.time()
    record = Attempt(
        attempt_id=f"{call_id}-1",
        call_id=call_id,
        attempt_no=1,
        run_id=run_id,
        request_key=request_key,
        provider=client.provider.name,
        model=client.model,
        base_host=client.base_host,
        transport="models",
        scheduled_at=now,
        tiles=0,
    )
    if client.sink is not None:
        client.sink.attempt_started(record)
    headers = client.provider.auth_headers(client._api_key)
    http = client._client()  # the client's own pool: the same connections the generations use
    t0 = time.perf_counter()
    fields: dict[str, Any] = {}
    try:
        async with http.stream("GET", client.base_url + path, headers=headers) as resp:
            t_headers = time.perf_counter()
            body = await resp.aread()
            t_end = time.perf_counter()
            fields.update(
                status="ok" if resp.status_code == 200 else "error",
                status_code=resp.status_code,
                http_version=resp.http_version,
                bytes_down=len(body),
                wait_s=t_headers - t0,
                download_s=t_end - t_headers,
                error_kind=None if resp.status_code == 200 else "invalid_request",
            )
            h = resp.headers
            if "x-emulator-virtual-time" in h:
                fields["virtual_at"] = float(h["x-emulator-virtual-time"])
                fields["clock"] = h.get("x-emulator-clock", "real")
                fields["time_scale"] = float(h.get("x-emulator-time-scale", "1.0"))
    except httpx2.HTTPError as exc:
        t_end = time.perf_counter()
        fields.update(
            status="error",
            error_kind="connect_error" if isinstance(exc, httpx2.ConnectError) else "connection_reset",
            error_message=redact(f"{type(exc).__name__}: {exc}"),
        )
    done = record.replace(sent_at=now, ended_at=now + (t_end - t0), total_s=t_end - t0, cost_usd=0.0, **fields)
    if client.sink is not None:
        client.sink.attempt_finished(done)
    return done
