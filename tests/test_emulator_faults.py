"""Every fault kind, forced with ``x-emulator-fault``, is observable exactly as documented."""

from __future__ import annotations

import base64
import binascii
import io
import json
import time

import httpx2 as httpx
import pytest
from PIL import Image

from nbp_kit.emulator import FAULT_KINDS

GEN = "/v1beta/models/gemini-3-pro-image-preview:generateContent"
STREAM = "/v1beta/models/gemini-3-pro-image-preview:streamGenerateContent?alt=sse"
RELAY = "/v1/images/generations"
BODY = {
    "contents": [{"parts": [{"text": "a cat"}]}],
    "generationConfig": {"responseModalities": ["IMAGE"], "imageConfig": {"aspectRatio": "1:1", "imageSize": "1K"}},
}
RELAY_BODY = {
    "model": "gemini-3-pro-image-preview",
    "prompt": "a cat",
    "size": "1024x1024",
    "response_format": "b64_json",
}


def _post(emu, fault, *, path=GEN, body=BODY, timeout=30.0, relay=False):
    headers = {"x-emulator-fault": fault}
    headers.update({"authorization": "Bearer k"} if relay else {"x-goog-api-key": "k"})
    return httpx.post(emu.base_url + path, json=body, headers=headers, timeout=timeout)


def _image_b64(resp_json):
    return resp_json["candidates"][0]["content"]["parts"][0]["inlineData"]["data"]


def test_every_fault_kind_is_tested_here():
    tested = {
        "429",
        "429-daily",
        "500",
        "503",
        "504",
        "reset",
        "truncated",
        "stall",
        "trickle",
        "bad-base64",
        "wrong-size",
        "html",
        "blocked",
        "image-safety",
        "no-image",
    }
    assert tested == set(FAULT_KINDS)


def test_429_gemini_retry_info_in_body_and_no_retry_after_header(emulator):
    r = _post(emulator, "429")
    assert r.status_code == 429 and "retry-after" not in r.headers
    err = r.json()["error"]
    assert err["status"] == "RESOURCE_EXHAUSTED"
    types = {d["@type"].rsplit(".", 1)[1]: d for d in err["details"]}
    delay = types["RetryInfo"]["retryDelay"]
    stated = err["message"].rsplit("Please retry in ", 1)[1].rstrip(".")
    # as the real service: RetryInfo rounded down to whole (modelled) seconds, the message exact
    assert delay.endswith("s") and stated.endswith("s") and 0 <= float(delay[:-1]) <= float(stated[:-1])
    assert float(stated[:-1]) - float(delay[:-1]) < 0.02 + 1e-9
    assert types["QuotaFailure"]["violations"][0]["quotaValue"] != "0"
    assert "PerDay" not in types["QuotaFailure"]["violations"][0]["quotaId"]
    # time_scale 0.02 shrinks the server's delay too (profile: 8-45 s)
    assert float(delay[:-1]) <= 45 * 0.02 + 0.01


def test_429_daily_has_a_per_day_quota_id(emulator):
    r = _post(emulator, "429-daily")
    assert r.status_code == 429
    details = {d["@type"].rsplit(".", 1)[1]: d for d in r.json()["error"]["details"]}
    assert "PerDay" in details["QuotaFailure"]["violations"][0]["quotaId"]


def test_429_relay_has_retry_after_headers(emulator):
    r = _post(emulator, "429", path=RELAY, body=RELAY_BODY, relay=True)
    assert r.status_code == 429
    assert int(r.headers["retry-after"]) >= 1 and int(r.headers["retry-after-ms"]) >= 1
    assert set(r.json()["error"]) == {"message", "type", "param", "code"}
    r = _post(emulator, "429-daily", path=RELAY, body=RELAY_BODY, relay=True)
    assert r.headers["x-should-retry"] == "false"


@pytest.mark.parametrize(
    ("kind", "status", "text"),
    [
        ("500", "INTERNAL", "internal error"),
        ("503", "UNAVAILABLE", "The model is overloaded. Please try again later."),
        ("504", "DEADLINE_EXCEEDED", "The request timed out. Please try again."),
    ],
)
def test_server_errors(emulator, kind, status, text):
    r = _post(emulator, kind)
    assert r.status_code == int(kind)
    assert r.json()["error"]["status"] == status and text in r.json()["error"]["message"]
    assert "server-timing" in r.headers
    rr = _post(emulator, kind, path=RELAY, body=RELAY_BODY, relay=True)
    assert rr.status_code == int(kind) and rr.json()["error"]["type"] == "server_error"


