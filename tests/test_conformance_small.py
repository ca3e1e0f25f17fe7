"""Small hand-made answers in the shapes the real services send (see docs/emulator.md,
"Conformance"): these run everywhere, unlike the recordings in ``test_conformance_real.py``."""

from __future__ import annotations

import json

import pytest

from nbp_kit.client.retry import RetryPolicy
from nbp_kit.errors import ERROR_KINDS, APIError, ContentBlocked, RateLimited
from nbp_kit.providers.gemini import StreamState
from nbp_kit.providers.http_errors import classify_http_error
from nbp_kit.providers.registry import get_provider
from nbp_kit.spec import ImageSpec

GEMINI = get_provider("gemini")


def _err(status: int, error: dict, headers: dict | None = None):
    return classify_http_error(status, headers or {}, json.dumps({"error": error}).encode()).to_exception()


def test_openai_insufficient_quota_is_a_billing_quota_never_retried() -> None:
    exc = _err(
        429,
        {
            "message": "You exceeded your current quota, please check your plan and billing details.",
            "type": "insufficient_quota",
            "param": None,
            "code": "insufficient_quota",
        },
    )
    assert isinstance(exc, RateLimited) and exc.kind == "billing" and exc.billing
    assert ERROR_KINDS["billing"] is False
    assert not RetryPolicy().decide(kind=exc.kind, attempt_no=1).retry


def test_gemini_limit_zero_is_a_billing_quota_and_a_per_minute_limit_is_not() -> None:
    zero = _err(
        429,
        {
            "code": 429,
            "status": "RESOURCE_EXHAUSTED",
            "message": "* Quota exceeded for metric: generativelanguage.googleapis.com/"
            "generate_content_free_tier_requests, limit: 0, model: gemini-3-pro-image",
        },
    )
    assert zero.kind == "no_quota" and zero.billing
    minute = _err(
        429,
        {
            "code": 429,
            "status": "RESOURCE_EXHAUSTED",
            "message": "* Quota exceeded for metric: x, limit: 10, model: gemini-3-pro-image",
            "details": [
                {
                    "@type": "type.googleapis.com/google.rpc.QuotaFailure",
                    "violations": [{"quotaId": "GenerateRequestsPerMinutePerProjectPerModel"}],
                }
            ],
        },
    )
    assert minute.kind == "rate_limited"


def test_one_per_day_violation_among_several_makes_the_429_daily() -> None:
    exc = _err(
        429,
        {
            "code": 429,
            "message": "quota",
            "details": [
                {
                    "@type": "type.googleapis.com/google.rpc.QuotaFailure",
                    "violations": [
                        {"quotaId": "GenerateRequestsPerMinutePerProjectPerModel-FreeTier"},
                        {"quotaId": "GenerateRequestsPerDayPerProjectPerModel-FreeTier"},
                    ],
                }
            ],
        },
    )
    assert exc.kind == "quota_daily" and exc.daily


@pytest.mark.parametrize(
    ("retry_info", "message", "wait"),
    [
        ("38s", "Please retry in 38.90923309s.", 39.15923309),  # rounded RetryInfo: the message wins
        ("12s", "", 12.25),  # RetryInfo alone: plus the margin
        ("40s", "Please retry in 3.5s.", 40.25),  # the larger of the two
    ],
)
def test_retry_wait_is_the_larger_stated_delay_plus_a_margin(retry_info: str, message: str, wait: float) -> None:
    exc = _err(
        429,
        {
            "code": 429,
            "message": message,
            "details": [{"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": retry_info}],
        },
    )
    assert exc.retry_delay_s == float(retry_info[:-1]) and exc.retry_delay_source == "retry-info"
    assert exc.retry_wait_s == pytest.approx(wait)


@pytest.mark.parametrize(
    "error",
    [
        {
            "message": "Your request was rejected by the safety system.",
            "type": "image_generation_user_error",
            "param": None,
            "code": "moderation_blocked",
        },
        {"message": "rejected", "type": "invalid_request_error", "code": "content_policy_violation"},
    ],
)
def test_openai_refusals_are_safety_blocks(error: dict) -> None:
    exc = _err(400, error)
    assert isinstance(exc, ContentBlocked) and exc.kind == "safety_block"


def test_a_400_naming_the_field_without_details_is_an_invalid_request() -> None:
    exc = _err(
        400,
        {
            "code": 400,
            "status": "INVALID_ARGUMENT",
            "message": "* GenerateContentRequest.generation_config.image_config.aspect_ratio: must be one of ...",
        },
    )
    assert type(exc) is APIError and exc.kind == "invalid_request" and "aspect_ratio" in str(exc)


def test_leaked_key_403_is_auth() -> None:
    exc = _err(
        403,
        {
            "code": 403,
            "status": "PERMISSION_DENIED",
            "message": "Your API key was reported as leaked. Please use another API key.",
        },
    )
    assert exc.kind == "auth" and not exc.retryable


def test_pro_refusal_stream_event_with_role_only_content_is_a_safety_block() -> None:
    state = StreamState()
    GEMINI.observe_event(
        state,
        {
            "candidates": [
                {
                    "content": {"role": "model"},
                    "finishReason": "IMAGE_PROHIBITED_CONTENT",
                    "finishMessage": "The model output could not be generated. Support code: 1.",
                }
            ],
            "usageMetadata": {"promptTokenCount": 50, "totalTokenCount": 290, "thoughtsTokenCount": 240},
        },
        0.1,
    )
    with pytest.raises(ContentBlocked) as info:
        GEMINI.finish_stream(state)
    assert info.value.kind == "safety_block"


def test_no_image_with_empty_content_is_no_image() -> None:
    body = json.dumps(
        {
            "candidates": [{"content": {}, "finishReason": "NO_IMAGE", "index": 0}],
            "usageMetadata": {"promptTokenCount": 9, "totalTokenCount": 9},
        }
    ).encode()
    with pytest.raises(ContentBlocked) as info:
        GEMINI.parse_body(body)
    assert info.value.kind == "no_image"


def test_relay_does_not_send_response_format_to_gpt_image() -> None:
    relay = get_provider("relay")
    assert "response_format" not in relay.build_request("a cat", ImageSpec(model="gpt-image-1")).json
    assert relay.build_request("a cat", ImageSpec()).json["response_format"] == "b64_json"


def test_a_404_for_a_model_says_it_is_unknown_or_retired_and_lists_the_known_ids() -> None:
    exc = _err(
        404,
        {
            "code": 404,
            "status": "NOT_FOUND",
            "message": "models/gemini-3.6-flahs is not found for API "
            "version v1beta, or is not supported for generateContent.",
        },
    )
    assert exc.kind == "not_found" and "unknown or retired" in str(exc)
    assert "gemini-3-pro-image," in str(exc) and "gemini-3-pro-image-preview" in str(exc)


def test_the_default_model_is_the_ga_id_and_the_preview_id_is_still_accepted() -> None:
    assert ImageSpec().model == "gemini-3-pro-image"
    assert ImageSpec(model="gemini-3-pro-image-preview").model == "gemini-3-pro-image-preview"
    assert GEMINI.build_request("a cat", ImageSpec()).path == "/v1beta/models/gemini-3-pro-image:generateContent"
