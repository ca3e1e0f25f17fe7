"""Retry policy and budget as units, and the client's retry loop over httpx2.MockTransport.

Network-level retry behaviour (real sockets, resets, stalls) is in test_client_emulator.py;
here the transport is a plain function so each status/header combination is exact.
"""

from __future__ import annotations

import base64
import io
import json

import httpx2
import pytest
import stamina
from PIL import Image

from nbp_kit import AsyncClient, Client, ImageSpec, RetryBudget, RetryPolicy
from nbp_kit.client.retry import HedgePolicy, Hedger
from nbp_kit.errors import (
    APIError,
    BadPayload,
    ConfigError,
    RateLimited,
    TransportFailed,
)

KEY = "canary-0123456789abcdef"


@pytest.fixture(autouse=True)
def _no_sleep():
    # stamina's testing mode: no back-off sleeps; attempts capped at our own maximum.
    with stamina.set_testing(True, attempts=10, cap=True):
        yield


def _png(w: int = 1024, h: int = 1024) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (w, h), "orange").save(buf, "PNG")
    return buf.getvalue()


PNG_1K = _png()


def _ok(png: bytes = PNG_1K) -> httpx2.Response:
    return httpx2.Response(
        200,
        json={
            "candidates": [
                {
                    "content": {
                        "parts": [{"inlineData": {"mimeType": "image/png", "data": base64.b64encode(png).decode()}}]
                    },
                    "finishReason": "STOP",
                }
            ]
        },
    )


def _error(status: int, *, headers: dict | None = None, details: list | None = None) -> httpx2.Response:
    return httpx2.Response(
        status, headers=headers or {}, json={"error": {"code": status, "message": "boom", "details": details or []}}
    )


def _client(script: list, tmp_path, **kw) -> tuple[Client, list]:
    """A client whose n-th request gets script[n] (a Response, or an exception to raise)."""
    seen: list[httpx2.Request] = []

    def handler(request: httpx2.Request) -> httpx2.Response:
        seen.append(request)
        item = script[min(len(seen), len(script)) - 1]
        if isinstance(item, Exception):
            raise item
        return item

    client = Client(
        api_key=KEY, base_url="http://emu.test", transport=httpx2.MockTransport(handler), output_dir=tmp_path, **kw
    )
    return client, seen


# ----------------------------------------------------------------- policy units
def test_policy_full_jitter_bounds() -> None:
    calls: list[tuple[float, float]] = []
    policy = RetryPolicy(random=lambda a, b: calls.append((a, b)) or b)
    assert policy.decide(kind="overloaded", attempt_no=1).delay_s == 2.0
    assert policy.decide(kind="overloaded", attempt_no=3).delay_s == 8.0
    assert RetryPolicy(random=lambda a, b: b).backoff_s(10) == 60.0  # capped
    assert calls[0] == (0.0, 2.0)


@pytest.mark.parametrize(
    ("kind", "retried"),
    [
        ("rate_limited", True),
        ("overloaded", True),
        ("server_error", True),
        ("server_timeout", True),
        ("timeout", True),
        ("connect_error", True),
        ("connection_reset", True),
        ("bad_payload", True),
        ("quota_daily", False),
        ("safety_block", False),
        ("no_image", False),
        ("invalid_request", False),
        ("auth", False),
        ("not_found", False),
        ("do_not_retry", False),
    ],
)
def test_policy_kinds(kind: str, retried: bool) -> None:
    assert RetryPolicy().decide(kind=kind, attempt_no=1).retry is retried


def test_policy_caps() -> None:
    p = RetryPolicy()
    assert not p.decide(kind="overloaded", attempt_no=4).retry
    d = p.decide(kind="rate_limited", attempt_no=1, server_delay_s=121.0, server_delay_source="retry-info")
    assert not d.retry and d.stop_kind == "retry_delay_too_long"
    assert p.decide(kind="rate_limited", attempt_no=1, server_delay_s=120.0, server_delay_source="retry-info").retry
    assert not p.decide(kind="bad_payload", attempt_no=2, once_kind_failures=2).retry


