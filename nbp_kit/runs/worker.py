"""Workers on several machines sharing one run, one quota and one spend cap, through PostgreSQL.

A *shared run* is an ordinary run in a PostgreSQL :class:`~nbp_kit.runs.store.RunStore` plus one
row per plan item in ``work_items`` and one row in ``shared_limits``
(:func:`share_run` writes them). Any number of :func:`run_worker` processes, on any machines
that reach the database, then drain it::

    nbp-kit sweep --store postgresql://team-db/runs --prompt "a cat" --repetitions 50 --share
    nbp-kit worker RUN_ID --store postgresql://team-db/runs --region eu-west   # on each machine

How the work is shared:

* **Claims with a lease.** A worker takes the next item with ``SELECT ... FOR UPDATE SKIP
  LOCKED`` (workers never wait on each other's rows) and holds it for ``lease_s`` seconds,
  renewed while its call runs. A worker that dies stops renewing; when the lease has passed,
  another worker claims the item again and marks the dead worker's unfinished attempts
  ``cancelled (interrupted)``. Times are the database's clock, so the machines' clocks need
  not agree.
* **One success per request key.** The attempts table has a unique index on
  ``(run_id, request_key)`` where ``status = 'ok'``: a worker whose lease ran out while its call
  still succeeded cannot record a second success; the store records its attempt as an error of
  kind ``duplicate_success`` with its cost (the image was billed).
* **One quota.** The workers are not told the quota. Until they know it they start slowly
  (4 requests in the first minute, then at most twice the previous minute's, like TCP's slow
  start), so workers that start together do not all run into it at once. After a 429, the worker that got it
  pauses every worker until the server's retry delay has passed. The first 429 sets the shared
  request rate to what all workers sent in the last minute (``60 x time_scale`` seconds;
  every request is counted as it leaves, a sliding-window estimate over this minute and the
  one before), less 15 %; a later 429 outside a pause
  cuts it by 10 % (one inside a pause was sent before it and changes nothing). From then on
  every request takes a token from the shared bucket, a row updated under a row lock.
* **One spend cap.** A claim reserves the item's expected cost in ``shared_limits`` and is
  refused once recorded plus reserved cost would pass the cap; when the call ends the
  reservation is replaced by what its attempts really cost.

Each attempt records ``worker_id``, ``host`` and ``region``. Images stay on the disk of the
worker that made them; the store has their path, host and sha256 (object storage is out of
scope).
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import socket
import threading
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

from ..errors import ConfigError
from ..records import Attempt
from .plan import DEFAULT_SPEND_CAP_USD, Plan, PlanItem, check_spend_cap, expected_cost
from .store import RunStore
from .store_pg import connect, require_postgres

#: Default lease: longer than a slow 4K call's wait; it is renewed every third of it.
DEFAULT_LEASE_S = 120.0
_LEARN_MARGIN = 0.85  # the learned rate is 85 % of what was sent in the minute that ended in a 429
_RATE_MARGIN = 0.9  # a later 429 outside a pause cuts the rate by 10 %
_SLOW_START = 4  # requests in the first minute while the quota is not known
_SERVER_DELAY_SOURCES = ("retry-after-ms", "retry-after", "retry-info")


@dataclasses.dataclass(frozen=True, slots=True)
class WorkerResult:
    """What one worker did in a shared run."""

    run_id: str
    worker_id: str
    region: str | None
    calls: int  # items this worker finished (ok or failed)
    ok: int
    failed: int
    attempts: int
    rate_limited: int
    duplicates: int  # successes refused because another worker had recorded one
    reclaimed: int  # items taken over from a worker whose lease had passed
    stopped_reason: str  # completed | spend_cap | stopped

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


# --------------------------------------------------------------------------- sharing a run
def share_run(
    plan: Plan,
    store: RunStore,
    *,
    spend_cap_usd: float = DEFAULT_SPEND_CAP_USD,
    requests_per_min: float | None = None,
    base_host: str = "",
    time_scale: float = 1.0,
    run_id: str | None = None,
    profile: dict[str, Any] | None = None,
    tags: tuple[str, ...] = (),
) -> str:
    """Create a run that workers on several machines drain together; return its id.

    ``requests_per_min`` starts the shared bucket at a known quota (None: learned from the
    first 429). ``time_scale`` shrinks the minute like the emulator does. The plan's estimate
    must fit under ``spend_cap_usd`` (as for :func:`~nbp_kit.runs.runner.run_sweep`).
    """
    require_postgres(store, "a shared run")
    if not isinstance(plan, Plan):
        raise ConfigError(f"plan={plan!r:.80} is not accepted; use an nbp_kit.Plan")
    if requests_per_min is not None and (isinstance(requests_per_min, bool) or not requests_per_min > 0):
        raise ConfigError(f"requests_per_min={requests_per_min!r} is not accepted; use a number > 0 or None")
    if not (isinstance(time_scale, (int, float)) and time_scale > 0):
        raise ConfigError(f"time_scale={time_scale!r} is not accepted; use a number > 0")
    check_spend_cap(plan.preflight(time_scale=time_scale, profile=profile), spend_cap_usd)
    run_id = store.create_run(
        plan=plan.as_dict(),
        provider=plan.provider,
        base_host=base_host,
        run_id=run_id,
        time_scale=time_scale,
        clock="real" if time_scale == 1.0 else "scaled",
        tags=tags,
        meta={"shared": True, "spend_cap_usd": spend_cap_usd, "requests_per_min": requests_per_min},
    )
    rows = [
        {
            "run_id": run_id,
            "request_key": item.request_key,
            "position": item.index,
            "est_cost_usd": expected_cost(plan.provider, item.spec, prompt=item.prompt, profile=profile),
        }
        for item in plan.items()
    ]
    # Items first, then the limits row: a worker refuses a run without one, so it never sees half a queue.
    store._write(
        "INSERT INTO work_items (run_id, request_key, position, est_cost_usd) "
        "VALUES (:run_id, :request_key, :position, :est_cost_usd) ON CONFLICT DO NOTHING",
        rows,
        many=True,
    )
    store._write(
        "INSERT INTO shared_limits (run_id, requests_per_min, spend_cap_usd, time_scale, refilled_at) "
        "VALUES (?, ?, ?, ?, extract(epoch from clock_timestamp())) ON CONFLICT DO NOTHING",
        (run_id, requests_per_min, float(spend_cap_usd), float(time_scale)),
    )
    return run_id


def make_worker_id(host: str | None = None) -> str:
    """``host-pid-xxxx``: unique per process, readable in a frame."""
    return f"{host or socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:4]}"


# --------------------------------------------------------------------------- the shared rows
class Claim(NamedTuple):
    """An item this worker now holds under a lease."""

    request_key: str
    reserved_usd: float  # its expected cost, reserved against the spend cap
    reclaimed: bool  # taken over from a worker whose lease had passed


class SharedRun:
    """One worker's connection to a shared run's rows (work items and limits). Thread-safe."""

    def __init__(self, url: str, run_id: str, *, worker_id: str, lease_s: float) -> None:
        self.url, self.run_id, self.worker_id, self.lease_s = url, run_id, worker_id, float(lease_s)
        self._conn = connect(url)
        self._lock = threading.Lock()
        row = self._one("SELECT spend_cap_usd, time_scale FROM shared_limits WHERE run_id = %s", (run_id,))
        if row is None:
            self._conn.close()
            raise ConfigError(
                f"run_id={run_id!r} is not a shared run (no shared_limits row); create it with "
                "nbp-kit sweep ... --share (or nbp_kit.runs.worker.share_run)"
            )
        self.time_scale = float(row["time_scale"])
        self.window_s = 60.0 * self.time_scale

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    def _one(self, sql: str, params: Any = ()) -> dict[str, Any] | None:
        with self._lock:
            row = self._conn.execute(sql, params).fetchone()
            return dict(row) if row else None

    def claim(self) -> Claim | str:
        """Claim the next item, or say why not: ``"empty"`` (nothing to claim now), ``"spend_cap"``."""
        with self._lock, self._conn.transaction():
            now = self._conn.execute("SELECT extract(epoch from clock_timestamp())::float8 AS now").fetchone()["now"]
            limits = self._conn.execute(
                "SELECT spend_cap_usd, committed_usd FROM shared_limits WHERE run_id = %s FOR UPDATE", (self.run_id,)
            ).fetchone()
            item = self._conn.execute(
                "SELECT request_key, est_cost_usd, state FROM work_items WHERE run_id = %s AND "
                "(state = 'todo' OR (state = 'claimed' AND lease_until < %s)) "
                "ORDER BY position LIMIT 1 FOR UPDATE SKIP LOCKED",
                (self.run_id, now),
            ).fetchone()
            if item is None:
                return "empty"
            est = float(item["est_cost_usd"])
            if float(limits["committed_usd"]) + est > float(limits["spend_cap_usd"]) + 1e-9:
                return "spend_cap"
            self._conn.execute(
                "UPDATE work_items SET state = 'claimed', worker_id = %s, lease_until = %s, claims = claims + 1 "
                "WHERE run_id = %s AND request_key = %s",
                (self.worker_id, now + self.lease_s, self.run_id, item["request_key"]),
            )
            self._conn.execute(
                "UPDATE shared_limits SET committed_usd = committed_usd + %s WHERE run_id = %s", (est, self.run_id)
            )
            reclaimed = item["state"] == "claimed"
            if reclaimed:
                # The previous holder died (or stalled past its lease): its unfinished attempts never will.
                self._conn.execute(
                    "UPDATE attempts SET status = 'error', error_kind = 'cancelled', "
                    "error_message = 'interrupted: the worker holding this item stopped renewing its lease', "
                    "cost_usd = NULL WHERE run_id = %s AND request_key = %s AND status = 'started'",
                    (self.run_id, item["request_key"]),
                )
            return Claim(item["request_key"], est, reclaimed)

    def renew(self, keys: list[str]) -> None:
        """Extend this worker's leases on ``keys``."""
        if not keys:
            return
        with self._lock:
            self._conn.execute(
                "UPDATE work_items SET lease_until = extract(epoch from clock_timestamp()) + %s "
                "WHERE run_id = %s AND worker_id = %s AND state = 'claimed' AND request_key = ANY(%s)",
                (self.lease_s, self.run_id, self.worker_id, keys),
            )

    def finish(self, key: str, *, ok: bool, reserved_usd: float, cost_usd: float) -> None:
        """Mark an item done (or failed) and replace its reservation by its real cost."""
        with self._lock, self._conn.transaction():
            self._conn.execute(
                "UPDATE work_items SET state = %s, lease_until = NULL WHERE run_id = %s AND request_key = %s "
                "AND state <> 'done'",
                ("done" if ok else "failed", self.run_id, key),
            )
            self._conn.execute(
                "UPDATE shared_limits SET committed_usd = committed_usd + %s WHERE run_id = %s",
                (cost_usd - reserved_usd, self.run_id),
            )

    def release(self, key: str, reserved_usd: float) -> None:
        """Give an unstarted claim back (the worker is stopping)."""
        with self._lock, self._conn.transaction():
            self._conn.execute(
                "UPDATE work_items SET state = 'todo', worker_id = NULL, lease_until = NULL "
                "WHERE run_id = %s AND request_key = %s AND worker_id = %s AND state = 'claimed'",
                (self.run_id, key, self.worker_id),
            )
            self._conn.execute(
                "UPDATE shared_limits SET committed_usd = committed_usd - %s WHERE run_id = %s",
                (reserved_usd, self.run_id),
            )

    def open_items(self) -> int:
        """Items not yet done or failed (todo, or claimed by a live or dead worker)."""
        row = self._one(
            "SELECT count(*) AS n FROM work_items WHERE run_id = %s AND state IN ('todo', 'claimed')", (self.run_id,)
        )
        return int(row["n"]) if row else 0

    # -- the shared quota ---------------------------------------------------------------
    def take_token(self) -> float:
        """Seconds to wait before sending: 0 when a token was taken (the request may go), else the
        pause or the refill left. Every grant is counted in the shared minute's window."""
        with self._lock, self._conn.transaction():
            now = self._conn.execute("SELECT extract(epoch from clock_timestamp())::float8 AS now").fetchone()["now"]
            row = self._conn.execute(
                "SELECT requests_per_min, tokens, refilled_at, paused_until, window_start, window_grants, "
                "previous_grants FROM shared_limits WHERE run_id = %s FOR UPDATE",
                (self.run_id,),
            ).fetchone()
            if row["paused_until"] > now:
                return float(row["paused_until"] - now)
            start, current, previous = _roll_window(row, now, self.window_s)
            rate = row["requests_per_min"]
            if rate is None:
                # Quota not known yet: slow start. The rate doubles each minute (twice the previous
                # minute's grants), and grants are spaced like any other rate, so workers starting
                # together meet the quota one request at a time, not in a burst of calls in flight.
                rate = max(_SLOW_START, 2 * previous)
            per_s = float(rate) / self.window_s
            tokens = min(1.0, float(row["tokens"]) + (now - float(row["refilled_at"])) * per_s)
            if tokens < 1.0:
                self._conn.execute(
                    "UPDATE shared_limits SET tokens = %s, refilled_at = %s WHERE run_id = %s",
                    (tokens, now, self.run_id),
                )
                return (1.0 - tokens) / per_s
            tokens -= 1.0
            self._conn.execute(
                "UPDATE shared_limits SET tokens = %s, refilled_at = %s, window_start = %s, window_grants = %s, "
                "previous_grants = %s WHERE run_id = %s",
                (tokens, now, start, current + 1, previous, self.run_id),
            )
            return 0.0

    def rate_limited(self, delay_s: float) -> None:
        """A 429: pause every worker for ``delay_s`` and learn the rate the service admitted."""
        with self._lock, self._conn.transaction():
            now = self._conn.execute("SELECT extract(epoch from clock_timestamp())::float8 AS now").fetchone()["now"]
            row = self._conn.execute(
                "SELECT window_start, window_grants, previous_grants FROM shared_limits WHERE run_id = %s FOR UPDATE",
                (self.run_id,),
            ).fetchone()
            # Requests let through in the last minute (all workers): the sliding-window estimate
            # from this minute's grants and the previous minute's, weighted by its overlap.
            start, current, previous = _roll_window(row, now, self.window_s)
            learned = max(1.0, _LEARN_MARGIN * _sent_last_minute(start, current, previous, now, self.window_s))
            # A 429 inside a pause is the same overload (a call sent before the pause began): it
            # extends the pause only. Otherwise the first one sets the rate, later ones cut it by 10 %.
            self._conn.execute(
                "UPDATE shared_limits SET tokens = 0, "
                "requests_per_min = CASE WHEN paused_until > %(now)s THEN requests_per_min "
                "WHEN requests_per_min IS NULL THEN %(learned)s ELSE requests_per_min * %(cut)s END, "
                "paused_until = GREATEST(paused_until, %(until)s), refilled_at = GREATEST(paused_until, %(until)s) "
                "WHERE run_id = %(run)s",
                {"now": now, "learned": learned, "cut": _RATE_MARGIN, "until": now + delay_s, "run": self.run_id},
            )


