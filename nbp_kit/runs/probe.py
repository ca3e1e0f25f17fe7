"""Long-horizon probes: a few small requests every N minutes, for days, into the run store.

Each round sends the cheap models-list request (``GET /v1beta/models``, recorded as its own
attempt with ``transport="models"`` and no cost: it separates network time from model time)
and then one generation per config of a small fixed set. Rounds are ``interval_min`` apart
with +/- ``jitter_frac`` random jitter, so probes do not lock onto the minute.

Against the emulator's virtual clock (``clock_speed`` > 1) the interval is *virtual* time:
the probe sleeps ``interval / clock_speed`` real seconds, so a week of probing runs in
minutes and every record carries the virtual time it was served at::

    from nbp_kit import emulator, RunStore
    from nbp_kit.runs.probe import run_probe
    with emulator.start(time_scale=0.01, clock_start="2026-01-05T00:00Z", clock_speed=2016) as emu:
        result = run_probe(emu, store=RunStore("probe.sqlite"), interval_min=30, duration_h=24 * 7)
"""

from __future__ import annotations

import asyncio
import dataclasses
import random
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

from ..errors import ConfigError
from ..spec import ImageSpec
from .plan import DEFAULT_SPEND_CAP_USD, check_cap_value, expected_cost
from .recording import RecordingSink
from .runner import base_host_of
from .store import RunStore

DEFAULT_PROBE_PROMPT = "a small red cube on a white table, studio light"


@dataclasses.dataclass(frozen=True, slots=True)
class ProbeResult:
    """What a probe did. ``virtual_span_h`` is the span of service time it covered."""

    run_id: str
    rounds: int
    attempts: int
    ok: int
    failed: int
    cost_usd: float
    wall_s: float
    virtual_span_h: float
    stopped_reason: str  # completed | stopped | spend_cap

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def run_probe(
    target: Any,
    *,
    store: RunStore | None = None,
    interval_min: float = 30.0,
    jitter_frac: float = 0.2,
    specs: Sequence[ImageSpec] | None = None,
    prompt: str = DEFAULT_PROBE_PROMPT,
    provider: str = "gemini",
    rounds: int | None = None,
    duration_h: float | None = None,
    clock_speed: float | None = None,
    models_request: bool = True,
    spend_cap_usd: float = DEFAULT_SPEND_CAP_USD,
    seed: int = 0,
    stop_event: threading.Event | None = None,
    on_round: Callable[[int, float], Any] | None = None,
    run_id: str | None = None,
    tags: Sequence[str] = ("probe",),
) -> ProbeResult:
    """Probe ``target`` (an emulator handle, or a dict of client options) until done.

    Stops after ``rounds`` rounds or ``duration_h`` (virtual) hours, on ``stop_event``, or when
    the next round would pass ``spend_cap_usd``. ``on_round(round_no, cost_usd)`` is called
    after each round.

    >>> run_probe(emu, store=RunStore.memory(), interval_min=30, rounds=3).rounds  # doctest: +SKIP
    3
    """
    specs = tuple(specs) if specs is not None else (ImageSpec(resolution="1K"),)
    if not specs or not all(isinstance(s, ImageSpec) for s in specs):
        raise ConfigError(f"specs={specs!r} is not accepted; pass a non-empty list of ImageSpec")
    if not (isinstance(interval_min, (int, float)) and interval_min > 0) or isinstance(interval_min, bool):
        raise ConfigError(f"interval_min={interval_min!r} is not accepted; use minutes > 0")
    if not (0 <= jitter_frac < 1):
        raise ConfigError(f"jitter_frac={jitter_frac!r} is not accepted; use a share in [0, 1)")
    if rounds is not None and (isinstance(rounds, bool) or not isinstance(rounds, int) or rounds < 1):
        raise ConfigError(f"rounds={rounds!r} is not accepted; use a whole number >= 1 or None")
    if duration_h is not None and not (isinstance(duration_h, (int, float)) and duration_h > 0):
        raise ConfigError(f"duration_h={duration_h!r} is not accepted; use hours > 0 or None")
    if rounds is None and duration_h is None and stop_event is None:
        raise ConfigError("run_probe needs rounds=, duration_h= or a stop_event; it would never end")
    speed = float(clock_speed if clock_speed is not None else _clock_speed_of(target))
    if speed <= 0:
        raise ConfigError(f"clock_speed={clock_speed!r} is not accepted; use a number > 0")
    round_cost = sum(expected_cost(provider, s) for s in specs)
    check_cap_value(spend_cap_usd, round_cost)
    if not isinstance(prompt, str) or not prompt.strip():
        raise ConfigError(f"prompt={prompt!r} is not accepted; use a non-empty string")
    store = store if store is not None else RunStore()
    stop_event = stop_event or threading.Event()
    time_scale = float(getattr(target, "time_scale", 1.0) or 1.0)
    run_id = store.create_run(
        plan={
            "probe": True,
            "interval_min": interval_min,
            "jitter_frac": jitter_frac,
            "prompt": prompt,
            "specs": [s.as_dict() for s in specs],
            "models_request": models_request,
            "rounds": rounds,
            "duration_h": duration_h,
            "seed": seed,
        },
        provider=provider,
        base_host=_host_of(target),
        run_id=run_id,
        profile=getattr(target, "profile_name", None),
        time_scale=time_scale,
        clock="virtual" if speed != 1.0 else ("scaled" if time_scale != 1.0 else "real"),
        tags=tags,
        meta={"kind": "probe", "clock_speed": speed, "spend_cap_usd": spend_cap_usd},
    )
    box: dict[str, Any] = {}
    finished = threading.Event()

    def body() -> None:
        try:
            box["result"] = asyncio.run(
                _probe(
                    target,
                    store,
                    run_id,
                    specs=specs,
                    prompt=prompt,
                    provider=provider,
                    interval_s=interval_min * 60.0,
                    jitter_frac=jitter_frac,
                    rounds=rounds,
                    duration_s=duration_h * 3600.0 if duration_h else None,
                    speed=speed,
                    models_request=models_request,
                    spend_cap_usd=spend_cap_usd,
                    round_cost=round_cost,
                    seed=seed,
                    stop_event=stop_event,
                    on_round=on_round,
                )
            )
        except BaseException as exc:  # noqa: BLE001 - re-raised in the caller's thread
            box["error"] = exc
        finally:
            finished.set()

    # A thread of its own: works the same from a script and from a running Jupyter kernel.
    thread = threading.Thread(target=body, name=f"nbp-probe-{run_id}", daemon=True)
    thread.start()
    # Event waits, not Thread.join: see runner.SweepHandle (Ctrl-C during join on Python 3.11).
    try:
        while not finished.wait(0.2):
            pass
    except KeyboardInterrupt:
        stop_event.set()
        while not finished.wait(0.2):
            pass
        raise
    if "error" in box:
        raise box["error"]
    return box["result"]


