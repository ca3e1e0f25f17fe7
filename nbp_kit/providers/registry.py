"""Which providers exist, what each (provider, model) pair documents, and the profile for a name.

A provider is one profile object, not a branch in the client. Two ship with the kit:

* ``"gemini"``: Google's native API, ``models/{model}:generateContent`` or
  ``:streamGenerateContent?alt=sse``, key in the ``x-goog-api-key`` header
  (:mod:`nbp_kit.providers.gemini`).
* ``"relay"``: an OpenAI-compatible relay, ``POST {base}/v1/images/generations`` with
  ``Authorization: Bearer``; ``b64_json`` or ``url`` output and relay fields such as
  ``thinking_level`` and ``grid`` (:mod:`nbp_kit.providers.relay`).
"""

from __future__ import annotations

import dataclasses
from typing import Any

from ..errors import ConfigError
from ..spec import GRIDS, THINKING_LEVELS, ImageSpec
from .base import Provider
from .gemini import GeminiProvider
from .relay import RelayProvider

PROVIDERS: tuple[str, ...] = ("gemini", "relay")


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
    ("gemini", "gemini-3-pro-image"): Capabilities(
        "gemini", "gemini-3-pro-image", (), ("1x1",), True, False, _PRO_NOTE
    ),
    ("gemini", "gemini-3.1-flash-image-preview"): Capabilities(
        "gemini",
        "gemini-3.1-flash-image-preview",
        ("minimal", "high"),
        ("1x1",),
        True,
        False,
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
    check_provider(provider)
    if provider == "relay":
        return Capabilities(
            "relay",
            model,
            THINKING_LEVELS,
            GRIDS,
            False,
            True,
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
    nbp_kit.errors.ConfigError: thinking_level='low' is not documented for gemini/gemini-3-pro-image ...
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


def check_provider(provider: str) -> None:
    """Refuse a provider name the kit does not know, naming the accepted ones."""
    if provider not in PROVIDERS:
        raise ConfigError(f"provider={provider!r} is not accepted; use one of {', '.join(map(repr, PROVIDERS))}")


_PROVIDERS: dict[str, Provider] = {"gemini": GeminiProvider(), "relay": RelayProvider()}


def get_provider(name: str) -> Provider:
    """The profile for ``"gemini"`` or ``"relay"``.

    >>> get_provider("relay").build_request("a cat", ImageSpec()).path
    '/v1/images/generations'
    """
    check_provider(name)
    return _PROVIDERS[name]
