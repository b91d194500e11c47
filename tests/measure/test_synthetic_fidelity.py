"""Generator fidelity against known truth: measured TTFT/E2E minus the mock server's
configured timing, at concurrency 1 and 64. Asserted loosely (shared machine); the figures
for the report, including 512, come from bench/loadgen_bench.py."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from workbench.config import load_contenders
from workbench.measure.load import closed_loop
from workbench.measure.target import Target
from workbench.serve.mock import MockScript, MockServer
from workbench.types import Prompt

CFG = MockScript.timed(ttft_ms=200, itl_ms=40, n_chunks=5)  # E2E 360 ms


@pytest.mark.slow
@pytest.mark.parametrize("concurrency", [1, 64])
def test_timing_error_against_truth(concurrency: int) -> None:
    c = load_contenders().get("qwen2.5-coder-0.5b")
    with MockServer(CFG).in_child() as srv:
        target = Target(c, srv.base_url, keep_itl=False)
        asyncio.run(closed_loop(target, [Prompt("w", "w")], concurrency=min(8, concurrency), n_requests=8,
                                max_duration_s=20))
        with httpx.Client() as h:
            h.get(srv.base_url + "/truth")  # forget the warm-up
        prompts = [Prompt(f"r{i}", f"r{i}") for i in range(concurrency * 2)]
        res = asyncio.run(closed_loop(target, prompts, concurrency=concurrency,
                                      n_requests=concurrency * 2, max_duration_s=60))
        with httpx.Client() as h:
            truth = h.get(srv.base_url + "/truth").json()
    ok = [r for r in res.records if r.ok]
    assert len(ok) == len(res.records) == concurrency * 2
    ttft_err = sorted((r.ttft_s - CFG.ttft_s) * 1000 for r in ok if r.ttft_s is not None)
    e2e_err = sorted((r.e2e_s - CFG.e2e_s) * 1000 for r in ok if r.e2e_s is not None)
    p99 = lambda xs: xs[min(len(xs) - 1, int(0.99 * len(xs)))]  # noqa: E731
    print(f"c={concurrency}: TTFT error p50 {ttft_err[len(ttft_err) // 2]:.2f} p99 {p99(ttft_err):.2f} ms; "
          f"E2E error p99 {p99(e2e_err):.2f} ms; loop lag p99 {res.client.loop_lag_p99_s * 1000:.1f} ms")
    assert min(ttft_err) > -1.0  # never earlier than the truth (beyond clock noise)
    # Against what the server noted it did (read the request, sent the first / last chunk, on
    # the machine's one monotonic clock): the client sends before the server reads and reads
    # after the server sends, so its figure can never be the smaller one — a check of the
    # send and arrival stamps themselves.
    assert set(truth) == {p.text for p in prompts}
    for r in ok:
        read_ns, first_ns, last_ns, _due = truth[r.prompt_id]
        assert r.ttft_s is not None and r.ttft_s * 1e9 >= first_ns - read_ns - 50_000, r
        assert r.e2e_s is not None and r.e2e_s * 1e9 >= last_ns - read_ns - 50_000, r
        assert r.send_delay_s is not None and r.send_delay_s >= 0
    limit = 50.0 if concurrency == 1 else 500.0  # loose: the target is < 2 ms on an idle machine
    assert p99(ttft_err) < limit and p99(e2e_err) < limit


def test_truth_notes_are_taken_once_and_by_prefix() -> None:
    """Several clients can share one mock server: each takes only its own notes."""
    from workbench.measure.probe import probe_once

    c = load_contenders().get("qwen2.5-coder-0.5b")
    with MockServer(MockScript.timed(ttft_ms=5, itl_ms=1, n_chunks=2)) as srv:
        for text in ("a-1", "a-2", "b-1"):
            assert probe_once(Target(c, srv.base_url), Prompt(text, text)).ok
        with httpx.Client() as h:
            mine = h.get(srv.base_url + "/truth", params={"prefix": "a-"}).json()
            assert sorted(mine) == ["a-1", "a-2"]
            for read_ns, first_ns, last_ns, due_ns in mine.values():
                assert read_ns <= first_ns <= last_ns and due_ns == read_ns + 5_000_000
            assert h.get(srv.base_url + "/truth", params={"prefix": "a-"}).json() == {}
            assert sorted(h.get(srv.base_url + "/truth").json()) == ["b-1"]
            assert h.get(srv.base_url + "/truth").json() == {}
