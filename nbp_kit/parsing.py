"""Reading the service's answers: Gemini JSON and SSE, relay JSON, HTTP error classification.

Everything here turns bytes from the wire into :class:`ParsedImage`, :class:`Usage` or
:class:`ErrorInfo`, and raises only :class:`~nbp_kit.errors.BadPayload` (malformed answers)
or :class:`~nbp_kit.errors.ContentBlocked` (the service declined), never a JSON or
``KeyError``. The provider profiles (:mod:`nbp_kit.providers`) call these functions; they
are also importable from there, as they were before the split::

    >>> parse_gemini_body(b'{"candidates": [')  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    nbp_kit.errors.BadPayload: response body is not valid JSON...
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import email.utils
import json
import re
from typing import Any

from .errors import APIError, BadPayload, ContentBlocked, RateLimited, RequestFailed, redact

#: Finish reasons meaning "the service chose not to return an image".
_NO_IMAGE_FINISHES = {
    "IMAGE_SAFETY": "safety_block",
    "IMAGE_PROHIBITED_CONTENT": "safety_block",
    "IMAGE_RECITATION": "safety_block",
    "SAFETY": "safety_block",
    "PROHIBITED_CONTENT": "safety_block",
    "BLOCKLIST": "safety_block",
    "SPII": "safety_block",
    "RECITATION": "safety_block",
    "IMAGE_OTHER": "no_image",
    "NO_IMAGE": "no_image",
    "OTHER": "no_image",
    "MAX_TOKENS": "no_image",
}


# --------------------------------------------------------------------------- parsed objects
@dataclasses.dataclass(frozen=True, slots=True)
class Usage:
    """Token counts as the service reported them (``None`` where absent).

    >>> Usage(prompt_tokens=12, output_tokens=1120).as_dict()["output_tokens"]
    1120
    """

    prompt_tokens: int | None = None
    output_tokens: int | None = None  # candidates tokens (image + text)
    thoughts_tokens: int | None = None
    image_tokens: int | None = None

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclasses.dataclass(frozen=True, slots=True)
class ParsedImage:
    """The useful part of a successful answer."""

    image_b64: str | memoryview | None = None  # a memoryview into the body when lifted (see lift_image_data)
    image_url: str | None = None
    mime: str | None = None
    text: str = ""
    usage: Usage | None = None
    response_id: str | None = None
    model_version: str | None = None
    finish_reason: str | None = None


@dataclasses.dataclass(frozen=True, slots=True)
class ErrorInfo:
    """An HTTP error answer, classified."""

    kind: str
    message: str
    status_code: int
    retry_delay_s: float | None = None
    retry_delay_source: str | None = None

    def to_exception(self) -> RequestFailed:
        cls: type[RequestFailed] = RateLimited if self.status_code == 429 else APIError
        if self.kind in ("safety_block", "no_image"):
            cls = ContentBlocked
        return cls(
            self.message, kind=self.kind, status_code=self.status_code,
            retry_delay_s=self.retry_delay_s, retry_delay_source=self.retry_delay_source,
        )


def load_json(body: bytes | str, *, what: str = "response body") -> Any:
    """``json.loads`` that raises only :class:`BadPayload`, with a hint for HTML pages.

    >>> load_json(b'{"a": 1}')
    {'a': 1}
    """
    try:
        return json.loads(body)
    except (ValueError, TypeError, RecursionError) as exc:
        head = body[:200].lstrip().lower() if isinstance(body, (bytes, bytearray, str)) else b""
        looks_html = head.startswith("<" if isinstance(head, str) else b"<")
        hint = " (looks like an HTML page, e.g. from a proxy)" if looks_html else ""
        raise BadPayload(f"{what} is not valid JSON{hint}: {exc}", kind="bad_payload") from exc


def _obj(value: Any, what: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise BadPayload(f"{what} is not a JSON object (got {type(value).__name__})", kind="bad_payload")
    return value


def _int_or_none(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else None


def _error_in_body(doc: dict[str, Any], *, where: str) -> None:
    """A 200 (or an SSE event) carrying ``{"error": ...}`` is a failure, not a result."""
    err = doc.get("error")
    if err is None:
        return
    message = err.get("message") if isinstance(err, dict) else err
    code = err.get("code") if isinstance(err, dict) else None
    raise BadPayload(f"{where} carried an error: code={code!r} {str(message)[:300]}", kind="bad_payload")


# --------------------------------------------------------------------------- SSE
def _find(buf: bytearray, sep: bytes, start: int, none: int) -> int:
    i = buf.find(sep, start)
    return none if i < 0 else i


class SSEParser:
    """Incremental ``text/event-stream`` parser over bytes.

    Feeding the same bytes whole or in any pieces gives the same events (lines are split
    on bytes, so a UTF-8 character cut between chunks is never decoded half-way).

    >>> p = SSEParser()
    >>> p.feed(b'data: {"a"') + p.feed(b': 1}\\r\\n\\r\\n')
    ['{"a": 1}']
    """

    def __init__(self, *, max_event_bytes: int = 256 * 1024 * 1024) -> None:
        self._buf = bytearray()
        self._data: list[bytes] = []
        self._pending_cr = False
        self._max = max_event_bytes
        self._size = 0

    def feed(self, chunk: bytes) -> list[str]:
        """Add bytes; return the ``data`` of every event completed by them."""
        if self._pending_cr and chunk[:1] == b"\n":
            chunk = chunk[1:]  # the LF of a CRLF split across chunks
        self._pending_cr = False
        events: list[str] = []
        buf = self._buf
        pos = len(buf)  # the kept tail never holds a line end: scan only the new bytes
        buf += chunk
        start = 0
        n = len(buf)
        # Next LF / CR (n = none), cached so no byte is scanned twice (no quadratic rescans).
        next_lf, next_cr = _find(buf, b"\n", pos, n), _find(buf, b"\r", pos, n)
        while next_lf < n or next_cr < n:
            i = min(next_lf, next_cr)
            self._line(bytes(buf[start:i]), events)
            if i == next_cr:
                if i + 1 < n:
                    if buf[i + 1] == 0x0A:
                        i += 1
                else:
                    self._pending_cr = True
            start = i + 1
            if next_lf < start:
                next_lf = _find(buf, b"\n", start, n)
            if next_cr < start:
                next_cr = _find(buf, b"\r", start, n)
        del buf[:start]
        if len(buf) + self._size > self._max:
            raise BadPayload(f"server-sent event larger than {self._max} bytes", kind="bad_payload")
        return events

    def close(self) -> list[str]:
        """End of stream: a final event without its blank line still counts."""
        events: list[str] = []
        if self._buf:
            self._line(bytes(self._buf), events)
            self._buf.clear()
        self._line(b"", events)
        return events

    def _line(self, line: bytes, events: list[str]) -> None:
        if not line:
            if self._data:
                raw = b"\n".join(self._data)
                self._data = []
                self._size = 0
                try:
                    events.append(raw.decode("utf-8"))
                except UnicodeDecodeError as exc:
                    raise BadPayload(f"server-sent event is not UTF-8: {exc}", kind="bad_payload") from exc
            return
        if line.startswith(b":"):
            return  # comment / keep-alive
        field, _, value = line.partition(b":")
        if value.startswith(b" "):
            value = value[1:]
        if field == b"data":
            self._data.append(value)
            self._size += len(value)
        # event:, id:, retry: and unknown fields carry nothing Gemini uses


@dataclasses.dataclass(slots=True)
class StreamState:
    """What a Gemini SSE stream has shown so far (milestones are seconds from ``t0``)."""

    first_thought_s: float | None = None
    first_interim_image_s: float | None = None
    final_image_s: float | None = None
    events: int = 0
    last: dict[str, Any] | None = None
    final_part: dict[str, Any] | None = None
    finish_reason: str | None = None
    usage_doc: dict[str, Any] | None = None
    text: list[str] = dataclasses.field(default_factory=list)
    response_id: str | None = None
    model_version: str | None = None
    block_reason: str | None = None


# --------------------------------------------------------------------------- HTTP errors
_RETRYABLE_STATUS_KINDS = {"rate_limited", "server_error", "overloaded", "server_timeout"}


def classify_http_error(status_code: int, headers: Any, body: bytes) -> ErrorInfo:
    """Map an HTTP error answer to an error kind and the server's retry delay.

    >>> classify_http_error(503, {"retry-after": "2"}, b"").kind
    'overloaded'
    """
    doc: Any = None
    try:
        doc = json.loads(body) if body else None
    except (ValueError, RecursionError):
        doc = None
    err = doc.get("error") if isinstance(doc, dict) else None
    err = err if isinstance(err, dict) else {}
    message = str(err.get("message") or (body[:200].decode("utf-8", "replace") if body else ""))
    details = err.get("details") if isinstance(err.get("details"), list) else []
    kind = _kind_for_status(status_code, err, details)
    if status_code == 400 and err.get("code") == "content_policy_violation":
        kind = "safety_block"  # OpenAI-style relays refuse unsafe prompts with a 400
    if (headers.get("x-should-retry") or "").strip().lower() == "false" and kind in _RETRYABLE_STATUS_KINDS:
        kind = "do_not_retry"
    delay, source = server_retry_delay(headers, details)
    text = redact(f"HTTP {status_code} {err.get('status') or ''} {message}".strip())
    return ErrorInfo(kind, text, status_code, delay, source)


def _kind_for_status(status: int, err: dict[str, Any], details: list[Any]) -> str:
    if status == 429:
        for d in details:
            if isinstance(d, dict):
                for v in d.get("violations") or []:
                    if isinstance(v, dict) and "perday" in str(v.get("quotaId", "")).lower():
                        return "quota_daily"
        return "quota_daily" if "perday" in str(err.get("message", "")).lower() else "rate_limited"
    if status in (408, 504):
        return "server_timeout"
    if status in (500, 502):
        return "server_error"
    if status == 503:
        return "overloaded"
    if status in (401, 403):
        return "auth"
    if status == 404:
        return "not_found"
    reasons = {str(d.get("reason")) for d in details if isinstance(d, dict)}
    if status == 400 and ("API_KEY_INVALID" in reasons or "api key not valid" in str(err.get("message", "")).lower()):
        return "auth"
    if 400 <= status < 500:
        return "invalid_request"
    return "server_error" if status >= 500 else "invalid_request"


def _parse_duration(text: Any) -> float | None:
    """``"26.66s"`` (protobuf Duration as JSON) -> 26.66."""
    if not isinstance(text, str) or not text.endswith("s"):
        return None
    try:
        value = float(text[:-1])
    except ValueError:
        return None
    return value if value >= 0 and value == value and value != float("inf") else None


def server_retry_delay(headers: Any, details: list[Any] | None = None) -> tuple[float | None, str | None]:
    """The server's requested delay: ``retry-after-ms``, ``Retry-After``, then ``RetryInfo``.

    >>> server_retry_delay({"retry-after": "3"})
    (3.0, 'retry-after')
    """
    raw_ms = headers.get("retry-after-ms")
    if raw_ms:
        try:
            ms = float(raw_ms)
            if ms >= 0 and ms != float("inf"):
                return ms / 1000.0, "retry-after-ms"
        except ValueError:
            pass
    raw = headers.get("retry-after")
    if raw:
        try:
            secs = float(raw)
            if secs >= 0 and secs != float("inf"):
                return secs, "retry-after"
        except ValueError:
            try:
                when = email.utils.parsedate_to_datetime(raw)
                now = _dt.datetime.now(when.tzinfo or _dt.timezone.utc)
                return max(0.0, (when - now).total_seconds()), "retry-after"
            except (TypeError, ValueError, IndexError, OverflowError):
                pass
    for d in details or []:
        if isinstance(d, dict) and str(d.get("@type", "")).endswith("RetryInfo"):
            secs = _parse_duration(d.get("retryDelay"))
            if secs is not None:
                return secs, "retry-info"
    return None, None


# --------------------------------------------------------------------------- Gemini answers
def observe_gemini_event(state: StreamState, doc: Any, elapsed_s: float) -> None:
    """Fold one Gemini response (or SSE event) into ``state``; stamp milestones.

    >>> state = StreamState()
    >>> observe_gemini_event(state, {"candidates": [{"finishReason": "STOP"}]}, 0.5)
    >>> state.finish_reason
    'STOP'
    """
    doc = _obj(doc, "response")
    _error_in_body(doc, where="stream event" if state.events else "response")
    state.events += 1
    state.last = doc
    feedback = doc.get("promptFeedback")
    if isinstance(feedback, dict) and feedback.get("blockReason"):
        state.block_reason = str(feedback["blockReason"])
    if isinstance(doc.get("usageMetadata"), dict):
        state.usage_doc = doc["usageMetadata"]
    if isinstance(doc.get("responseId"), str):
        state.response_id = doc["responseId"]
    if isinstance(doc.get("modelVersion"), str):
        state.model_version = doc["modelVersion"]
    cands = doc.get("candidates")
    if cands is None:
        return
    if not isinstance(cands, list):
        raise BadPayload("candidates is not a list", kind="bad_payload")
    for cand in cands[:1]:
        cand = _obj(cand, "candidate")
        if cand.get("finishReason"):
            state.finish_reason = str(cand["finishReason"])
        content = cand.get("content")
        if content is None:
            continue
        parts = _obj(content, "candidate content").get("parts") or []
        if not isinstance(parts, list):
            raise BadPayload("content.parts is not a list", kind="bad_payload")
        for part in parts:
            part = _obj(part, "content part")
            thought = part.get("thought") is True
            inline = part.get("inlineData")
            if thought and state.first_thought_s is None:
                state.first_thought_s = elapsed_s
            if inline is not None:
                inline = _obj(inline, "inlineData")
                if not isinstance(inline.get("data"), str):
                    raise BadPayload("inlineData.data is not a string", kind="bad_payload")
                if thought:
                    if state.first_interim_image_s is None:
                        state.first_interim_image_s = elapsed_s
                else:
                    state.final_part = inline
                    if state.final_image_s is None:
                        state.final_image_s = elapsed_s
            elif isinstance(part.get("text"), str) and not thought:
                state.text.append(part["text"])


def finish_gemini_stream(state: StreamState) -> ParsedImage:
    """The final image of a Gemini answer, or the reason there is none.

    >>> finish_gemini_stream(StreamState())  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    nbp_kit.errors.BadPayload: stream ended without any event
    """
    if state.events == 0:
        raise BadPayload("stream ended without any event", kind="bad_payload")
    usage = _gemini_usage(state.usage_doc)
    if state.final_part is None:
        if state.block_reason:
            raise ContentBlocked(f"prompt blocked: blockReason={state.block_reason}", kind="safety_block")
        reason = state.finish_reason
        kind = _NO_IMAGE_FINISHES.get(reason or "", None)
        if kind is not None:
            raise ContentBlocked(f"no image: finishReason={reason}", kind=kind)
        if reason is None:
            raise BadPayload("response ended without an image or a finishReason (truncated?)", kind="bad_payload")
        raise ContentBlocked(f"no image in the response (finishReason={reason})", kind="no_image")
    return ParsedImage(
        image_b64=state.final_part["data"],
        mime=str(state.final_part.get("mimeType") or "") or None,
        text="".join(state.text),
        usage=usage,
        response_id=state.response_id,
        model_version=state.model_version,
        finish_reason=state.finish_reason,
    )


_LIFT_MIN_BYTES = 1 << 16
_LIFT_KEY = re.compile(rb'"(?:data|b64_json)"\s*:\s*"')
_LIFTED = "nbp-kit:lifted-image-data"


def lift_image_data(body: bytes | bytearray) -> tuple[bytes, memoryview] | None:
    """Cut the largest ``"data"``/``"b64_json"`` string out of a JSON body, or ``None``.

    ``json.loads`` on a 4K answer would build a second 15 MB copy of the image as a ``str``;
    parsing the body with the value replaced by a marker, and keeping a view into the body,
    avoids it. Only plain base64 values are lifted (no backslash escapes); callers check the
    marker ended up where the image belongs and otherwise parse the whole body.

    >>> small, view = lift_image_data(b'{"data": "' + b"QUJD" * 20000 + b'"}')
    >>> small, len(view)
    (b'{"data": "nbp-kit:lifted-image-data"}', 80000)
    """
    best: tuple[int, int] | None = None
    pos = 0
    while (m := _LIFT_KEY.search(body, pos)) is not None:
        start = m.end()
        end = body.find(b'"', start)
        if end < 0:
            break
        if end - start >= _LIFT_MIN_BYTES and (best is None or end - start > best[1] - best[0]):
            best = (start, end)
        pos = end + 1
    if best is None or body.find(b"\\", best[0], best[1]) >= 0:
        return None
    start, end = best
    return bytes(body[:start]) + _LIFTED.encode() + bytes(body[end:]), memoryview(body)[start:end]


def _parse_lifted(body: bytes | bytearray, parse: Any) -> ParsedImage:
    lifted = lift_image_data(body)
    if lifted is not None:
        try:
            parsed = parse(lifted[0])
        except RequestFailed:
            parsed = None  # let the whole body say what is wrong, exactly as before
        if parsed is not None and parsed.image_b64 == _LIFTED:
            return dataclasses.replace(parsed, image_b64=lifted[1])
    return parse(body)


def parse_gemini_body(body: bytes | bytearray) -> ParsedImage:
    """A whole (unary) ``generateContent`` answer: one event, then the result."""
    return _parse_lifted(body, _parse_gemini_doc)


def _parse_gemini_doc(body: bytes | bytearray) -> ParsedImage:
    doc = _obj(load_json(body), "response body")
    _error_in_body(doc, where="HTTP 200 response")
    state = StreamState()
    observe_gemini_event(state, doc, 0.0)
    return finish_gemini_stream(state)


def _gemini_usage(doc: dict[str, Any] | None) -> Usage | None:
    if not isinstance(doc, dict):
        return None
    image_tokens = None
    details = doc.get("candidatesTokensDetails")
    if isinstance(details, list):
        for d in details:
            if isinstance(d, dict) and d.get("modality") == "IMAGE":
                image_tokens = (image_tokens or 0) + (_int_or_none(d.get("tokenCount")) or 0)
    return Usage(
        prompt_tokens=_int_or_none(doc.get("promptTokenCount")),
        output_tokens=_int_or_none(doc.get("candidatesTokenCount")),
        thoughts_tokens=_int_or_none(doc.get("thoughtsTokenCount")),
        image_tokens=image_tokens,
    )


# --------------------------------------------------------------------------- relay answers
def parse_relay_body(body: bytes | bytearray) -> ParsedImage:
    """An OpenAI-style ``images/generations`` answer: ``data[0].b64_json`` or ``.url``.

    >>> parse_relay_body(b'{"data": [{"url": "https://cdn.example/x.png"}]}').image_url
    'https://cdn.example/x.png'
    """
    return _parse_lifted(body, _parse_relay_doc)


def _parse_relay_doc(body: bytes | bytearray) -> ParsedImage:
    doc = _obj(load_json(body), "response body")
    _error_in_body(doc, where="HTTP 200 response")
    data = doc.get("data")
    if not isinstance(data, list) or not data:
        raise BadPayload("relay response has no data[] entries", kind="bad_payload")
    item = _obj(data[0], "data[0]")
    b64, url = item.get("b64_json"), item.get("url")
    if not isinstance(b64, str) and not isinstance(url, str):
        raise BadPayload("data[0] has neither b64_json nor url", kind="bad_payload")
    if isinstance(url, str) and not url.startswith(("http://", "https://", "/")):
        raise BadPayload(f"data[0].url is not an http(s) URL: {url[:80]!r}", kind="bad_payload")
    usage_doc = doc.get("usage") if isinstance(doc.get("usage"), dict) else None
    usage = None
    if usage_doc is not None:
        out_details = usage_doc.get("output_tokens_details")
        usage = Usage(
            prompt_tokens=_int_or_none(usage_doc.get("input_tokens", usage_doc.get("prompt_tokens"))),
            output_tokens=_int_or_none(usage_doc.get("output_tokens", usage_doc.get("completion_tokens"))),
            image_tokens=_int_or_none(out_details.get("image_tokens")) if isinstance(out_details, dict) else None,
        )
    rid = doc.get("id")
    return ParsedImage(
        image_b64=b64 if isinstance(b64, str) else None,
        image_url=url if isinstance(url, str) and not isinstance(b64, str) else None,
        mime=None,
        usage=usage,
        response_id=str(rid) if isinstance(rid, (str, int)) else None,
        model_version=str(doc["model"]) if isinstance(doc.get("model"), str) else None,
    )


__all__ = [
    "ErrorInfo",
    "ParsedImage",
    "SSEParser",
    "StreamState",
    "Usage",
    "classify_http_error",
    "finish_gemini_stream",
    "load_json",
    "observe_gemini_event",
    "parse_gemini_body",
    "parse_relay_body",
    "server_retry_delay",
]
