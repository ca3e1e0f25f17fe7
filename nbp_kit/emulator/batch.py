"""The emulator's Batch API (and the Files routes it needs): jobs on the emulator's clock.

Routes (JSON unless noted; the Files routes are in :mod:`.files`)::

    POST   /v1beta/models/{model}:batchGenerateContent   create (inline requests or a JSONL file)
    GET    /v1beta/batches/{id}                          the job (an Operation)
    GET    /v1beta/batches?pageSize=&pageToken=          {"operations": [...], "nextPageToken"}
    POST   /v1beta/batches/{id}:cancel
    DELETE /v1beta/batches/{id}

A job's life, in service seconds (every delay times ``time_scale``, like every other delay)::

    PENDING  queue: lognormal(median queue_median_s, sigma queue_sigma) (a heavy tail)
             or, with probability stuck_prob, PENDING until expire_after_s, then EXPIRED
    RUNNING  items on ``parallel`` workers, each drawn from the latency and fault model
    SUCCEEDED results written (inline in the job, or a JSONL file for file input)

Limits as the service gives them (profile ``batch`` section, defaults below): an inline
request over 20 MB -> 400; more than 100 jobs pending or running -> 429; an inline result set
over ``inline_result_limit_bytes`` -> every ``get`` answers 503 after 60 s.

>>> DEFAULTS["max_concurrent_jobs"], DEFAULTS["inline_limit_bytes"]
(100, 20971520)
"""

from __future__ import annotations

import asyncio
import base64
import collections
import dataclasses
import heapq
import json
import math
import re
import time
from typing import TYPE_CHECKING, Any

from . import faults as F
from .files import FileStore, UploadError, new_id, rfc3339
from .network import paced_send
from .respond import final_gemini, image_mime, split_around_image, with_signature
from .wire import Reject, field, new_response_id, read_body

if TYPE_CHECKING:
    from .wire import Serving

#: Batch behaviour, overridable per profile under ``"batch"`` (service seconds).
DEFAULTS: dict[str, Any] = {
    "queue_median_s": 120.0,  # typical wait before a job starts
    "queue_sigma": 1.5,  # lognormal spread: P99 about 33 x the median
    "stuck_prob": 0.0,  # share of jobs left PENDING until they expire (users report it)
    "parallel": 32,  # items in flight inside a running job
    "expire_after_s": 48 * 3600.0,
    "max_concurrent_jobs": 100,
    "inline_limit_bytes": 20 * 1024 * 1024,
    "inline_result_limit_bytes": 100 * 1024 * 1024,
    "oversized_get_timeout_s": 60.0,
    "default_page_size": 50,
}
ACTIVE_STATES = ("BATCH_STATE_PENDING", "BATCH_STATE_RUNNING")
_TYPE_BATCH = "type.googleapis.com/google.ai.generativelanguage.v1beta.GenerateContentBatch"
_TYPE_OUTPUT = "type.googleapis.com/google.ai.generativelanguage.v1beta.GenerateContentBatchOutput"
_CREATE = re.compile(r"^/v1beta/models/([^/:]+):batchGenerateContent$")
_JOB = re.compile(r"^/v1beta/batches/([a-z0-9-]+)(:cancel)?$")
_FILE = re.compile(r"^(?:/download)?/v1beta/files/([a-z0-9-]+)(:download)?$")
_ITEM_ERRORS = ("429", "500", "503", "504")  # faults that become an item's error in a batch


@dataclasses.dataclass(slots=True)
class _Item:
    key: str
    finish_s: float  # real seconds after the job starts running
    fault: str | None


@dataclasses.dataclass(slots=True)
class _Job:
    job_id: str
    model: str
    display_name: str
    inline: bool
    source: Any  # list of (key, request dict) for inline, the input file id otherwise
    items: list[_Item]
    created_at: float  # virtual epoch
    created_mono: float
    state: str = "BATCH_STATE_PENDING"
    started_mono: float | None = None
    ended_at: float | None = None
    updated_at: float = 0.0
    ok: int = 0
    failed: int = 0
    results_path: Any = None  # Path of the written results
    results_bytes: int = 0
    output_file: str | None = None
    error: dict[str, Any] | None = None
    task: asyncio.Task[None] | None = None


