"""Serving the emulator: hypercorn in a background thread (notebooks, tests) or in the
foreground (the CLI). HTTP/1.1 always; HTTP/2 by ALPN over TLS with a local CA (trustme),
and cleartext HTTP/2 with prior knowledge.

>>> from nbp_kit import emulator
>>> with emulator.start(profile="instant") as emu:
...     emu.base_url.startswith("http://127.0.0.1:")
True
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import errno
import logging
import math
import socket
import tempfile
import threading
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from ..profiles import load_profile
from .app import EmulatorApp
from .model import Clock
from .network import NetworkProfile, load_network


class _HideEmulatedResets(logging.Filter):
    """The reset fault raises inside the app on purpose; keep that out of the error log."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        return type(exc).__name__ != "_Abort"


_ERROR_LOG = logging.getLogger("nbp_kit.emulator.hypercorn")
_ERROR_LOG.addFilter(_HideEmulatedResets())


@dataclasses.dataclass(frozen=True, slots=True)
class _Settings:
    profile: Any
    host: str
    port: int
    tls: bool
    network: Any
    time_scale: float
    clock_start: Any
    clock_speed: float
    faults: bool
    quotas: bool
    gzip: bool
    api_key: str | None


class Emulator:
    """A running emulator. Use :func:`start` to make one; ``stop()`` or ``with`` ends it.

    >>> emu = start(profile="instant")
    >>> emu.stats()["requests"]
    0
    >>> emu.stop()
    """

    def __init__(
        self,
        app: EmulatorApp,
        *,
        base_url: str,
        ca_path: str | None,
        api_key: str,
        profile_name: str,
        network: NetworkProfile,
        thread: threading.Thread,
        loop: asyncio.AbstractEventLoop,
        shutdown: asyncio.Event,
        tmpdir: Any,
    ) -> None:
        self.app = app
        self.base_url = base_url
        self.ca_path = ca_path
        self.api_key = api_key
        self.time_scale = app.time_scale
        self.profile_name = profile_name
        self.network = network
        self._thread = thread
        self._loop = loop
        self._shutdown = shutdown
        self._tmpdir = tmpdir
        self._stopped = False

    @property
    def relay_base_url(self) -> str:
        """What the openai SDK wants as ``base_url``."""
        return self.base_url + "/v1"

    def stats(self) -> dict[str, Any]:
        """Counts by outcome (the same as ``GET /emulator/stats``)."""
        return self.app.stats()

    def prewarm(self, resolutions: Any = ("1K",), aspect_ratios: Any = ("1:1",), grids: Any = ("1x1",)) -> float:
        """Render the image backgrounds for these sizes before any request; return the seconds spent.

        A fresh pixel size costs 0.1-0.9 s of CPU once; at a small time scale that can outlast
        the modeled generation (counted as ``behind_model`` in the stats). Pre-warming moves
        that cost before the run.
        """
        import time

        from ..spec import PIXEL_TABLE

        t0 = time.perf_counter()
        for ar in aspect_ratios:
            for res in resolutions:
                if ar not in PIXEL_TABLE or res not in PIXEL_TABLE[ar]:
                    raise ConfigError(
                        f"prewarm size {ar} {res} is not accepted; use aspect ratios {', '.join(PIXEL_TABLE)} "
                        "and resolutions 1K, 2K, 4K"
                    )
                w, h = PIXEL_TABLE[ar][res]
                for grid in grids:
                    n = int(str(grid).split("x")[0])
                    self.app.images.prewarm(w, h, n)
                    self.app.images.render("prewarm", seed=0, width=w, height=h, grid=n)  # fonts, label path
        return time.perf_counter() - t0

    def stop(self) -> None:
        """Stop serving and join the thread (in-flight requests get one second)."""
        if self._stopped:
            return
        self._stopped = True
        if self._loop.is_running():
            self._loop.call_soon_threadsafe(self._shutdown.set)
        self._thread.join(timeout=15)
        self.app.executor.shutdown(wait=False, cancel_futures=True)
        if self._tmpdir is not None:
            self._tmpdir.cleanup()

    def __enter__(self) -> Emulator:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    def __repr__(self) -> str:
        return (
            f"Emulator(base_url={self.base_url!r}, profile={self.profile_name!r}, "
            f"network={self.network.name!r}, time_scale={self.time_scale!r})"
        )


