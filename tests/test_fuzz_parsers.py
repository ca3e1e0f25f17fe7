"""Hypothesis on the response parsers (nbp_kit.providers): Gemini JSON, SSE framing, relay JSON.

Properties:
- whatever bytes or JSON a server sends, parsing either returns a result or raises one of
  nbp_kit's own errors (``BadPayload`` / ``ContentBlocked``, both ``RequestFailed``); never a
  ``KeyError``, ``TypeError``, ``AttributeError``, ``UnicodeDecodeError``, ...;
- SSE bytes fed whole, byte by byte, or cut at random points give the same events, and the
  same final result (or the same error kind) through the client's stream path.
Examples are bounded (``max_examples``, no deadline) so the module runs in well under 60 s.
Hand-written SSE cases live in test_providers.py; these add the generated ones.
"""

from __future__ import annotations

import json
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from nbp_kit.errors import BadPayload, ContentBlocked, RequestFailed
from nbp_kit.providers.base import ParsedImage, load_json
from nbp_kit.providers.gemini import StreamState
from nbp_kit.providers.registry import get_provider
from nbp_kit.providers.sse import SSEParser

GEMINI = get_provider("gemini")
RELAY = get_provider("relay")
FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# --------------------------------------------------------------------------- strategies
_scalars = st.one_of(
    st.none(), st.booleans(), st.integers(-(2**40), 2**40), st.floats(allow_nan=False), st.text(max_size=12)
)
_json = st.recursive(
    _scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=8), inner, max_size=3)),
    max_leaves=12,
)
_B64 = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR4nGNgYGD4DwABBAEAwS2OUAAAAABJRU5ErkJggg=="


def _maybe(value: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """A field that is right, missing-ish, or of a wrong type."""
    return st.one_of(value, _json)


_part = st.fixed_dictionaries(
    {},
    optional={
        "text": _maybe(st.text(max_size=20)),
        "thought": _maybe(st.booleans()),
        "inlineData": _maybe(
            st.fixed_dictionaries(
                {}, optional={"mimeType": _maybe(st.just("image/png")), "data": _maybe(st.just(_B64))}
            )
        ),
    },
)
_candidate = st.fixed_dictionaries(
    {},
    optional={
        "content": _maybe(
            st.fixed_dictionaries(
                {}, optional={"parts": _maybe(st.lists(_maybe(_part), max_size=3)), "role": st.just("model")}
            )
        ),
        "finishReason": _maybe(st.sampled_from(["STOP", "IMAGE_SAFETY", "NO_IMAGE", "IMAGE_OTHER", "SAFETY", "OTHER"])),
    },
)
_usage = st.fixed_dictionaries(
    {},
    optional={
        k: _maybe(st.integers(0, 10**6))
        for k in ("promptTokenCount", "candidatesTokenCount", "thoughtsTokenCount", "totalTokenCount")
    }
    | {
        "candidatesTokensDetails": _maybe(
            st.lists(
                st.fixed_dictionaries(
                    {"modality": _maybe(st.sampled_from(["IMAGE", "TEXT"])), "tokenCount": _maybe(st.integers(0, 5000))}
                ),
                max_size=2,
            )
        )
    },
)
gemini_docs = st.fixed_dictionaries(
    {},
    optional={
        "candidates": _maybe(st.lists(_maybe(_candidate), max_size=2)),
        "promptFeedback": _maybe(st.fixed_dictionaries({}, optional={"blockReason": _maybe(st.just("SAFETY"))})),
        "usageMetadata": _maybe(_usage),
        "modelVersion": _maybe(st.text(max_size=10)),
        "responseId": _maybe(st.text(max_size=10)),
        "error": st.one_of(_json, st.fixed_dictionaries({"code": _json, "message": _json})),
    },
)
relay_docs = st.fixed_dictionaries(
    {},
    optional={
        "data": _maybe(
            st.lists(
                _maybe(
                    st.fixed_dictionaries(
                        {},
                        optional={
                            "b64_json": _maybe(st.just(_B64)),
                            "url": _maybe(
                                st.sampled_from(["/v1/files/x.png", "https://cdn/x.png", "javascript:alert(1)", ""])
                            ),
                            "revised_prompt": _maybe(st.text(max_size=10)),
                        },
                    )
                ),
                max_size=2,
            )
        ),
        "usage": _maybe(
            st.fixed_dictionaries(
                {},
                optional={
                    "input_tokens": _maybe(st.integers(0, 10**6)),
                    "output_tokens": _maybe(st.integers(0, 10**6)),
                    "output_tokens_details": _maybe(
                        st.fixed_dictionaries({}, optional={"image_tokens": _maybe(st.integers())})
                    ),
                },
            )
        ),
        "created": _maybe(st.integers()),
        "id": _json,
        "model": _json,
        "error": _json,
    },
)


def _outcome(fn: Any, *args: Any) -> tuple[str, Any]:
    """("ok", result) or ("error", kind); anything but nbp_kit's own errors fails the test."""
    try:
        result = fn(*args)
    except (BadPayload, ContentBlocked) as exc:
        assert isinstance(exc, RequestFailed) and exc.kind in ("bad_payload", "wrong_image", "safety_block", "no_image")
        return "error", exc.kind
    assert isinstance(result, ParsedImage)
    return "ok", result


# --------------------------------------------------------------------------- Gemini / relay JSON
@FUZZ
@given(doc=gemini_docs)
def test_gemini_json_only_raises_nbp_errors(doc: dict[str, Any]) -> None:
    _outcome(GEMINI.parse_body, json.dumps(doc).encode())


@FUZZ
@given(doc=relay_docs)
def test_relay_json_only_raises_nbp_errors(doc: dict[str, Any]) -> None:
    _outcome(RELAY.parse_body, json.dumps(doc).encode())


@FUZZ
@given(
    body=st.one_of(
        st.binary(max_size=300), _json.map(lambda v: json.dumps(v).encode()), st.text(max_size=200).map(str.encode)
    )
)
def test_arbitrary_bodies_only_raise_nbp_errors(body: bytes) -> None:
    _outcome(GEMINI.parse_body, body)
    _outcome(RELAY.parse_body, body)


@FUZZ
@given(
    status=st.integers(100, 599),
    body=st.one_of(
        st.binary(max_size=200),
        _json.map(lambda v: json.dumps(v).encode()),
        st.builds(lambda e: json.dumps({"error": e}).encode(), _json),
    ),
    headers=st.dictionaries(
        st.sampled_from(["retry-after", "retry-after-ms", "x-should-retry"]), st.text(max_size=30), max_size=3
    ),
)
def test_error_classification_never_crashes(status: int, body: bytes, headers: dict[str, str]) -> None:
    for provider in (GEMINI, RELAY):
        info = provider.classify_error(status, headers, body)
        exc = info.to_exception()
        assert isinstance(exc, RequestFailed) and info.status_code == status
        assert info.retry_delay_s is None or info.retry_delay_s >= 0


# --------------------------------------------------------------------------- SSE framing
def _cut(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts})
    pieces, last = [], 0
    for p in points:
        pieces.append(data[last:p])
        last = p
    pieces.append(data[last:])
    return pieces


