"""Bulk at half price: a :class:`~nbp_kit.runs.plan.Plan` run as one Gemini Batch API job.

The Batch API runs requests on Google's side at 50 % of the interactive price, with a 24-hour
target. :func:`submit_batch` turns a plan into one job (inline requests when the plan is small,
a JSONL file uploaded through the Files API otherwise); :func:`wait_batch` polls with back-off;
:func:`collect_batch` streams the results into the run store, one :class:`~nbp_kit.records.Attempt`
per item::

    >>> batch_price_share("gemini", "gemini-3-pro-image")  # from data/prices.json
    0.5

What survives a crash: the run and one ``started`` attempt per item are committed before the
job is created, and the job's name is recorded right after the create call answers, before
anything else. :func:`batch_status` finds a job whose name was never recorded by its display
name (the run id). Collecting writes each item under a fixed attempt id, so collecting again
(after a ``kill -9``, say) overwrites rather than duplicates.

Times per attempt (the client's view, wall clock): ``scheduled_at``/``sent_at`` = submit,
``queue_s`` = submit to the first poll that saw the job RUNNING (an upper bound at poll
resolution; empty when no poll saw it running), ``ended_at`` = the first poll that saw the job
finished, ``total_s`` = the item's turnaround. Items of an EXPIRED, CANCELLED or FAILED job are
recorded as errors (``batch_expired``, ``batch_cancelled``, ``batch_failed``), not billed.
"""

from __future__ import annotations

import dataclasses
import json
import os
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx2

from ..client import images
from ..errors import BadPayload, ConfigError, ContentBlocked, RequestFailed, StoreError, register_secret
from ..providers.gemini import parse_gemini_body
from ..providers.http_errors import classify_http_error
from ..providers.pricing import attempt_cost, batch_price_share
from ..providers.registry import get_provider
from ..records import Attempt
from .plan import DEFAULT_SPEND_CAP_USD, Plan, PlanItem, check_spend_cap
from .runner import _remove_stray_files
from .store import RunStore

#: The service's limit on an inline create request.
INLINE_LIMIT_BYTES = 20 * 1024 * 1024
#: ``mode="auto"`` sends inline only up to this many items: inline results come back inside
#: the job itself, and large inline image results are known to be impossible to fetch.
INLINE_MAX_ITEMS = 20
MODES: tuple[str, ...] = ("auto", "inline", "file")
ACTIVE_STATES = ("BATCH_STATE_PENDING", "BATCH_STATE_RUNNING")
TERMINAL_STATES = ("BATCH_STATE_SUCCEEDED", "BATCH_STATE_FAILED", "BATCH_STATE_CANCELLED", "BATCH_STATE_EXPIRED")
_ERROR_KIND = {
    "BATCH_STATE_EXPIRED": "batch_expired",
    "BATCH_STATE_CANCELLED": "batch_cancelled",
    "BATCH_STATE_FAILED": "batch_failed",
}
_UPLOAD_CHUNK = 8 * 1024 * 1024
_TRANSPORT = "batch"


@dataclasses.dataclass(frozen=True, slots=True)
class BatchStatus:
    """A batch run as last seen: the job's state and counters, and the run's times."""

    run_id: str
    job_name: str | None
    state: str  # BATCH_STATE_* (SUBMITTING before the job exists)
    requests: int
    succeeded: int
    failed: int
    pending: int
    input_mode: str  # inline | file
    submitted_at: float | None
    running_seen_at: float | None
    ended_seen_at: float | None
    polls: int
    collected: bool

    @property
    def done(self) -> bool:
        return self.state in TERMINAL_STATES

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def __str__(self) -> str:
        return (
            f"run {self.run_id}: job {self.job_name or '(not created)'} {self.state.removeprefix('BATCH_STATE_')}, "
            f"{self.succeeded} ok, {self.failed} failed, {self.pending} pending of {self.requests} "
            f"({self.input_mode} input{', collected' if self.collected else ''})"
        )


