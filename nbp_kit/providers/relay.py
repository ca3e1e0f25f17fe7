"""OpenAI-compatible relays: ``POST {base}/v1/images/generations``."""

from __future__ import annotations

from typing import Any

from ..errors import BadPayload
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


# --------------------------------------------------------------------------- relay answers
def parse_relay_body(body: bytes | bytearray) -> ParsedImage:
    """An OpenAI-style ``images/generations`` answer: ``data[0].b64_json`` or ``.url``.

    >>> parse_relay_body(b'{"data": [{"url": "https://cdn.example/x.png"}]}').image_url
    'https://cdn.example/x.png'
    """
    return parse_lifted(body, _parse_relay_doc)


def _parse_relay_doc(body: bytes | bytearray) -> ParsedImage:
    doc = as_object(load_json(body), "response body")
    raise_error_in_body(doc, where="HTTP 200 response")
    data = doc.get("data")
    if not isinstance(data, list) or not data:
        raise BadPayload("relay response has no data[] entries", kind="bad_payload")
    item = as_object(data[0], "data[0]")
    b64, url = item.get("b64_json"), item.get("url")
    if not isinstance(b64, str) and not isinstance(url, str):
        raise BadPayload("data[0] has neither b64_json nor url", kind="bad_payload")
    if isinstance(url, str) and not url.startswith(("http://", "https://", "/")):
        raise BadPayload(f"data[0].url is not an http(s) URL: {url[:80]!r}", kind="bad_payload")
    usage_doc = doc.get("usage") if isinstance(doc.get("usage"), dict) else None
    usage = None
    if usage_doc is not None:
        out_details = usage_doc.get("output_tokens_details")
        usage = Usage(
            prompt_tokens=int_or_none(usage_doc.get("input_tokens", usage_doc.get("prompt_tokens"))),
            output_tokens=int_or_none(usage_doc.get("output_tokens", usage_doc.get("completion_tokens"))),
            image_tokens=int_or_none(out_details.get("image_tokens")) if isinstance(out_details, dict) else None,
        )
    rid = doc.get("id")
    return ParsedImage(
        image_b64=b64 if isinstance(b64, str) else None,
        image_url=url if isinstance(url, str) and not isinstance(b64, str) else None,
        mime=None,
        usage=usage,
        response_id=str(rid) if isinstance(rid, (str, int)) else None,
        model_version=str(doc["model"]) if isinstance(doc.get("model"), str) else None,
    )


#: OpenAI's gpt-image models always answer base64 and reject ``response_format`` with a 400
#: ("Unknown parameter: 'response_format'."), so it is not sent to them.
_NO_RESPONSE_FORMAT = ("gpt-image",)


class RelayProvider(Provider):
    """OpenAI-compatible relay: ``POST {base}/v1/images/generations``."""

    name = "relay"
    key_env = "NBP_KIT_RELAY_KEY"
    base_url_env = "NBP_KIT_RELAY_BASE_URL"

    def auth_headers(self, api_key: str) -> dict[str, str]:
        return {"authorization": f"Bearer {api_key}"}

    def build_request(
        self, prompt: str, spec: ImageSpec, *, seed: int | None = None, stream: bool = False
    ) -> WireRequest:
        w, h = spec.pixel_size
        body: dict[str, Any] = {
            "model": spec.model,
            "prompt": prompt,
            "n": 1,
            "size": f"{w}x{h}",
            "aspect_ratio": spec.aspect_ratio,
            "image_size": spec.resolution,
        }
        if not spec.model.startswith(_NO_RESPONSE_FORMAT):
            body["response_format"] = spec.output_format
        if spec.thinking_level is not None:
            body["thinking_level"] = spec.thinking_level
        if spec.grid != "1x1":
            body["grid"] = spec.grid
        if seed is not None:
            body["seed"] = int(seed)
        return WireRequest("POST", "/v1/images/generations", body)

    def parse_body(self, body: bytes | bytearray, spec: ImageSpec | None = None) -> ParsedImage:
        return parse_relay_body(body)
