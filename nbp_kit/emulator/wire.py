"""What the routes and the generation pipeline share: the validated request, the rejection, ids,
and the surface of the app the pipeline uses (a Protocol, so neither module imports the other).
"""

from __future__ import annotations

import contextvars
import dataclasses
import re
import secrets
from typing import Any, Protocol

from ..spec import PIXEL_TABLE

#: Seconds this request's answer has run past the model because of the emulator's own work
#: (rendering, encoding); reported as ``late;dur=MS`` in Server-Timing. One per request task.
LATE_S: contextvars.ContextVar[float] = contextvars.ContextVar("nbp_emu_late_s", default=0.0)
#: (woke, due) for the answer being assembled, in perf_counter time: the pipeline woke at ``woke``,
#: a little before the end of the modeled window, to assemble the answer; its headers are ``due`` at
#: the window's end. Sending waits for ``due``; anything later is the emulator falling behind.
DUE: contextvars.ContextVar[tuple[float, float] | None] = contextvars.ContextVar("nbp_emu_due", default=None)


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
    service_tier: str = "standard"  # "flex": see flex.py
    input_images: int = 0  # inline images in the contents (references and replayed model images)
    input_pixels: int = 0

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


def field(obj: dict[str, Any], camel: str, default: Any = None) -> Any:
    """A request field by its camelCase or snake_case name (proto JSON accepts both; the
    google-genai SDK sends some nested fields in snake_case)."""
    if not isinstance(obj, dict):
        return default
    if camel in obj:
        return obj[camel]
    snake = re.sub(r"([A-Z])", lambda m: "_" + m.group(1).lower(), camel)
    return obj.get(snake, default)


async def read_body(receive: Any) -> bytes:
    chunks = []
    while True:
        msg = await receive()
        if msg["type"] == "http.disconnect":
            break
        chunks.append(msg.get("body", b""))
        if not msg.get("more_body"):
            break
    return b"".join(chunks)


class Serving(Protocol):
    """The emulator state and senders the generation pipeline (``respond``) relies on."""

    profile: dict[str, Any]
    rng: Any
    quotas: Any
    incidents: Any
    latency: Any

    @property
    def workers(self) -> Any: ...

    executor: Any
    images: Any
    network: Any
    faults_on: bool
    fault_params: dict[str, Any]
    time_scale: float
    capacity: int
    clock: Any
    signing_key: bytes

    def load_factor(self) -> float: ...
    def count(self, outcome: str, n_bytes: int = 0) -> None: ...
    def count_client_gone(self) -> None: ...
    def note_behind(self, over_s: float, modeled_s: float = 0.0) -> None: ...
    def assembly_lead(self, gen_s: float) -> float: ...
    def predeflate(self, key: Any, b64: bytes) -> None: ...
    def common_headers(self, queue_s: float, gen_s: float) -> list[tuple[bytes, bytes]]: ...
    def store_file(self, png: bytes) -> str: ...
    def check_gemini_key(self, headers: dict[str, str], query: dict[str, list[str]]) -> None: ...
    def parse_gemini(self, model: str, body: bytes, *, stream: bool) -> GenRequest: ...
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
    ) -> None: ...
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
    ) -> None: ...
