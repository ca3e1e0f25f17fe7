"""The cheap models-list request (Client.list_models) and the public price_row."""

from __future__ import annotations

import asyncio
import threading

import pytest

from nbp_kit import AsyncClient, Client
from nbp_kit.errors import ConfigError
from nbp_kit.providers.pricing import attempt_cost, estimate_cost, price_row
from nbp_kit.records import Attempt
from nbp_kit.spec import ImageSpec


class _Sink:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.started: list[Attempt] = []
        self.finished: list[Attempt] = []

    def attempt_started(self, attempt: Attempt) -> None:
        with self.lock:
            self.started.append(attempt)

    def attempt_finished(self, attempt: Attempt) -> None:
        with self.lock:
            self.finished.append(attempt)


def test_list_models_is_a_recorded_free_attempt(emulator) -> None:
    sink = _Sink()
    with Client.for_emulator(emulator, sink=sink) as client:
        first = client.list_models(run_id="r1", request_key="probe:0:models")
        second = client.list_models()
    assert first.status == "ok" and first.status_code == 200 and first.error_kind is None
    assert first.transport == "models" and first.cost_usd == 0.0 and first.tiles == 0
    assert first.run_id == "r1" and first.request_key == "probe:0:models"
    assert first.provider == "gemini" and first.base_host == client.base_host
    assert first.wait_s is not None and first.wait_s > 0 and first.download_s is not None
    assert first.bytes_down and first.bytes_down > 0
    assert first.virtual_at is not None and first.total_s is not None and first.total_s >= first.wait_s
    assert first.call_id != second.call_id and second.run_id is None
    # the sink sees it like any attempt: started, then finished, with the same id
    assert [a.attempt_id for a in sink.started] == [first.attempt_id, second.attempt_id]
    assert [a.attempt_id for a in sink.finished] == [first.attempt_id, second.attempt_id]
    assert sink.started[0].status != "ok" and sink.finished[0] == first


def test_list_models_async_records_a_bad_key_as_an_error(emulator_factory) -> None:
    emu = emulator_factory(api_key="the-emulator-key")

    async def main() -> Attempt:
        async with AsyncClient.for_emulator(emu, api_key="not-the-emulator-key") as client:
            return await client.list_models()

    rec = asyncio.run(main())
    # Gemini answers a bad key with a 400; the models request records any non-200 this way.
    assert rec.status == "error" and rec.status_code == 400 and rec.error_kind == "invalid_request"
    assert "not-the-emulator-key" not in repr(rec)


def test_list_models_records_a_refused_connection() -> None:
    async def main() -> Attempt:
        # Port 9 on loopback: nothing listens, so the connection is refused at once.
        async with AsyncClient(api_key="k", base_url="http://127.0.0.1:9") as client:
            return await client.list_models()

    rec = asyncio.run(main())
    assert rec.status == "error" and rec.error_kind == "connect_error" and rec.status_code is None


def test_list_models_refused_for_relay_before_any_request() -> None:
    async def main() -> None:
        async with AsyncClient("relay", api_key="k", base_url="http://127.0.0.1:9") as client:
            await client.list_models()

    with pytest.raises(ConfigError, match="provider 'relay'"):
        asyncio.run(main())


def test_price_row_is_public_and_matches_the_estimates() -> None:
    pro = price_row("gemini", "gemini-3-pro-image-preview")
    assert pro["image_usd"]["4K"] == estimate_cost("gemini", "gemini-3-pro-image-preview", ImageSpec(resolution="4K"))
    assert price_row("gemini", "some-future-model") == pro  # unknown Gemini models: the Pro row
    relay = price_row("relay", "any-model")
    assert attempt_cost("relay", "any-model", ImageSpec(), None) == relay["per_call_usd"]
    assert price_row("nobody", "x") == {}
