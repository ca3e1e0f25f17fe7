"""Provider profiles: how one image request looks on the wire, and how its answer is read.

A provider is one profile object, not a branch in the client. Two ship with the kit:

* ``"gemini"``: Google's native API, ``models/{model}:generateContent`` or
  ``:streamGenerateContent?alt=sse``, key in the ``x-goog-api-key`` header.
* ``"relay"``: an OpenAI-compatible relay, ``POST {base}/v1/images/generations`` with
  ``Authorization: Bearer``; ``b64_json`` or ``url`` output and relay fields such as
  ``thinking_level`` and ``grid``.

Parsing raises only :class:`~nbp_kit.errors.BadPayload` (malformed answers) or
:class:`~nbp_kit.errors.ContentBlocked` (the service declined), never a JSON or
``KeyError``::

    >>> get_provider("gemini").parse_body(b'{"candidates": [')  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    nbp_kit.errors.BadPayload: response body is not valid JSON...
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import email.utils
import functools
import json
from typing import Any

from ._paths import DATA_DIR
from .errors import APIError, BadPayload, ConfigError, ContentBlocked, RateLimited, RequestFailed, redact
from .spec import GRIDS, MODELS, THINKING_LEVELS, ImageSpec

PROVIDERS: tuple[str, ...] = ("gemini", "relay")

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


# --------------------------------------------------------------------------- capabilities
@dataclasses.dataclass(frozen=True, slots=True)
class Capabilities:
    """Which knobs one (provider, model) pair documents.

    >>> capabilities("gemini", "gemini-3-pro-image-preview").thinking_levels
    ()
    """

    provider: str
    model: str
    thinking_levels: tuple[str, ...]
    grids: tuple[str, ...]
    streaming: bool
    url_output: bool
    note: str = ""

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


_PRO_NOTE = (
    "Gemini 3 Pro Image always thinks and documents no thinkingLevel; whether it rejects or "
    "ignores one is not documented"
)
_CAPS: dict[tuple[str, str], Capabilities] = {
    ("gemini", "gemini-3-pro-image-preview"): Capabilities(
        "gemini", "gemini-3-pro-image-preview", (), ("1x1",), True, False, _PRO_NOTE
    ),
    ("gemini", "gemini-3-pro-image"): Capabilities("gemini", "gemini-3-pro-image", (), ("1x1",), True, False, _PRO_NOTE),
    ("gemini", "gemini-3.1-flash-image-preview"): Capabilities(
        "gemini", "gemini-3.1-flash-image-preview", ("minimal", "high"), ("1x1",), True, False,
        "Nano Banana 2 documents thinkingLevel minimal (default) and high",
    ),
}


def capabilities(provider: str, model: str) -> Capabilities:
    """The capability row for ``(provider, model)``.

    Unknown Gemini models get the conservative Pro row; relays accept every knob (that is
    what they advertise), which sweeps then verify by measuring.

    >>> capabilities("relay", "any-model").grids
    ('1x1', '2x2', '3x3')
    """
    _check_provider(provider)
    if provider == "relay":
        return Capabilities(
            "relay", model, THINKING_LEVELS, GRIDS, False, True,
            "relay fields thinking_level, grid, aspect_ratio, image_size are relay-specific",
        )
    row = _CAPS.get((provider, model))
    if row is None:
        return Capabilities(provider, model, (), ("1x1",), True, False, f"unknown model {model!r}: {_PRO_NOTE}")
    return row


def check_spec(
    provider: str, spec: ImageSpec, *, stream: bool = False, allow_undocumented: bool = False
) -> Capabilities:
    """Refuse knobs the (provider, model) does not document, before any request.

    >>> check_spec("gemini", ImageSpec(thinking_level="low"))  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    nbp_kit.errors.ConfigError: thinking_level='low' is not documented for gemini/gemini-3-pro-image-preview ...
    """
    caps = capabilities(provider, spec.model)
    where = f"{provider}/{spec.model}"
    if stream and not caps.streaming:
        raise ConfigError(f"stream=True is not accepted for {where}; it has no streaming endpoint, use stream=False")
    if spec.output_format == "url" and not caps.url_output:
        raise ConfigError(f"output_format='url' is not accepted for {where}; use 'b64_json'")
    if allow_undocumented:
        return caps
    if spec.thinking_level is not None and spec.thinking_level not in caps.thinking_levels:
        accepted = ", ".join(repr(t) for t in caps.thinking_levels) or "none"
        raise ConfigError(
            f"thinking_level={spec.thinking_level!r} is not documented for {where} "
            f"(accepted: None, {accepted}). {caps.note}. Pass allow_undocumented=True to send it "
            "anyway and measure what it does."
        )
    if spec.grid not in caps.grids:
        raise ConfigError(
            f"grid={spec.grid!r} is not documented for {where} (accepted: {', '.join(map(repr, caps.grids))}); "
            "grids are a relay feature. Pass allow_undocumented=True to send it anyway."
        )
    return caps


def _check_provider(provider: str) -> None:
    if provider not in PROVIDERS:
        raise ConfigError(f"provider={provider!r} is not accepted; use one of {', '.join(map(repr, PROVIDERS))}")


# --------------------------------------------------------------------------- prices
@functools.lru_cache(maxsize=1)
def _prices() -> dict[str, Any]:
    try:
        return json.loads((DATA_DIR / "prices.json").read_text())
    except (OSError, ValueError) as exc:  # a broken data file is a setup problem
        raise ConfigError(f"prices file {str(DATA_DIR / 'prices.json')!r} cannot be read: {exc}") from exc


def _price_row(provider: str, model: str) -> dict[str, Any]:
    table = _prices().get(provider, {})
    row = table.get(model) or table.get("_default")
    if row is None and provider == "gemini":
        row = table.get("gemini-3-pro-image-preview")
    return row or {}


def estimate_cost(provider: str, model: str, spec: ImageSpec) -> float:
    """Price of one successful call from the table in ``data/prices.json``.

    >>> estimate_cost("gemini", "gemini-3-pro-image-preview", ImageSpec(resolution="4K"))
    0.24
    """
    _check_provider(provider)
    row = _price_row(provider, model)
    if "per_call_usd" in row:
        return float(row["per_call_usd"])
    if "image_usd" in row:
        return float(row["image_usd"][spec.resolution])
    return 0.0


@dataclasses.dataclass(frozen=True, slots=True)
class Usage:
    """Token counts as the service reported them (``None`` where absent)."""

    prompt_tokens: int | None = None
    output_tokens: int | None = None  # candidates tokens (image + text)
    thoughts_tokens: int | None = None
    image_tokens: int | None = None

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def attempt_cost(provider: str, model: str, spec: ImageSpec, usage: Usage | None) -> float:
    """Cost of one successful attempt: from returned usage when present, else the table.

    Image tokens are priced at ``image_output_per_mtok_usd``, thoughts and text at
    ``text_output_per_mtok_usd``, the prompt at ``input_per_mtok_usd``.
    """
    row = _price_row(provider, model)
    if "per_call_usd" in row or usage is None or usage.output_tokens is None or "image_output_per_mtok_usd" not in row:
        return estimate_cost(provider, model, spec)
    image = usage.image_tokens if usage.image_tokens is not None else usage.output_tokens
    text = max(0, usage.output_tokens - image) + (usage.thoughts_tokens or 0)
    usd = (
        (usage.prompt_tokens or 0) * row.get("input_per_mtok_usd", 0.0)
        + image * row["image_output_per_mtok_usd"]
        + text * row.get("text_output_per_mtok_usd", 0.0)
    ) / 1e6
    return round(usd, 6)


# --------------------------------------------------------------------------- wire objects
@dataclasses.dataclass(frozen=True, slots=True)
class WireRequest:
    """What to send, without the key (the client adds :meth:`Provider.auth_headers`)."""

    method: str
    path: str  # appended to the base URL
    json: dict[str, Any]
    params: dict[str, str] = dataclasses.field(default_factory=dict)
    stream: bool = False


@dataclasses.dataclass(frozen=True, slots=True)
class ParsedImage:
    """The useful part of a successful answer."""

    image_b64: str | None = None
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
    """``json.loads`` that raises only :class:`BadPayload`, with a hint for HTML pages."""
    try:
        return json.loads(body)
    except (ValueError, TypeError, RecursionError) as exc:
        head = body[:200].lstrip().lower() if isinstance(body, (bytes, str)) else b""
        looks_html = (head.startswith(b"<") if isinstance(head, bytes) else head.startswith("<"))
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


# --------------------------------------------------------------------------- providers
class Provider:
    """One API dialect. Subclasses fill in the four methods; the client does the rest."""

    name: str = ""
    key_env: str = ""
    base_url_env: str | None = None
    default_base_url: str = ""

    def auth_headers(self, api_key: str) -> dict[str, str]:
        raise NotImplementedError

    def build_request(self, prompt: str, spec: ImageSpec, *, seed: int | None = None, stream: bool = False) -> WireRequest:
        raise NotImplementedError

    def parse_body(self, body: bytes, spec: ImageSpec | None = None) -> ParsedImage:
        raise NotImplementedError

    def classify_error(self, status_code: int, headers: Any, body: bytes) -> ErrorInfo:
        """Map an HTTP error answer to an error kind and the server's retry delay."""
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