# ---- the wire ---------------------------------------------------------------------------
class _Wire:
    """The few Batch and Files calls, on one httpx2 client; the key goes only in a header."""

    def __init__(self, base_url: str, api_key: str, *, timeout_s: float = 300.0) -> None:
        self.base_url = base_url.rstrip("/")
        self.http = httpx2.Client(
            base_url=self.base_url, headers={"x-goog-api-key": api_key}, timeout=httpx2.Timeout(timeout_s, connect=10.0)
        )
        self.time_scale: float | None = None
        self.clock = "real"

    def close(self) -> None:
        self.http.close()

    def call(self, method: str, path: str, **kw: Any) -> dict[str, Any]:
        resp = self.http.request(method, path, **kw)
        self._note(resp)
        if resp.status_code >= 400:
            info = classify_http_error(resp.status_code, resp.headers, resp.content)
            raise info.to_exception()
        return resp.json() if resp.content else {}

    def _note(self, resp: Any) -> None:
        if "x-emulator-time-scale" in resp.headers:
            self.time_scale = float(resp.headers["x-emulator-time-scale"])
            self.clock = resp.headers.get("x-emulator-clock", "scaled")

    def upload(self, path: Path, *, display_name: str) -> str:
        """Resumable upload of a JSONL file; returns ``files/...``."""
        size = path.stat().st_size
        start = self.http.post(
            "/upload/v1beta/files",
            json={"file": {"displayName": display_name}},
            headers={
                "X-Goog-Upload-Protocol": "resumable",
                "X-Goog-Upload-Command": "start",
                "X-Goog-Upload-Header-Content-Length": str(size),
                "X-Goog-Upload-Header-Content-Type": "application/jsonl",
            },
        )
        self._note(start)
        url = start.headers.get("x-goog-upload-url")
        if start.status_code >= 400 or not url:
            raise classify_http_error(start.status_code, start.headers, start.content).to_exception()
        offset = 0
        with open(path, "rb") as fh:
            while True:
                chunk = fh.read(_UPLOAD_CHUNK)
                last = offset + len(chunk) >= size
                resp = self.http.post(
                    url,
                    content=chunk,
                    headers={
                        "X-Goog-Upload-Command": "upload, finalize" if last else "upload",
                        "X-Goog-Upload-Offset": str(offset),
                    },
                )
                if resp.status_code >= 400:
                    raise classify_http_error(resp.status_code, resp.headers, resp.content).to_exception()
                offset += len(chunk)
                if last:
                    return str(resp.json()["file"]["name"])

    def stream_lines(self, file_name: str) -> Iterator[bytes]:
        """The lines of a results file, streamed (never the whole file in memory)."""
        file_id = file_name.removeprefix("files/")
        with self.http.stream("GET", f"/download/v1beta/files/{file_id}:download", params={"alt": "media"}) as resp:
            if resp.status_code >= 400:
                resp.read()
                raise classify_http_error(resp.status_code, resp.headers, resp.content).to_exception()
            buf = bytearray()
            for chunk in resp.iter_bytes():
                start = len(buf)
                buf += chunk
                while (end := buf.find(b"\n", start)) >= 0:
                    line = bytes(buf[:end])
                    del buf[: end + 1]
                    start = 0
                    if line.strip():
                        yield line
            if bytes(buf).strip():
                yield bytes(buf)


# ---- submit -----------------------------------------------------------------------------
def _check_args(plan: Any, mode: str, api_key: Any) -> str:
    if not isinstance(plan, Plan):
        raise ConfigError(f"plan={plan!r} is not accepted; pass an nbp_kit.Plan")
    if plan.provider != "gemini":
        raise ConfigError(
            f"plan.provider={plan.provider!r} is not accepted for a batch job; use 'gemini' (the Batch API is Gemini's)"
        )
    if mode not in MODES:
        raise ConfigError(f"mode={mode!r} is not accepted; use one of {', '.join(repr(m) for m in MODES)}")
    key = api_key if api_key is not None else os.environ.get("GEMINI_API_KEY")
    if not isinstance(key, str) or not key.strip():
        raise ConfigError("api_key=None is not accepted; pass api_key='...' or set GEMINI_API_KEY")
    register_secret(key)
    return key