def _check(settings: _Settings) -> tuple[dict[str, Any], NetworkProfile]:
    profile = load_profile(settings.profile)
    network = load_network(settings.network)
    ts = settings.time_scale
    if isinstance(ts, bool) or not isinstance(ts, (int, float)) or not math.isfinite(ts) or ts < 0:
        raise ConfigError(f"time_scale={ts!r} is not accepted; use a number >= 0 (0.02 makes a 50 s call take 1 s)")
    port = settings.port
    if isinstance(port, bool) or not isinstance(port, int) or not 0 <= port <= 65535:
        raise ConfigError(f"port={port!r} is not accepted; use 0 (any free port) or 1-65535")
    if settings.api_key is not None and (not isinstance(settings.api_key, str) or not settings.api_key):
        raise ConfigError("api_key is not accepted; use a non-empty string or None (any non-empty key)")
    return profile, network


_SHAPED_RCVBUF = 64 * 1024


def _bind(host: str, port: int, *, shaped: bool = False) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    if shaped:
        # A small fixed receive buffer (inherited by accepted sockets; no autotuning) so a paced
        # upload holds the client back instead of vanishing into megabytes of kernel buffer.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, _SHAPED_RCVBUF)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            raise ConfigError(
                f"port={port!r} is already in use on host {host!r}; pick another port or 0 for any free one"
            ) from exc
        raise ConfigError(
            f"host={host!r} cannot be bound ({exc.strerror}); use a local address such as '127.0.0.1'"
        ) from exc
    sock.listen(1024)
    sock.setblocking(False)
    return sock


def _tls_files(directory: Path, host: str) -> tuple[str, str, str]:
    import trustme

    ca = trustme.CA()
    names = sorted({host, "127.0.0.1", "localhost", "::1"})
    cert = ca.issue_cert(*names)
    ca_path, cert_path, key_path = directory / "nbp-kit-emulator-ca.pem", directory / "cert.pem", directory / "key.pem"
    ca.cert_pem.write_to_path(str(ca_path))
    cert.private_key_pem.write_to_path(str(key_path))
    with open(cert_path, "wb") as f:
        for blob in cert.cert_chain_pems:
            f.write(blob.bytes())
    return str(ca_path), str(cert_path), str(key_path)


def start(
    profile: str | dict[str, Any] = "default",
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    tls: bool = False,
    network: str | dict[str, Any] | NetworkProfile = "loopback",
    time_scale: float = 1.0,
    clock_start: Any = None,
    clock_speed: float = 1.0,
    faults: bool = True,
    quotas: bool = True,
    gzip: bool = True,
    api_key: str | None = None,
    ca_dir: str | Path | None = None,
) -> Emulator:
    """Start the emulator in a background thread and return once it accepts connections.

    Every bad setting raises :class:`~nbp_kit.errors.ConfigError` naming it, before serving.

    >>> with start(profile="instant", time_scale=0.02) as emu:
    ...     emu.time_scale
    0.02
    """
    settings = _Settings(
        profile, host, port, tls, network, time_scale, clock_start, clock_speed, faults, quotas, gzip, api_key
    )
    profile_data, net = _check(settings)
    clock = Clock(time_scale=float(time_scale), clock_start=clock_start, clock_speed=clock_speed)
    sock = _bind(host, port, shaped=net.bandwidth_mbps is not None)
    bound_port = sock.getsockname()[1]
    tmpdir = None
    ca_path = None
    try:
        from hypercorn.config import Config

        config = Config()
        config.bind = [f"fd://{sock.detach()}"]
        config.graceful_timeout = 1.0
        config.keep_alive_timeout = 75.0
        config.accesslog = None
        config.errorlog = _ERROR_LOG
        config.h11_max_incomplete_size = 1 << 20
        if net.bandwidth_mbps is not None:
            config.max_app_queue_size = 1  # with the small receive buffer: a paced upload is not buffered ahead
        if tls:
            if ca_dir is None:
                tmpdir = tempfile.TemporaryDirectory(prefix="nbp-kit-emulator-")
                directory = Path(tmpdir.name)
            else:
                directory = Path(ca_dir)
                directory.mkdir(parents=True, exist_ok=True)
            ca_path, config.certfile, config.keyfile = _tls_files(directory, host)
            config.alpn_protocols = ["h2", "http/1.1"]
    except BaseException:
        sock.close()
        raise
    app = EmulatorApp(
        profile=profile_data,
        network=net,
        time_scale=float(time_scale),
        clock=clock,
        faults=faults,
        quotas=quotas,
        gzip=gzip,
        api_key=api_key,
    )
    ready = threading.Event()
    box: dict[str, Any] = {}

    def run() -> None:
        from hypercorn.asyncio import serve

        loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        shutdown = asyncio.Event()
        box["loop"], box["shutdown"] = loop, shutdown

        async def main() -> None:
            task = asyncio.ensure_future(serve(app, config, shutdown_trigger=shutdown.wait))  # type: ignore[arg-type]
            await asyncio.sleep(0)
            ready.set()
            await task

        try:
            loop.run_until_complete(main())
        except BaseException as exc:  # reported to start() if it happens before ready
            box["error"] = exc
            ready.set()
        finally:
            loop.close()

    thread = threading.Thread(target=run, name=f"nbp-kit-emulator-{bound_port}", daemon=True)
    thread.start()
    ready.wait(30)
    if "error" in box:
        raise ConfigError(f"the emulator could not start: {box['error']}") from box["error"]
    scheme = "https" if tls else "http"
    shown_host = f"[{host}]" if ":" in host else host
    key = api_key if api_key is not None else "emulator-key"
    emu = Emulator(
        app,
        base_url=f"{scheme}://{shown_host}:{bound_port}",
        ca_path=ca_path,
        api_key=key,
        profile_name=str(profile_data.get("name", profile)),
        network=net,
        thread=thread,
        loop=box["loop"],
        shutdown=box["shutdown"],
        tmpdir=tmpdir,
    )
    # No need to wait for hypercorn's accept loop: the socket is already listening, so early
    # connections wait in the kernel backlog.
    return emu


