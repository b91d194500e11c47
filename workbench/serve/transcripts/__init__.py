"""Real wire bytes of hosted APIs, replayed by the mock server (see README.md beside this file for
where each one comes from).

Two kinds, by file name:
  `*.sse`   a streamed 200 answer, byte for byte: SSE events separated by blank lines. Replayed
            one event per piece of the scenario's timing (the first after `ttft_s`, the rest
            `itl_s` apart), so a client's TTFT lands on the first event that carries visible text.
  `*.json`  a whole (non-streamed) answer: `{"status": int, "headers": {...}, "body": <the
            provider's JSON>}` — an HTTP error, or a 200 that is no answer (a refusal, a block).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["DIR", "ErrorTranscript", "StreamTranscript", "error", "names", "stream"]

DIR = Path(__file__).resolve().parent


@dataclass(frozen=True)
class StreamTranscript:
    """A recorded stream: its events as raw bytes, each ending in its blank line."""

    name: str
    events: tuple[bytes, ...]


@dataclass(frozen=True)
class ErrorTranscript:
    """A recorded HTTP error: status, headers and body as the provider sent them."""

    name: str
    status: int
    body: Any
    headers: dict[str, str] = field(default_factory=dict)


def names() -> list[str]:
    """Every transcript's name (file name without the suffix)."""
    return sorted(p.stem for p in DIR.iterdir() if p.suffix in (".sse", ".json"))


def _path(name: str, suffix: str) -> Path:
    path = DIR / f"{name}{suffix}"
    if not path.exists():
        valid = [n for n in names() if (DIR / f"{n}{suffix}").exists()]
        raise ValueError(f"no {suffix} transcript {name!r}; valid: {', '.join(valid)}")
    return path


def stream(name: str) -> StreamTranscript:
    raw = _path(name, ".sse").read_bytes().replace(b"\r\n", b"\n")
    events = tuple(part + b"\n\n" for part in raw.split(b"\n\n") if part.strip())
    return StreamTranscript(name, events)


def error(name: str) -> ErrorTranscript:
    data = json.loads(_path(name, ".json").read_text(encoding="utf-8"))
    return ErrorTranscript(name, int(data["status"]), data["body"], dict(data.get("headers") or {}))