def _clock_speed_of(target: Any) -> float:
    """The emulator's virtual seconds per real second (1.0 for anything else)."""
    speed = getattr(target, "clock_speed", None)
    if speed is None:
        speed = getattr(getattr(getattr(target, "app", None), "clock", None), "speed", None)
    return float(speed) if isinstance(speed, (int, float)) and speed > 0 else 1.0


def _host_of(target: Any) -> str:

    if isinstance(target, dict):
        return base_host_of(target.get("base_url") or "")
    return base_host_of(getattr(target, "base_url", "") or "")


async def _probe(
    target: Any,
    store: RunStore,
    run_id: str,
    *,
    specs: Sequence[ImageSpec],
    prompt: str,
    provider: str,
    interval_s: float,
    jitter_frac: float,
    rounds: int | None,
    duration_s: float | None,
    speed: float,
    models_request: bool,
    spend_cap_usd: float,
    round_cost: float,
    seed: int,
    stop_event: threading.Event,
    on_round: Callable[[int, float], Any] | None,
) -> ProbeResult:
    from ..client.core import AsyncClient

    sink = RecordingSink(store)
    if isinstance(target, dict):
        settings = {"provider": provider, **target}
        client = AsyncClient(sink=sink, **settings)
    else:
        client = AsyncClient.for_emulator(target, provider=provider, sink=sink)
    rng = random.Random(seed)
    started = time.monotonic()
    first_virtual: float | None = None
    last_virtual: float | None = None
    done_rounds = 0
    reason = "completed"
    try:
        while True:
            if stop_event.is_set():
                reason = "stopped"
                break
            if sink.cost_usd + round_cost > spend_cap_usd + 1e-9:
                reason = "spend_cap"
                break
            round_started = time.monotonic()
            virtual = None
            if models_request and provider == "gemini":
                models = await client.list_models(run_id=run_id, request_key=f"probe:{done_rounds}:models")
                virtual = models.virtual_at
            for spec in specs:
                gen = await client.generate(
                    prompt,
                    spec,
                    seed=seed,
                    run_id=run_id,
                    save=False,
                    raise_on_error=False,
                    request_key=f"probe:{done_rounds}:{spec.config_label}",
                )
                for a in gen.attempts:
                    virtual = a.virtual_at if a.virtual_at is not None else virtual
            if virtual is not None:
                first_virtual = virtual if first_virtual is None else first_virtual
                last_virtual = virtual
            done_rounds += 1
            if on_round is not None:
                on_round(done_rounds, sink.cost_usd)
            if rounds is not None and done_rounds >= rounds:
                break
            # Virtual time elapsed counts too: rounds slower than the interval would otherwise
            # stretch a "week" of probes over several virtual weeks on a fast clock.
            if duration_s is not None and (
                done_rounds * interval_s >= duration_s or (time.monotonic() - started) * speed >= duration_s
            ):
                break
            gap_s = interval_s * (1.0 + rng.uniform(-jitter_frac, jitter_frac))
            # The interval is service (virtual) time, start to start: a fast virtual clock
            # shortens the real wait, and the round's own duration is not added to it.
            wait_s = max(0.0, round_started + gap_s / speed - time.monotonic())
            if await asyncio.to_thread(stop_event.wait, wait_s):
                reason = "stopped"
                break
    finally:
        await client.aclose()
    store.mark_interrupted(run_id)
    span_h = (
        ((last_virtual - first_virtual) / 3600.0) if first_virtual is not None and last_virtual is not None else 0.0
    )
    result = ProbeResult(
        run_id=run_id,
        rounds=done_rounds,
        attempts=sink.attempts,
        ok=sink.ok,
        failed=sink.attempts - sink.ok,
        cost_usd=round(sink.cost_usd, 6),
        wall_s=time.monotonic() - started,
        virtual_span_h=span_h,
        stopped_reason=reason,
    )
    store.update_run(run_id, status="complete" if reason == "completed" else reason, summary=result.as_dict())
    return result