def _sent_last_minute(start: float, current: float, previous: float, now: float, window_s: float) -> float:
    """Sliding-window estimate of requests sent in the last minute: this minute's grants plus
    the previous minute's, weighted by how much of it still overlaps."""
    return current + previous * max(0.0, 1.0 - (now - start) / window_s)


def _roll_window(row: dict[str, Any], now: float, window_s: float) -> tuple[float, float, float]:
    """The grant counter's window as of ``now``: (start, grants in it, grants in the one before)."""
    start, current, previous = float(row["window_start"]), float(row["window_grants"]), float(row["previous_grants"])
    if now - start >= 2 * window_s:
        return now, 0.0, 0.0
    if now - start >= window_s:
        return start + window_s, 0.0, current
    return start, current, previous


class SharedPacer:
    """The client's ``pacer`` hook for a worker: the shared bucket and pause in the database."""

    def __init__(self, shared: SharedRun, *, default_pause_s: float = 2.0) -> None:
        self.shared = shared
        self.default_pause_s = default_pause_s * shared.time_scale
        self.rate_limited = 0

    async def acquire(self, spec: Any = None) -> None:
        while True:
            wait = await asyncio.to_thread(self.shared.take_token)
            if wait <= 0:
                return
            await asyncio.sleep(wait)

    def release(self, attempt: Attempt) -> None:
        if attempt.error_kind != "rate_limited":
            return
        self.rate_limited += 1
        server = attempt.retry_delay_s if attempt.retry_delay_source in _SERVER_DELAY_SOURCES else None
        self.shared.rate_limited(server if server is not None else self.default_pause_s)


