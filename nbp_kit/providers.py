"""Provider profiles: how one image request looks on the wire, and what each API offers.

A provider is one profile object, not a branch in the client. Two ship with the kit:

* ``"gemini"``: Google's native API, ``models/{model}:generateContent`` or
  ``:streamGenerateContent?alt=sse``, key in the ``x-goog-api-key`` header.
* ``"relay"``: an OpenAI-compatible relay, ``POST {base}/v1/images/generations`` with
  ``Authorization: Bearer``; ``b64_json`` or ``url`` output and relay fields such as
  ``thinking_level`` and ``grid``.

A profile builds the request (:class:`WireRequest`) and states its capabilities
(:func:`capabilities`, :func:`check_spec`); reading the answers lives in
:mod:`nbp_kit.parsing` and prices in :mod:`nbp_kit.pricing`. Their public names are
re-exported here, so ``from nbp_kit.providers import SSEParser, estimate_cost`` keeps
working. Parsing raises only :class:`~nbp_kit.errors.BadPayload` (malformed answers) or
:class:`~nbp_kit.errors.ContentBlocked` (the service declined), never a JSON or
``KeyError``::

    >>> get_provider("gemini").parse_body(b'{"candidates": [')  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    nbp_kit.errors.BadPayload: response body is not valid JSON...
"""

from __future__ import annotations

import dataclasses
from typing import Any

from .errors import ConfigError
from .parsing import (
    ErrorInfo,
    ParsedImage,
    SSEParser,
    StreamState,
    Usage,
    _kind_for_status,  # noqa: F401 - imported from here by timing.AttemptLog
    classify_http_error,
    finish_gemini_stream,
    load_json,
    observe_gemini_event,
    parse_gemini_body,
    parse_relay_body,
    server_retry_delay,
)
from .pricing import attempt_cost, estimate_cost, price_row
from .spec import GRIDS, MODELS, THINKING_LEVELS, ImageSpec

PROVIDERS: tuple[str, ...] = ("gemini", "relay")

# The old private name of pricing.price_row, for code written before it was public.
_price_row = price_row


# --------------------------------------------------------------------------- capabilities
@dataclasses.dataclass(frozen=True, slots=True)
class Capabilities:
    """Which knobs one (provider, model) pair documents.

    >>> capabilities("gemini", "gemini-3-pro-image-preview").thinking_levels
    ()
    """

    provider: str
    model: str
    thinking_levels: tuple[str, ...]
    grids: tuple[str, ...]
    streaming: bool
    url_output: bool
    note: str = ""

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


_PRO_NOTE = (
    "Gemini 3 Pro Image always thinks and documents no thinkingLevel; whether it rejects or "
    "ignores one is not documented"
)
_CAPS: dict[tuple[str, str], Capabilities] = {
    ("gemini", "gemini-3-pro-image-preview"): Capabilities(
        "gemini", "gemini-3-pro-image-preview", (), ("1x1",), True, False, _PRO_NOTE
    ),
    ("gemini", "gemini-3-pro-image"): Capabilities("gemini", "gemini-3-pro-image", (), ("1x1",), True, False, _PRO_NOTE),
    ("gemini", "gemini-3.1-flash-image-preview"): Capabilities(
        "gemini", "gemini-3.1-flash-image-preview", ("minimal", "high"), ("1x1",), True, False,
        "Nano Banana 2 documents thinkingLevel minimal (default) and high",
    ),
}


def capabilities(provider: str, model: str) -> Capabilities:
    """The capability row for ``(provider, model)``.

    Unknown Gemini models get the conservative Pro row; relays accept every knob (that is
    what they advertise), which sweeps then verify by measuring.

    >>> capabilities("relay", "any-model").grids
    ('1x1', '2x2', '3x3')
    """
    _check_provider(provider)
    if provider == "relay":
        return Capabilities(
            "relay", model, THINKING_LEVELS, GRIDS, False, True,
            "relay fields thinking_level, grid, aspect_ratio, image_size are relay-specific",
        )
    row = _CAPS.get((provider, model))
    if row is None:
        return Capabilities(provider, model, (), ("1x1",), True, False, f"unknown model {model!r}: {_PRO_NOTE}")
    return row


