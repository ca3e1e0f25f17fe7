"""The emulator's ASGI application: the Gemini and relay routes, wire-faithful.

Routes (all JSON unless noted)::

    POST /v1beta/models/{model}:generateContent
    POST /v1beta/models/{model}:streamGenerateContent?alt=sse   (text/event-stream)
    GET  /v1beta/models                                         (cheap: network probes)
    POST /v1/images/generations                                 (OpenAI-compatible relay)
    GET  /v1/files/{id}.png|.jpg                                (relay ``url`` results)
    GET  /emulator/stats

A plain ASGI callable (no framework): hypercorn serves it (see ``server.py``).

>>> from nbp_kit.profiles import load_profile
>>> app = EmulatorApp(profile=load_profile("instant"))
>>> app.stats()["requests"]
0
"""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import contextvars
import gzip as _gzip
import json
import logging
import re
import secrets
import threading
import time
import zlib
from typing import Any
from urllib.parse import parse_qs

import numpy as np

from ..spec import IMAGE_OUTPUT_TOKENS, PIXEL_TABLE
from . import faults as F
from .batch import BatchService
from .editing import read_inputs, too_large
from .jpeggen import Images
from .model import Clock, Incidents, LatencyModel, Quotas, hour_of_week_factors
from .network import NetworkProfile, paced_send, read_body_paced
from .respond import generate
from .wire import DUE, LATE_S, GenRequest, Reject, field, read_body

_log = logging.getLogger("nbp_kit.emulator")

_GEN_PATH = re.compile(r"^/v1beta/models/([^/:]+):(generateContent|streamGenerateContent)$")
_FILE_PATH = re.compile(r"^/v1/files/([A-Za-z0-9_-]+)\.(?:png|jpg)$")
_GRID_IN_PROMPT = re.compile(r"\b([23])\s*[x×]\s*\1\s+grid\b", re.IGNORECASE)
_RELAY_MODEL_RES = re.compile(r"^(.*)-(1k|2k|4k)$", re.IGNORECASE)
_MODALITIES = ("TEXT", "IMAGE")


# Virtual time at which the current request arrived (one context per request task). Its load
# factor is drawn then, so that is the time of day it measures: on a fast virtual clock the
# response leaves many virtual minutes later, which would shift it into the next hour.
_ARRIVED_AT: contextvars.ContextVar[float | None] = contextvars.ContextVar("nbp_emu_arrived_at", default=None)


def _virtual_at(clock: Clock) -> float:
    arrived = _ARRIVED_AT.get()
    return clock.virtual_now() if arrived is None else arrived


