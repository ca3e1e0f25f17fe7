"""The emulator's Batch and Files APIs, driven by google-genai with only the base URL changed,
and by plain HTTP where the wire itself is the point (limits, the upload protocol)."""

from __future__ import annotations

import base64
import io
import json
import time

import httpx
import pytest
from google import genai
from google.genai import errors as genai_errors
from google.genai import types

from nbp_kit.emulator import load_profile

MODEL = "gemini-3-pro-image-preview"
DONE = {"JOB_STATE_SUCCEEDED", "JOB_STATE_FAILED", "JOB_STATE_CANCELLED", "JOB_STATE_EXPIRED"}


def _profile(**batch):
    return {**load_profile("default"), "batch": {"queue_median_s": 30, "queue_sigma": 0.5, **batch}}


def _client(emu):
    return genai.Client(api_key=emu.api_key, http_options=types.HttpOptions(base_url=emu.base_url))


def _wait(client, name, timeout_s=60):
    deadline = time.monotonic() + timeout_s
    states = []
    while time.monotonic() < deadline:
        job = client.batches.get(name=name)
        states.append(job.state.name)
        if job.state.name in DONE:
            return job, states
        time.sleep(0.05)
    raise AssertionError(f"job {name} did not finish: {states[-5:]}")


def _inline(n, prefix="a cat"):
    return [
        {
            "contents": [{"parts": [{"text": f"{prefix} {i}"}], "role": "user"}],
            "config": {"response_modalities": ["IMAGE"], "image_config": {"image_size": "1K"}},
            "metadata": {"key": f"k{i}"},
        }
        for i in range(n)
    ]


def test_sdk_inline_batch_end_to_end(emulator_factory):
    emu = emulator_factory(_profile(), time_scale=0.01)
    client = _client(emu)
    job = client.batches.create(model=MODEL, src=_inline(3), config={"display_name": "inline"})
    assert job.name.startswith("batches/") and job.state.name == "JOB_STATE_PENDING"
    job, _ = _wait(client, job.name)
    assert job.state.name == "JOB_STATE_SUCCEEDED"
    assert job.create_time < job.end_time
    assert job.display_name == "inline"
    answers = job.dest.inlined_responses
    assert sorted(a.metadata["key"] for a in answers) == ["k0", "k1", "k2"]
    part = answers[0].response.candidates[0].content.parts[-1]
    assert (
        part.inline_data.mime_type == "image/jpeg" and part.inline_data.data[:3] == b"\xff\xd8\xff"
    )  # JPEG, as the real Pro model


def test_sdk_file_batch_upload_create_download(emulator_factory):
    emu = emulator_factory(_profile(), time_scale=0.01)
    client = _client(emu)
    lines = "".join(
        json.dumps({"key": f"f{i}", "request": {"contents": [{"parts": [{"text": f"dog {i}"}]}]}}) + "\n"
        for i in range(4)
    ).encode()
    uploaded = client.files.upload(
        file=io.BytesIO(lines), config={"mime_type": "application/jsonl", "display_name": "requests"}
    )
    assert uploaded.name.startswith("files/") and uploaded.size_bytes == len(lines)
    assert uploaded.state.name == "ACTIVE"
    assert client.files.get(name=uploaded.name).display_name == "requests"
    job = client.batches.create(model=MODEL, src=uploaded.name)
    job, _ = _wait(client, job.name)
    assert job.state.name == "JOB_STATE_SUCCEEDED" and job.dest.file_name.startswith("files/")
    data = client.files.download(file=job.dest.file_name)
    rows = [json.loads(line) for line in data.splitlines()]
    assert sorted(r["key"] for r in rows) == ["f0", "f1", "f2", "f3"]
    b64 = rows[0]["response"]["candidates"][0]["content"]["parts"][-1]["inlineData"]["data"]
    assert base64.b64decode(b64)[:3] == b"\xff\xd8\xff"  # JPEG, as the real Pro model answers
    stats = httpx.get(f"{emu.base_url}/v1beta/{job.name}", headers={"x-goog-api-key": "k"}, timeout=60).json()
    assert stats["metadata"]["batchStats"] == {
        "requestCount": "4",
        "successfulRequestCount": "4",
        "failedRequestCount": "0",
        "pendingRequestCount": "0",
    }


def test_sdk_list_pages_cancel_delete(emulator_factory):
    emu = emulator_factory(_profile(queue_median_s=10**6, queue_sigma=0), time_scale=0.01)
    client = _client(emu)
    names = [client.batches.create(model=MODEL, src=_inline(1)).name for _ in range(5)]
    raw = httpx.get(
        f"{emu.base_url}/v1beta/batches", params={"pageSize": 2}, headers={"x-goog-api-key": "k"}, timeout=60
    ).json()
    assert len(raw["operations"]) == 2 and raw["nextPageToken"]
    listed = [j.name for j in client.batches.list(config={"page_size": 2})]
    assert listed == list(reversed(names))  # newest first, every page followed
    client.batches.cancel(name=names[0])
    assert client.batches.get(name=names[0]).state.name == "JOB_STATE_CANCELLED"
    client.batches.delete(name=names[1])
    with pytest.raises(genai_errors.ClientError) as err:
        client.batches.get(name=names[1])
    assert err.value.code == 404


