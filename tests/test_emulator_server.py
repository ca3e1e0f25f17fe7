"""Transport-level behaviour: HTTP/1.1 and HTTP/2 over TLS, pacing, gzip, headers, bad configs."""

from __future__ import annotations

import json
import socket
import ssl
import time

import httpx2 as httpx
import pytest

from nbp_kit import emulator as emu_mod
from nbp_kit.client.timing import parse_server_timing
from nbp_kit.errors import ConfigError

GEN = "/v1beta/models/gemini-3-pro-image-preview:generateContent"


def _body(size="1K", aspect="1:1", prompt="a cat", **cfg):
    return {
        "contents": [{"parts": [{"text": prompt}]}],
        "generationConfig": {
            "responseModalities": ["IMAGE"],
            "imageConfig": {"aspectRatio": aspect, "imageSize": size},
            **cfg,
        },
    }


def test_http2_and_http11_over_tls_with_the_local_ca(emulator_factory):
    emu = emulator_factory(tls=True)
    assert emu.base_url.startswith("https://") and emu.ca_path
    ctx = ssl.create_default_context(cafile=emu.ca_path)
    with httpx.Client(verify=ctx, http2=True) as c:
        r = c.post(emu.base_url + GEN, json=_body(), headers={"x-goog-api-key": "k"}, timeout=30)
        assert r.status_code == 200 and r.http_version == "HTTP/2"
        assert "candidates" in r.json()
    with httpx.Client(verify=ctx, http2=False) as c:
        r = c.get(emu.base_url + "/v1beta/models", headers={"x-goog-api-key": "k"})
        assert r.status_code == 200 and r.http_version == "HTTP/1.1"
    with httpx.Client(verify=True) as c, pytest.raises(httpx.ConnectError):
        c.get(emu.base_url + "/v1beta/models")  # the system store does not trust the local CA


@pytest.mark.parametrize(("mbps", "size"), [(8, "1K"), (100, "2K")])  # ~1.5 s and ~0.45 s of body
def test_body_pacing_matches_the_configured_bandwidth(emulator_factory, mbps, size):
    emu = emulator_factory(
        profile="instant", network={"name": f"{mbps}mbps", "bandwidth_mbps": mbps, "rtt_ms": 0}, gzip=False
    )
    measured = []
    with httpx.Client() as c:
        for _ in range(4):  # the first call renders and caches the image; then the best of three
            with c.stream("POST", emu.base_url + GEN, json=_body(size=size), headers={"x-goog-api-key": "k"}) as r:
                t0 = time.perf_counter()
                n = sum(len(b) for b in r.iter_raw())
                measured.append(time.perf_counter() - t0)
    expected = n * 8 / (mbps * 1e6)
    assert n > 1_000_000
    # a busy test machine can only delay a sleep, so the closest of three runs is the pacing itself
    elapsed = min(measured[1:], key=lambda e: abs(e - expected))
    assert abs(elapsed - expected) <= 0.10 * expected, (measured, expected)


def test_round_trip_added_before_each_response(emulator_factory):
    emu = emulator_factory(profile="instant", network={"bandwidth_mbps": None, "rtt_ms": 200})
    with httpx.Client() as c:
        t0 = time.perf_counter()
        c.get(emu.base_url + "/v1beta/models", headers={"x-goog-api-key": "k"})
        first = time.perf_counter() - t0
        t0 = time.perf_counter()
        c.get(emu.base_url + "/v1beta/models", headers={"x-goog-api-key": "k"})
        second = time.perf_counter() - t0
    assert first >= 0.4  # connection set-up + request/response: two round trips
    assert second >= 0.2  # keep-alive: one round trip
    assert second < first - 0.1  # ... and the second call does not pay the set-up again


def test_gzip_when_accepted_and_switch(emulator_factory):
    on = emulator_factory(profile="instant")
    off = emulator_factory(profile="instant", gzip=False)
    with httpx.Client() as c:
        r = c.post(on.base_url + GEN, json=_body(), headers={"x-goog-api-key": "k"})
        assert r.headers["content-encoding"] == "gzip"
        assert r.json()["candidates"][0]["content"]["parts"][0]["inlineData"]["data"]
        r2 = c.post(on.base_url + GEN, json=_body(), headers={"x-goog-api-key": "k", "accept-encoding": "identity"})
        assert "content-encoding" not in r2.headers
        # Same answer but for the per-response parts: the id and the thought signature bound to it.
        same = r.json() | {"responseId": r2.json()["responseId"]}
        same["candidates"][0]["content"]["parts"][0]["thoughtSignature"] = r2.json()["candidates"][0]["content"][
            "parts"
        ][0]["thoughtSignature"]
        assert r2.json() == same
        r3 = c.post(off.base_url + GEN, json=_body(), headers={"x-goog-api-key": "k"})
        assert "content-encoding" not in r3.headers