@pytest.mark.parametrize("path", [GEN, STREAM])
def test_reset_drops_the_connection_mid_body(emulator, path):
    with pytest.raises((httpx.RemoteProtocolError, httpx.ReadError)):
        r = _post(emulator, "reset", path=path)
        r.read()


def test_reset_over_http2(emulator_factory):
    import ssl

    emu = emulator_factory(tls=True)
    with httpx.Client(verify=ssl.create_default_context(cafile=emu.ca_path), http2=True) as c:
        with pytest.raises((httpx.RemoteProtocolError, httpx.ReadError, httpx.StreamError)):
            c.post(emu.base_url + GEN, json=BODY, headers={"x-goog-api-key": "k", "x-emulator-fault": "reset"})
        assert c.post(emu.base_url + GEN, json=BODY, headers={"x-goog-api-key": "k"}).status_code == 200


def test_truncated_json_is_complete_http_but_bad_json(emulator):
    r = httpx.post(
        emulator.base_url + GEN,
        json=BODY,
        headers={"x-goog-api-key": "k", "x-emulator-fault": "truncated", "accept-encoding": "identity"},
    )
    assert r.status_code == 200 and int(r.headers["content-length"]) == len(r.content)
    with pytest.raises(json.JSONDecodeError):
        json.loads(r.content)


def test_stall_sends_no_byte_until_the_client_gives_up(emulator):
    t0 = time.perf_counter()
    with pytest.raises(httpx.ReadTimeout):
        _post(emulator, "stall", timeout=httpx.Timeout(5.0, read=0.5))
    assert time.perf_counter() - t0 >= 0.5
    assert emulator.stats()["by_outcome"].get("fault_stall", 0) >= 1


