"""The limiting proxy: 429 body and headers at the limit, unbuffered stream passthrough, and
the load generator's view of it (rate_limited records; retries linked by logical id)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import httpx
import pytest

from workbench.config import load_contenders
from workbench.measure.load import closed_loop
from workbench.measure.retry import RetryPolicy
from workbench.measure.target import Target
from workbench.serve.child import ChildServer
from workbench.serve.faults import FaultPlan
from workbench.serve.mock import MockScript, MockServer
from workbench.serve.ratelimit import RateLimitProxy
from workbench.types import Prompt

pytestmark = pytest.mark.slow  # proxy and upstreams in child processes: ~20 s on 2 cores

CFG = MockScript.timed(ttft_ms=100, itl_ms=100, n_chunks=4)  # E2E 400 ms


@pytest.fixture(scope="module")
def upstream() -> Iterator[ChildServer]:
    with MockServer(CFG).in_child() as s:
        yield s


@pytest.fixture(scope="module")
def proxy(upstream: ChildServer) -> Iterator[ChildServer]:
    """The proxy as the rehearsal runs it: in its own process."""
    with RateLimitProxy(upstream.base_url, max_in_flight=1, retry_after_s=0.2).in_child() as p:
        yield p


BODY = {"model": "m", "messages": [{"role": "user", "content": "hi"}], "stream": True}


def test_429_at_the_limit_and_unbuffered_passthrough() -> None:
    """A first stream held open (its upstream stalls after one chunk) is in flight for certain:
    the second request meets the limit, with no sleep deciding the order. That first chunk
    reaching the client while the upstream still holds its stream is the passthrough's proof of
    being unbuffered: a buffering proxy would send nothing before the upstream's end."""
    stalling = MockServer(plan=FaultPlan(probabilities={"stall": 1.0}, stall_s=300.0))
    with (stalling.in_child() as up, RateLimitProxy(up.base_url, max_in_flight=1, retry_after_s=0.2).in_child() as p):
        url = p.base_url + "/chat/completions"

        async def go() -> httpx.Response:
            async with (httpx.AsyncClient(trust_env=False, timeout=30) as client,
                        client.stream("POST", url, json=BODY) as first):
                assert first.status_code == 200
                await anext(first.aiter_raw())  # its first chunk came through: the proxy holds it
                return await client.post(url, json=BODY)

        second = asyncio.run(go())
    assert second.status_code == 429
    assert second.json() == {"error": "rate_limit_exceeded", "message": "Concurrent limit reached: 1 active requests"}
    assert second.headers["retry-after"] == "1" and second.headers["retry-after-ms"] == "200"


def test_a_whole_stream_passes_through(proxy: ChildServer) -> None:

    async def go() -> httpx.Response:
        async with httpx.AsyncClient(trust_env=False, timeout=10) as client:
            return await client.post(proxy.base_url + "/chat/completions", json=BODY)

    r = asyncio.run(go())
    assert r.status_code == 200 and r.content.count(b"data: ") >= CFG.n_chunks and b"[DONE]" in r.content


def test_load_through_proxy_gives_rate_limited_records_and_linked_retries(proxy: ChildServer) -> None:
    c = load_contenders().get("qwen2.5-coder-0.5b")
    target, prompts = Target(c, proxy.base_url), [Prompt("p", "hi")]
    plain = asyncio.run(closed_loop(target, prompts, concurrency=3, n_requests=6, max_duration_s=20))
    classes = [r.error_class for r in plain.records]
    assert "rate_limited" in classes and None in classes
    limited = next(r for r in plain.records if r.error_class == "rate_limited")
    assert limited.http_status == 429 and limited.retry_after_s == pytest.approx(0.2)
    assert "Concurrent limit reached: 1 active requests" in (limited.error_message or "")

    retried = asyncio.run(closed_loop(target, prompts, concurrency=2, n_requests=4, max_duration_s=30,
                                      retry=RetryPolicy(max_attempts=10)))
    assert retried.sent == len(retried.records) > 4
    by_logical: dict[str, list[int]] = {}
    for r in retried.records:
        assert r.logical_request_id is not None
        by_logical.setdefault(r.logical_request_id, []).append(r.attempt)
    assert len(by_logical) == 4
    assert any(len(a) > 1 for a in by_logical.values())
    for attempts in by_logical.values():
        assert sorted(attempts) == list(range(1, len(attempts) + 1))