def _events(pieces: list[bytes]) -> tuple[str, Any]:
    parser = SSEParser()
    out: list[str] = []
    try:
        for piece in pieces:
            out += parser.feed(piece)
        out += parser.close()
    except BadPayload as exc:
        return "error", exc.kind
    return "ok", out


_line_end = st.sampled_from([b"\n", b"\r\n", b"\r"])
_event = st.lists(
    st.text(alphabet=st.characters(blacklist_characters="\r\n", blacklist_categories=("Cs",)), max_size=30),
    min_size=1,
    max_size=3,
)


@st.composite
def sse_streams(draw: Any) -> tuple[bytes, list[str]]:
    """A well-formed stream and the events it carries (data lines joined with \\n)."""
    events = draw(st.lists(_event, max_size=5))
    end = draw(_line_end)  # one style per stream: a CR then an LF would be one CRLF
    out = b""
    expected = []
    for lines in events:
        if draw(st.booleans()):
            out += b": keep-alive" + end
        values = []
        for line in lines:
            sep = b"data: " if draw(st.booleans()) else b"data:"
            out += sep + line.encode() + end
            # the spec strips exactly one space after "data:": with the bare "data:" separator a
            # value that starts with a space loses that space
            values.append(line[1:] if sep == b"data:" and line.startswith(" ") else line)
        if draw(st.booleans()):
            out += b"event: message" + end
        out += end
        expected.append("\n".join(values))
    return out, expected


@FUZZ
@given(stream=sse_streams(), cuts=st.lists(st.integers(0, 10_000), max_size=8))
def test_sse_whole_bytewise_and_random_pieces_agree(stream: tuple[bytes, list[str]], cuts: list[int]) -> None:
    data, expected = stream
    whole = _events([data])
    assert whole == _events([data[i : i + 1] for i in range(len(data))])
    assert whole == _events(_cut(data, cuts))
    assert whole[0] == "ok"
    assert whole[1] == expected


@FUZZ
@given(data=st.binary(max_size=400), cuts=st.lists(st.integers(0, 10_000), max_size=8))
def test_sse_arbitrary_bytes_agree_and_only_raise_bad_payload(data: bytes, cuts: list[int]) -> None:
    whole = _events([data])
    assert whole == _events(_cut(data, cuts))
    assert whole == _events([data[i : i + 1] for i in range(len(data))])


def _stream_result(pieces: list[bytes]) -> tuple[str, Any]:
    """The client's stream path (_attempt._read_stream) without the network."""

    def run() -> ParsedImage:
        parser, state = SSEParser(), StreamState()
        for piece in pieces:
            for data in parser.feed(piece):
                GEMINI.observe_event(state, load_json(data, what="stream event"), 0.0)
        for data in parser.close():
            GEMINI.observe_event(state, load_json(data, what="stream event"), 0.0)
        return GEMINI.finish_stream(state)

    kind, value = _outcome(run)
    return (kind, (value.image_b64, value.finish_reason, value.usage)) if kind == "ok" else (kind, value)


@FUZZ
@given(
    docs=st.lists(gemini_docs, min_size=0, max_size=4),
    crlf=st.booleans(),
    cuts=st.lists(st.integers(0, 10**5), max_size=6),
)
def test_gemini_stream_whole_or_in_pieces_gives_the_same_result(
    docs: list[dict[str, Any]], crlf: bool, cuts: list[int]
) -> None:
    end = b"\r\n" if crlf else b"\n"
    data = b"".join(b"data: " + json.dumps(d).encode() + end + end for d in docs)
    whole = _stream_result([data])
    assert whole == _stream_result(_cut(data, cuts))
    if len(data) < 3000:
        assert whole == _stream_result([data[i : i + 1] for i in range(len(data))])


def test_relay_content_policy_400_is_a_safety_block() -> None:
    """Regression found by the fault matrix: a relay's 400 content_policy_violation was an
    'invalid_request' APIError; it is the relay's safety block."""
    body = json.dumps(
        {
            "error": {
                "message": "Your request was rejected by the safety system.",
                "type": "invalid_request_error",
                "param": None,
                "code": "content_policy_violation",
            }
        }
    ).encode()
    info = RELAY.classify_error(400, {}, body)
    assert info.kind == "safety_block"
    exc = info.to_exception()
    assert isinstance(exc, ContentBlocked) and not exc.retryable
