"""The sweep runner: as fast as the quota allows, never past the spend cap, nothing lost.

``run_sweep`` runs a :class:`~nbp_kit.runs.plan.Plan` and returns a :class:`SweepResult`;
``start_sweep`` does the same in a background thread and returns a :class:`SweepHandle`
(``.stop()``, ``.done``, ``.result()``) so a Jupyter kernel stays responsive::

    from nbp_kit import emulator, RunStore, Plan, run_sweep
    with emulator.start(time_scale=0.02) as emu:
        result = run_sweep(Plan(prompts=["a cat"], repetitions=3), emu, store=RunStore.memory())
    result.ok, result.cost_usd

Loops:

* **closed** (default): ``concurrency`` calls in flight, an int or ``"adaptive"`` (AIMD in
  :mod:`nbp_kit.runs.pacing`, capped by ``max_concurrency``);
* **open**: ``arrival="fixed"`` or ``"poisson"`` at ``rate_per_min``; each call's
  ``scheduled_at`` is its arrival time, so time spent queued in the client shows up as the
  ``queue`` phase instead of disappearing (coordinated omission). Calls in flight are still
  capped by ``concurrency`` (or the adaptive limit): an arrival past the cap waits, and its
  wait is part of its queue phase, so an overloaded service is measured, not flooded.

Every attempt is committed to the store before it is sent (the client's sink). The sweep
stops early on the spend cap (recorded cost plus what is in flight), on an error rate above
``max_error_rate`` over the last ``error_window`` calls, or on ``stop_event``/Ctrl-C; in-flight
calls finish (or, past ``cancel_grace_s``, are cancelled and marked so). Resume with
``run_id=``: only items without a success run again, attempts a crash left ``started`` are
marked ``cancelled (interrupted)`` and their stray image files removed.
"""

from __future__ import annotations

import asyncio
import collections
import dataclasses
import inspect
import random
import threading
import time
import urllib.parse
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .._paths import RUNS_DIR
from ..errors import ConfigError, SpendCapExceeded
from ..records import Attempt
from .editing import generate_item
from .pacing import ConcurrencyLimiter, SweepPacer
from .plan import (
    DEFAULT_SPEND_CAP_USD,
    Plan,
    PlanItem,
    Preflight,
    check_spend_cap,
    item_expected_cost,
)
from .store import RunStore
from .writer import StoreWriter

ARRIVALS = ("closed", "fixed", "poisson")
DEFAULT_IMAGE_DIR = RUNS_DIR / "images"


@dataclasses.dataclass(frozen=True, slots=True)
class ProgressEvent:
    """Sent to ``on_progress`` after every finished call (from the sweep's thread)."""

    run_id: str
    done: int
    total: int
    ok: int
    failed: int
    cost_usd: float
    elapsed_s: float
    in_flight: int
    concurrency_limit: float
    last: Attempt | None

    def as_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["last"] = self.last.as_dict() if self.last else None
        return d


@dataclasses.dataclass(frozen=True, slots=True)
class SweepResult:
    """What a sweep did. Rates are per *service* minute (``60 * time_scale`` seconds)."""

    run_id: str
    planned: int  # plan items
    skipped: int  # already succeeded before this session (resume)
    calls: int  # calls made this session
    ok: int
    failed: int
    attempts: int
    rate_limited: int  # attempts answered 429
    images: int  # variants received (a 2x2 grid gives 4)
    cost_usd: float  # recorded this session
    run_cost_usd: float  # recorded for the whole run
    est_cost_usd: float  # pre-flight estimate for this session's items
    wall_s: float
    time_scale: float
    requested_rate_per_min: float | None
    achieved_rate_per_min: float
    peak_concurrency: int
    final_concurrency_limit: float
    stopped_reason: str  # completed | stopped | spend_cap | error_rate | interrupted
    interrupted_marked: int  # attempts marked cancelled (interrupted) on resume or cancel

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @property
    def rate_limited_share(self) -> float:
        return self.rate_limited / self.attempts if self.attempts else 0.0


