"""Payload types shared by every provider, and the JSON helpers that raise only BadPayload.

Parsing raises only :class:`~nbp_kit.errors.BadPayload` (malformed answers) or
:class:`~nbp_kit.errors.ContentBlocked` (the service declined), never a JSON or ``KeyError``.
"""

from __future__ import annotations

import dataclasses
import json
import re
from typing import Any

from ..errors import BadPayload, RequestFailed
from ..spec import ImageSpec
from .http_errors import ErrorInfo, classify_http_error


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
    #: The model's non-thought parts as returned (thought signatures included), for the next turn
    #: of an editing session; an image part's data may be a lifted marker (the client puts it back).
    model_parts: tuple[dict[str, Any], ...] = ()


def load_json(body: bytes | bytearray | str, *, what: str = "response body") -> Any:
    """``json.loads`` that raises only :class:`BadPayload`, with a hint for HTML pages.

    >>> load_json(b'{"a": 1}')
    {'a': 1}
    """
    try:
        return json.loads(body)
    except (ValueError, TypeError, RecursionError) as exc:
        head = body[:200].lstrip().lower() if isinstance(body, (bytes, bytearray, str)) else b""
        looks_html = head.startswith("<") if isinstance(head, str) else head.startswith(b"<")
        hint = " (looks like an HTML page, e.g. from a proxy)" if looks_html else ""
        raise BadPayload(f"{what} is not valid JSON{hint}: {exc}", kind="bad_payload") from exc


def as_object(value: Any, what: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise BadPayload(f"{what} is not a JSON object (got {type(value).__name__})", kind="bad_payload")
    return value


def int_or_none(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else None


def raise_error_in_body(doc: dict[str, Any], *, where: str) -> None:
    """A 200 (or an SSE event) carrying ``{"error": ...}`` is a failure, not a result."""
    err = doc.get("error")
    if err is None:
        return
    message = err.get("message") if isinstance(err, dict) else err
    code = err.get("code") if isinstance(err, dict) else None
    raise BadPayload(f"{where} carried an error: code={code!r} {str(message)[:300]}", kind="bad_payload")


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


def parse_lifted(body: bytes | bytearray, parse: Any) -> ParsedImage:
    lifted = lift_image_data(body)
    if lifted is not None:
        try:
            parsed = parse(lifted[0])
        except RequestFailed:
            parsed = None  # let the whole body say what is wrong, exactly as before
        if parsed is not None and parsed.image_b64 == _LIFTED:
            return dataclasses.replace(parsed, image_b64=lifted[1])
    return parse(body)


@dataclasses.dataclass(frozen=True, slots=True)
class WireRequest:
    """What to send, without the key (the client adds the provider's auth headers)."""

    method: str
    path: str  # appended to the base URL
    json: dict[str, Any]
    params: dict[str, str] = dataclasses.field(default_factory=dict)
    stream: bool = False


class Provider:
    """One API dialect. Subclasses build the request and parse the answer; the client does the rest.

    ``models_path`` is the cheap models-list request (``None`` where the API has none the
    kit knows).
    """

    name: str = ""
    key_env: str = ""
    base_url_env: str | None = None
    default_base_url: str = ""
    models_path: str | None = None

    def auth_headers(self, api_key: str) -> dict[str, str]:
        raise NotImplementedError

    def build_request(
        self, prompt: str, spec: ImageSpec, *, seed: int | None = None, stream: bool = False
    ) -> WireRequest:
        raise NotImplementedError

    def parse_body(self, body: bytes | bytearray, spec: ImageSpec | None = None) -> ParsedImage:
        raise NotImplementedError

    def classify_error(self, status_code: int, headers: Any, body: bytes) -> ErrorInfo:
        """Map an HTTP error answer to an error kind and the server's retry delay."""
        return classify_http_error(status_code, headers, body)
