"""Editing requests in the emulator: input images, thought signatures, and what references cost.

* :func:`read_inputs` walks a request's ``contents``: every ``inlineData`` part is checked
  (mime, base64, size) and counted (images, bytes, pixels); every image the *model* returned
  in an earlier turn must come back with the thought signature it was given, else the
  service's 400 (the text of the recorded real answer, or ``"Corrupted thought signature."``
  when it was altered, as reported against the real API).
* :func:`sign` / :func:`signature_ok` make and check signatures: an HMAC of the response id
  under the emulator's per-process key, so another emulator's (or an edited) signature fails.
* :func:`editing_extra_s` is the extra generation time the references add, from the profile's
  ``editing`` block. There are no published figures: the numbers are an assumption, and the
  profile says so.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import hashlib
import hmac
import io
from typing import Any

from . import faults as F
from .wire import Reject

#: Request payload cap of the real API (bytes) and its message.
MAX_REQUEST_BYTES = 20 * 1024 * 1024
ACCEPTED_MIMES = ("image/png", "image/jpeg", "image/webp", "image/heic", "image/heif")
#: Input tokens billed per input image (Gemini 3 Pro Image, default media resolution).
TOKENS_PER_INPUT_IMAGE = 560
MAX_INPUT_IMAGES = 14

_MISSING = (
    "Image part is missing a thought_signature in content position {content}, part position {part}. "
    "Please refer to https://ai.google.dev/gemini-api/docs/thought-signatures#model-behavior for more "
    "details."
)
_CORRUPTED = "Corrupted thought signature."
_MAC_LEN = 24


@dataclasses.dataclass(frozen=True, slots=True)
class Inputs:
    """What a request's contents carry besides text."""

    images: int = 0
    bytes: int = 0
    pixels: int = 0
    turns: int = 1  # user turns in the request (1 for a single-turn request)


def _bad(message: str) -> Reject:
    return Reject(400, F.gemini_error(400, message))


def too_large(n_bytes: int) -> Reject | None:
    """The real API's answer to a request body over the 20 MB cap (``None`` when it fits)."""
    if n_bytes <= MAX_REQUEST_BYTES:
        return None
    return _bad(f"Request payload size exceeds the limit: {MAX_REQUEST_BYTES} bytes.")


def sign(key: bytes, response_id: str, filler: bytes = b"") -> str:
    """This response's thought signature mark (opaque base64, like the service's).

    The emulator sends ``filler + mark``: ``filler`` is base64 of a recorded size (whole
    4-character groups) and the mark is ``pad + mac + response id + len(id)`` in whole base64
    groups, read from the end; the mac covers the id and the filler's bytes, so altering any
    part of the signature is detected.
    """
    rid = response_id.encode()
    mac = _mac(key, rid, base64.b64decode(filler) if filler else b"")
    tail = mac + rid + bytes([len(rid)])
    return base64.b64encode(mac[: -len(tail) % 3] + tail).decode("ascii")


def _mac(key: bytes, rid: bytes, filler: bytes) -> bytes:
    return hmac.new(key, rid + hashlib.sha256(filler).digest(), hashlib.sha256).digest()[:_MAC_LEN]


def _b64decode(value: str) -> bytes:
    """Standard or URL-safe base64 (proto JSON accepts both; the SDKs send either)."""
    text = value.strip().replace("-", "+").replace("_", "/")
    return base64.b64decode(text + "=" * (-len(text) % 4), validate=True)


def signature_ok(key: bytes, signature: Any) -> bool:
    if not isinstance(signature, str):
        return False
    try:
        raw = _b64decode(signature)
    except (binascii.Error, ValueError):
        return False
    if not raw:
        return False
    n = raw[-1]
    rid = raw[-1 - n : -1]
    mac = raw[-1 - n - _MAC_LEN : -1 - n]
    pad = (-(_MAC_LEN + n + 1)) % 3
    start = len(raw) - 1 - n - _MAC_LEN - pad
    if len(rid) != n or len(mac) != _MAC_LEN or start < 0:
        return False
    expected = _mac(key, rid, raw[:start])
    return hmac.compare_digest(mac, expected) and raw[start : start + pad] == expected[:pad]


def _image_pixels(data: bytes) -> int:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(data)) as im:  # header only
            return int(im.size[0]) * int(im.size[1])
    except (UnidentifiedImageError, OSError, ValueError):
        return 0


def read_inputs(contents: Any, key: bytes) -> Inputs:
    """Check and count the non-text parts of ``contents``; raise the service's 400 on a bad one."""
    images = n_bytes = pixels = turns = user_images = 0
    for ci, content in enumerate(contents if isinstance(contents, list) else []):
        if not isinstance(content, dict):
            continue
        role = content.get("role") or "user"
        turns += role == "user"
        for pi, part in enumerate(content.get("parts") or []):
            if not isinstance(part, dict):
                continue
            signature = part.get("thoughtSignature", part.get("thought_signature"))
            inline = part.get("inlineData", part.get("inline_data"))
            thought = part.get("thought") is True
            if role == "model" and signature is not None and not signature_ok(key, signature):
                raise _bad(_CORRUPTED)
            if inline is None:
                continue
            if role == "model" and not thought and signature is None:
                raise _bad(_MISSING.format(content=ci + 1, part=pi + 1))
            data = _inline_bytes(inline, ci, pi)
            images += 1
            user_images += role == "user"
            n_bytes += len(data)
            pixels += _image_pixels(data)
    if user_images > MAX_INPUT_IMAGES:  # the model's own images in the history do not count
        raise _bad(
            f"Too many images in the request: {user_images}; at most {MAX_INPUT_IMAGES} reference images are supported."
        )
    return Inputs(images=images, bytes=n_bytes, pixels=pixels, turns=max(1, turns))


def _inline_bytes(inline: Any, ci: int, pi: int) -> bytes:
    where = f"contents[{ci}].parts[{pi}].inline_data"
    if not isinstance(inline, dict):
        raise _bad(f"Invalid value at '{where}': expected an object.")
    mime = inline.get("mimeType", inline.get("mime_type"))
    if mime not in ACCEPTED_MIMES:
        raise _bad(f"Unsupported MIME type: {mime}")
    data = inline.get("data")
    try:
        if not isinstance(data, str):
            raise ValueError
        return _b64decode(data)
    except (binascii.Error, ValueError):
        shown = str(data)[:20]
        raise _bad(f"Invalid value at '{where}.data' (TYPE_BYTES), Base64 decoding failed for \"{shown}\"") from None


def editing_extra_s(profile: dict[str, Any], images: int, pixels: int) -> float:
    """Extra generation seconds (before ``time_scale``) for the references, from ``profile["editing"]``.

    >>> editing_extra_s({"editing": {"per_image_s": 0.5, "per_megapixel_s": 1.0}}, 2, 3_000_000)
    4.0
    """
    cfg = profile.get("editing") or {}
    return float(cfg.get("per_image_s", 0.0)) * images + float(cfg.get("per_megapixel_s", 0.0)) * pixels / 1e6
