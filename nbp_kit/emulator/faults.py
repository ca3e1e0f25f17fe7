"""Fault kinds and the exact error bodies the real services send.

A fault is forced per request with the header ``x-emulator-fault: KIND`` or drawn with the
profile's probabilities (``faults``: kind -> probability per request). Bodies follow
``shared/docs/domain.md``: Gemini ``{"error": {code, message, status, details}}`` with no
``Retry-After`` header on 429; relays ``{"error": {message, type, param, code}}`` with a
``retry-after`` header.

>>> gemini_error(503)["error"]["message"]
'The model is overloaded. Please try again later.'
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np

#: Every fault kind, with what a client observes.
FAULT_KINDS: dict[str, str] = {
    "429": "HTTP 429 RESOURCE_EXHAUSTED per-minute quota (Gemini: RetryInfo in the body; relay: retry-after header)",
    "429-daily": "HTTP 429 whose QuotaFailure quotaId contains PerDay (must not be retried)",
    "500": "HTTP 500 INTERNAL",
    "503": "HTTP 503 UNAVAILABLE 'The model is overloaded. Please try again later.'",
    "504": "HTTP 504 DEADLINE_EXCEEDED",
    "reset": "HTTP 200 headers and part of the body, then the connection is dropped",
    "truncated": "HTTP 200 whose JSON body is cut short (Content-Length matches the short body)",
    "stall": "HTTP 200 headers, then no byte for fault_params.stall_s (ends when the client leaves)",
    "trickle": "HTTP 200 whose body arrives in small chunks over fault_params.trickle_total_s x time_scale",
    "bad-base64": "HTTP 200 whose image data is not valid base64",
    "wrong-size": "HTTP 200 with a valid PNG of another pixel size than requested",
    "html": "HTTP 502 text/html error page, as a proxy sends",
    "blocked": "HTTP 200 with promptFeedback.blockReason and no candidates (relay: 400 content_policy_violation)",
    "image-safety": "HTTP 200, finishReason IMAGE_PROHIBITED_CONTENT with finishMessage (support code), "
    "role-only content, thoughts billed (relay: 400 moderation_blocked)",
    "no-image": "HTTP 200, candidate finishReason NO_IMAGE with empty content, no image (relay: 200 with empty data)",
}

_STATUS = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    429: "RESOURCE_EXHAUSTED",
    500: "INTERNAL",
    503: "UNAVAILABLE",
    504: "DEADLINE_EXCEEDED",
}
_MESSAGES = {
    500: "An internal error has occurred. Please retry or report in https://developers.generativeai.google/guide/troubleshooting",
    503: "The model is overloaded. Please try again later.",
    504: "The request timed out. Please try again.",
}

HTML_PAGE = (
    "<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n"
    "<center><h1>502 Bad Gateway</h1></center>\r\n<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n"
)


def gemini_error(code: int, message: str | None = None, details: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """A Gemini error body."""
    body: dict[str, Any] = {
        "code": code,
        "message": message or _MESSAGES.get(code, "Error"),
        "status": _STATUS.get(code, "UNKNOWN"),
    }
    if details:
        body["details"] = details
    return {"error": body}


def gemini_bad_key() -> dict[str, Any]:
    return gemini_error(
        400,
        "API key not valid. Please pass a valid API key.",
        [
            {
                "@type": "type.googleapis.com/google.rpc.ErrorInfo",
                "reason": "API_KEY_INVALID",
                "domain": "googleapis.com",
                "metadata": {"service": "generativelanguage.googleapis.com"},
            },
            {
                "@type": "type.googleapis.com/google.rpc.LocalizedMessage",
                "locale": "en-US",
                "message": "API key not valid. Please pass a valid API key.",
            },
        ],
    )


def format_delay(delay_s: float) -> str:
    """Gemini's fractional delay text, e.g. ``26.66s`` (at least 0.01 s)."""
    return f"{max(0.01, delay_s):.2f}".rstrip("0").rstrip(".") + "s"


#: The metric the recorded 429 bodies name for request quotas (the only one they show besides
#: input tokens); quota ids keep their own names.
QUOTA_METRIC = "generativelanguage.googleapis.com/generate_content_free_tier_requests"
_DEFAULT_LIMIT = 10  # quotaValue when the quota's size is not configured (a forced 429 fault)
_RATE_LIMIT_HELP = (
    "You exceeded your current quota, please check your plan and billing details. For more "
    "information on this error, head to: https://ai.google.dev/gemini-api/docs/rate-limits. "
    "To monitor your current usage, head to: https://ai.dev/rate-limit. "
)