def test_trickle_is_slow_but_complete(emulator):
    # trickle_total_s 60 x time_scale 0.02 = ~1.2 s for the body, in many small chunks with short gaps.
    # The read timeout is generous because it also covers the wait for headers (the generation time);
    # the trickle itself is checked from the measured gaps between chunks.
    with httpx.stream(
        "POST",
        emulator.base_url + GEN,
        json=BODY,
        headers={"x-goog-api-key": "k", "x-emulator-fault": "trickle", "accept-encoding": "identity"},
        timeout=httpx.Timeout(30.0),
    ) as r:
        t0 = last = time.perf_counter()
        chunks, gaps = [], []
        for chunk in r.iter_raw():
            now = time.perf_counter()
            gaps.append(now - last)
            last = now
            chunks.append(chunk)
        elapsed = last - t0
    data = b"".join(chunks)
    assert elapsed >= 0.9, f"body arrived in {elapsed:.2f} s, not trickled"
    assert len(chunks) >= 10, f"only {len(chunks)} chunks"
    assert sorted(gaps)[len(gaps) // 2] < 0.5, "the median gap between chunks should stay short"
    assert Image.open(io.BytesIO(base64.b64decode(_image_b64(json.loads(data))))).size == (1024, 1024)


def _wait_for(predicate, timeout_s=5.0):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return False


def test_an_abandoned_stall_frees_its_slot(emulator):
    before = emulator.stats()["client_gone"]
    with pytest.raises(httpx.ReadTimeout):
        _post(emulator, "stall", timeout=httpx.Timeout(5.0, read=0.3))
    # the server notices the disconnect and drops the request, instead of holding it for stall_s
    assert _wait_for(lambda: emulator.stats()["client_gone"] == before + 1 and emulator.stats()["active"] == 0)


def test_an_abandoned_trickle_stops_writing(emulator):
    before = emulator.stats()["client_gone"]
    with httpx.stream(
        "POST",
        emulator.base_url + GEN,
        json=BODY,
        headers={"x-goog-api-key": "k", "x-emulator-fault": "trickle", "accept-encoding": "identity"},
        timeout=httpx.Timeout(30.0),
    ) as r:
        next(r.iter_raw())  # the first chunk, then hang up mid-body
    assert _wait_for(lambda: emulator.stats()["client_gone"] == before + 1 and emulator.stats()["active"] == 0)


def test_bad_base64_cannot_be_decoded(emulator):
    data = _image_b64(_post(emulator, "bad-base64").json())
    with pytest.raises(binascii.Error):
        base64.b64decode(data, validate=True)
    with pytest.raises(binascii.Error):
        base64.b64decode(data)  # even the lenient decoder fails
    relay = _post(emulator, "bad-base64", path=RELAY, body=RELAY_BODY, relay=True).json()
    with pytest.raises(binascii.Error):
        base64.b64decode(relay["data"][0]["b64_json"])


def test_wrong_size_is_a_valid_png_of_another_size(emulator):
    png = base64.b64decode(_image_b64(_post(emulator, "wrong-size").json()))
    img = Image.open(io.BytesIO(png))
    img.load()
    assert img.size != (1024, 1024)


def test_html_proxy_page(emulator):
    r = _post(emulator, "html")
    assert r.status_code == 502 and r.headers["content-type"].startswith("text/html")
    assert r.text.lstrip().startswith("<html>")


def test_blocked_prompt_is_http_200_without_candidates(emulator):
    r = _post(emulator, "blocked")
    assert r.status_code == 200
    assert r.json()["promptFeedback"]["blockReason"] and "candidates" not in r.json()
    rr = _post(emulator, "blocked", path=RELAY, body=RELAY_BODY, relay=True)
    assert rr.status_code == 400 and rr.json()["error"]["code"] == "content_policy_violation"


@pytest.mark.parametrize(("kind", "reason"), [("image-safety", "IMAGE_PROHIBITED_CONTENT"), ("no-image", "NO_IMAGE")])
def test_no_image_finishes(emulator, kind, reason):
    doc = _post(emulator, kind).json()
    cand = doc["candidates"][0]
    assert cand["finishReason"] == reason
    assert "parts" not in cand["content"]  # as recorded: {"role": "model"} or {}
    if kind == "image-safety":  # the Pro refusal: a support code, and the thinking is billed
        assert "Support code: " in cand["finishMessage"] and doc["usageMetadata"]["thoughtsTokenCount"] > 0


def test_faults_in_the_stream(emulator):
    r = _post(emulator, "image-safety", path=STREAM)
    events = [json.loads(e[len("data: ") :]) for e in r.text.split("\r\n\r\n") if e]
    assert events[-1]["candidates"][0]["finishReason"] == "IMAGE_PROHIBITED_CONTENT"
    r = _post(emulator, "truncated", path=STREAM)
    last = [e for e in r.text.split("\r\n\r\n") if e][-1]
    with pytest.raises(json.JSONDecodeError):
        json.loads(last[len("data: ") :])


def test_unknown_fault_kind_is_rejected(emulator):
    r = _post(emulator, "meteor")
    assert r.status_code == 400 and "x-emulator-fault" in r.json()["error"]["message"]


def test_random_faults_follow_profile_probabilities(emulator_factory):
    import nbp_kit.emulator as e

    profile = e.load_profile("instant") | {"faults": {"503": 1.0}}
    emu = emulator_factory(profile=profile, faults=True)
    assert _post(emu, "500").status_code == 500  # forced wins
    assert httpx.post(emu.base_url + GEN, json=BODY, headers={"x-goog-api-key": "k"}).status_code == 503
    off = emulator_factory(profile=profile, faults=False)
    assert httpx.post(off.base_url + GEN, json=BODY, headers={"x-goog-api-key": "k"}).status_code == 200


def test_quota_429_from_real_counting(emulator_factory):
    import nbp_kit.emulator as e

    profile = e.load_profile("instant") | {"quotas": {"rpm": 2, "images_per_min": None, "concurrent": None}}
    emu = emulator_factory(profile=profile, quotas=True, time_scale=1.0)
    codes = [httpx.post(emu.base_url + GEN, json=BODY, headers={"x-goog-api-key": "k"}).status_code for _ in range(3)]
    assert codes == [200, 200, 429]
    assert emu.stats()["by_outcome"]["quota_429"] == 1
