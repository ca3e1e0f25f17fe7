"""Images: strict base64, verification with Pillow, atomic save, thumbnails, grid tiles."""

from __future__ import annotations

import base64
import hashlib
import io
import os

import pytest
from PIL import Image

from nbp_kit.client.images import (
    decode_base64,
    inspect_image,
    save_atomic,
    save_tiles,
    size_matches,
    split_grid,
    thumbnail,
)
from nbp_kit.errors import BadPayload, ConfigError


def _png(w: int, h: int, color: str = "orange") -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (w, h), color).save(buf, "PNG")
    return buf.getvalue()


def test_roundtrip_and_inspect() -> None:
    raw = _png(64, 32)
    info = inspect_image(decode_base64(base64.b64encode(raw).decode()))
    assert (info.mime, info.width, info.height, info.bytes_decoded) == ("image/png", 64, 32, len(raw))
    assert info.sha256 == hashlib.sha256(raw).hexdigest() and info.ext == ".png"
    assert size_matches(info, (64, 32)) and not size_matches(info, (32, 64))


def test_jpeg_identified() -> None:
    buf = io.BytesIO()
    Image.new("RGB", (10, 10)).save(buf, "JPEG")
    assert inspect_image(buf.getvalue()).mime == "image/jpeg"


def test_base64_with_line_breaks_accepted() -> None:
    raw = _png(8, 8)
    wrapped = base64.encodebytes(raw)  # MIME style, newline every 76 chars
    assert decode_base64(wrapped) == raw


@pytest.mark.parametrize("bad", ["not base64!!", "QUJD$", "", "é", "QUJ"])
def test_bad_base64(bad: str) -> None:
    with pytest.raises(BadPayload):
        decode_base64(bad)


@pytest.mark.parametrize("raw", [b"GIF", b"\x89PNG\r\n\x1a\n" + b"\x00" * 30, _png(16, 16)[:-20], b"<html>"])
def test_unreadable_images(raw: bytes) -> None:
    with pytest.raises(BadPayload):
        inspect_image(raw)


def test_save_atomic(tmp_path) -> None:
    raw = _png(8, 8)
    path = tmp_path / "run" / "a.png"
    sha = save_atomic(path, raw)
    assert path.read_bytes() == raw and sha == hashlib.sha256(raw).hexdigest()
    assert os.listdir(path.parent) == ["a.png"]  # no temp file left behind
    save_atomic(path, b"new")  # replace
    assert path.read_bytes() == b"new"


def test_save_atomic_failure_leaves_nothing(tmp_path, monkeypatch) -> None:
    def boom(*a, **k):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", boom)
    with pytest.raises(OSError):
        save_atomic(tmp_path / "x.png", b"data")
    assert os.listdir(tmp_path) == []


def test_thumbnail_small() -> None:
    # noise compresses badly: the size limit really has to be enforced
    import numpy as np

    arr = np.random.default_rng(0).integers(0, 255, (2048, 2048, 3), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, "PNG")
    thumb = thumbnail(buf.getvalue(), max_bytes=20_000)
    assert len(thumb) <= 20_000
    with Image.open(io.BytesIO(thumb)) as im:
        assert im.format == "JPEG" and max(im.size) <= 384


def test_thumbnail_bad_input() -> None:
    with pytest.raises(ConfigError, match="max_bytes"):
        thumbnail(_png(8, 8), max_bytes=10)
    with pytest.raises(BadPayload):
        thumbnail(b"nope")


def test_split_grid_tiles(tmp_path) -> None:
    img = Image.new("RGB", (20, 20))
    colours = [(255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 255, 0)]
    for i, c in enumerate(colours):
        img.paste(c, (i % 2 * 10, i // 2 * 10, i % 2 * 10 + 10, i // 2 * 10 + 10))
    buf = io.BytesIO()
    img.save(buf, "PNG")
    tiles = split_grid(buf.getvalue(), "2x2")
    assert len(tiles) == 4
    for tile, colour in zip(tiles, colours):
        with Image.open(io.BytesIO(tile)) as t:
            assert t.size == (10, 10) and t.getpixel((5, 5)) == colour
    paths = save_tiles(tmp_path / "abc.png", tiles)
    assert [os.path.basename(p) for p in paths] == ["abc_t0.png", "abc_t1.png", "abc_t2.png", "abc_t3.png"]
    assert split_grid(buf.getvalue(), "1x1") == [buf.getvalue()]
    assert len(split_grid(_png(30, 30), "3x3")) == 9


def test_split_grid_bad_input() -> None:
    with pytest.raises(ConfigError, match="grid='2by2'"):
        split_grid(_png(8, 8), "2by2")
