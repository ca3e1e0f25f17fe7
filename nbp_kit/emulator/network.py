"""Network profiles and body pacing: bandwidth, round trips, gzip.

Bandwidth and round trip are physical, so ``time_scale`` never shrinks them. The round trip
is added once when a connection serves its first request (connection set-up) and once
before every response's headers (request up, response down)::

    >>> load_network("cross-border-8mbps").rtt_ms
    150.0
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import time
from collections.abc import Awaitable, Callable
from typing import Any

from .._paths import PROFILES_DIR
from ..errors import ConfigError


@dataclasses.dataclass(frozen=True, slots=True)
class NetworkProfile:
    """Link between client and emulator. ``bandwidth_mbps=None`` means unshaped."""

    name: str = "loopback"
    bandwidth_mbps: float | None = None
    rtt_ms: float = 0.0

    def __post_init__(self) -> None:
        bw = self.bandwidth_mbps
        if bw is not None and (isinstance(bw, bool) or not isinstance(bw, (int, float)) or bw <= 0):
            raise ConfigError(
                f"bandwidth_mbps={bw!r} (network {self.name!r}) is not accepted; use a number > 0 or None for unshaped"
            )
        if isinstance(self.rtt_ms, bool) or not isinstance(self.rtt_ms, (int, float)) or self.rtt_ms < 0:
            raise ConfigError(f"rtt_ms={self.rtt_ms!r} (network {self.name!r}) is not accepted; use a number >= 0")

    @property
    def rtt_s(self) -> float:
        return self.rtt_ms / 1000.0

    def transfer_s(self, n_bytes: int) -> float:
        """Time the body takes at this bandwidth (0 when unshaped)."""
        return 0.0 if self.bandwidth_mbps is None else n_bytes * 8 / (self.bandwidth_mbps * 1e6)

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def network_names() -> tuple[str, ...]:
    return tuple(json.loads((PROFILES_DIR / "networks.json").read_text()))


def load_network(network: str | dict[str, Any] | NetworkProfile) -> NetworkProfile:
    """A network profile by name (``data/profiles/networks.json``), dict or instance.

    >>> load_network({"bandwidth_mbps": 8, "rtt_ms": 0}).bandwidth_mbps
    8
    """
    if isinstance(network, NetworkProfile):
        return network
    if isinstance(network, dict):
        fields = {k: v for k, v in network.items() if k in ("name", "bandwidth_mbps", "rtt_ms")}
        fields.setdefault("name", "custom")
        return NetworkProfile(**fields)
    known = json.loads((PROFILES_DIR / "networks.json").read_text())
    if network not in known:
        raise ConfigError(
            f"network={network!r} is not accepted; use one of {', '.join(repr(n) for n in known)} "
            "or a dict with bandwidth_mbps and rtt_ms"
        )
    entry = known[network]
    return NetworkProfile(
        name=network, bandwidth_mbps=entry.get("bandwidth_mbps"), rtt_ms=float(entry.get("rtt_ms", 0))
    )


async def paced_send(
    send: Callable[[dict[str, Any]], Awaitable[None]],
    body: bytes,
    bandwidth_mbps: float | None,
    *,
    more_body: bool = False,
) -> None:
    """Send ``body`` as ASGI body messages, each chunk released when the link would have
    carried it, so the whole body takes ``len(body) * 8 / bandwidth`` seconds."""
    if bandwidth_mbps is None or not body:
        await send({"type": "http.response.body", "body": body, "more_body": more_body})
        return
    rate = bandwidth_mbps * 1e6 / 8  # bytes per second
    chunk = max(4096, int(rate * 0.005))  # ~5 ms of data per chunk keeps timer error small
    start = time.perf_counter()
    sent = 0
    view = memoryview(body)
    while sent < len(body):
        piece = bytes(view[sent : sent + chunk])
        sent += len(piece)
        delay = start + sent / rate - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        await send({"type": "http.response.body", "body": piece, "more_body": more_body or sent < len(body)})


async def read_body_paced(receive: Callable[[], Awaitable[dict[str, Any]]], bandwidth_mbps: float | None) -> bytes:
    """Read a request body no faster than the link carries it (the client's upload).

    Each ASGI message is taken when the link would have delivered it; the server's buffers
    fill and TCP flow control holds the client back, so the client's ``send`` phase lasts
    about ``len(body) * 8 / bandwidth`` (a few buffered chunks early)."""
    chunks: list[bytes] = []
    received = 0
    rate = None if bandwidth_mbps is None else bandwidth_mbps * 1e6 / 8
    start = time.perf_counter()
    while True:
        msg = await receive()
        if msg["type"] == "http.disconnect":
            break
        piece = msg.get("body", b"")
        chunks.append(piece)
        received += len(piece)
        if rate is not None and piece:
            delay = start + received / rate - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
        if not msg.get("more_body"):
            break
    return b"".join(chunks)