def test_ground_truth_headers_and_stats(emulator_factory):
    emu = emulator_factory(clock_start="2026-01-07T15:00:00Z", clock_speed=60)
    with httpx.Client() as c:
        r = c.post(emu.base_url + GEN, json=_body(), headers={"x-goog-api-key": "k"}, timeout=30)
        timing = {k: v * 1000 for k, v in parse_server_timing(r.headers["server-timing"]).items()}
        assert float(timing["gen"]) > 0 and float(timing["queue"]) >= 0
        # the front end's entry, as Google sends it: all server time in whole milliseconds (queue,
        # generation, and the emulator's own overrun when it fell behind its model)
        assert abs(timing["gfet4t7"] - (timing["gen"] + timing["queue"] + timing.get("late", 0.0))) <= 1.0
        assert r.headers["x-emulator-clock"] == "virtual"
        vt = float(r.headers["x-emulator-virtual-time"])
        assert 1767798000 <= vt < 1767798000 + 3600
        stats = c.get(emu.base_url + "/emulator/stats").json()
    assert stats["by_outcome"]["ok"] == 1
    assert emu.stats()["by_outcome"]["ok"] == 1


def test_generation_time_follows_time_scale(emulator_factory):
    emu = emulator_factory(time_scale=0.01)
    emu.prewarm(resolutions=("2K",))
    with httpx.Client() as c:
        t0 = time.perf_counter()
        r = c.post(emu.base_url + GEN, json=_body(size="2K"), headers={"x-goog-api-key": "k"}, timeout=30)
        elapsed = time.perf_counter() - t0
    timing = {k: v * 1000 for k, v in parse_server_timing(r.headers["server-timing"]).items()}
    gen_s = float(timing["gen"]) / 1000
    assert 0.1 < gen_s < 1.5  # 2K: 30-75 s scaled by 0.01 (an overrun of the emulator's own is "late")
    assert elapsed >= gen_s


def test_port_in_use_names_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen()
    try:
        with pytest.raises(ConfigError, match="port"):
            emu_mod.start("instant", port=s.getsockname()[1])
    finally:
        s.close()


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"profile": "no-such-profile"}, "profile"),
        ({"network": {"bandwidth_mbps": -8, "rtt_ms": 0}}, "bandwidth_mbps"),
        ({"network": "dial-up"}, "network"),
        ({"clock_start": "next tuesday"}, "clock_start"),
        ({"clock_speed": 0}, "clock_speed"),
        ({"time_scale": -1}, "time_scale"),
        ({"port": 70000}, "port"),
    ],
)
def test_bad_configuration_fails_at_start_naming_the_setting(kwargs, name):
    with pytest.raises(ConfigError, match=name):
        emu_mod.start(**kwargs)


def test_stop_is_clean_and_idempotent():
    emu = emu_mod.start("instant")
    port = int(emu.base_url.rsplit(":", 1)[1])
    emu.stop()
    emu.stop()
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", port), timeout=1).close()


def test_cli_arguments_reach_start(monkeypatch, capsys):
    import argparse
    import threading

    parser = argparse.ArgumentParser()
    emu_mod.add_arguments(parser)
    args = parser.parse_args(["--port", "0", "--profile", "instant", "--time-scale", "0.5", "--tls"])
    stop = threading.Event()
    stop.set()  # serve then return at once
    assert emu_mod.run_from_args(args, stop_event=stop) == 0
    out = capsys.readouterr().out
    assert "https://127.0.0.1:" in out and "CA certificate:" in out and "time_scale=0.5" in out
    with pytest.raises(ConfigError, match="clock_start"):
        emu_mod.run_from_args(parser.parse_args(["--port", "0", "--clock-start", "soon"]))
    json.dumps(vars(args))