@pytest.mark.parametrize(
    "bad", [{"max_attempts": 0}, {"max_attempts": 2.5}, {"cap_s": -1}, {"retry_kinds": frozenset({"nope"})}]
)
def test_policy_bad_input(bad: dict) -> None:
    with pytest.raises(ConfigError, match=next(iter(bad))):
        RetryPolicy(**bad)


def test_budget() -> None:
    b = RetryBudget(tokens=2, per_success=0.5)
    assert b.try_spend() and b.try_spend() and not b.try_spend()
    b.record_success()
    b.record_success()
    assert b.try_spend()


def test_hedger_fraction_and_suspension() -> None:
    now = [0.0]
    h = Hedger(HedgePolicy(after_s=1.0, max_extra_fraction=0.5), clock=lambda: now[0])
    h.observe_call()
    assert h.delay_s() is None  # 1 hedge would be 100 % of 1 call
    h.observe_call()
    assert h.delay_s() == 1.0 and h.claim()
    h.observe_call()
    h.observe_call()
    h.observe_429()
    assert h.delay_s() is None
    now[0] = 61.0
    assert h.delay_s() == 1.0


def test_hedger_rolling_quantile() -> None:
    h = Hedger(HedgePolicy(max_extra_fraction=1.0, min_samples=20))
    for i in range(19):
        h.observe_success(float(i))
    h.observe_call()
    assert h.delay_s() is None
    for i in range(19, 100):
        h.observe_success(float(i))
    assert 93.0 <= h.delay_s() <= 96.0


# ----------------------------------------------------------------- client retry loop
@pytest.mark.parametrize("status", [408, 429, 500, 502, 503, 504])
def test_retryable_statuses_are_retried(status: int, tmp_path) -> None:
    client, seen = _client([_error(status), _ok()], tmp_path)
    with client:
        gen = client.generate("a cat", ImageSpec(), save=False)
    assert gen.ok and len(seen) == 2
    first, second = gen.attempts
    assert first.status_code == status and first.error_kind and first.retry_delay_source == "backoff"
    assert 0.0 <= first.retry_delay_s <= 2.0
    assert second.ok and second.attempt_no == 2 and second.call_id == first.call_id


@pytest.mark.parametrize(
    ("response", "exc_type", "kind"),
    [
        (_error(400), APIError, "invalid_request"),
        (_error(401), APIError, "auth"),
        (_error(404), APIError, "not_found"),
        (
            _error(
                429,
                details=[
                    {
                        "@type": "type.googleapis.com/google.rpc.QuotaFailure",
                        "violations": [{"quotaId": "RequestsPerDayPerProject"}],
                    }
                ],
            ),
            RateLimited,
            "quota_daily",
        ),
        (_error(503, headers={"x-should-retry": "false"}), APIError, "do_not_retry"),
        (httpx2.Response(200, json={"promptFeedback": {"blockReason": "SAFETY"}}), Exception, "safety_block"),
    ],
)
def test_never_retried(response, exc_type, kind: str, tmp_path) -> None:
    client, seen = _client([response, _ok()], tmp_path)
    with client, pytest.raises(exc_type) as info:
        client.generate("a cat", save=False)
    assert len(seen) == 1 and info.value.kind == kind
    assert len(info.value.attempts) == 1 and info.value.attempts[0].retry_delay_s is None


