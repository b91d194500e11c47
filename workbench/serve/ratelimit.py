"""A local rate-limiting proxy: rehearse a provider's concurrent-request limit against any server.

Put it in front of any base URL (a local llama.cpp server, the synthetic server, a hosted API)
and it forwards requests unchanged — streams pass through chunk by chunk, unbuffered — while at
most `max_in_flight` are active. One more gets what a provider at its limit sends:

    HTTP 429  retry-after: <s>  retry-after-ms: <ms>
    {"error": "rate_limit_exceeded", "message": "Concurrent limit reached: N active requests"}

so a load run sees `rate_limited` records and mitigations (client-side limits, backoff,
queueing) can be compared before meeting the real limit in production. The proxy is a bare
ASGI app served by uvicorn (installed with llama-cpp-python[server]); upstream calls use one
pooled httpx client. Run it with `workbench ratelimit-proxy --upstream URL --max-in-flight N`,
or `RateLimitProxy(...)` from Python (a child process).
"""

from __future__ import annotations

import argparse
import json
import math
import socket
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import httpx

from workbench.serve.child import ChildServer, start_child

__all__ = ["RateLimitApp", "RateLimitProxy", "add_arguments", "rate_limit_body", "run_from_args"]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

# Hop-by-hop headers (RFC 9110 7.6.1) and ones the next hop recomputes.
_HOP = {"connection", "keep-alive", "proxy-connection", "transfer-encoding", "te", "trailer", "upgrade",
        "host", "content-length"}


def rate_limit_body(active: int) -> bytes:
    """The 429 body, in the shape of the production error this rehearses (DESIGN.md section 6)."""
    return json.dumps({"error": "rate_limit_exceeded",
                       "message": f"Concurrent limit reached: {active} active requests"}).encode()


class RateLimitApp:
    """ASGI app: forward to `upstream` with at most `max_in_flight` requests active."""

    def __init__(self, upstream: str, max_in_flight: int, retry_after_s: float = 0.2) -> None:
        if max_in_flight < 1:
            raise ValueError("max_in_flight must be >= 1")
        if not upstream.startswith(("http://", "https://")):
            raise ValueError(f"upstream {upstream!r} must start with http:// or https://")
        self.upstream = upstream.rstrip("/")
        self.max_in_flight = max_in_flight
        self.retry_after_s = retry_after_s
        self.active = 0
        self.forwarded = 0
        self.rejected = 0
        self._client: httpx.AsyncClient | None = None

    def client(self) -> httpx.AsyncClient:
        if self._client is None:
            pool = max(64, self.max_in_flight * 2)
            self._client = httpx.AsyncClient(
                timeout=httpx.Timeout(600.0), trust_env=False,
                limits=httpx.Limits(max_connections=pool, max_keepalive_connections=pool))
        return self._client

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            while True:
                msg = await receive()
                if msg["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif msg["type"] == "lifespan.shutdown":
                    if self._client is not None:
                        await self._client.aclose()
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        if scope["type"] != "http":
            return
        if self.active >= self.max_in_flight:
            self.rejected += 1
            await self._reject(send)
            return
        self.active += 1
        try:
            await self._forward(scope, receive, send)
        finally:
            self.active -= 1

    async def _reject(self, send: Send) -> None:
        body = rate_limit_body(self.active)
        await send({"type": "http.response.start", "status": 429, "headers": [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
            (b"retry-after", str(max(1, math.ceil(self.retry_after_s))).encode()),
            (b"retry-after-ms", str(round(self.retry_after_s * 1000)).encode()),
        ]})
        await send({"type": "http.response.body", "body": body})

    async def _forward(self, scope: Scope, receive: Receive, send: Send) -> None:
        body = b""
        while True:
            msg = await receive()
            if msg["type"] == "http.disconnect":
                return
            body += msg.get("body", b"")
            if not msg.get("more_body"):
                break
        url = self.upstream + scope["path"]
        if scope.get("query_string"):
            url += "?" + scope["query_string"].decode("latin-1")
        headers = [(k, v) for k, v in scope["headers"] if k.decode("latin-1").lower() not in _HOP]
        client = self.client()
        try:
            upstream = await client.send(
                client.build_request(scope["method"], url, headers=headers, content=body), stream=True)
        except httpx.HTTPError as exc:
            msg_body = json.dumps(
                {"error": "bad_gateway", "message": f"upstream {self.upstream}: {exc!r}"}).encode()
            await send({"type": "http.response.start", "status": 502,
                        "headers": [(b"content-type", b"application/json")]})
            await send({"type": "http.response.body", "body": msg_body})
            return
        self.forwarded += 1
        try:
            out_headers = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in upstream.headers.items()
                           if k.lower() not in _HOP]
            await send({"type": "http.response.start", "status": upstream.status_code,
                        "headers": out_headers})
            async for chunk in upstream.aiter_raw():  # no buffering: each upstream read goes out now
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
            await send({"type": "http.response.body", "body": b""})
        finally:
            await upstream.aclose()


class RateLimitProxy(ChildServer):
    """The proxy in a child process. Point a contender's base URL at `base_url_for(upstream)`."""

    def __init__(self, upstream: str, max_in_flight: int, retry_after_s: float = 0.2) -> None:
        super().__init__(start_child([
            "ratelimit-proxy", "--upstream", upstream, "--max-in-flight", str(max_in_flight),
            "--retry-after", str(retry_after_s), "--port", "0"]))
        self.upstream = upstream
        self.max_in_flight = max_in_flight

    @property
    def base_url(self) -> str:
        """The proxy's root: requests to base_url + P go to upstream + P."""
        return self.root_url


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--upstream", required=True, help="base URL to forward to, e.g. http://127.0.0.1:8000/v1")
    p.add_argument("--max-in-flight", type=int, required=True, help="requests allowed in flight at once")
    p.add_argument("--port", type=int, default=0, help="0 = any free port (printed)")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--retry-after", type=float, default=0.2, help="seconds suggested in retry-after(-ms)")


def run_from_args(args: argparse.Namespace) -> int:
    import uvicorn

    app = RateLimitApp(args.upstream, args.max_in_flight, args.retry_after)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((args.host, args.port))
    port = sock.getsockname()[1]
    print(f"listening on http://{args.host}:{port}  -> {app.upstream} "
          f"(max {app.max_in_flight} in flight)", flush=True)
    config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="on",
                            timeout_keep_alive=30, backlog=2048)
    uvicorn.Server(config).run(sockets=[sock])
    return 0
