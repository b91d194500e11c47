"""Sharded load runs over local processes: every record exactly once, the same ids as one shard,
open-loop rates that sum to the target, a killed shard's in-flight requests as `cancelled`
records, the budget held across shards.

Each pool starts two shard processes (about a second each on a busy 2-core machine); every run
is bounded in count and time, against mock servers on loopback.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import CANARY, KEY_ENV
from tests.reliability.conftest import fault_contender
from workbench.aio import LOOP_ENV, run
from workbench.config import Contender, load_contenders
from workbench.errors import WorkbenchError
from workbench.measure.budget import Budget
from workbench.measure.load import closed_loop
from workbench.measure.load.common import Part, ShardLink
from workbench.measure.load.pool import RAY_MISSING, ShardPool, load_runner
from workbench.measure.target import Target
from workbench.pricing import Price
from workbench.serve.mock import MockScript, MockServer
from workbench.types import Prompt, Record

pytestmark = [pytest.mark.timeout(120), pytest.mark.slow]  # shard processes: 4-14 s a test on 2 cores


def _prompts(n: int, tag: str) -> list[Prompt]:
    return [Prompt(f"{tag}-{i}", f"{tag}-{i}") for i in range(n)]


@pytest.fixture(scope="module")
def chat() -> Contender:
    return load_contenders().get("qwen2.5-coder-0.5b")


@pytest.fixture(scope="module")
def fast() -> Iterator[MockServer]:
    """TTFT 20 ms, E2E 50 ms, in a thread of this process (its truth notes readable directly)."""
    with MockServer(MockScript.timed(ttft_ms=20, itl_ms=10, n_chunks=4)) as srv:
        yield srv


def test_shards_of_one_process_split_the_requests_and_keep_the_ids(chat: Contender, fast: MockServer) -> None:
    """Two parts run in one loop: together exactly the unsharded run's ids, prompts and workers."""
    prompts = _prompts(5, "part")
    target = Target(chat, fast.base_url, keep_itl=False)

    async def go() -> list[Record]:
        parts = [closed_loop(target, prompts, concurrency=3, n_requests=11, max_duration_s=20, request_prefix="x:",
                             link=ShardLink(Part(k, 2))) for k in range(2)]
        return [r for res in await asyncio.gather(*parts) for r in res.records]

    records = asyncio.run(go())
    assert sorted(r.request_id for r in records) == sorted(f"x:{i}" for i in range(11))
    for r in records:
        i = int(r.request_id.split(":")[1])
        assert r.prompt_id == prompts[i % 5].id and r.extra["shard"] == (i % 3) % 2 and r.extra["shards"] == 2
        assert r.extra["concurrency"] == 3 and r.ok
    assert max(r.extra["in_flight"] for r in records if r.extra["shard"] == 0) <= 2  # workers 0 and 2
    assert max(r.extra["in_flight"] for r in records if r.extra["shard"] == 1) <= 1  # worker 1
    assert sum(r.extra["shard"] == 0 for r in records) == 7  # two workers' columns of 11: 0 2 3 5 6 8 9


def test_a_closed_loop_with_fewer_workers_than_shards_sends_everything(chat: Contender, fast: MockServer) -> None:
    """One worker over two shards: shard 0 sends all requests, shard 1 none (it has no worker)."""
    target = Target(chat, fast.base_url, keep_itl=False)

    async def go() -> list[list[Record]]:
        parts = [closed_loop(target, _prompts(2, "one"), concurrency=1, n_requests=5, max_duration_s=20,
                             request_prefix="y:", link=ShardLink(Part(k, 2))) for k in range(2)]
        return [res.records for res in await asyncio.gather(*parts)]

    shard0, shard1 = asyncio.run(go())
    assert [r.request_id for r in shard0] == [f"y:{i}" for i in range(5)] and shard1 == []


