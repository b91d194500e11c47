"""The local batch endpoint read by the official SDKs (offline: loopback only): each SDK's own
batch calls and result parsers accept what the endpoint says, so the workbench's batch clients and
the endpoint cannot drift into a private dialect. Items run on the mock server."""

from __future__ import annotations

import io
import json
import time
from collections.abc import Iterator
from typing import Any

import pytest

from workbench.serve.batch import BatchServer
from workbench.serve.mock import MockScript, MockServer

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
def srv() -> Iterator[BatchServer]:
    with (MockServer(MockScript.timed(1, 1, 2, " fine")) as mock,
          BatchServer(mock.base_url, gemini_upstream=mock.base_url_for("gemini"), concurrency=4) as batch):
        yield batch


def _until(get: Any, done: Any, timeout: float = 20.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        obj = get()
        if done(obj) or time.monotonic() > deadline:
            return obj
        time.sleep(0.02)


@pytest.mark.slow  # the vendor SDK's first import: up to ~10 s on 2 cores
def test_openai_sdk(srv: BatchServer) -> None:
    openai = pytest.importorskip("openai")
    lines = [{"custom_id": f"r{i}", "method": "POST", "url": "/v1/chat/completions",
              "body": {"model": "m", "messages": [{"role": "user", "content": f"hi {i}"}], "max_tokens": 4}}
             for i in range(3)]
    data = "".join(json.dumps(x) + "\n" for x in lines).encode()
    with openai.OpenAI(base_url=srv.base_url_for("openai-chat"), api_key="test-key", max_retries=0) as client:
        f = client.files.create(file=("in.jsonl", io.BytesIO(data)), purpose="batch")
        assert f.bytes == len(data) and f.purpose == "batch"
        b = client.batches.create(input_file_id=f.id, endpoint="/v1/chat/completions", completion_window="24h")
        assert b.status == "in_progress" and b.request_counts is not None and b.request_counts.total == 3
        b = _until(lambda: client.batches.retrieve(b.id), lambda x: x.status == "completed")
        assert b.status == "completed" and b.output_file_id and b.error_file_id is None
        assert b.request_counts is not None and b.request_counts.completed == 3
        out = [json.loads(line) for line in client.files.content(b.output_file_id).text.splitlines()]
        assert sorted(o["custom_id"] for o in out) == ["r0", "r1", "r2"]
        assert all(o["response"]["status_code"] == 200 and o["error"] is None for o in out)
        assert out[0]["response"]["body"]["choices"][0]["message"]["content"] == " fine fine"
        cancelled = client.batches.cancel(b.id)  # an ended batch stays as it ended
        assert cancelled.status == "completed"


@pytest.mark.slow  # the vendor SDK's first import: up to ~10 s on 2 cores
def test_anthropic_sdk(srv: BatchServer) -> None:
    anthropic = pytest.importorskip("anthropic")
    with anthropic.Anthropic(base_url=srv.url, api_key="test-key", max_retries=0) as client:
        b = client.messages.batches.create(requests=[
            {"custom_id": f"r{i}", "params": {"model": "claude-test", "max_tokens": 4,
                                              "messages": [{"role": "user", "content": f"hi {i}"}]}}
            for i in range(3)])
        assert b.processing_status == "in_progress" and b.request_counts.processing == 3
        b = _until(lambda: client.messages.batches.retrieve(b.id), lambda x: x.processing_status == "ended")
        assert b.request_counts.succeeded == 3 and b.results_url and b.ended_at is not None
        results = list(client.messages.batches.results(b.id))
        assert sorted(r.custom_id for r in results) == ["r0", "r1", "r2"]
        assert all(r.result.type == "succeeded" for r in results)
        first: Any = results[0].result
        assert first.message.content[0].text == " fine fine" and first.message.usage.output_tokens == 2


@pytest.mark.slow  # the vendor SDK's first import: up to ~10 s on 2 cores
def test_google_genai_sdk(srv: BatchServer) -> None:
    genai = pytest.importorskip("google.genai")
    from google.genai import types

    client = genai.Client(api_key="test-key", http_options=types.HttpOptions(base_url=srv.url, api_version="v1beta"))
    try:
        job = client.batches.create(model="gemini-test", src=[
            {"contents": [{"parts": [{"text": f"hi {i}"}], "role": "user"}], "metadata": {"key": f"r{i}"}}
            for i in range(3)])
        assert job.name is not None and job.name.startswith("batches/")
        name = job.name
        job = _until(lambda: client.batches.get(name=name), lambda x: x.done)
        assert job.state == types.JobState.JOB_STATE_SUCCEEDED
        assert job.dest is not None and job.dest.inlined_responses is not None
        answers = job.dest.inlined_responses
        assert [a.metadata for a in answers] == [{"key": f"r{i}"} for i in range(3)]
        assert all(a.response is not None and a.response.text == " fine fine" for a in answers)
    finally:
        client.close()


def test_cancel_leaves_items_not_started_cancelled() -> None:
    with (MockServer(MockScript.timed(100, 1, 1, " x")) as slow,
          BatchServer(slow.base_url, concurrency=1) as srv):
        openai = pytest.importorskip("openai")
        lines = "".join(json.dumps({"custom_id": f"r{i}", "method": "POST", "url": "/v1/chat/completions",
                                    "body": {"model": "m", "messages": [{"role": "user", "content": "hi"}]}}) + "\n"
                        for i in range(6))
        with openai.OpenAI(base_url=srv.base_url_for("openai-chat"), api_key="k", max_retries=0) as client:
            f = client.files.create(file=("in.jsonl", io.BytesIO(lines.encode())), purpose="batch")
            b = client.batches.create(input_file_id=f.id, endpoint="/v1/chat/completions", completion_window="24h")
            time.sleep(0.15)
            assert client.batches.cancel(b.id).status == "cancelling"
            b = _until(lambda: client.batches.retrieve(b.id), lambda x: x.status == "cancelled")
            assert b.status == "cancelled" and b.error_file_id
            errors = [json.loads(x) for x in client.files.content(b.error_file_id).text.splitlines()]
        assert {e["error"]["code"] for e in errors} == {"batch_cancelled"} and 3 <= len(errors) <= 5