def _bad(status: int, message: str) -> Exception:
    return Reject(status, F.gemini_error(status, message))


def _v1beta(path: str) -> str:
    """The same route under ``/v1/`` (google-genai 3 defaults to it) as under ``/v1beta/``;
    the relay's ``/v1/files/{id}.png`` is left alone."""
    if path.endswith(".png"):
        return path
    return re.sub(r"^(/upload|/download)?/v1/(batches|files|models/[^/:]+:batchGenerateContent)", r"\1/v1beta/\2", path)


def _resolution(request: Any) -> str:
    """The image size one request asks for (its latency cell); 1K when absent or odd."""
    img = field(field(request, "generationConfig") or {}, "imageConfig") or {}
    size = field(img, "imageSize", "1K")
    return size if size in ("1K", "2K", "4K") else "1K"


class BatchService:
    """Batch jobs and files for one emulator; ``app.py`` hands it the paths it owns."""

    def __init__(self, app: Serving) -> None:
        self.app = app
        self.params = {**DEFAULTS, **app.profile.get("batch", {})}
        self.files = FileStore(time_scale=app.time_scale, virtual_now=app.clock.virtual_now)
        self.jobs: collections.OrderedDict[str, _Job] = collections.OrderedDict()

    @staticmethod
    def owns(path: str) -> bool:
        path = _v1beta(path)
        return bool(
            _CREATE.match(path) or _FILE.match(path) or path.startswith(("/v1beta/batches", "/upload/v1beta/files"))
        )

    # ---- routing ----------------------------------------------------------------------
    async def handle(
        self,
        path: str,
        method: str,
        query: dict[str, list[str]],
        headers: dict[str, str],
        scope: dict[str, Any],
        receive: Any,
        send: Any,
    ) -> None:

        app = self.app
        path = _v1beta(path)
        base = f"{scope.get('scheme', 'http')}://{headers.get('host', '127.0.0.1')}"
        if path.startswith("/upload/v1beta/files") and method == "POST":
            body = await read_body(receive)
            upload_id = next(iter(query.get("upload_id") or []), None)
            if upload_id is None:
                app.check_gemini_key(headers, query)
            await self._upload(upload_id, body, headers, base, send)
            return
        app.check_gemini_key(headers, query)
        if (m := _CREATE.match(path)) and method == "POST":
            body = await read_body(receive)
            await self._json(send, headers, 200, self._create(m.group(1), body))
        elif (m := _JOB.match(path)) and not m.group(2) and method == "GET":
            await self._get(m.group(1), headers, send)
        elif path.rstrip("/") == "/v1beta/batches" and method == "GET":
            await self._json(send, headers, 200, self._list(query))
        elif (m := _JOB.match(path)) and m.group(2) and method == "POST":
            await self._json(send, headers, 200, self._cancel(m.group(1)))
        elif (m := _JOB.match(path)) and not m.group(2) and method == "DELETE":
            self._job(m.group(1))
            self._cancel(m.group(1))
            self.jobs.pop(m.group(1), None)
            await self._json(send, headers, 200, {})
        elif (m := _FILE.match(path)) and m.group(2) and method == "GET":
            await self._download(m.group(1), headers, send)
        elif (m := _FILE.match(path)) and not m.group(2) and method == "GET":
            stored = self.files.get(m.group(1))
            if stored is None:
                raise _bad(403, f"You do not have permission to access the File {m.group(1)} or it may not exist.")
            await self._json(send, headers, 200, stored.resource(base))
        elif (m := _FILE.match(path)) and not m.group(2) and method == "DELETE":
            if not self.files.delete(m.group(1)):
                raise _bad(403, f"You do not have permission to access the File {m.group(1)} or it may not exist.")
            await self._json(send, headers, 200, {})
        else:
            raise _bad(404, f"Method not found: {method} {path}")

    async def _json(
        self,
        send: Any,
        headers: dict[str, str],
        status: int,
        obj: dict[str, Any],
        extra: dict[str, str] | None = None,
        outcome: str = "batch",
    ) -> None:
        await self.app.send_json(send, status, obj, headers, extra=extra, outcome=outcome)

    # ---- files ------------------------------------------------------------------------
    async def _upload(self, upload_id: str | None, body: bytes, headers: dict[str, str], base: str, send: Any) -> None:
        command = headers.get("x-goog-upload-command", "").replace(" ", "").lower()
        try:
            if upload_id is None:
                if headers.get("x-goog-upload-protocol", "").lower() != "resumable" or command != "start":
                    raise UploadError(
                        400,
                        "Send X-Goog-Upload-Protocol: resumable and X-Goog-Upload-Command: start to open an upload.",
                    )
                try:
                    meta = field(json.loads(body or b"{}"), "file") or {}
                except ValueError:
                    raise UploadError(400, "Invalid JSON payload received.") from None
                new = self.files.start_upload(
                    declared_bytes=headers.get("x-goog-upload-header-content-length"),
                    mime=headers.get("x-goog-upload-header-content-type") or field(meta, "mimeType"),
                    display_name=field(meta, "displayName"),
                    name=meta.get("name"),
                )
                url = f"{base}/upload/v1beta/files?upload_id={new}&upload_protocol=resumable"
                await self._json(
                    send,
                    headers,
                    200,
                    {},
                    extra={"x-goog-upload-url": url, "x-goog-upload-status": "active"},
                    outcome="upload",
                )
                return
            if command not in ("upload", "upload,finalize", "finalize"):
                raise UploadError(
                    400, f"X-Goog-Upload-Command={command!r} is not accepted; use 'upload' or 'upload, finalize'."
                )
            stored = self.files.append(
                upload_id, offset=headers.get("x-goog-upload-offset"), chunk=body, finalize=command.endswith("finalize")
            )
        except UploadError as exc:
            raise _bad(exc.status, exc.message) from None
        if stored is None:
            await self._json(send, headers, 200, {}, extra={"x-goog-upload-status": "active"}, outcome="upload")
        else:
            await self._json(
                send,
                headers,
                200,
                {"file": stored.resource(base)},
                extra={"x-goog-upload-status": "final"},
                outcome="upload",
            )

    async def _download(self, file_id: str, headers: dict[str, str], send: Any) -> None:

        stored = self.files.get(file_id)
        if stored is None:
            raise _bad(403, f"You do not have permission to access the File {file_id} or it may not exist.")
        app = self.app
        hdrs = [
            (b"content-type", stored.mime.encode()),
            *app.common_headers(0.0, 0.0),
            (b"content-length", str(stored.size_bytes).encode()),
        ]
        if app.network.rtt_s > 0:
            await asyncio.sleep(app.network.rtt_s)
        await send({"type": "http.response.start", "status": 200, "headers": hdrs})
        app.count("file_download", stored.size_bytes)
        for chunk in self.files.iter_bytes(stored):
            await paced_send(send, chunk, app.network.bandwidth_mbps, more_body=True)
        await send({"type": "http.response.body", "body": b"", "more_body": False})

    # ---- jobs -------------------------------------------------------------------------
    def _job(self, job_id: str) -> _Job:
        job = self.jobs.get(job_id)
        if job is None:
            raise _bad(404, f"Batch batches/{job_id} not found.")
        return job

    def active_jobs(self) -> int:
        return sum(1 for j in self.jobs.values() if j.state in ACTIVE_STATES)

    def _create(self, model: str, body: bytes) -> dict[str, Any]:
        p = self.params
        if len(body) > p["inline_limit_bytes"]:
            raise _bad(
                400,
                f"Request payload size exceeds the limit: {p['inline_limit_bytes']} bytes. "
                "Upload the requests as a JSONL file with the Files API and pass inputConfig.fileName.",
            )
        if model not in self.app.profile["models"]:
            raise _bad(
                404,
                f"models/{model} is not found for API version v1beta, or is not supported for batchGenerateContent.",
            )
        try:
            data = json.loads(body or b"{}")
        except ValueError:
            raise _bad(400, "Invalid JSON payload received. Unexpected token.") from None
        batch = field(data, "batch") if isinstance(data, dict) and field(data, "batch") is not None else data
        if not isinstance(batch, dict):
            raise _bad(400, "Invalid JSON payload received: 'batch' must be an object.")
        config = field(batch, "inputConfig") or {}
        file_name = field(config, "fileName")
        requests = field(config, "requests")
        if isinstance(requests, dict):
            requests = field(requests, "requests")
        if (file_name is None) == (requests is None):
            raise _bad(
                400, "* BatchGenerateContentRequest.batch.input_config: set exactly one of requests or file_name\n"
            )
        if self.active_jobs() >= p["max_concurrent_jobs"]:
            raise _bad(
                429,
                f"You have reached the limit of {p['max_concurrent_jobs']} concurrent batch jobs; "
                "wait for one to finish or cancel one.",
            )
        if requests is not None:
            if not isinstance(requests, list) or not requests:
                raise _bad(
                    400, "* BatchGenerateContentRequest.batch.input_config.requests: give at least one request\n"
                )
            source: Any = []
            for i, entry in enumerate(requests):
                if not isinstance(entry, dict) or not isinstance(field(entry, "request"), dict):
                    raise _bad(400, f"* requests[{i}]: each entry needs a 'request' object\n")
                key = (field(entry, "metadata") or {}).get("key", str(i))
                source.append((str(key), field(entry, "request")))
            keys = [(k, _resolution(r)) for k, r in source]
        else:
            file_id = str(file_name).removeprefix("files/")
            if self.files.get(file_id) is None:
                raise _bad(400, f"File {file_name} not found or not accessible.")
            keys = []
            for i, line in enumerate(self.files.iter_lines(file_id)):
                if not line.strip():
                    continue
                try:
                    entry = json.loads(line)
                except ValueError:
                    raise _bad(400, f"Line {i + 1} of {file_name} is not valid JSON.") from None
                if not isinstance(entry, dict):
                    raise _bad(400, f"Line {i + 1} of {file_name} is not a JSON object.")
                keys.append((str(entry.get("key", i)), _resolution(field(entry, "request"))))
            if not keys:
                raise _bad(400, f"File {file_name} holds no requests.")
            source = file_id
        job = self._new_job(model, str(field(batch, "displayName") or ""), source, keys)
        return self._resource(job, with_output=False)

    def _new_job(self, model: str, display_name: str, source: Any, keys: list[tuple[str, str]]) -> _Job:
        """Start a job; ``keys`` are (key, resolution) per item, in order."""
        app, p, ts = self.app, self.params, self.app.time_scale
        rng = app.rng
        items = []
        workers = [0.0] * max(1, int(p["parallel"]))  # a heap of when each worker is next free
        for key, resolution in keys:
            fault = F.draw_fault(app.profile.get("faults", {}), rng) if app.faults_on else None
            draw = app.latency.draw(
                model=model, resolution=resolution, level=None, grid="1x1", load_factor=app.load_factor(), rng=rng
            )
            free = heapq.heappop(workers)
            done = free + draw.queue_s + draw.generation_s
            heapq.heappush(workers, done)
            items.append(
                _Item(key, done, fault if fault in (*_ITEM_ERRORS, "blocked", "image-safety", "no-image") else None)
            )
        job = _Job(
            new_id(),
            model,
            display_name,
            isinstance(source, list),
            source,
            items,
            app.clock.virtual_now(),
            time.monotonic(),
        )
        job.updated_at = job.created_at
        self.jobs[job.job_id] = job
        stuck = float(rng.random()) < float(p["stuck_prob"])
        sigma = float(p["queue_sigma"])
        queue_s = (
            float(rng.lognormal(math.log(float(p["queue_median_s"])), sigma))
            if sigma > 0
            else float(p["queue_median_s"])
        )
        if stuck:
            queue_s = math.inf
        job.task = asyncio.ensure_future(self._run(job, queue_s * ts, float(p["expire_after_s"]) * ts))
        return job

    async def _run(self, job: _Job, queue_real_s: float, expire_real_s: float) -> None:
        """The job's timeline. Its results are rendered from the start, in a worker thread, so
        the emulator's own CPU time hides inside the scheduled queue and run times: the job is
        SUCCEEDED at its scheduled end (or when rendering ends, if that is later)."""
        run_real_s = max((it.finish_s for it in job.items), default=0.0)
        loop = asyncio.get_running_loop()
        render = None
        try:
            if queue_real_s >= expire_real_s:
                await asyncio.sleep(expire_real_s)
                self._end(job, "BATCH_STATE_EXPIRED")
                return
            if queue_real_s + run_real_s <= expire_real_s:
                render = loop.run_in_executor(self.app.executor, self._write_results, job)
            await asyncio.sleep(queue_real_s)
            job.state, job.started_mono = "BATCH_STATE_RUNNING", time.monotonic()
            job.updated_at = self.app.clock.virtual_now()
            await asyncio.sleep(min(run_real_s, expire_real_s - queue_real_s))
            if render is None:
                self._end(job, "BATCH_STATE_EXPIRED")
                return
            await render
            self._end(job, "BATCH_STATE_SUCCEEDED")
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - an emulator bug shows as a FAILED job, as the service would
            job.error = {"code": 13, "message": f"Internal error while running the batch: {type(exc).__name__}"}
            self._end(job, "BATCH_STATE_FAILED")

    def _end(self, job: _Job, state: str) -> None:
        job.state = state
        job.ended_at = job.updated_at = self.app.clock.virtual_now()

    def _cancel(self, job_id: str) -> dict[str, Any]:
        job = self._job(job_id)
        if job.state in ACTIVE_STATES:
            if job.task is not None:
                job.task.cancel()
            self._end(job, "BATCH_STATE_CANCELLED")
        return {}

    # ---- results ----------------------------------------------------------------------
    def _requests(self, job: _Job) -> Any:
        if job.inline:
            yield from job.source
            return
        for i, line in enumerate(self.files.iter_lines(job.source)):
            if line.strip():
                entry = json.loads(line)
                yield str(entry.get("key", i)), (field(entry, "request") if isinstance(entry, dict) else None)

    def _write_results(self, job: _Job) -> None:
        """Every item's answer, one JSON line each, to a file on disk (executor thread)."""
        path = self.files.new_path()
        with open(path, "wb") as out:
            for item, (key, request) in zip(job.items, self._requests(job), strict=False):
                if job.state not in ACTIVE_STATES:  # cancelled or deleted meanwhile: stop rendering
                    break
                line = self._answer(job, item, key, request)
                out.write(line + b"\n")
        if job.state not in ACTIVE_STATES:
            path.unlink(missing_ok=True)
            return
        job.results_path, job.results_bytes = path, path.stat().st_size
        if not job.inline:
            meta = self.files.add_generated(path=path, display_name=f"batch-{job.job_id}-responses")
            job.output_file = meta["name"]
            job.results_path = self.files.get(meta["name"].removeprefix("files/")).path  # type: ignore[union-attr]

    def _answer(self, job: _Job, item: _Item, key: str, request: Any) -> bytes:

        app = self.app
        head = F.dumps({"metadata": {"key": key}} if job.inline else {"key": key})[:-1]
        try:
            if not isinstance(request, dict):
                raise _bad(400, "Each line needs a 'request' object.")
            req = app.parse_gemini(job.model, F.dumps(request), stream=False)
        except Reject as rej:
            job.failed += 1
            return head + b',"error":' + F.dumps(rej.body["error"]) + b"}"
        if item.fault in _ITEM_ERRORS:
            job.failed += 1
            return head + b',"error":' + F.dumps(F.gemini_error(int(item.fault))["error"]) + b"}"
        level = req.level or app.profile["models"][req.model].get("default_level", "low")
        final = final_gemini(app, req, item.fault, level, new_response_id(), thought_parts=True)
        prefix, suffix = split_around_image(final)
        b64 = b""
        if suffix or prefix.endswith(b'"'):
            w, h = req.pixel_size
            _png, b64 = app.images.get(
                req.prompt,
                seed=req.seed,
                width=w,
                height=h,
                grid=req.grid,
                caption=req.caption,
                mime=image_mime(app, req),
            )
        suffix = with_signature(app, req, suffix)
        job.ok += 1
        return head + b',"response":' + prefix + b64 + suffix + b"}"

    # ---- views ------------------------------------------------------------------------
    def _stats(self, job: _Job) -> dict[str, str]:
        n = len(job.items)
        if job.state == "BATCH_STATE_SUCCEEDED":
            ok, failed = job.ok, job.failed
        elif job.state == "BATCH_STATE_RUNNING" and job.started_mono is not None:
            elapsed = time.monotonic() - job.started_mono
            finished = [it for it in job.items if it.finish_s <= elapsed]
            failed = sum(1 for it in finished if it.fault in _ITEM_ERRORS)
            ok = len(finished) - failed
        else:
            ok = failed = 0
        return {
            "requestCount": str(n),
            "successfulRequestCount": str(ok),
            "failedRequestCount": str(failed),
            "pendingRequestCount": str(n - ok - failed),
        }

    def _resource(self, job: _Job, *, with_output: bool) -> dict[str, Any]:
        meta: dict[str, Any] = {
            "@type": _TYPE_BATCH,
            "model": f"models/{job.model}",
            "displayName": job.display_name,
            "createTime": rfc3339(job.created_at),
            "updateTime": rfc3339(job.updated_at),
            "batchStats": self._stats(job),
            "state": job.state,
            "name": f"batches/{job.job_id}",
        }
        if job.ended_at is not None:
            meta["endTime"] = rfc3339(job.ended_at)
        op: dict[str, Any] = {"name": f"batches/{job.job_id}", "metadata": meta}
        if job.state not in ACTIVE_STATES:
            op["done"] = True
        if job.error is not None:
            op["error"] = job.error
        if job.state == "BATCH_STATE_SUCCEEDED" and job.output_file is not None:
            meta["output"] = {"responsesFile": job.output_file}
            op["response"] = {"@type": _TYPE_OUTPUT, "responsesFile": job.output_file}
        return op

    async def _get(self, job_id: str, headers: dict[str, str], send: Any) -> None:
        job = self._job(job_id)
        op = self._resource(job, with_output=True)
        if not (job.inline and job.state == "BATCH_STATE_SUCCEEDED" and job.results_path is not None):
            await self._json(send, headers, 200, op)
            return
        if job.results_bytes > self.params["inline_result_limit_bytes"]:
            # Users report large inline image results cannot be fetched: every get times out.
            await asyncio.sleep(float(self.params["oversized_get_timeout_s"]) * self.app.time_scale)
            raise _bad(503, "The service is currently unavailable.")
        loop = asyncio.get_running_loop()
        lines = await loop.run_in_executor(self.app.executor, job.results_path.read_bytes)
        inlined = b'{"inlinedResponses":[' + b",".join(lines.splitlines()) + b"]}"
        output = b'{"@type":"' + _TYPE_OUTPUT.encode() + b'","inlinedResponses":' + inlined + b"}"
        meta = F.dumps(op["metadata"])[:-1] + b',"output":{"inlinedResponses":' + inlined + b"}}"
        body = (
            b'{"name":"batches/'
            + job.job_id.encode()
            + b'","metadata":'
            + meta
            + b',"done":true,"response":'
            + output
            + b"}"
        )
        await self.app.send_bytes(send, 200, body, b"application/json; charset=UTF-8", headers, outcome="batch")

    def _list(self, query: dict[str, list[str]]) -> dict[str, Any]:
        raw_size = (query.get("pageSize") or [str(self.params["default_page_size"])])[0]
        try:
            size = int(raw_size)
        except ValueError:
            raise _bad(400, f"Invalid value for pageSize: {raw_size!r}") from None
        size = max(1, min(size, 1000))
        token = (query.get("pageToken") or [""])[0]
        try:
            start = int(base64.urlsafe_b64decode(token.encode()).decode()) if token else 0
        except ValueError:
            raise _bad(400, f"Invalid pageToken {token!r}.") from None
        newest_first = list(reversed(self.jobs.values()))
        page = newest_first[start : start + size]
        out: dict[str, Any] = {"operations": [self._resource(j, with_output=False) for j in page]}
        if start + size < len(newest_first):
            out["nextPageToken"] = base64.urlsafe_b64encode(str(start + size).encode()).decode()
        return out

    def close(self) -> None:
        """Stop every job's timeline and remove the files (the emulator is shutting down)."""
        for job in self.jobs.values():
            if job.task is not None and not job.task.done():
                job.task.cancel()
        self.files.close()