def check_spec(
    provider: str, spec: ImageSpec, *, stream: bool = False, allow_undocumented: bool = False
) -> Capabilities:
    """Refuse knobs the (provider, model) does not document, before any request.

    >>> check_spec("gemini", ImageSpec(thinking_level="low"))  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    nbp_kit.errors.ConfigError: thinking_level='low' is not documented for gemini/gemini-3-pro-image-preview ...
    """
    caps = capabilities(provider, spec.model)
    where = f"{provider}/{spec.model}"
    if stream and not caps.streaming:
        raise ConfigError(f"stream=True is not accepted for {where}; it has no streaming endpoint, use stream=False")
    if spec.output_format == "url" and not caps.url_output:
        raise ConfigError(f"output_format='url' is not accepted for {where}; use 'b64_json'")
    if allow_undocumented:
        return caps
    if spec.thinking_level is not None and spec.thinking_level not in caps.thinking_levels:
        accepted = ", ".join(repr(t) for t in caps.thinking_levels) or "none"
        raise ConfigError(
            f"thinking_level={spec.thinking_level!r} is not documented for {where} "
            f"(accepted: None, {accepted}). {caps.note}. Pass allow_undocumented=True to send it "
            "anyway and measure what it does."
        )
    if spec.grid not in caps.grids:
        raise ConfigError(
            f"grid={spec.grid!r} is not documented for {where} (accepted: {', '.join(map(repr, caps.grids))}); "
            "grids are a relay feature. Pass allow_undocumented=True to send it anyway."
        )
    return caps


def _check_provider(provider: str) -> None:
    if provider not in PROVIDERS:
        raise ConfigError(f"provider={provider!r} is not accepted; use one of {', '.join(map(repr, PROVIDERS))}")


# --------------------------------------------------------------------------- wire objects
@dataclasses.dataclass(frozen=True, slots=True)
class WireRequest:
    """What to send, without the key (the client adds :meth:`Provider.auth_headers`)."""

    method: str
    path: str  # appended to the base URL
    json: dict[str, Any]
    params: dict[str, str] = dataclasses.field(default_factory=dict)
    stream: bool = False


# --------------------------------------------------------------------------- providers
class Provider:
    """One API dialect. Subclasses build the request and parse the answer; the client does the rest.

    ``models_path`` is the cheap models-list request (``None`` where the API has none the
    kit knows).
    """

    name: str = ""
    key_env: str = ""
    base_url_env: str | None = None
    default_base_url: str = ""
    models_path: str | None = None

    def auth_headers(self, api_key: str) -> dict[str, str]:
        raise NotImplementedError

    def build_request(self, prompt: str, spec: ImageSpec, *, seed: int | None = None, stream: bool = False) -> WireRequest:
        raise NotImplementedError

    def parse_body(self, body: bytes, spec: ImageSpec | None = None) -> ParsedImage:
        raise NotImplementedError

    def classify_error(self, status_code: int, headers: Any, body: bytes) -> ErrorInfo:
        """Map an HTTP error answer to an error kind and the server's retry delay."""
        return classify_http_error(status_code, headers, body)