class WorkerSink:
    """The client's sink for a worker: stamps where the attempt was made, keeps one success per key."""

    def __init__(self, store: RunStore, *, worker_id: str, host: str, region: str | None) -> None:
        self.store = store
        self.stamp = {"worker_id": worker_id, "host": host, "region": region}
        self.lock = threading.Lock()
        self.attempts = 0
        self.rate_limited = 0
        self.duplicates = 0
        self.cost_by_key: dict[str, float] = {}

    def attempt_started(self, attempt: Attempt) -> None:
        self.store.attempt_started(attempt.replace(**self.stamp))

    def attempt_finished(self, attempt: Attempt) -> None:
        record = attempt.replace(**self.stamp)
        self.store.attempt_finished(record)  # a second success for the key is stored as duplicate_success
        if record.status == "ok" and record.run_id and record.request_key:
            stored = self.store._read("SELECT status FROM attempts WHERE attempt_id = ?", (record.attempt_id,))
            if stored and stored[0]["status"] != "ok":
                with self.lock:
                    self.duplicates += 1
        with self.lock:
            self.attempts += 1
            self.rate_limited += attempt.error_kind == "rate_limited"
            if attempt.request_key:
                self.cost_by_key[attempt.request_key] = self.cost_by_key.get(attempt.request_key, 0.0) + (
                    attempt.cost_usd or 0.0
                )

    def take_cost(self, key: str) -> float:
        with self.lock:
            return self.cost_by_key.pop(key, 0.0)


