"""Fault matrix: every fault kind the emulator injects x sync/async x Gemini/relay x unary/stream.

Combinations (6 per kind): {sync Client, AsyncClient} x {Gemini unary, Gemini stream, relay unary}.
The relay has no streaming (``capabilities("relay", ...).streaming`` is false: an OpenAI-style
images endpoint answers in one JSON body), so "relay x stream" does not apply.

Per combination and kind: 6 calls with the fault forced on the first attempt only (transient)
and 3 with it forced on every attempt (persistent), ``max_attempts=3``. That gives 54 injections
per kind for kinds that are not retried, 72 for bad payloads (retried once) and 90 for the
other retried kinds; the emulator's own
``stats()`` counts are checked against the client's records, so an injection is counted only
when the server really injected it.

Asserted for every call: only ``RequestFailed`` subclasses escape (or the call succeeds after a
retry); the exception class and error kind are the documented ones; no attempt runs past its
deadline + 1 s (the whole call: its attempts' bounds + 10 s of scheduling slack, since these
2-core machines run other suites at the same time); every attempt is reported to the sink as started and finished, exactly once;
at most one success per call; after ``close()`` no client socket to the emulator is left open.

``stamina.set_testing`` removes the back-off sleeps (back-off itself is tested in
test_retry.py); the emulator uses the ``instant`` profile at ``time_scale=0.005`` so a fault
costs milliseconds, except stall/trickle, which last one short deadline.
"""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import contextlib
import json
import os
import threading
import time
from pathlib import Path
from typing import Any

import psutil
import pytest
import stamina

from nbp_kit import AsyncClient, Client, ImageSpec, RetryPolicy, Timeouts
from nbp_kit import emulator as emulator_mod
from nbp_kit.errors import (
    APIError,
    BadPayload,
    ContentBlocked,
    RateLimited,
    RequestFailed,
    TransportFailed,
)

DEADLINE_S = 2.0
TRANSIENT, PERSISTENT = 6, 3
_POLICY = RetryPolicy(max_attempts=3)
COMBOS = [
    (mode, provider, stream)
    for mode in ("sync", "async")
    for provider, stream in (("gemini", False), ("gemini", True), ("relay", False))
]
SLOW = {"stall", "trickle"}  # they wait out a deadline: cheap to run many at once

# (exception class, error kind) per fault kind; the relay differs where its wire format does.
EXPECTED: dict[str, tuple[type[RequestFailed], str]] = {
    "429": (RateLimited, "rate_limited"),
    "429-daily": (RateLimited, "quota_daily"),
    "500": (APIError, "server_error"),
    "503": (APIError, "overloaded"),
    "504": (APIError, "server_timeout"),
    "reset": (TransportFailed, "connection_reset"),
    "truncated": (BadPayload, "bad_payload"),
    "stall": (TransportFailed, "timeout"),
    "trickle": (TransportFailed, "timeout"),
    "bad-base64": (BadPayload, "bad_payload"),
    "wrong-size": (BadPayload, "wrong_image"),
    "html": (APIError, "server_error"),
    "blocked": (ContentBlocked, "safety_block"),
    "image-safety": (ContentBlocked, "safety_block"),
    "no-image": (ContentBlocked, "no_image"),
}
RELAY_EXPECTED = {
    "429-daily": (RateLimited, "do_not_retry"),  # relays send x-should-retry: false
    "no-image": (BadPayload, "bad_payload"),  # 200 with an empty data[]: the relay says nothing more
}

FIGURES_PATH = (
    Path(os.environ.get("NBP_KIT_RELIABILITY_FIGURES", "")) if os.environ.get("NBP_KIT_RELIABILITY_FIGURES") else None
)


def _expected(kind: str, provider: str) -> tuple[type[RequestFailed], str]:
    return RELAY_EXPECTED.get(kind, EXPECTED[kind]) if provider == "relay" else EXPECTED[kind]