class SweepHandle:
    """A sweep running in a background thread (see :func:`start_sweep`)."""

    def __init__(self, thread: threading.Thread, stop_event: threading.Event, box: dict[str, Any]) -> None:
        self._thread = thread
        self._stop = stop_event
        self._box = box
        # Waiting on an Event, not Thread.join: on Python 3.11 a Ctrl-C that interrupts join()
        # marks a still-running thread as stopped (bpo-45274), and the next join() returns early.
        self._finished: threading.Event = box["finished"]

    def stop(self) -> None:
        """Ask the sweep to stop: nothing new starts, in-flight calls finish."""
        self._stop.set()

    @property
    def done(self) -> bool:
        return self._finished.is_set()

    @property
    def run_id(self) -> str | None:
        return self._box.get("run_id")

    def result(self, timeout: float | None = None) -> SweepResult:
        """Wait for the sweep and return its result (re-raising its error)."""
        if not self._finished.wait(timeout):
            raise TimeoutError(f"the sweep is still running after timeout={timeout!r} s")
        if "error" in self._box:
            raise self._box["error"]
        return self._box["result"]


def start_sweep(plan: Plan | None, client_or_settings: Any = None, **options: Any) -> SweepHandle:
    """Start :func:`run_sweep` in a background thread; same arguments.

    Validation (bad options, the spend cap) happens before the thread starts, so errors
    raise here.
    """
    stop_event = options.pop("stop_event", None) or threading.Event()
    prepared = _prepare(plan, client_or_settings, stop_event=stop_event, **options)
    box: dict[str, Any] = {"run_id": prepared.run_id, "finished": threading.Event()}

    def target() -> None:
        try:
            box["result"] = asyncio.run(_run(prepared))
        except BaseException as exc:  # noqa: BLE001 - handed to the caller by result()
            box["error"] = exc
        finally:
            box["finished"].set()

    thread = threading.Thread(target=target, name=f"nbp-sweep-{prepared.run_id}", daemon=True)
    thread.start()
    return SweepHandle(thread, stop_event, box)


def run_sweep(plan: Plan | None, client_or_settings: Any = None, *, store: RunStore | None = None,
              spend_cap_usd: float = DEFAULT_SPEND_CAP_USD, concurrency: int | str = "adaptive",
              max_concurrency: int = 16, rate_per_min: float | None = None, images_per_min: float | None = None,
              arrival: str = "closed", progress: bool = True, on_progress: Callable[[ProgressEvent], Any] | None = None,
              stop_event: threading.Event | None = None, run_id: str | None = None,
              output_dir: str | Path | None = None, time_scale: float | None = None,
              max_error_rate: float = 0.5, error_window: int = 20, cancel_grace_s: float = 30.0,
              retry_budget: Any = "default", tags: tuple[str, ...] = (), save_images: bool = True) -> SweepResult:
    """Run a plan and record every attempt; returns a :class:`SweepResult`.

    ``client_or_settings``: an emulator handle, a dict of ``AsyncClient`` options, a client,
    or a factory ``f(*, sink, pacer, retry_budget, output_dir) -> client``.
    ``rate_per_min`` paces requests (closed loop) or sets the arrival rate (open loop);
    ``images_per_min`` adds an image bucket. Ctrl-C stops cleanly and re-raises
    ``KeyboardInterrupt`` after every record is written.

    >>> from nbp_kit import emulator                                  # doctest: +SKIP
    >>> with emulator.start(time_scale=0.02) as emu:                  # doctest: +SKIP
    ...     run_sweep(Plan(prompts=["a cat"]), emu, store=RunStore.memory(), progress=False).ok
    1
    """
    options = {k: v for k, v in locals().items() if k not in ("plan", "client_or_settings", "stop_event")}
    stop_event = stop_event or threading.Event()
    handle = start_sweep(plan, client_or_settings, stop_event=stop_event, **options)
    try:
        while not handle._finished.wait(0.2):  # short waits keep Ctrl-C deliverable in the main thread
            pass
    except KeyboardInterrupt:
        handle.stop()
        while not handle._finished.wait(0.2):  # a second Ctrl-C must not leave the sweep running unseen
            pass
        raise
    return handle.result()


