"""Real PNGs at the exact official pixel sizes, cheap enough to serve at line rate.

Each image is a noisy colour gradient (so its PNG has the byte size of a real photo-like
image) with horizontal *label bands* that show the prompt, seed and config in large type. A
grid request gets one band per tile row and a different palette per tile, so tiles differ.

Why it is cheap: a PNG's pixels are one zlib stream, and a deflate stream can be cut into
independently compressed pieces (each ended with a full flush) and concatenated. The noisy
background pieces are compressed once per (pixel size, grid, palette) and cached; a request
only draws and compresses its low-entropy label bands (a few ms), and the zlib checksum is
stitched together with ``adler32_combine``.

>>> png = render_png("an orange cat", seed=1, width=1024, height=1024)
>>> png[:8] == PNG_SIGNATURE
True
"""

from __future__ import annotations

import base64
import collections
import dataclasses
import hashlib
import struct
import threading
import zlib
from typing import Any

import numpy as np
from PIL import Image, ImageDraw, ImageFont

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
#: Distinct background palettes; the palette is picked from (prompt, seed).
PALETTES = 4
# Noise amplitude (values 0..N-1 added to the gradient). The PNG size is then tuned by
# repeating some noise rows (deflate finds the repeat one row back and stores it for ~nothing).
_NOISE_LEVELS = 4
_NOISE_POOL_BYTES = 4 << 20
_ADLER_BASE = 65521

_COLOURS = [
    ((32, 64, 160), (200, 120, 40)),
    ((20, 120, 90), (230, 200, 60)),
    ((120, 30, 110), (60, 170, 220)),
    ((160, 40, 40), (40, 60, 90)),
    ((60, 60, 60), (180, 220, 120)),
    ((200, 90, 20), (30, 30, 120)),
    ((10, 90, 140), (220, 100, 160)),
    ((90, 130, 20), (120, 40, 40)),
    ((140, 110, 60), (20, 140, 160)),
]


def adler32_combine(adler1: int, adler2: int, len2: int) -> int:
    """Adler-32 of A+B from the checksums of A and B (zlib's algorithm)."""
    rem = len2 % _ADLER_BASE
    sum1 = adler1 & 0xFFFF
    sum2 = (rem * sum1) % _ADLER_BASE
    sum1 += (adler2 & 0xFFFF) + _ADLER_BASE - 1
    sum2 += ((adler1 >> 16) & 0xFFFF) + ((adler2 >> 16) & 0xFFFF) + _ADLER_BASE - rem
    sum1 %= _ADLER_BASE
    sum2 %= _ADLER_BASE
    return sum1 | (sum2 << 16)


@dataclasses.dataclass(frozen=True, slots=True)
class _Piece:
    """One independently deflated run of scanlines."""

    deflated: bytes
    raw_len: int
    adler: int


def _deflate(raw: bytes, level: int) -> _Piece:
    comp = zlib.compressobj(level, zlib.DEFLATED, -15)
    data = comp.compress(raw) + comp.flush(zlib.Z_FULL_FLUSH)
    return _Piece(data, len(raw), zlib.adler32(raw))


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def _layout(height: int, grid_n: int) -> list[tuple[int, int, bool]]:
    """Row ranges ``(start, stop, is_label)`` covering the image; one label band per tile row."""
    rows: list[tuple[int, int, bool]] = []
    tile_h = height / grid_n
    band_h = max(48, int(tile_h * 0.22))
    y = 0
    for r in range(grid_n):
        top = int(r * tile_h)
        start = top + int((tile_h - band_h) / 2)
        if start > y:
            rows.append((y, start, False))
        rows.append((start, start + band_h, True))
        y = start + band_h
    if y < height:
        rows.append((y, height, False))
    return rows


def _with_filter_bytes(rgb: np.ndarray) -> bytes:
    h, w, _ = rgb.shape
    out = np.zeros((h, w * 3 + 1), dtype=np.uint8)  # filter type 0 (None) on every scanline
    out[:, 1:] = rgb.reshape(h, w * 3)
    return out.tobytes()


class _NoisePool:
    """A few MB of seeded noise; rows take slices at random offsets far apart, so deflate
    finds no repeats inside its 32 KB window and the PNG keeps a photo-like size."""

    def __init__(self) -> None:
        self.pool = np.random.default_rng(20260101).integers(0, _NOISE_LEVELS, _NOISE_POOL_BYTES, dtype=np.uint8)

    def rows(self, h: int, row_len: int, rng: np.random.Generator, keep: float) -> np.ndarray:
        starts = rng.integers(0, len(self.pool) - row_len, h)
        repeat = rng.random(h) >= keep
        repeat[0] = False
        # A repeated row reuses the previous row's offset (runs of repeats chain back).
        last = np.maximum.accumulate(np.where(repeat, 0, np.arange(h)))
        starts = starts[last]
        idx = starts[:, None] + np.arange(row_len)[None, :]
        return self.pool[idx]


