from __future__ import annotations

import asyncio

import pytest

from nbp_kit.errors import ConfigError
from nbp_kit.records import Attempt
from nbp_kit.runs.pacing import ConcurrencyLimiter, SweepPacer, TokenBucket


def _a(status="ok", kind=None, sent_at=None, delay=None, source=None):
    return Attempt(
        "a", "c", 1, status=status, error_kind=kind, sent_at=sent_at, retry_delay_s=delay, retry_delay_source=source
    )


def test_token_bucket_spaces_reservations_and_refills():
    t = [0.0]
    b = TokenBucket(rate_per_min=120, time_scale=0.5, clock=lambda: t[0])  # 0.25 s per token
    assert [b.reserve() for _ in range(3)] == [0.0, 0.25, 0.5]
    t[0] = 10.0
    assert b.reserve() == 0.0
    burst = TokenBucket(rate_per_min=60, burst=3, clock=lambda: t[0])
    assert [burst.reserve() for _ in range(4)] == [0.0, 0.0, 0.0, 1.0]
    with pytest.raises(ConfigError, match="rate_per_min"):
        TokenBucket(rate_per_min=0)


def test_aimd_grows_halves_and_stays_in_bounds():
    now = [100.0]
    lim = ConcurrencyLimiter(cap=4, adaptive=True, initial=1, clock=lambda: now[0])
    lim.in_use = 1
    for _ in range(50):
        lim.on_attempt(_a())
        lim.in_use = lim.slots
    assert lim.limit == 4.0  # capped
    lim.on_attempt(_a("error", "rate_limited", sent_at=101.0))
    assert lim.limit == 2.0
    # a second 429 from an attempt sent before the cut does not cut again
    lim.on_attempt(_a("error", "rate_limited", sent_at=99.0))
    assert lim.limit == 2.0
    now[0] = 200.0
    lim.on_attempt(_a("error", "overloaded", sent_at=150.0))
    assert lim.limit == pytest.approx(1.8)
    for _ in range(20):
        now[0] += 1
        lim.on_attempt(_a("error", "rate_limited", sent_at=now[0]))
    assert lim.limit == 1.0  # never below one
    # no growth while less than half the window is used
    lim2 = ConcurrencyLimiter(cap=10, adaptive=True, initial=8)
    lim2.in_use = 2
    lim2.on_attempt(_a())
    assert lim2.limit == 8.0


def test_fixed_limiter_does_not_move():
    lim = ConcurrencyLimiter(cap=3, adaptive=False)
    lim.on_attempt(_a("error", "rate_limited", sent_at=1e12))
    assert lim.limit == 3.0
    with pytest.raises(ConfigError, match="concurrency=0"):
        ConcurrencyLimiter(cap=0, adaptive=False)


def test_limiter_blocks_at_limit_and_wakes_on_release():
    async def main():
        lim = ConcurrencyLimiter(cap=2, adaptive=False)
        await lim.acquire()
        await lim.acquire()
        third = asyncio.ensure_future(lim.acquire())
        await asyncio.sleep(0)
        assert not third.done()
        lim.release()
        await asyncio.wait_for(third, 1)
        assert lim.in_use == 2 and lim.peak_in_use == 2

    asyncio.run(main())


def test_pacer_pauses_everyone_for_the_server_delay():
    t = [0.0]
    slept = []

    async def fake_sleep(s):
        slept.append(round(s, 6))
        t[0] += s

    pacer = SweepPacer(requests_per_min=60, clock=lambda: t[0], sleep=fake_sleep)

    async def main():
        await pacer.acquire()
        pacer.release(_a("error", "rate_limited", delay=5.0, source="retry-info"))
        await pacer.acquire()  # waits out the pause; the bucket's 1 s is inside it
        await pacer.acquire()

    asyncio.run(main())
    assert slept[0] == 5.0 and sum(slept) == pytest.approx(6.0)
    assert pacer.rate_limited == 1 and pacer.pauses == 1
    # a 429 without a server delay pauses for the default, scaled
    p2 = SweepPacer(time_scale=0.1, default_pause_s=2.0, clock=lambda: 0.0)
    p2.release(_a("error", "rate_limited", delay=0.7, source="backoff"))
    assert p2.pause_until == pytest.approx(0.2)