class GeminiProvider(Provider):
    """Native Gemini API (``generateContent`` / ``streamGenerateContent?alt=sse``)."""

    name = "gemini"
    key_env = "GEMINI_API_KEY"
    default_base_url = "https://generativelanguage.googleapis.com"
    models_path = "/v1beta/models"

    def auth_headers(self, api_key: str) -> dict[str, str]:
        return {"x-goog-api-key": api_key}

    def build_request(self, prompt: str, spec: ImageSpec, *, seed: int | None = None, stream: bool = False) -> WireRequest:
        gen: dict[str, Any] = {
            "responseModalities": ["TEXT", "IMAGE"] if spec.text_and_image else ["IMAGE"],
            "imageConfig": {"aspectRatio": spec.aspect_ratio, "imageSize": spec.resolution},
        }
        thinking: dict[str, Any] = {}
        if spec.include_thoughts:
            thinking["includeThoughts"] = True
        if spec.thinking_level is not None:
            thinking["thinkingLevel"] = spec.thinking_level
        if thinking:
            gen["thinkingConfig"] = thinking
        if seed is not None:
            gen["seed"] = int(seed)
        if spec.grid != "1x1":  # undocumented; only sent with allow_undocumented=True
            gen["imageConfig"]["grid"] = spec.grid
        body = {"contents": [{"role": "user", "parts": [{"text": prompt}]}], "generationConfig": gen}
        if stream:
            return WireRequest("POST", f"/v1beta/models/{spec.model}:streamGenerateContent", body, {"alt": "sse"}, True)
        return WireRequest("POST", f"/v1beta/models/{spec.model}:generateContent", body)

    def parse_body(self, body: bytes, spec: ImageSpec | None = None) -> ParsedImage:
        return parse_gemini_body(body)

    # streaming: the client feeds SSE events, then asks for the result
    def observe_event(self, state: StreamState, doc: Any, elapsed_s: float) -> None:
        """Fold one response (or SSE event) into ``state``; stamp milestones."""
        observe_gemini_event(state, doc, elapsed_s)

    def finish_stream(self, state: StreamState) -> ParsedImage:
        """The final image, or the reason there is none."""
        return finish_gemini_stream(state)


class RelayProvider(Provider):
    """OpenAI-compatible relay: ``POST {base}/v1/images/generations``."""

    name = "relay"
    key_env = "NBP_KIT_RELAY_KEY"
    base_url_env = "NBP_KIT_RELAY_BASE_URL"

    def auth_headers(self, api_key: str) -> dict[str, str]:
        return {"authorization": f"Bearer {api_key}"}

    def build_request(self, prompt: str, spec: ImageSpec, *, seed: int | None = None, stream: bool = False) -> WireRequest:
        w, h = spec.pixel_size
        body: dict[str, Any] = {
            "model": spec.model,
            "prompt": prompt,
            "n": 1,
            "size": f"{w}x{h}",
            "response_format": spec.output_format,
            "aspect_ratio": spec.aspect_ratio,
            "image_size": spec.resolution,
        }
        if spec.thinking_level is not None:
            body["thinking_level"] = spec.thinking_level
        if spec.grid != "1x1":
            body["grid"] = spec.grid
        if seed is not None:
            body["seed"] = int(seed)
        return WireRequest("POST", "/v1/images/generations", body)

    def parse_body(self, body: bytes, spec: ImageSpec | None = None) -> ParsedImage:
        return parse_relay_body(body)


_PROVIDERS: dict[str, Provider] = {"gemini": GeminiProvider(), "relay": RelayProvider()}


def get_provider(name: str) -> Provider:
    """The profile for ``"gemini"`` or ``"relay"``.

    >>> get_provider("relay").build_request("a cat", ImageSpec()).path
    '/v1/images/generations'
    """
    _check_provider(name)
    return _PROVIDERS[name]


__all__ = [
    "MODELS",
    "PROVIDERS",
    "Capabilities",
    "ErrorInfo",
    "GeminiProvider",
    "ParsedImage",
    "Provider",
    "RelayProvider",
    "SSEParser",
    "StreamState",
    "Usage",
    "WireRequest",
    "attempt_cost",
    "capabilities",
    "check_spec",
    "estimate_cost",
    "get_provider",
    "load_json",
    "price_row",
    "server_retry_delay",
]
