"""The Flex service tier on the emulator: a longer queue and 503 shedding, as profile data."""

from __future__ import annotations

import re

import httpx
from google import genai
from google.genai import types

from nbp_kit.emulator import load_profile

MODEL = "gemini-3-pro-image-preview"


def _profile(**flex):
    prof = load_profile("default")
    return {
        **prof,
        "faults": {},
        "overload": {},
        "latency": {**prof["latency"], "queue": {"mean_s": 0, "sigma": 0}},
        "flex": {"queue_median_s": 20, "queue_sigma": 0, "shed_prob_base": 0.0, "shed_prob_per_load": 0.0, **flex},
    }


def _queue_ms(resp):
    return float(re.search(r"queue;dur=([\d.]+)", resp.headers["server-timing"]).group(1))


def _body(tier=None):
    body = {"contents": [{"parts": [{"text": "a mug"}]}], "generationConfig": {"responseModalities": ["IMAGE"]}}
    if tier:
        body["serviceTier"] = tier
    return body


def test_sdk_flex_request_gets_an_image_after_a_longer_queue(emulator_factory):
    emu = emulator_factory(_profile(), time_scale=0.01)
    client = genai.Client(api_key="k", http_options=types.HttpOptions(base_url=emu.base_url, api_version="v1beta"))
    resp = client.models.generate_content(
        model=MODEL,
        contents="a mug",
        config=types.GenerateContentConfig(response_modalities=["IMAGE"], service_tier="flex"),
    )
    assert resp.candidates[0].content.parts[-1].inline_data.data[:3] == b"\xff\xd8\xff"  # JPEG, as the Pro model
    url = f"{emu.base_url}/v1beta/models/{MODEL}:generateContent"
    flex = httpx.post(url, json=_body("flex"), headers={"x-goog-api-key": "k"}, timeout=60)
    standard = httpx.post(url, json=_body(), headers={"x-goog-api-key": "k"}, timeout=60)
    assert flex.status_code == standard.status_code == 200
    assert _queue_ms(flex) >= 200 > _queue_ms(standard)  # 20 s x 0.01 added to the flex queue only


def test_flex_traffic_is_shed_with_503_as_the_profile_says(emulator_factory):
    emu = emulator_factory(_profile(shed_prob_base=1.0), time_scale=0.001, faults=True)
    url = f"{emu.base_url}/v1beta/models/{MODEL}:generateContent"
    flex = httpx.post(url, json=_body("flex"), headers={"x-goog-api-key": "k"}, timeout=60)
    assert flex.status_code == 503 and flex.json()["error"]["status"] == "UNAVAILABLE"
    standard = httpx.post(url, json=_body(), headers={"x-goog-api-key": "k"}, timeout=60)
    assert standard.status_code == 200


def test_unknown_service_tier_is_400(emulator_factory):
    emu = emulator_factory(_profile())
    resp = httpx.post(
        f"{emu.base_url}/v1beta/models/{MODEL}:generateContent", json=_body("cheap"), headers={"x-goog-api-key": "k"}
    )
    assert resp.status_code == 400
    # as the real service's 400s: no details, the field named in the message
    assert "service_tier" in resp.json()["error"]["message"]
