"""What the mock server (`serve/mock.py`) can do wrong on purpose, and how it chooses.

Fault kinds, and the error class a correct client records for each (streamed, non-streamed;
for openai-chat — a `stream_error` in another format is that format's in-stream error):

  rate_limit     429, `retry-after`, body {"error": "rate_limit_exceeded", "message":
                 "Concurrent limit reached: 512 active requests"}          → rate_limited
  http500 / http502                                                        → server_error
  http503 / http529                                                        → overloaded
  huge_error     a 500 whose body is `oversized_chars` bytes (the probe caps what it reads) → server_error
  http           (queued only) any status, body and headers: `error_fault(fmt, cls)` builds a
                 provider's real error, `transcript_fault(name)` a recorded one
  transcript     (queued only) a recorded stream (serve/transcripts/*.sse) replayed event by event
                 on the scenario's timing: `transcript_fault(name)`
  slow_first_byte  headers only after `slow_s` (the answer then as normal)  → ok, slow
  stall          one chunk (whole: half a body), then silence for `stall_s`, longer than the
                 client's timeout                                           → timeout
  reset          the request is read, then the TCP connection is reset (RST) → connection
  abort          one chunk (whole: half a body), then the connection is closed (FIN) → protocol
  malformed_sse  a `data:` line that is not JSON (whole: answered as normal) → protocol / ok
  truncated_json a stream that ends cleanly without its finish marker; a body cut in half
                 (content-length honest)                                    → protocol
  stream_error   the format's own error event inside a 200 stream (whole: the same object as a
                 200 body, which has no answer)                             → server_error / protocol
  oversized      an answer of `oversized_chars` characters (the probe caps what it keeps) → ok, flagged

Dialects: the body of a planned `rate_limit` / `httpNNN` / `huge_error` fault is, by default
(`seed`), the production body of the failure story the workbench was specified from, `{"error":
"rate_limit_exceeded", "message": ...}`, whatever the route. `dialect="openai" | "anthropic" |
"gemini"` sends that provider's own error shape instead (its real bodies, serve/wire.py and serve/transcripts/), so an
official SDK pointed at the mock raises its own typed error with the message and `retry-after`;
"auto" uses the dialect of the route the request came in on.

A request gets a fault from the server's queue (`MockServer.fail(Fault(...))`, consumed one per
answer request, exact and format-aware: the contract tests), or else from its `FaultPlan`: a
fixed `sequence` first, then per-kind probabilities drawn from a seeded RNG (deterministic for
a given arrival order: the CLI's --fault/--sequence/--seed).
"""

from __future__ import annotations

import random
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from workbench.serve import transcripts
from workbench.serve.wire import FORMATS, RATE_LIMIT_BODY

__all__ = ["DIALECTS", "FAULTS", "Fault", "FaultPlan", "error_fault", "parse_fault_specs", "transcript_fault"]

#: --dialect name → the wire format whose error bodies it speaks ("seed": the seed's own body;
#: "auto": the format of the route each request arrived on).
DIALECTS: dict[str, str | None] = {"seed": None, "auto": None, "openai": "openai-chat", "anthropic": "anthropic",
                                   "gemini": "gemini"}
#: Planned fault kind → the ErrorClass value whose real body a dialect sends for it.
_DIALECT_CLASS = {"rate_limit": "rate_limited", "http500": "server_error", "http502": "server_error",
                  "http503": "overloaded", "http529": "overloaded", "huge_error": "server_error"}

#: Every fault kind a plan can choose, and the error class a correct client must record for it,
#: (streamed, non-streamed); "ok" = the request succeeds.
FAULTS: dict[str, tuple[str, str]] = {
    "none": ("ok", "ok"),
    "rate_limit": ("rate_limited", "rate_limited"),
    "http500": ("server_error", "server_error"),
    "http502": ("server_error", "server_error"),
    "http503": ("overloaded", "overloaded"),
    "http529": ("overloaded", "overloaded"),
    "huge_error": ("server_error", "server_error"),
    "slow_first_byte": ("ok", "ok"),
    "stall": ("timeout", "timeout"),
    "reset": ("connection", "connection"),
    "abort": ("protocol", "protocol"),
    "malformed_sse": ("protocol", "ok"),  # no SSE in a non-streamed answer: answered normally
    "truncated_json": ("protocol", "protocol"),
    "stream_error": ("server_error", "protocol"),
    "oversized": ("ok", "ok"),
}


@dataclass
class Fault:
    """One request's fault: a kind of FAULTS, or "http" with its own status, body and headers."""

    kind: str
    status: int = 500
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    payload: Any = None  # stream_error: the event's data (default: the format's own error event)

    def __post_init__(self) -> None:
        if self.kind not in FAULTS and self.kind not in ("http", "transcript"):
            raise ValueError(f"unknown fault {self.kind!r}; valid: {', '.join(FAULTS)}, http, transcript")


def error_fault(fmt: str, cls: str, retry_s: float | None = None) -> Fault:
    """The provider's real HTTP error for an ErrorClass value (see each provider's docs)."""
    if fmt not in FORMATS:
        raise ValueError(f"unknown wire format {fmt!r}; valid: {', '.join(FORMATS)}")
    status, body, headers = FORMATS[fmt].error(cls, retry_s)
    return Fault("http", status=status, body=body, headers=headers)


