"""Closed and open loop against the mock server: exact counts, bounds, schedule fields.

Timing assertions are loose on purpose (the machine is shared); the fidelity figures
themselves are measured by tests/test_synthetic_fidelity.py and bench/loadgen_bench.py.
"""

from __future__ import annotations

import asyncio
import itertools
import statistics
from collections.abc import Iterator

import pytest

from workbench.config import Contender, load_contenders
from workbench.measure.load import arrival_offsets, closed_loop, open_loop
from workbench.measure.retry import RetryPolicy
from workbench.measure.target import Target
from workbench.serve.child import ChildServer
from workbench.serve.mock import MockScript, MockServer
from workbench.types import Prompt, Record

PROMPTS = [Prompt("p1", "hello"), Prompt("p2", "world")]


@pytest.fixture(scope="module")
def chat() -> Contender:
    return load_contenders().get("qwen2.5-coder-0.5b")


@pytest.fixture(scope="module")
def fast_server() -> Iterator[ChildServer]:
    """TTFT 20 ms, E2E 50 ms."""
    with MockServer(MockScript.timed(ttft_ms=20, itl_ms=10, n_chunks=4)).in_child() as s:
        yield s


@pytest.fixture(scope="module")
def slow_server() -> Iterator[ChildServer]:
    """E2E 2 s: anything bounded below that is cut by the deadline."""
    with MockServer(MockScript.timed(ttft_ms=1000, itl_ms=500, n_chunks=3)).in_child() as s:
        yield s


def _target(c: Contender, s: ChildServer) -> Target:
    return Target(c, s.base_url, keep_itl=False)


def test_closed_loop_counts_are_exact(chat: Contender, fast_server: ChildServer) -> None:
    written: list[Record] = []
    res = asyncio.run(closed_loop(_target(chat, fast_server), PROMPTS, concurrency=4, n_requests=20,
                                  max_duration_s=30, on_record=written.append, extra={"level": 4}))
    assert res.sent == len(res.records) == len(written) == 20
    assert all(r.ok for r in res.records), [r.error_message for r in res.records if not r.ok]
    assert len({r.request_id for r in res.records}) == 20
    assert max(r.extra["in_flight"] for r in res.records) <= 4
    r = res.records[0]
    for key in ("load_profile", "concurrency", "target_rate", "scheduled_s", "sent_s", "schedule_lag_s",
                "e2e_from_schedule_s", "ttft_from_schedule_s", "level"):
        assert key in r.to_dict()
    assert r.extra["load_profile"] == "closed" and r.extra["concurrency"] == 4
    assert r.output_tokens == 4 and r.token_source == "server"
    assert not res.deadline_hit


def test_closed_loop_bounded_by_time(chat: Contender, fast_server: ChildServer) -> None:
    res = asyncio.run(closed_loop(_target(chat, fast_server), PROMPTS, concurrency=2, n_requests=100_000,
                                  max_duration_s=0.5))
    assert res.wall_s < 5.0  # 0.5 s bound plus cancellation; generous for a loaded machine
    assert res.sent == len(res.records) < 100_000
    assert res.sent >= 2


def test_deadline_cancels_in_flight_as_records(chat: Contender, slow_server: ChildServer) -> None:
    res = asyncio.run(closed_loop(_target(chat, slow_server), PROMPTS, concurrency=3, n_requests=10,
                                  max_duration_s=0.3))
    assert res.deadline_hit
    assert res.sent == len(res.records) == 3
    assert {r.error_class for r in res.records} == {"cancelled"}
    assert all(r.e2e_s is not None and r.e2e_s >= 0.2 for r in res.records)


def test_open_loop_constant_schedule_and_lag(chat: Contender, fast_server: ChildServer) -> None:
    res = asyncio.run(open_loop(_target(chat, fast_server), PROMPTS, rate=40, n_requests=12, max_duration_s=30,
                                arrival="constant"))
    assert res.sent == len(res.records) == 12
    by_i = sorted(res.records, key=lambda r: r.extra["scheduled_s"])
    for i, r in enumerate(by_i):
        assert r.extra["scheduled_s"] == pytest.approx(i / 40)
        assert r.extra["target_rate"] == 40 and r.extra["load_profile"] == "open"
        lag = r.extra["schedule_lag_s"]
        assert lag == pytest.approx(r.extra["sent_s"] - r.extra["scheduled_s"])
        # the probe's own time before the request went out counts from the schedule, not in E2E
        assert r.send_delay_s is not None and r.e2e_s is not None and r.ttft_s is not None
        assert lag >= 0 and r.send_delay_s >= 0  # never sent before its time
        assert r.extra["e2e_from_schedule_s"] == pytest.approx(lag + r.send_delay_s + r.e2e_s)
        assert r.extra["ttft_from_schedule_s"] == pytest.approx(lag + r.send_delay_s + r.ttft_s)
    # Open, not closed: each answer takes 50 ms (the server's schedule) and arrivals are 25 ms
    # apart, so requests sent on schedule overlap — late ones too, which go out at once.
    assert max(r.extra["in_flight"] for r in by_i) >= 2