def gemini_quota(
    quota_id: str,
    delay_s: float,
    *,
    model: str,
    daily: bool,
    limit: int | None = None,
    also: tuple[str, ...] = (),
    second_s: float = 1.0,
) -> dict[str, Any]:
    """A 429 body as the real service sends it: Help, QuotaFailure (one violation per quota,
    with ``quotaValue``), and RetryInfo rounded DOWN to whole seconds while the message keeps
    the exact delay ("Please retry in 38.90923309s."). ``second_s`` is one modelled second
    (the emulator's time scale), so a scaled delay is rounded down to whole modelled seconds.

    >>> body = gemini_quota("GenerateRequestsPerMinutePerProjectPerModel", 38.909, model="m", daily=False, limit=20)
    >>> body["error"]["details"][2]["retryDelay"], body["error"]["message"].endswith("retry in 38.909s.")
    ('38s', True)
    """
    exact = f"{max(0.001, delay_s):.8f}".rstrip("0").rstrip(".")
    value = str(limit if limit is not None else _DEFAULT_LIMIT)
    message = (
        f"{_RATE_LIMIT_HELP}\n* Quota exceeded for metric: {QUOTA_METRIC}, limit: {value}, "
        f"model: {model}\nPlease retry in {exact}s."
    )
    violations = []
    for qid in (quota_id, *also):
        v: dict[str, Any] = {
            "quotaMetric": QUOTA_METRIC,
            "quotaId": qid,
            "quotaDimensions": {"location": "global", "model": model},
        }
        v["quotaValue"] = value
        violations.append(v)
    return gemini_error(
        429,
        message,
        [
            {
                "@type": "type.googleapis.com/google.rpc.Help",
                "links": [
                    {
                        "description": "Learn more about Gemini API quotas",
                        "url": "https://ai.google.dev/gemini-api/docs/rate-limits",
                    }
                ],
            },
            {"@type": "type.googleapis.com/google.rpc.QuotaFailure", "violations": violations},
            {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": _rounded_down(delay_s, second_s)},
        ],
    )


def _rounded_down(delay_s: float, second_s: float) -> str:
    whole = int(max(0.0, delay_s) / second_s + 1e-9) * second_s
    return f"{int(whole)}s" if second_s == 1.0 else format_delay(whole) if whole > 0 else "0s"


def gemini_quota_bare() -> dict[str, Any]:
    """A 429 that names no quota and no delay (as paid-tier answers can be)."""
    return gemini_error(429, "Resource has been exhausted (e.g. check quota).")


def gemini_spend_limit(limit_usd: float, delay_s: float, *, model: str) -> dict[str, Any]:
    """A 429 for a spend limit per rolling 10 minutes. Not from a recording: the real shape is
    unknown to this kit; it names a spend quota so a client can tell it from a rate quota."""
    message = (
        f"Your project has reached its spend limit of ${limit_usd:g} per 10 minutes for {model}. "
        "Raise the limit in AI Studio or wait for spending to fall below it."
    )
    return gemini_error(
        429,
        message,
        [
            {
                "@type": "type.googleapis.com/google.rpc.QuotaFailure",
                "violations": [
                    {
                        "quotaMetric": "generativelanguage.googleapis.com/generate_content_spend",
                        "quotaId": "GenerateContentSpendPer10MinutesPerProject",
                        "quotaDimensions": {"location": "global", "model": model},
                    }
                ],
            },
            {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": format_delay(delay_s)},
        ],
    )


def relay_error(
    message: str, *, type_: str = "invalid_request_error", param: str | None = None, code: str | None = None
) -> dict[str, Any]:
    """An OpenAI-style error body."""
    return {"error": {"message": message, "type": type_, "param": param, "code": code}}


def relay_error_for(code: int) -> dict[str, Any]:
    if code == 429:
        return relay_error(
            "Rate limit reached for requests. Please try again later.", type_="requests", code="rate_limit_exceeded"
        )
    return relay_error(_MESSAGES.get(code, "Error"), type_="server_error", code=_STATUS.get(code, "error").lower())


def draw_fault(probabilities: dict[str, float], rng: np.random.Generator) -> str | None:
    """One fault kind or None, from per-request probabilities (summed, at most 1)."""
    u = float(rng.random())
    acc = 0.0
    for kind, p in probabilities.items():
        acc += float(p)
        if u < acc:
            return kind
    return None


def dumps(obj: Any) -> bytes:
    return json.dumps(obj, separators=(",", ":")).encode()
