"""The mock server itself: what the provider contract and fault tests do not already cover —
hosting in a child from its own command line, null mode, truth notes in every format, the proxy
hosted in a thread in front of it."""

from __future__ import annotations

import asyncio
import time

import httpx
import pytest

from workbench.cli import build_parser
from workbench.serve.mock import Fault, FaultPlan, MockScript, MockServer, from_args
from workbench.serve.ratelimit import RateLimitProxy

pytestmark = pytest.mark.timeout(60)


def test_a_scenario_and_plan_survive_the_command_line() -> None:
    plan = FaultPlan(probabilities={"stall": 0.125, "rate_limit": 0.1}, sequence=["reset", "abort"], seed=4,
                     retry_after_s=2.5, slow_s=0.1, stall_s=7.0, oversized_chars=5000)
    for sc in (MockScript(), MockScript.timed(ttft_ms=0.3, itl_ms=7.1, n_chunks=3, text="-x"), MockScript(null=True)):
        srv = MockServer(sc, plan)
        args = build_parser().parse_args(srv.argv())
        back = from_args(args)
        assert back.plan == plan
        assert back.script.pieces == sc.pieces and back.script.null == sc.null
        assert back.script.ttft_s == pytest.approx(sc.ttft_s) and back.script.itl_s == pytest.approx(sc.itl_s)
    with pytest.raises(ValueError, match="cannot run in a child process"):
        MockServer(MockScript(answer=lambda req: "no")).argv()
    with pytest.raises(ValueError, match="cannot run in a child process"):
        MockServer(MockScript(input_tokens=3)).argv()


def test_old_command_names_and_no_unit_guessing() -> None:
    p = build_parser()
    for name in ("mock-server", "synthetic-server", "fault-server"):
        assert p.parse_args([name, "--ttft-ms", "5"]).build is from_args
    with pytest.raises(SystemExit):
        p.parse_args(["fault-server", "--ttft", "0.5"])  # seconds are not silently read as --ttft-ms


def test_null_mode_answers_any_path_at_once() -> None:
    """At once: not after the scenario's TTFT, which the client would not even wait for."""
    ttft_s = 60.0
    with MockServer(MockScript(null=True, ttft_s=ttft_s)) as srv, httpx.Client(timeout=ttft_s / 2) as h:
        t0 = time.perf_counter()
        for path in ("/v1/chat/completions", "/anything"):
            r = h.post(srv.url + path, json={"stream": True})
            assert r.status_code == 200 and r.json()["choices"][0]["message"]["content"] == "ok"
        assert time.perf_counter() - t0 < ttft_s
        assert srv.requests.maxlen and not srv.requests  # nothing is kept at that speed


@pytest.mark.parametrize(("fmt", "path", "body"), [
    ("anthropic", "/v1/messages", {"messages": [{"role": "user", "content": "a-1"}], "stream": True}),
    ("gemini", "/v1beta/models/g:streamGenerateContent?alt=sse", {"contents": [{"parts": [{"text": "a-1"}]}]}),
    ("generic", "/generate", {"prompt": "a-1", "stream": True}),
])
def test_truth_notes_in_every_format(fmt: str, path: str, body: dict[str, object]) -> None:
    with MockServer(MockScript(ttft_s=0.02, itl_s=0.01)) as srv, httpx.Client() as h:
        h.post(srv.url + path, json=body).raise_for_status()
        (note,) = h.get(srv.base_url + "/truth", params={"prefix": "a-"}).json().values()
        read_ns, first_ns, last_ns, due_ns = note
        assert due_ns == read_ns + 20_000_000 and due_ns <= first_ns <= last_ns
        # Three 10 ms gaps; uvloop's (libuv's) timers have 1 ms granularity, so each may end ~1 ms early.
        assert last_ns - first_ns >= 3 * (10_000_000 - 1_000_000)
        assert srv.counts == {"none": 1} and srv.requests[0]["fault"] == "none"


def test_queued_faults_come_before_the_plan_and_are_counted() -> None:
    plan = FaultPlan(sequence=["http503"])
    with MockServer(plan=plan) as srv, httpx.Client() as h:
        srv.fail(Fault("rate_limit"), Fault("none"))
        url = srv.base_url + "/chat/completions"
        statuses = [h.post(url, json={"messages": [{"role": "user", "content": str(i)}]}).status_code
                    for i in range(4)]
        assert statuses == [429, 200, 503, 200]
        assert srv.counts == {"rate_limit": 1, "none": 2, "http503": 1}


def test_a_port_in_use_fails_at_start() -> None:
    with MockServer() as first, pytest.raises(OSError):
        MockServer(port=first.port).start()


def test_proxy_in_a_thread_limits_and_passes_streams_through() -> None:
    """The proxy on the same base in a thread (the rehearsal runs it in a child: tests/serve/test_ratelimit.py)."""
    # The first answer stalls after its first chunk (the upstream's queued `stall`): that chunk
    # reaching the client shows the stream passed through unbuffered, and the first request is
    # then certainly in flight when the second comes — events, no sleep deciding the order.
    with (MockServer(plan=FaultPlan(stall_s=1.0)) as upstream,
          RateLimitProxy(upstream.base_url, max_in_flight=1) as proxy):
        upstream.fail(Fault("stall"))

        async def go() -> tuple[int, bytes, int, bytes]:
            body = {"messages": [{"role": "user", "content": "hi"}], "stream": True}
            url = proxy.base_url + "/chat/completions"
            async with httpx.AsyncClient(trust_env=False, timeout=30) as client:
                async with client.stream("POST", url, json=body) as first:
                    piece = await anext(first.aiter_raw())
                    second = await client.post(url, json=body)
                deadline = time.monotonic() + 30
                while proxy.active and time.monotonic() < deadline:  # the stall ends, the slot is free
                    await asyncio.sleep(0.01)
                whole = await client.post(url, json=body)
                return first.status_code, piece, second.status_code, whole.content

        ok, piece, limited, data = asyncio.run(go())
    assert (ok, limited) == (200, 429) and piece.startswith(b"data: ")
    assert data.endswith(b"data: [DONE]\n\n")
    assert (proxy.forwarded, proxy.rejected, proxy.active) == (2, 1, 0)
