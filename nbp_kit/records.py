"""Records: one :class:`Attempt` per try, failed or not. Units are in the field names.

Every field is a plain value so ``pd.DataFrame([a.as_dict() for a in attempts])`` is the
tidy frame that the store, analysis and plots share. Times ``*_at`` are Unix epoch seconds
of the client's wall clock (or the emulator's virtual clock where ``clock == "virtual"``);
``*_s`` are durations in seconds.
"""

from __future__ import annotations

import dataclasses
from typing import Any

#: Phase names, in order, shared by records, plots and docs.
PHASES: tuple[str, ...] = ("queue", "connect", "tls", "send", "wait", "download", "fetch", "parse", "decode", "save")


@dataclasses.dataclass(frozen=True, slots=True)
class Attempt:
    """One try of one request. ``status`` is ``"started"`` until the outcome is known."""

    attempt_id: str
    call_id: str  # all attempts (retries, hedges) made for one user call share it
    attempt_no: int  # 1-based within the call
    status: str = "started"  # started | ok | error
    run_id: str | None = None
    request_key: str | None = None  # plan item key, used by sweeps to resume
    hedge: bool = False
    # what was asked
    provider: str = "gemini"
    model: str = ""
    base_host: str = ""  # host[:port] only, never a key or a path
    transport: str = "unary"  # unary | stream
    resolution: str = ""
    aspect_ratio: str = ""
    thinking_level: str | None = None
    grid: str = "1x1"
    prompt: str = ""
    seed: int | None = None
    # when
    scheduled_at: float | None = None
    sent_at: float | None = None
    ended_at: float | None = None
    # phases (seconds)
    queue_s: float | None = None
    connect_s: float | None = None
    tls_s: float | None = None
    send_s: float | None = None
    wait_s: float | None = None
    download_s: float | None = None
    fetch_s: float | None = None  # relay url: the follow-up image download
    parse_s: float | None = None
    decode_s: float | None = None
    save_s: float | None = None
    total_s: float | None = None  # ended_at - scheduled_at
    # streaming milestones, from sent_at
    first_thought_s: float | None = None
    first_interim_image_s: float | None = None
    final_image_s: float | None = None
    # wire
    http_version: str | None = None
    connection_reused: bool | None = None
    bytes_down: int | None = None  # response body bytes as received on the wire
    bytes_decoded: int | None = None  # image bytes after base64 decoding
    download_mbps: float | None = None
    # outcome
    status_code: int | None = None
    error_kind: str | None = None
    error_message: str | None = None  # redacted
    retry_delay_s: float | None = None  # delay waited after this attempt, if retried
    retry_delay_source: str | None = None  # retry-after-ms | retry-after | retry-info | backoff
    # usage and cost
    prompt_tokens: int | None = None
    output_tokens: int | None = None
    thoughts_tokens: int | None = None
    image_tokens: int | None = None
    cost_usd: float | None = None
    response_id: str | None = None
    model_version: str | None = None
    # image
    image_path: str | None = None
    image_sha256: str | None = None
    image_width: int | None = None
    image_height: int | None = None
    image_mime: str | None = None
    size_ok: bool | None = None
    tiles: int = 1
    tile_paths: tuple[str, ...] = ()
    # ground truth and time base (emulator only)
    server_queue_s: float | None = None
    server_generation_s: float | None = None
    time_scale: float = 1.0
    clock: str = "real"  # real | scaled | virtual
    virtual_at: float | None = None  # emulator virtual clock when the request was served
    # where the call was made from (workers sharing a run; None for a one-machine sweep)
    worker_id: str | None = None  # the worker process: host name, pid and a random suffix
    host: str | None = None  # the machine whose disk holds image_path
    region: str | None = None  # the vantage point's label, e.g. "eu-west" (``--region``)
    # reference images and editing sessions (send_s is their upload)
    input_images: int = 0  # reference images sent with the request
    input_bytes: int | None = None  # their raw file bytes (before base64)
    input_pixels: int | None = None  # their total pixels (width x height summed)
    bytes_up: int | None = None  # request body bytes as sent (JSON, base64 and history included)
    session_id: str | None = None  # editing session the attempt belongs to
    turn: int | None = None  # 1-based turn within that session
    # server time as the front end reports it (server-timing "gfet4t7"): unary = the whole
    # server time, stream = time to the response headers; the emulator sends it too
    server_total_s: float | None = None
    bytes_fetched: int | None = None  # relay url: bytes of the follow-up image download
    # emulator only: time its own rendering/encoding ran past the modeled generation (not scaled)
    emulator_late_s: float | None = None
    # the quota a 429 named (QuotaFailure / "limit: N" in the message), when it named one
    quota_metric: str | None = None  # e.g. generativelanguage.googleapis.com/generate_content_requests
    quota_id: str | None = None  # e.g. GenerateRequestsPerMinutePerProjectPerModel
    quota_value: float | None = None  # the stated limit (quotaValue, or "limit: N")
    quota_dimensions: str | None = None  # JSON object, e.g. {"location": "global", "model": "..."}

    def as_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["tile_paths"] = list(self.tile_paths)
        return d

    def replace(self, **changes: Any) -> Attempt:
        return dataclasses.replace(self, **changes)

    @property
    def ok(self) -> bool:
        return self.status == "ok"


ATTEMPT_FIELDS: tuple[str, ...] = tuple(f.name for f in dataclasses.fields(Attempt))
