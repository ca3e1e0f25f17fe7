"""JPEG answers of the size the real Nano Banana Pro sends, and thought signatures as long.

The real Pro models answer ``image/jpeg`` (every recorded Pro answer is JPEG; Flash 2.5 sends
PNG), and a 1K image (1408x768) is 0.68 to 0.93 MB: 0.63 to 0.86 bytes per pixel. An image
here is a noisy gradient with its pixel size in a band, encoded once per (pixel size, grid)
and cached; the prompt, seed and config go in a JPEG comment, and the file is padded
with comment segments of random bytes to its target size, drawn per (prompt, seed) within the
recorded bytes-per-pixel range. Sizes at 2K and 4K are extrapolated at the same bytes per
pixel (no recording covers them; docs/emulator.md says why this is an upper bound).

>>> jpeg = JpegFactory().get("a cat", seed=1, width=1408, height=768)[0]
>>> jpeg[:2] == b"\\xff\\xd8" and 0.63 <= len(jpeg) / (1408 * 768) <= 0.87
True
"""

from __future__ import annotations

import base64
import collections
import hashlib
import io
import threading
from typing import Any

import numpy as np
from PIL import Image

from .imagegen import _COLOURS, ImageFactory, _label_band, _layout, _tile_palettes

#: Bytes per pixel of the recorded 1K Pro JPEGs (683,947 / 852,360 / 931,369 bytes at 1408x768).
JPEG_BYTES_PER_PIXEL = (0.63, 0.86)
#: Recorded ``thoughtSignature`` lengths on Pro image answers: 1.1 to 2.9 million characters.
SIGNATURE_CHARS = (1_098_588, 2_909_844)
_QUALITY = 95
_NOISE_AMPLITUDE = 6
_COM_MAX = 65533  # payload of one COM segment


def _stable(prompt: str, seed: int, salt: str) -> float:
    digest = hashlib.sha256(f"{salt}\x00{prompt}\x00{seed}".encode()).digest()
    return int.from_bytes(digest[:4], "big") / 2**32


def _noise_tile() -> np.ndarray:
    tile = np.random.default_rng(20260102).integers(0, 256, (256, 256, 3), dtype=np.uint8)
    return (tile.astype(np.uint16) * _NOISE_AMPLITUDE >> 8).astype(np.uint8)


