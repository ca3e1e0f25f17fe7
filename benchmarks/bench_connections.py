"""Connections: what reusing (and multiplexing) connections saves at a 150 ms round trip.

The emulator (own process, ``instant`` profile: no generation time, HTTPS with its local CA,
150 ms round trip, unshaped bandwidth) serves 1K images. Measured side by side, repeated:

* 20 sequential requests: a new httpx2 client per request (as many users write it) vs a
  pooled HTTP/1.1 client vs a pooled HTTP/2 client (both warmed first), plus nbp_kit's
  ``Client`` (pooled, HTTP/2); ratios to the pooled HTTP/2 wall time and to the floor
  (20 round trips);
* 10 concurrent requests on one HTTP/2 connection vs 10 HTTP/1.1 connections, cold (the
  connections are opened by the burst) and warm.

The emulator adds one round trip when a connection serves its first request (connection
set-up) and one before every response; it does not slow the TLS handshake itself, so on a
real network a new connection costs one or two round trips more than shown here.

Run alone: ``python -m benchmarks.bench_connections [--quick]``.
"""

from __future__ import annotations

import asyncio
import ssl
import tempfile
import time
from typing import Any

from benchmarks._harness import (
    API_KEY,
    EmulatorProcess,
    Section,
    Target,
    markdown_table,
    run_alone,
    spread,
)

MODEL = "gemini-3-pro-image-preview"
RTT_MS = 150.0
NETWORK = {"name": "rtt-150ms", "bandwidth_mbps": None, "rtt_ms": RTT_MS}


def _body(i: int) -> dict[str, Any]:
    return {
        "contents": [{"parts": [{"text": f"connections benchmark {i % 4}"}]}],
        "generationConfig": {
            "responseModalities": ["IMAGE"],
            "seed": 1,
            "imageConfig": {"aspectRatio": "1:1", "imageSize": "1K"},
        },
    }


def _sequential(emu: EmulatorProcess, mode: str, n: int, out: str) -> float:
    import httpx2

    url = f"{emu.base_url}/v1beta/models/{MODEL}:generateContent"
    hdrs = {"x-goog-api-key": API_KEY}
    if mode == "new client per request":
        t0 = time.perf_counter()
        for i in range(n):
            # What a script that calls ``httpx.post`` (or builds an SDK client) per image does.
            with httpx2.Client(verify=ssl.create_default_context(cafile=emu.ca_path), timeout=60) as c:
                c.post(url, json=_body(i), headers=hdrs).raise_for_status()
        return time.perf_counter() - t0
    if mode == "nbp_kit Client (pooled HTTP/2)":
        from nbp_kit import Client, ImageSpec

        with Client.for_emulator(emu, output_dir=out) as client:
            client.generate("connections warm-up", ImageSpec(resolution="1K"), save=False)
            t0 = time.perf_counter()
            for i in range(n):
                gen = client.generate(f"connections benchmark {i % 4}", ImageSpec(resolution="1K"), seed=1, save=False)
                assert gen.final is not None and gen.final.http_version == "HTTP/2", gen.final
            return time.perf_counter() - t0
    http2 = mode == "pooled HTTP/2"
    with httpx2.Client(http2=http2, verify=ssl.create_default_context(cafile=emu.ca_path), timeout=60) as c:
        c.post(url, json=_body(0), headers=hdrs).raise_for_status()  # warm: the connection is open
        t0 = time.perf_counter()
        for i in range(n):
            r = c.post(url, json=_body(i), headers=hdrs)
            r.raise_for_status()
            assert r.http_version == ("HTTP/2" if http2 else "HTTP/1.1"), r.http_version
        return time.perf_counter() - t0


async def _burst(emu: EmulatorProcess, *, http2: bool, n: int, warm: bool) -> float:
    import httpx2

    url = f"{emu.base_url}/v1beta/models/{MODEL}:generateContent"
    hdrs = {"x-goog-api-key": API_KEY}
    limits = httpx2.Limits(max_connections=n, max_keepalive_connections=n)
    async with httpx2.AsyncClient(
        http2=http2, verify=ssl.create_default_context(cafile=emu.ca_path), limits=limits, timeout=60
    ) as c:

        async def one(i: int) -> str:
            r = await c.post(url, json=_body(i), headers=hdrs)
            r.raise_for_status()
            return r.http_version

        if warm:
            await asyncio.gather(*(one(i) for i in range(n)))
        t0 = time.perf_counter()
        versions = await asyncio.gather(*(one(i) for i in range(n)))
        wall = time.perf_counter() - t0
    assert set(versions) == {"HTTP/2" if http2 else "HTTP/1.1"}, versions
    return wall