def test_closed_and_open_loop_over_two_processes(chat: Contender, fast: MockServer) -> None:
    target = Target(chat, fast.base_url, keep_itl=False)
    written: list[Record] = []

    async def go() -> tuple[object, object, list[dict[str, object]]]:
        async with ShardPool(2, "processes") as pool:
            assert pool.shards == 2 and len({s["pid"] for s in pool.info}) == 2
            closed = await pool.closed_loop(target, _prompts(7, "closed"), concurrency=8, n_requests=40,
                                            max_duration_s=30, on_record=written.append, request_prefix="c:")
            opened = await pool.open_loop(target, _prompts(7, "open"), rate=200, n_requests=200, max_duration_s=30,
                                          arrival="constant", on_record=written.append, request_prefix="o:")
            return closed, opened, pool.info

    closed, opened, info = asyncio.run(go())
    assert all(s["pid"] != os.getpid() for s in info)
    # closed loop: every request once, the unsharded ids, the workers split 4 + 4
    assert closed.sent == len(closed.records) == 40 and all(r.ok for r in closed.records)  # type: ignore[attr-defined]
    ids = [r.request_id for r in closed.records]  # type: ignore[attr-defined]
    assert sorted(ids) == sorted(f"c:{i}" for i in range(40))
    assert [r["sent"] for r in closed.shards] == [20, 20] and closed.shards_lost == []  # type: ignore[attr-defined]
    assert closed.summary()["shards"] == 2  # type: ignore[attr-defined]
    # open loop: the one global schedule, each shard offering half of it; the rates sum to the target
    recs = opened.records  # type: ignore[attr-defined]
    assert len(recs) == opened.sent == 200 and all(r.ok for r in recs)  # type: ignore[attr-defined]
    for r in recs:
        i = int(r.request_id.split(":")[1])
        assert r.extra["scheduled_s"] == pytest.approx(i / 200) and r.extra["shard"] == i % 2
    rates = []
    for k in (0, 1):
        sent = sorted(r.extra["sent_s"] for r in recs if r.extra["shard"] == k)
        rates.append((len(sent) - 1) / (sent[-1] - sent[0]))
    # tolerance: 10% of the target (a shard's first request can be late by its start-up jitter)
    assert sum(rates) == pytest.approx(200, rel=0.10), rates
    assert all(r == pytest.approx(100, rel=0.10) for r in rates), rates
    lags = sorted(r.extra["schedule_lag_s"] for r in recs)
    assert lags[len(lags) // 2] < 0.02  # the shards started on the common instant
    # everything went through the one on_record, exactly once
    assert len(written) == 240 and len({r.request_id for r in written}) == 240


def test_large_bursts_of_records_on_uvloop(chat: Contender, fast: MockServer, monkeypatch: pytest.MonkeyPatch) -> None:
    """512 workers answered within the same millisecond: each shard sends its records in batches of
    hundreds (messages far larger than a socket buffer), to a coordinator on uvloop (which makes a
    watched socket non-blocking; the channel once broke there). Nothing is lost, no shard is."""
    pytest.importorskip("uvloop")
    monkeypatch.setenv(LOOP_ENV, "uvloop")
    target = Target(chat, fast.base_url, keep_itl=False)

    async def go() -> object:
        async with ShardPool(2, "processes") as pool:
            return await pool.closed_loop(target, _prompts(3, "burst"), concurrency=512, n_requests=1024,
                                          max_duration_s=60, request_prefix="b:")

    res = run(go())
    assert res.shards_lost == [] and len(res.records) == 1024  # type: ignore[attr-defined]
    assert all(r.ok for r in res.records)  # type: ignore[attr-defined]


def test_a_killed_shard_leaves_cancelled_records_and_nothing_else_lost(chat: Contender) -> None:
    """Shard 1 is killed while its 3 requests are in flight (E2E 1.5 s): they become `cancelled`
    records; shard 0's requests all complete; every request the server saw has one record."""
    with MockServer(MockScript.timed(ttft_ms=750, itl_ms=750, n_chunks=2)) as slow:
        target = Target(chat, slow.base_url, keep_itl=False)
        prompts = _prompts(12, "kill")

        async def go() -> object:
            async with ShardPool(2, "processes") as pool:
                run = asyncio.ensure_future(pool.closed_loop(target, prompts, concurrency=6, n_requests=12,
                                                             max_duration_s=30, request_prefix="k:"))
                await asyncio.sleep(0.8)  # both shards have sent their first round
                os.kill(pool.info[1]["pid"], signal.SIGKILL)
                res = await run
                assert pool.shards == 1
                # the pool goes on with the shard it has left
                again = await pool.closed_loop(target, prompts[:2], concurrency=2, n_requests=2, max_duration_s=30,
                                               request_prefix="k2:")
                assert again.sent == 2 and {r.extra.get("shard") for r in again.records} == {None}
                return res

        res = asyncio.run(go())
        # every answer request the server read (truth notes exist only for completed streams)
        seen = [e["json"]["messages"][-1]["content"] for e in slow.requests if e.get("json")]
    records = res.records  # type: ignore[attr-defined]
    assert res.shards_lost == [1] and any("died mid-run" in n for n in res.notes)  # type: ignore[attr-defined]
    assert len({r.request_id for r in records}) == len(records)
    shard0 = [r for r in records if r.extra["shard"] == 0]
    assert len(shard0) == 6 and all(r.ok for r in shard0)  # 3 workers x 2 rounds
    cut = [r for r in records if r.extra["shard"] == 1]
    assert len(cut) == 3 and all(r.error_class == "cancelled" and "died" in (r.error_message or "") for r in cut)
    assert all(r.extra["sent"] is True and r.e2e_s is not None for r in cut)
    assert len(records) == res.sent == 9  # type: ignore[attr-defined]
    # what the server read, nothing more or less: these 9 and the second run's 2
    assert sorted(seen) == sorted([r.prompt_id for r in records] + ["kill-0", "kill-1"])


def test_the_budget_holds_across_shards(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(KEY_ENV, CANARY)  # the shards inherit the environment, keys included
    price = Price(input=1.0, output=10.0, source="test")
    with MockServer(MockScript(ttft_s=0.02)) as srv:
        c = fault_contender(srv, 5.0).with_sampling(max_tokens=100)
        budget = Budget(0.0035, {c.name: price})
        target = Target(c, srv.base_url, budget=budget)

        async def go() -> object:
            async with ShardPool(2, "processes") as pool:
                return await pool.closed_loop(target, [Prompt("p", "hi")], concurrency=2, n_requests=200,
                                              max_duration_s=20)

        res = asyncio.run(go())
        sent = sum(srv.counts.values())
    assert res.budget_stopped and 2 < sent < 200  # type: ignore[attr-defined]
    refused = [r for r in res.records if r.error_class == "cancelled"]  # type: ignore[attr-defined]
    assert refused and all("budget exhausted" in (r.error_message or "") and "share of $0.0035" in
                           (r.error_message or "") for r in refused)
    assert res.sent == sent and budget.spent_usd <= budget.max_usd  # type: ignore[attr-defined]
    assert budget.spent_usd > 0 and budget.charged == sum(1 for r in res.records if r.ok)  # type: ignore[attr-defined]


def test_backend_errors_are_one_clear_line(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)  # as if Ray were not installed
    with pytest.raises(WorkbenchError) as err:
        asyncio.run(ShardPool(2, "ray", ray_address="auto").start())
    assert str(err.value) == RAY_MISSING and "pip install" in RAY_MISSING
    with pytest.raises(WorkbenchError, match="unknown load backend 'mpi'; valid: auto, processes, ray"):
        load_runner(2, "mpi")
    assert load_runner(1).shards == 1 and load_runner(1).backend == "inline"


def _ended(pid: int) -> bool:
    """The process is gone, or a zombie (dead, not yet reaped by whoever inherited it)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return True
    return stat.rsplit(")", 1)[1].split()[0] == "Z"


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux's")
def test_a_shard_process_dies_with_its_coordinator() -> None:
    """A shard that never notices its coordinator's connection closing (here one that only sleeps)
    still ends when the coordinator is killed: the kernel sends it SIGTERM (workbench.children)."""
    coordinator = textwrap.dedent("""
        import sys
        from workbench.measure.load import pool
        pool._SHARD_MAIN = "import time; time.sleep(120)"
        shards = pool.ShardPool(1)
        [proc] = shards._spawn_processes(1, ("127.0.0.1", 9), b"key")
        print(proc.pid, shards._logs[0], flush=True)
        sys.stdin.read()
    """)
    parent = subprocess.Popen([sys.executable, "-c", coordinator], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                              text=True, cwd=Path(__file__).resolve().parents[2])
    assert parent.stdout is not None
    pid_text, log = parent.stdout.readline().split()
    pid = int(pid_text)
    try:
        parent.kill()
        parent.wait(10)
        deadline = time.monotonic() + 10
        while not _ended(pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert _ended(pid), "the shard outlived its coordinator"
    finally:
        if not _ended(pid):
            os.kill(pid, signal.SIGKILL)
        Path(log).unlink(missing_ok=True)
        if parent.stdin is not None:
            parent.stdin.close()
        parent.stdout.close()