# --------------------------------------------------------------------------- preparation
@dataclasses.dataclass(slots=True)
class _Prepared:
    plan: Plan
    todo: list[PlanItem]
    skipped: int
    run_id: str
    store: RunStore
    make_client: Callable[..., Any]
    close_client: bool
    preflight: Preflight
    spend_cap_usd: float
    already_spent_usd: float
    adaptive: bool
    cap: int
    rate_per_min: float | None
    images_per_min: float | None
    arrival: str
    time_scale: float
    progress: bool
    on_progress: Callable[[ProgressEvent], Any] | None
    stop_event: threading.Event
    output_dir: Path
    max_error_rate: float
    error_window: int
    cancel_grace_s: float
    retry_budget: Any
    interrupted_marked: int
    save_images: bool
    profile: dict[str, Any] | None


def _prepare(plan: Plan | None, client_or_settings: Any, *, store: RunStore | None = None,
             spend_cap_usd: float = DEFAULT_SPEND_CAP_USD, concurrency: int | str = "adaptive",
             max_concurrency: int = 16, rate_per_min: float | None = None, images_per_min: float | None = None,
             arrival: str = "closed", progress: bool = True, on_progress: Callable[[ProgressEvent], Any] | None = None,
             stop_event: threading.Event, run_id: str | None = None, output_dir: str | Path | None = None,
             time_scale: float | None = None, max_error_rate: float = 0.5, error_window: int = 20,
             cancel_grace_s: float = 30.0, retry_budget: Any = "default", tags: tuple[str, ...] = (),
             save_images: bool = True) -> _Prepared:
    # Everything is validated here, before a single request is sent.
    if concurrency == "adaptive":
        adaptive, cap = True, max_concurrency
    else:
        adaptive, cap = False, concurrency
    if isinstance(cap, bool) or not isinstance(cap, int) or cap < 1:
        name = "max_concurrency" if adaptive else "concurrency"
        raise ConfigError(f"{name}={cap!r} is not accepted; use a whole number >= 1 (or concurrency='adaptive')")
    if arrival not in ARRIVALS:
        raise ConfigError(f"arrival={arrival!r} is not accepted; use one of {', '.join(map(repr, ARRIVALS))}")
    for name, value in (("rate_per_min", rate_per_min), ("images_per_min", images_per_min)):
        if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0):
            raise ConfigError(f"{name}={value!r} is not accepted; use a number > 0 or None")
    if arrival != "closed" and rate_per_min is None:
        raise ConfigError(f"arrival={arrival!r} needs rate_per_min (the arrival rate per minute)")
    if not (0 < max_error_rate <= 1):
        raise ConfigError(f"max_error_rate={max_error_rate!r} is not accepted; use a share in (0, 1]")
    if isinstance(error_window, bool) or not isinstance(error_window, int) or error_window < 1:
        raise ConfigError(f"error_window={error_window!r} is not accepted; use a whole number >= 1")
    if plan is not None and not isinstance(plan, Plan):
        raise ConfigError(f"plan={plan!r:.80} is not accepted; use an nbp_kit.Plan (Plan.from_dict for a dict), or None to resume")
    if store is not None and not isinstance(store, RunStore):
        raise ConfigError(f"store={store!r:.80} is not accepted; use an nbp_kit.RunStore (RunStore(path) for a path)")
    if store is None:
        store = RunStore()
    emu_scale = getattr(client_or_settings, "time_scale", None)
    scale = float(time_scale if time_scale is not None else emu_scale if emu_scale is not None else 1.0)
    if scale <= 0:
        raise ConfigError(f"time_scale={time_scale!r} is not accepted; use a number > 0")
    profile = getattr(client_or_settings, "profile_name", None)
    # The running emulator's own profile (it may be a custom dict with no file behind it).
    profile_data = getattr(getattr(client_or_settings, "app", None), "profile", None)
    profile_data = profile_data if isinstance(profile_data, dict) else _profile_dict(profile)

    already = 0.0
    interrupted = 0
    if run_id is not None and store.has_run(run_id):
        run = store.get_run(run_id)
        stored = Plan.from_dict(run["plan"], source=f"run {run_id}")
        if plan is None:
            plan = stored
        elif sorted(i.request_key for i in plan.items()) != sorted(i.request_key for i in stored.items()):
            raise ConfigError(f"plan differs from the plan stored with run_id={run_id!r}; pass plan=None to resume it")
        interrupted = store.mark_interrupted(run_id)
        _remove_stray_files(store, run_id, run.get("image_dir"))
        already = store.run_cost_usd(run_id)
        done = store.done_keys(run_id)
        if run.get("time_scale") and time_scale is None and emu_scale is None:
            scale = float(run["time_scale"])
    elif run_id is not None and plan is None:
        store.get_run(run_id)  # raises ConfigError naming the unknown run id
        raise AssertionError("unreachable")
    else:
        done = set()
    if plan is None:
        raise ConfigError("plan=None is only accepted with the run_id of a stored run to resume")
    items = plan.items()
    todo = [i for i in items if i.request_key not in done]
    full = plan.preflight(concurrency=cap, time_scale=scale, profile=profile_data,
                          rate_per_min=rate_per_min)
    prof = profile_data
    remaining_cost = round(sum(item_expected_cost(plan.provider, i, profile=prof) for i in todo), 6)
    pf = dataclasses.replace(
        full, requests=len(todo), images=sum(i.spec.tiles for i in todo), est_cost_usd=remaining_cost,
        est_time_s=full.est_time_s * (len(todo) / len(items) if items else 0.0),
    )
    check_spend_cap(pf, spend_cap_usd, already_spent_usd=already)

    out_dir = Path(output_dir) if output_dir is not None else DEFAULT_IMAGE_DIR
    make_client, close_client, base_host = _client_factory(client_or_settings, plan)
    if run_id is None or not store.has_run(run_id):
        run_id = run_id or time.strftime("%Y%m%d-%H%M%S-") + uuid.uuid4().hex[:6]
        run_id = store.create_run(
            plan=plan.as_dict(), provider=plan.provider, base_host=base_host, run_id=run_id, profile=profile,
            time_scale=scale, clock="real" if scale == 1.0 else "scaled", image_dir=out_dir / run_id, tags=tags,
            meta={"concurrency": concurrency, "max_concurrency": max_concurrency, "arrival": arrival,
                  "rate_per_min": rate_per_min, "images_per_min": images_per_min, "spend_cap_usd": spend_cap_usd,
                  "preflight": pf.as_dict()},
        )
    if retry_budget == "default":
        retry_budget = _default_retry_budget()
    return _Prepared(
        plan=plan, todo=todo, skipped=len(items) - len(todo), run_id=run_id, store=store, make_client=make_client,
        close_client=close_client, preflight=pf, spend_cap_usd=float(spend_cap_usd), already_spent_usd=already,
        adaptive=adaptive, cap=cap, rate_per_min=rate_per_min, images_per_min=images_per_min, arrival=arrival,
        time_scale=scale, progress=progress, on_progress=on_progress, stop_event=stop_event, output_dir=out_dir,
        max_error_rate=max_error_rate, error_window=error_window, cancel_grace_s=cancel_grace_s,
        retry_budget=retry_budget, interrupted_marked=interrupted, save_images=save_images, profile=prof,
    )