def transcript_fault(name: str) -> Fault:
    """A recorded answer (serve/transcripts/): a stream replayed event by event, or an HTTP error
    with the provider's own status, headers and body. `name` may carry its file suffix."""
    name = name.removesuffix(".sse").removesuffix(".json")
    if name not in transcripts.names():
        raise ValueError(f"no transcript {name!r}; valid: {', '.join(transcripts.names())}")
    if (transcripts.DIR / f"{name}.sse").exists():
        return Fault("transcript", payload=transcripts.stream(name))
    t = transcripts.error(name)
    return Fault("http", status=t.status, body=t.body, headers=dict(t.headers))


@dataclass
class FaultPlan:
    """Which fault each request gets, and how the faults behave. Defaults are small and fast."""

    probabilities: dict[str, float] = field(default_factory=dict)  # kind → P(kind) per request
    sequence: list[str] = field(default_factory=list)  # consumed first, one per answer request
    seed: int = 0
    retry_after_s: float = 1.0
    slow_s: float = 0.3
    stall_s: float = 30.0
    oversized_chars: int = 1_000_000
    dialect: str = "seed"  # whose error bodies planned faults send (see DIALECTS)

    def __post_init__(self) -> None:
        if self.dialect not in DIALECTS:
            raise ValueError(f"unknown dialect {self.dialect!r}; valid: {', '.join(DIALECTS)}")
        for kind in [*self.probabilities, *self.sequence]:
            if kind not in FAULTS:
                raise ValueError(f"unknown fault {kind!r}; valid: {', '.join(FAULTS)}")
        total = sum(self.probabilities.values())
        if any(p < 0 for p in self.probabilities.values()) or total > 1.0 + 1e-9:
            raise ValueError(f"fault probabilities must be >= 0 and sum to <= 1 (got {total:g})")

    def picker(self) -> Callable[[], str]:
        """A fresh chooser: each call is the next request's fault kind (same seed, same kinds)."""
        rng = random.Random(self.seed)
        queue = deque(self.sequence)
        choices = list(self.probabilities.items())

        def pick() -> str:
            if queue:
                return queue.popleft()
            r, acc = rng.random(), 0.0
            for kind, p in choices:
                acc += p
                if r < acc:
                    return kind
            return "none"

        return pick

    def as_http(self, kind: str, route_format: str | None = None) -> Fault | None:
        """The "http" fault that the named error kind stands for (None for other kinds), in the
        plan's dialect (`route_format`: the wire format of the request's route, for "auto")."""
        fmt = route_format if self.dialect == "auto" else DIALECTS[self.dialect]
        # OpenAI's error body is one shape on every endpoint: the Responses and completions routes
        # answer in it too (they got the seed's body before)
        fmt = "openai-chat" if fmt in ("openai-responses", "openai-completions") else fmt
        if fmt in ("openai-chat", "anthropic", "gemini") and kind in _DIALECT_CLASS:
            return self._dialect_fault(fmt, kind)
        if kind == "rate_limit":
            return Fault("http", 429, dict(RATE_LIMIT_BODY), {"retry-after": f"{self.retry_after_s:g}"})
        if kind == "huge_error":
            return Fault("http", 500, {"error": {"message": "injected huge error " + "x" * self.oversized_chars,
                                                 "type": "server_error", "code": None}})
        if kind.startswith("http") and kind[4:].isdigit():
            status = int(kind[4:])
            return Fault("http", status, {"error": {"message": f"injected HTTP {status}", "type": "server_error",
                                                    "code": None}})
        return None

    def _dialect_fault(self, fmt: str, kind: str) -> Fault:
        retry = self.retry_after_s if kind == "rate_limit" else None
        status, body, headers = FORMATS[fmt].error(_DIALECT_CLASS[kind], retry)
        if kind.startswith("http") and kind[4:].isdigit():
            status = int(kind[4:])
            if fmt == "gemini" and isinstance(body, dict) and isinstance(body.get("error"), dict):
                body = {**body, "error": {**body["error"], "code": status}}  # Google's body repeats the status
        if kind == "huge_error":
            body = _stuffed(body, "x" * self.oversized_chars)
        return Fault("http", status=status, body=body, headers=headers)


def _stuffed(body: Any, extra: str) -> Any:
    """The same error body with `extra` appended to its message (a huge error in a provider's shape)."""
    err = body.get("error") if isinstance(body, dict) else None
    if isinstance(err, dict) and isinstance(err.get("message"), str):
        return {**body, "error": {**err, "message": err["message"] + " " + extra}}
    return body


def parse_fault_specs(specs: Sequence[str]) -> dict[str, float]:
    """`["rate_limit=0.2", "stall"]` → {"rate_limit": 0.2, "stall": 1.0}; the CLI's `--fault`."""
    out: dict[str, float] = {}
    for spec in specs:
        kind, sep, prob = spec.partition("=")
        kind = kind.strip()
        if kind not in FAULTS:
            raise ValueError(f"--fault {spec!r}: unknown fault {kind!r}; valid: {', '.join(FAULTS)}")
        try:
            out[kind] = float(prob) if sep else 1.0
        except ValueError:
            raise ValueError(f"--fault {spec!r}: probability must be a number in [0, 1]") from None
    return out
