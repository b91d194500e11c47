"""Reading one HTTP/1.1 request off an asyncio stream: what the local test servers share.

The synthetic (known-truth) server and the fault server are deliberately tiny raw-socket
servers — a framework would be slower than the clients they measure and would hide the faults
they inject — and this is the one place they parse a request head.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

__all__ = ["Request", "read_request"]


@dataclass(frozen=True, slots=True)
class Request:
    method: str
    path: str  # without the query
    query: str
    headers: dict[str, str]  # lower-case names
    body: bytes
    keep_alive: bool


async def read_request(reader: asyncio.StreamReader) -> Request | None:
    """The next request on this connection, or None when the client closed it (or sent garbage)."""
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
        return None
    lines = head.decode("latin-1").split("\r\n")
    parts = lines[0].split(" ")
    if len(parts) < 2:
        return None
    headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:] if line)}
    length = int(headers.get("content-length") or 0)
    body = await reader.readexactly(length) if length else b""
    path, _, query = parts[1].partition("?")
    keep_alive = not lines[0].endswith("HTTP/1.0") and headers.get("connection", "").lower() != "close"
    return Request(parts[0], path, query, headers, body, keep_alive)