def _check_base_url(base_url: Any) -> str:
    if not isinstance(base_url, str):
        raise ConfigError(
            f"base_url={base_url!r} is not accepted; use an http(s) URL such as "
            "'https://generativelanguage.googleapis.com'"
        )
    try:
        url = httpx2.URL(base_url)
    except Exception:  # noqa: BLE001 - any parse failure is the same bad input
        url = None
    if url is None or url.scheme not in ("http", "https") or not url.host or url.query or url.userinfo:
        raise ConfigError(
            f"base_url={base_url!r} is not accepted; use an http(s) URL with a host and no query or "
            "credentials, such as 'https://generativelanguage.googleapis.com'"
        )
    return base_url.rstrip("/")


def _write_requests(items: list[PlanItem], folder: Path) -> Path:
    """Every item's request as one JSONL line ``{"key", "request"}``, written as it goes."""
    provider = get_provider("gemini")
    folder.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(dir=folder, prefix=".batch-requests-", suffix=".jsonl")
    with os.fdopen(fd, "wb") as fh:
        for item in items:
            body = provider.build_request(item.prompt, item.spec, seed=item.seed).json
            fh.write(json.dumps({"key": item.request_key, "request": body}, separators=(",", ":")).encode() + b"\n")
    return Path(name)


def _inline_body(path: Path, display_name: str) -> bytes:
    entries = []
    with open(path, "rb") as fh:
        for line in fh:
            entry = json.loads(line)
            entries.append({"request": entry["request"], "metadata": {"key": entry["key"]}})
    return json.dumps(
        {"batch": {"displayName": display_name, "inputConfig": {"requests": {"requests": entries}}}},
        separators=(",", ":"),
    ).encode()


def submit_batch(
    plan: Plan,
    *,
    base_url: str,
    store: RunStore,
    api_key: str | None = None,
    mode: str = "auto",
    run_id: str | None = None,
    output_dir: str | os.PathLike[str] | None = None,
    spend_cap_usd: float = DEFAULT_SPEND_CAP_USD,
    tags: tuple[str, ...] = (),
) -> str:
    """Submit ``plan`` as one batch job and return the run id (poll and collect with it).

    ``mode``: ``"inline"`` (requests inside the create call, under 20 MB), ``"file"`` (a JSONL
    file through the Files API) or ``"auto"`` (inline up to :data:`INLINE_MAX_ITEMS` items).
    The spend cap is checked against the batch price (``batch_price_share`` of the interactive
    estimate, from ``data/prices.json``).

    >>> submit_batch(Plan(prompts=["a cat"]), base_url="http://127.0.0.1:1", store=RunStore.memory(),
    ...              api_key="k", mode="fast")
    Traceback (most recent call last):
    ...
    nbp_kit.errors.ConfigError: mode='fast' is not accepted; use one of 'auto', 'inline', 'file'
    """
    key = _check_args(plan, mode, api_key)
    base = _check_base_url(base_url)
    pf = plan.preflight()
    share = batch_price_share(plan.provider, plan.model)
    check_spend_cap(
        dataclasses.replace(
            pf,
            est_cost_usd=round(pf.est_cost_usd * share, 6),
            cost_per_request_usd=pf.cost_per_request_usd * share,
        ),
        spend_cap_usd,
    )
    items = plan.items()
    out_dir = (
        Path(output_dir)
        if output_dir is not None
        else Path(store.path).parent / "images"
        if store.path != ":memory:"
        else Path(tempfile.gettempdir()) / "nbp-kit-images"
    )
    requests_path = _write_requests(items, out_dir)
    try:
        run_id = run_id or time.strftime("batch-%Y%m%d-%H%M%S-") + os.urandom(3).hex()
        display_name = f"nbp-kit {run_id}"
        inline = mode == "inline" or (mode == "auto" and len(items) <= INLINE_MAX_ITEMS)
        body = _inline_body(requests_path, display_name) if inline else b""
        if inline and len(body) > INLINE_LIMIT_BYTES:
            raise ConfigError(
                f"mode={mode!r}: the inline request would be {len(body) / 2**20:.1f} MB, above the "
                f"Batch API's {INLINE_LIMIT_BYTES / 2**20:.0f} MB limit; use mode='file' (or 'auto')"
            )
        host = httpx2.URL(base).netloc.decode()
        wire = _Wire(base, key)
        try:
            _create_run(
                store,
                plan,
                items,
                run_id=run_id,
                base=base,
                host=host,
                inline=inline,
                display_name=display_name,
                out_dir=out_dir,
                tags=tags,
            )
            src: bytes
            if inline:
                src = body
            else:
                file_name = wire.upload(requests_path, display_name=f"{display_name} requests")
                _set(store, run_id, input_file=file_name)
                src = json.dumps(
                    {"batch": {"displayName": display_name, "inputConfig": {"fileName": file_name}}}
                ).encode()
            _set(store, run_id, submitted_at=time.time(), time_scale=wire.time_scale, clock=wire.clock)
            try:
                job = wire.call(
                    "POST",
                    f"/v1beta/models/{plan.model}:batchGenerateContent",
                    content=src,
                    headers={"content-type": "application/json"},
                )
            except RequestFailed as exc:  # refused (a limit, a bad request): no job, every item says why
                _refused(store, run_id, host, items, exc)
                raise
            _set(store, run_id, job_name=job["name"], state=job.get("metadata", {}).get("state", "BATCH_STATE_PENDING"))
        finally:
            wire.close()
    finally:
        requests_path.unlink(missing_ok=True)
    return run_id


