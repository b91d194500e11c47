"""The batch clients against the local batch endpoint (workbench/serve/batch.py), whose items run
on the mock server: a batch that completes, one that partly fails, one that expires at
`max_wait_s` (and one the provider's window expires), a run killed after submission and resumed,
and the request and byte limits splitting a workload. Loopback only, seconds each."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from workbench.config import Contender
from workbench.measure.batch import BatchJournal, dialect_for, run_batch, split_items
from workbench.measure.batch.base import build_items, headers
from workbench.measure.probe import make_client
from workbench.measure.target import Target
from workbench.providers import provider_for
from workbench.results import read_jsonl_tolerant
from workbench.serve.batch import BatchServer
from workbench.serve.mock import Fault, FaultPlan, MockScript, MockServer
from workbench.types import Prompt, Record

pytestmark = pytest.mark.timeout(60)

APIS = ("openai-chat", "anthropic", "gemini")
MODELS = {"anthropic": "claude-test", "gemini": "gemini-test"}
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def mock() -> Iterator[MockServer]:
    with MockServer(MockScript.timed(2, 1, 3, " yes"), FaultPlan(dialect="auto")) as srv:
        yield srv


def endpoint(mock: MockServer, **kw: Any) -> BatchServer:
    return BatchServer(mock.base_url, gemini_upstream=mock.base_url_for("gemini"), **kw)


def target(api: str, srv: BatchServer) -> Target:
    c = Contender(name=f"b-{api}", api=api, model=MODELS.get(api, "test-model"), base_url=srv.base_url_for(api),
                  system_prompt="Label it.")
    return Target(c, srv.base_url_for(api), run_id="run", experiment="coalescing")


def docs(n: int, pad: int = 0) -> tuple[list[Prompt], list[str]]:
    return [Prompt(f"doc{i}", f"document {i} " + "x" * pad) for i in range(n)], [f"c:batch-api:0:{i}" for i in range(n)]


def go(t: Target, n: int = 5, **kw: Any) -> list[Record]:
    prompts, ids = docs(n, kw.pop("pad", 0))
    written: list[Record] = []

    async def run() -> list[Record]:
        async with make_client(8, 10) as client:
            dialect = dialect_for(t.contender)
            assert dialect is not None
            return await run_batch(client, t, dialect, prompts, ids, write=written.append,
                                   **{"poll_s": 0.02, "poll_max_s": 0.1, "cancel_grace_s": 5.0, **kw})

    out = asyncio.run(run())
    assert [r.request_id for r in out] == [r.request_id for r in written]  # each written as returned
    return out


@pytest.mark.parametrize("api", APIS)
def test_a_batch_that_completes(mock: MockServer, api: str, tmp_path: Path) -> None:
    with endpoint(mock, concurrency=4) as srv:
        journal = BatchJournal(tmp_path / "j.jsonl")
        recs = go(target(api, srv), 6, journal=journal, extras=[{"strategy": "batch-api", "doc": i} for i in range(6)])
        [job] = srv.jobs.values()
    assert sorted(r.request_id for r in recs) == sorted(docs(6)[1])  # one record per document
    assert all(r.ok and r.output_text == " yes yes yes" and r.output_tokens == 3 for r in recs)
    assert {r.extra["batch_id"] for r in recs} == {job.id} and all(r.extra["batch_api"] for r in recs)
    assert all(r.extra["batch_outcome"] == "succeeded" and r.extra["batch_items"] == 6 for r in recs)
    assert all(r.ttft_s is None and r.e2e_s is not None and r.e2e_s > 0 for r in recs)  # turnaround, no TTFT
    assert [r.extra["doc"] for r in sorted(recs, key=lambda r: r.request_id)] == list(range(6))
    assert [e["event"] for e in read_jsonl_tolerant(journal.path)] == ["submitted", "ended"]
    # The endpoint ran the synchronous request the contender would have sent, on the upstream.
    sent = [r for r in mock.requests if r["json"]]
    assert len(sent) == 6 and all("Label it." in json.dumps(r["json"]) for r in sent)


@pytest.mark.parametrize("api", APIS)
def test_a_batch_that_partly_fails(mock: MockServer, api: str) -> None:
    # One item at a time, so the queued faults land on documents 1 and 3 (the provider's own bodies).
    mock.fail(Fault("none"), Fault("http500"), Fault("none"), Fault("rate_limit"))
    with endpoint(mock, concurrency=1) as srv:
        recs = sorted(go(target(api, srv), 5), key=lambda r: r.request_id)
    assert [r.status for r in recs] == ["ok", "error", "ok", "error", "ok"]
    assert [r.error_class for r in recs if not r.ok] == ["server_error", "rate_limited"]
    assert all(r.extra["batch_outcome"] == ("succeeded" if r.ok else "errored") for r in recs)
    assert all(r.error_message for r in recs if not r.ok)


@pytest.mark.parametrize("api", APIS)
def test_a_batch_that_expires_at_max_wait_s(api: str) -> None:
    with (MockServer(MockScript.timed(150, 1, 2, " slow")) as slow,
          BatchServer(slow.base_url, gemini_upstream=slow.base_url_for("gemini"), concurrency=1) as srv):
        recs = go(target(api, srv), 8, max_wait_s=0.4)
        [job] = srv.jobs.values()
        upstream_calls = sum(1 for r in slow.requests if r["json"])
    assert job.cancel_requested is not None
    # Cancelled at 0.4 s: the item running then finishes, the others never reach the upstream
    # (not 8 × 0.15 s of work, whatever the machine's speed).
    done = [r for r in recs if r.ok]
    cancelled = [r for r in recs if r.error_class == "cancelled"]
    assert len(recs) == 8 and 1 <= len(done) <= 4 and len(done) + len(cancelled) == 8
    assert len(done) <= upstream_calls <= len(done) + 1
    assert all("max_wait_s=0.4" in str(r.error_message) for r in cancelled)
    assert all(r.extra["batch_outcome"] == "cancelled" for r in cancelled)


@pytest.mark.parametrize("api", APIS)
def test_the_providers_window_expires_items_not_run(api: str) -> None:
    with (MockServer(MockScript.timed(150, 1, 2, " slow")) as slow,
          BatchServer(slow.base_url, gemini_upstream=slow.base_url_for("gemini"), concurrency=1,
                      completion_window_s=0.35) as srv):
        recs = go(target(api, srv), 6)
    expired = [r for r in recs if r.error_class == "expired"]
    assert 2 <= len(expired) <= 5 and all(r.extra["batch_outcome"] == "expired" for r in expired)
    assert all(r.ok for r in recs if r not in expired)


CHILD = """
import asyncio, sys
from workbench.config import Contender
from workbench.measure.batch import BatchJournal, dialect_for, run_batch
from workbench.measure.probe import make_client
from workbench.measure.target import Target
from workbench.providers import provider_for
from workbench.results import RecordWriter
from tests.measure.test_batch import docs, MODELS
api, base, out, journal = sys.argv[1:5]
c = Contender(name=f"b-{api}", api=api, model=MODELS.get(api, "test-model"), base_url=base, system_prompt="Label it.")
t = Target(c, base, run_id="run", experiment="coalescing")
prompts, ids = docs(6)
w = RecordWriter(out)
async def run():
    async with make_client(8, 10) as client:
        await run_batch(client, t, dialect_for(c), prompts, ids, write=w.write, journal=BatchJournal(journal),
                        poll_s=0.02, poll_max_s=0.05)
