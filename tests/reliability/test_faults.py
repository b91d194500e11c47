"""Fault matrix: under every injected fault each request ends as exactly one record of the right
error class, and under a mix of all of them at 200 concurrent requests nothing is lost or doubled."""

from __future__ import annotations

import asyncio
import collections
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import CANARY, KEY_ENV, run
from tests.reliability.conftest import fault_contender
from workbench.config import Contender
from workbench.measure import probe as probe_mod
from workbench.measure.probe import make_client, probe
from workbench.measure.target import Target
from workbench.results import RecordWriter
from workbench.serve.faults import FAULTS, FaultPlan, parse_fault_specs
from workbench.serve.mock import MockServer
from workbench.types import Prompt, Record

N_PER_FAULT = 8
CAP = 10_000  # max_output_chars in these tests
# The machine is shared (2 cores): deadlines leave room for a loaded CPU, and a stall always
# outlasts the client's deadline.
TIMEOUT_S = 3.0
PLAN = {"slow_s": 0.3, "stall_s": 5.0, "oversized_chars": 100_000, "retry_after_s": 2.0}


LEAN = False


@pytest.fixture(autouse=True, params=["httpcore", "lean"])
def _client_kind(request: pytest.FixtureRequest) -> None:
    """Every fault maps to the same record with both clients (see workbench.measure.http11)."""
    global LEAN
    LEAN = request.param == "lean"


async def _send(srv: MockServer, ids: list[str], stream: bool, timeout_s: float = TIMEOUT_S) -> list[Record]:
    c = fault_contender(srv, timeout_s)
    async with make_client(len(ids), timeout_s, lean=LEAN) as client:
        return list(await asyncio.gather(*(
            probe(client, Target.hosted(c, stream=stream, max_output_chars=CAP), Prompt(id=rid, text=rid),
                  request_id=rid)
            for rid in ids
        )))


def _check_one_record_each(records: list[Record], ids: list[str]) -> None:
    got = collections.Counter(r.request_id for r in records)
    assert set(got) == set(ids), "lost requests"
    assert max(got.values()) == 1, "duplicated requests"


@pytest.mark.parametrize("stream", [True, False], ids=["stream", "whole"])
@pytest.mark.parametrize("fault", [pytest.param(f, marks=pytest.mark.slow) if f == "stall" else f
                                   for f in FAULTS])  # a stall waits out the client's timeout: 3 s
