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
import logging
import random
import threading
import time
import urllib.parse
import uuid
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, TypeAlias, runtime_checkable

from .._paths import RUNS_DIR
from ..client.seams import AttemptSink, Pacer, ServiceEndpoint
from ..errors import ConfigError, SpendCapExceeded
from ..records import Attempt
from ..spec import MODELS
from .breaker import OVERLOAD_KINDS, CircuitBreaker
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
from .progress import ProgressThread
from .quota import QuotaLearner, SpendWindow, spend_limit_value
from .recording import RecordingSink
from .store import RunStore

if TYPE_CHECKING:
    from ..client.core import Generation
    from ..client.retry import RetryBudget
    from ..spec import ImageSpec

ARRIVALS = ("closed", "fixed", "poisson")
#: Errors no retry or wait will fix: the sweep stops at the first one, and says why.
FATAL_KINDS: dict[str, str] = {
    "auth": "the API key was refused or lacks permission for this model (check the key and the project)",
    "not_found": "the model or endpoint does not exist (check the model name and provider)",
    "billing": "the account has no credit or billing (check the plan and billing details)",
    "no_quota": "the project's quota for this model is 0 ('limit: 0'): enable billing or pick a model you have quota for",
    "spend_limit": "the project's spend limit was reached (lower spend_rate_usd_per_10min, or raise the limit)",
    "quota_daily": "the daily quota is used up (resume tomorrow with run_id=...)",
}
DEFAULT_IMAGE_DIR = RUNS_DIR / "images"


@dataclasses.dataclass(frozen=True, slots=True)
class ProgressEvent:
    """Sent to ``on_progress`` after every finished call, in order, from the sweep's progress
    thread (never from the event loop that times the requests)."""

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
    retries: int = 0  # attempts the client retried so far
    learned_rate_per_min: float | None = None  # the quota rate learned from 429s (None: none yet)

    def as_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["last"] = self.last.as_dict() if self.last else None
        return d


def _update_bar(bar: Any, postfix: dict[str, Any]) -> None:
    bar.update(1)
    bar.set_postfix(postfix, refresh=False)


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
    stopped_reason: str  # completed | stopped | spend_cap | error_rate | fatal | interrupted
    interrupted_marked: int  # attempts marked cancelled (interrupted) on resume or cancel
    errors: dict[str, dict[str, Any]] = dataclasses.field(default_factory=dict)  # kind -> attempts, sample
    fatal_kind: str | None = None  # the error kind that stopped the sweep at once
    fatal_message: str | None = None  # why, in words, with the (redacted) service message
    retries: int = 0
    learned_rate_per_min: float | None = None
    stated_quota_per_min: float | None = None  # the limit a 429 stated, when one did
    rate_history: list[tuple[float, float]] = dataclasses.field(default_factory=list)  # (s from start, rate)
    spend_rate_usd_per_10min: float | None = None
    spend_wait_s: float = 0.0  # time calls waited for the spend-rate window
    breaker: dict[str, Any] | None = None  # opened, probes, state, events (s from start, state)
    fallback_calls: int = 0  # calls sent to the fallback model while the breaker held the plan's

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @property
    def rate_limited_share(self) -> float:
        return self.rate_limited / self.attempts if self.attempts else 0.0


@runtime_checkable
class SweepClient(Protocol):
    """A client the sweep can call: ``await generate(prompt, spec, **kw)`` (an ``AsyncClient``)."""

    async def generate(
        self,
        prompt: str,
        spec: ImageSpec | None = None,
        *,
        seed: int | None = None,
        stream: bool | None = None,
        run_id: str | None = None,
        request_key: str | None = None,
        scheduled_at: float | None = None,
        save: bool = True,
        raise_on_error: bool = True,
    ) -> Generation: ...


@runtime_checkable
class SubmittingClient(Protocol):
    """A sync ``Client``: ``submit(...)`` returns a ``concurrent.futures.Future`` of a ``Generation``."""

    def generate(self, prompt: str, spec: ImageSpec | None = None, **kw: Any) -> Generation: ...
    def submit(self, prompt: str, spec: ImageSpec | None = None, **kw: Any) -> Any: ...


class ClientFactory(Protocol):
    """Builds the sweep's client around its hooks; the sweep closes it afterwards."""

    def __call__(
        self, *, sink: AttemptSink, pacer: Pacer, retry_budget: RetryBudget | None, output_dir: Path
    ) -> SweepClient: ...