_RETRYABLE_STATUS_KINDS = {"rate_limited", "server_error", "overloaded", "server_timeout"}


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


class GeminiProvider(Provider):
    """Native Gemini API (``generateContent`` / ``streamGenerateContent?alt=sse``)."""

    name = "gemini"
    key_env = "GEMINI_API_KEY"
    default_base_url = "https://generativelanguage.googleapis.com"

    def auth_headers(self, api_key: str) -> dict[str, str]:
        return {"x-goog-api-key": api_key}

    def build_request(self, prompt: str, spec: ImageSpec, *, seed: int | None = None, stream: bool = False) -> WireRequest:
        gen: dict[str, Any] = {
            "responseModalities": ["TEXT", "IMAGE"] if spec.text_and_image else ["IMAGE"],
            "imageConfig": {"aspectRatio": spec.aspect_ratio, "imageSize": spec.resolution},
        }
        thinking: dict[str, Any] = {}
        if spec.include_thoughts:
            thinking["includeThoughts"] = True
        if spec.thinking_level is not None:
            thinking["thinkingLevel"] = spec.thinking_level
        if thinking:
            gen["thinkingConfig"] = thinking
        if seed is not None:
            gen["seed"] = int(seed)
        if spec.grid != "1x1":  # undocumented; only sent with allow_undocumented=True
            gen["imageConfig"]["grid"] = spec.grid
        body = {"contents": [{"role": "user", "parts": [{"text": prompt}]}], "generationConfig": gen}
        if stream:
            return WireRequest("POST", f"/v1beta/models/{spec.model}:streamGenerateContent", body, {"alt": "sse"}, True)
        return WireRequest("POST", f"/v1beta/models/{spec.model}:generateContent", body)

    def parse_body(self, body: bytes, spec: ImageSpec | None = None) -> ParsedImage:
        doc = _obj(load_json(body), "response body")
        _error_in_body(doc, where="HTTP 200 response")
        state = StreamState()
        self.observe_event(state, doc, 0.0)
        return self.finish_stream(state)

    # streaming: the client feeds SSE events, then asks for the result
    def observe_event(self, state: StreamState, doc: Any, elapsed_s: float) -> None:
        """Fold one response (or SSE event) into ``state``; stamp milestones."""
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

    def finish_stream(self, state: StreamState) -> ParsedImage:
        """The final image, or the reason there is none."""
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