def _profile_dict(profile: Any) -> dict[str, Any] | None:
    from .plan import load_profile_dict

    try:
        return load_profile_dict(profile)
    except ConfigError:
        return None


def _default_retry_budget() -> Any:
    try:
        from ..client.retry import RetryBudget
    except ImportError:
        return None
    return RetryBudget()


def _remove_stray_files(store: RunStore, run_id: str, image_dir: str | None) -> None:
    """After a crash: drop temp files and images of attempts that never finished."""
    if not image_dir or not Path(image_dir).is_dir():
        return
    frame = store.attempts(run_ids=[run_id])
    recorded = {p for p in frame["image_path"].dropna()} | {p for paths in frame["tile_paths"] for p in paths}
    recorded_names = {Path(p).name for p in recorded}
    for path in Path(image_dir).iterdir():
        if not path.is_file():
            continue
        if ".tmp" in path.name or path.name.startswith("."):
            path.unlink(missing_ok=True)
        elif path.name not in recorded_names:
            # An image whose attempt never committed its outcome: not part of the record.
            path.unlink(missing_ok=True)


def _client_factory(obj: Any, plan: Plan) -> tuple[Callable[..., Any], bool, str]:
    """(factory(sink, pacer, retry_budget, output_dir) -> client, close it after?, base host)."""
    if callable(obj) and not hasattr(obj, "generate") and not hasattr(obj, "base_url"):
        return obj, True, ""
    if hasattr(obj, "generate"):
        def reuse(*, sink: Any, pacer: Any, retry_budget: Any, output_dir: Path) -> Any:
            # A caller's own client is never changed: the sweep uses a copy with its own hooks
            # that shares the caller's settings and connection pool.
            hooks = {"sink": sink, "pacer": pacer, "retry_budget": retry_budget, "output_dir": output_dir}
            return _SyncAdapter(obj, hooks) if hasattr(obj, "submit") else _derived(obj, hooks, share_pool=False)
        # closing what reuse() returns closes only a pool the sweep opened, never the caller's
        return reuse, True, base_host_of(getattr(obj, "base_url", "") or "")
    from ..client.core import AsyncClient

    if obj is None or isinstance(obj, dict):
        settings = dict(obj or {})
        settings.setdefault("provider", plan.provider)
        settings.setdefault("model", plan.model)

        def build(*, sink: Any, pacer: Any, retry_budget: Any, output_dir: Path) -> Any:
            return AsyncClient(sink=sink, pacer=pacer, retry_budget=retry_budget, output_dir=output_dir, **settings)
        return build, True, base_host_of(settings.get("base_url") or "")
    if hasattr(obj, "base_url") and hasattr(obj, "api_key"):
        def for_emu(*, sink: Any, pacer: Any, retry_budget: Any, output_dir: Path) -> Any:
            return AsyncClient.for_emulator(obj, provider=plan.provider, model=plan.model, sink=sink, pacer=pacer,
                                            retry_budget=retry_budget, output_dir=output_dir)
        return for_emu, True, base_host_of(obj.base_url)
    raise ConfigError(
        f"client_or_settings={type(obj).__name__} is not accepted; pass an emulator handle, a dict of client "
        "options, a Client/AsyncClient, or a factory"
    )


