"""The emulator's Files API: resumable uploads, metadata, downloads; contents kept on disk.

Wire (as google-genai's ``files.upload`` / ``files.download`` speak it)::

    POST /upload/v1beta/files                      X-Goog-Upload-Protocol: resumable
                                                   X-Goog-Upload-Command: start
                                                   X-Goog-Upload-Header-Content-Length / -Content-Type
         -> 200, x-goog-upload-url: .../upload/v1beta/files?upload_id=ID&upload_protocol=resumable
            x-goog-upload-status: active
    POST <upload url>                              X-Goog-Upload-Command: upload | upload, finalize
                                                   X-Goog-Upload-Offset: bytes received so far
         -> x-goog-upload-status: active (empty body), then final with {"file": {...}}
    GET    /v1beta/files/{id}                      the File resource
    DELETE /v1beta/files/{id}
    GET    /v1beta/files/{id}:download?alt=media   the bytes (also /download/v1beta/files/{id}:download)

Contents live in a temporary folder, never whole in memory: chunks are appended as they
arrive and downloads are streamed. Files expire 48 h (service time) after creation.

>>> store = FileStore(time_scale=1.0)
>>> meta = store.add_generated(b'{"key": "a"}\\n', display_name="out", mime="application/jsonl")
>>> meta["name"].startswith("files/"), meta["sizeBytes"]
(True, '13')
"""

from __future__ import annotations

import base64
import dataclasses
import datetime as _dt
import hashlib
import os
import secrets
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

#: How long a file lives, in service seconds (Google: 48 hours).
FILE_TTL_S = 48 * 3600
#: Largest file the Files API takes (Google: 2 GB).
MAX_FILE_BYTES = 2 * 1024**3
_CHUNK = 1024 * 1024


