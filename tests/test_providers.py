"""Providers: request building, response parsing (JSON, SSE, relay), capabilities, cost."""

from __future__ import annotations

import base64
import io
import json
import random

import pytest
from PIL import Image

from nbp_kit.errors import BadPayload, ConfigError, ContentBlocked
from nbp_kit.providers.base import Usage
from nbp_kit.providers.gemini import StreamState
from nbp_kit.providers.http_errors import server_retry_delay
from nbp_kit.providers.pricing import attempt_cost, estimate_cost
from nbp_kit.providers.registry import capabilities, check_spec, get_provider
from nbp_kit.providers.sse import SSEParser
from nbp_kit.spec import ImageSpec

GEMINI = get_provider("gemini")
RELAY = get_provider("relay")


def _png_b64(w: int = 8, h: int = 8) -> str:
    buf = io.BytesIO()
    Image.new("RGB", (w, h), "orange").save(buf, "PNG")
    return base64.b64encode(buf.getvalue()).decode()


def _gemini_doc(*, data: str | None = None, thought: bool = False, finish: str | None = "STOP") -> dict:
    parts = [
        {"inlineData": {"mimeType": "image/png", "data": data or _png_b64()}, **({"thought": True} if thought else {})}
    ]
    cand: dict = {"content": {"role": "model", "parts": parts}}
    if finish:
        cand["finishReason"] = finish
    return {
        "candidates": [cand],
        "usageMetadata": {
            "promptTokenCount": 12,
            "candidatesTokenCount": 1130,
            "thoughtsTokenCount": 200,
            "candidatesTokensDetails": [
                {"modality": "IMAGE", "tokenCount": 1120},
                {"modality": "TEXT", "tokenCount": 10},
            ],
        },
        "modelVersion": "gemini-3-pro-image-preview",
        "responseId": "resp-1",
    }


# ----------------------------------------------------------------- requests
def test_gemini_request_shape_and_no_key_in_url() -> None:
    spec = ImageSpec(resolution="2K", aspect_ratio="16:9", include_thoughts=True)
    wire = GEMINI.build_request("a cat", spec, seed=7)
    assert wire.path == "/v1beta/models/gemini-3-pro-image:generateContent"
    gen = wire.json["generationConfig"]
    assert gen["imageConfig"] == {"aspectRatio": "16:9", "imageSize": "2K"}
    assert gen["responseModalities"] == ["IMAGE"]
    assert gen["thinkingConfig"] == {"includeThoughts": True}
    assert gen["seed"] == 7
    assert "thinkingLevel" not in json.dumps(wire.json)
    assert GEMINI.auth_headers("k123") == {"x-goog-api-key": "k123"}
    sse = GEMINI.build_request("a cat", spec, stream=True)
    assert sse.path.endswith(":streamGenerateContent") and sse.params == {"alt": "sse"}


def test_relay_request_fields() -> None:
    spec = ImageSpec(resolution="2K", aspect_ratio="1:1", thinking_level="low", grid="2x2", output_format="url")
    wire = RELAY.build_request("a cat", spec, seed=3)
    assert wire.path == "/v1/images/generations"
    body = wire.json
    assert body["size"] == "2048x2048" and body["image_size"] == "2K" and body["aspect_ratio"] == "1:1"
    assert body["thinking_level"] == "low" and body["grid"] == "2x2" and body["seed"] == 3
    assert body["response_format"] == "url"
    assert RELAY.auth_headers("k") == {"authorization": "Bearer k"}


# ----------------------------------------------------------------- capabilities
def test_capability_table() -> None:
    pro = capabilities("gemini", "gemini-3-pro-image-preview")
    assert pro.thinking_levels == () and pro.grids == ("1x1",) and pro.streaming and not pro.url_output
    flash = capabilities("gemini", "gemini-3.1-flash-image-preview")
    assert flash.thinking_levels == ("minimal", "high")
    relay = capabilities("relay", "nano-banana-pro")
    assert "low" in relay.thinking_levels and "3x3" in relay.grids and relay.url_output and not relay.streaming


@pytest.mark.parametrize(
    ("provider", "spec", "kw", "needle"),
    [
        ("gemini", ImageSpec(thinking_level="low"), {}, "thinking_level='low'"),
        ("gemini", ImageSpec(grid="2x2"), {}, "grid='2x2'"),
        ("gemini", ImageSpec(model="gemini-3.1-flash-image-preview", thinking_level="low"), {}, "'minimal', 'high'"),
        ("gemini", ImageSpec(output_format="url"), {}, "output_format='url'"),
        ("relay", ImageSpec(), {"stream": True}, "stream=True"),
    ],
)
def test_undocumented_knobs_refused(provider: str, spec: ImageSpec, kw: dict, needle: str) -> None:
    with pytest.raises(ConfigError) as info:
        check_spec(provider, spec, **kw)
    assert needle in str(info.value)