def _keep_fraction(width: int, height: int) -> float:
    """Share of unique noise rows giving a photo-like PNG size: compressed/raw falls from
    ~0.32 at 1 Mpx (1K ~1 MB) to ~0.28 at 4 Mpx (2K ~3.5 MB) and ~0.19 at 16 Mpx (4K ~9 MB)."""
    mpx = width * height / 1e6
    target = float(np.interp(np.log2(mpx), [0.0, 2.0, 4.0], [0.32, 0.28, 0.19]))
    return min(1.0, target / _UNIQUE_ROW_RATIO)


# compressed/raw of a whole image whose noise rows are all unique (measured at 4 levels).
_UNIQUE_ROW_RATIO = 0.40


def _tile_palettes(palette: int, grid_n: int) -> list[list[int]]:
    return [[(palette + r * grid_n + c) % len(_COLOURS) for c in range(grid_n)] for r in range(grid_n)]


def _background_rows(
    width: int, y0: int, y1: int, height: int, grid_n: int, palette: int, noise: _NoisePool, rng: np.random.Generator
) -> np.ndarray:
    """RGB rows y0..y1 of the noisy gradient (each tile its own palette)."""
    h = y1 - y0
    ys = (np.arange(y0, y1, dtype=np.float32) / max(1, height - 1))[:, None]
    xs = (np.arange(width, dtype=np.float32) / max(1, width - 1))[None, :]
    t = np.clip(0.6 * xs + 0.4 * ys, 0, 1)
    out = np.empty((h, width, 3), dtype=np.uint8)
    pals = _tile_palettes(palette, grid_n)
    tile_w = width / grid_n
    tile_h = height / grid_n
    row_tile = np.minimum((np.arange(y0, y1) / tile_h).astype(int), grid_n - 1)
    for r in np.unique(row_tile):
        sel = row_tile == r
        for c in range(grid_n):
            x0, x1 = int(c * tile_w), int((c + 1) * tile_w)
            a, b = _COLOURS[pals[r][c]]
            tt = t[sel, x0:x1]
            for ch in range(3):
                out[sel, x0:x1, ch] = (a[ch] + (b[ch] - a[ch]) * tt).astype(np.uint8)
    flat = out.reshape(h, width * 3)
    np.add(flat, noise.rows(h, width * 3, rng, _keep_fraction(width, height)), out=flat, casting="unsafe")
    # Palette channels stay <= 230 and noise < 25, so the uint8 sum cannot wrap.
    return flat.reshape(h, width, 3)


_FONT_CACHE: dict[int, Any] = {}


def _font(size: int) -> Any:
    if size not in _FONT_CACHE:
        try:
            _FONT_CACHE[size] = ImageFont.load_default(size=size)
        except TypeError:  # Pillow without FreeType: fixed bitmap font
            _FONT_CACHE[size] = ImageFont.load_default()
    return _FONT_CACHE[size]


def _wrap(text: str, max_chars: int, max_lines: int) -> list[str]:
    words, lines, cur = text.split(), [], ""
    for word in words:
        if len(cur) + len(word) + 1 > max_chars and cur:
            lines.append(cur)
            cur = word[:max_chars]
        else:
            cur = f"{cur} {word}".strip()
    if cur:
        lines.append(cur)
    if len(lines) > max_lines:
        lines = lines[:max_lines]
        lines[-1] = lines[-1][: max(0, max_chars - 3)] + "..."
    return lines or [""]


def _label_band(width: int, band_h: int, grid_n: int, row: int, palette: int, prompt: str, caption: str) -> np.ndarray:
    img = Image.new("RGB", (width, band_h), (245, 242, 235))
    draw = ImageDraw.Draw(img)
    tile_w = width / grid_n
    pals = _tile_palettes(palette, grid_n)
    for c in range(grid_n):
        x0 = int(c * tile_w)
        colour = _COLOURS[pals[row][c]][0]
        draw.rectangle([x0, 0, x0 + max(6, int(tile_w * 0.02)), band_h], fill=colour)
        size = max(10, int(min(band_h / 5.5, tile_w / 22)))
        font, small = _font(size), _font(max(8, int(size * 0.6)))
        tag = f"#{row * grid_n + c + 1} " if grid_n > 1 else ""
        lines = _wrap(tag + prompt, max_chars=max(8, int(tile_w / (size * 0.55))), max_lines=3)
        y = int(band_h * 0.08)
        for line in lines:
            draw.text((x0 + int(tile_w * 0.05), y), line, fill=(20, 20, 20), font=font)
            y += int(size * 1.15)
        draw.text((x0 + int(tile_w * 0.05), y + int(size * 0.2)), caption, fill=colour, font=small)
    return np.asarray(img)