# --------------------------------------------------------------------------- the worker
def run_worker(
    run_id: str,
    store: RunStore | str,
    client_settings: dict[str, Any] | Any,
    *,
    region: str | None = None,
    concurrency: int = 4,
    lease_s: float = DEFAULT_LEASE_S,
    output_dir: str | Path | None = None,
    worker_id: str | None = None,
    stop_event: threading.Event | None = None,
    poll_s: float | None = None,
    on_claim: Callable[[str], Any] | None = None,
) -> WorkerResult:
    """Join shared run ``run_id`` and drain it with ``concurrency`` calls in flight; return what this worker did.

    ``client_settings`` is a dict of :class:`~nbp_kit.client.AsyncClient` options (``base_url``,
    ``api_key``...) or an emulator handle. Returns when no item is left open (items other
    workers hold are waited for: if their worker dies, this one takes them after the lease).
    ``on_claim(request_key)`` is called after each claim (tests use it to time a kill).
    """
    if isinstance(store, str):
        store = RunStore(store)
    require_postgres(store, "a worker")
    if isinstance(concurrency, bool) or not isinstance(concurrency, int) or concurrency < 1:
        raise ConfigError(f"concurrency={concurrency!r} is not accepted; use a whole number >= 1")
    if not (isinstance(lease_s, (int, float)) and lease_s > 0):
        raise ConfigError(f"lease_s={lease_s!r} is not accepted; use a number of seconds > 0")
    if region is not None and (not isinstance(region, str) or not region.strip() or len(region) > 64):
        raise ConfigError(f"region={region!r} is not accepted; use a short label such as 'eu-west'")
    if not isinstance(client_settings, dict) and not (
        hasattr(client_settings, "base_url") and hasattr(client_settings, "api_key")
    ):
        raise ConfigError(
            f"client_settings={type(client_settings).__name__} is not accepted; pass a dict of client "
            "options (base_url, api_key...) or an emulator handle"
        )
    run = store.get_run(run_id)
    plan = Plan.from_dict(run["plan"], source=f"run {run_id}")
    host = socket.gethostname()
    worker_id = worker_id or make_worker_id(host)
    shared = SharedRun(store._db.url, run_id, worker_id=worker_id, lease_s=lease_s)
    try:
        return asyncio.run(
            _drain(
                plan,
                store,
                shared,
                client_settings,
                region=region,
                host=host,
                concurrency=concurrency,
                output_dir=Path(output_dir) if output_dir is not None else _default_image_dir(run_id),
                stop_event=stop_event or threading.Event(),
                poll_s=poll_s if poll_s is not None else min(1.0, lease_s / 4),
                on_claim=on_claim,
            )
        )
    finally:
        shared.close()


