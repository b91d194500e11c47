"""The HTTP/1.1 base every helper server of the workbench is built on, and the one way they are hosted.

Hand-written on raw asyncio streams, because no kept library does what these servers need: the
mock server is the null server of the load-generator benchmark and the truth source of its
fidelity figures, so it must spend less per request than the client it measures (a framework
such as uvicorn spends several times more), and it must be able to send a half body, a bare RST
or a malformed chunk on purpose, which a framework exists to prevent. Keep-alive, requests with
a content-length body, responses with a content-length or chunked: nothing more is spoken.

A server subclasses `Server` and implements `handle(request, writer) -> keep the connection`.
The same object is hosted one of three ways:

- in a thread: `with server:` — its own event loop in a daemon thread, so a test or notebook can
  inspect its state while it serves;
- in a child process: `server.in_child(cpu=...)` — `workbench <server.argv()>` binds a free port
  and prints `listening on URL` (serve/child.py): a core and a GIL of its own, for benchmarks
  and for anything a measuring client must not share an interpreter with;
- in the running loop: `await server.listen(ssl=...)` (bind, return the asyncio server), or
  `await server.serve(announce=True)` until stopped or cancelled (what the CLI child runs).

The servers that pass requests on (the rate-limit proxy, the local batch endpoint) share one
upstream client (`UpstreamClient`) and one streaming forwarder (`forward`).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import signal
import ssl as ssl_
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Self

import httpx

from workbench.serve.child import ChildServer, start_child

__all__ = ["LOOPBACK", "STOP_SIGNALS", "Request", "Server", "UpstreamClient", "add_host_arguments", "chunk",
           "forward", "head", "read_request", "run_from_args", "send_json"]

_log = logging.getLogger(__name__)
#: The hosts a workbench test server may bind to: it never listens beyond this machine.
LOOPBACK = ("127.0.0.1", "localhost", "::1")
#: How long `Server.start` waits for the thread-hosted server to bind before it says so.
START_TIMEOUT_S = 30.0
#: How long a stopping server waits for its cancelled connections (and `aclose`) before it aborts
#: what is left: a stop is due within a second of the signal, on a busy machine too.
CLOSE_TIMEOUT_S = 0.3
#: The signals that stop a server run as a command (`run_from_args`): Ctrl-C and a parent's terminate().
STOP_SIGNALS: tuple[signal.Signals, ...] = (signal.SIGINT, signal.SIGTERM)


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
        raw = await reader.readuntil(b"\r\n\r\n")
        lines = raw.decode("latin-1").split("\r\n")
        parts = lines[0].split(" ")
        if len(parts) < 2:
            return None
        headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:] if line)}
        length = int(headers.get("content-length") or 0)
        body = await reader.readexactly(length) if length else b""
    except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError, ValueError):
        return None
    path, _, query = parts[1].partition("?")
    keep_alive = not lines[0].endswith("HTTP/1.0") and headers.get("connection", "").lower() != "close"
    return Request(parts[0], path, query, headers, body, keep_alive)


_REASONS = {200: "OK", 400: "Bad Request", 401: "Unauthorized", 404: "Not Found", 422: "Unprocessable Entity",
            429: "Too Many Requests", 500: "Internal Server Error", 502: "Bad Gateway",
            503: "Service Unavailable", 504: "Gateway Timeout", 529: "Site Overloaded"}


def head(status: int, headers: dict[str, str] | list[tuple[str, str]], length: int | None = None) -> bytes:
    """A response head: `length` None means a chunked body (write it with `chunk`, end with `chunk(b"")`)."""
    lines = [f"HTTP/1.1 {status} {_REASONS.get(status, 'Status')}"]
    lines += [f"{k}: {v}" for k, v in (headers.items() if isinstance(headers, dict) else headers)]
    lines.append(f"content-length: {length}" if length is not None else "transfer-encoding: chunked")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def send_json(w: asyncio.StreamWriter, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
    """A whole JSON response (`body` already encoded if bytes)."""
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    w.write(head(status, {"content-type": "application/json", **(headers or {})}, len(raw)) + raw)


def chunk(data: bytes) -> bytes:
    """One chunk of a chunked body; `chunk(b"")` is the terminating one."""
    return b"%x\r\n%s\r\n" % (len(data), data)


class UpstreamClient:
    """The pooled httpx client a server calls its upstream with (the rate-limit proxy, the batch
    endpoint): `connections` kept alive, no proxy settings from the environment. Opened by the
    first call, inside the server's loop (an httpx client belongs to the loop it first ran in);
    closed by `aclose`, from the server's own `aclose`."""

    def __init__(self, connections: int, timeout_s: float) -> None:
        self.connections = connections
        self.timeout_s = timeout_s
        self._client: httpx.AsyncClient | None = None

    def __call__(self) -> httpx.AsyncClient:
        if self._client is None:
            n = self.connections
            self._client = httpx.AsyncClient(timeout=httpx.Timeout(self.timeout_s), trust_env=False,
                                             limits=httpx.Limits(max_connections=n, max_keepalive_connections=n))
        return self._client

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None