def _create_run(
    store: RunStore,
    plan: Plan,
    items: list[PlanItem],
    *,
    run_id: str,
    base: str,
    host: str,
    inline: bool,
    display_name: str,
    out_dir: Path,
    tags: tuple[str, ...],
) -> None:
    store.create_run(
        plan=plan.as_dict(),
        provider="gemini",
        base_host=host,
        run_id=run_id,
        tags=tags,
        image_dir=str(out_dir / run_id),
        meta={
            "mode": "batch",
            "batch": {
                "state": "SUBMITTING",
                "display_name": display_name,
                "base_url": base,
                "input_mode": "inline" if inline else "file",
                "polls": 0,
                "collected": False,
            },
        },
    )
    store.update_run(run_id, status="running")
    store.add_attempts(_started(run_id, host, it) for it in items)


def _refused(store: RunStore, run_id: str, host: str, items: list[PlanItem], exc: RequestFailed) -> None:
    store.add_attempts(
        _started(run_id, host, it).replace(
            status="error", error_kind=exc.kind, status_code=exc.status_code, error_message=str(exc)
        )
        for it in items
    )
    _set(store, run_id, state="REFUSED", collected=True)
    store.update_run(run_id, status="failed", summary={"batch_state": "REFUSED", "error": str(exc)})


def _attempt_id(run_id: str, request_key: str) -> str:
    return f"{run_id}:{request_key}"


def _started(run_id: str, host: str, item: PlanItem) -> Attempt:
    s = item.spec
    return Attempt(
        attempt_id=_attempt_id(run_id, item.request_key),
        call_id=_attempt_id(run_id, item.request_key),
        attempt_no=1,
        run_id=run_id,
        request_key=item.request_key,
        provider="gemini",
        model=s.model,
        base_host=host,
        transport=_TRANSPORT,
        resolution=s.resolution,
        aspect_ratio=s.aspect_ratio,
        thinking_level=s.thinking_level,
        grid=s.grid,
        prompt=item.prompt,
        seed=item.seed,
    )


def _meta(store: RunStore, run_id: str) -> dict[str, Any]:
    run = store.get_run(run_id)
    meta = run["meta"].get("batch")
    if run["meta"].get("mode") != "batch" or not isinstance(meta, dict):
        raise ConfigError(f"run_id={run_id!r} is not a batch run; batch runs are made by submit_batch")
    return meta


def _set(store: RunStore, run_id: str, **changes: Any) -> None:
    store.update_run(run_id, meta={"batch": {**_meta(store, run_id), **changes}})


# ---- status, wait, cancel ---------------------------------------------------------------
def _wire_for(store: RunStore, run_id: str, api_key: str | None, base_url: str | None) -> _Wire:
    meta = _meta(store, run_id)
    key = api_key if api_key is not None else os.environ.get("GEMINI_API_KEY")
    if not isinstance(key, str) or not key.strip():
        raise ConfigError("api_key=None is not accepted; pass api_key='...' or set GEMINI_API_KEY")
    register_secret(key)
    return _Wire(_check_base_url(base_url or meta["base_url"]), key)