asyncio.run(run())
"""


@pytest.mark.slow  # a child process killed and resumed: ~7 s each
@pytest.mark.parametrize("api", APIS)
def test_a_run_killed_after_submission_resumes_without_resubmitting(api: str, tmp_path: Path) -> None:
    out, journal = tmp_path / "coalescing.jsonl", tmp_path / "coalescing_batches.jsonl"
    with (MockServer(MockScript.timed(100, 1, 2, " late")) as slow,
          BatchServer(slow.base_url, gemini_upstream=slow.base_url_for("gemini"), concurrency=1) as srv):
        t = target(api, srv)
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        with subprocess.Popen([sys.executable, "-c", CHILD, api, t.base_url, str(out), str(journal)], env=env,
                              cwd=ROOT, stderr=subprocess.PIPE) as child:
            deadline = time.monotonic() + 30
            while not (journal.exists() and journal.read_text()) and child.poll() is None:
                assert time.monotonic() < deadline, "the child never submitted"
                time.sleep(0.01)
            child.send_signal(signal.SIGKILL)  # after submission, before the answers (6 × 0.1 s of work)
            _, err = child.communicate(timeout=10)
        assert child.returncode == -signal.SIGKILL, err.decode()
        assert srv.created == 1 and not (out.exists() and out.read_text())
        done = {str(r["request_id"]) for r in read_jsonl_tolerant(out)} if out.exists() else set()
        recs = go(t, 6, journal=BatchJournal(journal), done_ids=done)
        assert srv.created == 1  # picked up by id: not submitted again
        again = go(t, 6, journal=BatchJournal(journal), done_ids={r.request_id for r in recs})
        assert again == [] and srv.created == 1  # everything recorded: nothing sent, nothing polled
    assert sorted(r.request_id for r in recs) == sorted(docs(6)[1])  # none lost, none twice
    assert all(r.ok and r.extra["batch_resumed"] for r in recs)
    [submitted] = [e for e in read_jsonl_tolerant(journal) if e["event"] == "submitted"]
    assert all(r.t_start_unix == submitted["t_submit_unix"] for r in recs)  # turnaround from the first submit


@pytest.mark.parametrize("api", APIS)
def test_request_and_byte_limits_split_the_workload(mock: MockServer, api: str) -> None:
    with endpoint(mock, concurrency=4, max_requests=3) as srv:
        recs = go(target(api, srv), 8, limits=(3, 10**9))
        assert sorted(len(j.items) for j in srv.jobs.values()) == [2, 3, 3]
        assert sorted(r.request_id for r in recs) == sorted(docs(8)[1]) and all(r.ok for r in recs)
        assert {r.extra["batch_items"] for r in recs} == {2, 3}
    t = target(api, srv)
    dialect = dialect_for(t.contender)
    assert dialect is not None
    prompts, ids = docs(6, pad=3000)
    items = build_items(dialect, t, prompts, ids)
    size = items[0].size
    batches, too_big = split_items(items, 100, 4096 + 2 * size + 10)  # two items' worth of bytes per batch
    assert [len(b) for b in batches] == [2, 2, 2] and too_big == []
    batches, too_big = split_items(items, 100, size // 2)
    assert batches == [] and len(too_big) == 6


@pytest.mark.parametrize("api", APIS)
def test_a_batch_over_the_providers_limit_is_a_typed_error_not_a_crash(mock: MockServer, api: str) -> None:
    with endpoint(mock, max_requests=3) as srv:
        recs = go(target(api, srv), 5, limits=(10, 10**9))  # the client told a wrong limit: the endpoint refuses
        assert srv.created == 0
    assert len(recs) == 5 and {r.error_class for r in recs} == {"bad_request"}
    assert all("exceeds the limit" in str(r.error_message) and r.http_status == 400 for r in recs)


@pytest.mark.parametrize(("api", "key_header"), [
    ("openai-chat", "authorization"), ("openai-responses", "authorization"), ("anthropic", "x-api-key"),
    ("gemini", "x-goog-api-key")])
def test_batch_calls_carry_the_headers_the_providers_requests_carry(api: str, key_header: str) -> None:
    c = Contender(name="h", api=api, model=MODELS.get(api, "test-model"), base_url="http://127.0.0.1:9/v1",
                  headers={"x-team": "t"})
    t = Target(c, "http://127.0.0.1:9/v1", headers={"connection": "close"})
    req = provider_for(c).build_request(c, Prompt("p", "x"), stream=False, api_key="k", base_url=t.base_url)
    sent = headers(t, "k")
    assert sent == {**{k: v for k, v in req.headers.items() if k != "content-type"}, "connection": "close"}
    assert key_header in sent and sent["x-team"] == "t"  # no content type: the OpenAI upload is multipart


def test_a_broken_response_to_a_batch_call_is_a_protocol_error() -> None:
    """A server that breaks HTTP mid-call is `protocol` (as the probe records it), not `connection`."""
    def broken(request: httpx.Request) -> httpx.Response:
        raise httpx.RemoteProtocolError("server closed the connection inside a chunked body", request=request)

    c = Contender(name="b", api="openai-chat", model="test-model", base_url="http://127.0.0.1:9/v1")
    t = Target(c, "http://127.0.0.1:9/v1", run_id="run", experiment="coalescing")
    prompts, ids = docs(3)
    dialect = dialect_for(c)
    assert dialect is not None

    async def run() -> list[Record]:
        async with httpx.AsyncClient(transport=httpx.MockTransport(broken)) as client:
            return await run_batch(client, t, dialect, prompts, ids, write=lambda r: None)

    recs = asyncio.run(run())
    assert len(recs) == 3 and {r.error_class for r in recs} == {"protocol"}
    assert all(str(r.error_message).startswith("uploading the batch input file: ") for r in recs)


@pytest.mark.parametrize("api", ["openai-chat", "anthropic"])  # the mock answers any Gemini model route
def test_an_endpoint_without_a_batch_api_says_so_and_records_nothing(mock: MockServer, api: str) -> None:
    """A plain endpoint (the mock here; llama-server, vLLM...) answers the batch route with 404
    ("File Not Found" for OpenAI's upload): a typed `NoBatchAPI` naming the endpoint, no record,
    and no second batch tried."""
    from workbench.measure.batch import NoBatchAPI

    c = Contender(name=f"p-{api}", api=api, model=MODELS.get(api, "test-model"), base_url=mock.base_url_for(api))
    t = Target(c, mock.base_url_for(api), run_id="run", experiment="coalescing")
    written: list[Record] = []
    prompts, ids = docs(4)

    async def run() -> None:
        async with make_client(8, 10) as client:
            dialect = dialect_for(c)
            assert dialect is not None
            await run_batch(client, t, dialect, prompts, ids, write=written.append, poll_s=0.02, poll_max_s=0.1,
                            limits=(2, 10**6))

    with pytest.raises(NoBatchAPI) as err:
        asyncio.run(run())
    assert written == []
    assert err.value.info.http_status in (404, 405) and "has no batch API" in str(err.value)
    assert str(err.value).startswith(mock.base_url_for(api))
    assert not any(r["json"] for r in mock.requests)  # no document was generated


def test_a_submission_answered_with_no_batch_is_a_typed_error_per_document(mock: MockServer) -> None:
    """A 2xx answer to the submission that names no batch (the mock answers Gemini's batch route
    as a generation) is a protocol error on each document's record, not a crash."""
    c = Contender(name="g", api="gemini", model="gemini-test", base_url=mock.base_url_for("gemini"))
    recs = go(Target(c, mock.base_url_for("gemini"), run_id="run", experiment="coalescing"), 3)
    assert [r.error_class for r in recs] == ["protocol"] * 3
    assert all("names no batch" in (r.error_message or "") for r in recs)
