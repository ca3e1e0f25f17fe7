"""HTTP error answers: an error kind, the message, and the delay the server asks for."""

from __future__ import annotations

import dataclasses
import datetime as _dt
import email.utils
import json
import re
from typing import Any

from ..errors import APIError, ContentBlocked, RateLimited, RequestFailed, redact
from ..spec import MODELS


@dataclasses.dataclass(frozen=True, slots=True)
class ErrorInfo:
    """An HTTP error answer, classified."""

    kind: str
    message: str
    status_code: int
    retry_delay_s: float | None = None
    retry_delay_source: str | None = None
    quota: dict[str, Any] | None = None  # Attempt quota_* fields, when a 429 named its quota
    retry_wait_s: float | None = None  # what to wait: the delay, or the message's longer one, + margin

    def to_exception(self) -> RequestFailed:
        cls: type[RequestFailed] = RateLimited if self.status_code == 429 else APIError
        if self.kind in ("safety_block", "no_image"):
            cls = ContentBlocked
        return cls(
            self.message,
            kind=self.kind,
            status_code=self.status_code,
            retry_delay_s=self.retry_delay_s,
            retry_delay_source=self.retry_delay_source,
            quota=self.quota,
            retry_wait_s=self.retry_wait_s,
        )


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
    details: list[Any] = err["details"] if isinstance(err.get("details"), list) else []
    kind = kind_for_status(status_code, err, details)
    quota = quota_fields(err, details) if status_code == 429 else None
    if status_code == 429:
        kind = quota_kind(kind, err, quota)
    if status_code == 400 and (err.get("code") in _SAFETY_CODES or err.get("type") in _SAFETY_CODES):
        kind = "safety_block"  # OpenAI-style relays refuse unsafe prompts with a 400
    if (headers.get("x-should-retry") or "").strip().lower() == "false" and kind in _RETRYABLE_STATUS_KINDS:
        kind = "do_not_retry"
    delay, source = server_retry_delay(headers, details)
    text = redact(f"HTTP {status_code} {err.get('status') or ''} {message}".strip())
    if status_code == 404 and "models/" in message:
        text += f" [nbp_kit: the model id is unknown or retired; ids the kit knows: {', '.join(MODELS)}]"
    return ErrorInfo(kind, text, status_code, delay, source, quota, retry_wait_s(delay, source, message))


#: OpenAI refusals of a prompt or an output image (``moderation_blocked`` is gpt-image's code,
#: ``image_generation_user_error`` its type; ``content_policy_violation`` DALL-E's code).
_SAFETY_CODES = {"content_policy_violation", "moderation_blocked", "image_generation_user_error"}
#: "Please retry in 38.90923309s." in Gemini's 429 message, next to a RetryInfo of "38s".
_MESSAGE_DELAY = re.compile(r"(?i)retry in\s+([0-9]+(?:\.[0-9]+)?)\s*s\b")
#: Added to the server's delay so the retry lands after the quota window, not on its edge.
RETRY_MARGIN_S = 0.25


def message_retry_delay(message: str) -> float | None:
    """The delay a Gemini 429 message states (``"Please retry in 38.9s."`` -> 38.9), or ``None``.

    >>> message_retry_delay("Quota exceeded... Please retry in 38.90923309s.")
    38.90923309
    """
    m = _MESSAGE_DELAY.search(message or "")
    return float(m.group(1)) if m else None


def retry_wait_s(delay: float | None, source: str | None, message: str) -> float | None:
    """What to wait before a retry: the larger of the stated delay and the message's, + margin.

    ``RetryInfo.retryDelay`` is rounded down to whole seconds (``"38s"`` for 38.9 s): waiting
    exactly that meets another 429, so a whole-second RetryInfo, or a longer delay named in
    the message, gets :data:`RETRY_MARGIN_S` added. An exact delay (``"26.66s"``, headers)
    is waited as it is.

    >>> retry_wait_s(38.0, "retry-info", "Please retry in 38.90923309s.")
    39.15923309
    >>> retry_wait_s(26.66, "retry-info", "")
    26.66
    """
    stated = message_retry_delay(message)
    if stated is not None and (delay is None or stated > delay):
        return round(stated + RETRY_MARGIN_S, 9)
    if delay is not None and source == "retry-info" and delay == int(delay):
        return delay + RETRY_MARGIN_S
    return delay


_LIMIT = re.compile(r"\blimit:\s*(\d+(?:\.\d+)?)")
_SPEND = ("spend", "cost")


def quota_fields(err: dict[str, Any], details: list[Any]) -> dict[str, Any] | None:
    """The quota a 429 names: the first QuotaFailure violation, and ``limit: N`` from the message.

    >>> quota_fields({"message": "Quota exceeded for metric: m, limit: 7, model: x"}, [])
    {'quota_value': 7.0}
    """
    out: dict[str, Any] = {}
    for d in details:
        if isinstance(d, dict) and str(d.get("@type", "")).endswith("QuotaFailure"):
            violations = [v for v in d.get("violations") or [] if isinstance(v, dict)]
            if violations:
                v = violations[0]
                if v.get("quotaMetric"):
                    out["quota_metric"] = str(v["quotaMetric"])
                if v.get("quotaId"):
                    out["quota_id"] = str(v["quotaId"])
                if isinstance(v.get("quotaDimensions"), dict):
                    out["quota_dimensions"] = json.dumps(v["quotaDimensions"], sort_keys=True)
                try:
                    out["quota_value"] = float(v["quotaValue"])
                except (KeyError, TypeError, ValueError):
                    pass
            break
    if "quota_value" not in out:
        match = _LIMIT.search(str(err.get("message") or ""))
        if match:
            out["quota_value"] = float(match.group(1))
    return out or None


def quota_kind(kind: str, err: dict[str, Any], quota: dict[str, Any] | None) -> str:
    """Refine a 429's kind: a spend limit, no credit, or a quota of zero are not retried."""
    named = " ".join(str((quota or {}).get(k) or "") for k in ("quota_id", "quota_metric")).lower()
    message = str(err.get("message") or "").lower()
    if any(word in named for word in _SPEND) or "spend limit" in message or "spending limit" in message:
        return "spend_limit"
    if err.get("type") == "insufficient_quota":  # OpenAI-style: no credit on the account
        return "billing"
    if quota is not None and quota.get("quota_value") == 0:
        return "no_quota"
    return kind


def kind_for_status(status: int, err: dict[str, Any], details: list[Any]) -> str:
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
                now = _dt.datetime.now(when.tzinfo or _dt.UTC)
                return max(0.0, (when - now).total_seconds()), "retry-after"
            except (TypeError, ValueError, IndexError, OverflowError):
                pass
    for d in details or []:
        if isinstance(d, dict) and str(d.get("@type", "")).endswith("RetryInfo"):
            delay = _parse_duration(d.get("retryDelay"))
            if delay is not None:
                return delay, "retry-info"
    return None, None
