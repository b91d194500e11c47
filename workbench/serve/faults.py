"""A local OpenAI-compatible server that fails on purpose: rehearse what production will do to you.

Speaks `POST /v1/chat/completions` and `POST /v1/completions` (streamed and not) and
`GET /v1/models`, and injects faults chosen per request by a `FaultPlan`:

  rate_limit   429, `retry-after`, body {"error": "rate_limit_exceeded", "message":
               "Concurrent limit reached: 512 active requests"}     → rate_limited
  http500 / http502                                                  → server_error
  http503 / http529                                                  → overloaded
  slow_first_byte  headers only after `slow_s` (answer then normal)  → ok, slow
  stall        one chunk, then silence for `stall_s` (longer than the client's timeout) → timeout
  reset        the request is read, then the TCP connection is reset (RST) → connection
  malformed_sse  a `data:` line that is not JSON                     → protocol
  truncated_json non-streamed body cut in half (content-length honest) → protocol;
               streamed: the stream ends without a finish marker    → protocol
  stream_error an OpenAI error object inside a 200 stream (non-streamed: the same object as a
               200 body, which has no `choices`)                     → server_error / protocol
  oversized    an answer of `oversized_chars` characters (probe caps what it keeps) → ok, flagged
  huge_error   a 500 whose body is `oversized_chars` bytes (probe caps what it reads) → server_error

Choice of fault: a fixed `sequence` (consumed one per POST, then normal answers), or per-fault
probabilities drawn from a seeded RNG (deterministic for a given arrival order). Every injected
fault is logged with the request's last user text (`FaultServer.log`), so a test can check each
record's error class against what was really done to it.

Standard library and asyncio only; binds 127.0.0.1. Use it from Python as a context manager
(it runs its own event loop in a thread) or from the shell: `workbench fault-server`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import socket
import struct
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from workbench.serve.http import read_request

__all__ = ["FAULTS", "FaultPlan", "FaultServer", "parse_fault_specs"]

RATE_LIMIT_BODY = {"error": "rate_limit_exceeded", "message": "Concurrent limit reached: 512 active requests"}

#: Every fault kind, and the error class a correct client must record for it, by mode.
#: (streamed, non-streamed); "ok" = the request succeeds.
FAULTS: dict[str, tuple[str, str]] = {
    "none": ("ok", "ok"),
    "rate_limit": ("rate_limited", "rate_limited"),
    "http500": ("server_error", "server_error"),
    "http502": ("server_error", "server_error"),
    "http503": ("overloaded", "overloaded"),
    "http529": ("overloaded", "overloaded"),
    "slow_first_byte": ("ok", "ok"),
    "stall": ("timeout", "timeout"),
    "reset": ("connection", "connection"),
    "malformed_sse": ("protocol", "ok"),  # no SSE in a non-streamed answer: answered normally
    "truncated_json": ("protocol", "protocol"),
    "stream_error": ("server_error", "protocol"),
    "oversized": ("ok", "ok"),
    "huge_error": ("server_error", "server_error"),
}


@dataclass
class FaultPlan:
    """Which fault each request gets, and how the faults behave. Defaults are small and fast."""

    probabilities: dict[str, float] = field(default_factory=dict)  # kind → P(kind) per request
    sequence: list[str] = field(default_factory=list)  # consumed first, one per POST
    seed: int = 0
    pieces: tuple[str, ...] = ("Hello", ",", " world", "!")
    ttft_s: float = 0.0
    itl_s: float = 0.0
    retry_after_s: float = 1.0
    slow_s: float = 0.3
    stall_s: float = 30.0
    oversized_chars: int = 1_000_000

    def __post_init__(self) -> None:
        for kind in [*self.probabilities, *self.sequence]:
            if kind not in FAULTS:
                raise ValueError(f"unknown fault {kind!r}; valid: {', '.join(FAULTS)}")
        total = sum(self.probabilities.values())
        if any(p < 0 for p in self.probabilities.values()) or total > 1.0 + 1e-9:
            raise ValueError(f"fault probabilities must be >= 0 and sum to <= 1 (got {total:g})")


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


class FaultServer:
    """The server; `with FaultServer(plan) as srv:` serves on `srv.base_url` until the block ends."""

    def __init__(self, plan: FaultPlan | None = None, host: str = "127.0.0.1", port: int = 0,
                 log_path: str | Path | None = None) -> None:
        if host not in ("127.0.0.1", "localhost", "::1"):
            raise ValueError("the fault server only binds to the loopback interface")
        self.plan = plan or FaultPlan()
        self.host = host
        self.port = port
        self.log: list[tuple[str, str, bool]] = []  # (user text, fault kind, stream)
        self.counts: dict[str, int] = {}
        self.log_path = Path(log_path) if log_path else None  # one JSON line per request, if set
        self._rng = random.Random(self.plan.seed)
        self._seq = list(self.plan.sequence)
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._ready = threading.Event()
        self._stopped: asyncio.Event | None = None
        self._error: BaseException | None = None

    # ---- lifecycle
    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}/v1"

    def start(self) -> FaultServer:
        self._thread = threading.Thread(target=self._run_thread, name="fault-server", daemon=True)
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("fault server did not start within 10 s")
        if self._error is not None:
            raise self._error
        return self

    def stop(self) -> None:
        loop, stopped = self._loop, self._stopped
        if loop is not None and stopped is not None and not loop.is_closed():
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(stopped.set)
        if self._thread is not None:
            self._thread.join(10)
            self._thread = None

    def stop_soon(self) -> None:
        """From inside the server's own loop (the CLI): end `serve()`."""
        if self._stopped is not None:
            self._stopped.set()

    def __enter__(self) -> FaultServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def reset(self, plan: FaultPlan | None = None) -> None:
        """Forget the log and restart the fault choice (optionally with a new plan)."""
        with self._lock:
            if plan is not None:
                self.plan = plan
            self.log.clear()
            self.counts.clear()
            self._rng = random.Random(self.plan.seed)
            self._seq = list(self.plan.sequence)

    def _run_thread(self) -> None:
        try:
            asyncio.run(self.serve())
        except BaseException as exc:  # surfaced by start()
            self._error = exc
            self._ready.set()

    async def serve(self) -> None:
        """Serve until `stop()` (or until the task is cancelled: the CLI's Ctrl-C)."""
        self._loop = asyncio.get_running_loop()
        self._stopped = asyncio.Event()
        self._server = await asyncio.start_server(self._conn, self.host, self.port, backlog=1024)
        self.port = self._server.sockets[0].getsockname()[1]
        self._ready.set()
        try:
            await self._stopped.wait()
        finally:
            self._server.close()
            for t in list(self._tasks):
                t.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)
            await self._server.wait_closed()

    # ---- choice of fault
    def _choose(self, user_text: str, stream: bool) -> str:
        with self._lock:
            if self._seq:
                kind = self._seq.pop(0)
            else:
                kind = "none"
                r = self._rng.random()
                acc = 0.0
                for k, p in self.plan.probabilities.items():
                    acc += p
                    if r < acc:
                        kind = k
                        break
            self.log.append((user_text, kind, stream))
            self.counts[kind] = self.counts.get(kind, 0) + 1
            if self.log_path is not None:
                with open(self.log_path, "a", encoding="utf-8") as fh:
                    fh.write(json.dumps({"text": user_text[:200], "fault": kind, "stream": stream}) + "\n")
            return kind

    # ---- HTTP/1.1, just enough of it
    async def _conn(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        sock = writer.get_extra_info("socket")
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            while True:
                req = await read_request(reader)
                if req is None:
                    return
                keep = await self._handle(req.method, req.path, req.body, writer)
                if not keep or not req.keep_alive:
                    return
        except (ConnectionError, asyncio.IncompleteReadError):
            return
        except asyncio.CancelledError:
            return
        finally:
            self._tasks.discard(task)
            if not writer.transport.is_closing():
                writer.close()

    async def _handle(self, method: str, path: str, raw: bytes, w: asyncio.StreamWriter) -> bool:
        if method == "GET" and path == "/v1/models":
            await self._json(w, 200, {"object": "list", "data": [
                {"id": "fault-model", "object": "model", "owned_by": "workbench-fault-server"}]})
            return True
        if method != "POST" or path not in ("/v1/chat/completions", "/v1/completions"):
            await self._json(w, 404, {"error": {"message": f"no route {method} {path}",
                                                "type": "invalid_request_error", "code": "not_found"}})
            return True
        try:
            req = json.loads(raw or b"{}")
            if not isinstance(req, dict):
                raise ValueError("not an object")
        except ValueError:
            await self._json(w, 400, {"error": {"message": "body is not a JSON object",
                                                "type": "invalid_request_error", "code": None}})
            return True
        chat = path.endswith("/chat/completions")
        stream = bool(req.get("stream"))
        kind = self._choose(_user_text(req), stream)
        return await self._answer(kind, chat, stream, req, w)

    async def _answer(self, kind: str, chat: bool, stream: bool, req: Mapping[str, Any],
                      w: asyncio.StreamWriter) -> bool:
        p = self.plan
        if kind == "rate_limit":
            await self._json(w, 429, RATE_LIMIT_BODY, {"retry-after": f"{p.retry_after_s:g}"})
            return True
        if kind.startswith("http"):
            status = int(kind[4:])
            body = {"error": {"message": f"injected HTTP {status}", "type": "server_error", "code": None}}
            await self._json(w, status, body)
            return True
        if kind == "huge_error":
            filler = "x" * p.oversized_chars
            await self._json(w, 500, {"error": {"message": "injected huge error " + filler,
                                                "type": "server_error", "code": None}})
            return True
        if kind == "reset":
            sock = w.get_extra_info("socket")
            if sock is not None:
                with contextlib.suppress(OSError):
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            w.transport.abort()
            return False
        if kind == "slow_first_byte":
            await asyncio.sleep(p.slow_s)
        pieces = list(p.pieces)
        if kind == "oversized":
            size = max(1, p.oversized_chars // 1000)
            pieces = ["y" * 1000] * size
        model = str(req.get("model") or "fault-model")
        if not stream:
            await asyncio.sleep(p.ttft_s + p.itl_s * max(0, len(pieces) - 1))
            if kind == "stall":
                await self._head(w, 200, "application/json", {"content-length": "100000"})
                w.write(b'{"id": "cmpl-fault", ')
                await w.drain()
                await asyncio.sleep(p.stall_s)
                return False
            if kind == "stream_error":
                await self._json(w, 200, {"error": {"message": "injected error in a 200 body",
                                                    "type": "server_error", "code": None}})
                return True
            payload: bytes = json.dumps(_whole_body(chat, model, "".join(pieces))).encode()
            if kind == "truncated_json":
                payload = payload[: len(payload) // 2]
            await self._head(w, 200, "application/json", {"content-length": str(len(payload))})
            w.write(payload)
            await w.drain()
            return True
        await self._head(w, 200, "text/event-stream", {"transfer-encoding": "chunked",
                                                       "cache-control": "no-cache"})
        if chat:
            await self._event(w, _chunk(chat, model, {"role": "assistant", "content": ""}, None))
        t0 = time.perf_counter()
        for i, piece in enumerate(pieces):
            delay = t0 + p.ttft_s + i * p.itl_s - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            await self._event(w, _chunk(chat, model, piece, None), flush=(kind != "oversized" or i % 16 == 0))
            if i == 0 and kind != "oversized":
                if kind == "stall":
                    await asyncio.sleep(p.stall_s)
                    return False
                if kind == "malformed_sse":
                    await self._raw_chunk(w, b'data: {"choices": [{"delta": {"content": "x"\n\n')
                    await self._raw_chunk(w, b"")
                    return True
                if kind == "truncated_json":
                    await self._raw_chunk(w, b"")
                    return True
                if kind == "stream_error":
                    await self._event(w, {"error": {"message": "injected error inside the stream",
                                                    "type": "server_error", "code": None}})
                    await self._raw_chunk(w, b"")
                    return True
        await self._event(w, _chunk(chat, model, None, "stop"))
        if req.get("stream_options", {}).get("include_usage"):
            await self._event(w, {"id": "cmpl-fault", "object": "chat.completion.chunk", "model": model,
                                  "choices": [], "usage": _usage(max(1, sum(map(len, pieces)) // 4))})
        await self._raw_chunk(w, b"data: [DONE]\n\n")
        await self._raw_chunk(w, b"")
        return True

    # ---- writing
    async def _head(self, w: asyncio.StreamWriter, status: int, ctype: str,
                    extra: Mapping[str, str] | None = None) -> None:
        reason = {200: "OK", 404: "Not Found", 400: "Bad Request", 429: "Too Many Requests",
                  500: "Internal Server Error", 502: "Bad Gateway", 503: "Service Unavailable",
                  529: "Site Overloaded"}.get(status, "Status")
        lines = [f"HTTP/1.1 {status} {reason}", f"content-type: {ctype}",
                 *(f"{k}: {v}" for k, v in (extra or {}).items())]
        w.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))

    async def _json(self, w: asyncio.StreamWriter, status: int, body: Any,
                    headers: Mapping[str, str] | None = None) -> None:
        if w.transport.is_closing():
            raise ConnectionResetError("client went away")
        raw = json.dumps(body).encode()
        await self._head(w, status, "application/json", {**(headers or {}), "content-length": str(len(raw))})
        w.write(raw)
        await w.drain()

    async def _raw_chunk(self, w: asyncio.StreamWriter, data: bytes, flush: bool = True) -> None:
        if w.transport.is_closing():  # the client gave up (its timeout): stop writing
            raise ConnectionResetError("client went away")
        w.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
        if flush:
            await w.drain()

    async def _event(self, w: asyncio.StreamWriter, obj: Any, flush: bool = True) -> None:
        await self._raw_chunk(w, f"data: {json.dumps(obj)}\n\n".encode(), flush)


def _user_text(req: Mapping[str, Any]) -> str:
    messages = req.get("messages")
    if isinstance(messages, list) and messages and isinstance(messages[-1], dict):
        return str(messages[-1].get("content", ""))
    return str(req.get("prompt", ""))


def _usage(n: int) -> dict[str, int]:
    return {"prompt_tokens": 8, "completion_tokens": n, "total_tokens": 8 + n}


def _chunk(chat: bool, model: str, content: Any, finish: str | None) -> dict[str, Any]:
    if chat:
        delta = content if isinstance(content, dict) else ({"content": content} if content is not None else {})
        choice: dict[str, Any] = {"index": 0, "delta": delta, "finish_reason": finish}
        obj = "chat.completion.chunk"
    else:
        choice = {"index": 0, "text": content or "", "finish_reason": finish}
        obj = "text_completion"
    return {"id": "cmpl-fault", "object": obj, "created": 1, "model": model, "choices": [choice]}


def _whole_body(chat: bool, model: str, text: str) -> dict[str, Any]:
    n = max(1, len(text) // 4)
    if chat:
        choice: dict[str, Any] = {"index": 0, "message": {"role": "assistant", "content": text},
                                  "finish_reason": "stop"}
    else:
        choice = {"index": 0, "text": text, "finish_reason": "stop"}
    return {"id": "cmpl-fault", "object": "chat.completion" if chat else "text_completion", "created": 1,
            "model": model, "choices": [choice], "usage": _usage(n)}