def _pixels(width: int, height: int, grid: int, palette: int, caption: str, tile: np.ndarray) -> np.ndarray:
    pals = _tile_palettes(palette, grid)
    rows = np.zeros((height, width, 3), dtype=np.uint8)
    tile_w, tile_h = width / grid, height / grid
    ramp = np.linspace(0.0, 0.75, width, dtype=np.float32)[:, None]
    for r in range(grid):
        y0, y1 = int(r * tile_h), int((r + 1) * tile_h)
        for c in range(grid):
            x0, x1 = int(c * tile_w), int((c + 1) * tile_w)
            a, b = (np.array(v, np.float32) for v in _COLOURS[pals[r][c]])
            rows[y0:y1, x0:x1] = (a + (b - a) * ramp[x0:x1]).astype(np.uint8)[None, :, :]
    reps = (-(-height // tile.shape[0]), -(-width // tile.shape[1]), 1)
    rows += np.tile(tile, reps)[:height, :width]
    row = 0
    for y0, y1, is_label in _layout(height, grid):
        if is_label:
            rows[y0:y1] = _label_band(width, y1 - y0, grid, row, palette, caption or " ", "")
            row += 1
    return rows


def _comment(payload: bytes) -> bytes:
    return b"\xff\xfe" + (len(payload) + 2).to_bytes(2, "big") + payload


class JpegFactory:
    """Renders and caches JPEGs, and hands out thought signatures of the recorded lengths.

    Thread-safe; CPU work belongs in a worker thread.
    """

    def __init__(self, *, max_backgrounds: int = 16) -> None:
        self._tile: np.ndarray | None = None
        self._bg: collections.OrderedDict[tuple[Any, ...], bytes] = collections.OrderedDict()
        self._max_bg = max_backgrounds
        self._lock = threading.Lock()
        self._pad = np.random.default_rng(20260103).bytes(4 << 20)
        self._signature: bytes | None = None
        self.renders = 0

    def _background(self, width: int, height: int, grid: int, palette: int, caption: str) -> bytes:
        key = (width, height, grid, palette, caption)
        with self._lock:
            if key in self._bg:
                self._bg.move_to_end(key)
                return self._bg[key]
            if self._tile is None:
                self._tile = _noise_tile()
            tile = self._tile
        buf = io.BytesIO()
        Image.fromarray(_pixels(width, height, grid, palette, caption, tile)).save(buf, "JPEG", quality=_QUALITY)
        jpeg = buf.getvalue()
        with self._lock:
            self.renders += 1
            self._bg[key] = jpeg
            while len(self._bg) > self._max_bg:
                self._bg.popitem(last=False)
        return jpeg

    def target_bytes(self, prompt: str, seed: int, width: int, height: int) -> int:
        lo, hi = JPEG_BYTES_PER_PIXEL
        return int(width * height * (lo + (hi - lo) * _stable(prompt, seed, "jpeg-size")))

    def get(
        self, prompt: str, *, seed: int, width: int, height: int, grid: int = 1, caption: str = ""
    ) -> tuple[bytes, bytes]:
        """(jpeg, base64): deterministic in all arguments, padded to :meth:`target_bytes`."""
        # One encoded background per pixel size and grid: a JPEG is encoded whole (0.1-2 s from 1K
        # to 4K), too slow per request; prompt, seed and config travel in a comment instead.
        bg = self._background(width, height, grid, 0, f"nbp_kit emulator {width}x{height}")
        label = _comment(f"nbp_kit emulator: {prompt[:2000]} seed={seed} {caption}".encode("utf-8", "replace"))
        need = self.target_bytes(prompt, seed, width, height) - len(bg) - len(label)
        pads, offset = [], _stable(prompt, seed, "pad") * (len(self._pad) - _COM_MAX)
        while need > 4:
            n = min(_COM_MAX, need - 4)
            start = int(offset) % (len(self._pad) - n)
            pads.append(_comment(self._pad[start : start + n]))
            need -= n + 4
            offset += 7919
        jpeg = bg[:2] + label + b"".join(pads) + bg[2:]
        return jpeg, base64.b64encode(jpeg)

    def signature(self, prompt: str, seed: int, chars: tuple[int, int] = SIGNATURE_CHARS) -> bytes:
        """A base64 ``thoughtSignature`` of a recorded-like length, fixed by (prompt, seed)."""
        lo, hi = chars
        n = max(4, int(lo + (hi - lo) * _stable(prompt, seed, "signature")) // 4 * 4)
        with self._lock:
            if self._signature is None:
                self._signature = base64.b64encode(self._pad[: SIGNATURE_CHARS[1] * 3 // 4 + 3])
            sig = self._signature
        return sig[:n]


#: What each model's answer carries, as the recordings show it: the image format and the
#: ``thoughtSignature`` length range (characters). A profile's model entry may override both
#: (``image_mime``, ``signature_chars``). Models not listed answer PNG with a short signature.
MODEL_ANSWERS: dict[str, dict[str, Any]] = {
    "gemini-3-pro-image": {"image_mime": "image/jpeg", "signature_chars": SIGNATURE_CHARS},
    "gemini-3-pro-image-preview": {"image_mime": "image/jpeg", "signature_chars": SIGNATURE_CHARS},
    "gemini-3.1-flash-image-preview": {"image_mime": "image/jpeg", "signature_chars": (597_616, 597_616)},
    "gemini-3.1-flash-image": {"image_mime": "image/jpeg", "signature_chars": (597_616, 597_616)},
}
_OTHER = {"image_mime": "image/png", "signature_chars": (36, 36)}


def model_answer(profile: dict[str, Any], model: str) -> dict[str, Any]:
    """``{"image_mime": ..., "signature_chars": (lo, hi)}`` for ``model`` (profile entry first)."""
    row = dict(MODEL_ANSWERS.get(model, _OTHER))
    row.update(
        {
            k: v
            for k, v in (profile.get("models", {}).get(model) or {}).items()
            if k in ("image_mime", "signature_chars")
        }
    )
    return row


class Images:
    """The emulator's image source: PNGs (:class:`ImageFactory`) or JPEGs by the model's mime."""

    def __init__(self) -> None:
        self.png = ImageFactory()
        self.jpeg = JpegFactory()

    @property
    def renders(self) -> int:
        return self.png.renders + self.jpeg.renders

    @property
    def hits(self) -> int:
        return self.png.hits

    def get(
        self,
        prompt: str,
        *,
        seed: int,
        width: int,
        height: int,
        grid: int = 1,
        caption: str = "",
        mime: str = "image/png",
    ) -> tuple[bytes, bytes]:
        factory = self.jpeg if mime == "image/jpeg" else self.png
        return factory.get(prompt, seed=seed, width=width, height=height, grid=grid, caption=caption)

    def signature(self, prompt: str, seed: int, chars: tuple[int, int]) -> bytes:
        return self.jpeg.signature(prompt, seed, chars)

    def prewarm(self, width: int, height: int, grid: int = 1) -> None:
        """Build both formats' backgrounds for one pixel size before a run (see ``Emulator.prewarm``)."""
        self.png.prewarm(width, height, grid)
        self.jpeg.get("prewarm", seed=0, width=width, height=height, grid=grid)

    def render(self, prompt: str, *, seed: int, width: int, height: int, grid: int = 1) -> Any:
        return self.png.render(prompt, seed=seed, width=width, height=height, grid=grid)
