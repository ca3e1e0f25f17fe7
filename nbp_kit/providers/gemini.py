"""Google's native Gemini API: ``generateContent`` and ``streamGenerateContent?alt=sse``."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

from ..errors import BadPayload, ContentBlocked, RequestFailed
from ..spec import ImageSpec
from .base import (
    ParsedImage,
    Provider,
    Usage,
    WireRequest,
    as_object,
    int_or_none,
    load_json,
    parse_lifted,
    raise_error_in_body,
)

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
    model_parts: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    finish_message: str | None = None


# --------------------------------------------------------------------------- Gemini answers
def observe_gemini_event(state: StreamState, doc: Any, elapsed_s: float) -> None:
    """Fold one Gemini response (or SSE event) into ``state``; stamp milestones.

    >>> state = StreamState()
    >>> observe_gemini_event(state, {"candidates": [{"finishReason": "STOP"}]}, 0.5)
    >>> state.finish_reason
    'STOP'
    """
    doc = as_object(doc, "response")
    raise_error_in_body(doc, where="stream event" if state.events else "response")
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
        cand = as_object(cand, "candidate")
        if cand.get("finishReason"):
            state.finish_reason = str(cand["finishReason"])
        if isinstance(cand.get("finishMessage"), str):
            state.finish_message = cand["finishMessage"][:300]
        content = cand.get("content")
        if content is None:
            continue
        parts = as_object(content, "candidate content").get("parts") or []
        if not isinstance(parts, list):
            raise BadPayload("content.parts is not a list", kind="bad_payload")
        for part in parts:
            part = as_object(part, "content part")
            thought = part.get("thought") is True
            if not thought:
                state.model_parts.append(part)
            inline = part.get("inlineData")
            if thought and state.first_thought_s is None:
                state.first_thought_s = elapsed_s
            if inline is not None:
                inline = as_object(inline, "inlineData")
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


def finish_gemini_stream(state: StreamState) -> ParsedImage:
    """The final image of a Gemini answer, or the reason there is none.

    >>> finish_gemini_stream(StreamState())  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    nbp_kit.errors.BadPayload: stream ended without any event
    """
    if state.events == 0:
        raise BadPayload("stream ended without any event", kind="bad_payload")
    usage = _gemini_usage(state.usage_doc)
    if state.final_part is None:
        raise _no_image(state, usage)
    return ParsedImage(
        image_b64=state.final_part["data"],
        mime=str(state.final_part.get("mimeType") or "") or None,
        text="".join(state.text),
        usage=usage,
        response_id=state.response_id,
        model_version=state.model_version,
        finish_reason=state.finish_reason,
        model_parts=tuple(state.model_parts),
    )


def _no_image(state: StreamState, usage: Usage | None) -> RequestFailed:
    """Why there is no image; a refusal carries the usage the service billed with it."""
    reason = state.finish_reason
    kind = _NO_IMAGE_FINISHES.get(reason or "", None)
    exc: RequestFailed
    if state.block_reason:
        exc = ContentBlocked(f"prompt blocked: blockReason={state.block_reason}", kind="safety_block")
    elif kind is not None:
        message = f" ({state.finish_message})" if state.finish_message else ""
        exc = ContentBlocked(f"no image: finishReason={reason}{message}", kind=kind)
    elif reason is None:
        return BadPayload("response ended without an image or a finishReason (truncated?)", kind="bad_payload")
    else:
        exc = ContentBlocked(f"no image in the response (finishReason={reason})", kind="no_image")
    exc.usage = usage
    return exc


def parse_gemini_body(body: bytes | bytearray) -> ParsedImage:
    """A whole (unary) ``generateContent`` answer: one event, then the result."""
    return parse_lifted(body, _parse_gemini_doc)


def _parse_gemini_doc(body: bytes | bytearray) -> ParsedImage:
    doc = as_object(load_json(body), "response body")
    raise_error_in_body(doc, where="HTTP 200 response")
    state = StreamState()
    observe_gemini_event(state, doc, 0.0)
    return finish_gemini_stream(state)


def _gemini_usage(doc: dict[str, Any] | None) -> Usage | None:
    if not isinstance(doc, dict):
        return None
    image_tokens = None
    details = doc.get("candidatesTokensDetails")
    if isinstance(details, list):
        for d in details:
            if isinstance(d, dict) and d.get("modality") == "IMAGE":
                image_tokens = (image_tokens or 0) + (int_or_none(d.get("tokenCount")) or 0)
    return Usage(
        prompt_tokens=int_or_none(doc.get("promptTokenCount")),
        output_tokens=int_or_none(doc.get("candidatesTokenCount")),
        thoughts_tokens=int_or_none(doc.get("thoughtsTokenCount")),
        image_tokens=image_tokens,
    )


class GeminiProvider(Provider):
    """Native Gemini API (``generateContent`` / ``streamGenerateContent?alt=sse``)."""

    name = "gemini"
    key_env = "GEMINI_API_KEY"
    default_base_url = "https://generativelanguage.googleapis.com"
    models_path = "/v1beta/models"

    def auth_headers(self, api_key: str) -> dict[str, str]:
        return {"x-goog-api-key": api_key}

    def build_request(
        self,
        prompt: str,
        spec: ImageSpec,
        *,
        seed: int | None = None,
        stream: bool = False,
        images: Sequence[Any] = (),
        history: Sequence[dict[str, Any]] = (),
    ) -> WireRequest:
        """``images`` are :class:`~nbp_kit.client.inputs.InputImage` values sent inline after the
        prompt; ``history`` is the earlier turns' contents, replayed as they were (signatures kept)."""
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
        parts: list[dict[str, Any]] = [{"text": prompt}, *(img.part() for img in images)]
        body = {"contents": [*history, {"role": "user", "parts": parts}], "generationConfig": gen}
        if stream:
            return WireRequest("POST", f"/v1beta/models/{spec.model}:streamGenerateContent", body, {"alt": "sse"}, True)
        return WireRequest("POST", f"/v1beta/models/{spec.model}:generateContent", body)

    def parse_body(self, body: bytes | bytearray, spec: ImageSpec | None = None) -> ParsedImage:
        return parse_gemini_body(body)

    # streaming: the client feeds SSE events, then asks for the result
    def observe_event(self, state: StreamState, doc: Any, elapsed_s: float) -> None:
        """Fold one response (or SSE event) into ``state``; stamp milestones."""
        observe_gemini_event(state, doc, elapsed_s)

    def finish_stream(self, state: StreamState) -> ParsedImage:
        """The final image, or the reason there is none."""
        return finish_gemini_stream(state)