# ---- CLI ----------------------------------------------------------------------------------
def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``nbp-kit emulator`` (the CLI calls this, then :func:`run_from_args`)."""
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default loopback)")
    parser.add_argument("--port", type=int, default=8765, help="port (0 picks a free one)")
    parser.add_argument("--tls", action="store_true", help="HTTPS + HTTP/2 with a local CA (its path is printed)")
    parser.add_argument("--ca-dir", default=None, help="folder for the CA PEM (default: a temp folder)")
    parser.add_argument("--profile", default="default", help="latency profile name or JSON path")
    parser.add_argument("--network", default="loopback", help="network profile: loopback, office-100mbps, ...")
    parser.add_argument("--time-scale", type=float, default=1.0, help="multiply generation times (0.02 = 50x faster)")
    parser.add_argument("--clock-start", default=None, help="virtual clock start, ISO datetime or epoch seconds")
    parser.add_argument("--clock-speed", type=float, default=1.0, help="virtual seconds per real second")
    parser.add_argument("--no-faults", action="store_true", help="no random faults (forced ones still work)")
    parser.add_argument("--no-quotas", action="store_true", help="no quota 429s")
    parser.add_argument("--no-gzip", action="store_true", help="never gzip responses")
    parser.add_argument("--api-key", default=None, help="the only key accepted (default: any non-empty key)")


def run_from_args(args: argparse.Namespace, *, stop_event: threading.Event | None = None) -> int:
    """Start from parsed CLI options, print the base URL (and CA path), serve until Ctrl-C."""
    emu = start(
        args.profile,
        host=args.host,
        port=args.port,
        tls=args.tls,
        network=args.network,
        time_scale=args.time_scale,
        clock_start=args.clock_start,
        clock_speed=args.clock_speed,
        faults=not args.no_faults,
        quotas=not args.no_quotas,
        gzip=not args.no_gzip,
        api_key=args.api_key,
        ca_dir=args.ca_dir,
    )
    print(f"nbp-kit emulator serving at {emu.base_url} (relay: {emu.relay_base_url})", flush=True)
    print(f"profile={emu.profile_name} network={emu.network.name} time_scale={emu.time_scale}", flush=True)
    if emu.ca_path:
        print(f"CA certificate: {emu.ca_path}", flush=True)
    waiter = stop_event or threading.Event()
    try:
        while not waiter.wait(3600):
            pass
    except KeyboardInterrupt:
        pass
    finally:
        emu.stop()
    return 0


def main(argv: list[str] | None = None) -> int:
    """``python -m nbp_kit.emulator [options]``."""
    parser = argparse.ArgumentParser(prog="nbp-kit emulator", description="Run the Nano Banana Pro API emulator.")
    add_arguments(parser)
    return run_from_args(parser.parse_args(argv))