@pytest.mark.parametrize(
    ("headers", "details", "delay", "source"),
    [
        ({"retry-after-ms": "2500", "retry-after": "7"}, None, 2.5, "retry-after-ms"),
        ({"retry-after": "7"}, None, 7.0, "retry-after"),
        ({}, [{"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "26.66s"}], 26.66, "retry-info"),
    ],
)
def test_server_delay_sources_honoured(headers, details, delay, source, tmp_path) -> None:
    client, _ = _client([_error(429, headers=headers, details=details), _ok()], tmp_path)
    with client:
        gen = client.generate("a cat", save=False)
    assert (gen.attempts[0].retry_delay_s, gen.attempts[0].retry_delay_source) == (delay, source)


def test_server_delay_too_long_stops(tmp_path) -> None:
    client, seen = _client([_error(429, headers={"retry-after": "600"}), _ok()], tmp_path)
    with client, pytest.raises(RateLimited) as info:
        client.generate("a cat", save=False)
    assert len(seen) == 1 and info.value.kind == "retry_delay_too_long"
    assert info.value.attempts[0].error_kind == "retry_delay_too_long"


def test_at_most_four_attempts(tmp_path) -> None:
    client, seen = _client([_error(503)], tmp_path)
    with client:
        gen = client.generate("a cat", save=False, raise_on_error=False)
    assert not gen.ok and len(seen) == 4 and [a.attempt_no for a in gen.attempts] == [1, 2, 3, 4]
    assert gen.attempts[-1].retry_delay_s is None and gen.error.kind == "overloaded"


def test_bad_payload_retried_once(tmp_path) -> None:
    client, seen = _client([httpx2.Response(200, content=b'{"candidates": [')], tmp_path)
    with client, pytest.raises(BadPayload):
        client.generate("a cat", save=False)
    assert len(seen) == 2


def test_wrong_size_is_wrong_image_and_retried_once(tmp_path) -> None:
    client, seen = _client([_ok(_png(512, 512))], tmp_path)
    with client, pytest.raises(BadPayload) as info:
        client.generate("a cat", save=False)
    assert info.value.kind == "wrong_image" and len(seen) == 2
    assert info.value.attempts[0].size_ok is False and info.value.attempts[0].image_width == 512


def test_connection_errors_retried(tmp_path) -> None:
    client, seen = _client([httpx2.ConnectError("refused"), httpx2.ReadTimeout("slow"), _ok()], tmp_path)
    with client:
        gen = client.generate("a cat", save=False)
    assert gen.ok and [a.error_kind for a in gen.attempts] == ["connect_error", "timeout", None]
    assert "maybe billed" in gen.attempts[1].error_message


def test_retry_budget_limits_retries(tmp_path) -> None:
    budget = RetryBudget(tokens=1, per_success=0.1)
    client, seen = _client([_error(503)], tmp_path, retry_budget=budget)
    with client, pytest.raises(APIError):
        client.generate("a cat", save=False)
    assert len(seen) == 2  # one retry allowed by the single token


def test_async_client_same_loop(tmp_path) -> None:
    import asyncio

    def handler(request):
        return _ok()

    async def main():
        async with AsyncClient(
            api_key=KEY, base_url="http://emu.test", transport=httpx2.MockTransport(handler), output_dir=tmp_path
        ) as client:
            return await client.generate("a cat", seed=1)

    gen = asyncio.run(main())
    assert gen.ok and gen.image_path and gen.image_path.startswith(str(tmp_path))


def test_transport_error_kinds_recorded(tmp_path) -> None:
    client, _ = _client([httpx2.RemoteProtocolError("peer closed")], tmp_path, retry=RetryPolicy(max_attempts=1))
    with client, pytest.raises(TransportFailed) as info:
        client.generate("a cat", save=False)
    assert info.value.kind == "connection_reset"


def test_retry_body_shapes_match_json(tmp_path) -> None:
    client, seen = _client([_ok()], tmp_path)
    with client:
        client.generate("a cat", ImageSpec(resolution="1K"), seed=5, save=False)
    body = json.loads(seen[0].content)
    assert body["generationConfig"]["seed"] == 5
    assert seen[0].headers["x-goog-api-key"] == KEY and KEY not in str(seen[0].url)
