"""A local rate-limiting proxy: rehearse a provider's concurrent-request limit against any server.

Put it in front of any base URL (a local llama.cpp server, the mock server, a hosted API) and it
forwards requests unchanged — streams pass through chunk by chunk, unbuffered — while at most
`max_in_flight` are active. One more gets what a provider at its limit sends:

    HTTP 429  retry-after: <s>  retry-after-ms: <ms>
    {"error": "rate_limit_exceeded", "message": "Concurrent limit reached: N active requests"}

so a load run sees `rate_limited` records and mitigations (client-side limits, backoff,
queueing) can be compared before meeting the real limit in production. Built on the same raw
asyncio base as the mock server (serve/http.py); upstream calls use one pooled httpx client.
Run it with `workbench ratelimit-proxy --upstream URL --max-in-flight N`, or from Python:
`RateLimitProxy(...)` in a thread (`with`), or `.in_child()` in its own process (what the
rehearsal uses, so the proxy does not share an interpreter with the load it limits).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math

from workbench.serve.http import Request, Server, UpstreamClient, add_host_arguments, forward, head

__all__ = ["RateLimitProxy", "add_arguments", "from_args", "rate_limit_body"]

def rate_limit_body(active: int) -> bytes:
    """The 429 body, in the shape of the production error this rehearses (`serve.wire.RATE_LIMIT_BODY`)."""
    return json.dumps({"error": "rate_limit_exceeded",
                       "message": f"Concurrent limit reached: {active} active requests"}).encode()


class RateLimitProxy(Server):
    """Forward to `upstream` with at most `max_in_flight` requests active; `base_url` + P goes to
    upstream + P."""

    def __init__(self, upstream: str, max_in_flight: int, retry_after_s: float = 0.2, *,
                 host: str = "127.0.0.1", port: int = 0) -> None:
        if max_in_flight < 1:
            raise ValueError("max_in_flight must be >= 1")
        if not upstream.startswith(("http://", "https://")):
            raise ValueError(f"upstream {upstream!r} must start with http:// or https://")
        super().__init__(host, port)
        self.upstream = upstream.rstrip("/")
        self.max_in_flight = max_in_flight
        self.retry_after_s = retry_after_s
        self.active = 0
        self.forwarded = 0
        self.rejected = 0
        self.client = UpstreamClient(max(64, max_in_flight * 2), 600.0)

    async def aclose(self) -> None:
        await self.client.aclose()

    async def handle(self, req: Request, w: asyncio.StreamWriter) -> bool:
        if self.active >= self.max_in_flight:
            self.rejected += 1
            body = rate_limit_body(self.active)
            w.write(head(429, {"content-type": "application/json",
                               "retry-after": str(max(1, math.ceil(self.retry_after_s))),
                               "retry-after-ms": str(round(self.retry_after_s * 1000))}, len(body)) + body)
            return True
        self.active += 1
        try:
            return await self._forward(req, w)
        finally:
            self.active -= 1

    async def _forward(self, req: Request, w: asyncio.StreamWriter) -> bool:
        ok = await forward(self.client(), self.upstream, req, w)
        self.forwarded += ok is not None
        return ok is not False  # broken mid-body: so is this response (the connection closes)

    def argv(self) -> list[str]:
        return ["ratelimit-proxy", f"--upstream={self.upstream}", f"--max-in-flight={self.max_in_flight}",
                f"--retry-after={self.retry_after_s!r}"]

    def describe(self) -> str:
        return f"-> {self.upstream} (max {self.max_in_flight} in flight)"

    def summary(self) -> str:
        return f"forwarded {self.forwarded}, rejected {self.rejected}"


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_host_arguments(p)
    p.add_argument("--upstream", required=True, help="base URL to forward to, e.g. http://127.0.0.1:8000/v1")
    p.add_argument("--max-in-flight", type=int, required=True, help="requests allowed in flight at once")
    p.add_argument("--retry-after", type=float, default=0.2, help="seconds suggested in retry-after(-ms)")


def from_args(args: argparse.Namespace) -> RateLimitProxy:
    return RateLimitProxy(args.upstream, args.max_in_flight, args.retry_after, host=args.host, port=args.port)