#: What ``run_sweep`` accepts as a target: an emulator handle (or any endpoint with a key),
#: a dict of ``AsyncClient`` options (``None`` for the defaults), a client, or a factory.
SweepTarget: TypeAlias = ServiceEndpoint | Mapping[str, Any] | SweepClient | SubmittingClient | ClientFactory | None


@dataclasses.dataclass(frozen=True, slots=True)
class SweepOptions:
    """How a sweep runs: the keyword arguments of :func:`run_sweep` and :func:`start_sweep`.

    ``concurrency`` is a whole number or ``"adaptive"`` (AIMD up to ``max_concurrency``);
    ``rate_per_min`` paces requests (closed loop) or sets the arrival rate (open loop,
    ``arrival="fixed"`` or ``"poisson"``); ``images_per_min`` adds an image bucket. The sweep
    stops on ``spend_cap_usd`` (recorded plus in flight), on an error rate above
    ``max_error_rate`` over the last ``error_window`` calls, or when stopped; in-flight calls
    get ``cancel_grace_s`` to finish. ``run_id`` of a stored run resumes it.
    """

    store: RunStore | None = None
    spend_cap_usd: float = DEFAULT_SPEND_CAP_USD
    concurrency: int | str = "adaptive"
    max_concurrency: int = 16
    rate_per_min: float | None = None
    images_per_min: float | None = None
    arrival: str = "closed"
    progress: bool = True
    on_progress: Callable[[ProgressEvent], Any] | None = None
    run_id: str | None = None
    output_dir: str | Path | None = None
    time_scale: float | None = None
    max_error_rate: float = 0.5
    error_window: int = 20
    cancel_grace_s: float = 30.0
    retry_budget: RetryBudget | str | None = "default"
    tags: tuple[str, ...] = ()
    save_images: bool = True
    learn_quota: bool = True  # learn an untold per-minute quota from 429s (QuotaLearner)
    spend_rate_usd_per_10min: float | str | None = None  # dollars per rolling 10 minutes, or "tier1".."tier3"
    canary: bool = True  # the first call goes alone: a bad key or model costs one request
    breaker: bool = True  # open after breaker_threshold overloads in a row; half-open probes (CircuitBreaker)
    breaker_threshold: int = 5
    # While the breaker holds the plan's model, send calls to this model instead of waiting
    # (for example "gemini-3.1-flash-image-preview"); None: wait for the incident to pass.
    fallback_model: str | None = None

    @classmethod
    def from_kwargs(cls, options: Mapping[str, Any]) -> SweepOptions:
        names = [f.name for f in dataclasses.fields(cls)]
        for name in options:
            if name not in names:
                raise ConfigError(f"{name}={options[name]!r:.80} is not accepted; a sweep takes {', '.join(names)}")
        return cls(**options)

    @property
    def adaptive(self) -> bool:
        return self.concurrency == "adaptive"

    @property
    def cap(self) -> int:
        """Calls in flight at most (``max_concurrency`` when adaptive)."""
        cap = self.max_concurrency if self.adaptive else self.concurrency
        return cap if isinstance(cap, int) else 0

    def validate(self) -> None:
        """Raise :class:`ConfigError` naming the first option that is not accepted."""
        cap = self.max_concurrency if self.adaptive else self.concurrency
        if isinstance(cap, bool) or not isinstance(cap, int) or cap < 1:
            name = "max_concurrency" if self.adaptive else "concurrency"
            raise ConfigError(f"{name}={cap!r} is not accepted; use a whole number >= 1 (or concurrency='adaptive')")
        if self.arrival not in ARRIVALS:
            raise ConfigError(f"arrival={self.arrival!r} is not accepted; use one of {', '.join(map(repr, ARRIVALS))}")
        for name, value in (("rate_per_min", self.rate_per_min), ("images_per_min", self.images_per_min)):
            if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0):
                raise ConfigError(f"{name}={value!r} is not accepted; use a number > 0 or None")
        if self.arrival != "closed" and self.rate_per_min is None:
            raise ConfigError(f"arrival={self.arrival!r} needs rate_per_min (the arrival rate per minute)")
        if not (0 < self.max_error_rate <= 1):
            raise ConfigError(f"max_error_rate={self.max_error_rate!r} is not accepted; use a share in (0, 1]")
        ew = self.error_window
        if isinstance(ew, bool) or not isinstance(ew, int) or ew < 1:
            raise ConfigError(f"error_window={ew!r} is not accepted; use a whole number >= 1")
        if self.store is not None and not isinstance(self.store, RunStore):
            raise ConfigError(
                f"store={self.store!r:.80} is not accepted; use an nbp_kit.RunStore (RunStore(path) for a path)"
            )
        if self.time_scale is not None and not (isinstance(self.time_scale, (int, float)) and self.time_scale > 0):
            raise ConfigError(f"time_scale={self.time_scale!r} is not accepted; use a number > 0")
        spend_limit_value(self.spend_rate_usd_per_10min)
        CircuitBreaker(threshold=self.breaker_threshold)
        for name in ("learn_quota", "canary", "progress", "save_images", "breaker"):
            if not isinstance(getattr(self, name), bool):
                raise ConfigError(f"{name}={getattr(self, name)!r} is not accepted; use True or False")
        if self.fallback_model is not None:
            if self.fallback_model not in MODELS:
                raise ConfigError(
                    f"fallback_model={self.fallback_model!r} is not accepted; use one of {', '.join(map(repr, MODELS))} "
                    "or None"
                )
            if not self.breaker:
                raise ConfigError(
                    f"fallback_model={self.fallback_model!r} needs breaker=True (the breaker decides when to fall back)"
                )

    def run_meta(self) -> dict[str, Any]:
        """The options recorded with a new run."""
        return {
            "concurrency": self.concurrency,
            "max_concurrency": self.max_concurrency,
            "arrival": self.arrival,
            "rate_per_min": self.rate_per_min,
            "images_per_min": self.images_per_min,
            "spend_cap_usd": self.spend_cap_usd,
            "learn_quota": self.learn_quota,
            "spend_rate_usd_per_10min": spend_limit_value(self.spend_rate_usd_per_10min),
            "breaker": self.breaker,
            "breaker_threshold": self.breaker_threshold,
            "fallback_model": self.fallback_model,
        }


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
        result: SweepResult = self._box["result"]
        return result


