"""Prices: the table in ``data/prices.json`` and what one call or attempt costs.

Gemini image models are priced per token (image output, text and thoughts, prompt), with a
per-resolution image price for estimates; relays charge a flat price per call::

    >>> price_row("relay", "any-model")["per_call_usd"] >= 0
    True
    >>> estimate_cost("gemini", "gemini-3-pro-image-preview", ImageSpec(resolution="4K"))
    0.24
"""

from __future__ import annotations

import functools
import json
from typing import Any

from .._paths import DATA_DIR
from ..errors import ConfigError
from ..spec import ImageSpec
from .base import Usage
from .registry import check_provider


@functools.lru_cache(maxsize=1)
def _prices() -> dict[str, Any]:
    try:
        return json.loads((DATA_DIR / "prices.json").read_text())
    except (OSError, ValueError) as exc:  # a broken data file is a setup problem
        raise ConfigError(f"prices file {str(DATA_DIR / 'prices.json')!r} cannot be read: {exc}") from exc


def price_row(provider: str, model: str) -> dict[str, Any]:
    """The price table's row for ``(provider, model)`` (``{}`` when the table has none).

    Unknown models fall back to the provider's ``_default`` row, and unknown Gemini models
    to the Pro row. Keys: ``per_call_usd`` (relays), or ``image_usd`` by resolution and the
    ``*_per_mtok_usd`` token prices (Gemini).

    >>> price_row("gemini", "gemini-3-pro-image-preview")["image_usd"]["4K"]
    0.24
    """
    table = _prices().get(provider, {})
    row = table.get(model) or table.get("_default")
    if row is None and provider == "gemini":
        row = table.get("gemini-3-pro-image-preview")
    return row or {}


def batch_price_share(provider: str, model: str) -> float:
    """The share of the interactive price the Batch API bills (``batch_price_share`` in
    ``data/prices.json``; 0.5 for Gemini's Pro image models, as Google's pricing page says).

    >>> batch_price_share("gemini", "gemini-3-pro-image")
    0.5
    """
    share = price_row(provider, model).get("batch_price_share")
    if share is None:
        raise ConfigError(
            f"model={model!r} of provider={provider!r} has no batch_price_share in data/prices.json; "
            "add one to price its batch jobs"
        )
    return float(share)


def estimate_cost(provider: str, model: str, spec: ImageSpec) -> float:
    """Price of one successful call from the table in ``data/prices.json``.

    >>> estimate_cost("gemini", "gemini-3-pro-image-preview", ImageSpec(resolution="4K"))
    0.24
    """
    check_provider(provider)
    row = price_row(provider, model)
    if "per_call_usd" in row:
        return float(row["per_call_usd"])
    if "image_usd" in row:
        return float(row["image_usd"][spec.resolution])
    return 0.0


def attempt_cost(provider: str, model: str, spec: ImageSpec, usage: Usage | None) -> float:
    """Cost of one successful attempt: from returned usage when present, else the table.

    Image tokens are priced at ``image_output_per_mtok_usd``, thoughts and text at
    ``text_output_per_mtok_usd``, the prompt at ``input_per_mtok_usd``.

    >>> attempt_cost("gemini", "gemini-3-pro-image-preview", ImageSpec(), None)
    0.134
    """
    row = price_row(provider, model)
    if "per_call_usd" in row or usage is None or usage.output_tokens is None or "image_output_per_mtok_usd" not in row:
        return estimate_cost(provider, model, spec)
    image = usage.image_tokens if usage.image_tokens is not None else usage.output_tokens
    text = max(0, usage.output_tokens - image) + (usage.thoughts_tokens or 0)
    usd = (
        (usage.prompt_tokens or 0) * row.get("input_per_mtok_usd", 0.0)
        + image * row["image_output_per_mtok_usd"]
        + text * row.get("text_output_per_mtok_usd", 0.0)
    ) / 1e6
    return round(usd, 6)


#: Failures after which the service may have generated, and billed, the image: a timed-out or
#: cut-off attempt is priced as billed, so a spend cap holds even when every call times out.
MAYBE_BILLED_KINDS = frozenset({"timeout", "connection_reset"})


def tokens_cost(provider: str, model: str, usage: Usage | None) -> float:
    """What the reported tokens alone cost (no image price assumed): a refusal or a no-image
    answer bills its prompt and its thinking. ``0.0`` without usage or per-call pricing.

    >>> tokens_cost("gemini", "gemini-3-pro-image", Usage(prompt_tokens=50, thoughts_tokens=240))
    0.00298
    """
    row = price_row(provider, model)
    if usage is None or "per_call_usd" in row or "text_output_per_mtok_usd" not in row:
        return 0.0
    text = (usage.output_tokens or 0) + (usage.thoughts_tokens or 0)
    usd = (
        (usage.prompt_tokens or 0) * row.get("input_per_mtok_usd", 0.0) + text * row["text_output_per_mtok_usd"]
    ) / 1e6
    return round(usd, 6)


def failed_attempt_cost(provider: str, model: str, spec: ImageSpec, kind: str, usage: Usage | None) -> float:
    """Cost to record for a failed attempt: the expected price where it may have been billed
    (:data:`MAYBE_BILLED_KINDS`), the reported tokens where the service answered with usage
    (refusals, ``NO_IMAGE``), else nothing.

    >>> failed_attempt_cost("gemini", "gemini-3-pro-image", ImageSpec(), "timeout", None)
    0.134
    >>> failed_attempt_cost("gemini", "gemini-3-pro-image", ImageSpec(), "server_error", None)
    0.0
    """
    if kind in MAYBE_BILLED_KINDS:
        return estimate_cost(provider, model, spec)
    return tokens_cost(provider, model, usage)


__all__ = ["MAYBE_BILLED_KINDS", "attempt_cost", "estimate_cost", "failed_attempt_cost", "price_row", "tokens_cost"]