def test_allow_undocumented_lets_knobs_through() -> None:
    check_spec("gemini", ImageSpec(thinking_level="high", grid="2x2"), allow_undocumented=True)
    check_spec("gemini", ImageSpec(model="gemini-3.1-flash-image-preview", thinking_level="high"))


def test_unknown_provider() -> None:
    with pytest.raises(ConfigError, match="provider='openai'.*'gemini', 'relay'"):
        get_provider("openai")


# ----------------------------------------------------------------- parsing
def test_parse_gemini_json() -> None:
    parsed = GEMINI.parse_body(json.dumps(_gemini_doc()).encode())
    assert parsed.mime == "image/png" and parsed.image_b64
    assert parsed.response_id == "resp-1" and parsed.finish_reason == "STOP"
    assert parsed.usage == Usage(prompt_tokens=12, output_tokens=1130, thoughts_tokens=200, image_tokens=1120)


def test_thought_image_is_not_the_final_image() -> None:
    doc = _gemini_doc()
    doc["candidates"][0]["content"]["parts"].insert(
        0, {"inlineData": {"mimeType": "image/png", "data": "AAAA"}, "thought": True}
    )
    assert GEMINI.parse_body(json.dumps(doc).encode()).image_b64 != "AAAA"


BAD_BODIES = [
    b'{"candidates": [',  # truncated
    b"not json at all",
    b"<html><body>502 Bad Gateway</body></html>",
    b"",
    b"[]",
    b'{"error": {"code": 500, "message": "internal"}}',  # error in a 200
    b'{"candidates": "x"}',
    b'{"candidates": [{"content": {"parts": [{"inlineData": {"data": 5}}]}}]}',
    b'{"candidates": [{"content": {"parts": "nope"}}]}',
    b'{"candidates": [{"content": {"parts": []}}]}',  # no image, no finish: truncated
    b"\xff\xfe\x00garbage",
]


@pytest.mark.parametrize("body", BAD_BODIES)
def test_malformed_gemini_bodies_raise_bad_payload(body: bytes) -> None:
    with pytest.raises(BadPayload):
        GEMINI.parse_body(body)


def test_html_hint() -> None:
    with pytest.raises(BadPayload, match="HTML"):
        GEMINI.parse_body(b"<!doctype html><title>proxy</title>")


@pytest.mark.parametrize(
    ("doc", "kind"),
    [
        ({"promptFeedback": {"blockReason": "SAFETY"}}, "safety_block"),
        ({"candidates": [{"finishReason": "IMAGE_SAFETY"}]}, "safety_block"),
        ({"candidates": [{"finishReason": "NO_IMAGE", "content": {"parts": [{"text": "sorry"}]}}]}, "no_image"),
        ({"candidates": [{"finishReason": "IMAGE_OTHER"}]}, "no_image"),
    ],
)
def test_no_image_answers_are_content_blocked(doc: dict, kind: str) -> None:
    with pytest.raises(ContentBlocked) as info:
        GEMINI.parse_body(json.dumps(doc).encode())
    assert info.value.kind == kind


def test_parse_relay_b64_and_url() -> None:
    b64 = _png_b64()
    parsed = RELAY.parse_body(
        json.dumps(
            {"created": 1, "data": [{"b64_json": b64}], "usage": {"input_tokens": 5, "output_tokens": 1120}}
        ).encode()
    )
    assert parsed.image_b64 == b64 and parsed.usage.output_tokens == 1120
    parsed = RELAY.parse_body(json.dumps({"data": [{"url": "https://cdn.example/x.png"}]}).encode())
    assert parsed.image_url == "https://cdn.example/x.png" and parsed.image_b64 is None


@pytest.mark.parametrize(
    "body",
    [
        b'{"data": []}',
        b'{"data": [{}]}',
        b'{"data": [{"url": "javascript:alert(1)"}]}',
        b'{"error": {"message": "quota", "type": "rate_limit"}}',
        b'{"data": [',
        b"<html>",
    ],
)
def test_malformed_relay_bodies(body: bytes) -> None:
    with pytest.raises(BadPayload):
        RELAY.parse_body(body)


# ----------------------------------------------------------------- SSE
def _sse_bytes(docs: list[dict], *, crlf: bool = True) -> bytes:
    nl = b"\r\n" if crlf else b"\n"
    return b"".join(b"data: " + json.dumps(d).encode() + nl + nl for d in docs)


def _stream_docs() -> list[dict]:
    return [
        {"candidates": [{"content": {"parts": [{"text": "Planning the cat \u00e9\u00e8", "thought": True}]}}]},
        {
            "candidates": [
                {
                    "content": {
                        "parts": [{"inlineData": {"mimeType": "image/png", "data": _png_b64(4, 4)}, "thought": True}]
                    }
                }
            ]
        },
        _gemini_doc(),
    ]