def test_upload_protocol_rejects_wrong_offset_and_short_finalize(emulator_factory):
    emu = emulator_factory(_profile())
    h = {"x-goog-api-key": "k"}
    start = httpx.post(
        f"{emu.base_url}/upload/v1beta/files",
        json={"file": {"displayName": "x"}},
        headers={
            **h,
            "X-Goog-Upload-Protocol": "resumable",
            "X-Goog-Upload-Command": "start",
            "X-Goog-Upload-Header-Content-Length": "10",
            "X-Goog-Upload-Header-Content-Type": "application/jsonl",
        },
    )
    assert start.headers["x-goog-upload-status"] == "active"
    url = start.headers["x-goog-upload-url"]
    first = httpx.post(url, content=b"12345", headers={"X-Goog-Upload-Command": "upload", "X-Goog-Upload-Offset": "0"})
    assert first.status_code == 200 and first.headers["x-goog-upload-status"] == "active"
    wrong = httpx.post(url, content=b"678", headers={"X-Goog-Upload-Command": "upload", "X-Goog-Upload-Offset": "3"})
    assert wrong.status_code == 400 and "5 bytes received" in wrong.json()["error"]["message"]
    short = httpx.post(
        url, content=b"678", headers={"X-Goog-Upload-Command": "upload, finalize", "X-Goog-Upload-Offset": "5"}
    )
    assert short.status_code == 400 and "10 were declared" in short.json()["error"]["message"]


def test_inline_request_over_20_mb_is_400(emulator_factory):
    emu = emulator_factory(_profile())
    big = [
        {"request": {"contents": [{"parts": [{"text": "x" * (1 << 20)}]}]}, "metadata": {"key": str(i)}}
        for i in range(21)
    ]
    resp = httpx.post(
        f"{emu.base_url}/v1beta/models/{MODEL}:batchGenerateContent",
        headers={"x-goog-api-key": "k"},
        json={"batch": {"inputConfig": {"requests": {"requests": big}}}},
        timeout=60,
    )
    assert resp.status_code == 400
    assert "exceeds the limit: 20971520 bytes" in resp.json()["error"]["message"]
    assert emu.app.bulk.jobs == {}


def test_more_than_100_active_jobs_is_429(emulator_factory):
    emu = emulator_factory(_profile(queue_median_s=10**6, queue_sigma=0), time_scale=0.01)
    client = _client(emu)
    for _ in range(100):
        client.batches.create(model=MODEL, src=_inline(1))
    with pytest.raises(genai_errors.ClientError) as err:
        client.batches.create(model=MODEL, src=_inline(1))
    assert err.value.code == 429 and "limit of 100 concurrent batch jobs" in err.value.message
    client.batches.cancel(name=client.batches.list(config={"page_size": 1}).page[0].name)
    assert client.batches.create(model=MODEL, src=_inline(1)).state.name == "JOB_STATE_PENDING"


def test_stuck_job_stays_pending_then_expires_at_48h(emulator_factory):
    # 48 h x 1e-5 = 1.7 s of real time.
    emu = emulator_factory(_profile(stuck_prob=1.0), time_scale=1e-5)
    client = _client(emu)
    job = client.batches.create(model=MODEL, src=_inline(2))
    job, states = _wait(client, job.name)
    assert job.state.name == "JOB_STATE_EXPIRED"
    assert set(states[:-1]) == {"JOB_STATE_PENDING"}  # never ran
    assert job.dest is None


def test_items_draw_faults_from_the_profile(emulator_factory):
    prof = {**_profile(), "faults": {"503": 0.5}}
    emu = emulator_factory(prof, time_scale=0.005, faults=True)
    client = _client(emu)
    job, _ = _wait(client, client.batches.create(model=MODEL, src=_inline(30)).name)
    answers = job.dest.inlined_responses
    errors = [a for a in answers if a.error is not None]
    assert len(answers) == 30 and 3 <= len(errors) <= 27
    assert all(a.error.code == 503 for a in errors)
    raw = httpx.get(f"{emu.base_url}/v1beta/{job.name}", headers={"x-goog-api-key": "k"}, timeout=60).json()
    assert raw["metadata"]["batchStats"]["failedRequestCount"] == str(len(errors))


def test_oversized_inline_results_answer_503(emulator_factory):
    emu = emulator_factory(_profile(inline_result_limit_bytes=1000), time_scale=0.005)
    client = _client(emu)
    name = client.batches.create(model=MODEL, src=_inline(1)).name
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and emu.app.bulk.jobs[name.split("/")[1]].state != "BATCH_STATE_SUCCEEDED":
        time.sleep(0.05)
    resp = httpx.get(f"{emu.base_url}/v1beta/{name}", headers={"x-goog-api-key": "k"}, timeout=30)
    assert resp.status_code == 503 and resp.json()["error"]["status"] == "UNAVAILABLE"


def test_batch_routes_need_the_key(emulator_factory):
    emu = emulator_factory(_profile())
    assert httpx.get(f"{emu.base_url}/v1beta/batches").status_code == 400
