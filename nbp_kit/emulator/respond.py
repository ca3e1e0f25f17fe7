"""The generation pipeline behind every image route: quota, overload, queue, generation time,
image, faults, response (whole JSON or SSE stream).

Order of events for one request (times are the drawn ones, already times ``time_scale``)::

    quota check -> 429 now | overload draw -> 503 after the queue
    queue (capacity slot + drawn queue time) -> generation (image rendered meanwhile in a thread)
    -> one round trip -> headers -> body paced at the network bandwidth

The ``server-timing`` header carries the true queue and generation times.
"""

from __future__ import annotations

import asyncio
import functools
import math
import time
from typing import Any

from ..spec import IMAGE_OUTPUT_TOKENS, PIXEL_TABLE
from . import faults as F
from .editing import TOKENS_PER_INPUT_IMAGE, editing_extra_s, sign
from .jpeggen import model_answer
from .model import Rejection
from .network import paced_send
from .wire import DUE, GenRequest, Reject, Serving, new_response_id

_PLACEHOLDER = "@@NBP_IMAGE_DATA@@"
_SIGNATURE = "@@NBP_THOUGHT_SIGNATURE@@"
#: The real stream's last event (``""`` + STOP) reports fewer thoughts than the image event
#: before it (244, then 167 in the recording): usage is not cumulative across events.
_STOP_EVENT_THOUGHTS = 0.68  # spliced in as bytes: 1-3 MB is not worth a json.dumps
_THOUGHTS = [
    "**Planning the composition**\n\nI'm working out the layout the prompt asks for and where the subject sits.",
    "**Refining details**\n\nI'm checking the lighting, the colours and any text that has to be exact.",
]


class _Abort(Exception):
    """Raised after part of a body was sent, so hypercorn drops the connection (reset fault)."""


async def _reset(headers: dict[str, str], send: Any) -> None:
    """Drop the connection mid-body: shut the socket down (the client reads EOF before the
    declared length, on HTTP/1.1 and HTTP/2 alike), then raise so hypercorn cleans up."""
    _shutdown_socket(headers.get(":server", ""), headers.get(":client", ""))
    await asyncio.sleep(0)
    raise _Abort("emulated connection reset")


def _shutdown_socket(server: str, client: str) -> bool:
    """Find this process's socket with these local/peer addresses and shut it down. ASGI
    gives no handle on the transport, so look through /proc/self/fd (Linux)."""
    import os
    import socket

    for name in os.listdir("/proc/self/fd"):
        try:
            fd = int(name)
            if not os.readlink(f"/proc/self/fd/{name}").startswith("socket:"):
                continue
            sock = socket.socket(fileno=os.dup(fd))
        except OSError:
            continue
        try:
            if (
                sock.type == socket.SOCK_STREAM
                and _addr(sock.getsockname()) == server
                and _addr(sock.getpeername()) == client
            ):
                sock.shutdown(socket.SHUT_RDWR)
                return True
        except OSError:
            pass
        finally:
            sock.close()
    return False


def _addr(address: Any) -> str:
    return f"{address[0]}|{address[1]}" if isinstance(address, tuple) else str(address)


async def generate(
    app: Serving, req: GenRequest, headers: dict[str, str], scope: dict[str, Any], receive: Any, send: Any
) -> None:
    fault = headers.get("x-emulator-fault")
    if fault is not None and fault not in F.FAULT_KINDS:
        raise Reject(
            400,
            F.gemini_error(400, f"x-emulator-fault={fault!r} is not accepted; use one of {', '.join(F.FAULT_KINDS)}"),
        )
    forced = fault is not None
    if fault is None and app.faults_on:
        fault = F.draw_fault(app.profile.get("faults", {}), app.rng)
    rejection = app.quotas.admit(req.n)
    try:
        await _until_client_gone(app, receive, _generate(app, req, headers, scope, send, fault, forced, rejection))
    finally:
        app.quotas.release()


