"""What the routes and the generation pipeline share: the validated request, the rejection, ids,
and the surface of the app the pipeline uses (a Protocol, so neither module imports the other).
"""

from __future__ import annotations

import dataclasses
import secrets
from typing import Any, Protocol

from ..spec import PIXEL_TABLE


@dataclasses.dataclass(frozen=True, slots=True)
class GenRequest:
    """One validated image request, whichever API it came through."""

    api: str  # "gemini" | "relay"
    model: str
    prompt: str
    seed: int
    resolution: str
    aspect_ratio: str
    level: str | None
    grid: int
    include_thoughts: bool = False
    with_text: bool = False
    stream: bool = False
    n: int = 1
    response_format: str = "b64_json"

    @property
    def pixel_size(self) -> tuple[int, int]:
        return PIXEL_TABLE[self.aspect_ratio][self.resolution]

    @property
    def caption(self) -> str:
        grid = f" grid={self.grid}x{self.grid}" if self.grid > 1 else ""
        return f"{self.resolution} {self.aspect_ratio} think={self.level or 'default'}{grid} {self.model}"


class Reject(Exception):
    """A request answered with an error body (status, body dict, extra headers)."""

    def __init__(self, status: int, body: dict[str, Any], headers: dict[str, str] | None = None) -> None:
        super().__init__(status)
        self.status, self.body, self.headers = status, body, headers or {}


def new_response_id() -> str:
    return secrets.token_urlsafe(16)


class Serving(Protocol):
    """The emulator state and senders the generation pipeline (``respond``) relies on."""

    profile: dict[str, Any]
    rng: Any
    quotas: Any
    incidents: Any
    latency: Any
    workers: Any
    executor: Any
    images: Any
    network: Any
    faults_on: bool
    fault_params: dict[str, Any]
    time_scale: float
    capacity: int

    def load_factor(self) -> float: ...
    def count(self, outcome: str, n_bytes: int = 0) -> None: ...
    def count_client_gone(self) -> None: ...
    def common_headers(self, queue_s: float, gen_s: float) -> list[tuple[bytes, bytes]]: ...
    def store_file(self, png: bytes) -> str: ...
    async def send_json(self, send: Any, status: int, obj: dict[str, Any], req_headers: dict[str, str], *,
                        extra: dict[str, str] | None = None, outcome: str, api: str = "gemini",
                        queue_s: float = 0.0, gen_s: float = 0.0) -> None: ...
    async def send_bytes(self, send: Any, status: int, body: bytes, content_type: bytes,
                         req_headers: dict[str, str], *, extra: dict[str, str] | None = None, outcome: str,
                         queue_s: float = 0.0, gen_s: float = 0.0, gz_parts: tuple[Any, ...] | None = None,
                         bandwidth_mbps: float | None = -1.0) -> None: ...