def test_open_loop_queue_counts_the_wait_as_lag(chat: Contender, fast_server: ChildServer) -> None:
    # 10 arrivals at once-ish (1000/s) through a cap of 1: each waits for the previous (~50 ms).
    res = asyncio.run(open_loop(_target(chat, fast_server), PROMPTS, rate=1000, n_requests=10, max_duration_s=30,
                                arrival="constant", max_in_flight=1, on_cap="queue"))
    assert len(res.records) == res.sent == 10
    assert max(r.extra["in_flight"] for r in res.records) == 1
    last = max(res.records, key=lambda r: r.extra["scheduled_s"])
    assert last.extra["schedule_lag_s"] > 0.2  # waited behind ~9 requests of 50 ms
    assert last.extra["e2e_from_schedule_s"] > last.e2e_s + 0.2


def test_open_loop_drop_is_a_typed_record(chat: Contender, fast_server: ChildServer) -> None:
    res = asyncio.run(open_loop(_target(chat, fast_server), PROMPTS, rate=1000, n_requests=10, max_duration_s=30,
                                arrival="constant", max_in_flight=1, on_cap="drop"))
    assert len(res.records) == 10 == res.sent + res.dropped
    dropped = [r for r in res.records if r.error_class == "dropped"]
    assert len(dropped) == res.dropped >= 5
    assert all(r.extra["sent"] is False and r.e2e_s is None for r in dropped)


def test_open_loop_deadline_cancels_waiting_and_in_flight(
    chat: Contender, slow_server: ChildServer
) -> None:
    res = asyncio.run(open_loop(_target(chat, slow_server), PROMPTS, rate=100, n_requests=5, max_duration_s=0.5,
                                arrival="constant", max_in_flight=2, on_cap="queue"))
    assert res.deadline_hit
    assert len(res.records) == 5 == res.sent + res.unsent_cancelled
    assert res.sent == 2 and res.unsent_cancelled == 3
    assert {r.error_class for r in res.records} == {"cancelled"}


def test_arrival_offsets() -> None:
    assert arrival_offsets(10, 4, "constant") == pytest.approx([0, 0.1, 0.2, 0.3])
    gaps = _gaps(arrival_offsets(100, 4001, "poisson", seed=1))
    assert statistics.mean(gaps) == pytest.approx(0.01, rel=0.1)
    assert statistics.stdev(gaps) / statistics.mean(gaps) == pytest.approx(1.0, rel=0.15)
    bursty = _gaps(arrival_offsets(100, 4001, "gamma", burstiness=0.25, seed=1))
    assert statistics.mean(bursty) == pytest.approx(0.01, rel=0.15)
    assert statistics.stdev(bursty) / statistics.mean(bursty) == pytest.approx(2.0, rel=0.2)
    assert arrival_offsets(100, 50, seed=3) == arrival_offsets(100, 50, seed=3)
    with pytest.raises(ValueError, match="unknown arrival"):
        arrival_offsets(1, 2, "uniform")


def _gaps(ts: list[float]) -> list[float]:
    return [b - a for a, b in itertools.pairwise(ts)]


def test_backoff_policy_honours_retry_after() -> None:
    import random

    pol = RetryPolicy(max_attempts=3)
    rec = Record("r", "e", "c", "m", "id", 0.0, status="error", error_class="rate_limited", retry_after_s=0.2)
    assert pol.next_wait_s(rec, random.Random(0)) == 0.2
    rec.attempt = 3
    assert pol.next_wait_s(rec, random.Random(0)) is None
    rec.attempt, rec.error_class = 1, "bad_request"
    assert pol.next_wait_s(rec, random.Random(0)) is None