def _status(store: RunStore, run_id: str) -> BatchStatus:
    m = _meta(store, run_id)
    stats = m.get("stats", {})
    n = int(stats.get("requestCount", len(Plan.from_dict(store.get_run(run_id)["plan"]))))
    ok, failed = int(stats.get("successfulRequestCount", 0)), int(stats.get("failedRequestCount", 0))
    return BatchStatus(
        run_id,
        m.get("job_name"),
        m.get("state", "SUBMITTING"),
        n,
        ok,
        failed,
        int(stats.get("pendingRequestCount", n - ok - failed)),
        m.get("input_mode", "file"),
        m.get("submitted_at"),
        m.get("running_seen_at"),
        m.get("ended_seen_at"),
        int(m.get("polls", 0)),
        bool(m.get("collected")),
    )


def batch_status(
    store: RunStore, run_id: str, *, api_key: str | None = None, base_url: str | None = None
) -> BatchStatus:
    """Ask the service once for the job's state; record what was seen; return it."""
    wire = _wire_for(store, run_id, api_key, base_url)
    try:
        return _poll_once(store, run_id, wire)
    finally:
        wire.close()


def _operations(wire: _Wire) -> Iterator[dict[str, Any]]:
    """Every job on the service, newest first, page after page (the list carries no results)."""
    token = None
    while True:
        page = wire.call("GET", "/v1beta/batches", params={"pageSize": 100, **({"pageToken": token} if token else {})})
        yield from page.get("operations", [])
        token = page.get("nextPageToken")
        if not token:
            return


def _find_job(store: RunStore, run_id: str, wire: _Wire) -> str:
    """The job of a run whose submit stopped before its name was recorded (by display name)."""
    display = _meta(store, run_id)["display_name"]
    for op in _operations(wire):
        if op.get("metadata", {}).get("displayName") == display:
            _set(store, run_id, job_name=op["name"])
            return str(op["name"])
    raise StoreError(
        f"run_id={run_id!r} has no batch job on the service: its submit stopped before the job "
        "was created; submit the plan again"
    )


def _poll_once(store: RunStore, run_id: str, wire: _Wire) -> BatchStatus:
    meta = _meta(store, run_id)
    name = meta.get("job_name") or _find_job(store, run_id, wire)
    op = _get_job(wire, name)
    md = op.get("metadata", {})
    state = md.get("state", "BATCH_STATE_UNSPECIFIED")
    now = time.time()
    changes: dict[str, Any] = {
        "state": state,
        "stats": md.get("batchStats", {}),
        "polls": int(meta.get("polls", 0)) + 1,
        "last_poll_at": now,
    }
    if state == "BATCH_STATE_RUNNING" and meta.get("running_seen_at") is None:
        changes["running_seen_at"] = now
    if state in TERMINAL_STATES and meta.get("ended_seen_at") is None:
        changes["ended_seen_at"] = now
        changes["output"] = {k: v for k, v in md.get("output", {}).items() if k == "responsesFile"}
    if wire.time_scale is not None:
        changes["time_scale"], changes["clock"] = wire.time_scale, wire.clock
    _set(store, run_id, **changes)
    return _status(store, run_id)


def _get_job(wire: _Wire, name: str) -> dict[str, Any]:
    """GET the job without its inline results (they can be large; collect reads them). When
    the get answers 503 (large inline results time out on every get), read the job's state
    from the list instead, which carries no results."""
    with wire.http.stream("GET", f"/v1beta/{name}") as resp:
        wire._note(resp)
        if resp.status_code >= 400:
            resp.read()
            exc = classify_http_error(resp.status_code, resp.headers, resp.content).to_exception()
            if resp.status_code == 503 and (listed := _listed(wire, name)) is not None:
                return listed
            raise exc
        body = resp.read()
    op = json.loads(body)
    op.get("metadata", {}).get("output", {}).pop("inlinedResponses", None)
    op.pop("response", None)
    return op


def _listed(wire: _Wire, name: str) -> dict[str, Any] | None:
    return next((dict(op) for op in _operations(wire) if op.get("name") == name), None)