class Server:
    """A raw-asyncio HTTP/1.1 server; subclasses implement `handle` (and `argv` to run in a child)."""

    #: What `base_url` adds to the root URL (the mock's OpenAI base is /v1).
    base_path = ""

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self.host = host
        self.port = port
        self._conns: dict[asyncio.Task[None], asyncio.StreamWriter] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopped: asyncio.Event | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None

    # ---- what a server is
    async def handle(self, req: Request, writer: asyncio.StreamWriter) -> bool:
        """Answer one request; False closes the connection afterwards."""
        raise NotImplementedError

    def argv(self) -> list[str]:
        """The `workbench ...` arguments that build this same server in a child process."""
        raise NotImplementedError(f"{type(self).__name__} cannot run in a child process")

    def describe(self) -> str:
        """What follows the URL on the `listening on` line."""
        return ""

    def summary(self) -> str:
        """Printed by the CLI when the server stops."""
        return ""

    async def aclose(self) -> None:
        """Release what the server holds once it stops serving (the proxy's upstream client)."""

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def base_url(self) -> str:
        return self.url + self.base_path

    # ---- serving in the running loop
    async def listen(self, ssl: ssl_.SSLContext | None = None) -> asyncio.Server:
        """Bind (port 0: a free one, then in `self.port`) and serve in the running loop."""
        server = await asyncio.start_server(self._connection, self.host, self.port, backlog=4096, ssl=ssl)
        self.port = server.sockets[0].getsockname()[1]
        return server

    async def serve(self, announce: bool = False, duration_s: float = 0.0,
                    stop_signals: Sequence[signal.Signals] = ()) -> None:
        """Serve until `stop()` / `stop_soon()`, `duration_s` (if > 0), one of `stop_signals` or
        cancellation; `announce` prints `listening on URL ...` once bound (children and the CLI).

        `stop_signals` (main thread only) are handled by the loop itself, installed before the
        server binds, so a signal sent once `listening on` is read always stops it. They are
        installed whatever this process inherited: a child started from a process that ignores
        SIGINT inherits SIG_IGN (and a blocked signal mask), and Python then leaves SIGINT
        ignored. Every command a non-interactive shell starts in the background (`make test &`,
        many CI and session wrappers) runs so, and the fault-mix test's mock server then outlived
        its SIGINT by the whole `--duration`. A second signal while stopping ends the process at once."""
        self._loop = asyncio.get_running_loop()
        self._stopped = asyncio.Event()
        if stop_signals:
            signal.pthread_sigmask(signal.SIG_UNBLOCK, stop_signals)
            for sig in stop_signals:
                self._loop.add_signal_handler(sig, self._on_stop_signal)
        server = await self.listen()
        if announce:
            print(f"listening on {self.url}  {self.describe()}".rstrip(), flush=True)
        if duration_s > 0:
            self._loop.call_later(duration_s, self._stopped.set)
        self._ready.set()
        try:
            await self._stopped.wait()
        finally:
            server.close()
            await self._close_connections()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.aclose(), CLOSE_TIMEOUT_S)

    async def _close_connections(self) -> None:
        """Cancel every connection's handler (a stalled or streaming answer ends where it is), give
        them `CLOSE_TIMEOUT_S` to finish, then abort every socket still open: a stalled client that
        reads nothing would otherwise hold its unsent bytes, and the socket, open."""
        conns = dict(self._conns)
        for task in conns:
            task.cancel()
        if conns:
            await asyncio.wait(conns, timeout=CLOSE_TIMEOUT_S)
        for writer in conns.values():
            writer.transport.abort()

    def stop_soon(self) -> None:
        """From inside the server's own loop: end `serve()`."""
        if self._stopped is not None:
            self._stopped.set()

    def _on_stop_signal(self) -> None:
        if self._stopped is not None and self._stopped.is_set():
            os._exit(130)  # a second signal: the first one's stop is stuck, end now
        self.stop_soon()

    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._conns[task] = writer
        try:
            while True:
                req = await read_request(reader)
                if req is None:
                    return
                keep = await self.handle(req, writer)
                await writer.drain()
                if not keep or not req.keep_alive:
                    return
        except (ConnectionError, asyncio.CancelledError):
            return
        except Exception:  # a bug in a handler (or a MockScript.answer): said, and this connection closed
            _log.exception("%s failed on a request; closing the connection", type(self).__name__)
        finally:
            self._conns.pop(task, None)
            with contextlib.suppress(Exception):
                writer.close()

    # ---- hosted in a thread
    def start(self) -> Self:
        """Serve from a daemon thread with its own event loop; returns once bound."""
        self._thread = threading.Thread(target=self._run_thread, name=type(self).__name__, daemon=True)
        self._thread.start()
        # Binding takes milliseconds; the bound is for a machine saturated by the load under test.
        if not self._ready.wait(START_TIMEOUT_S):
            raise RuntimeError(f"{type(self).__name__} did not start within {START_TIMEOUT_S:g} s")
        if self._error is not None:
            raise self._error
        return self

    def _run_thread(self) -> None:
        try:
            asyncio.run(self.serve())
        except BaseException as exc:  # surfaced by start()
            self._error = exc
            self._ready.set()

    def stop(self) -> None:
        loop, stopped = self._loop, self._stopped
        if loop is not None and stopped is not None and not loop.is_closed():
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(stopped.set)
        if self._thread is not None:
            self._thread.join(10)
            self._thread = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ---- hosted in a child process
    def in_child(self, cpu: int | None = None) -> ChildServer:
        """This server in a child process (`workbench <argv>`), optionally pinned to one CPU."""
        args = [*self.argv(), "--host", self.host, "--port", str(self.port)]
        if cpu is not None:
            args += ["--cpu", str(cpu)]
        return ChildServer(start_child(args), self.base_path)