@pytest.mark.parametrize("crlf", [True, False])
def test_sse_pieces_equal_whole(crlf: bool) -> None:
    raw = _sse_bytes(_stream_docs(), crlf=crlf) + b": keep-alive comment\n\n"
    whole = SSEParser()
    expected = whole.feed(raw) + whole.close()
    assert len(expected) == 3
    rng = random.Random(42)
    for _ in range(30):
        p = SSEParser()
        got: list[str] = []
        i = 0
        while i < len(raw):
            n = rng.choice([1, 2, 3, 7, 64, 1000])
            got += p.feed(raw[i : i + n])
            i += n
        got += p.close()
        assert got == expected


def test_sse_final_event_without_blank_line_counts() -> None:
    p = SSEParser()
    assert p.feed(b'data: {"a": 1}') == []
    assert p.close() == ['{"a": 1}']


def test_stream_milestones_and_result() -> None:
    state = StreamState()
    for i, doc in enumerate(_stream_docs()):
        GEMINI.observe_event(state, doc, float(i))
    parsed = GEMINI.finish_stream(state)
    assert (state.first_thought_s, state.first_interim_image_s, state.final_image_s) == (0.0, 1.0, 2.0)
    assert parsed.image_b64 == _stream_docs()[2]["candidates"][0]["content"]["parts"][0]["inlineData"]["data"]


def test_mid_stream_error_is_bad_payload() -> None:
    state = StreamState()
    GEMINI.observe_event(state, _stream_docs()[0], 0.0)
    with pytest.raises(BadPayload, match="stream event carried an error"):
        GEMINI.observe_event(state, {"error": {"code": 503, "message": "overloaded"}}, 1.0)


def test_empty_stream_is_bad_payload() -> None:
    with pytest.raises(BadPayload):
        GEMINI.finish_stream(StreamState())


def test_sse_invalid_utf8_is_bad_payload() -> None:
    with pytest.raises(BadPayload):
        SSEParser().feed(b"data: \xff\xfe\n\n")


# ----------------------------------------------------------------- errors and delays
def _err(status: int, body: dict | None = None, headers: dict | None = None):
    return GEMINI.classify_error(status, headers or {}, json.dumps(body).encode() if body else b"")


def test_classify_statuses() -> None:
    assert _err(429).kind == "rate_limited"
    assert _err(503).kind == "overloaded"
    assert _err(500).kind == "server_error" and _err(502).kind == "server_error"
    assert _err(504).kind == "server_timeout" and _err(408).kind == "server_timeout"
    assert _err(404).kind == "not_found" and _err(403).kind == "auth"
    assert _err(400).kind == "invalid_request"
    bad_key = {
        "error": {
            "code": 400,
            "message": "API key not valid. Please pass a valid API key.",
            "details": [{"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": "API_KEY_INVALID"}],
        }
    }
    assert _err(400, bad_key).kind == "auth"
    assert _err(503, headers={"x-should-retry": "false"}).kind == "do_not_retry"


def test_per_day_quota_and_retry_info() -> None:
    body = {
        "error": {
            "code": 429,
            "status": "RESOURCE_EXHAUSTED",
            "message": "Please retry in 26.66s.",
            "details": [
                {
                    "@type": "type.googleapis.com/google.rpc.QuotaFailure",
                    "violations": [{"quotaId": "GenerateRequestsPerDayPerProjectPerModel"}],
                },
                {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "26.66s"},
            ],
        }
    }
    info = _err(429, body)
    assert info.kind == "quota_daily"
    assert (info.retry_delay_s, info.retry_delay_source) == (26.66, "retry-info")
    exc = info.to_exception()
    assert exc.daily and exc.status_code == 429