class _Sink:
    """Thread-safe in-memory sink: every started and finished record, by attempt id."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.started: collections.Counter[str] = collections.Counter()
        self.finished: dict[str, Any] = {}
        self.finished_twice: list[str] = []

    def attempt_started(self, a: Any) -> None:
        with self.lock:
            self.started[a.attempt_id] += 1

    def attempt_finished(self, a: Any) -> None:
        with self.lock:
            if a.attempt_id in self.finished:
                self.finished_twice.append(a.attempt_id)
            self.finished[a.attempt_id] = a


def _client_sockets(port: int) -> list[Any]:
    return [c for c in psutil.Process().net_connections(kind="tcp") if c.raddr and c.raddr.port == port]


@pytest.fixture(scope="module")
def fault_emulator():
    profile = dict(emulator_mod.load_profile("instant"))
    # trickle lasts 800 s x 0.005 = 4 s (~3 s gzipped), longer than the 2 s deadline; stall never ends by itself
    profile["fault_params"] = {"stall_s": 900, "trickle_total_s": 800, "retry_delay_s": [8, 45]}
    emu = emulator_mod.start(profile, time_scale=0.005, faults=False, quotas=False)
    try:
        yield emu
    finally:
        emu.stop()


def _plan(kind: str) -> list[tuple[str, bool]]:
    return [(kind, False)] * TRANSIENT + [(kind, True)] * PERSISTENT


def _headers(kind: str, persistent: bool):
    return lambda n: {"x-emulator-fault": kind} if (persistent or n == 1) else {}


def _check_call(kind: str, provider: str, persistent: bool, outcome: Any, wall_s: float) -> tuple[str, int]:
    """Assert one call's outcome; returns ("ok" | error kind, injections)."""
    cls, err_kind = _expected(kind, provider)
    assert not isinstance(outcome, BaseException) or isinstance(outcome, RequestFailed), (
        f"{kind}/{provider}: unhandled {type(outcome).__name__}: {outcome!r}"
    )
    attempts = outcome.attempts
    assert attempts, f"{kind}: no attempt recorded"
    assert [a.attempt_no for a in attempts] == list(range(1, len(attempts) + 1))
    injected = [a for a in attempts if persistent or a.attempt_no == 1]
    for a in injected:
        assert a.status == "error" and a.error_kind == err_kind, (kind, provider, a.error_kind, a.error_message)
    for a in attempts:
        assert a.total_s is not None and a.total_s <= DEADLINE_S + 1.0, f"{kind}: attempt took {a.total_s:.2f} s"
    assert wall_s <= len(attempts) * (DEADLINE_S + 1.0) + 10.0, f"{kind}: call took {wall_s:.2f} s"
    oks = [a for a in attempts if a.status == "ok"]
    assert len(oks) <= 1, "duplicate success"
    retried = _POLICY.decide(kind=err_kind, attempt_no=1).retry
    if retried and not persistent:
        assert not isinstance(outcome, BaseException) and outcome.ok, (
            f"{kind}: no success after retry: {[_phases(a) for a in attempts]}"
        )
        assert oks == [attempts[-1]]
        # a clean retry may still time out when the shared machine is saturated; nothing else
        assert all(a.error_kind == "timeout" for a in attempts[1:-1]), [_phases(a) for a in attempts]
        return "ok_after_retry", len(injected)
    assert isinstance(outcome, cls) and outcome.kind == err_kind, (kind, provider, type(outcome), outcome)
    assert not oks and len(attempts) == (_planned_attempts(err_kind) if retried else 1)
    assert outcome.retryable == retried
    return err_kind, len(injected)


def _phases(a: Any) -> dict[str, Any]:
    return {
        k: getattr(a, k)
        for k in (
            "attempt_no",
            "error_kind",
            "queue_s",
            "connect_s",
            "send_s",
            "wait_s",
            "download_s",
            "parse_s",
            "decode_s",
            "total_s",
            "connection_reused",
        )
    }


def _run_sync(emu: Any, provider: str, stream: bool, sink: _Sink, calls: list[tuple[str, bool]]) -> list[tuple]:
    timeouts = Timeouts(deadline_s={"1K": DEADLINE_S, "2K": DEADLINE_S, "4K": DEADLINE_S})
    client = Client.for_emulator(emu, provider=provider, stream=stream, timeouts=timeouts, retry=_POLICY, sink=sink)

    def one(i: int, kind: str, persistent: bool) -> tuple:
        t0 = time.monotonic()
        try:
            out: Any = client.generate(
                "fault matrix", ImageSpec(resolution="1K"), seed=i % 3, save=False, headers=_headers(kind, persistent)
            )
        except Exception as exc:  # judged by _check_call: only RequestFailed may get here
            out = exc
        return kind, persistent, out, time.monotonic() - t0

    slow = [(i, k, p) for i, (k, p) in enumerate(calls) if k in SLOW]
    fast = [(i, k, p) for i, (k, p) in enumerate(calls) if k not in SLOW]
    try:
        with (
            concurrent.futures.ThreadPoolExecutor(max_workers=max(1, len(slow))) as slow_pool,
            concurrent.futures.ThreadPoolExecutor(max_workers=2) as fast_pool,
        ):
            futures = [slow_pool.submit(one, *c) for c in slow] + [fast_pool.submit(one, *c) for c in fast]
            results = [f.result(timeout=120) for f in futures]
    finally:
        client.close()
    return results


