"""Auth and validation give the real services' documented error bodies."""

from __future__ import annotations

import httpx2 as httpx
import pytest

GEN = "/v1beta/models/{model}:generateContent"
PRO = "gemini-3-pro-image-preview"
FLASH = "gemini-3.1-flash-image-preview"


def _gen(emu, *, model=PRO, key="k", prompt="a cat", **cfg):
    body = {"contents": [{"parts": [{"text": prompt}]}], "generationConfig": {"responseModalities": ["IMAGE"], **cfg}}
    headers = {"x-goog-api-key": key} if key is not None else {}
    return httpx.post(emu.base_url + GEN.format(model=model), json=body, headers=headers, timeout=30)


def _relay(emu, key="k", **fields):
    body = {"model": PRO, "prompt": "a cat", "size": "1024x1024"} | fields
    headers = {"authorization": f"Bearer {key}"} if key is not None else {}
    return httpx.post(emu.base_url + "/v1/images/generations", json=body, headers=headers, timeout=30)


@pytest.mark.parametrize("key", [None, ""])
def test_gemini_missing_key(emulator, key):
    r = _gen(emulator, key=key)
    assert r.status_code == 400
    err = r.json()["error"]
    assert err["status"] == "INVALID_ARGUMENT"
    assert err["message"] == "API key not valid. Please pass a valid API key."
    assert any(d.get("reason") == "API_KEY_INVALID" for d in err["details"])


def test_wrong_key_when_one_is_configured(emulator_factory):
    emu = emulator_factory(profile="instant", api_key="the-right-key")
    assert emu.api_key == "the-right-key"
    assert _gen(emu, key="wrong-key").status_code == 400
    assert _gen(emu, key="the-right-key").status_code == 200
    r = _relay(emu, key="wrong-key")
    assert r.status_code == 401 and set(r.json()["error"]) == {"message", "type", "param", "code"}
    assert "the-right-key" not in r.text and "wrong-key" not in r.text
    assert _relay(emu, key=None).status_code == 401
    assert _relay(emu, key="the-right-key").status_code == 200


@pytest.mark.parametrize(
    ("image_config", "field"),
    [
        ({"aspectRatio": "7:5"}, "aspect_ratio"),
        ({"imageSize": "2k"}, "image_size"),
        ({"imageSize": "3K"}, "image_size"),
    ],
)
def test_gemini_bad_image_config(emulator, image_config, field):
    r = _gen(emulator, imageConfig=image_config)
    assert r.status_code == 400
    err = r.json()["error"]
    assert err["status"] == "INVALID_ARGUMENT"
    # as the real service: no details; the message names the field
    assert (
        "details" not in err and f"* GenerateContentRequest.generation_config.image_config.{field}:" in err["message"]
    )


def test_gemini_bad_modality(emulator):
    body = {"contents": [{"parts": [{"text": "x"}]}], "generationConfig": {"responseModalities": ["VIDEO"]}}
    r = httpx.post(emulator.base_url + GEN.format(model=PRO), json=body, headers={"x-goog-api-key": "k"})
    assert r.status_code == 400 and "response_modalities" in r.json()["error"]["message"]


def test_gemini_unknown_model_is_404(emulator):
    r = _gen(emulator, model="gemini-9-ultra-image")
    assert r.status_code == 404 and r.json()["error"]["status"] == "NOT_FOUND"


def test_pro_rejects_thinking_level_by_default(emulator):
    r = _gen(emulator, thinkingConfig={"thinkingLevel": "high"})
    assert r.status_code == 400
    assert r.json()["error"]["message"] == "Thinking level is not supported for this model."


def test_flash_honours_minimal_and_high_only(emulator):
    assert _gen(emulator, model=FLASH, thinkingConfig={"thinkingLevel": "minimal"}).status_code == 200
    assert _gen(emulator, model=FLASH, thinkingConfig={"thinkingLevel": "high"}).status_code == 200
    assert _gen(emulator, model=FLASH, thinkingConfig={"thinkingLevel": "medium"}).status_code == 400


def test_thinking_policy_ignore_is_a_profile_setting(emulator_factory):
    from nbp_kit.emulator import load_profile

    profile = load_profile("instant")
    profile["models"][PRO] = profile["models"][PRO] | {"thinking": "ignore"}
    emu = emulator_factory(profile=profile)
    assert _gen(emu, thinkingConfig={"thinkingLevel": "high"}).status_code == 200


def test_relay_thinking_levels_and_bad_fields(emulator):
    for level in ("low", "medium", "high"):
        assert _relay(emulator, thinking_level=level).status_code == 200
    r = _relay(emulator, thinking_level="extreme")
    assert r.status_code == 400 and r.json()["error"]["param"] == "thinking_level"
    r = _relay(emulator, size="1000x1000")
    assert r.status_code == 400 and r.json()["error"]["param"] == "size"
    r = _relay(emulator, model="dall-e-9")
    assert r.status_code == 404 and r.json()["error"]["code"] == "model_not_found"


def test_relay_grid_and_aspect_fields_shape_the_image(emulator):
    import base64
    import io

    from PIL import Image

    r = _relay(emulator, size=None, aspect_ratio="16:9", image_size="2K", grid="2x2", seed=5)
    assert r.status_code == 200
    img = Image.open(io.BytesIO(base64.b64decode(r.json()["data"][0]["b64_json"])))
    assert img.size == (2752, 1536)
    # tiles differ: the four quadrant centres have different colours
    w, h = img.size
    rgb = img.convert("RGB")
    corners = {rgb.getpixel((int(w * x), int(h * y))) for x in (0.1, 0.6) for y in (0.05, 0.55)}
    assert len(corners) == 4


def test_images_are_deterministic_per_prompt_and_seed(emulator):
    a = _gen(emulator, prompt="same", seed=3).json()
    b = _gen(emulator, prompt="same", seed=3).json()
    c = _gen(emulator, prompt="same", seed=4).json()

    def data(j):
        return j["candidates"][0]["content"]["parts"][0]["inlineData"]["data"]

    assert data(a) == data(b) and data(a) != data(c)
