"""Load: 64 concurrent generations against the emulator for a bounded time.

Asserts: no file-descriptor leak (the process's fd count after ``aclose()`` is back to what it
was before the client existed), RSS growth under 10 % between the end of the warm-up and the
end of the run, and 0 lost records (every attempt the client made is a finished row in the
SQLite store, and the emulator served exactly that many requests).

Default (``make test``): 30 s, a third of it warm-up. ``NBP_KIT_FULL=1`` (``make test-full``):
the full 5 minutes, one minute of warm-up. The emulator runs in this process on the
``instant`` profile (no generation delay), so the run is bound by CPU, not by sleeping.
"""

from __future__ import annotations

import asyncio
import gc
import os
import time
from pathlib import Path
from typing import Any

import psutil
import pytest

from nbp_kit import AsyncClient, ImageSpec, RunStore
from nbp_kit import emulator as emulator_mod

FULL = os.environ.get("NBP_KIT_FULL") == "1"
DURATION_S, WARMUP_S = (300.0, 60.0) if FULL else (30.0, 10.0)
CONCURRENCY = 64


def _rss() -> int:
    gc.collect()
    return psutil.Process().memory_info().rss


@pytest.mark.slow
@pytest.mark.timeout(DURATION_S + 240)
def test_concurrency_64_no_fd_leak_flat_memory_nothing_lost(tmp_path: Path) -> None:
    proc = psutil.Process()
    with emulator_mod.start("instant", time_scale=0.005, faults=False, quotas=False) as emu:
        store = RunStore(tmp_path / "load.sqlite")
        run_id = store.create_run(plan={"load": CONCURRENCY}, provider="gemini", base_host="emulator")
        served_before = emu.stats()["requests"]
        fds_before = proc.num_fds()
        marks: dict[str, Any] = {}

        async def main() -> tuple[int, int, int]:
            calls = attempts = failures = 0
            async with AsyncClient.for_emulator(emu, sink=store, max_connections=CONCURRENCY) as client:
                start = time.monotonic()

                async def worker(w: int) -> None:
                    nonlocal calls, attempts, failures
                    i = 0
                    while time.monotonic() - start < DURATION_S:
                        gen = await client.generate("load test", ImageSpec(resolution="1K"), seed=(w * 7 + i) % 16,
                                                    run_id=run_id, request_key=f"w{w}-{i}", save=False,
                                                    raise_on_error=False)
                        calls += 1
                        attempts += len(gen.attempts)
                        failures += not gen.ok
                        i += 1

                async def sampler() -> None:
                    # RSS after warm-up (every connection open, caches full) and at the end
                    await asyncio.sleep(WARMUP_S)
                    marks["rss_warm"] = _rss()
                    marks["calls_warm"] = calls

                await asyncio.gather(sampler(), *(worker(w) for w in range(CONCURRENCY)))
                marks["rss_end"] = _rss()
                marks["elapsed_s"] = time.monotonic() - start
                marks["fds_open"] = proc.num_fds()
            return calls, attempts, failures

        calls, attempts, failures = asyncio.run(main())
        served = emu.stats()["requests"] - served_before
    gc.collect()
    fds_after = proc.num_fds()
    rows = store.attempts(run_ids=[run_id])
    store.close()
    growth = (marks["rss_end"] - marks["rss_warm"]) / marks["rss_warm"]
    print(f"load: {calls} calls ({calls / marks['elapsed_s']:.1f}/s), {attempts} attempts, {failures} failed, "
          f"rss warm {marks['rss_warm'] / 1e6:.0f} MB -> end {marks['rss_end'] / 1e6:.0f} MB ({growth:+.1%}), "
          f"fds {fds_before} -> {marks['fds_open']} open -> {fds_after} after close")
    assert calls > marks["calls_warm"] > 0  # work continued after the warm-up
    assert failures == 0
    # nothing lost: every attempt is a finished row, every request the server saw is a row
    assert len(rows) == attempts == served
    assert set(rows["status"]) == {"ok"} and rows["attempt_id"].is_unique
    # no fd leak: sockets, the SQLite files and the emulator's own fds are all accounted for
    assert marks["fds_open"] >= fds_before + CONCURRENCY // 2  # the pool really was that wide
    assert fds_after <= fds_before, (fds_before, fds_after)
    assert growth < 0.10, f"RSS grew {growth:.1%} after warm-up"