SEQ_MODES = ("new client per request", "pooled HTTP/1.1", "pooled HTTP/2", "nbp_kit Client (pooled HTTP/2)")


def section(*, quick: bool = False) -> Section:
    n_seq, n_conc, reps = (3, 4, 1) if quick else (20, 10, 3)
    seq: dict[str, list[float]] = {m: [] for m in SEQ_MODES}
    conc: dict[tuple[bool, bool], list[float]] = {(h2, w): [] for h2 in (True, False) for w in (False, True)}
    with (
        EmulatorProcess(profile="instant", network=NETWORK, tls=True, label="connections") as emu,
        tempfile.TemporaryDirectory() as out,
    ):
        for rep in range(reps):
            modes = SEQ_MODES if rep % 2 == 0 else SEQ_MODES[::-1]
            for m in modes:
                seq[m].append(_sequential(emu, m, n_seq, out))
            for h2, warm in conc:
                conc[(h2, warm)].append(asyncio.run(_burst(emu, http2=h2, n=n_conc, warm=warm)))
    floor = n_seq * RTT_MS / 1000
    base = seq["pooled HTTP/2"]
    rows = [
        [
            m,
            spread(w / n_seq * 1000 for w in seq[m]).fmt(0),
            spread(w / floor for w in seq[m]).fmt(2),
            spread(a / b for a, b in zip(seq[m], base)).fmt(2),
        ]
        for m in SEQ_MODES
    ]
    sec = Section(
        "connections",
        "Connections",
        intro=(
            f"Emulator in its own process, `instant` profile (no generation time), HTTPS with its local CA, "
            f"{RTT_MS:.0f} ms round trip, unshaped bandwidth, 1K images (1.25 MB). {reps} repetitions, modes "
            "interleaved. The emulator adds one round trip to a connection's first request (set-up) but does not "
            "slow the TLS handshake, so on a real network a new connection costs one or two round trips more "
            "than shown."
        ),
    )
    sec.tables.append(
        f"**{n_seq} sequential requests**; floor = {n_seq} round trips = {floor:.1f} s\n\n"
        + markdown_table(["client", "ms per request", "wall / floor", "wall / pooled HTTP/2"], rows)
    )
    crow = []
    for warm in (False, True):
        h2, h1 = conc[(True, warm)], conc[(False, warm)]
        crow.append(
            [
                ("warm" if warm else "cold (connections opened by the burst)"),
                spread(w * 1000 for w in h2).fmt(0),
                spread(w * 1000 for w in h1).fmt(0),
                spread(a / b for a, b in zip(h2, h1)).fmt(2),
            ]
        )
    sec.tables.append(
        f"**{n_conc} concurrent requests**: one HTTP/2 connection vs {n_conc} HTTP/1.1 connections\n\n"
        + markdown_table(["pool", "HTTP/2 wall ms", "HTTP/1.1 wall ms", "HTTP/2 / HTTP/1.1"], crow)
    )
    new_vs = spread(a / b for a, b in zip(seq["new client per request"], base))
    kit = spread(a / b for a, b in zip(seq["nbp_kit Client (pooled HTTP/2)"], seq["new client per request"]))
    sec.targets.append(
        Target(
            "connections",
            "pooling beats a new client per request (no numeric target)",
            f"new client per request takes {new_vs.fmt(2)} x pooled HTTP/2; nbp_kit {kit.fmt(2)} x new-client",
            kit.median < 1.0 if kit.n else None,
        )
    )
    h2w = spread(a / b for a, b in zip(conc[(True, True)], conc[(False, True)]))
    sec.notes.append(
        f"One multiplexed HTTP/2 connection serves {n_conc} concurrent 1K responses in "
        f"{h2w.fmt(2)} x the time of {n_conc} warm HTTP/1.1 connections (the emulator shapes each "
        "response on its own, so multiplexing does not share an emulated link; on loopback the real "
        "round trip is ~0, so HTTP/2 flow-control windows cost nothing here)."
    )
    return sec


if __name__ == "__main__":
    run_alone(section, __doc__)
