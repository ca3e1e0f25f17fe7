"""Editing sessions: multi-turn refinement of one image, history replayed with its thought signatures.

The service only accepts a later turn when every image the model returned comes back with its
``thoughtSignature`` exactly as it was sent (otherwise ``400 INVALID_ARGUMENT "Image part is
missing a thought_signature ..."``). :class:`EditSession` keeps that history for you::

    >>> with Client.for_emulator(emu) as client:                       # doctest: +SKIP
    ...     session = EditSession(client, ImageSpec(resolution="1K"))
    ...     first = session.send("a red bicycle on a beach", images=["product.png"])
    ...     second = session.send("make the bicycle blue")           # turn 2: history replayed
    ...     [a.turn for g in session.generations for a in g.attempts]
    [1, 2]

Every attempt of a turn is recorded with ``session_id`` and ``turn``; a failed turn leaves the
history as it was, so the same turn can be sent again.
"""

from __future__ import annotations

import base64
import copy
import uuid
from typing import Any

from ..errors import ConfigError
from ..providers.base import _LIFTED
from ..spec import ImageSpec
from .core import AsyncClient, Client, Generation
from .inputs import InputImage


class EditSession:
    """A multi-turn editing chat on one :class:`Client` (``send``) or :class:`AsyncClient` (``asend``)."""

    def __init__(
        self, client: Client | AsyncClient, spec: ImageSpec | None = None, *, session_id: str | None = None
    ) -> None:
        if not isinstance(client, (Client, AsyncClient)):
            raise ConfigError(f"client={client!r} is not accepted; use an nbp_kit Client or AsyncClient")
        if client.provider.name != "gemini":
            raise ConfigError(
                f"client=<provider {client.provider.name!r}> is not accepted; editing sessions need "
                "provider='gemini' (the relay keeps no chat history)"
            )
        if spec is not None and not isinstance(spec, ImageSpec):
            raise ConfigError(f"spec={spec!r} is not accepted; use an nbp_kit.ImageSpec")
        if session_id is not None and (not isinstance(session_id, str) or not session_id.strip()):
            raise ConfigError(f"session_id={session_id!r} is not accepted; use a non-empty string or None")
        self.client, self.spec = client, spec
        self.session_id = session_id or uuid.uuid4().hex[:16]
        self._history: list[dict[str, Any]] = []
        self.generations: list[Generation] = []  # successful turns, in order

    @property
    def turn(self) -> int:
        """The number the next turn will have (1-based)."""
        return len(self.generations) + 1

    @property
    def history(self) -> list[dict[str, Any]]:
        """The contents replayed with the next turn (a deep copy: edit it to test the service)."""
        return copy.deepcopy(self._history)

    def _kwargs(self, kw: dict[str, Any]) -> dict[str, Any]:
        for name in ("history", "session_id", "turn"):
            if name in kw:
                raise ConfigError(f"{name}={kw[name]!r} is not accepted here; the session sets it")
        return {**kw, "history": list(self._history), "session_id": self.session_id, "turn": self.turn}

    def send(self, prompt: str, *, images: Any = None, **kw: Any) -> Generation:
        """One turn (blocking, with a :class:`Client`): prompt plus optional new reference images."""
        if not isinstance(self.client, Client):
            raise ConfigError("send() needs a sync Client; with an AsyncClient use await session.asend(...)")
        loaded, _ = self.client.aio.prepare_inputs(prompt, images, self._history)
        gen = self.client.generate(prompt, self.spec, images=list(loaded), **self._kwargs(kw))
        self._record(prompt, loaded, gen)
        return gen

    async def asend(self, prompt: str, *, images: Any = None, **kw: Any) -> Generation:
        """One turn with an :class:`AsyncClient`."""
        client = self.client.aio if isinstance(self.client, Client) else self.client
        loaded, _ = client.prepare_inputs(prompt, images, self._history)
        gen = await client.generate(prompt, self.spec, images=list(loaded), **self._kwargs(kw))
        self._record(prompt, loaded, gen)
        return gen

    def _record(self, prompt: str, images: tuple[InputImage, ...], gen: Generation) -> None:
        if not gen.ok:
            return
        self._history += turn_contents(prompt, images, gen)
        self.generations.append(gen)


def turn_contents(prompt: str, images: Any, gen: Generation) -> list[dict[str, Any]]:
    """The two contents one successful turn adds to the history: the user's, then the model's."""
    user = {"role": "user", "parts": [{"text": prompt}, *(img.part() for img in images or ())]}
    return [user, {"role": "model", "parts": _model_parts(gen)}]


def _model_parts(gen: Generation) -> list[dict[str, Any]]:
    """The model's parts as returned; an image whose data the parser lifted gets it back (same bytes)."""
    out = []
    for part in gen.model_parts:
        part = dict(part)
        inline = part.get("inlineData")
        if isinstance(inline, dict) and (not isinstance(inline.get("data"), str) or inline["data"] == _LIFTED):
            part["inlineData"] = {**inline, "data": base64.b64encode(gen.image or b"").decode("ascii")}
        out.append(part)
    return out


__all__ = ["EditSession", "turn_contents"]