def add_host_arguments(p: argparse.ArgumentParser) -> None:
    """The options every server subcommand shares."""
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=0, help="0 = any free port (printed)")
    p.add_argument("--cpu", type=int, help="pin this process to one CPU (os.sched_setaffinity)")
    p.add_argument("--duration", type=float, default=0.0, help="stop after this many seconds (0: Ctrl-C)")


def run_from_args(server: Server, args: argparse.Namespace) -> int:
    """Serve in this process until Ctrl-C, SIGTERM or `--duration`, then print the server's summary."""
    if args.cpu is not None and hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {args.cpu})
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(server.serve(announce=True, duration_s=args.duration, stop_signals=STOP_SIGNALS))
    if server.summary():
        print(server.summary(), flush=True)
    return 0


# Hop-by-hop headers (RFC 9110 7.6.1) and ones the next hop recomputes.
_HOP = {"connection", "keep-alive", "proxy-connection", "transfer-encoding", "te", "trailer", "upgrade",
        "host", "content-length"}


async def forward(client: httpx.AsyncClient, upstream: str, req: Request, w: asyncio.StreamWriter) -> bool | None:
    """Send `req` to `upstream` + its path and stream the answer back unbuffered, each upstream read
    as it comes. None: the upstream could not be reached (a 502 was sent); False: it broke
    mid-body (so does this response: close the connection); True: forwarded."""
    url = upstream + req.path + ("?" + req.query if req.query else "")
    headers = [(k, v) for k, v in req.headers.items() if k not in _HOP]
    try:
        answer = await client.send(client.build_request(req.method, url, headers=headers, content=req.body),
                                   stream=True)
    except httpx.HTTPError as exc:
        body = json.dumps({"error": "bad_gateway", "message": f"upstream {upstream}: {exc!r}"}).encode()
        w.write(head(502, {"content-type": "application/json"}, len(body)) + body)
        return None
    try:
        w.write(head(answer.status_code, [(k, v) for k, v in answer.headers.multi_items() if k.lower() not in _HOP]))
        async for data in answer.aiter_raw():  # no buffering: each upstream read goes out now
            w.write(chunk(data))
            await w.drain()
        w.write(chunk(b""))
    except httpx.HTTPError:
        return False
    finally:
        await answer.aclose()
    return True
