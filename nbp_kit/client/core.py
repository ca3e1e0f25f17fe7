"""The tuned client: one warm httpx2 pool, retries the way the server asks, every phase recorded.

:class:`AsyncClient` is the core (one long-lived ``httpx2.AsyncClient``, HTTP/2 where the
server offers it over TLS, keep-alive). :class:`Client` is its sync facade: it runs the async
client on a private event loop in a background thread, so it works in plain Python *and*
inside a running Jupyter kernel::

    >>> from nbp_kit import emulator                                    # doctest: +SKIP
    >>> with emulator.start(time_scale=0.02) as emu, Client.for_emulator(emu) as client:  # doctest: +SKIP
    ...     gen = client.generate("an orange cat", ImageSpec(resolution="2K"))
    ...     gen.attempts[-1].wait_s, gen.image_path

Every try is an :class:`~nbp_kit.records.Attempt`; the call's result is a :class:`Generation`.
This module holds the call (validation, retries, hedging) and the sync facade; one try's
execution (send, stream, phases, decode, save), where low-level errors (httpx2, JSON,
Pillow) are translated into :mod:`nbp_kit.errors` at one seam, is in :mod:`nbp_kit.client.attempt`.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import os
import ssl
import threading
import time
import uuid
from collections.abc import Callable, Coroutine, Mapping
from pathlib import Path
from typing import Any, TypeVar

import httpx2
import stamina

from .._paths import RUNS_DIR
from ..errors import ConfigError, RequestFailed, redact, register_secret
from ..providers.base import Provider
from ..providers.registry import check_spec, get_provider
from ..records import Attempt
from ..spec import DEFAULT_MODEL, ImageSpec
from .attempt import Call, models_attempt, run_attempt
from .inputs import InputImage, check_inline_size, load_input_images, upload_transport
from .retry import HedgePolicy, Hedger, RetryBudget, RetryPolicy
from .safety import warn_if_key_exposed

T = TypeVar("T")


class _RedactingFilter(logging.Filter):
    """Scrubs registered secrets from HTTP libraries' debug logs (hpack logs header values)."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a malformed third-party record is not ours to break
            return True
        cleaned = redact(message)
        if cleaned != message:
            record.msg, record.args = cleaned, None
        return True


_FILTER = _RedactingFilter()
# Filters act only on records logged to the logger they sit on, so each module logger is named.
for _name in (
    "hpack",
    "hpack.hpack",
    "hpack.table",
    "h2",
    "h2.connection",
    "h2.stream",
    "httpx2",
    "httpcore2",
    "httpcore2.connection",
    "httpcore2.http11",
    "httpcore2.http2",
    "httpcore2.connection_pool",
    "httpcore2.proxy",
    "stamina",
    "nbp_kit.client",
):
    if _FILTER not in logging.getLogger(_name).filters:
        logging.getLogger(_name).addFilter(_FILTER)


@dataclasses.dataclass(frozen=True, slots=True)
class Timeouts:
    """httpx2 timeouts plus a hard per-attempt deadline by resolution (seconds).

    httpx's read timeout is per chunk, so a trickling body never trips it; the deadline
    (``asyncio.timeout`` around the whole attempt, body included) does.

    >>> Timeouts().deadline_for("4K")
    180.0
    """

    connect_s: float = 10.0
    write_s: float = 60.0
    read_s: float = 300.0
    pool_s: float = 600.0
    deadline_s: Mapping[str, float] = dataclasses.field(default_factory=lambda: {"1K": 45.0, "2K": 90.0, "4K": 180.0})

    def __post_init__(self) -> None:
        for name in ("connect_s", "write_s", "read_s", "pool_s"):
            v = getattr(self, name)
            if not isinstance(v, (int, float)) or isinstance(v, bool) or not v > 0:
                raise ConfigError(f"{name}={v!r} is not accepted; use a number of seconds > 0")
        if not isinstance(self.deadline_s, Mapping) or set(self.deadline_s) != {"1K", "2K", "4K"}:
            raise ConfigError(f"deadline_s={self.deadline_s!r} is not accepted; use a dict with keys '1K', '2K', '4K'")
        for k, v in self.deadline_s.items():
            if not isinstance(v, (int, float)) or isinstance(v, bool) or not v > 0:
                raise ConfigError(f"deadline_s[{k!r}]={v!r} is not accepted; use seconds > 0")

    def deadline_for(self, resolution: str) -> float:
        return float(self.deadline_s[resolution])

    def to_httpx(self) -> httpx2.Timeout:
        return httpx2.Timeout(connect=self.connect_s, read=self.read_s, write=self.write_s, pool=self.pool_s)

    def as_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["deadline_s"] = dict(self.deadline_s)
        return d