def test_delay_sources_in_order() -> None:
    details = [{"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "9s"}]
    assert server_retry_delay({"retry-after-ms": "1500", "retry-after": "3"}, details) == (1.5, "retry-after-ms")
    assert server_retry_delay({"retry-after": "3"}, details) == (3.0, "retry-after")
    assert server_retry_delay({}, details) == (9.0, "retry-info")
    assert server_retry_delay({"retry-after": "soon"}, []) == (None, None)
    delay, source = server_retry_delay({"retry-after": "Wed, 21 Oct 2015 07:28:00 GMT"})
    assert source == "retry-after" and delay == 0.0  # a date in the past means "now"


# ----------------------------------------------------------------- cost
def test_estimate_cost_from_table() -> None:
    assert estimate_cost("gemini", "gemini-3-pro-image-preview", ImageSpec(resolution="1K")) == 0.134
    assert estimate_cost("gemini", "gemini-3-pro-image-preview", ImageSpec(resolution="4K")) == 0.24
    assert estimate_cost("relay", "anything", ImageSpec(resolution="4K")) == 0.05


def test_attempt_cost_from_usage() -> None:
    spec = ImageSpec(resolution="2K")
    usage = Usage(prompt_tokens=1000, output_tokens=1130, thoughts_tokens=200, image_tokens=1120)
    expected = (1000 * 2.0 + 1120 * 120.0 + (10 + 200) * 12.0) / 1e6
    assert attempt_cost("gemini", spec.model, spec, usage) == pytest.approx(expected)
    assert attempt_cost("gemini", spec.model, spec, None) == 0.134
    assert attempt_cost("relay", spec.model, spec, usage) == 0.05


def test_sse_large_event_in_small_chunks_is_linear(monkeypatch) -> None:
    # a 4K image arrives as one multi-megabyte event in many small chunks; rescanning the
    # buffer on every chunk (quadratic) took seconds. Count the bytes the parser's searches
    # walk over: a linear parser looks at each byte a bounded number of times.
    import nbp_kit.providers.sse as parsing

    scanned = [0]
    original = parsing._find

    def counting_find(buf, sep, start, none):
        i = original(buf, sep, start, none)
        scanned[0] += (i if i != none else len(buf)) - start
        return i

    monkeypatch.setattr(parsing, "_find", counting_find)
    event = b"data: " + json.dumps({"x": "A" * 3_000_000}).encode() + b"\r\n\r\n"
    p = SSEParser()
    got: list[str] = []
    for i in range(0, len(event), 4096):
        got += p.feed(event[i : i + 4096])
    assert len(got) == 1 and len(got[0]) > 3_000_000
    # two searches (LF and CR) over each new byte; a rescan per chunk would be ~700 x the event
    assert scanned[0] <= 3 * len(event), scanned[0] / len(event)


# --------------------------------------------------------------------------- lifted image data
def _gemini_body(parts: list[dict]) -> bytes:
    import json as _json

    return _json.dumps(
        {
            "candidates": [{"content": {"parts": parts}, "finishReason": "STOP"}],
            "usageMetadata": {"candidatesTokenCount": 1120},
        }
    ).encode()


def _as_text(value: object) -> str:
    return bytes(value).decode() if isinstance(value, memoryview) else str(value)


@pytest.mark.parametrize("body_type", [bytes, bytearray])
def test_large_image_is_lifted_without_a_str_copy_and_parses_the_same(body_type: type) -> None:
    from nbp_kit.providers.gemini import _parse_gemini_doc, parse_gemini_body

    b64 = "QUJD" * 50_000
    body = body_type(_gemini_body([{"text": "a caption"}, {"inlineData": {"mimeType": "image/png", "data": b64}}]))
    lifted = parse_gemini_body(body)
    whole = _parse_gemini_doc(body)
    assert isinstance(lifted.image_b64, memoryview)  # a view into the body, not a second copy
    assert _as_text(lifted.image_b64) == whole.image_b64 == b64
    assert (lifted.text, lifted.mime, lifted.usage) == (whole.text, whole.mime, whole.usage)


def test_lift_falls_back_when_the_largest_value_is_not_the_final_image() -> None:
    from nbp_kit.providers.gemini import parse_gemini_body

    thought, final = "VEhPVUdIVA==" * 20_000, "RklOQUw=" * 10_000  # the thought image is larger
    body = _gemini_body(
        [
            {"inlineData": {"mimeType": "image/png", "data": thought}, "thought": True},
            {"inlineData": {"mimeType": "image/png", "data": final}},
        ]
    )
    assert _as_text(parse_gemini_body(body).image_b64) == final


def test_lift_skips_escaped_values_and_errors_read_as_before() -> None:
    from nbp_kit.providers.base import lift_image_data
    from nbp_kit.providers.gemini import parse_gemini_body
    from nbp_kit.providers.relay import parse_relay_body

    escaped = b'{"data": "' + b"AB\\/" * 20_000 + b'"}'
    assert lift_image_data(escaped) is None
    big = "QUJD" * 50_000
    with pytest.raises(BadPayload, match="not valid JSON"):
        parse_gemini_body(_gemini_body([{"inlineData": {"data": big}}])[:-5])  # truncated
    relay = parse_relay_body(b'{"data": [{"b64_json": "' + big.encode() + b'"}]}')
    assert _as_text(relay.image_b64) == big


def test_decode_base64_takes_a_view_with_or_without_whitespace() -> None:
    from nbp_kit.client.images import decode_base64

    assert decode_base64(memoryview(b"xxQUJDxx")[2:6]) == b"ABC"
    assert decode_base64(memoryview(b"QU\nJD")) == b"ABC"
    with pytest.raises(BadPayload):
        decode_base64(memoryview(b"QU*D"))