async def _run_async(emu: Any, provider: str, stream: bool, sink: _Sink, calls: list[tuple[str, bool]]) -> list[tuple]:
    timeouts = Timeouts(deadline_s={"1K": DEADLINE_S, "2K": DEADLINE_S, "4K": DEADLINE_S})
    gate = asyncio.Semaphore(2)
    async with AsyncClient.for_emulator(
        emu, provider=provider, stream=stream, timeouts=timeouts, retry=_POLICY, sink=sink
    ) as client:

        async def one(i: int, kind: str, persistent: bool) -> tuple:
            async with gate if kind not in SLOW else contextlib.nullcontext():
                t0 = time.monotonic()  # after the gate: the call's own time, not its turn in line
                try:
                    out: Any = await client.generate(
                        "fault matrix",
                        ImageSpec(resolution="1K"),
                        seed=i % 3,
                        save=False,
                        headers=_headers(kind, persistent),
                    )
                except Exception as exc:
                    out = exc
                return kind, persistent, out, time.monotonic() - t0

        results = await asyncio.wait_for(asyncio.gather(*(one(i, k, p) for i, (k, p) in enumerate(calls))), 120)
    return results


def _port(emu: Any) -> int:
    return int(emu.base_url.rsplit(":", 1)[1])


_FIGURES: dict[str, collections.Counter[str]] = collections.defaultdict(collections.Counter)


@pytest.mark.parametrize(
    ("mode", "provider", "stream"), COMBOS, ids=[f"{m}-{p}-{'stream' if s else 'unary'}" for m, p, s in COMBOS]
)
def test_fault_matrix(fault_emulator, mode: str, provider: str, stream: bool) -> None:
    emu = fault_emulator
    calls = [c for kind in emulator_mod.FAULT_KINDS for c in _plan(kind)]
    sink = _Sink()
    before = emu.stats()["by_outcome"]
    with stamina.set_testing(True, attempts=10, cap=True):
        if mode == "sync":
            results = _run_sync(emu, provider, stream, sink, calls)
        else:
            results = asyncio.run(_run_async(emu, provider, stream, sink, calls))
    after = emu.stats()["by_outcome"]

    injected: collections.Counter[str] = collections.Counter()
    outcomes: collections.Counter[str] = collections.Counter()
    n_attempts = 0
    for kind, persistent, out, wall_s in results:
        result, n = _check_call(kind, provider, persistent, out, wall_s)
        injected[kind] += n
        outcomes[f"{kind}:{result}"] += 1
        n_attempts += len(out.attempts)
    # every attempt reported once as started and once as finished, none left "started"
    assert not sink.finished_twice
    assert set(sink.started) == set(sink.finished) and all(v == 1 for v in sink.started.values())
    assert len(sink.finished) == n_attempts
    assert all(a.status in ("ok", "error") for a in sink.finished.values())
    # the server saw exactly the injections the records say
    for kind in emulator_mod.FAULT_KINDS:
        served = after.get(f"fault_{kind}", 0) - before.get(f"fault_{kind}", 0)
        assert served == injected[kind] == _planned_injections(kind, provider), (kind, served, injected[kind])
    # no client socket to the emulator survives close()
    assert _client_sockets(_port(emu)) == []
    key = f"{mode}-{provider}-{'stream' if stream else 'unary'}"
    for kind, n in injected.items():
        _FIGURES[kind][key] = n
    _FIGURES["_outcomes"].update(outcomes)
    if FIGURES_PATH is not None:  # `NBP_KIT_RELIABILITY_FIGURES=path pytest ...` writes the table
        FIGURES_PATH.write_text(json.dumps({k: dict(v) for k, v in _FIGURES.items()}, indent=1, sort_keys=True))


def _planned_attempts(err_kind: str) -> int:
    """Attempts of a call whose every attempt fails with ``err_kind``."""
    n = 1
    while _POLICY.decide(kind=err_kind, attempt_no=n, once_kind_failures=n).retry:
        n += 1
    return n


def _planned_injections(kind: str, provider: str) -> int:
    return TRANSIENT + PERSISTENT * _planned_attempts(_expected(kind, provider)[1])


def test_fault_matrix_plans_at_least_fifty_injections_per_kind() -> None:
    """The plan the matrix runs (each combination asserts it injected exactly this)."""
    for kind in emulator_mod.FAULT_KINDS:
        total = sum(_planned_injections(kind, provider) for _, provider, _ in COMBOS)
        assert total >= 50, (kind, total)
