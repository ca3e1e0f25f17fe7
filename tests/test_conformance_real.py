"""Conformance with the real services: answers recorded from the real APIs, run through the kit.

The recordings live next to the repository, in ``../shared/real_fixtures`` (``cases.json`` says
per case what a correct client must get; ``PROVENANCE.md`` where each answer comes from). They
are not copied into the project: where that folder is absent (a user's clone) every test here
skips and says so. ``tests/test_conformance_small.py`` holds the small fixtures that always run.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

import pytest

from nbp_kit.client.images import decode_base64, inspect_image
from nbp_kit.errors import ERROR_KINDS, RequestFailed
from nbp_kit.providers.gemini import StreamState
from nbp_kit.providers.registry import get_provider
from nbp_kit.providers.sse import SSEParser

#: ``../shared/real_fixtures`` beside the repository; ``NBP_KIT_REAL_FIXTURES`` points elsewhere
#: (a checkout in another folder, e.g. a git worktree).
FIXTURES = Path(
    os.environ.get("NBP_KIT_REAL_FIXTURES") or Path(__file__).resolve().parents[2] / "shared" / "real_fixtures"
)
_ABSENT = not (FIXTURES / "cases.json").is_file()
pytestmark = pytest.mark.skipif(
    _ABSENT, reason=f"real-service recordings not present at {FIXTURES} (they sit beside the repository in CI only)"
)

#: Kinds finer than the ones ``cases.json`` names: the recorded expectation is met, and the kit
#: says more. ``billing`` (no credit) and ``no_quota`` (a tier with ``limit: 0``) are quotas that
#: waiting never clears: like ``quota_daily`` and ``do_not_retry`` they are 429s the kit does not retry.
REFINED_KINDS = {"billing": {"quota_daily", "do_not_retry"}, "no_quota": {"quota_daily", "do_not_retry"}}


def _cases() -> list[dict[str, Any]]:
    if _ABSENT:
        return []
    return json.loads((FIXTURES / "cases.json").read_text())["cases"]


CASES = _cases()
GEMINI = get_provider("gemini")
RELAY = get_provider("relay")


def _body(case: dict[str, Any]) -> bytes:
    return (FIXTURES / case["file"]).read_bytes()


def _with_signatures_restored(body: bytes, lengths: list[int]) -> bytes:
    """Pad the cut ``thoughtSignature`` values back to their recorded lengths (1-3 M chars)."""
    it = iter(lengths)

    def pad(m: re.Match[bytes]) -> bytes:
        n = next(it, None)
        return m.group(0) if n is None else m.group(1) + b"A" * n + b'"'

    return re.sub(rb'("thoughtSignature"\s*:\s*")[^"]*"', pad, body)


def run_case(case: dict[str, Any], body: bytes) -> tuple[Any, RequestFailed | None, int]:
    """The kit's answer to one recorded response: (parsed image or None, error or None, events)."""
    try:
        if case["kind"] == "http_error":
            raise GEMINI.classify_error(case["status"], case.get("headers") or {}, body).to_exception()
        if case["kind"] == "relay_ok":
            return RELAY.parse_body(body), None, 1
        if case["kind"] == "gemini_unary":
            return GEMINI.parse_body(body), None, 1
        state = StreamState()
        parser = SSEParser()
        events = parser.feed(body) + parser.close()
        for i, data in enumerate(events):
            GEMINI.observe_event(state, json.loads(data), float(i))
        return GEMINI.finish_stream(state), None, len(events)
    except RequestFailed as exc:
        return None, exc, 0


def _kind_matches(got: str, expected: str) -> bool:
    accepted = set(expected.split("|"))
    return got in accepted or bool(REFINED_KINDS.get(got, set()) & accepted)


def check_case(case: dict[str, Any], body: bytes) -> list[str]:
    """Every way the kit's reading of ``body`` differs from ``case["expect"]`` (empty: conformant)."""
    exp = case["expect"]
    parsed, err, events = run_case(case, body)
    wrong: list[str] = []
    if exp["outcome"] == "image":
        if err is not None:
            return [f"expected an image, got {err!r}"]
        info = inspect_image(decode_base64(parsed.image_b64))
        fmt = {"image/jpeg": "JPEG", "image/png": "PNG"}.get(info.mime, info.mime)
        checks = {
            "format": fmt,
            "width": info.width,
            "height": info.height,
            "mime": parsed.mime,
            "text": parsed.text if "text" in exp else None,
            "usage": parsed.usage.as_dict() if parsed.usage is not None else None,
            "finish_reason": parsed.finish_reason,
            "response_id": parsed.response_id,
            "model_version": parsed.model_version,
            "events": events,
        }
        for key, got in checks.items():
            if key in exp and exp[key] != got:
                wrong.append(f"{key}: expected {exp[key]!r}, got {got!r}")
        if exp.get("mime") and info.mime != exp["mime"]:
            wrong.append(f"decoded bytes are {info.mime}, the answer says {exp['mime']}")
        return wrong
    if err is None:
        return [f"expected {exp['error_kind']}, got an image"]
    if type(err).__name__ != exp["exception"]:
        wrong.append(f"exception: expected {exp['exception']}, got {type(err).__name__}")
    if not _kind_matches(err.kind, exp["error_kind"]):
        wrong.append(f"kind: expected {exp['error_kind']}, got {err.kind}")
    if "retryable" in exp and ERROR_KINDS.get(err.kind) != exp["retryable"]:
        wrong.append(f"retryable: expected {exp['retryable']}, got {ERROR_KINDS.get(err.kind)}")
    if "retry_delay_s" in exp and err.retry_delay_s != exp["retry_delay_s"]:
        wrong.append(f"retry_delay_s: expected {exp['retry_delay_s']}, got {err.retry_delay_s}")
    if exp.get("retry_delay_source") and err.retry_delay_source != exp["retry_delay_source"]:
        wrong.append(f"retry_delay_source: expected {exp['retry_delay_source']}, got {err.retry_delay_source}")
    return wrong


def test_all_35_recorded_cases_are_present() -> None:
    assert len(CASES) == 35
    assert all((FIXTURES / c["file"]).is_file() for c in CASES)


@pytest.mark.parametrize("case", CASES, ids=[c["id"] for c in CASES])
def test_recorded_answer_reads_as_expected(case: dict[str, Any]) -> None:
    assert check_case(case, _body(case)) == []


@pytest.mark.parametrize(
    "case",
    [c for c in CASES if c["signature_lengths"] and c["kind"] == "gemini_unary"],
    ids=[c["id"] for c in CASES if c["signature_lengths"] and c["kind"] == "gemini_unary"],
)
def test_full_size_thought_signatures_do_not_change_the_reading(case: dict[str, Any]) -> None:
    """The recorded 0.6-2.9 M-char signatures, padded back, leave the result unchanged."""
    body = _with_signatures_restored(_body(case), case["signature_lengths"])
    assert len(body) > max(case["signature_lengths"])
    assert check_case(case, body) == []


def test_retry_waits_past_the_delay_stated_in_the_message() -> None:
    """RetryInfo says 38s, the message 38.909...s: the kit waits the larger, plus a margin."""
    case = next(c for c in CASES if c["id"] == "quota_daily_429")
    err = GEMINI.classify_error(429, {}, _body(case)).to_exception()
    assert err.retry_delay_s == 38.0
    assert 38.90923309 < err.retry_wait_s <= 38.90923309 + 1.0
