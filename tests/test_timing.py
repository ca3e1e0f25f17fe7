"""Timing: the trace-event phase split, server-timing parsing, @timed and timer()."""

from __future__ import annotations

import asyncio
import inspect

import pytest

from nbp_kit.client.timing import PhaseClock, emulator_fields, parse_server_timing
from nbp_kit.timers import Timings, timed, timer


class FakeClock:
    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


def _run_events(clock: FakeClock, pc: PhaseClock, events: list[tuple[float, str]]) -> None:
    for t, name in events:
        clock.t = t
        pc.trace(name, {})


def test_phase_split_from_trace_events() -> None:
    clock = FakeClock()
    pc = PhaseClock(clock=clock, wall=lambda: 1_000_000.0)
    pc.marks["scheduled"] = 99.0
    _run_events(
        clock,
        pc,
        [
            (100.0, "connection.connect_tcp.started"),
            (100.1, "connection.connect_tcp.complete"),
            (100.1, "connection.start_tls.started"),
            (100.3, "connection.start_tls.complete"),
            (100.3, "http2.send_connection_init.started"),
            (100.31, "http2.send_connection_init.complete"),
            (100.31, "http2.send_request_headers.started"),
            (100.32, "http2.send_request_body.complete"),
            (110.32, "http2.receive_response_headers.complete"),
        ],
    )
    clock.t = 112.32
    pc.mark("download.complete")
    p = pc.phases()
    assert p["queue_s"] == pytest.approx(1.0)
    assert p["connect_s"] == pytest.approx(0.1) and p["tls_s"] == pytest.approx(0.2)
    assert p["send_s"] == pytest.approx(0.02) and p["wait_s"] == pytest.approx(10.0)
    assert p["download_s"] == pytest.approx(2.0)
    assert pc.connect_seen and pc.http_version == "HTTP/2"
    assert pc.wall_at(100.0) == 1_000_000.0


def test_reused_connection_has_no_connect() -> None:
    clock = FakeClock()
    pc = PhaseClock(clock=clock)
    pc.marks["scheduled"] = 100.0
    _run_events(
        clock,
        pc,
        [
            (100.5, "http11.send_request_headers.started"),
            (100.6, "http11.send_request_body.complete"),
            (101.0, "http11.receive_response_headers.complete"),
        ],
    )
    p = pc.phases()
    assert not pc.connect_seen and p["connect_s"] is None and p["queue_s"] == pytest.approx(0.5)
    assert p["wait_s"] == pytest.approx(0.4) and pc.http_version == "HTTP/1.1"


def test_async_trace_callback() -> None:
    pc = PhaseClock()
    asyncio.run(pc.atrace("http11.send_request_headers.started", {}))
    assert "send.started" in pc.marks


def test_server_timing() -> None:
    assert parse_server_timing("queue;dur=12.5, gen;dur=830") == {"queue": 0.0125, "gen": 0.83}
    assert parse_server_timing('gen;desc="x";dur="5", junk, bad;dur=abc') == {"gen": 0.005}
    assert parse_server_timing(None) == {}
    f = emulator_fields(
        {
            "server-timing": "queue;dur=0, gen;dur=100",
            "x-emulator-time-scale": "0.02",
            "x-emulator-clock": "scaled",
            "x-emulator-virtual-time": "1700000000.5",
        }
    )
    assert f == {
        "server_queue_s": 0.0,
        "server_generation_s": 0.1,
        "time_scale": 0.02,
        "clock": "scaled",
        "virtual_at": 1700000000.5,
    }


def test_timed_sync_keeps_signature_and_records() -> None:
    reg = Timings()

    @timed(registry=reg)
    def add(a: int, b: int = 2) -> int:
        """Add."""
        return a + b

    assert add(1) == 3 and add.__doc__ == "Add." and list(inspect.signature(add).parameters) == ["a", "b"]
    assert inspect.signature(add) == inspect.signature(add.__wrapped__)
    assert len(reg) == 1 and reg.records[0].ok and reg.records[0].name.endswith("add")


def test_timed_bare_and_errors(capsys) -> None:
    reg = Timings()

    @timed(name="fails", registry=reg)
    def fails() -> None:
        raise KeyError("x")

    with pytest.raises(KeyError):
        fails()
    rec = reg.records[0]
    assert rec.name == "fails" and not rec.ok and rec.error_type == "KeyError"
    assert capsys.readouterr().out == ""  # nothing printed


def test_timed_async() -> None:
    reg = Timings()

    @timed(registry=reg)
    async def slow(x: int) -> int:
        await asyncio.sleep(0.01)
        return x

    assert inspect.iscoroutinefunction(slow)
    assert asyncio.run(slow(4)) == 4
    assert reg.records[0].duration_s >= 0.009


def test_timer_and_summary() -> None:
    reg = Timings()
    for _ in range(3):
        with timer("block", registry=reg) as h:
            pass
    assert h.elapsed_s is not None
    s = reg.summary()["block"]
    assert s["count"] == 3 and s["mean_s"] <= s["max_s"]
    frame = reg.to_frame()
    assert list(frame["name"]) == ["block"] * 3


def test_phases_partition_the_attempt() -> None:
    clock = FakeClock()
    pc = PhaseClock(clock=clock)
    pc.marks["scheduled"] = 100.0
    _run_events(
        clock,
        pc,
        [
            (100.2, "http11.send_request_headers.started"),
            (100.3, "http11.send_request_body.complete"),
            (101.0, "http11.receive_response_headers.complete"),
        ],
    )
    for t, name in ((101.5, "parse.started"), (101.6, "decode.started"), (101.9, "save.started")):
        clock.t = t
        pc.mark(name)
    p = pc.phases(102.0)
    assert p["download_s"] == pytest.approx(0.5) and p["parse_s"] == pytest.approx(0.1)
    assert p["save_s"] == pytest.approx(0.1) and p["connect_s"] is None and p["fetch_s"] is None
    assert sum(v for v in p.values() if v is not None) == pytest.approx(2.0)


def test_http2_joiner_waits_in_connect_not_queue() -> None:
    clock = FakeClock()
    setups: list[tuple[float, float]] = []
    opener, joiner = PhaseClock(clock=clock), PhaseClock(clock=clock)
    for pc in (opener, joiner):
        pc.setups = setups
        pc.marks["scheduled"] = 100.0
        pc.marks["ready"] = 100.0
    _run_events(
        clock,
        opener,
        [
            (100.01, "connection.connect_tcp.started"),
            (100.05, "connection.connect_tcp.complete"),
            (100.05, "connection.start_tls.started"),
            (100.15, "connection.start_tls.complete"),
            (100.15, "http2.send_connection_init.started"),
            (100.16, "http2.send_connection_init.complete"),
        ],
    )
    assert setups == [(100.01, 100.16)]
    _run_events(
        clock, joiner, [(100.17, "http2.send_request_headers.started"), (100.18, "http2.send_request_body.complete")]
    )
    p = joiner.phases(100.5)
    assert p["queue_s"] == pytest.approx(0.01) and p["connect_s"] == pytest.approx(0.16)
    assert joiner.joined_setup and not joiner.connect_seen
