"""Server-sent events: an incremental, linear-time parser for ``alt=sse`` streams."""

from __future__ import annotations

from ..errors import BadPayload

#: The largest event the parser holds (an inline 4K image is ~15 MB): also the fetched-image limit.
MAX_EVENT_BYTES = 256 * 1024 * 1024


def _find(buf: bytearray, sep: bytes, start: int, none: int) -> int:
    i = buf.find(sep, start)
    return none if i < 0 else i


class SSEParser:
    """Incremental ``text/event-stream`` parser over bytes.

    Feeding the same bytes whole or in any pieces gives the same events (lines are split
    on bytes, so a UTF-8 character cut between chunks is never decoded half-way).

    >>> p = SSEParser()
    >>> p.feed(b'data: {"a"') + p.feed(b': 1}\\r\\n\\r\\n')
    ['{"a": 1}']
    """

    def __init__(self, *, max_event_bytes: int = MAX_EVENT_BYTES) -> None:
        self._buf = bytearray()
        self._data: list[bytes] = []
        self._pending_cr = False
        self._max = max_event_bytes
        self._size = 0

    def feed(self, chunk: bytes) -> list[str]:
        """Add bytes; return the ``data`` of every event completed by them."""
        if self._pending_cr and chunk[:1] == b"\n":
            chunk = chunk[1:]  # the LF of a CRLF split across chunks
        self._pending_cr = False
        events: list[str] = []
        buf = self._buf
        pos = len(buf)  # the kept tail never holds a line end: scan only the new bytes
        buf += chunk
        start = 0
        n = len(buf)
        # Next LF / CR (n = none), cached so no byte is scanned twice (no quadratic rescans).
        next_lf, next_cr = _find(buf, b"\n", pos, n), _find(buf, b"\r", pos, n)
        while next_lf < n or next_cr < n:
            i = min(next_lf, next_cr)
            self._line(bytes(buf[start:i]), events)
            if i == next_cr:
                if i + 1 < n:
                    if buf[i + 1] == 0x0A:
                        i += 1
                else:
                    self._pending_cr = True
            start = i + 1
            if next_lf < start:
                next_lf = _find(buf, b"\n", start, n)
            if next_cr < start:
                next_cr = _find(buf, b"\r", start, n)
        del buf[:start]
        if len(buf) + self._size > self._max:
            raise BadPayload(f"server-sent event larger than {self._max} bytes", kind="bad_payload")
        return events

    @property
    def idle(self) -> bool:
        """True between events: no partial line or event is waiting for more bytes."""
        return not self._buf and not self._data and not self._pending_cr

    def close(self) -> list[str]:
        """End of stream: a final event without its blank line still counts."""
        events: list[str] = []
        if self._buf:
            self._line(bytes(self._buf), events)
            self._buf.clear()
        self._line(b"", events)
        return events

    def _line(self, line: bytes, events: list[str]) -> None:
        if not line:
            if self._data:
                raw = b"\n".join(self._data)
                self._data = []
                self._size = 0
                try:
                    events.append(raw.decode("utf-8"))
                except UnicodeDecodeError as exc:
                    raise BadPayload(f"server-sent event is not UTF-8: {exc}", kind="bad_payload") from exc
            return
        if line.startswith(b":"):
            return  # comment / keep-alive
        field, _, value = line.partition(b":")
        if value.startswith(b" "):
            value = value[1:]
        if field == b"data":
            self._data.append(value)
            self._size += len(value)
        # event:, id:, retry: and unknown fields carry nothing Gemini uses