@dataclasses.dataclass(frozen=True, slots=True)
class Generation:
    """The result of one :meth:`Client.generate` call (all its attempts).

    ``user_latency_s`` runs from the first scheduled time to the last attempt's end, so
    retries and back-off are included: it is what the user waited.
    """

    ok: bool
    call_id: str
    attempts: tuple[Attempt, ...]
    image_path: str | None = None
    tile_paths: tuple[str, ...] = ()
    error: RequestFailed | None = None
    cost_usd: float = 0.0
    user_latency_s: float | None = None
    image: bytes | None = dataclasses.field(default=None, repr=False)
    #: The model's non-thought parts with their thought signatures, for the next editing turn.
    model_parts: tuple[dict[str, Any], ...] = dataclasses.field(default=(), repr=False)

    @property
    def final(self) -> Attempt | None:
        """The attempt that produced the result (the winner), or the last one."""
        for a in self.attempts:
            if a.ok:
                return a
        return self.attempts[-1] if self.attempts else None

    def as_dict(self) -> dict[str, Any]:
        final = self.final
        return {
            "ok": self.ok,
            "call_id": self.call_id,
            "n_attempts": len(self.attempts),
            "image_path": self.image_path,
            "tile_paths": list(self.tile_paths),
            "error_kind": self.error.kind if self.error else None,
            "error_message": str(self.error) if self.error else None,
            "cost_usd": self.cost_usd,
            "user_latency_s": self.user_latency_s,
            "total_s": final.total_s if final else None,
        }


# --------------------------------------------------------------------------- the async core
def _check_bool(name: str, value: Any) -> None:
    if not isinstance(value, bool):
        raise ConfigError(f"{name}={value!r} is not accepted; use True or False")


def _normalise_base_url(provider: Provider, base_url: str | None) -> str:
    if base_url is None and provider.base_url_env:
        base_url = os.environ.get(provider.base_url_env)
    if base_url is None:
        base_url = provider.default_base_url
    if not base_url:
        raise ConfigError(
            f"base_url=None is not accepted for provider {provider.name!r}; pass base_url='https://relay.example' "
            f"or set {provider.base_url_env}"
        )
    if not isinstance(base_url, str):
        raise ConfigError(f"base_url={base_url!r} is not accepted; use a string such as 'https://host'")
    try:
        url = httpx2.URL(base_url)
    except (httpx2.InvalidURL, TypeError, ValueError) as exc:
        raise ConfigError(
            f"base_url={base_url!r} is not accepted; use an http(s) URL such as 'https://host': {exc}"
        ) from None
    if url.scheme not in ("http", "https") or not url.host or url.query or url.userinfo:
        raise ConfigError(
            f"base_url={base_url!r} is not accepted; use an http(s) URL with a host and no query or credentials, "
            "such as 'https://generativelanguage.googleapis.com'"
        )
    base = base_url.rstrip("/")
    if provider.name == "relay" and base.endswith("/v1"):
        base = base[:-3]  # accept the openai SDK's convention of base_url ending in /v1
    return base


