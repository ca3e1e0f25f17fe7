"""Editing items of a sweep: synthetic reference images and multi-turn sessions.

A plan item with ``references=(count, side)`` sends that many reference images (synthetic,
deterministic, roughly photo-sized PNGs); one with ``edit_turns=k`` runs an editing session of
``k`` turns, each turn replaying the history with its thought signatures. Every turn is an
attempt of its own, linked by ``session_id`` and ``turn``; turn 1 carries the item's request key and
later turns ``KEY#turnN`` (the store keeps one success per key).
"""

from __future__ import annotations

import functools
import inspect
import io
import uuid
from typing import Any

from ..client.inputs import InputImage, load_input_images
from ..client.session import turn_contents

#: Follow-up prompts for turns 2, 3, ... (cycled).
EDIT_PROMPTS = (
    "make the background a warm sunset",
    "add a small red bird on the left",
    "change the colour palette to pastel",
    "make it look like a watercolour painting",
)


@functools.lru_cache(maxsize=32)
def synthetic_references(count: int, side: int) -> tuple[InputImage, ...]:
    """``count`` PNGs of ``side`` x ``side`` px, with noise so they compress like photos (about
    1.6 bytes a pixel); the same for every call."""
    import numpy as np
    from PIL import Image

    out = []
    for i in range(count):
        rng = np.random.default_rng(1000 + i)
        y, x = np.mgrid[0:side, 0:side]
        base = np.stack(
            [(x * 255 // max(1, side - 1)), (y * 255 // max(1, side - 1)), np.full_like(x, 40 * i % 256)], axis=-1
        )
        noise = rng.integers(-24, 25, (side, side, 3))
        pixels = np.clip(base + noise, 0, 255).astype(np.uint8)
        buf = io.BytesIO()
        Image.fromarray(pixels).save(buf, "PNG", compress_level=1)
        out.append(buf.getvalue())
    return load_input_images(out)


async def generate_item(client: Any, item: Any, kwargs: dict[str, Any]) -> Any:
    """Run one plan item: a plain request, or its reference images and editing turns.

    Returns the last turn's generation (the first failed one, if a turn fails: later turns
    would replay a history the service never completed)."""
    count, side = getattr(item, "references", (0, 0))
    turns = getattr(item, "edit_turns", 1)
    if not count and turns == 1:
        return await _maybe_await(client.generate(item.prompt, item.spec, **kwargs))
    refs = synthetic_references(count, side) if count else ()
    session_id = uuid.uuid4().hex[:16] if turns > 1 else None
    history: list[dict[str, Any]] = []
    gen = None
    for turn in range(1, turns + 1):
        prompt = item.prompt if turn == 1 else EDIT_PROMPTS[(turn - 2) % len(EDIT_PROMPTS)]
        images = list(refs) if turn == 1 else None
        extra = {"session_id": session_id, "turn": turn, "history": list(history)} if session_id else {}
        turn_kwargs = dict(kwargs)
        if turn > 1 and turn_kwargs.get("request_key"):
            turn_kwargs["request_key"] = f"{turn_kwargs['request_key']}#turn{turn}"
        gen = await _maybe_await(client.generate(prompt, item.spec, images=images, **extra, **turn_kwargs))
        if not getattr(gen, "ok", False):
            break
        history += turn_contents(prompt, images, gen)
    return gen


async def _maybe_await(result: Any) -> Any:
    return await result if inspect.isawaitable(result) else result
