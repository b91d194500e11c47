"""A synthetic OpenAI-compatible streaming server with known timing: the truth to check against.

Like guidellm's mock server: every request to `/v1/chat/completions` or `/v1/completions`
streams `n_chunks` content chunks, the first `ttft_ms` after the request was read, the rest
`itl_ms` apart, so the true TTFT is `ttft_ms` and the true E2E is
`ttft_ms + (n_chunks - 1) * itl_ms` (plus the network, which is loopback here). A measured
value minus the truth is the load generator's error. Non-streamed requests answer after the
E2E time with one JSON body.

What the server actually did is kept too: for every streamed request it notes, on the
machine-wide monotonic clock (`time.perf_counter_ns()`, CLOCK_MONOTONIC on Linux, the clock the
probe uses), when it had read the request and when it handed its first and last chunks to the
socket (stamped just before each write, so a client can never see the bytes earlier).
`GET /v1/truth[?prefix=P]` returns and clears those notes (or those whose key starts with P:
several clients can share one server), keyed by the request's last message (or prompt) text.
Measured minus *that* is the client's own error; the server's lateness against its schedule (a
busy server at 512 streams) is reported apart, so neither hides in the other.

`null=True` answers every request instantly with one small fixed chat-completion JSON: the
"null server" for measuring how fast a load generator (ours, or `wrk`) can go.

It is plain asyncio on raw sockets (HTTP/1.1, keep-alive, no framework) so that the server is
not what limits a benchmark. Run it with `workbench synthetic-server`, or `SyntheticServer` from
Python (a child process, optionally pinned to a CPU, so it has a core and a GIL of its own).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import time
import urllib.parse
from collections.abc import Sequence
from dataclasses import dataclass

from workbench.serve.child import ChildServer, start_child
from workbench.serve.http import read_request

__all__ = ["SyntheticConfig", "SyntheticServer", "main", "serve", "start_synthetic"]


@dataclass(frozen=True)
class SyntheticConfig:
    """The known truth a synthetic server enacts."""

    ttft_ms: float = 50.0
    itl_ms: float = 10.0
    n_chunks: int = 8
    chunk_text: str = " tok"
    null: bool = False

    def __post_init__(self) -> None:
        if self.ttft_ms < 0 or self.itl_ms < 0 or self.n_chunks < 1:
            raise ValueError("ttft_ms and itl_ms must be >= 0 and n_chunks >= 1")

    @property
    def e2e_ms(self) -> float:
        return self.ttft_ms + (self.n_chunks - 1) * self.itl_ms


_NULL_BODY = json.dumps({
    "id": "null", "object": "chat.completion", "created": 0, "model": "null",
    "choices": [{"index": 0, "message": {"role": "assistant", "content": "ok"}, "finish_reason": "stop"}],
    "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
}, separators=(",", ":")).encode()


def _head(status: str, ctype: str, length: int | None, keep_alive: bool) -> bytes:
    lines = [f"HTTP/1.1 {status}", f"content-type: {ctype}"]
    lines.append(f"content-length: {length}" if length is not None else "transfer-encoding: chunked")
    lines.append("connection: keep-alive" if keep_alive else "connection: close")
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def _chunked(data: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(data), data)


class _Handler:
    def __init__(self, cfg: SyntheticConfig) -> None:
        self.cfg = cfg
        self.null_response = _head("200 OK", "application/json", len(_NULL_BODY), True) + _NULL_BODY
        text = json.dumps(cfg.chunk_text)
        self.chat_chunk = _chunked(
            b'data: {"id":"s","object":"chat.completion.chunk","model":"synthetic","choices":[{"index":0,'
            b'"delta":{"content":%s},"finish_reason":null}]}\n\n' % text.encode())
        self.comp_chunk = _chunked(
            b'data: {"id":"s","object":"text_completion","model":"synthetic","choices":[{"index":0,'
            b'"text":%s,"finish_reason":null}]}\n\n' % text.encode())
        usage = b'"usage":{"prompt_tokens":8,"completion_tokens":%d,"total_tokens":%d}' % (
            cfg.n_chunks, cfg.n_chunks + 8)
        self.chat_end = _chunked(
            b'data: {"id":"s","object":"chat.completion.chunk","model":"synthetic","choices":[{"index":0,'
            b'"delta":{},"finish_reason":"length"}]}\n\n'
            b'data: {"id":"s","object":"chat.completion.chunk","model":"synthetic","choices":[],%s}\n\n'
            b"data: [DONE]\n\n" % usage) + b"0\r\n\r\n"
        self.comp_end = _chunked(
            b'data: {"id":"s","object":"text_completion","model":"synthetic","choices":[{"index":0,'
            b'"text":"","finish_reason":"length"}],%s}\n\n'
            b"data: [DONE]\n\n" % usage) + b"0\r\n\r\n"
        full = cfg.chunk_text * cfg.n_chunks
        u = {"prompt_tokens": 8, "completion_tokens": cfg.n_chunks, "total_tokens": cfg.n_chunks + 8}
        msg = {"role": "assistant", "content": full}
        self.chat_body = json.dumps({
            "id": "s", "object": "chat.completion", "model": "synthetic", "usage": u,
            "choices": [{"index": 0, "message": msg, "finish_reason": "length"}]}).encode()
        self.comp_body = json.dumps({
            "id": "s", "object": "text_completion", "model": "synthetic", "usage": u,
            "choices": [{"index": 0, "text": full, "finish_reason": "length"}]}).encode()
        models = {"object": "list", "data": [{"id": "synthetic", "object": "model"}]}
        self.models = json.dumps(models).encode()
        # key -> [read_ns, first_chunk_sent_ns, last_chunk_sent_ns, first_chunk_due_ns]
        self.truth: dict[str, list[int]] = {}

    def _take_truth(self, query: str) -> dict[str, list[int]]:
        """The notes (all, or those whose key starts with `?prefix=`), forgotten once taken."""
        prefix = urllib.parse.parse_qs(query).get("prefix", [""])[0]
        if not prefix:
            taken, self.truth = self.truth, {}
            return taken
        taken = {k: v for k, v in self.truth.items() if k.startswith(prefix)}
        for k in taken:
            del self.truth[k]
        return taken

    async def __call__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        loop = asyncio.get_running_loop()
        try:
            while True:
                req = await read_request(reader)
                if req is None:
                    return
                method, path, query, body, keep_alive = req.method, req.path, req.query, req.body, req.keep_alive
                t_recv = loop.time()
                if self.cfg.null:
                    writer.write(self.null_response)
                elif method == "GET" and path.endswith("/truth"):
                    out = json.dumps(self._take_truth(query)).encode()
                    writer.write(_head("200 OK", "application/json", len(out), keep_alive) + out)
                elif method == "GET" and path.endswith("/models"):
                    head_ = _head("200 OK", "application/json", len(self.models), keep_alive)
                    writer.write(head_ + self.models)
                elif method == "POST" and path.endswith(("/chat/completions", "/completions")):
                    chat = path.endswith("/chat/completions")
                    await self._complete(writer, chat, body, t_recv, keep_alive)
                else:
                    msg = b'{"error":{"message":"not found","type":"invalid_request_error"}}'
                    writer.write(_head("404 Not Found", "application/json", len(msg), keep_alive) + msg)
                await writer.drain()
                if not keep_alive:
                    return
        except (ConnectionError, asyncio.CancelledError):
            return
        finally:
            with contextlib.suppress(Exception):
                writer.close()

    async def _complete(
        self, writer: asyncio.StreamWriter, chat: bool, body: bytes, t_recv: float, keep_alive: bool
    ) -> None:
        loop = asyncio.get_running_loop()
        cfg = self.cfg
        t_read_ns = time.perf_counter_ns()
        try:
            payload = json.loads(body or b"{}")
            stream = bool(payload.get("stream"))
        except (ValueError, AttributeError):
            msg = b'{"error":{"message":"body is not JSON","type":"invalid_request_error"}}'
            writer.write(_head("400 Bad Request", "application/json", len(msg), keep_alive) + msg)
            return
        if not stream:
            await _sleep_until(loop, t_recv + cfg.e2e_ms / 1000.0)
            out = self.chat_body if chat else self.comp_body
            writer.write(_head("200 OK", "application/json", len(out), keep_alive) + out)
            return
        chunk = self.chat_chunk if chat else self.comp_chunk
        end = self.chat_end if chat else self.comp_end
        writer.write(_head("200 OK", "text/event-stream", None, keep_alive))
        note = [t_read_ns, 0, 0, t_read_ns + round(cfg.ttft_ms * 1e6)]
        for k in range(cfg.n_chunks):
            await _sleep_until(loop, t_recv + (cfg.ttft_ms + k * cfg.itl_ms) / 1000.0)
            # Stamped before the write: the bytes cannot reach the client earlier, whereas a stamp
            # after it can be late by however long this process was preempted in between.
            note[2] = time.perf_counter_ns()
            if k == 0:
                note[1] = note[2]
            writer.write(chunk + end if k == cfg.n_chunks - 1 else chunk)
            await writer.drain()
        if len(self.truth) < _MAX_TRUTH:
            self.truth[_truth_key(payload)] = note


_MAX_TRUTH = 1_000_000  # notes kept until fetched; beyond this, new ones are not noted


def _truth_key(payload: dict[str, object]) -> str:
    """The request's last message text (chat) or prompt (completions): the bench sends each
    text once, so it names the request on both sides."""
    messages = payload.get("messages")
    if isinstance(messages, list) and messages and isinstance(messages[-1], dict):
        return str(messages[-1].get("content"))
    return str(payload.get("prompt"))


async def _sleep_until(loop: asyncio.AbstractEventLoop, when: float) -> None:
    delay = when - loop.time()
    if delay > 0:
        await asyncio.sleep(delay)


async def start_synthetic(cfg: SyntheticConfig, host: str = "127.0.0.1", port: int = 0) -> asyncio.Server:
    """Start serving in the running loop; the bound port is `server.sockets[0].getsockname()[1]`."""
    return await asyncio.start_server(_Handler(cfg), host, port, backlog=4096)


async def serve(cfg: SyntheticConfig, host: str = "127.0.0.1", port: int = 0) -> None:
    """Serve until cancelled; prints `listening on http://host:port` once bound (children parse it)."""
    server = await start_synthetic(cfg, host, port)
    bound = server.sockets[0].getsockname()[1]
    print(f"listening on http://{host}:{bound}", flush=True)
    async with server:
        await server.serve_forever()


class SyntheticServer(ChildServer):
    """A synthetic server in a child process; `base_url` ends in /v1. Use as a context manager."""

    def __init__(self, cfg: SyntheticConfig, cpu: int | None = None) -> None:
        args = ["synthetic-server", "--ttft-ms", str(cfg.ttft_ms), "--itl-ms", str(cfg.itl_ms),
                "--n-chunks", str(cfg.n_chunks)]
        if cfg.null:
            args.append("--null")
        if cpu is not None:
            args += ["--cpu", str(cpu)]
        super().__init__(start_child(args))
        self.config = cfg

    @property
    def base_url(self) -> str:
        return self.root_url + "/v1"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=0, help="0 = any free port (printed)")
    p.add_argument("--ttft-ms", type=float, default=50.0)
    p.add_argument("--itl-ms", type=float, default=10.0)
    p.add_argument("--n-chunks", type=int, default=8)
    p.add_argument("--null", action="store_true", help="answer every request instantly with tiny JSON")
    p.add_argument("--cpu", type=int, help="pin this process to one CPU (os.sched_setaffinity)")


def run_from_args(args: argparse.Namespace) -> int:
    if args.cpu is not None and hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {args.cpu})
    cfg = SyntheticConfig(ttft_ms=args.ttft_ms, itl_ms=args.itl_ms, n_chunks=args.n_chunks, null=args.null)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve(cfg, args.host, args.port))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="workbench synthetic-server", description=__doc__.splitlines()[0])
    add_arguments(p)
    return run_from_args(p.parse_args(argv))

