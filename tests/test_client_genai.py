"""google-genai users keep their SDK and get nbp_kit's phase records (against the emulator)."""

from __future__ import annotations

import asyncio

from google import genai
from google.genai import types

from nbp_kit import AttemptLog, instrumented_httpx_client

CONFIG = types.GenerateContentConfig(
    response_modalities=["IMAGE"], image_config=types.ImageConfig(aspect_ratio="1:1", image_size="1K")
)


def test_genai_sync_client_yields_phase_records(emulator) -> None:
    log = AttemptLog()
    http = instrumented_httpx_client(sink=log)
    client = genai.Client(
        api_key=emulator.api_key,
        http_options=types.HttpOptions(base_url=emulator.base_url, api_version="v1beta", httpx_client=http),
    )
    for _ in range(2):
        resp = client.models.generate_content(model="gemini-3-pro-image-preview", contents="a cat", config=CONFIG)
        assert resp.candidates[0].content.parts[-1].inline_data.data  # the SDK still works as usual
    first, second = log.attempts
    assert first.status == "ok" and first.model == "gemini-3-pro-image-preview" and first.status_code == 200
    assert first.connection_reused is False and second.connection_reused is True
    truth = second.server_queue_s + second.server_generation_s
    assert abs(second.wait_s - truth) <= max(0.05 * truth, 0.020)
    assert second.bytes_down > 100_000 and second.download_s is not None and second.http_version == "HTTP/1.1"
    frame = log.to_frame()
    assert len(frame) == 2 and frame["wait_s"].notna().all()


def test_genai_async_client_yields_phase_records(emulator) -> None:
    log = AttemptLog()

    async def main():
        http = instrumented_httpx_client(sink=log, asynchronous=True)
        client = genai.Client(
            api_key=emulator.api_key,
            http_options=types.HttpOptions(base_url=emulator.base_url, api_version="v1beta", httpx_async_client=http),
        )
        await client.aio.models.generate_content(model="gemini-3-pro-image-preview", contents="a cat", config=CONFIG)
        await http.aclose()

    asyncio.run(main())
    (a,) = log.attempts
    assert a.status == "ok" and a.wait_s > 0 and a.server_generation_s > 0 and a.bytes_down > 100_000


def test_genai_error_recorded(emulator) -> None:
    log = AttemptLog()
    http = instrumented_httpx_client(sink=log, headers={"x-emulator-fault": "503"})
    client = genai.Client(
        api_key=emulator.api_key,
        http_options=types.HttpOptions(base_url=emulator.base_url, api_version="v1beta", httpx_client=http),
    )
    try:
        client.models.generate_content(model="gemini-3-pro-image-preview", contents="a cat", config=CONFIG)
    except Exception:
        pass
    assert log.attempts and log.attempts[0].status == "error" and log.attempts[0].status_code == 503
    assert log.attempts[0].error_kind == "overloaded"