def wait_batch(
    store: RunStore,
    run_id: str,
    *,
    api_key: str | None = None,
    base_url: str | None = None,
    poll_s: float = 30.0,
    max_poll_s: float = 600.0,
    timeout_s: float | None = None,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
    on_poll: Callable[[BatchStatus], None] | None = None,
) -> BatchStatus:
    """Poll until the job ends (or ``timeout_s`` passes), waiting ``poll_s`` x 1.5 per poll up
    to ``max_poll_s``. Safe to call again after a restart: the job name is in the store."""
    for name, value in (("poll_s", poll_s), ("max_poll_s", max_poll_s)):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
            raise ConfigError(f"{name}={value!r} is not accepted; use a number of seconds > 0")
    wire = _wire_for(store, run_id, api_key, base_url)
    start, delay = clock(), float(poll_s)
    try:
        while True:
            status = _poll_once(store, run_id, wire)
            if on_poll is not None:
                on_poll(status)
            if status.done or (timeout_s is not None and clock() - start >= timeout_s):
                return status
            sleep(delay)
            delay = min(delay * 1.5, float(max_poll_s))
    finally:
        wire.close()


def cancel_batch(
    store: RunStore, run_id: str, *, api_key: str | None = None, base_url: str | None = None
) -> BatchStatus:
    """Ask the service to cancel the job; return its state afterwards."""
    wire = _wire_for(store, run_id, api_key, base_url)
    try:
        name = _meta(store, run_id).get("job_name") or _find_job(store, run_id, wire)
        wire.call("POST", f"/v1beta/{name}:cancel")
        return _poll_once(store, run_id, wire)
    finally:
        wire.close()


# ---- collect ----------------------------------------------------------------------------
def collect_batch(
    store: RunStore, run_id: str, *, api_key: str | None = None, base_url: str | None = None, save_images: bool = True
) -> BatchStatus:
    """Record every item of a finished job (poll first if needed: a job still running is
    refused). Results are read one line at a time; collecting twice records nothing twice."""
    wire = _wire_for(store, run_id, api_key, base_url)
    try:
        status = _status(store, run_id)
        if not status.done:
            status = _poll_once(store, run_id, wire)
        if not status.done:
            raise ConfigError(
                f"run_id={run_id!r}: the job is {status.state}; wait for it to end (wait_batch) before collecting"
            )
        run = store.get_run(run_id)
        _remove_stray_files(store, run_id, run["image_dir"])  # a collect killed mid-write leaves temp files
        meta = _meta(store, run_id)
        items = {it.request_key: it for it in Plan.from_dict(run["plan"]).items()}
        done = store.done_keys(run_id)
        ctx = _Context(
            run_id=run_id, host=run["base_host"], meta=meta, image_dir=Path(run["image_dir"]), save_images=save_images
        )
        seen: set[str] = set()
        if status.state == "BATCH_STATE_SUCCEEDED":
            for key, entry in _results(wire, meta):
                seen.add(key)
                if key in items and key not in done:
                    store.attempt_finished(_record(ctx, items[key], entry))
        kind = _ERROR_KIND.get(status.state, "missing_result")
        for key, item in items.items():
            if key not in seen and key not in done:
                store.attempt_finished(_unfinished(ctx, item, kind, status.state))
        _set(store, run_id, collected=True)
        store.update_run(
            run_id,
            status="done" if status.state == "BATCH_STATE_SUCCEEDED" else "failed",
            summary={"batch_state": status.state, "cost_usd": store.run_cost_usd(run_id)},
        )
        return _status(store, run_id)
    finally:
        wire.close()


def run_batch(
    plan: Plan,
    *,
    base_url: str,
    store: RunStore,
    api_key: str | None = None,
    mode: str = "auto",
    poll_s: float = 30.0,
    max_poll_s: float = 600.0,
    timeout_s: float | None = None,
    **submit: Any,
) -> BatchStatus:
    """Submit, wait and collect in one call (see :func:`submit_batch` for the options)."""
    run_id = submit_batch(plan, base_url=base_url, store=store, api_key=api_key, mode=mode, **submit)
    status = wait_batch(store, run_id, api_key=api_key, poll_s=poll_s, max_poll_s=max_poll_s, timeout_s=timeout_s)
    return collect_batch(store, run_id, api_key=api_key) if status.done else status