def start_sweep(
    plan: Plan | None,
    client_or_settings: SweepTarget = None,
    *,
    stop_event: threading.Event | None = None,
    **options: Any,
) -> SweepHandle:
    """Start :func:`run_sweep` in a background thread; same arguments.

    Validation (bad options, the spend cap) happens before the thread starts, so errors
    raise here.
    """
    stop_event = stop_event or threading.Event()
    prepared = _prepare(plan, client_or_settings, SweepOptions.from_kwargs(options), stop_event)
    box: dict[str, Any] = {"run_id": prepared.run_id, "finished": threading.Event()}

    def target() -> None:
        try:
            box["result"] = asyncio.run(_Sweep(prepared).run())
        except BaseException as exc:  # noqa: BLE001 - handed to the caller by result()
            box["error"] = exc
        finally:
            box["finished"].set()

    thread = threading.Thread(target=target, name=f"nbp-sweep-{prepared.run_id}", daemon=True)
    thread.start()
    return SweepHandle(thread, stop_event, box)


def run_sweep(
    plan: Plan | None,
    client_or_settings: SweepTarget = None,
    *,
    stop_event: threading.Event | None = None,
    **options: Any,
) -> SweepResult:
    """Run a plan and record every attempt; returns a :class:`SweepResult`.

    ``client_or_settings``: an emulator handle, a dict of ``AsyncClient`` options, a client,
    or a factory ``f(*, sink, pacer, retry_budget, output_dir) -> client`` (see
    :data:`SweepTarget`). ``options`` are the fields of :class:`SweepOptions` (``store``,
    ``spend_cap_usd``, ``concurrency``, ``rate_per_min``, ...). Ctrl-C stops cleanly and
    re-raises ``KeyboardInterrupt`` after every record is written.

    >>> from nbp_kit import emulator                                  # doctest: +SKIP
    >>> with emulator.start(time_scale=0.02) as emu:                  # doctest: +SKIP
    ...     run_sweep(Plan(prompts=["a cat"]), emu, store=RunStore.memory(), progress=False).ok
    1
    """
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
    """The options plus everything derived from them before the first request."""

    options: SweepOptions
    plan: Plan
    todo: list[PlanItem]
    skipped: int
    run_id: str
    store: RunStore
    make_client: ClientFactory
    close_client: bool
    preflight: Preflight
    already_spent_usd: float
    time_scale: float
    stop_event: threading.Event
    output_dir: Path
    retry_budget: RetryBudget | None
    interrupted_marked: int
    profile: dict[str, Any] | None


