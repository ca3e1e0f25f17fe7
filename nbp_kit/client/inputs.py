"""Reference images for editing: paths, bytes or PIL images, checked and encoded before sending.

:func:`load_input_images` turns what the user passed as ``images=[...]`` into
:class:`InputImage` values (raw bytes, mime, pixel size), refusing bad input before any
request: an unsupported type, more than :data:`MAX_INPUT_IMAGES` images, a file that cannot
be read, or a request over the inline cap (:data:`INLINE_REQUEST_LIMIT_BYTES`, base64
included), with the advice to upload through the Files API instead::

    >>> import io
    >>> from PIL import Image
    >>> buf = io.BytesIO(); Image.new("RGB", (64, 32)).save(buf, "PNG")
    >>> [img] = load_input_images([buf.getvalue()])
    >>> img.mime, img.width, img.height, img.pixels
    ('image/png', 64, 32, 2048)
"""

from __future__ import annotations

import base64
import dataclasses
import io
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..errors import ConfigError

#: The service accepts at most this many reference images in one request (Gemini 3 Pro Image).
MAX_INPUT_IMAGES = 14
#: The whole inline request (prompt, base64 images, history) must stay under 20 MB.
INLINE_REQUEST_LIMIT_BYTES = 20 * 1000 * 1000
#: Input types the Gemini API documents for image understanding and editing.
ACCEPTED_MIMES = ("image/png", "image/jpeg", "image/webp", "image/heic", "image/heif")

_PIL_TO_MIME = {"PNG": "image/png", "JPEG": "image/jpeg", "WEBP": "image/webp", "HEIF": "image/heif"}
_JSON_OVERHEAD_BYTES = 2048  # generationConfig, roles, keys: generous, so the check errs on the safe side


@dataclasses.dataclass(frozen=True, slots=True)
class InputImage:
    """One reference image as it will be sent (``data`` is the raw file, not base64)."""

    data: bytes = dataclasses.field(repr=False)
    mime: str
    width: int
    height: int
    source: str  # "path:<name>", "bytes" or "PIL": for messages, never the content

    @property
    def pixels(self) -> int:
        return self.width * self.height

    @property
    def b64_len(self) -> int:
        return 4 * math.ceil(len(self.data) / 3)

    def b64(self) -> str:
        return base64.b64encode(self.data).decode("ascii")

    def part(self) -> dict[str, Any]:
        """The Gemini ``inlineData`` part."""
        return {"inlineData": {"mimeType": self.mime, "data": self.b64()}}


def sniff_mime(data: bytes) -> str | None:
    """The image type from the file's first bytes (``None`` when it is not an image we know).

    >>> sniff_mime(b"\\x89PNG\\r\\n\\x1a\\n...."), sniff_mime(b"GIF89a....")
    ('image/png', 'image/gif')
    """
    head = bytes(data[:16])
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if head.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "image/webp"
    if head[4:8] == b"ftyp" and head[8:12] in (b"heic", b"heix", b"hevc", b"heim", b"heis"):
        return "image/heic"
    if head[4:8] == b"ftyp" and head[8:12] in (b"mif1", b"msf1"):
        return "image/heif"
    if head.startswith((b"GIF87a", b"GIF89a")):
        return "image/gif"
    if head.startswith(b"BM"):
        return "image/bmp"
    if head.startswith((b"II*\x00", b"MM\x00*")):
        return "image/tiff"
    return None


def _refuse(index: int, value: str, why: str) -> ConfigError:
    return ConfigError(
        f"images[{index}]={value} is not accepted: {why}; use a path, bytes or a PIL image "
        f"of type {', '.join(ACCEPTED_MIMES)}"
    )