def _derived(client: Any, hooks: dict[str, Any], *, share_pool: bool) -> Any:
    """A shallow copy of ``client`` with the sweep's hooks set (same settings).

    ``share_pool``: use the client's connection pool (only on the loop that owns it, the
    sync Client's thread); otherwise the copy opens its own pool on the sweep's loop and
    ``aclose()`` closes only that one.
    """
    import copy

    if share_pool and hasattr(client, "_client"):
        client._client()
    twin = copy.copy(client)
    for name, value in hooks.items():
        if hasattr(twin, name):
            setattr(twin, name, value)
    if not share_pool and hasattr(twin, "_http"):
        twin._http = None
        own_close = type(twin).aclose

        async def aclose() -> None:
            await own_close(twin)

    else:
        async def aclose() -> None:  # the caller's pool (or an object of their own): left open
            return None

    try:
        twin.aclose = aclose
    except AttributeError:  # a caller's object with __slots__: nothing of ours to close
        pass
    return twin


class _SyncAdapter:
    """Runs a sync Client's calls on its own loop thread (through a derived copy of its async
    client, so the caller's client is not changed), awaited from the sweep's loop."""

    def __init__(self, client: Any, hooks: dict[str, Any]) -> None:
        self._client = client
        self._loop = client._runner.loop
        self._twin = asyncio.run_coroutine_threadsafe(self._derive(client.aio, hooks), self._loop).result()

    @staticmethod
    async def _derive(aio: Any, hooks: dict[str, Any]) -> Any:
        return _derived(aio, hooks, share_pool=True)  # on the client's own loop: its pool lives there

    async def generate(self, prompt: str, spec: Any, **kw: Any) -> Any:
        return await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(
            self._twin.generate(prompt, spec, **kw), self._loop))


def base_host_of(url: str) -> str:
    if not url:
        return ""
    parsed = urllib.parse.urlsplit(url)
    return parsed.hostname + (f":{parsed.port}" if parsed.port else "") if parsed.hostname else ""