def _prepare(plan: Plan | None, target: SweepTarget, options: SweepOptions, stop_event: threading.Event) -> _Prepared:
    # Everything is validated here, before a single request is sent.
    options.validate()
    if plan is not None and not isinstance(plan, Plan):
        raise ConfigError(
            f"plan={plan!r:.80} is not accepted; use an nbp_kit.Plan (Plan.from_dict for a dict), or None to resume"
        )
    store = options.store if options.store is not None else RunStore()
    time_scale, run_id = options.time_scale, options.run_id
    emu_scale = getattr(target, "time_scale", None)
    scale = float(time_scale if time_scale is not None else emu_scale if emu_scale is not None else 1.0)
    if scale <= 0:
        raise ConfigError(f"time_scale={scale!r} is not accepted; use a number > 0")
    profile = getattr(target, "profile_name", None)
    # The running emulator's own profile (it may be a custom dict with no file behind it).
    profile_data = getattr(getattr(target, "app", None), "profile", None)
    profile_data = profile_data if isinstance(profile_data, dict) else _profile_dict(profile)

    already = 0.0
    interrupted = 0
    done: set[str] = set()
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
    if plan is None:
        raise ConfigError("plan=None is only accepted with the run_id of a stored run to resume")
    _check_fallback(plan, options.fallback_model)
    items = plan.items()
    todo = [i for i in items if i.request_key not in done]
    full = plan.preflight(
        concurrency=options.cap, time_scale=scale, profile=profile_data, rate_per_min=options.rate_per_min
    )
    remaining_cost = round(sum(item_expected_cost(plan.provider, i, profile=profile_data) for i in todo), 6)
    pf = dataclasses.replace(
        full,
        requests=len(todo),
        images=sum(i.spec.tiles for i in todo),
        est_cost_usd=remaining_cost,
        est_time_s=full.est_time_s * (len(todo) / len(items) if items else 0.0),
    )
    spend_rate = spend_limit_value(options.spend_rate_usd_per_10min)
    if spend_rate is not None:
        implied = SpendWindow(spend_rate, time_scale=scale).implied_time_s(remaining_cost)
        pf = dataclasses.replace(pf, spend_rate_time_s=implied, est_time_s=max(pf.est_time_s, implied))
    check_spend_cap(pf, options.spend_cap_usd, already_spent_usd=already)

    out_dir = Path(options.output_dir) if options.output_dir is not None else DEFAULT_IMAGE_DIR
    make_client, close_client, base_host = _client_factory(target, plan)
    if run_id is None or not store.has_run(run_id):
        run_id = run_id or time.strftime("%Y%m%d-%H%M%S-") + uuid.uuid4().hex[:6]
        run_id = store.create_run(
            plan=plan.as_dict(),
            provider=plan.provider,
            base_host=base_host,
            run_id=run_id,
            profile=profile,
            time_scale=scale,
            clock="real" if scale == 1.0 else "scaled",
            image_dir=out_dir / run_id,
            tags=options.tags,
            meta={**options.run_meta(), "preflight": pf.as_dict()},
        )
    budget = options.retry_budget
    retry_budget = _default_retry_budget() if budget == "default" else budget if not isinstance(budget, str) else None
    return _Prepared(
        options=options,
        plan=plan,
        todo=todo,
        skipped=len(items) - len(todo),
        run_id=run_id,
        store=store,
        make_client=make_client,
        close_client=close_client,
        preflight=pf,
        already_spent_usd=already,
        time_scale=scale,
        stop_event=stop_event,
        output_dir=out_dir,
        retry_budget=retry_budget,
        interrupted_marked=interrupted,
        profile=profile_data,
    )


def _check_fallback(plan: Plan, model: str | None) -> None:
    """The fallback model must differ from the plan's and take every configuration it holds."""
    if model is None:
        return
    if model == plan.model:
        raise ConfigError(f"fallback_model={model!r} is not accepted; it is the plan's own model")
    try:
        dataclasses.replace(plan, model=model)  # the plan's capability check, with the fallback model
    except ConfigError as exc:
        raise ConfigError(f"fallback_model={model!r} is not accepted for this plan: {exc}") from None


def _profile_dict(profile: Any) -> dict[str, Any] | None:
    from .plan import load_profile_dict

    try:
        return load_profile_dict(profile)
    except ConfigError:
        return None


def _default_retry_budget() -> RetryBudget | None:
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