@pytest.mark.slow  # answers of 2 s
def test_closed_loop_ramp_spreads_the_first_requests(chat: Contender, slow_server: ChildServer) -> None:
    # E2E 2 s > the ramp: each of the 8 workers sends exactly one request, at its own start
    res = asyncio.run(closed_loop(_target(chat, slow_server), PROMPTS, concurrency=8, n_requests=8, max_duration_s=10,
                                  ramp_s=0.4))
    firsts = sorted(r.extra["scheduled_s"] for r in res.records)
    assert len(firsts) == 8 and firsts[0] < 0.05
    gaps = [b - a for a, b in itertools.pairwise(firsts)]
    assert all(0.03 < g < 0.2 for g in gaps), gaps  # 0.4 s / 8 workers = 50 ms apart
    assert all(r.extra["ramp_s"] == 0.4 for r in res.records)
    with pytest.raises(ValueError, match="ramp_s"):
        asyncio.run(closed_loop(_target(chat, slow_server), PROMPTS, concurrency=2, n_requests=2, max_duration_s=1,
                                ramp_s=1.0))


def test_each_worker_keeps_its_own_connection(chat: Contender, fast_server: ChildServer) -> None:
    """A warm closed loop opens no connection mid-run: worker w always uses client w."""
    from workbench.measure.load.common import ClientShards

    async def go() -> tuple[int, int]:
        async with ClientShards.for_pool(None, 8, 10.0) as shards:
            await closed_loop(_target(chat, fast_server), PROMPTS, concurrency=8, n_requests=8, max_duration_s=10,
                              client=shards)
            before: int = sum(len(c._lean._open) for c in shards.clients)  # type: ignore[attr-defined,misc]
            res = await closed_loop(_target(chat, fast_server), PROMPTS, concurrency=8, n_requests=64,
                                    max_duration_s=10,
                                    client=shards)
            after: int = sum(len(c._lean._open) for c in shards.clients)  # type: ignore[attr-defined,misc]
            assert all(r.ok for r in res.records)
        return before, after

    assert asyncio.run(go()) == (8, 8)


@pytest.mark.slow  # ~5 s
def test_no_garbage_collection_inside_a_run_and_the_collector_comes_back(
        chat: Contender, fast_server: ChildServer, monkeypatch: pytest.MonkeyPatch) -> None:
    import gc

    from workbench.measure.load import monitor

    seen: list[bool] = []

    def spy(rec: Record) -> None:
        seen.append(gc.isenabled())

    assert gc.isenabled()
    res = asyncio.run(closed_loop(_target(chat, fast_server), PROMPTS, concurrency=2, n_requests=4, max_duration_s=10,
                                  on_record=spy))
    assert seen == [False] * 4 and gc.isenabled() and res.client.gc_forced == 0
    # the safety valve: a run whose tracked objects grow past the limit is collected anyway, and says so
    monkeypatch.setattr(monitor, "GC_MAX_GROWTH", 10)
    res = asyncio.run(closed_loop(_target(chat, fast_server), PROMPTS, concurrency=2, n_requests=8, max_duration_s=10))
    assert res.client.gc_forced > 0 and gc.isenabled()
    assert any("garbage collection" in w for w in res.client_warnings())

    # a run that fails still gives the collector back
    def boom(rec: Record) -> None:
        raise RuntimeError("writer broke")

    with pytest.raises(RuntimeError, match="writer broke"):
        asyncio.run(closed_loop(_target(chat, fast_server), PROMPTS, concurrency=1, n_requests=1, max_duration_s=10,
                                on_record=boom))
    assert gc.isenabled()


def test_clients_kept_across_runs_keep_each_hosts_connection(chat: Contender) -> None:
    """A runner's clients outlive its runs (a sweep's levels and contenders share them): after a
    run against one server, every request of a run against another reuses one keep-alive
    connection (with clients sized by their first run, the first server's idle connection filled
    the only slot, and each request to the second opened a new connection inside its latency)."""
    from tests.measure.test_http11 import _serve
    from workbench.measure.load.pool import InlineRunner

    body = b'{"choices":[{"message":{"content":"hi"},"finish_reason":"stop"}]}'
    answer = b"HTTP/1.1 200 OK\r\ncontent-length: %d\r\n\r\n%s" % (len(body), body)

    async def go() -> tuple[int, int]:
        first, port_a, conns_a = await _serve([answer])
        second, port_b, conns_b = await _serve([answer])
        async with first, second, InlineRunner() as runner:
            for port, n in ((port_a, 2), (port_b, 6)):
                target = Target(chat, f"http://127.0.0.1:{port}/v1", stream=False, keep_itl=False)
                res = await runner.closed_loop(target, [Prompt("p", "x")], concurrency=1, n_requests=n,
                                               max_duration_s=10)
                assert sum(r.ok for r in res.records) == n
        return conns_a.count(1), conns_b.count(1)

    assert asyncio.run(go()) == (1, 1)