class AsyncClient:
    """Async image client over one long-lived httpx2 pool. See :class:`Client` for the sync one.

    >>> async def main():                                              # doctest: +SKIP
    ...     async with AsyncClient.for_emulator(emu) as client:
    ...         gen = await client.generate("a cat", ImageSpec())
    """

    def __init__(
        self,
        provider: str = "gemini",
        *,
        api_key: str | None = None,
        base_url: str | None = None,
        model: str = DEFAULT_MODEL,
        http2: bool = True,
        verify: bool | str | ssl.SSLContext = True,
        timeouts: Timeouts | None = None,
        retry: RetryPolicy | None = None,
        hedge: HedgePolicy | None = None,
        output_dir: str | Path | None = None,
        stream: bool = False,
        allow_undocumented: bool = False,
        sink: Any = None,
        pacer: Any = None,
        retry_budget: RetryBudget | None = None,
        transport: httpx2.AsyncBaseTransport | None = None,
        max_connections: int = 100,
        keepalive_expiry_s: float = 120.0,
        send_buffer_bytes: int | None = None,
        allow_private_image_urls: bool = False,
    ) -> None:
        self.provider: Provider = get_provider(provider)
        key = api_key if api_key is not None else os.environ.get(self.provider.key_env)
        if not isinstance(key, str) or not key.strip():
            raise ConfigError(
                f"api_key={'None' if key is None else '<empty>'} is not accepted for provider {provider!r}; "
                f"pass api_key=... or set {self.provider.key_env} (Client.for_emulator(emu) needs no key)"
            )
        register_secret(key)
        self._api_key = key
        self.base_url = _normalise_base_url(self.provider, base_url)
        if not isinstance(model, str) or not model.strip():
            raise ConfigError(f"model={model!r} is not accepted; use a model id such as {DEFAULT_MODEL!r}")
        self.model = model
        for name, value in (("http2", http2), ("stream", stream), ("allow_undocumented", allow_undocumented)):
            _check_bool(name, value)
        self.http2, self.stream, self.allow_undocumented = http2, stream, allow_undocumented
        if stream:
            check_spec(provider, ImageSpec(model=model), stream=True, allow_undocumented=True)
        if not isinstance(verify, (bool, str, Path, ssl.SSLContext)):
            raise ConfigError(
                f"verify={verify!r} is not accepted; use True, False, a CA bundle path or an ssl.SSLContext"
            )
        if isinstance(verify, (str, Path)):
            if not Path(verify).is_file():
                raise ConfigError(f"verify={str(verify)!r} is not accepted; the CA bundle file does not exist")
            verify = ssl.create_default_context(cafile=str(verify))
        self._verify = verify
        warn_if_key_exposed(self.base_url, verify)
        _check_bool("allow_private_image_urls", allow_private_image_urls)
        self.allow_private_image_urls = allow_private_image_urls
        self.timeouts = timeouts if timeouts is not None else Timeouts()
        self.retry = retry if retry is not None else RetryPolicy()
        checks: tuple[tuple[str, object, type | tuple[type, ...]], ...] = (
            ("timeouts", self.timeouts, Timeouts),
            ("retry", self.retry, RetryPolicy),
            ("hedge", hedge, (HedgePolicy, type(None))),
            ("retry_budget", retry_budget, (RetryBudget, type(None))),
            ("transport", transport, (httpx2.AsyncBaseTransport, type(None))),
        )
        for arg, given, accepted in checks:
            if not isinstance(given, accepted):
                raise ConfigError(f"{arg}={given!r} is not accepted; use {getattr(accepted, '__name__', accepted)}")
        self.hedge = hedge
        self._hedger = Hedger(hedge) if hedge is not None else None
        self.retry_budget = retry_budget
        if sink is not None and not (
            callable(getattr(sink, "attempt_started", None)) and callable(getattr(sink, "attempt_finished", None))
        ):
            raise ConfigError(
                f"sink={sink!r} is not accepted; it needs attempt_started(Attempt) and attempt_finished(Attempt)"
            )
        if pacer is not None and not (
            callable(getattr(pacer, "acquire", None)) and callable(getattr(pacer, "release", None))
        ):
            raise ConfigError(f"pacer={pacer!r} is not accepted; it needs async acquire(spec) and release(attempt)")
        self.sink, self.pacer = sink, pacer
        if not isinstance(max_connections, int) or max_connections < 1:
            raise ConfigError(f"max_connections={max_connections!r} is not accepted; use an integer >= 1")
        self._limits = httpx2.Limits(
            max_connections=max_connections,
            max_keepalive_connections=max_connections,
            keepalive_expiry=keepalive_expiry_s,
        )
        self.output_dir = Path(output_dir) if output_dir is not None else RUNS_DIR / "images"
        if send_buffer_bytes is not None and (
            not isinstance(send_buffer_bytes, int)
            or isinstance(send_buffer_bytes, bool)
            or send_buffer_bytes < 4096
            or transport is not None
        ):
            raise ConfigError(
                f"send_buffer_bytes={send_buffer_bytes!r} is not accepted; use None or an integer "
                ">= 4096 (and no custom transport)"
            )
        self.send_buffer_bytes = send_buffer_bytes
        if send_buffer_bytes is not None:
            transport = upload_transport(send_buffer_bytes, http2=http2, verify=verify, limits=self._limits)
        self._transport = transport
        self._http: httpx2.AsyncClient | None = None
        self.base_host = httpx2.URL(self.base_url).netloc.decode("ascii")

    # ----------------------------------------------------------------- construction helpers
    @classmethod
    def for_emulator(cls, emu: Any, *, provider: str = "gemini", **kw: Any) -> AsyncClient:
        """A client pointed at a running emulator (its base URL, key and CA)."""
        kw.setdefault("api_key", emu.api_key)
        kw.setdefault("verify", emu.ca_path or True)
        return cls(provider, base_url=emu.base_url, **kw)

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(provider={self.provider.name!r}, base_url={self.base_url!r}, "
            f"model={self.model!r}, http2={self.http2}, api_key='***')"
        )

    def _client(self) -> httpx2.AsyncClient:
        # Created lazily, on the loop that uses it (the sync facade's private loop).
        if self._http is None:
            self._http = httpx2.AsyncClient(
                http2=self.http2,
                verify=self._verify,
                timeout=self.timeouts.to_httpx(),
                limits=self._limits,
                transport=self._transport,
                follow_redirects=False,
            )
        return self._http

    async def aclose(self) -> None:
        if self._http is not None:
            await self._http.aclose()
            self._http = None

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.aclose()

    # ----------------------------------------------------------------- validation
    def prepare(
        self, prompt: Any, spec: ImageSpec | None, *, seed: Any = None, stream: Any = None
    ) -> tuple[ImageSpec, bool]:
        """Validate one call's arguments (raises ConfigError, sends nothing)."""
        if not isinstance(prompt, str) or not prompt.strip():
            raise ConfigError(f"prompt={prompt!r} is not accepted; use a non-empty string")
        if spec is None:
            spec = ImageSpec(model=self.model)
        elif not isinstance(spec, ImageSpec):
            raise ConfigError(f"spec={spec!r} is not accepted; use an nbp_kit.ImageSpec")
        elif spec.model == DEFAULT_MODEL and self.model != DEFAULT_MODEL:
            spec = spec.replace(model=self.model)
        if seed is not None and (not isinstance(seed, int) or isinstance(seed, bool) or not 0 <= seed < 2**31):
            raise ConfigError(f"seed={seed!r} is not accepted; use None or an integer in [0, 2**31)")
        stream = self.stream if stream is None else stream
        _check_bool("stream", stream)
        check_spec(self.provider.name, spec, stream=stream, allow_undocumented=self.allow_undocumented)
        return spec, stream

    def prepare_inputs(
        self, prompt: str, images: Any, history: Any = None
    ) -> tuple[tuple[InputImage, ...], tuple[dict[str, Any], ...]]:
        """Check reference images and replayed history (raises ConfigError, sends nothing)."""
        loaded = load_input_images(images)
        if history is not None and (
            not isinstance(history, (list, tuple))
            or not all(isinstance(c, dict) and c.get("role") in ("user", "model") for c in history)
        ):
            raise ConfigError(
                f"history=<{type(history).__name__}> is not accepted; use a list of contents "
                "({'role': 'user' | 'model', 'parts': [...]}), as an EditSession keeps them"
            )
        history = tuple(history or ())
        if (loaded or history) and self.provider.name != "gemini":
            raise ConfigError(
                f"images=<{len(loaded)} images> is not accepted for provider {self.provider.name!r}; "
                "reference images and editing sessions need provider='gemini'"
            )
        if loaded or history:
            check_inline_size(prompt, loaded, history_bytes=len(json.dumps(history)) if history else 0)
        return loaded, history

    # ----------------------------------------------------------------- generate
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
        headers: Mapping[str, str] | Callable[[int], Mapping[str, str]] | None = None,
        images: Any = None,
        history: Any = None,
        session_id: str | None = None,
        turn: int | None = None,
    ) -> Generation:
        """Generate one image, retrying as the policy says; every attempt is recorded.

        ``headers`` adds request headers (never the key), or is ``f(attempt_no) -> headers``,
        e.g. to force an emulator fault on the first attempt only.

        ``images`` are reference images (paths, bytes or PIL images, at most 14), sent inline;
        ``history``, ``session_id`` and ``turn`` are what an :class:`~nbp_kit.client.EditSession`
        passes for its later turns.
        """
        spec, stream = self.prepare(prompt, spec, seed=seed, stream=stream)
        loaded, history = self.prepare_inputs(prompt, images, history)
        _check_bool("save", save)
        _check_bool("raise_on_error", raise_on_error)
        if scheduled_at is not None and not isinstance(scheduled_at, (int, float)):
            raise ConfigError(f"scheduled_at={scheduled_at!r} is not accepted; use epoch seconds (time.time())")
        if headers is not None and not (isinstance(headers, Mapping) or callable(headers)):
            raise ConfigError(f"headers={headers!r} is not accepted; use a mapping or a function of attempt_no")
        call = Call(
            call_id=uuid.uuid4().hex[:16],
            prompt=prompt,
            spec=spec,
            seed=seed,
            stream=stream,
            run_id=run_id,
            request_key=request_key,
            scheduled_wall=float(scheduled_at) if scheduled_at is not None else time.time(),
            save=save,
            headers=headers,
            images=loaded,
            history=history,
            session_id=session_id,
            turn=turn,
        )
        if self._hedger is not None:
            self._hedger.observe_call()
        error: RequestFailed | None = None
        winner: Attempt | None = None
        try:
            async for attempt in stamina.retry_context(
                on=call.hook,
                attempts=self.retry.max_attempts,
                timeout=None,
                wait_initial=0.0,
                wait_max=0.0,
                wait_jitter=0.0,
            ):
                with attempt:
                    winner = await self._attempt_maybe_hedged(call)
        except RequestFailed as exc:
            error = exc
        records = tuple(sorted(call.records, key=lambda a: a.attempt_no))
        if error is not None:
            error.attempts = records
        ends = [a.ended_at for a in records if a.ended_at is not None]
        gen = Generation(
            ok=error is None and winner is not None,
            call_id=call.call_id,
            attempts=records,
            image_path=winner.image_path if winner else None,
            tile_paths=winner.tile_paths if winner else (),
            error=error,
            cost_usd=round(sum(a.cost_usd or 0.0 for a in records), 6),
            user_latency_s=(max(ends) - call.scheduled_wall) if ends else None,
            image=call.image,
            model_parts=call.model_parts,
        )
        if error is not None and raise_on_error:
            raise error
        return gen

    async def _attempt_maybe_hedged(self, call: Call) -> Attempt:
        hedger = self._hedger
        delay = hedger.delay_s() if hedger is not None else None
        if hedger is None or delay is None:
            return await run_attempt(self, call)
        primary: asyncio.Future[Attempt] = asyncio.ensure_future(run_attempt(self, call))
        done, _ = await asyncio.wait({primary}, timeout=delay)
        if primary in done or not hedger.claim():
            return await primary
        second: asyncio.Future[Attempt] = asyncio.ensure_future(run_attempt(self, call, hedge=True))
        pending: set[asyncio.Future[Attempt]] = {primary, second}
        errors: dict[asyncio.Future[Attempt], BaseException] = {}
        try:
            while pending:
                done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
                for task in done:
                    exc = task.exception()
                    if exc is None:
                        return task.result()
                    errors[task] = exc
        finally:
            for task in pending:
                task.cancel()
            if pending:
                await asyncio.gather(*pending, return_exceptions=True)
        raise errors.get(primary) or errors[second]

    # ----------------------------------------------------------------- models list
    async def list_models(self, *, run_id: str | None = None, request_key: str | None = None) -> Attempt:
        """Send the cheap models-list request (``GET /v1beta/models``) once; return its record.

        The record has ``transport="models"``, no cost, ``wait_s`` (request start -> headers)
        and ``download_s``; it goes to the sink like any attempt. It uses the client's own pool,
        so it measures the same connections the generations use, without the model: probes
        send it to separate network time from model time. Not retried, not paced; transport
        failures are recorded (``status="error"``), not raised. Gemini only.

        >>> rec = await client.list_models()                            # doctest: +SKIP
        >>> rec.status, rec.status_code, rec.wait_s                     # doctest: +SKIP
        """
        return await models_attempt(self, run_id=run_id, request_key=request_key)