# --------------------------------------------------------------------------- the loop
class _Tally:
    """Counts written from the sink (any thread) and read by the loop."""

    def __init__(self, store: RunStore, prep: _Prepared) -> None:
        self.store = store
        self.writer = StoreWriter(store)  # finished rows: committed off the timing loop
        self.lock = threading.Lock()
        self.cost_usd = 0.0
        self.attempts = 0
        self.rate_limited = 0
        self.in_flight_attempts: set[str] = set()

    # sink protocol
    def attempt_started(self, attempt: Attempt) -> None:
        self.store.attempt_started(attempt)
        with self.lock:
            self.in_flight_attempts.add(attempt.attempt_id)

    def attempt_finished(self, attempt: Attempt) -> None:
        self.writer.submit(attempt)
        with self.lock:
            self.in_flight_attempts.discard(attempt.attempt_id)
            self.attempts += 1
            self.cost_usd += attempt.cost_usd or 0.0
            if attempt.error_kind == "rate_limited":
                self.rate_limited += 1


async def _run(prep: _Prepared) -> SweepResult:
    from tqdm.auto import tqdm

    store = prep.store
    tally = _Tally(store, prep)
    limiter = ConcurrencyLimiter(cap=prep.cap, adaptive=prep.adaptive)
    closed = prep.arrival == "closed"
    pacer = SweepPacer(requests_per_min=prep.rate_per_min if closed else None, images_per_min=prep.images_per_min,
                       time_scale=prep.time_scale, limiter=limiter)
    client = prep.make_client(sink=tally, pacer=pacer, retry_budget=prep.retry_budget, output_dir=prep.output_dir)
    store.update_run(prep.run_id, status="running")
    total = len(prep.todo)
    bar = tqdm(total=total, desc=f"sweep {prep.run_id}", unit="call", disable=not prep.progress, leave=True)
    started = time.monotonic()
    state = {"done": 0, "ok": 0, "failed": 0, "images": 0, "reason": None, "in_flight": 0, "est_in_flight": 0.0}
    window: collections.deque[bool] = collections.deque(maxlen=prep.error_window)
    queue = collections.deque(prep.todo)
    tasks: set[asyncio.Task[Any]] = set()

    def stop_reason() -> str | None:
        if state["reason"]:
            return state["reason"]
        if prep.stop_event.is_set():
            state["reason"] = "stopped"
        elif len(window) >= prep.error_window and window.count(False) / len(window) > prep.max_error_rate:
            state["reason"] = "error_rate"
        return state["reason"]

    def cap_allows(item: PlanItem) -> bool:
        # Recorded cost + what is in flight + this call must stay within the cap.
        est = item_expected_cost(prep.plan.provider, item, profile=prep.profile)
        with tally.lock:
            spent = prep.already_spent_usd + tally.cost_usd
        if spent + state["est_in_flight"] + est > prep.spend_cap_usd + 1e-9:
            state["reason"] = state["reason"] or "spend_cap"
            return False
        return True

    async def call(item: PlanItem, scheduled_at: float) -> None:
        est = item_expected_cost(prep.plan.provider, item, profile=prep.profile)
        state["est_in_flight"] += est
        state["in_flight"] += 1
        try:
            kwargs = dict(seed=item.seed, stream=item.transport == "stream", run_id=prep.run_id,
                          request_key=item.request_key, scheduled_at=scheduled_at, raise_on_error=False)
            if not prep.save_images:
                kwargs["save"] = False
            gen = await generate_item(client, item, kwargs)
        except Exception as exc:  # noqa: BLE001 - a client bug or bad input: stop and raise it after cleanup
            state.setdefault("fatal", exc)
            state["reason"] = state["reason"] or "client_error"
            gen = None
        finally:
            state["est_in_flight"] -= est
            state["in_flight"] -= 1
        ok = bool(getattr(gen, "ok", False))
        window.append(ok)
        state["done"] += 1
        state["ok" if ok else "failed"] += 1
        if ok:
            state["images"] += len(getattr(gen, "tile_paths", ()) or ()) or item.spec.tiles
        attempts = getattr(gen, "attempts", ()) or ()
        bar.update(1)
        with tally.lock:
            cost = prep.already_spent_usd + tally.cost_usd
        bar.set_postfix(ok=state["ok"], err=state["failed"], usd=f"{cost:.2f}", conc=f"{limiter.limit:.1f}", refresh=False)
        if prep.on_progress is not None:
            prep.on_progress(ProgressEvent(
                run_id=prep.run_id, done=state["done"], total=total, ok=state["ok"], failed=state["failed"],
                cost_usd=cost, elapsed_s=time.monotonic() - started, in_flight=state["in_flight"],
                concurrency_limit=limiter.limit, last=attempts[-1] if attempts else None,
            ))

    async def closed_worker() -> None:
        while queue and stop_reason() is None:
            await limiter.acquire()
            try:
                if not queue or stop_reason() is not None or not cap_allows(queue[0]):
                    return
                item = queue.popleft()
                await call(item, time.time())
            finally:
                limiter.release()

    async def open_call(item: PlanItem, arrival: float) -> None:
        # Arrivals keep their schedule; past the concurrency limit they wait here, and that
        # wait is recorded as the queue phase (scheduled_at is the arrival time).
        await limiter.acquire()
        try:
            if stop_reason() is None and cap_allows(item):
                await call(item, arrival)
        finally:
            limiter.release()

    async def open_loop() -> None:
        rng = random.Random(prep.plan.seed)
        gap = 60.0 * prep.time_scale / float(prep.rate_per_min or 1.0)
        next_at = time.monotonic()
        offset = time.time() - time.monotonic()
        while queue and stop_reason() is None:
            delay = next_at - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            if stop_reason() is not None or not cap_allows(queue[0]):
                break
            item = queue.popleft()
            task = asyncio.ensure_future(open_call(item, next_at + offset))  # scheduled = arrival time
            tasks.add(task)
            task.add_done_callback(tasks.discard)
            next_at += rng.expovariate(1.0 / gap) if prep.arrival == "poisson" else gap
        if tasks:
            await asyncio.gather(*list(tasks), return_exceptions=True)

    async def watch_stop(main: asyncio.Future[Any]) -> None:
        # After a stop, give in-flight calls cancel_grace_s to finish, then cancel them.
        while not main.done():
            if prep.stop_event.is_set():
                try:
                    await asyncio.wait_for(asyncio.shield(main), prep.cancel_grace_s)
                except TimeoutError:
                    main.cancel()
                return
            await asyncio.sleep(0.05)

    try:
        if closed:
            main = asyncio.ensure_future(asyncio.gather(*[closed_worker() for _ in range(prep.cap)]))
        else:
            main = asyncio.ensure_future(open_loop())
        watcher = asyncio.ensure_future(watch_stop(main))
        try:
            await main
        except asyncio.CancelledError:
            state["reason"] = state["reason"] or "stopped"
            for t in list(tasks):
                t.cancel()
        watcher.cancel()
    finally:
        bar.close()
        tally.writer.close()  # every finished attempt committed before the run is closed
        if prep.close_client:
            closer = getattr(client, "aclose", None) or getattr(client, "close", None)
            if closer is not None:
                res = closer()
                if inspect.isawaitable(res):
                    await res
    # Anything a cancellation left "started" is closed as cancelled, never left dangling.
    marked = store.mark_interrupted(prep.run_id) + prep.interrupted_marked
    if "fatal" in state:
        store.update_run(prep.run_id, status="client_error")
        raise state["fatal"]
    wall = time.monotonic() - started
    reason = stop_reason() or "completed"
    minutes = wall / (60.0 * prep.time_scale) if wall > 0 else 0.0
    run_cost = store.run_cost_usd(prep.run_id)
    result = SweepResult(
        run_id=prep.run_id, planned=total + prep.skipped, skipped=prep.skipped, calls=state["done"], ok=state["ok"],
        failed=state["failed"], attempts=tally.attempts, rate_limited=tally.rate_limited, images=state["images"],
        cost_usd=round(tally.cost_usd, 6), run_cost_usd=round(run_cost, 6), est_cost_usd=prep.preflight.est_cost_usd,
        wall_s=wall, time_scale=prep.time_scale, requested_rate_per_min=prep.rate_per_min,
        achieved_rate_per_min=state["done"] / minutes if minutes else 0.0, peak_concurrency=limiter.peak_in_use,
        final_concurrency_limit=limiter.limit, stopped_reason=reason, interrupted_marked=marked,
    )
    remaining = len(store.done_keys(prep.run_id)) < total + prep.skipped
    store.update_run(prep.run_id, status="complete" if not remaining else reason if reason != "completed" else "partial",
                     summary=result.as_dict())
    return result


__all__ = ["ProgressEvent", "SweepHandle", "SweepResult", "SpendCapExceeded", "run_sweep", "start_sweep"]