def _client_factory(obj: SweepTarget, plan: Plan) -> tuple[ClientFactory, bool, str]:
    """(factory(sink, pacer, retry_budget, output_dir) -> client, close it after?, base host)."""
    if isinstance(obj, (SweepClient, SubmittingClient)):
        client = obj

        def reuse(
            *, sink: AttemptSink, pacer: Pacer, retry_budget: RetryBudget | None, output_dir: Path
        ) -> SweepClient:
            # A caller's own client is never changed: the sweep uses a copy with its own hooks
            # that shares the caller's settings (a sync Client's copy shares its pool, on its loop).
            hooks = {"sink": sink, "pacer": pacer, "retry_budget": retry_budget, "output_dir": output_dir}
            if isinstance(client, SubmittingClient):
                return _SyncAdapter(client, hooks)
            return _derived(client, hooks, share_pool=False)

        # closing what reuse() returns closes only a pool the sweep opened, never the caller's
        return reuse, True, base_host_of(getattr(obj, "base_url", "") or "")
    from ..client.core import AsyncClient

    if obj is None or isinstance(obj, Mapping):
        settings = dict(obj or {})
        settings.setdefault("provider", plan.provider)
        settings.setdefault("model", plan.model)

        def build(
            *, sink: AttemptSink, pacer: Pacer, retry_budget: RetryBudget | None, output_dir: Path
        ) -> SweepClient:
            return AsyncClient(sink=sink, pacer=pacer, retry_budget=retry_budget, output_dir=output_dir, **settings)

        return build, True, base_host_of(settings.get("base_url") or "")
    if isinstance(obj, ServiceEndpoint):
        endpoint = obj

        def for_emu(
            *, sink: AttemptSink, pacer: Pacer, retry_budget: RetryBudget | None, output_dir: Path
        ) -> SweepClient:
            return AsyncClient.for_emulator(
                endpoint,
                provider=plan.provider,
                model=plan.model,
                sink=sink,
                pacer=pacer,
                retry_budget=retry_budget,
                output_dir=output_dir,
            )

        return for_emu, True, base_host_of(obj.base_url)
    if callable(obj):
        return obj, True, ""
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

    async def generate(self, prompt: str, spec: ImageSpec | None = None, **kw: Any) -> Generation:
        generation: Generation = await asyncio.wrap_future(
            asyncio.run_coroutine_threadsafe(self._twin.generate(prompt, spec, **kw), self._loop)
        )
        return generation


def base_host_of(url: str) -> str:
    if not url:
        return ""
    parsed = urllib.parse.urlsplit(url)
    return parsed.hostname + (f":{parsed.port}" if parsed.port else "") if parsed.hostname else ""


