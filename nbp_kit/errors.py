"""One exception tree, and the error *kinds* every failed attempt is recorded with.

::

    NbpError
     ├── ConfigError (also ValueError)     bad input, raised before any request is sent
     ├── SpendCapExceeded                  a plan or a running sweep would pass the spend cap
     ├── StoreError                        the run store cannot be opened or written
     └── RequestFailed                     a request (after its retries) did not give an image
          ├── TransportFailed              connect / reset / timeout / deadline
          ├── APIError                     the service answered with an error status
          │    └── RateLimited             429 (``daily``: per-day quota; ``billing``: no credit / limit 0)
          ├── BadPayload                   truncated JSON, bad base64, HTML page, wrong image
          └── ContentBlocked               safety block, ``NO_IMAGE`` and other no-image finishes

Lower-level errors (``httpx2``, JSON, Pillow) are translated at one seam, the client, with
``raise ... from exc``. Messages never contain an API key: :func:`redact` is applied to
every message built from server or transport text.
"""

from __future__ import annotations

import re
from typing import Any

#: Every error kind a record can carry, with whether the kit retries it by default.
ERROR_KINDS: dict[str, bool] = {
    "rate_limited": True,  # 429 per-minute quota
    "quota_daily": False,  # 429 whose quota id says PerDay
    "no_quota": False,  # 429 stating "limit: 0": the project has no quota for this model
    "spend_limit": False,  # 429 for a spend limit (dollars per rolling window)
    "billing": False,  # 429 insufficient_quota: no credit or billing on the account
    "server_error": True,  # 500, 502
    "overloaded": True,  # 503
    "server_timeout": True,  # 504 / 408
    "timeout": True,  # client timeout or hard deadline (maybe billed)
    "connect_error": True,
    "connection_reset": True,
    "bad_payload": True,  # retried at most once
    "wrong_image": True,  # retried at most once
    "safety_block": False,  # promptFeedback.blockReason, IMAGE_SAFETY, ...
    "no_image": False,  # NO_IMAGE / IMAGE_OTHER finishes
    "invalid_request": False,  # other 400
    "auth": False,  # 401 / 403 / bad key
    "not_found": False,  # 404
    "do_not_retry": False,  # x-should-retry: false
    "retry_delay_too_long": False,  # server asked for more than the cap
    "cancelled": False,
    "save_failed": False,  # the image arrived (and was billed) but could not be written to disk
    "spend_cap": False,
    "client_error": False,  # a bug on our side, reported not hidden
    "batch_expired": False,  # a batch job ended EXPIRED before the item ran (not billed)
    "batch_cancelled": False,  # the batch job was cancelled before the item ran
    "batch_failed": False,  # the batch job FAILED as a whole
    "missing_result": False,  # a finished batch job returned nothing for the item
}


class NbpError(Exception):
    """Base of every error nbp_kit raises."""


class ConfigError(NbpError, ValueError):
    """Bad input, raised before any request is sent. The message names the argument."""


class SpendCapExceeded(NbpError):
    """A plan's estimate, or a running sweep's recorded cost, reached the spend cap."""


class StoreError(NbpError):
    """The run store could not be opened or written (read-only folder, full disk, ...)."""


class RequestFailed(NbpError):
    """A request ended without an image. ``kind`` is one of :data:`ERROR_KINDS`.

    ``usage`` holds the token counts the service billed with a refusal or a no-image answer.
    """

    usage: Any = None

    def __init__(
        self,
        message: str,
        *,
        kind: str,
        status_code: int | None = None,
        retry_delay_s: float | None = None,
        retry_delay_source: str | None = None,
        attempts: tuple[Any, ...] = (),
        quota: dict[str, Any] | None = None,
        retry_wait_s: float | None = None,
    ) -> None:
        super().__init__(redact(message))
        self.quota = quota  # the Attempt quota_* fields a 429 named
        self.kind = kind
        self.status_code = status_code
        self.retry_delay_s = retry_delay_s
        self.retry_delay_source = retry_delay_source
        #: How long to wait before retrying: the server's delay, or more where the server's
        #: own message names a longer one (RetryInfo is rounded down to whole seconds).
        self.retry_wait_s = retry_delay_s if retry_wait_s is None else retry_wait_s
        self.attempts = attempts

    @property
    def retryable(self) -> bool:
        return ERROR_KINDS.get(self.kind, False)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(kind={self.kind!r}, status_code={self.status_code!r}, message={str(self)!r})"


class TransportFailed(RequestFailed):
    """Connection failed, was reset, or the attempt passed its timeout or deadline."""


class APIError(RequestFailed):
    """The service answered with an HTTP error status."""


class RateLimited(APIError):
    """HTTP 429. ``daily`` is true for per-day quota, ``billing`` for a quota no wait clears;
    neither is retried."""

    @property
    def daily(self) -> bool:
        return self.kind == "quota_daily"

    @property
    def billing(self) -> bool:
        return self.kind in ("billing", "no_quota", "spend_limit")


class BadPayload(RequestFailed):
    """The response could not be used: truncated, not JSON, bad base64, wrong image."""


class ContentBlocked(RequestFailed):
    """The service declined to return an image (safety block or a no-image finish)."""


_SECRETS: set[str] = set()
_KEYLIKE = re.compile(r"(?i)((?:key|api_key|apikey|token|authorization|bearer)[\"'=:\s]+)([A-Za-z0-9_\-\.]{12,})")


def register_secret(secret: str | None) -> None:
    """Remember a secret so :func:`redact` removes it (and its encoded forms) from text."""
    if secret and len(secret) >= 4:
        _SECRETS.add(secret)


def redact(text: str) -> str:
    """Remove registered secrets (raw, URL-encoded, base64) and key-looking values."""
    import base64
    import urllib.parse

    if not text:
        return text
    for secret in _SECRETS:
        for form in (secret, urllib.parse.quote(secret, safe=""), base64.b64encode(secret.encode()).decode()):
            text = text.replace(form, "[REDACTED]")
    return _KEYLIKE.sub(lambda m: m.group(1) + "[REDACTED]", text)