def _default_image_dir(run_id: str) -> Path:
    from .._paths import RUNS_DIR

    return RUNS_DIR / "images" / run_id


def _make_client(settings: Any, plan: Plan, **hooks: Any) -> Any:
    from ..client import AsyncClient

    if hasattr(settings, "base_url") and hasattr(settings, "api_key"):
        return AsyncClient.for_emulator(settings, provider=plan.provider, model=plan.model, **hooks)
    options = {"provider": plan.provider, "model": plan.model, **settings}
    return AsyncClient(**options, **hooks)


async def _drain(
    plan: Plan,
    store: RunStore,
    shared: SharedRun,
    settings: Any,
    *,
    region: str | None,
    host: str,
    concurrency: int,
    output_dir: Path,
    stop_event: threading.Event,
    poll_s: float,
    on_claim: Callable[[str], Any] | None,
) -> WorkerResult:
    items: dict[str, PlanItem] = {i.request_key: i for i in plan.items()}
    sink = WorkerSink(store, worker_id=shared.worker_id, host=host, region=region)
    pacer = SharedPacer(shared)
    client = _make_client(settings, plan, sink=sink, pacer=pacer, output_dir=output_dir / shared.worker_id)
    held: set[str] = set()
    counts = {"calls": 0, "ok": 0, "failed": 0, "reclaimed": 0}
    reason = {"value": "completed"}

    async def renew_leases() -> None:
        while True:
            await asyncio.sleep(shared.lease_s / 3)
            await asyncio.to_thread(shared.renew, sorted(held))

    async def one_lane() -> None:
        while not stop_event.is_set():
            claim = await asyncio.to_thread(shared.claim)
            if claim == "spend_cap":
                reason["value"] = "spend_cap"
                return
            if not isinstance(claim, Claim):  # "empty"
                if await asyncio.to_thread(shared.open_items) == 0:
                    return
                await asyncio.sleep(poll_s)  # others hold the rest: wait for them, or for their leases to pass
                continue
            key, reserved = claim.request_key, claim.reserved_usd
            held.add(key)
            counts["reclaimed"] += claim.reclaimed
            if on_claim is not None:
                on_claim(key)
            item = items[key]
            try:
                gen = await client.generate(
                    item.prompt,
                    item.spec,
                    seed=item.seed,
                    stream=item.transport == "stream",
                    run_id=shared.run_id,
                    request_key=key,
                    raise_on_error=False,
                )
            except BaseException:
                held.discard(key)
                await asyncio.to_thread(shared.release, key, reserved)
                raise
            ok = bool(gen.ok)
            await asyncio.to_thread(shared.finish, key, ok=ok, reserved_usd=reserved, cost_usd=sink.take_cost(key))
            held.discard(key)
            counts["calls"] += 1
            counts["ok" if ok else "failed"] += 1
        if stop_event.is_set():
            reason["value"] = "stopped"

    renewer = asyncio.create_task(renew_leases())
    try:
        await asyncio.gather(*(one_lane() for _ in range(concurrency)))
    finally:
        renewer.cancel()
        await client.aclose()
    return WorkerResult(
        run_id=shared.run_id,
        worker_id=shared.worker_id,
        region=region,
        calls=counts["calls"],
        ok=counts["ok"],
        failed=counts["failed"],
        attempts=sink.attempts,
        rate_limited=sink.rate_limited,
        duplicates=sink.duplicates,
        reclaimed=counts["reclaimed"],
        stopped_reason=reason["value"],
    )