# --------------------------------------------------------------------------- the sync facade
class _LoopThread:
    """A private event loop in a daemon thread; coroutines are submitted to it."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name="nbp_kit-client", daemon=True)
        self._thread.start()

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        if threading.current_thread() is self._thread:
            coro.close()
            raise RuntimeError("Client's sync methods cannot be called from its own loop thread (e.g. from a sink)")
        future = asyncio.run_coroutine_threadsafe(coro, self.loop)
        try:
            return future.result()
        except BaseException:
            future.cancel()  # KeyboardInterrupt in a notebook: stop the request too
            raise

    def stop(self) -> None:
        if self.loop.is_running():
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join(timeout=5)
        if not self.loop.is_running():
            self.loop.close()


class Client:
    """Sync image client: the :class:`AsyncClient` on a private loop thread.

    Works in plain Python and inside a running event loop (a Jupyter cell), since the work
    happens on its own loop, never the caller's.

    >>> with Client.for_emulator(emu) as client:                        # doctest: +SKIP
    ...     gen = client.generate("an orange cat", ImageSpec(resolution="1K"), seed=1)
    ...     gen.ok, gen.attempts[0].wait_s
    """

    def __init__(self, provider: str = "gemini", **kw: Any) -> None:
        self._async = AsyncClient(provider, **kw)  # validates before any thread starts
        self._runner: _LoopThread | None = _LoopThread()
        # Build the pool now (loading CA certificates takes ~0.2 s) so the first call's
        # queue phase measures waiting, not set-up.
        self._runner.loop.call_soon_threadsafe(self._async._client)

    @classmethod
    def for_emulator(cls, emu: Any, *, provider: str = "gemini", **kw: Any) -> Client:
        """A client pointed at a running emulator (its base URL, key and CA)."""
        kw.setdefault("api_key", emu.api_key)
        kw.setdefault("verify", emu.ca_path or True)
        return cls(provider, base_url=emu.base_url, **kw)

    @property
    def aio(self) -> AsyncClient:
        """The underlying async client (its settings: ``client.aio.timeouts`` ...)."""
        return self._async

    def __getattr__(self, name: str) -> Any:
        if name in (
            "provider",
            "base_url",
            "model",
            "timeouts",
            "retry",
            "hedge",
            "sink",
            "pacer",
            "retry_budget",
            "output_dir",
            "stream",
            "http2",
            "base_host",
            "allow_undocumented",
        ):
            return getattr(self._async, name)
        raise AttributeError(name)

    #: Settings a caller may change on a live sync client; they go to the client underneath.
    _FORWARDED = ("timeouts", "retry", "sink", "pacer", "retry_budget", "output_dir")

    def __setattr__(self, name: str, value: Any) -> None:
        if name.startswith("_"):
            object.__setattr__(self, name, value)
        elif name in self._FORWARDED:
            target = self._async
            if name == "timeouts":
                if not isinstance(value, Timeouts):
                    raise ConfigError(f"timeouts={value!r} is not accepted; use Timeouts(...)")
                if target._http is not None:  # the pool's own timeouts follow (connect, read ...)
                    target._http.timeout = value.to_httpx()
            elif name == "output_dir" and value is not None:
                value = Path(value)
            setattr(target, name, value)
        else:
            raise AttributeError(
                f"Client.{name} cannot be changed on a live client; settable: {', '.join(self._FORWARDED)} "
                "(make a new Client for other settings)"
            )

    def _run(self, coro: Coroutine[Any, Any, T]) -> T:
        if self._runner is None:
            coro.close()
            raise RuntimeError("this Client is closed")
        return self._runner.run(coro)

    def generate(self, prompt: str, spec: ImageSpec | None = None, **kw: Any) -> Generation:
        """Generate one image (blocking). Same arguments as :meth:`AsyncClient.generate`."""
        self._async.prepare(
            prompt, spec, seed=kw.get("seed"), stream=kw.get("stream")
        )  # fail fast, in the caller's thread
        if kw.get("images") is not None or kw.get("history") is not None:
            kw["images"], kw["history"] = self._async.prepare_inputs(prompt, kw.get("images"), kw.get("history"))
        return self._run(self._async.generate(prompt, spec, **kw))

    def list_models(self, *, run_id: str | None = None, request_key: str | None = None) -> Attempt:
        """The models-list request, once (blocking). See :meth:`AsyncClient.list_models`.

        >>> client.list_models().wait_s                                  # doctest: +SKIP
        0.0021
        """
        return self._run(self._async.list_models(run_id=run_id, request_key=request_key))

    def submit(self, prompt: str, spec: ImageSpec | None = None, **kw: Any) -> Any:
        """Start a generation without waiting; returns a ``concurrent.futures.Future``."""
        self._async.prepare(prompt, spec, seed=kw.get("seed"), stream=kw.get("stream"))
        if self._runner is None:
            raise RuntimeError("this Client is closed")
        return asyncio.run_coroutine_threadsafe(self._async.generate(prompt, spec, **kw), self._runner.loop)

    def close(self) -> None:
        if self._runner is not None:
            try:
                self._runner.run(self._async.aclose())
            finally:
                self._runner.stop()
                self._runner = None

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __del__(self) -> None:
        runner = getattr(self, "_runner", None)
        if runner is not None and runner.loop.is_running():
            runner.loop.call_soon_threadsafe(runner.loop.stop)

    def __repr__(self) -> str:
        return repr(self._async).replace("AsyncClient(", "Client(", 1)


__all__ = ["AsyncClient", "Client", "Generation", "Timeouts"]
