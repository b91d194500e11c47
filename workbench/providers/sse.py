"""Incremental Server-Sent Events parser (WHATWG HTML, "event stream interpretation").

Fed raw text as it arrives; yields complete events. Written by hand rather than taken from a
library so that the probe sees each event the moment its blank line arrives (timing depends on
it) and so malformed streams are reported, not silently skipped.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["SSEDecoder", "SSEEvent"]


@dataclass(slots=True)
class SSEEvent:
    event: str  # "message" when the stream names none
    data: str
    id: str | None = None
    retry: int | None = None


class SSEDecoder:
    """Stateful decoder: `feed(text)` returns the events completed by that text."""

    __slots__ = ("_buf", "_data", "_event", "_id", "_pending_cr", "_retry")

    def __init__(self) -> None:
        self._buf = ""
        self._event = ""
        self._data: list[str] = []
        self._id: str | None = None
        self._retry: int | None = None
        self._pending_cr = False

    def feed(self, text: str) -> list[SSEEvent]:
        if self._pending_cr and text.startswith("\n"):
            text = text[1:]  # the \n of a \r\n split across two reads
        self._pending_cr = False
        if not text:
            return []
        buf = self._buf + text
        if "\r" in buf:
            if buf.endswith("\r"):
                self._pending_cr = True
            buf = buf.replace("\r\n", "\n").replace("\r", "\n")
        events: list[SSEEvent] = []
        start = 0
        while True:
            nl = buf.find("\n", start)
            if nl < 0:
                break
            line = buf[start:nl]
            start = nl + 1
            ev = self._line(line)
            if ev is not None:
                events.append(ev)
        self._buf = buf[start:]
        return events

    def flush(self) -> list[SSEEvent]:
        """End of stream: a final line without its newline still counts; an event without its
        blank line is dispatched too (servers often omit the last one)."""
        events: list[SSEEvent] = []
        if self._buf:
            ev = self._line(self._buf)
            self._buf = ""
            if ev is not None:
                events.append(ev)
        ev = self._line("")
        if ev is not None:
            events.append(ev)
        return events

    @property
    def has_partial(self) -> bool:
        """True when bytes of an unfinished event are buffered (a truncated stream)."""
        return bool(self._buf) or bool(self._data)

    def _line(self, line: str) -> SSEEvent | None:
        if not line:
            if not self._data and not self._event:
                return None
            ev = SSEEvent(self._event or "message", "\n".join(self._data), self._id, self._retry)
            self._event = ""
            self._data = []
            self._retry = None
            return ev
        if line.startswith(":"):
            return None
        name, sep, value = line.partition(":")
        if sep and value.startswith(" "):
            value = value[1:]
        if name == "data":
            self._data.append(value)
        elif name == "event":
            self._event = value
        elif name == "id":
            self._id = value
        elif name == "retry" and value.isdigit():
            self._retry = int(value)
        return None