def test_each_fault_gives_one_record_of_its_class(fault_server: MockServer, fault: str, stream: bool) -> None:
    fault_server.reset(plan=FaultPlan(sequence=[fault] * N_PER_FAULT, **PLAN))  # type: ignore[arg-type]
    ids = [f"{fault}:{i}" for i in range(N_PER_FAULT)]
    records = run(_send(fault_server, ids, stream))
    _check_one_record_each(records, ids)
    assert fault_server.counts == {fault: N_PER_FAULT}  # the server really did it to each one
    expected = FAULTS[fault][0 if stream else 1]
    for r in records:
        assert (r.error_class or "ok") == expected, (r.request_id, r.error_message)
        assert (r.status == "ok") == (expected == "ok")
        assert r.e2e_s is not None and r.e2e_s < TIMEOUT_S + 1.0  # bounded by the deadline
        if r.status == "error":
            assert r.error_message and len(r.error_message) < 70_000
    if fault == "rate_limit":
        assert all(r.http_status == 429 and r.retry_after_s == 2.0 for r in records)
        assert all(r.provider_error_code == "rate_limit_exceeded" for r in records)
        assert all("Concurrent limit reached: 512 active requests" in (r.error_message or "") for r in records)
    if fault == "stall":
        assert all(r.error_message and "within 3s" in r.error_message for r in records)
    if fault == "slow_first_byte":
        assert all((r.e2e_s or 0) >= 0.3 for r in records)
    if fault == "oversized":
        assert all(r.output_truncated and len(r.output_text or "") == CAP for r in records)
        assert all((r.output_tokens or 0) > CAP // 4 for r in records)  # counted, not cut
    elif fault != "huge_error":
        assert not any(r.output_truncated for r in records)


def test_oversized_whole_body_beyond_the_read_cap_is_a_protocol_error(
    fault_server: MockServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(probe_mod, "MAX_BODY_BYTES", 50_000)
    fault_server.reset(plan=FaultPlan(sequence=["oversized"], **PLAN))  # type: ignore[arg-type]
    (rec,) = run(_send(fault_server, ["big"], stream=False))
    assert rec.error_class == "protocol" and "larger than 50000 bytes" in (rec.error_message or "")


@pytest.mark.slow
def test_mix_of_every_fault_at_200_concurrent(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The mock server runs as users run it (`workbench mock-server`, its own process, so the
    client under test does not share a GIL with it); its --log says what it did to each request."""
    monkeypatch.setenv(KEY_ENV, CANARY)
    kinds = [k for k in FAULTS if k != "none"]
    p_each = round(0.6 / len(kinds), 4)  # 60% faulty, 40% clean
    log = tmp_path / "faults.jsonl"
    # 200 in flight on a shared 2-core machine take seconds: a 15 s deadline, stalls of 18 s.
    argv = [sys.executable, "-m", "workbench.cli", "mock-server", "--seed", "7", "--stall", "18",
            "--oversized-chars", "20000", "--retry-after", "2", "--duration", "60", "--log", str(log),
            *(f"--fault={k}={p_each}" for k in kinds)]
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    try:
        assert proc.stdout is not None
        first = proc.stdout.readline()
        m = re.search(r"(http://127\.0\.0\.1:\d+/v1)", first)
        assert m, first + (proc.stderr.read() if proc.stderr else "")
        base_url = m.group(1)
        ids = [f"mix:{i}" for i in range(200)]
        out = tmp_path / "mix.jsonl"

        async def go() -> int:
            c = Contender.model_validate({"name": "faulty", "api": "openai-chat", "model": "m",
                                          "base_url": base_url, "api_key_env": KEY_ENV, "timeout_s": 15.0})
            with RecordWriter(out) as writer:
                async with make_client(200, 15.0, lean=LEAN) as client:

                    async def one(rid: str) -> None:
                        rec = await probe(client, Target.hosted(c, max_output_chars=CAP), Prompt(id=rid, text=rid),
                                          request_id=rid)
                        writer.write(rec)

                    await asyncio.gather(*(one(rid) for rid in ids))
                return writer.count

        t0 = time.perf_counter()
        written = run(go(), timeout=60)
        wall = time.perf_counter() - t0
    finally:
        os.killpg(proc.pid, signal.SIGINT)
        proc.communicate(timeout=10)  # reaps it and closes both pipes
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    served = [json.loads(line) for line in log.read_text().splitlines()]
    injected = {s["text"]: s["fault"] for s in served}
    by_id = collections.Counter(r["request_id"] for r in rows)
    sent = len(served)
    ok = sum(r["status"] == "ok" for r in rows)
    errors = sum(r["status"] == "error" for r in rows)
    dupes = sum(n - 1 for n in by_id.values())
    lost = len(set(ids) - set(by_id))
    print(f"\nmix: sent={sent} written={written} ok={ok} errors={errors} duplicates={dupes} lost={lost} "
          f"wall={wall:.1f}s")
    print("server injected:", dict(sorted(collections.Counter(injected.values()).items())))
    print("records by class:", dict(sorted(collections.Counter(r["error_class"] or "ok" for r in rows).items())))
    assert sent == 200 and written == 200 and len(rows) == 200
    assert dupes == 0 and lost == 0
    assert sent == ok + errors
    assert len(set(injected.values())) >= 10  # the mix really mixed
    wrong = [(r["request_id"], injected[r["request_id"]], r["error_class"]) for r in rows
             if (r["error_class"] or "ok") != FAULTS[injected[r["request_id"]]][0]]
    assert not wrong
    assert CANARY not in out.read_text()


def test_same_seed_same_faults() -> None:
    plan = FaultPlan(probabilities={"http500": 0.3, "stall": 0.2}, seed=3)
    picks = []
    for _ in range(2):
        pick = plan.picker()
        picks.append([pick() for _ in range(50)])
    assert picks[0] == picks[1] and set(picks[0]) == {"http500", "stall", "none"}


def test_fault_specs_are_validated() -> None:
    assert parse_fault_specs(["rate_limit=0.25", "stall"]) == {"rate_limit": 0.25, "stall": 1.0}
    with pytest.raises(ValueError, match="unknown fault 'nope'; valid: none, rate_limit"):
        parse_fault_specs(["nope=0.1"])
    with pytest.raises(ValueError, match="sum to <= 1"):
        FaultPlan(probabilities={"http500": 0.7, "stall": 0.7})
    with pytest.raises(ValueError, match="loopback"):
        MockServer(host="0.0.0.0")