def rfc3339(epoch_s: float) -> str:
    """Google's timestamp text, e.g. ``2026-01-05T13:00:00.123456Z``."""
    return _dt.datetime.fromtimestamp(epoch_s, _dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def new_id() -> str:
    """A resource id as Google makes them: lowercase letters and digits (the SDK's file-name
    regex accepts only those)."""
    alphabet = "abcdefghijklmnopqrstuvwxyz0123456789"
    return "".join(secrets.choice(alphabet) for _ in range(12))


@dataclasses.dataclass(slots=True)
class _Upload:
    declared_bytes: int
    mime: str
    display_name: str | None
    name: str | None
    path: Path
    received: int = 0


@dataclasses.dataclass(slots=True)
class StoredFile:
    """One file: its metadata and where its bytes are."""

    file_id: str
    path: Path
    size_bytes: int
    mime: str
    display_name: str | None
    sha256_b64: str
    created_at: float  # virtual epoch seconds
    expires_at_mono: float  # monotonic seconds (expiry on the scaled clock)
    source: str  # UPLOADED | GENERATED

    def resource(self, base_url: str = "") -> dict[str, Any]:
        out = {
            "name": f"files/{self.file_id}",
            "mimeType": self.mime,
            "sizeBytes": str(self.size_bytes),
            "createTime": rfc3339(self.created_at),
            "updateTime": rfc3339(self.created_at),
            "expirationTime": rfc3339(self.created_at + FILE_TTL_S),
            "sha256Hash": self.sha256_b64,
            "uri": f"{base_url}/v1beta/files/{self.file_id}",
            "state": "ACTIVE",
            "source": self.source,
        }
        if self.display_name:
            out["displayName"] = self.display_name
        if self.source == "GENERATED":
            out["downloadUri"] = f"{base_url}/v1beta/files/{self.file_id}:download?alt=media"
        return out


class UploadError(Exception):
    """A Files API request the service would refuse: (status, message)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status, self.message = status, message


class FileStore:
    """Uploaded and generated files on disk, with the resumable-upload state machine."""

    def __init__(self, *, time_scale: float, virtual_now: Any = time.time, monotonic: Any = time.monotonic) -> None:
        self.time_scale = time_scale
        self._virtual_now = virtual_now
        self._monotonic = monotonic
        self._dir: tempfile.TemporaryDirectory[str] | None = None
        self._lock = threading.Lock()
        self._uploads: dict[str, _Upload] = {}
        self._files: dict[str, StoredFile] = {}

    @property
    def folder(self) -> Path:
        if self._dir is None:
            self._dir = tempfile.TemporaryDirectory(prefix="nbp-emu-files-")
        return Path(self._dir.name)

    def close(self) -> None:
        if self._dir is not None:
            self._dir.cleanup()
            self._dir = None

    # ---- resumable upload -------------------------------------------------------------
    def start_upload(self, *, declared_bytes: Any, mime: str | None, display_name: str | None, name: str | None) -> str:
        """Open an upload session and return its id."""
        try:
            size = int(declared_bytes)
        except (TypeError, ValueError):
            raise UploadError(
                400, f"X-Goog-Upload-Header-Content-Length is required for a resumable upload (got {declared_bytes!r})"
            ) from None
        if not 0 < size <= MAX_FILE_BYTES:
            raise UploadError(400, f"File size {size} bytes is not accepted; files must be 1 byte to 2 GB.")
        file_id = None
        if name:
            file_id = name.removeprefix("files/")
            if (
                not file_id
                or len(file_id) > 40
                or not all(c.isalnum() and not c.isupper() or c == "-" for c in file_id)
            ):
                raise UploadError(400, f"Invalid file name {name!r}: use up to 40 lowercase letters, digits or dashes.")
            if file_id in self._files:
                raise UploadError(409, f"File files/{file_id} already exists.")
        upload_id = secrets.token_urlsafe(24)
        path = self.folder / f"upload-{upload_id}"
        path.touch()
        with self._lock:
            self._uploads[upload_id] = _Upload(size, mime or "application/octet-stream", display_name, file_id, path)
        return upload_id

    def append(self, upload_id: str, *, offset: Any, chunk: bytes, finalize: bool) -> StoredFile | None:
        """Add one chunk at ``offset``; on finalize, return the stored file."""
        up = self._uploads.get(upload_id)
        if up is None:
            raise UploadError(404, "The upload session was not found or has already been finalized.")
        try:
            at = int(offset)
        except (TypeError, ValueError):
            raise UploadError(400, f"X-Goog-Upload-Offset={offset!r} is not accepted; send the byte offset") from None
        if at != up.received:
            raise UploadError(400, f"X-Goog-Upload-Offset={at} does not match the {up.received} bytes received.")
        if up.received + len(chunk) > up.declared_bytes:
            raise UploadError(
                400, f"Upload exceeds the declared X-Goog-Upload-Header-Content-Length ({up.declared_bytes} bytes)."
            )
        with open(up.path, "ab") as fh:
            fh.write(chunk)
        up.received += len(chunk)
        if not finalize:
            return None
        if up.received != up.declared_bytes:
            raise UploadError(400, f"Upload finalized after {up.received} bytes; {up.declared_bytes} were declared.")
        with self._lock:
            self._uploads.pop(upload_id, None)
        return self._register(up.path, mime=up.mime, display_name=up.display_name, file_id=up.name, source="UPLOADED")

    # ---- generated files (batch results) ----------------------------------------------
    def new_path(self) -> Path:
        return self.folder / f"gen-{secrets.token_hex(8)}"

    def add_generated(
        self,
        data: bytes | None = None,
        *,
        path: Path | None = None,
        display_name: str | None = None,
        mime: str = "application/jsonl",
    ) -> dict[str, Any]:
        """Register a file the service wrote (bytes, or a finished file at ``path``)."""
        if path is None:
            path = self.new_path()
            path.write_bytes(data or b"")
        return self._register(path, mime=mime, display_name=display_name, file_id=None, source="GENERATED").resource()

    def _register(
        self, path: Path, *, mime: str, display_name: str | None, file_id: str | None, source: str
    ) -> StoredFile:
        digest = hashlib.sha256()
        with open(path, "rb") as fh:
            for block in iter(lambda: fh.read(_CHUNK), b""):
                digest.update(block)
        file_id = file_id or new_id()
        final = self.folder / f"file-{file_id}"
        os.replace(path, final)
        stored = StoredFile(
            file_id,
            final,
            final.stat().st_size,
            mime,
            display_name,
            base64.b64encode(digest.hexdigest().encode()).decode(),
            self._virtual_now(),
            self._monotonic() + FILE_TTL_S * self.time_scale,
            source,
        )
        with self._lock:
            self._files[file_id] = stored
        return stored

    # ---- reading ----------------------------------------------------------------------
    def get(self, file_id: str) -> StoredFile | None:
        """The file, or None when unknown or expired (an expired file is removed)."""
        with self._lock:
            stored = self._files.get(file_id)
            if stored is not None and self._monotonic() >= stored.expires_at_mono:
                self._files.pop(file_id, None)
                stored.path.unlink(missing_ok=True)
                return None
        return stored

    def delete(self, file_id: str) -> bool:
        with self._lock:
            stored = self._files.pop(file_id, None)
        if stored is not None:
            stored.path.unlink(missing_ok=True)
        return stored is not None

    def iter_lines(self, file_id: str) -> Iterator[bytes]:
        """The file's lines, one at a time (batch input JSONL)."""
        stored = self.get(file_id)
        if stored is None:
            return
        with open(stored.path, "rb") as fh:
            yield from fh

    @staticmethod
    def iter_bytes(stored: StoredFile) -> Iterator[bytes]:
        with open(stored.path, "rb") as fh:
            yield from iter(lambda: fh.read(_CHUNK), b"")