# --------------------------------------------------------------------------- the loop
class _Sweep:
    """One session of a sweep: its loop (closed or open), the stops, progress and the result."""

    def __init__(self, prep: _Prepared) -> None:
        self.prep = prep
        self.opts = prep.options
        self.store = prep.store
        self.sink = RecordingSink(prep.store, background=True)  # finished rows: committed off the timing loop
        self.limiter = ConcurrencyLimiter(cap=self.opts.cap, adaptive=self.opts.adaptive)
        self.closed = self.opts.arrival == "closed"
        self.learner = QuotaLearner(time_scale=prep.time_scale) if self.opts.learn_quota else None
        self.breaker = (
            CircuitBreaker(threshold=self.opts.breaker_threshold, time_scale=prep.time_scale)
            if self.opts.breaker
            else None
        )
        self.pacer = SweepPacer(
            requests_per_min=self.opts.rate_per_min if self.closed else None,
            images_per_min=self.opts.images_per_min,
            time_scale=prep.time_scale,
            limiter=self.limiter,
            learner=self.learner,
            breaker=self.breaker,
            fallback_model=self.opts.fallback_model,
        )
        self.fallback_calls = 0
        self.requeued: set[str] = set()  # items sent again after failing on overloads (fallback)
        spend_rate = spend_limit_value(self.opts.spend_rate_usd_per_10min)
        self.spend = SpendWindow(spend_rate, time_scale=prep.time_scale) if spend_rate is not None else None
        self.spend_wait_s = 0.0
        self.fatal_kind: str | None = None
        self.fatal_message: str | None = None
        self.total = len(prep.todo)
        self.queue = collections.deque(prep.todo)
        self.window: collections.deque[bool] = collections.deque(maxlen=self.opts.error_window)
        self.tasks: set[asyncio.Future[Any]] = set()
        self.done = self.ok = self.failed = self.images = self.in_flight = 0
        self.est_in_flight_usd = 0.0
        self.reason: str | None = None
        self.fatal: BaseException | None = None
        self.started = time.monotonic()
        self.client: SweepClient | None = None
        self.bar: Any = None

    # ---------------------------------------------------------------- stops
    def stop_reason(self) -> str | None:
        if self.reason:
            return self.reason
        if self.prep.stop_event.is_set():
            self.reason = "stopped"
        elif (
            len(self.window) >= self.opts.error_window
            and self.window.count(False) / len(self.window) > self.opts.max_error_rate
        ):
            self.reason = "error_rate"
        return self.reason

    def expected_cost(self, item: PlanItem) -> float:
        return item_expected_cost(self.prep.plan.provider, item, profile=self.prep.profile)

    def spent_usd(self) -> float:
        return self.prep.already_spent_usd + self.sink.spent_usd()

    def cap_allows(self, item: PlanItem) -> bool:
        # Recorded cost + what is in flight + this call must stay within the cap.
        if self.spent_usd() + self.est_in_flight_usd + self.expected_cost(item) > self.opts.spend_cap_usd + 1e-9:
            self.reason = self.reason or "spend_cap"
            return False
        return True

    def stop_fatal(self, gen: Generation | None) -> None:
        """Stop at once on an error no retry will fix, and keep why."""
        if gen is None or gen.ok or self.fatal_kind is not None:
            return
        error = getattr(gen, "error", None)
        last = gen.attempts[-1] if gen.attempts else None
        kind = error.kind if error is not None else last.error_kind if last is not None else None
        if kind not in FATAL_KINDS:
            return
        self.fatal_kind = kind
        sample = str(error) if error is not None else (last.error_message or "") if last is not None else ""
        self.fatal_message = f"{kind}: {FATAL_KINDS[kind]}. The service said: {sample}"
        self.reason = "fatal"

    async def wait_spend_window(self, est: float) -> int | None:
        """Hold the call until the spend-rate window takes it; a ticket, or None when stopping."""
        if self.spend is None:
            return 0
        while True:
            ticket, wait = self.spend.try_start(est)
            if ticket is not None:
                return ticket
            if self.stop_reason() is not None:
                return None
            t0 = time.monotonic()
            await asyncio.sleep(min(wait, 0.25))
            self.spend_wait_s += time.monotonic() - t0

    # ---------------------------------------------------------------- one call
    def route(self, item: PlanItem) -> PlanItem:
        """The item as it will be sent: to the fallback model while the breaker holds the plan's."""
        fallback = self.opts.fallback_model
        if fallback is None or self.breaker is None or self.breaker.admits():
            return item
        return dataclasses.replace(item, spec=item.spec.replace(model=fallback))

    async def call(self, planned: PlanItem, scheduled_at: float) -> None:
        assert self.client is not None
        item = self.route(planned)
        est = self.expected_cost(item)
        ticket = await self.wait_spend_window(est)
        if ticket is None:
            self.queue.appendleft(planned)  # not sent: stays for a resume
            return
        if item is not planned:
            self.fallback_calls += 1
        self.est_in_flight_usd += est
        self.in_flight += 1
        gen: Generation | None = None
        try:
            kwargs: dict[str, Any] = dict(
                seed=item.seed,
                stream=item.transport == "stream",
                run_id=self.prep.run_id,
                request_key=item.request_key,
                scheduled_at=scheduled_at,
                raise_on_error=False,
            )
            if not self.opts.save_images:
                kwargs["save"] = False
            gen = await generate_item(self.client, item, kwargs)
        except Exception as exc:  # noqa: BLE001 - a client bug or bad input: stop and raise it after cleanup
            self.fatal = self.fatal or exc
            self.reason = self.reason or "client_error"
        finally:
            self.est_in_flight_usd -= est
            self.in_flight -= 1
            if self.spend is not None:
                self.spend.finish(ticket, gen.cost_usd if gen is not None else est)
        if self.requeue_for_fallback(planned, item, gen):
            return
        self.stop_fatal(gen)
        self.record_call(item, gen)

    def requeue_for_fallback(self, planned: PlanItem, sent: PlanItem, gen: Generation | None) -> bool:
        """A call to the plan's model that failed on overloads goes back to the queue once, to
        be sent again (to the fallback model while the breaker holds the plan's): with a
        fallback allowed, an incident loses no item. Closed loop only (an open loop's schedule
        has moved on)."""
        if self.opts.fallback_model is None or not self.closed or sent is not planned or gen is None or gen.ok:
            return False
        last = gen.attempts[-1] if gen.attempts else None
        if last is None or last.error_kind not in OVERLOAD_KINDS or planned.request_key in self.requeued:
            return False
        self.requeued.add(planned.request_key)
        self.queue.appendleft(planned)
        return True

    def record_call(self, item: PlanItem, gen: Generation | None) -> None:
        ok = bool(getattr(gen, "ok", False))
        self.window.append(ok)
        self.done += 1
        if ok:
            self.ok += 1
            self.images += len(getattr(gen, "tile_paths", ()) or ()) or item.spec.tiles
        else:
            self.failed += 1
        attempts = getattr(gen, "attempts", ()) or ()
        self.show_progress(attempts[-1] if attempts else None)

    def show_progress(self, last: Attempt | None) -> None:
        """Queue the bar's update and the ``on_progress`` event for the progress thread: the
        loop that times the requests in flight only counts."""
        cost = self.spent_usd()
        learned = self.learner.rate_per_min if self.learner is not None else None
        postfix: dict[str, Any] = dict(
            ok=self.ok, err=self.failed, retries=self.sink.retries, usd=f"{cost:.2f}", conc=f"{self.limiter.limit:.1f}"
        )
        if learned is not None:
            postfix["rate"] = f"{learned:.1f}/min"
        if self.breaker is not None and self.breaker.state != "closed":
            postfix["breaker"] = self.breaker.state
        self.progress.submit(_update_bar, self.bar, postfix)
        if self.opts.on_progress is not None:
            event = ProgressEvent(
                run_id=self.prep.run_id,
                done=self.done,
                total=self.total,
                ok=self.ok,
                failed=self.failed,
                cost_usd=cost,
                elapsed_s=time.monotonic() - self.started,
                in_flight=self.in_flight,
                concurrency_limit=self.limiter.limit,
                last=last,
                retries=self.sink.retries,
                learned_rate_per_min=learned,
            )
            self.progress.submit(self.opts.on_progress, event)

    # ---------------------------------------------------------------- loops
    async def closed_step(self) -> bool:
        """Start and finish one call; False when nothing more may start."""
        await self.limiter.acquire()
        try:
            if not self.queue or self.stop_reason() is not None or not self.cap_allows(self.queue[0]):
                return False
            item = self.queue.popleft()
            await self.call(item, time.time())
            return True
        finally:
            self.limiter.release()

    async def closed_worker(self) -> None:
        while self.queue and self.stop_reason() is None:
            if not await self.closed_step():
                return

    async def closed_loop(self) -> None:
        if self.opts.canary and self.queue:
            await self.closed_step()  # alone: a bad key or model stops here, after one request
        await asyncio.gather(*[self.closed_worker() for _ in range(self.opts.cap)])

    async def open_call(self, item: PlanItem, arrival: float) -> None:
        # Arrivals keep their schedule; past the concurrency limit they wait here, and that
        # wait is recorded as the queue phase (scheduled_at is the arrival time).
        await self.limiter.acquire()
        try:
            if self.stop_reason() is None and self.cap_allows(item):
                await self.call(item, arrival)
        finally:
            self.limiter.release()

    async def open_loop(self) -> None:
        rng = random.Random(self.prep.plan.seed)
        gap = 60.0 * self.prep.time_scale / float(self.opts.rate_per_min or 1.0)
        next_at = time.monotonic()
        if self.opts.canary and self.queue and self.stop_reason() is None and self.cap_allows(self.queue[0]):
            await self.open_call(self.queue.popleft(), time.time())  # alone, before the schedule starts
            # The schedule goes on one gap after the lone call's arrival (or at once if it took longer).
            next_at = max(next_at + gap, time.monotonic())
        offset = time.time() - time.monotonic()
        while self.queue and self.stop_reason() is None:
            delay = next_at - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            if self.stop_reason() is not None or not self.cap_allows(self.queue[0]):
                break
            item = self.queue.popleft()
            task = asyncio.ensure_future(self.open_call(item, next_at + offset))  # scheduled = arrival time
            self.tasks.add(task)
            task.add_done_callback(self.tasks.discard)
            next_at += rng.expovariate(1.0 / gap) if self.opts.arrival == "poisson" else gap
        if self.tasks:
            await asyncio.gather(*list(self.tasks), return_exceptions=True)

    async def watch_stop(self, main: asyncio.Future[Any]) -> None:
        # After a stop, give in-flight calls cancel_grace_s to finish, then cancel them.
        while not main.done():
            if self.prep.stop_event.is_set():
                try:
                    await asyncio.wait_for(asyncio.shield(main), self.opts.cancel_grace_s)
                except TimeoutError:
                    main.cancel()
                return
            await asyncio.sleep(0.05)

    # ---------------------------------------------------------------- the session
    async def run(self) -> SweepResult:
        from tqdm.auto import tqdm

        prep = self.prep
        self.client = prep.make_client(
            sink=self.sink, pacer=self.pacer, retry_budget=prep.retry_budget, output_dir=prep.output_dir
        )
        self.store.update_run(prep.run_id, status="running")
        self.bar = tqdm(
            total=self.total, desc=f"sweep {prep.run_id}", unit="call", disable=not self.opts.progress, leave=True
        )
        self.progress = ProgressThread()
        self.started = time.monotonic()
        try:
            _RETRY_LINES.sweeps += 1
            main = asyncio.ensure_future(self.closed_loop() if self.closed else self.open_loop())
            watcher = asyncio.ensure_future(self.watch_stop(main))
            try:
                await main
            except asyncio.CancelledError:
                self.reason = self.reason or "stopped"
                for t in list(self.tasks):
                    t.cancel()
            watcher.cancel()
        finally:
            _RETRY_LINES.sweeps -= 1
            self.progress.close()  # every queued update shown, in order, before the bar closes
            self.bar.close()
            self.sink.close()  # every finished attempt committed before the run is closed
            if prep.close_client:
                await _close(self.client)
        # Anything a cancellation left "started" is closed as cancelled, never left dangling.
        marked = self.store.mark_interrupted(prep.run_id) + prep.interrupted_marked
        if self.fatal is not None:
            self.store.update_run(prep.run_id, status="client_error")
            raise self.fatal
        if self.progress.error is not None:  # the user's on_progress failed: the calls are recorded
            raise self.progress.error
        return self.finish(marked)

    def finish(self, marked: int) -> SweepResult:
        prep = self.prep
        wall = time.monotonic() - self.started
        reason = self.stop_reason() or "completed"
        minutes = wall / (60.0 * prep.time_scale) if wall > 0 else 0.0
        run_cost = self.store.run_cost_usd(prep.run_id)
        result = SweepResult(
            run_id=prep.run_id,
            planned=self.total + prep.skipped,
            skipped=prep.skipped,
            calls=self.done,
            ok=self.ok,
            failed=self.failed,
            attempts=self.sink.attempts,
            rate_limited=self.sink.rate_limited,
            images=self.images,
            cost_usd=round(self.sink.cost_usd, 6),
            run_cost_usd=round(run_cost, 6),
            est_cost_usd=prep.preflight.est_cost_usd,
            wall_s=wall,
            time_scale=prep.time_scale,
            requested_rate_per_min=self.opts.rate_per_min,
            achieved_rate_per_min=self.done / minutes if minutes else 0.0,
            peak_concurrency=self.limiter.peak_in_use,
            final_concurrency_limit=self.limiter.limit,
            stopped_reason=reason,
            interrupted_marked=marked,
            errors=self.sink.error_summary(),
            fatal_kind=self.fatal_kind,
            fatal_message=self.fatal_message,
            retries=self.sink.retries,
            spend_rate_usd_per_10min=self.spend.limit_usd if self.spend is not None else None,
            spend_wait_s=round(self.spend_wait_s, 3),
            **self.learned(),
            breaker=self.breaker.as_dict(since=self.started) if self.breaker is not None else None,
            fallback_calls=self.fallback_calls,
        )
        remaining = len(self.store.done_keys(prep.run_id)) < self.total + prep.skipped
        status = "complete" if not remaining else reason if reason != "completed" else "partial"
        self.store.update_run(prep.run_id, status=status, summary=result.as_dict())
        return result

    def learned(self) -> dict[str, Any]:
        if self.learner is None:
            return {}
        return {
            "learned_rate_per_min": self.learner.rate_per_min,
            "stated_quota_per_min": self.learner.stated_limit,
            "rate_history": [(round(t - self.started, 3), r) for t, r in self.learner.history],
        }


class _RetryLines(logging.Filter):
    """While a sweep runs, stamina's ``stamina.retry_scheduled`` log lines are dropped: the
    sweep counts retries in its progress and its result instead."""

    sweeps = 0

    def filter(self, record: logging.LogRecord) -> bool:
        return not (self.sweeps > 0 and "retry_scheduled" in str(record.msg))


_RETRY_LINES = _RetryLines()
logging.getLogger("stamina").addFilter(_RETRY_LINES)


async def _close(client: Any) -> None:
    closer = getattr(client, "aclose", None) or getattr(client, "close", None)
    if closer is not None:
        res = closer()
        if inspect.isawaitable(res):
            await res


__all__ = [
    "ClientFactory",
    "ProgressEvent",
    "SpendCapExceeded",
    "SweepClient",
    "SweepHandle",
    "SweepOptions",
    "SweepResult",
    "SweepTarget",
    "run_sweep",
    "start_sweep",
]