class RelayProvider(Provider):
    """OpenAI-compatible relay: ``POST {base}/v1/images/generations``."""

    name = "relay"
    key_env = "NBP_KIT_RELAY_KEY"
    base_url_env = "NBP_KIT_RELAY_BASE_URL"

    def auth_headers(self, api_key: str) -> dict[str, str]:
        return {"authorization": f"Bearer {api_key}"}

    def build_request(self, prompt: str, spec: ImageSpec, *, seed: int | None = None, stream: bool = False) -> WireRequest:
        w, h = spec.pixel_size
        body: dict[str, Any] = {
            "model": spec.model,
            "prompt": prompt,
            "n": 1,
            "size": f"{w}x{h}",
            "response_format": spec.output_format,
            "aspect_ratio": spec.aspect_ratio,
            "image_size": spec.resolution,
        }
        if spec.thinking_level is not None:
            body["thinking_level"] = spec.thinking_level
        if spec.grid != "1x1":
            body["grid"] = spec.grid
        if seed is not None:
            body["seed"] = int(seed)
        return WireRequest("POST", "/v1/images/generations", body)

    def parse_body(self, body: bytes, spec: ImageSpec | None = None) -> ParsedImage:
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


_PROVIDERS: dict[str, Provider] = {"gemini": GeminiProvider(), "relay": RelayProvider()}


def get_provider(name: str) -> Provider:
    """The profile for ``"gemini"`` or ``"relay"``.

    >>> get_provider("relay").build_request("a cat", ImageSpec()).path
    '/v1/images/generations'
    """
    _check_provider(name)
    return _PROVIDERS[name]


__all__ = [
    "MODELS",
    "PROVIDERS",
    "Capabilities",
    "ErrorInfo",
    "GeminiProvider",
    "ParsedImage",
    "Provider",
    "RelayProvider",
    "SSEParser",
    "StreamState",
    "Usage",
    "WireRequest",
    "attempt_cost",
    "capabilities",
    "check_spec",
    "estimate_cost",
    "get_provider",
    "load_json",
    "server_retry_delay",
]
