"""Phases add up: on every path, an attempt's phases sum to its ``total_s`` (within 1 ms).

Each test drives one path over a real emulator on loopback: Gemini unary and streamed,
relay b64 and url, HTTP/1.1 and HTTP/2, cold and warm connections, retries and hedges,
and the HTTP/2 cold pool where requests join a connection another request is opening.
"""

from __future__ import annotations

import asyncio

import pytest

from nbp_kit import AsyncClient, Client, ImageSpec
from nbp_kit.client.retry import HedgePolicy
from nbp_kit.records import PHASES, Attempt

SMALL = ImageSpec(resolution="1K")


def assert_adds_up(a: Attempt) -> None:
    parts = [getattr(a, p + "_s") for p in PHASES]
    assert all(p is None or p >= 0 for p in parts), (a.attempt_id, parts)
    total = sum(p for p in parts if p is not None)
    assert a.total_s is not None and abs(total - a.total_s) <= 0.001, (a.attempt_id, total, a.total_s, parts)


def test_gemini_unary_http11_cold_and_warm(emulator, tmp_path) -> None:
    with Client.for_emulator(emulator, output_dir=tmp_path) as client:
        cold = client.generate("sum unary", SMALL, seed=1).final
        warm = client.generate("sum unary", SMALL, seed=1).final
    assert cold.http_version == "HTTP/1.1" and cold.connection_reused is False and cold.connect_s is not None
    assert warm.connection_reused is True and warm.connect_s is None and warm.save_s is not None
    for a in (cold, warm):
        assert_adds_up(a)


def test_gemini_stream_split_at_the_final_image(emulator, tmp_path) -> None:
    with Client.for_emulator(emulator, output_dir=tmp_path, stream=True) as client:
        client.generate("sum stream", SMALL, seed=2, save=False)  # warm: the image is cached
        a = client.generate("sum stream", SMALL, seed=2, save=False).final
    assert a.transport == "stream" and a.ok
    assert_adds_up(a)
    # wait runs to the final image's first byte: the generation is in it, not in download
    assert a.final_image_s is not None and a.server_generation_s is not None
    assert a.wait_s >= a.server_generation_s
    assert a.download_s < a.wait_s
    # milestones kept, in order, within the send -> final-image span
    if a.first_thought_s is not None:
        assert a.first_thought_s <= a.final_image_s
    assert a.send_s + a.wait_s <= a.final_image_s + 0.001


@pytest.mark.parametrize("output_format", ["b64_json", "url"])
def test_relay_b64_and_url(emulator, tmp_path, output_format) -> None:
    spec = ImageSpec(resolution="1K", thinking_level="low", output_format=output_format)
    with Client.for_emulator(emulator, provider="relay", output_dir=tmp_path) as client:
        a = client.generate("sum relay", spec, seed=3, save=False).final
    assert a.ok and a.provider == "relay"
    assert_adds_up(a)
    if output_format == "url":
        assert a.fetch_s is not None and a.fetch_s > 0 and a.bytes_fetched == a.bytes_decoded
    else:
        assert a.fetch_s is None and a.bytes_fetched is None


@pytest.mark.parametrize("stream", [False, True])
def test_http2_cold_and_warm(emulator_factory, tmp_path, stream) -> None:
    emu = emulator_factory(tls=True)
    with Client.for_emulator(emu, output_dir=tmp_path, stream=stream) as client:
        cold = client.generate("sum h2", SMALL, seed=4, save=False).final
        warm = client.generate("sum h2", SMALL, seed=4, save=False).final
    assert cold.http_version == "HTTP/2" and cold.tls_s is not None and cold.connection_reused is False
    assert warm.connection_reused is True and warm.tls_s is None
    for a in (cold, warm):
        assert_adds_up(a)


def test_retried_call_every_attempt_adds_up(emulator, tmp_path) -> None:
    with Client.for_emulator(emulator, output_dir=tmp_path) as client:
        gen = client.generate(
            "sum retry", SMALL, seed=5, save=False, headers=lambda n: {"x-emulator-fault": "500"} if n == 1 else {}
        )
    assert gen.ok and [a.status for a in gen.attempts] == ["error", "ok"]
    for a in gen.attempts:
        assert_adds_up(a)


def test_hedged_call_every_attempt_adds_up(emulator, tmp_path) -> None:
    hedge = HedgePolicy(after_s=0.01, max_extra_fraction=1.0)
    with Client.for_emulator(emulator, output_dir=tmp_path, hedge=hedge) as client:
        gen = client.generate("sum hedge", SMALL, seed=6, save=False)
    assert gen.ok and any(a.hedge for a in gen.attempts), [a.hedge for a in gen.attempts]
    for a in gen.attempts:
        if a.total_s is not None:
            assert_adds_up(a)


def test_http2_cold_pool_wait_is_connection_setup_not_queue(emulator_factory, tmp_path) -> None:
    emu = emulator_factory(tls=True)

    async def four() -> list[Attempt]:
        async with AsyncClient.for_emulator(emu, output_dir=tmp_path) as client:
            gens = await asyncio.gather(*(client.generate(f"pool {i}", SMALL, seed=i, save=False) for i in range(4)))
        return [g.final for g in gens]

    attempts = asyncio.run(four())
    assert all(a.http_version == "HTTP/2" for a in attempts)
    openers = [a for a in attempts if a.tls_s is not None]
    assert len(openers) == 1, [a.tls_s for a in attempts]  # one connection, the others joined it
    opener = openers[0]
    opener_connected = opener.scheduled_at + opener.queue_s + opener.connect_s
    for a in attempts:
        assert_adds_up(a)
        assert a.connection_reused is False and a.connect_s is not None, a
        # no queue holds the set-up: each queue ends before the opener's TCP connect is done
        assert a.scheduled_at + a.queue_s <= opener_connected + 0.001, (a.queue_s, a.connect_s)