async def _until_client_gone(app: Serving, receive: Any, work: Any) -> None:
    """Run ``work`` (the whole answer) but stop it as soon as the client disconnects, as the
    real service drops an abandoned request: a stalled, trickling or hedged-away answer then
    frees its worker and stops writing to a closed connection."""
    task = asyncio.ensure_future(work)
    gone = asyncio.ensure_future(_wait_disconnect(receive))
    try:
        await asyncio.wait({task, gone}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        gone.cancel()
        if not task.done():
            task.cancel()
            app.count_client_gone()
        await asyncio.gather(task, gone, return_exceptions=True)
    if not task.cancelled() and task.exception() is not None:
        exc = task.exception()
        assert exc is not None
        raise exc


async def _generate(
    app: Serving,
    req: GenRequest,
    headers: dict[str, str],
    scope: dict[str, Any],
    send: Any,
    fault: str | None,
    forced: bool,
    rejection: Rejection | None,
) -> None:
    gemini = req.api == "gemini"
    if fault in ("429", "429-daily"):
        daily = fault == "429-daily"
        lo, hi = app.fault_params["retry_delay_s"]
        delay = (86400.0 if daily else float(app.rng.uniform(lo, hi))) * app.time_scale
        rejection = Rejection(
            "GenerateRequestsPerDayPerProjectPerModel" if daily else "GenerateRequestsPerMinutePerProjectPerModel",
            delay,
            daily,
        )
    if rejection is not None:
        await _send_429(app, req, headers, send, rejection, fault)
        return
    if fault is None:
        severity = app.incidents.severity(req.model)  # an overload incident on the service clock
        if severity and app.rng.random() < severity:
            fault = "503"
    load = app.load_factor()
    if fault is None and app.faults_on:
        ov = app.profile.get("overload", {})
        workers = app.capacity
        p = (
            float(ov.get("p503_base", 0.0))
            + float(ov.get("p503_per_load", 0.0)) * (load - 1.0)
            + float(ov.get("p503_per_utilisation", 0.0)) * app.quotas.active / max(1, workers)
        )
        if app.rng.random() < p:
            fault = "503"
    draw = app.latency.draw(
        model=req.model,
        resolution=req.resolution,
        level=req.level,
        grid=f"{req.grid}x{req.grid}",
        load_factor=load,
        rng=app.rng,
    )
    if req.service_tier == "flex":
        from . import flex

        fault, draw = flex.apply(app, fault, draw, load)
    if fault == "html":
        await app.send_bytes(
            send, 502, F.HTML_PAGE.encode(), b"text/html; charset=utf-8", headers, outcome="fault_html"
        )
        return
    if fault == "stall":
        app.count("fault_stall")
        await asyncio.sleep(float(app.fault_params["stall_s"]))  # ended early when the client gives up
        return
    t_wait = time.perf_counter()
    async with app.workers:
        queue_s = time.perf_counter() - t_wait + draw.queue_s
        await asyncio.sleep(draw.queue_s)
        gen_s = draw.generation_s + editing_extra_s(app.profile, req.input_images, req.input_pixels) * app.time_scale
        if fault in ("503", "500", "504"):
            code = int(fault)
            at = {503: 0.0, 500: float(app.rng.uniform(0.1, 0.9)), 504: 1.0}[code] * gen_s
            await asyncio.sleep(at)
            body = F.gemini_error(code) if gemini else F.relay_error_for(code)
            await app.send_json(
                send,
                code,
                body,
                headers,
                outcome=f"fault_{fault}" if forced else f"error_{code}",
                queue_s=queue_s,
                gen_s=at,
            )
            return
        if fault == "blocked" and gemini:
            gen_s = min(gen_s, 0.05 * gen_s + 0.5 * app.time_scale)
        loop = asyncio.get_running_loop()
        t_gen = time.perf_counter()
        render = loop.run_in_executor(app.executor, _render_all, app, req, fault)
        if req.stream and gemini:
            await _stream(app, req, headers, send, render, fault, queue_s, gen_s, draw.level)
            return
        # Wake a little before the window ends to assemble the answer; sending waits for its end.
        lead = app.assembly_lead(gen_s)
        DUE.set((t_gen + gen_s - lead, t_gen + gen_s))
        await asyncio.sleep(gen_s - lead)
        images = await render
    if gemini:
        await _send_gemini(app, req, headers, send, images, fault, queue_s, gen_s, draw.level)
    else:
        await _send_relay(app, req, headers, scope, send, images, fault, queue_s, gen_s)


def _render_all(app: Serving, req: GenRequest, fault: str | None) -> list[tuple[bytes, bytes, tuple[Any, ...]]]:
    """(png, base64, cache key) per image; CPU work, run in the executor."""
    w, h = req.pixel_size
    if fault == "wrong-size":
        other = "3:2" if req.aspect_ratio == "2:3" else "2:3"
        w, h = PIXEL_TABLE[other]["1K"]
    out = []
    for i in range(req.n):
        key: tuple[Any, ...] = (req.prompt, req.seed + i, w, h, req.grid, req.caption)
        png, b64 = app.images.get(
            req.prompt,
            seed=req.seed + i,
            width=w,
            height=h,
            grid=req.grid,
            caption=req.caption,
            mime=image_mime(app, req),
        )
        if fault == "bad-base64":
            # Drop one character and add non-alphabet ones: no decoder can make this valid.
            b64 = b64[:1000] + b"!*%" + b64[1001:]
            key = (*key, "bad")
        if req.api == "gemini" and not req.stream:
            # the recorded-size thought signature follows the image data: joined here, inside
            # the modeled window, not while the answer is assembled after it
            b64 = b64 + _signature_joiner() + _filler(app, req)
            key = (*key, "signed")
        if not req.stream:
            app.predeflate(key, b64)  # unary answers may be gzipped: encode inside the window
        out.append((png, b64, key))
    return out


def image_mime(app: Serving, req: GenRequest) -> str:
    return str(model_answer(app.profile, req.model)["image_mime"])


def _filler(app: Serving, req: GenRequest) -> bytes:
    """The recorded-size part of this answer's thought signature (what replaces the placeholder)."""
    chars = tuple(model_answer(app.profile, req.model)["signature_chars"])
    return bytes(app.images.signature(req.prompt, req.seed, chars))


def with_signature(app: Serving, req: GenRequest, suffix: bytes) -> bytes:
    """Splice a thought signature of the model's recorded size into the body's tail."""
    if _SIGNATURE.encode() not in suffix:
        return suffix
    return suffix.replace(_SIGNATURE.encode(), _filler(app, req), 1)


def _stable(req: GenRequest, salt: str) -> float:
    """A number in [0, 1) fixed by (prompt, seed): the same request thinks the same way."""
    import hashlib

    digest = hashlib.sha256(f"{salt}\x00{req.prompt}\x00{req.seed}".encode()).digest()
    return int.from_bytes(digest[:4], "big") / 2**32


def _usage(app: Serving, req: GenRequest, level: str, *, image: bool, thoughts_frac: float = 1.0) -> dict[str, Any]:
    text_tokens = max(1, math.ceil(len(req.prompt) / 4))
    image_tokens = TOKENS_PER_INPUT_IMAGE * req.input_images
    prompt_tokens = text_tokens + image_tokens
    spans = app.profile.get("thoughts", {}).get("tokens", {})
    lo, hi = spans.get(app.latency.cell_level(req.model, level), [200, 600])
    # Deterministic per request content so cumulative stream usage never goes backwards.
    thoughts = int((lo + (hi - lo) * _stable(req, "thoughts")) * thoughts_frac)
    img = IMAGE_OUTPUT_TOKENS[req.resolution] if image else 0
    text = 12 if (req.with_text and image) else 0
    usage: dict[str, Any] = {
        "promptTokenCount": prompt_tokens,
        "candidatesTokenCount": img + text,
        "totalTokenCount": prompt_tokens + img + text + thoughts,
        "promptTokensDetails": [{"modality": "TEXT", "tokenCount": text_tokens}],
        "serviceTier": "standard",  # as the real API reports it
    }
    if image_tokens:
        usage["promptTokensDetails"].append({"modality": "IMAGE", "tokenCount": image_tokens})
    if thoughts:
        usage["thoughtsTokenCount"] = thoughts
    if img:
        usage["candidatesTokensDetails"] = [{"modality": "IMAGE", "tokenCount": img}]
    return usage


def _candidate(parts: list[dict[str, Any]], finish: str | None) -> dict[str, Any]:
    cand: dict[str, Any] = {"content": {"parts": parts, "role": "model"}, "index": 0}
    if finish:
        cand["finishReason"] = finish
    return cand


def final_gemini(
    app: Serving, req: GenRequest, fault: str | None, level: str, response_id: str, *, thought_parts: bool
) -> dict[str, Any]:
    """The final response object; the image data is ``_PLACEHOLDER`` (spliced in later)."""
    base = {"modelVersion": req.model, "responseId": response_id}
    if fault == "blocked":
        return {
            "promptFeedback": {"blockReason": "PROHIBITED_CONTENT"},
            "usageMetadata": _usage(app, req, level, image=False, thoughts_frac=0),
            **base,
        }
    if fault == "image-safety":  # the recorded Pro refusal: role-only content, support code, thoughts billed
        code = int(_stable(req, "support-code") * 1e8)
        return {
            "candidates": [
                {
                    "content": {"role": "model"},
                    "finishReason": "IMAGE_PROHIBITED_CONTENT",
                    "finishMessage": "The model output could not be generated. This output contains "
                    "sensitive words that violate Google's Responsible AI practices. If "
                    f"you think this was an error, send feedback. Support code: {code}.",
                    "index": 0,
                }
            ],
            "usageMetadata": _usage(app, req, level, image=False),
            **base,
        }
    if fault == "no-image":  # the recorded NO_IMAGE: empty content, no parts
        return {
            "candidates": [{"content": {}, "finishReason": "NO_IMAGE", "index": 0}],
            "usageMetadata": _usage(app, req, level, image=False),
            **base,
        }
    parts = []
    if thought_parts and req.include_thoughts:
        parts += [{"text": t, "thought": True} for t in _THOUGHTS]
    if req.with_text:
        parts.append({"text": f"Here is the image: {req.prompt[:80]}"})
    parts.append(
        {
            "inlineData": {"mimeType": image_mime(app, req), "data": _PLACEHOLDER},
            # the recorded size comes first (spliced in per image), this response's own mark last
            "thoughtSignature": _SIGNATURE + sign(app.signing_key, response_id, _filler(app, req)),
        }
    )
    return {"candidates": [_candidate(parts, "STOP")], "usageMetadata": _usage(app, req, level, image=True), **base}


@functools.lru_cache(maxsize=1)
def _signature_joiner() -> bytes:
    """The JSON between an image's data and its thought signature, as :func:`final_gemini` writes it."""
    part = {"inlineData": {"mimeType": "image/jpeg", "data": _PLACEHOLDER}, "thoughtSignature": _SIGNATURE}
    text = F.dumps({"candidates": [_candidate([part], "STOP")]})
    return text.split(_PLACEHOLDER.encode(), 1)[1].split(_SIGNATURE.encode(), 1)[0]


def split_around_image(obj: dict[str, Any]) -> tuple[bytes, bytes]:
    text = F.dumps(obj)
    if _PLACEHOLDER.encode() not in text:
        return text, b""
    prefix, suffix = text.split(_PLACEHOLDER.encode(), 1)
    return prefix, suffix


async def _send_body_with_faults(
    app: Serving,
    send: Any,
    headers: dict[str, str],
    prefix: bytes,
    b64: bytes,
    suffix: bytes,
    key: Any,
    fault: str | None,
    queue_s: float,
    gen_s: float,
    extra: dict[str, str] | None = None,
) -> None:
    body = prefix + b64 + suffix
    outcome = f"fault_{fault}" if fault else "ok"
    if fault == "truncated":
        await app.send_bytes(
            send,
            200,
            body[: len(body) * 2 // 3],
            b"application/json; charset=UTF-8",
            headers,
            outcome=outcome,
            queue_s=queue_s,
            gen_s=gen_s,
            extra=extra,
        )
        return
    if fault == "reset":
        hdrs = [
            (b"content-type", b"application/json; charset=UTF-8"),
            *app.common_headers(queue_s, gen_s),
            (b"content-length", str(len(body)).encode()),
        ]
        if app.network.rtt_s > 0:
            await asyncio.sleep(app.network.rtt_s)
        await send({"type": "http.response.start", "status": 200, "headers": hdrs})
        await paced_send(send, body[: len(body) // 3], app.network.bandwidth_mbps, more_body=True)
        app.count(outcome, len(body) // 3)
        await _reset(headers, send)
        return
    bandwidth: float | None = -1.0
    if fault == "trickle":
        total_s = max(0.05, float(app.fault_params["trickle_total_s"]) * app.time_scale)
        bandwidth = len(body) * 8 / total_s / 1e6
    gz_parts = (prefix, b64, suffix, key) if b64 else None
    await app.send_bytes(
        send,
        200,
        body,
        b"application/json; charset=UTF-8",
        headers,
        outcome=outcome,
        queue_s=queue_s,
        gen_s=gen_s,
        gz_parts=gz_parts,
        bandwidth_mbps=bandwidth,
        extra=extra,
    )


async def _send_gemini(
    app: Serving,
    req: GenRequest,
    headers: dict[str, str],
    send: Any,
    images: list[tuple[bytes, bytes, Any]],
    fault: str | None,
    queue_s: float,
    gen_s: float,
    level: str,
) -> None:
    final = final_gemini(app, req, fault, level, new_response_id(), thought_parts=True)
    prefix, suffix = split_around_image(final)
    _png, b64, key = images[0]
    if not suffix and not prefix.endswith(b'"'):
        b64, key = b"", None  # no image in this response (blocked / safety / no-image)
    elif _SIGNATURE.encode() in suffix:
        # The signature's filler already follows the image data (joined in the render worker,
        # inside the modelled window; gzip caches both as the middle piece): keep its own mark.
        _joiner, suffix = suffix.split(_SIGNATURE.encode(), 1)
    await _send_body_with_faults(app, send, headers, prefix, b64, suffix, key, fault, queue_s, gen_s)


async def _send_relay(
    app: Serving,
    req: GenRequest,
    headers: dict[str, str],
    scope: dict[str, Any],
    send: Any,
    images: list[tuple[bytes, bytes, Any]],
    fault: str | None,
    queue_s: float,
    gen_s: float,
) -> None:
    if fault == "blocked":
        body = F.relay_error(
            "Your request was rejected as a result of our safety system. Your prompt may contain "
            "text that is not allowed by our safety system.",
            param="prompt",
            code="content_policy_violation",
        )
        await app.send_json(send, 400, body, headers, outcome=f"fault_{fault}", queue_s=queue_s, gen_s=gen_s)
        return
    if fault == "image-safety":  # gpt-image's output refusal, as recorded
        body = F.relay_error(
            "Your request was rejected by the safety system. If you believe this is an error, "
            f"contact us at help.openai.com and include the request ID {new_response_id()}. "
            "safety_violations=[sexual].",
            type_="image_generation_user_error",
            code="moderation_blocked",
        )
        body["error"]["moderation_details"] = {"moderation_stage": "output", "categories": ["sexual"]}
        await app.send_json(send, 400, body, headers, outcome=f"fault_{fault}", queue_s=queue_s, gen_s=gen_s)
        return
    prompt_tokens = max(1, math.ceil(len(req.prompt) / 4))
    out_tokens = IMAGE_OUTPUT_TOKENS[req.resolution] * (0 if fault == "no-image" else req.n)
    obj: dict[str, Any] = {
        "created": int(time.time()),
        "data": [],
        "usage": {
            "total_tokens": prompt_tokens + out_tokens,
            "input_tokens": prompt_tokens,
            "output_tokens": out_tokens,
            "input_tokens_details": {"text_tokens": prompt_tokens, "image_tokens": 0},
        },
    }
    if fault == "no-image":
        await app.send_json(send, 200, obj, headers, outcome="fault_no-image", queue_s=queue_s, gen_s=gen_s)
        return
    if req.response_format == "url":
        host = dict(scope["headers"]).get(b"host", b"127.0.0.1").decode("latin-1")
        base = f"{scope.get('scheme', 'http')}://{host}"
        ext = "jpg" if image_mime(app, req) == "image/jpeg" else "png"
        obj["data"] = [
            {"url": f"{base}/v1/files/{app.store_file(png)}.{ext}", "revised_prompt": req.prompt}
            for png, _b, _k in images
        ]
        await app.send_json(
            send, 200, obj, headers, outcome=f"fault_{fault}" if fault else "ok", queue_s=queue_s, gen_s=gen_s
        )
        return
    if len(images) == 1:
        obj["data"] = [{"b64_json": _PLACEHOLDER, "revised_prompt": req.prompt}]
        prefix, suffix = split_around_image(obj)
        _png, b64, key = images[0]
        await _send_body_with_faults(app, send, headers, prefix, b64, suffix, key, fault, queue_s, gen_s)
        return
    obj["data"] = [{"b64_json": b.decode(), "revised_prompt": req.prompt} for _p, b, _k in images]
    await _send_body_with_faults(app, send, headers, F.dumps(obj), b"", b"", None, fault, queue_s, gen_s)


async def _send_429(
    app: Serving, req: GenRequest, headers: dict[str, str], send: Any, rejection: Rejection, fault: str | None
) -> None:
    quota_id, delay_s, daily = rejection.quota_id, rejection.delay_s, rejection.daily
    outcome = f"fault_{fault}" if fault in ("429", "429-daily") else ("quota_daily" if daily else "quota_429")
    if rejection.kind == "spend":
        outcome = "quota_spend"
    if req.api == "gemini":
        # How 429 bodies look is profile data: "named" (QuotaFailure, limit stated) or "bare".
        style = app.profile.get("quotas", {}).get("body", "named") if fault is None else "named"
        if rejection.kind == "spend":
            body = F.gemini_spend_limit(float(rejection.limit or 0.0), delay_s, model=req.model)
        elif style == "bare":
            body = F.gemini_quota_bare()
        else:
            limit = int(rejection.limit) if rejection.limit is not None else _quota_limit(app, quota_id)
            body = F.gemini_quota(quota_id, delay_s, model=req.model, daily=daily, limit=limit, second_s=app.time_scale)
        await app.send_json(send, 429, body, headers, outcome=outcome)
        return
    extra = {"retry-after": str(max(1, math.ceil(delay_s))), "retry-after-ms": str(max(1, int(delay_s * 1000)))}
    if daily:
        extra["x-should-retry"] = "false"
    # OpenAI names a per-day limit "requests per day (RPD)" with rate_limit_exceeded;
    # insufficient_quota means no credit at all (a billing quota), which this is not.
    body = F.relay_error(
        "Rate limit reached for images per day (RPD). Please try again tomorrow."
        if daily
        else "Rate limit reached for images per minute. Please try again later.",
        type_="requests",
        code="rate_limit_exceeded",
    )
    await app.send_json(send, 429, body, headers, extra=extra, outcome=outcome)


def _quota_limit(app: Serving, quota_id: str) -> int | None:
    """The quota's configured size (``quotaValue``); never 0 (a real ``limit: 0`` means no quota at all)."""
    spec = getattr(app.quotas, "spec", None) or app.profile.get("quotas", {})
    key = next(
        (
            k
            for word, k in (
                ("Concurrent", "concurrent"),
                ("ImagesPerDay", "images_per_day"),
                ("ImagesPerMinute", "images_per_min"),
                ("RequestsPerMinute", "rpm"),
            )
            if word in quota_id
        ),
        None,
    )
    value = spec.get(key) if key else None
    return int(value) if isinstance(value, (int, float)) and value > 0 else None


async def _wait_disconnect(receive: Any) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass


async def _stream(
    app: Serving,
    req: GenRequest,
    headers: dict[str, str],
    send: Any,
    render: Any,
    fault: str | None,
    queue_s: float,
    gen_s: float,
    level: str,
) -> None:
    """SSE: thought text, 0-2 thought images, then the final image; events spaced along
    the generation time; CRLF framing; the image event without a finish, then "" + STOP with its own (not cumulative) usage."""
    rid = new_response_id()
    bw = app.network.bandwidth_mbps
    events: list[tuple[float, dict[str, Any] | None]] = []  # (fraction of gen time, event or None=final)
    if req.include_thoughts and fault != "blocked":
        max_images = int(app.profile.get("thoughts", {}).get("max_images", 2))
        n_img = min(max_images, int(_stable(req, "thought-images") * (max_images + 1)))
        for i, text in enumerate(_THOUGHTS):
            events.append(
                (
                    0.12 + 0.15 * i,
                    {
                        "candidates": [_candidate([{"text": text, "thought": True}], None)],
                        "usageMetadata": _usage(app, req, level, image=False, thoughts_frac=0.3 * (i + 1)),
                        "modelVersion": req.model,
                        "responseId": rid,
                    },
                )
            )
        for i in range(n_img):
            events.append((0.45 + 0.25 * i, {"thought_image": i}))
    events.append((1.0, None))
    started = time.perf_counter()
    sent_headers = False
    outcome = f"fault_{fault}" if fault else "ok"
    total = 0
    for frac, ev in events:
        delay = started + frac * gen_s - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        if not sent_headers:
            if app.network.rtt_s > 0:
                await asyncio.sleep(app.network.rtt_s)
            hdrs = [(b"content-type", b"text/event-stream"), *app.common_headers(queue_s, gen_s)]
            await send({"type": "http.response.start", "status": 200, "headers": hdrs})
            sent_headers = True
        if ev is not None and "thought_image" in ev:
            w, h = PIXEL_TABLE[req.aspect_ratio]["1K"]
            loop = asyncio.get_running_loop()
            _png, b64 = await loop.run_in_executor(
                app.executor,
                functools.partial(
                    app.images.get,
                    req.prompt,
                    seed=req.seed,
                    width=w,
                    height=h,
                    grid=req.grid,
                    caption=f"thought image {ev['thought_image'] + 1}",
                    mime=image_mime(app, req),
                ),
            )
            part = {"inlineData": {"mimeType": image_mime(app, req), "data": _PLACEHOLDER}, "thought": True}
            pre, suf = split_around_image(
                {
                    "candidates": [_candidate([part], None)],
                    "usageMetadata": _usage(app, req, level, image=False, thoughts_frac=0.8),
                    "modelVersion": req.model,
                    "responseId": rid,
                }
            )
            data = b"data: " + pre + b64 + suf + b"\r\n\r\n"
        elif ev is not None:
            data = b"data: " + F.dumps(ev) + b"\r\n\r\n"
        else:
            waited = time.perf_counter()
            images = await render
            app.note_behind(time.perf_counter() - waited, gen_s)
            final = final_gemini(app, req, fault, level, rid, thought_parts=False)
            pre, suf = split_around_image(final)
            b64 = images[0][1] if suf else b""
            if suf:  # as the real stream: the image without a finish, then "" + STOP on its own
                del final["candidates"][0]["finishReason"]
                pre, suf = split_around_image(final)
                stop = {
                    "candidates": [_candidate([{"text": ""}], "STOP")],
                    "usageMetadata": _usage(app, req, level, image=True, thoughts_frac=_STOP_EVENT_THOUGHTS),
                    "modelVersion": req.model,
                    "responseId": rid,
                }
                suf = with_signature(app, req, suf) + b"\r\n\r\ndata: " + F.dumps(stop)
            data = b"data: " + pre + b64 + suf + b"\r\n\r\n"
            if fault == "truncated":
                data = data[: len(data) * 2 // 3]
            elif fault == "reset":
                await paced_send(send, data[: len(data) // 3], bw, more_body=True)
                app.count(outcome, total + len(data) // 3)
                await _reset(headers, send)
                return
            elif fault == "trickle":
                bw = len(data) * 8 / max(0.05, float(app.fault_params["trickle_total_s"]) * app.time_scale) / 1e6
        total += len(data)
        if ev is None:
            app.count(outcome, total)
        await paced_send(send, data, bw, more_body=True)
    await send({"type": "http.response.body", "body": b"", "more_body": False})
