"""The limiting proxy: 429 body and headers at the limit, unbuffered stream passthrough, and
the load generator's view of it (rate_limited records; retries linked by logical id)."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator

import httpx
import pytest

from workbench.config import load_contenders
from workbench.measure.load import closed_loop
from workbench.measure.retry import RetryPolicy
from workbench.measure.target import Target
from workbench.serve.child import ChildServer
from workbench.serve.mock import MockServer, Scenario
from workbench.serve.ratelimit import RateLimitProxy
from workbench.types import Prompt

CFG = Scenario.timed(ttft_ms=100, itl_ms=100, n_chunks=4)  # E2E 400 ms


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


async def _stream(client: httpx.AsyncClient, url: str) -> tuple[int, list[float], bytes, httpx.Headers]:
    t0 = time.perf_counter()
    arrivals: list[float] = []
    data = b""
    async with client.stream("POST", url, json=BODY) as r:
        async for chunk in r.aiter_raw():
            arrivals.append(time.perf_counter() - t0)
            data += chunk
        return r.status_code, arrivals, data, r.headers


def test_429_at_the_limit_and_stream_passthrough(proxy: ChildServer) -> None:
    url = proxy.base_url + "/chat/completions"

    async def go() -> list[tuple[int, list[float], bytes, httpx.Headers]]:
        async with httpx.AsyncClient(trust_env=False, timeout=10) as client:
            first = asyncio.create_task(_stream(client, url))
            await asyncio.sleep(0.05)  # first is in flight now
            second = await _stream(client, url)
            return [await first, second]

    (s1, arr1, data1, _), (s2, _, data2, h2) = asyncio.run(go())
    assert s1 == 200
    assert s2 == 429
    assert json.loads(data2) == {"error": "rate_limit_exceeded",
                                 "message": "Concurrent limit reached: 1 active requests"}
    assert h2["retry-after"] == "1" and h2["retry-after-ms"] == "200"
    assert data1.count(b"data: ") >= CFG.n_chunks and b"[DONE]" in data1
    # Unbuffered: the first bytes arrive near TTFT, long before the stream ends.
    assert len(arr1) >= 2
    assert arr1[0] < arr1[-1] - 0.15


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