class EmulatorApp:
    """ASGI app holding the emulator's state; ``server.start`` wraps it."""

    def __init__(
        self,
        *,
        profile: dict[str, Any],
        network: NetworkProfile | None = None,
        time_scale: float = 1.0,
        clock: Clock | None = None,
        faults: bool = True,
        quotas: bool = True,
        gzip: bool = True,
        api_key: str | None = None,
        rng_seed: int | None = None,
    ) -> None:
        self.profile = profile
        self.network = network or NetworkProfile()
        self.time_scale = time_scale
        self.clock = clock or Clock(time_scale=time_scale)
        self.faults_on = faults
        self.gzip_on = gzip
        self.api_key = api_key
        self.latency = LatencyModel(profile, time_scale=time_scale)
        self.load = hour_of_week_factors(profile)
        self.quotas = Quotas(profile.get("quotas", {}), time_scale=time_scale, enabled=quotas)
        self.incidents = Incidents(profile.get("incidents", []), time_scale=time_scale)
        self.fault_params = {
            "stall_s": 900,
            "trickle_total_s": 60,
            "retry_delay_s": [8, 45],
            **profile.get("fault_params", {}),
        }
        self.images = Images()  # PNG or JPEG by model, as the real service answers
        self.executor = concurrent.futures.ThreadPoolExecutor(max_workers=2, thread_name_prefix="nbp-emu-cpu")
        self.rng = np.random.default_rng(rng_seed)
        self.signing_key = secrets.token_bytes(32)  # thought signatures: valid for this emulator only
        self.capacity = int(profile.get("capacity", {}).get("workers", 64))
        self._workers: asyncio.Semaphore | None = None
        self._lock = threading.Lock()
        self._counts: collections.Counter[str] = collections.Counter()
        self._bytes_sent = 0
        self._client_gone = 0
        self._behind = 0  # answers whose rendering outlasted the modeled generation
        self._behind_s = 0.0
        self._behind_warned_at = -1e9
        self._lead_s = 0.05  # learned: how long assembling an answer takes after the pipeline wakes
        self._seen_conns: collections.OrderedDict[Any, None] = collections.OrderedDict()
        self._files: collections.OrderedDict[str, bytes] = collections.OrderedDict()
        self._gz: collections.OrderedDict[tuple[Any, ...], tuple[bytes, int, int]] = collections.OrderedDict()
        self.bulk = BatchService(self)  # batch jobs and the Files API (batch.py, files.py)
        self._gz_crc: collections.OrderedDict[tuple[Any, ...], int] = collections.OrderedDict()

    @property
    def workers(self) -> asyncio.Semaphore:
        """Generation slots; a request waiting here is queued (made on the serving loop)."""
        if self._workers is None:
            self._workers = asyncio.Semaphore(self.capacity)
        return self._workers

    # ---- bookkeeping ------------------------------------------------------------------
    def count(self, outcome: str, n_bytes: int = 0) -> None:
        with self._lock:
            self._counts[outcome] += 1
            self._bytes_sent += n_bytes

    def count_client_gone(self) -> None:
        with self._lock:
            self._client_gone += 1

    def note_behind(self, over_s: float, modeled_s: float = 0.0) -> None:
        """The emulator's own work (rendering, encoding on a busy CPU) outlasted the modeled
        generation by ``over_s``. Server-Timing reports it (``late;dur=``); an overrun beyond
        scheduling jitter on a busy machine (20 ms and 5 % of the modeled time) is counted in the stats and
        warned (every 10 s)."""
        if over_s <= 0:
            return
        LATE_S.set(LATE_S.get() + over_s)  # reported in this answer's Server-Timing
        if over_s <= max(0.020, 0.05 * modeled_s):
            return
        now = time.monotonic()
        with self._lock:
            self._behind += 1
            self._behind_s += over_s
            warn = now - self._behind_warned_at >= 10.0
            if warn:
                self._behind_warned_at = now
            count, total = self._behind, self._behind_s
        if warn:
            _log.warning(
                "emulator fell behind its model: %d overrun(s), %.3f s in all (rendering, encoding on a busy "
                "CPU); Server-Timing reports the elapsed time, see behind_model in /emulator/stats",
                count,
                total,
            )

    def assembly_lead(self, gen_s: float) -> float:
        """How long before the modeled window ends the pipeline wakes to assemble its answer
        (what assembly took lately, at most a quarter of the window), so the answer is ready
        when the window ends instead of after it."""
        return min(self._lead_s, 0.25 * gen_s)

    async def _send_when_due(self, gen_s: float) -> None:
        """Wait for the end of the modeled window if the answer is ready before it; count an
        answer that is ready after it as the emulator falling behind its model."""
        due = DUE.get()
        if due is None:
            return
        DUE.set(None)
        woke, end = due
        ready = time.perf_counter()
        # learn what assembly takes: the longest lately, with a margin, decaying 5 % per answer
        self._lead_s = min(1.0, max(1.25 * (ready - woke), 0.95 * self._lead_s))
        if ready < end:
            await asyncio.sleep(end - ready)
        self.note_behind(time.perf_counter() - end, gen_s)

    def stats(self) -> dict[str, Any]:
        """Counts by outcome (``ok``, ``error_429``, ``fault_reset``, ...) and totals.

        ``client_gone`` counts answers cut short because the client disconnected first (a
        timeout, a cancelled hedge); such a request is also counted under its outcome if its
        headers had been sent."""
        with self._lock:
            counts = dict(self._counts)
            total = sum(v for k, v in counts.items() if k != "requests")
            return {
                "requests": total,
                "by_outcome": {k: v for k, v in counts.items() if k != "requests"},
                "client_gone": self._client_gone,
                "behind_model": self._behind,
                "behind_model_s": round(self._behind_s, 6),
                "bytes_sent": self._bytes_sent,
                "active": self.quotas.active,
                "images_rendered": self.images.renders,
                "image_cache_hits": self.images.hits,
                "profile": self.profile.get("name"),
                "time_scale": self.time_scale,
                "clock": self.clock.kind,
                "virtual_time": self.clock.virtual_now(),
            }

    def common_headers(self, queue_s: float = 0.0, gen_s: float = 0.0) -> list[tuple[bytes, bytes]]:
        timing = f"queue;dur={queue_s * 1000:.1f}, gen;dur={gen_s * 1000:.1f}"
        late = LATE_S.get()
        if late > 0:  # the emulator's own overrun: what elapsed = queue + gen + late
            timing += f", late;dur={late * 1000:.1f}"
        return [
            (b"server-timing", timing.encode()),
            # the front end's own entry, as Google sends it (whole milliseconds, all server time)
            (b"server-timing", f"gfet4t7; dur={round((queue_s + gen_s + max(late, 0.0)) * 1000)}".encode()),
            (b"alt-svc", b'h3=":443"; ma=2592000,h3-29=":443"; ma=2592000'),
            (b"x-emulator-time-scale", repr(self.time_scale).encode()),
            (b"x-emulator-clock", self.clock.kind.encode()),
            (b"x-emulator-virtual-time", f"{_virtual_at(self.clock):.3f}".encode()),
            (b"x-emulator-profile", str(self.profile.get("name", "custom")).encode()),
            (b"vary", b"Origin, X-Origin, Referer"),
        ]

    # ---- ASGI entry ---------------------------------------------------------------------
    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while True:
                msg = await receive()
                if msg["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif msg["type"] == "lifespan.shutdown":
                    self.executor.shutdown(wait=False, cancel_futures=True)
                    self.bulk.close()
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        if scope["type"] != "http":
            return
        await self._connect_delay(scope)
        _ARRIVED_AT.set(self.clock.virtual_now())
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        # A pseudo-header (':' cannot start a real HTTP/1 name) so senders know the protocol.
        headers[":http-version"] = str(scope.get("http_version", "1.1"))
        for end in ("client", "server"):
            if scope.get(end):
                headers[f":{end}"] = f"{scope[end][0]}|{scope[end][1]}"
        path, method = scope["path"], scope["method"]
        query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
        if method in ("GET", "HEAD", "DELETE"):
            # take the (empty) request body: a shaped server queues one message per request and
            # would otherwise hold the answer behind it
            await read_body(receive)
        try:
            m = _GEN_PATH.match(path)
            if self.bulk.owns(path):
                await self.bulk.handle(path, method, query, headers, scope, receive, send)
            elif m and method == "POST":
                body = await read_body_paced(receive, self.network.bandwidth_mbps)
                self.check_gemini_key(headers, query)
                req = self.parse_gemini(m.group(1), body, stream=m.group(2) == "streamGenerateContent")
                await self._generate(req, headers, scope, receive, send)
            elif path == "/v1/images/generations" and method == "POST":
                body = await read_body(receive)
                self._check_relay_key(headers)
                req = self._parse_relay(body)
                await self._generate(req, headers, scope, receive, send)
            elif path in ("/v1beta/models", "/v1beta/models/") and method == "GET":
                self.check_gemini_key(headers, query)
                await self.send_json(send, 200, _models_list(self.profile), headers, api="gemini", outcome="models")
            elif (fm := _FILE_PATH.match(path)) and method == "GET":
                png = self._files.get(fm.group(1))
                if png is None:
                    raise Reject(404, F.relay_error("File not found.", code="not_found"))
                mime = b"image/jpeg" if png[:2] == b"\xff\xd8" else b"image/png"
                await self.send_bytes(send, 200, png, mime, headers, outcome="file")
            elif path == "/emulator/stats" and method == "GET":
                await self.send_json(send, 200, self.stats(), headers, api="gemini", outcome="stats")
            else:
                api = "relay" if path.startswith("/v1/") else "gemini"
                raise Reject(
                    404,
                    F.gemini_error(404, f"Method not found: {method} {path}")
                    if api == "gemini"
                    else F.relay_error(f"Invalid URL ({method} {path})"),
                )
        except Reject as rej:
            await self.send_json(send, rej.status, rej.body, headers, extra=rej.headers, outcome=f"error_{rej.status}")

    async def _connect_delay(self, scope: dict[str, Any]) -> None:
        """One extra round trip the first time a connection is seen (connection set-up)."""
        if self.network.rtt_s <= 0:
            return
        key = (scope.get("client"), scope.get("http_version"))
        if key in self._seen_conns:
            return
        self._seen_conns[key] = None
        while len(self._seen_conns) > 10000:
            self._seen_conns.popitem(last=False)
        await asyncio.sleep(self.network.rtt_s)

    # ---- auth and parsing ---------------------------------------------------------------
    def _key_ok(self, key: str | None) -> bool:
        if not key:
            return False
        return key == self.api_key if self.api_key is not None else True

    def check_gemini_key(self, headers: dict[str, str], query: dict[str, list[str]]) -> None:
        key = headers.get("x-goog-api-key") or next(iter(query.get("key") or []), None)
        if not self._key_ok(key):
            raise Reject(400, F.gemini_bad_key())

    def _check_relay_key(self, headers: dict[str, str]) -> None:
        auth = headers.get("authorization", "")
        key = auth[7:].strip() if auth.lower().startswith("bearer ") else None
        if not self._key_ok(key):
            raise Reject(
                401,
                F.relay_error(
                    "Incorrect API key provided. You can find your API key in your dashboard.", code="invalid_api_key"
                ),
            )

    def _thinking(self, api: str, model: str, level: Any, *, field: str) -> str | None:
        info = self.profile["models"][model]
        if level is None:
            return None
        policy = info.get("relay_thinking" if api == "relay" else "thinking", "reject")
        levels = info.get("levels", [])
        if policy == "ignore":
            return None
        if policy == "reject" or level not in levels:
            message = (
                "Thinking level is not supported for this model."
                if policy == "reject"
                else f"Invalid thinking level {level!r}; this model accepts {', '.join(levels)}."
            )
            raise Reject(400, F.gemini_error(400, message) if api == "gemini" else F.relay_error(message, param=field))
        return str(level)

    def parse_gemini(self, model: str, body: bytes, *, stream: bool) -> GenRequest:
        def bad(msg: str, field: str | None = None) -> Reject:
            # as the real service: no details; the message names the field (the recorded
            # "* GenerateContentRequest.generation_config.image_config.aspect_ratio: ...\n")
            return Reject(400, F.gemini_error(400, f"* GenerateContentRequest.{field}: {msg}\n" if field else msg))

        try:
            data = json.loads(body or b"{}")
        except ValueError:
            raise bad("Invalid JSON payload received. Unexpected token.") from None
        if model not in self.profile["models"]:
            raise Reject(
                404,
                F.gemini_error(
                    404,
                    f"models/{model} is not found for API version v1beta, or is not "
                    "supported for generateContent. Call ListModels to see the list "
                    "of available models and their supported methods. Known to this "
                    f"emulator: {', '.join(self.profile['models'])}.",
                ),
            )
        if (rejection := too_large(len(body))) is not None:
            raise rejection
        inputs = read_inputs(data.get("contents"), self.signing_key)
        texts = [
            p.get("text", "")
            for c in data.get("contents") or []
            for p in c.get("parts") or []
            if isinstance(p, dict) and "text" in p
        ]
        prompt = " ".join(t for t in texts if t).strip()
        if not prompt:
            raise bad("* GenerateContentRequest.contents: contents is not specified\n")
        cfg = field(data, "generationConfig") or {}
        mods = field(cfg, "responseModalities") or ["TEXT", "IMAGE"]
        for i, mod in enumerate(mods):
            if mod not in _MODALITIES:
                raise bad(
                    f"Invalid value at 'generation_config.response_modalities[{i}]' (type.googleapis.com/"
                    f'google.ai.generativelanguage.v1beta.GenerationConfig.Modality), "{mod}"'
                )
        img = field(cfg, "imageConfig") or {}
        aspect = field(img, "aspectRatio", "1:1")
        if aspect not in PIXEL_TABLE:
            raise bad(
                f"aspect_ratio must be one of {', '.join(repr(a) for a in PIXEL_TABLE)}.",
                "generation_config.image_config.aspect_ratio",
            )
        size = field(img, "imageSize", "1K")
        if size not in IMAGE_OUTPUT_TOKENS:
            raise bad(
                f"Unsupported image size: {size}. Supported: 1K, 2K, 4K.", "generation_config.image_config.image_size"
            )
        thinking = field(cfg, "thinkingConfig") or {}
        level = self._thinking("gemini", model, field(thinking, "thinkingLevel"), field="thinkingLevel")
        grid = _GRID_IN_PROMPT.search(prompt)
        seed = cfg.get("seed", 0)
        tier = str(field(data, "serviceTier") or "standard").lower()
        if tier not in ("unspecified", "standard", "flex", "priority"):
            raise bad(f"Invalid value at 'service_tier', \"{tier}\"", "service_tier")
        return GenRequest(
            api="gemini",
            service_tier=tier,
            model=model,
            prompt=prompt,
            seed=int(seed) if isinstance(seed, int) else 0,
            resolution=size,
            aspect_ratio=aspect,
            level=level,
            grid=int(grid.group(1)) if grid else 1,
            include_thoughts=bool(field(thinking, "includeThoughts")),
            with_text="TEXT" in mods,
            stream=stream,
            input_images=inputs.images,
            input_pixels=inputs.pixels,
        )

    def _parse_relay(self, body: bytes) -> GenRequest:
        try:
            data = json.loads(body or b"{}")
            assert isinstance(data, dict)
        except (ValueError, AssertionError):
            raise Reject(400, F.relay_error("We could not parse the JSON body of your request.")) from None
        model = str(data.get("model") or "gemini-3-pro-image")
        res_from_model = None
        if (mm := _RELAY_MODEL_RES.match(model)) and mm.group(1) in self.profile["models"]:
            model, res_from_model = mm.group(1), mm.group(2).upper()
        if model not in self.profile["models"]:
            raise Reject(
                404,
                F.relay_error(
                    f"The model `{model}` does not exist or you do not have access to it.", code="model_not_found"
                ),
            )
        prompt = str(data.get("prompt") or "").strip()
        if not prompt:
            raise Reject(
                400,
                F.relay_error(
                    "Missing required parameter: 'prompt'.", param="prompt", code="missing_required_parameter"
                ),
            )
        aspect, res = data.get("aspect_ratio"), data.get("image_size") or res_from_model
        if size := data.get("size"):
            match = [(a, r) for a, row in PIXEL_TABLE.items() for r, wh in row.items() if f"{wh[0]}x{wh[1]}" == size]
            if not match:
                raise Reject(
                    400,
                    F.relay_error(
                        f"Invalid size '{size}'. Use one of the official WxH sizes, e.g. '2048x2048'.",
                        param="size",
                        code="invalid_size",
                    ),
                )
            aspect, res = aspect or match[0][0], res or match[0][1]
        aspect, res = aspect or "1:1", res or "1K"
        if aspect not in PIXEL_TABLE:
            raise Reject(400, F.relay_error(f"Invalid aspect_ratio '{aspect}'.", param="aspect_ratio"))
        if res not in IMAGE_OUTPUT_TOKENS:
            raise Reject(400, F.relay_error(f"Invalid image_size '{res}'; use 1K, 2K or 4K.", param="image_size"))
        grid = str(data.get("grid") or "1x1")
        if grid not in ("1x1", "2x2", "3x3"):
            raise Reject(400, F.relay_error(f"Invalid grid '{grid}'; use 1x1, 2x2 or 3x3.", param="grid"))
        fmt = data.get("response_format") or "b64_json"
        if fmt not in ("b64_json", "url"):
            raise Reject(400, F.relay_error(f"Invalid response_format '{fmt}'.", param="response_format"))
        n = data.get("n") or 1
        if not isinstance(n, int) or not 1 <= n <= 4:
            raise Reject(400, F.relay_error(f"Invalid n {n!r}; use 1 to 4.", param="n"))
        level = self._thinking("relay", model, data.get("thinking_level"), field="thinking_level")
        seed = data.get("seed", 0)
        return GenRequest(
            api="relay",
            model=model,
            prompt=prompt,
            seed=int(seed) if isinstance(seed, int) else 0,
            resolution=res,
            aspect_ratio=aspect,
            level=level,
            grid=int(grid[0]),
            n=n,
            response_format=fmt,
        )

    # ---- the generation pipeline ----------------------------------------------------------
    async def _generate(
        self, req: GenRequest, headers: dict[str, str], scope: dict[str, Any], receive: Any, send: Any
    ) -> None:
        await generate(self, req, headers, scope, receive, send)

    def load_factor(self) -> float:
        # the load of the hour the request arrived in (what x-emulator-virtual-time reports): on
        # a fast virtual clock, reading the body or waiting for a quota can pass an hour boundary
        return self.load[self.clock.hour_of_week(_virtual_at(self.clock))]

    # ---- low-level senders -------------------------------------------------------------------
    async def send_json(
        self,
        send: Any,
        status: int,
        obj: dict[str, Any],
        req_headers: dict[str, str],
        *,
        extra: dict[str, str] | None = None,
        outcome: str,
        api: str = "gemini",
        queue_s: float = 0.0,
        gen_s: float = 0.0,
    ) -> None:
        await self.send_bytes(
            send,
            status,
            F.dumps(obj),
            b"application/json; charset=UTF-8",
            req_headers,
            extra=extra,
            outcome=outcome,
            queue_s=queue_s,
            gen_s=gen_s,
        )

    async def send_bytes(
        self,
        send: Any,
        status: int,
        body: bytes,
        content_type: bytes,
        req_headers: dict[str, str],
        *,
        extra: dict[str, str] | None = None,
        outcome: str,
        queue_s: float = 0.0,
        gen_s: float = 0.0,
        gz_parts: tuple[Any, ...] | None = None,
        bandwidth_mbps: float | None = -1.0,
    ) -> None:
        """Send a whole response: one round trip, then headers, then the paced body.

        Encoding is normally done inside the generation window (see :meth:`predeflate`);
        what is left over here, if it is noticeable, is reported in Server-Timing and counted
        as falling behind, never hidden in the client's network time."""
        encoding = None
        due = DUE.get()
        if self.gzip_on and "gzip" in req_headers.get("accept-encoding", "") and len(body) > 1024:
            t0 = time.perf_counter()
            body = await self._gzip(body, gz_parts)
            encoding = (b"content-encoding", b"gzip")
            late = time.perf_counter() - t0
            if due is None and status == 200 and gen_s > 0:  # encoding is part of what the server took
                self.note_behind(late, gen_s)
        await self._send_when_due(gen_s)  # assembly and encoding happened inside the window, or count as late
        hdrs = [(b"content-type", content_type), *self.common_headers(queue_s, gen_s)]
        hdrs += [(k.encode(), v.encode()) for k, v in (extra or {}).items()]
        if encoding is not None:
            hdrs.append(encoding)
        hdrs.append((b"content-length", str(len(body)).encode()))
        if self.network.rtt_s > 0:
            await asyncio.sleep(self.network.rtt_s)
        await send({"type": "http.response.start", "status": status, "headers": hdrs})
        bw = self.network.bandwidth_mbps if bandwidth_mbps == -1.0 else bandwidth_mbps
        self.count(outcome, len(body))  # before the body, so a client that has it sees the count
        await paced_send(send, body, bw)

    async def _gzip(self, body: bytes, gz_parts: tuple[Any, ...] | None) -> bytes:
        """gzip ``body``. With ``gz_parts=(prefix, b64, suffix, key)`` the big base64 middle is
        deflated once and cached, and only prefix and suffix are compressed per request: the
        pieces end on full flushes, so they concatenate into one valid deflate stream."""
        loop = asyncio.get_running_loop()
        if gz_parts is None:
            return await loop.run_in_executor(self.executor, lambda: _gzip.compress(body, 1, mtime=0))
        prefix, b64, suffix, key = gz_parts
        cached = self._gz.get(key)
        if cached is None:
            cached = await loop.run_in_executor(self.executor, _deflate_piece, b64)
            self._gz[key] = cached
            while len(self._gz) > 64:
                self._gz.popitem(last=False)
        # The checksum over prefix + middle (3-4 MB with a thought signature) is cached as well:
        # the prefix is fixed by the request's content, only the suffix (response id) changes.
        head_crc = self._gz_crc.get((key, prefix))
        if head_crc is None:
            head_crc = await loop.run_in_executor(self.executor, lambda: zlib.crc32(b64, zlib.crc32(prefix)))
            self._gz_crc[(key, prefix)] = head_crc
            while len(self._gz_crc) > 256:
                self._gz_crc.popitem(last=False)
        return await loop.run_in_executor(self.executor, _gzip_join, prefix, cached, suffix, body, head_crc)

    def predeflate(self, key: Any, b64: bytes) -> None:
        """Deflate an image's base64 for gzip answers now (called in the render worker, inside
        the generation window), so sending it later costs only the small prefix and suffix."""
        if not self.gzip_on or key is None:
            return
        with self._lock:
            if key in self._gz:
                return
        piece = _deflate_piece(b64)
        with self._lock:
            self._gz[key] = piece
            while len(self._gz) > 64:
                self._gz.popitem(last=False)

    def store_file(self, png: bytes) -> str:
        token = secrets.token_urlsafe(12)
        self._files[token] = png
        while len(self._files) > 64:
            self._files.popitem(last=False)
        return token


def _deflate_piece(data: bytes) -> tuple[bytes, int, int]:
    import zlib

    # A JPEG's base64 (and the thought signature after it) deflates by only ~25%, for 100-250 ms
    # of CPU on the critical path of each new image: stored, not deflated. Otherwise Huffman
    # only: base64 has no repeats worth searching for (half the CPU of level 1).
    comp = (
        zlib.compressobj(0, zlib.DEFLATED, -15)
        if data[:4] == b"/9j/"
        else zlib.compressobj(1, zlib.DEFLATED, -15, 9, zlib.Z_HUFFMAN_ONLY)
    )
    return comp.compress(data) + comp.flush(zlib.Z_FULL_FLUSH), len(data), 0


def _gzip_join(
    prefix: bytes, middle: tuple[bytes, int, int], suffix: bytes, whole: bytes, head_crc: int | None = None
) -> bytes:
    import struct
    import zlib

    head = zlib.compressobj(1, zlib.DEFLATED, -15)
    tail = zlib.compressobj(1, zlib.DEFLATED, -15)
    crc = zlib.crc32(whole) if head_crc is None else zlib.crc32(suffix, head_crc)
    return b"".join(
        (
            b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff",
            head.compress(prefix),
            head.flush(zlib.Z_FULL_FLUSH),
            middle[0],
            tail.compress(suffix),
            tail.flush(zlib.Z_FINISH),
            struct.pack("<II", crc & 0xFFFFFFFF, len(whole) & 0xFFFFFFFF),
        )
    )


def _models_list(profile: dict[str, Any]) -> dict[str, Any]:
    return {
        "models": [
            {
                "name": f"models/{m}",
                "version": "3.0",
                "displayName": m,
                "supportedGenerationMethods": ["generateContent", "streamGenerateContent"],
            }
            for m in profile["models"]
        ]
    }