def _results(wire: _Wire, meta: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    """(key, {"response"|"error"}) per item: from the results file, streamed, or from the job."""
    out_file = meta.get("output", {}).get("responsesFile")
    if out_file:
        for line in wire.stream_lines(out_file):
            entry = json.loads(line)
            yield str(entry.get("key")), entry
        return
    try:
        op = wire.call("GET", f"/v1beta/{meta['job_name']}")
    except RequestFailed as exc:
        if exc.status_code != 503:
            raise
        raise type(exc)(
            f"{exc} The job's inline results could not be fetched: large inline image results are "
            "known to time out on every get. Submit the plan again with mode='file'.",
            kind=exc.kind,
            status_code=exc.status_code,
        ) from exc
    inlined = op.get("response", {}).get("inlinedResponses") or op.get("metadata", {}).get("output", {}).get(
        "inlinedResponses", {}
    )
    for entry in inlined.get("inlinedResponses", []):
        yield str(entry.get("metadata", {}).get("key")), entry


@dataclasses.dataclass(frozen=True, slots=True)
class _Context:
    run_id: str
    host: str
    meta: dict[str, Any]
    image_dir: Path
    save_images: bool

    def times(self) -> dict[str, Any]:
        m = self.meta
        sub, run, end = m.get("submitted_at"), m.get("running_seen_at"), m.get("ended_seen_at")
        queue = run - sub if run is not None and sub is not None else None
        total = end - sub if end is not None and sub is not None else None
        return {
            "scheduled_at": sub,
            "sent_at": sub,
            "ended_at": end,
            "queue_s": queue,
            "total_s": total,
            "wait_s": (total - queue) if total is not None and queue is not None else total,
            "time_scale": float(m.get("time_scale") or 1.0),
            "clock": m.get("clock") or "real",
        }


def _record(ctx: _Context, item: PlanItem, entry: dict[str, Any]) -> Attempt:
    base = _started(ctx.run_id, ctx.host, item).replace(**ctx.times())
    if "error" in entry or "response" not in entry:
        err = entry.get("error") or {"code": 500, "message": "no response and no error for this item"}
        code = int(err.get("code") or 500)
        error = classify_http_error(code, {}, json.dumps({"error": err}).encode())
        return base.replace(status="error", status_code=code, error_kind=error.kind, error_message=error.message)
    raw_response = json.dumps(entry["response"], separators=(",", ":")).encode()
    try:
        parsed = parse_gemini_body(raw_response)
        raw = images.decode_base64(parsed.image_b64 or "")
        info = images.inspect_image(raw)
    except (BadPayload, ContentBlocked) as exc:
        return base.replace(status="error", status_code=200, error_kind=exc.kind, error_message=str(exc))
    usage = parsed.usage
    cost = attempt_cost("gemini", item.spec.model, item.spec, usage) * batch_price_share("gemini", item.spec.model)
    fields: dict[str, Any] = {}
    if ctx.save_images:
        path = ctx.image_dir / f"{item.request_key}{info.ext}"
        fields["image_sha256"] = images.save_atomic(path, raw)
        fields["image_path"] = str(path)
    return base.replace(
        status="ok",
        status_code=200,
        bytes_down=len(raw_response),
        bytes_decoded=len(raw),
        prompt_tokens=usage.prompt_tokens if usage else None,
        output_tokens=usage.output_tokens if usage else None,
        thoughts_tokens=usage.thoughts_tokens if usage else None,
        image_tokens=usage.image_tokens if usage else None,
        cost_usd=round(cost, 6),
        response_id=parsed.response_id,
        model_version=parsed.model_version,
        image_width=info.width,
        image_height=info.height,
        image_mime=info.mime,
        size_ok=images.size_matches(info, item.spec.pixel_size),
        **fields,
    )


def _unfinished(ctx: _Context, item: PlanItem, kind: str, state: str) -> Attempt:
    message = (
        f"the batch job ended {state.removeprefix('BATCH_STATE_')} before this item ran"
        if kind != "missing_result"
        else "the batch job succeeded but returned no result for this item"
    )
    return _started(ctx.run_id, ctx.host, item).replace(
        status="error", error_kind=kind, error_message=message, **ctx.times()
    )


__all__ = [
    "BatchStatus",
    "batch_status",
    "cancel_batch",
    "collect_batch",
    "run_batch",
    "submit_batch",
    "wait_batch",
]