class ImageFactory:
    """Renders and caches PNGs. Thread-safe; CPU work belongs in a worker thread.

    >>> f = ImageFactory()
    >>> png, b64 = f.get("a cat", seed=0, width=848, height=1264, grid=1, caption="1K 2:3")
    >>> len(b64) > len(png)
    True
    """

    def __init__(self, *, max_backgrounds: int = 24, max_images_bytes: int = 512 << 20) -> None:
        self._noise: _NoisePool | None = None
        self._bg: collections.OrderedDict[tuple[int, int, int, int], list[_Piece | None]] = collections.OrderedDict()
        self._img: collections.OrderedDict[tuple[Any, ...], tuple[bytes, bytes]] = collections.OrderedDict()
        self._img_bytes = 0
        self._max_bg = max_backgrounds
        self._max_img_bytes = max_images_bytes
        self._lock = threading.Lock()
        self._bg_locks: dict[tuple[int, int, int, int], threading.Lock] = {}
        self.renders = 0
        self.hits = 0

    def _background(self, width: int, height: int, grid_n: int, palette: int) -> list[_Piece | None]:
        key = (width, height, grid_n, palette)
        with self._lock:
            if key in self._bg:
                self._bg.move_to_end(key)
                return self._bg[key]
            if self._noise is None:
                self._noise = _NoisePool()
            lock = self._bg_locks.setdefault(key, threading.Lock())
        with lock:  # one thread builds a background; others wait for it instead of repeating it
            with self._lock:
                if key in self._bg:
                    return self._bg[key]
            rng = np.random.default_rng([width, height, grid_n, palette])
            pieces: list[_Piece | None] = []
            for y0, y1, is_label in _layout(height, grid_n):
                if is_label:
                    pieces.append(None)
                    continue
                # Compress in slabs so peak memory stays small at 4K.
                step = max(1, (8 << 20) // (width * 3))
                comp = zlib.compressobj(1, zlib.DEFLATED, -15)
                parts, raw_len, adler = [], 0, 1
                for s in range(y0, y1, step):
                    raw = _with_filter_bytes(
                        _background_rows(width, s, min(y1, s + step), height, grid_n, palette, self._noise, rng)
                    )
                    parts.append(comp.compress(raw))
                    adler = zlib.adler32(raw, adler)
                    raw_len += len(raw)
                parts.append(comp.flush(zlib.Z_FULL_FLUSH))
                pieces.append(_Piece(b"".join(parts), raw_len, adler))
            with self._lock:
                self._bg[key] = pieces
                while len(self._bg) > self._max_bg:
                    self._bg.popitem(last=False)
            return pieces

    def prewarm(self, width: int, height: int, grid: int = 1) -> None:
        """Build the backgrounds of one pixel size for every palette now, so a request of
        that size later only draws its label bands (a few ms) inside its generation time."""
        for palette in range(PALETTES):
            self._background(width, height, grid, palette)

    def render(self, prompt: str, *, seed: int, width: int, height: int, grid: int = 1, caption: str = "") -> bytes:
        """PNG bytes, deterministic in (prompt, seed, width, height, grid, caption)."""
        palette = int.from_bytes(hashlib.sha256(f"{prompt}\x00{seed}".encode()).digest()[:4], "big") % PALETTES
        pieces = self._background(width, height, grid, palette)
        label = f"{caption}  seed={seed}".strip()
        idat = [b"\x78\x01"]
        adler = 1
        row = 0
        for (y0, y1, is_label), piece in zip(_layout(height, grid), pieces, strict=True):
            if is_label:
                band = _label_band(width, y1 - y0, grid, row, palette, prompt, label)
                piece = _deflate(_with_filter_bytes(band), 1)
                row += 1
            assert piece is not None
            idat.append(piece.deflated)
            adler = adler32_combine(adler, piece.adler, piece.raw_len)
        idat.append(b"\x03\x00" + struct.pack(">I", adler))
        ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
        self.renders += 1
        return PNG_SIGNATURE + _chunk(b"IHDR", ihdr) + b"".join(_chunk(b"IDAT", d) for d in idat) + _chunk(b"IEND", b"")

    def get(
        self, prompt: str, *, seed: int, width: int, height: int, grid: int = 1, caption: str = ""
    ) -> tuple[bytes, bytes]:
        """(png, base64) from the cache, rendering on a miss."""
        key = (prompt, seed, width, height, grid, caption)
        with self._lock:
            hit = self._img.get(key)
            if hit is not None:
                self._img.move_to_end(key)
                self.hits += 1
                return hit
        png = self.render(prompt, seed=seed, width=width, height=height, grid=grid, caption=caption)
        entry = (png, base64.b64encode(png))
        with self._lock:
            if key not in self._img:
                self._img[key] = entry
                self._img_bytes += len(entry[0]) + len(entry[1])
            while self._img_bytes > self._max_img_bytes and len(self._img) > 1:
                _, (p, b) = self._img.popitem(last=False)
                self._img_bytes -= len(p) + len(b)
        return entry


def render_png(prompt: str, *, seed: int, width: int, height: int, grid: int = 1, caption: str = "") -> bytes:
    """One PNG without a shared cache (tests and examples)."""
    return ImageFactory().render(prompt, seed=seed, width=width, height=height, grid=grid, caption=caption)
