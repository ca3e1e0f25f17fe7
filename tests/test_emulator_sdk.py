"""The official SDKs cannot tell the emulator from the service (except by speed)."""

from __future__ import annotations

import base64
import io

import httpx2 as httpx
import pytest
from PIL import Image

from nbp_kit.spec import PIXEL_TABLE


def _png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    return _image_size(data)


def _jpeg_size(data: bytes) -> tuple[int, int]:
    """The Pro models answer JPEG, as the real service does."""
    assert data[:3] == b"\xff\xd8\xff"
    return _image_size(data)


def _image_size(data: bytes) -> tuple[int, int]:
    img = Image.open(io.BytesIO(data))
    img.load()
    return img.size


@pytest.mark.parametrize(("aspect", "size"), [("1:1", "1K"), ("16:9", "2K"), ("9:16", "1K")])
def test_google_genai_generate_content_decodes_jpeg_of_exact_size(emulator, aspect, size):
    from google import genai
    from google.genai import types

    client = genai.Client(
        api_key=emulator.api_key, http_options=types.HttpOptions(base_url=emulator.base_url, api_version="v1beta")
    )
    resp = client.models.generate_content(
        model="gemini-3-pro-image-preview",
        contents="an orange cat on a window sill",
        config=types.GenerateContentConfig(
            response_modalities=["IMAGE"],
            image_config=types.ImageConfig(aspect_ratio=aspect, image_size=size),
        ),
    )
    parts = [p for p in resp.candidates[0].content.parts if p.inline_data is not None]
    assert len(parts) == 1
    assert parts[0].inline_data.mime_type == "image/jpeg"
    assert _jpeg_size(parts[0].inline_data.data) == PIXEL_TABLE[aspect][size]
    assert resp.candidates[0].finish_reason == types.FinishReason.STOP
    assert resp.usage_metadata.candidates_token_count == 1120


def test_google_genai_stream_with_thoughts(emulator):
    from google import genai
    from google.genai import types

    client = genai.Client(
        api_key=emulator.api_key, http_options=types.HttpOptions(base_url=emulator.base_url, api_version="v1beta")
    )
    chunks = list(
        client.models.generate_content_stream(
            model="gemini-3-pro-image-preview",
            contents="a lighthouse at dawn",
            config=types.GenerateContentConfig(
                response_modalities=["TEXT", "IMAGE"],
                image_config=types.ImageConfig(aspect_ratio="4:3", image_size="1K"),
                thinking_config=types.ThinkingConfig(include_thoughts=True),
            ),
        )
    )
    parts = [p for c in chunks for p in c.candidates[0].content.parts]
    thoughts = [p for p in parts if p.thought]
    finals = [p for p in parts if p.inline_data is not None and not p.thought]
    assert any(p.text for p in thoughts), "thought text comes first"
    assert len(finals) == 1
    assert _jpeg_size(finals[0].inline_data.data) == PIXEL_TABLE["4:3"]["1K"]
    assert chunks[-1].candidates[0].finish_reason == types.FinishReason.STOP
    assert all(c.candidates[0].finish_reason is None for c in chunks[:-1])
    # as the real stream: the image event, then "" + STOP reporting fewer thoughts (not cumulative)
    assert [p.text for p in chunks[-1].candidates[0].content.parts] == [""]
    assert chunks[-1].usage_metadata.thoughts_token_count < chunks[-2].usage_metadata.thoughts_token_count


def test_openai_images_generate_b64_and_url(emulator):
    from openai import OpenAI

    client = OpenAI(api_key=emulator.api_key, base_url=emulator.base_url + "/v1", max_retries=0)
    resp = client.images.generate(
        model="gemini-3-pro-image-preview", prompt="a red bicycle", size="2048x2048", response_format="b64_json"
    )
    assert _jpeg_size(base64.b64decode(resp.data[0].b64_json)) == (2048, 2048)
    resp = client.images.generate(
        model="gemini-3-pro-image-preview",
        prompt="a red bicycle",
        size="1376x768",
        response_format="url",
        extra_body={"thinking_level": "high"},
    )
    png = httpx.get(resp.data[0].url).content
    assert _jpeg_size(png) == (1376, 768)


def test_emulator_fixture_reports_time_scale(emulator):
    r = httpx.get(emulator.base_url + "/v1beta/models", headers={"x-goog-api-key": emulator.api_key})
    assert r.status_code == 200
    assert r.headers["x-emulator-time-scale"] == "0.02"
    assert r.headers["x-emulator-clock"] == "scaled"
    assert "gemini-3-pro-image-preview" in {m["name"].split("/")[1] for m in r.json()["models"]}


def test_stream_thought_images_are_marked_and_spaced(emulator):
    """0-2 interim thought images (fixed per prompt and seed) come before the final image."""
    import json

    seen = set()
    for seed in range(8):
        body = {
            "contents": [{"parts": [{"text": "a harbour"}]}],
            "generationConfig": {
                "responseModalities": ["IMAGE"],
                "seed": seed,
                "thinkingConfig": {"includeThoughts": True},
                "imageConfig": {"aspectRatio": "1:1", "imageSize": "1K"},
            },
        }
        r = httpx.post(
            emulator.base_url + "/v1beta/models/gemini-3-pro-image-preview:streamGenerateContent?alt=sse",
            json=body,
            headers={"x-goog-api-key": "k"},
            timeout=30,
        )
        assert r.text.endswith("\r\n\r\n")
        events = [json.loads(e[len("data: ") :]) for e in r.text.split("\r\n\r\n") if e]
        parts = [p for ev in events for p in ev["candidates"][0]["content"]["parts"]]
        thought_images = [p for p in parts if p.get("thought") and "inlineData" in p]
        final = [p for p in parts if not p.get("thought") and "inlineData" in p]
        assert len(final) == 1 and "thoughtSignature" in final[0]
        assert parts[-2] is final[0] and parts[-1] == {"text": ""}
        assert all(_jpeg_size(base64.b64decode(p["inlineData"]["data"])) == (1024, 1024) for p in thought_images)
        seen.add(len(thought_images))
        # thought images are not billed: image tokens only on the image event and the STOP after it
        assert all("candidatesTokensDetails" not in ev["usageMetadata"] for ev in events[:-2])
    assert seen <= {0, 1, 2} and len(seen) >= 2
