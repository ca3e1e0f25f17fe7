"""Emulator capacity: 2K responses per second at zero generation delay, and memory over time.

Not a test: a script that prints a Markdown table. The emulator runs in its own process
(``python -m nbp_kit.emulator --profile instant``) so its CPU and RSS are its own; the client
is httpx2 in this process. Ratios matter more than absolute figures on a shared machine::

    .venv/bin/python benchmarks/bench_emulator.py --requests 1000 --concurrency 8
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import subprocess
import sys
import time
from typing import Any

import httpx2 as httpx
import psutil

GEN = "/v1beta/models/gemini-3-pro-image-preview:generateContent"
PROMPTS = [f"benchmark prompt {i}: a lighthouse on a cliff at dawn" for i in range(8)]


def _start_server() -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "nbp_kit.emulator", "--profile", "instant", "--port", "0", "--no-faults", "--no-quotas"],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    match = re.search(r"(http://\S+)", line)
    if not match:
        proc.kill()
        raise SystemExit(f"emulator did not start: {line!r}")
    return proc, match.group(1)


async def _run(base: str, *, n: int, concurrency: int, gzip: bool, server: psutil.Process) -> dict[str, Any]:
    headers = {"x-goog-api-key": "bench", "accept-encoding": "gzip" if gzip else "identity"}
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    rss: list[float] = []
    done = 0
    wire_bytes = 0
    queue: asyncio.Queue[int] = asyncio.Queue()
    for i in range(n):
        queue.put_nowait(i)

    async with httpx.AsyncClient(limits=limits, timeout=120) as client:

        async def one(i: int) -> int:
            body = {
                "contents": [{"parts": [{"text": PROMPTS[i % len(PROMPTS)]}]}],
                "generationConfig": {
                    "responseModalities": ["IMAGE"],
                    "imageConfig": {"aspectRatio": "1:1", "imageSize": "2K"},
                },
            }
            async with client.stream("POST", base + GEN, json=body, headers=headers) as r:
                size = 0
                async for chunk in r.aiter_raw():
                    size += len(chunk)
                if r.status_code != 200:
                    raise RuntimeError(f"HTTP {r.status_code}")
                return size

        for i in range(len(PROMPTS)):  # warm the image cache: steady state is what we measure
            await one(i)
        cpu0 = server.cpu_times()
        t0 = time.perf_counter()

        async def worker() -> None:
            nonlocal done, wire_bytes
            while not queue.empty():
                i = queue.get_nowait()
                size = await one(i)  # not `+= await`: that reads the total before awaiting
                wire_bytes += size
                done += 1
                if done % max(1, n // 10) == 0:
                    rss.append(server.memory_info().rss / 2**20)

        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed = time.perf_counter() - t0
        cpu1 = server.cpu_times()
    cpu = (cpu1.user + cpu1.system) - (cpu0.user + cpu0.system)
    return {
        "requests": n,
        "seconds": elapsed,
        "rps": n / elapsed,
        "wire_mb_s": wire_bytes / elapsed / 1e6,
        "server_cpu_ms_per_req": cpu / n * 1000,
        "rss_first_mb": rss[0],
        "rss_last_mb": rss[-1],
        "rss_max_mb": max(rss),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, default=8)
    args = parser.parse_args(argv)
    proc, base = _start_server()
    try:
        server = psutil.Process(proc.pid)
        rows = [
            (
                "identity",
                asyncio.run(_run(base, n=args.requests, concurrency=args.concurrency, gzip=False, server=server)),
            ),
            (
                "gzip",
                asyncio.run(
                    _run(base, n=max(100, args.requests // 5), concurrency=args.concurrency, gzip=True, server=server)
                ),
            ),
        ]
    finally:
        proc.terminate()
        proc.wait(10)
    print(
        f"Emulator capacity, 2K 1:1 PNG (~3.7 MB, ~5 MB base64), profile instant, "
        f"concurrency {args.concurrency}, {os.cpu_count()} cores\n"
    )
    print(
        "| encoding | requests | 2K responses/s | wire MB/s | server CPU ms/req | server-bound responses/s per core "
        "| server RSS first -> last (max) MB |"
    )
    print("|---|---|---|---|---|---|---|")
    for name, r in rows:
        print(
            f"| {name} | {r['requests']} | {r['rps']:.1f} | {r['wire_mb_s']:.0f} | {r['server_cpu_ms_per_req']:.1f} "
            f"| {1000 / max(0.1, r['server_cpu_ms_per_req']):.0f} | {r['rss_first_mb']:.0f} -> {r['rss_last_mb']:.0f} ({r['rss_max_mb']:.0f}) |"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