def _load_one(index: int, item: Any) -> InputImage:
    if isinstance(item, InputImage):
        return item
    if isinstance(item, (str, Path)):
        path = Path(item)
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise _refuse(index, repr(str(item)), f"the file cannot be read ({exc.strerror or exc})") from None
        source = f"path:{path.name}"
        shown = repr(str(item))
    elif isinstance(item, (bytes, bytearray, memoryview)):
        data, source, shown = bytes(item), "bytes", f"<{len(item)} bytes>"
    elif type(item).__module__.startswith("PIL.") and hasattr(item, "save"):
        buf = io.BytesIO()
        try:
            item.save(buf, format="PNG")
        except (OSError, ValueError) as exc:
            raise _refuse(
                index, f"<PIL image {getattr(item, 'mode', '?')}>", f"it cannot be saved as PNG ({exc})"
            ) from None
        data, source, shown = buf.getvalue(), "PIL", f"<PIL image {item.size[0]}x{item.size[1]}>"
    else:
        raise _refuse(index, f"{type(item).__name__}", "unsupported type")
    mime = sniff_mime(data)
    if mime not in ACCEPTED_MIMES:
        raise _refuse(index, shown, f"its type is {mime or 'not an image'}")
    width, height = _pixel_size(data, mime)
    if width is None:
        raise _refuse(index, shown, f"it does not decode as {mime}")
    return InputImage(data=data, mime=mime, width=width, height=height or 0, source=source)


def _pixel_size(data: bytes, mime: str) -> tuple[int | None, int | None]:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(data)) as im:  # reads the header only
            return int(im.size[0]), int(im.size[1])
    except (UnidentifiedImageError, OSError, ValueError):
        if mime in ("image/heic", "image/heif"):  # no HEIF plugin installed: trust the header, size unknown
            return 0, 0
        return None, None


def load_input_images(images: Any) -> tuple[InputImage, ...]:
    """Check and load ``images`` (a list of paths, bytes or PIL images); raises ConfigError."""
    if images is None:
        return ()
    if isinstance(images, (str, Path, bytes, bytearray)) or not isinstance(images, Sequence):
        raise ConfigError(f"images={_short(images)} is not accepted; use a list of paths, bytes or PIL images")
    if len(images) > MAX_INPUT_IMAGES:
        raise ConfigError(
            f"images=<{len(images)} images> is not accepted; the service takes at most "
            f"{MAX_INPUT_IMAGES} reference images per request"
        )
    return tuple(_load_one(i, item) for i, item in enumerate(images))


def inline_request_bytes(prompt: str, images: Sequence[InputImage], history_bytes: int = 0) -> int:
    """An upper estimate of the JSON request size with these images inline."""
    return len(prompt.encode()) + sum(img.b64_len + 64 for img in images) + history_bytes + _JSON_OVERHEAD_BYTES


def check_inline_size(prompt: str, images: Sequence[InputImage], history_bytes: int = 0) -> int:
    """Refuse a request that would pass the 20 MB inline cap (before sending); return its size."""
    size = inline_request_bytes(prompt, images, history_bytes)
    if size > INLINE_REQUEST_LIMIT_BYTES:
        raw = sum(len(img.data) for img in images)
        raise ConfigError(
            f"images=<{len(images)} images, {raw / 1e6:.1f} MB> is not accepted inline: the request would be "
            f"{size / 1e6:.1f} MB with base64 (and history), over the {INLINE_REQUEST_LIMIT_BYTES / 1e6:.0f} MB "
            "inline limit; downscale the references or upload them once through the Files API and pass their URIs"
        )
    return size


def upload_transport(send_buffer_bytes: int, *, http2: bool, verify: Any, limits: Any) -> Any:
    """An httpx2 transport whose sockets keep at most ``send_buffer_bytes`` unsent in the kernel.

    By default Linux grows a socket's send buffer up to ``net.ipv4.tcp_wmem`` (4 MB is common):
    that much of an upload is "sent" as soon as it is copied into the kernel, so ``send_s``
    ends early and the rest of the upload shows up in ``wait_s``. A small buffer makes
    ``send_s`` the upload as the link carried it; below the bandwidth-delay product it also
    slows uploads, so it is a measuring setting (``Client(send_buffer_bytes=...)``), off by default.
    """
    import socket

    import httpx2

    return httpx2.AsyncHTTPTransport(
        http2=http2,
        verify=verify,
        limits=limits,
        socket_options=[(socket.SOL_SOCKET, socket.SO_SNDBUF, send_buffer_bytes)],
    )


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


__all__ = [
    "ACCEPTED_MIMES",
    "INLINE_REQUEST_LIMIT_BYTES",
    "MAX_INPUT_IMAGES",
    "InputImage",
    "check_inline_size",
    "inline_request_bytes",
    "load_input_images",
    "sniff_mime",
]
