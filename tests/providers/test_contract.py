"""One contract, every wire format: the same checks run against each format's faithful server.

Matrix: format × {stream timing/usage, non-stream, every error class, in-stream error,
truncated/aborted/malformed stream, timeout, connection, retry-after sources, retries}.
"""

from __future__ import annotations

import email.utils
import itertools
import socket
import time
from typing import Any

import pytest

from tests.conftest import CANARY, contender_for, run
from workbench.config import Contender
from workbench.measure.probe import make_client, probe
from workbench.measure.retry import RetryPolicy, probe_with_retries
from workbench.measure.target import Target
from workbench.serve.mock import FORMATS, Fault, MockScript, MockServer, error_fault
from workbench.types import Prompt, Record

pytestmark = pytest.mark.timeout(30)

PROMPT = Prompt(id="p1", text="Say hello.")
TTFT, ITL = 0.12, 0.02
# TTFT can never be below the configured delay; above it by at most the client's overhead plus
# the scheduler's latency on two shared cores. Typical overhead is ~5 ms; the slack is wide
# because these run beside real model servers. Precise fidelity is measured in
# tests/test_synthetic_fidelity.py and bench/ instead.
SLACK = 0.08
LEAN = False


@pytest.fixture(autouse=True, params=["httpcore", "lean"])
def _client_kind(request: pytest.FixtureRequest) -> None:
    """Every contract holds for both clients: httpx over httpcore (single requests) and the
    lean HTTP/1.1 transport (load runs, `workbench.measure.http11`)."""
    global LEAN
    LEAN = request.param == "lean"


def go(c: Contender, *, stream: bool = True, **kw: Any) -> Record:
    async def _go() -> Record:
        async with make_client(2, c.timeout_s, lean=LEAN) as client:
            return await probe(client, Target.hosted(c, stream=stream), PROMPT, **kw)

    return run(_go())


@pytest.mark.parametrize("fmt", FORMATS)
def test_stream_timing_and_usage(wire: MockServer, fmt: str) -> None:
    wire.script = MockScript(ttft_s=TTFT, itl_s=ITL)
    go(contender_for(fmt, wire))  # warm-up: the first request of a process pays one-off import costs
    rec = go(contender_for(fmt, wire))
    assert rec.ok, rec.error_message
    assert rec.output_text == "Hello, world!"
    assert rec.ttft_s is not None and rec.e2e_s is not None
    assert TTFT - 0.001 <= rec.ttft_s <= TTFT + SLACK, rec.ttft_s
    assert rec.ttft_s < rec.e2e_s
    assert rec.e2e_s >= TTFT + 3 * ITL - 0.001
    assert rec.n_chunks == 4
    assert (rec.input_tokens, rec.output_tokens, rec.token_source) == (12, 4, "server")
    assert rec.tokens_estimated is False
    assert rec.finish_reason
    assert rec.tpot_s is not None and rec.tpot_s > 0


@pytest.mark.parametrize("fmt", FORMATS)
def test_non_stream(wire: MockServer, fmt: str) -> None:
    wire.script = MockScript(ttft_s=TTFT, itl_s=ITL)
    rec = go(contender_for(fmt, wire), stream=False)
    assert rec.ok, rec.error_message
    assert rec.output_text == "Hello, world!"
    assert rec.ttft_s is None
    assert rec.e2e_s is not None and rec.e2e_s >= TTFT + 3 * ITL - 0.001
    assert (rec.input_tokens, rec.output_tokens, rec.token_source) == (12, 4, "server")


ERROR_CASES = [
    (fmt, cls, status)
    for fmt in FORMATS
    for cls, status in {
        "openai-chat": {"rate_limited": 429, "quota_exhausted": 429, "overloaded": 503, "auth": 401,
                        "bad_request": 400, "server_error": 500, "model_not_found": 404},
        "openai-completions": {"rate_limited": 429, "quota_exhausted": 429, "overloaded": 503,
                               "auth": 401, "bad_request": 400, "server_error": 500},
        "openai-responses": {"rate_limited": 429, "quota_exhausted": 429, "overloaded": 503, "auth": 401,
                             "bad_request": 400, "server_error": 500, "model_not_found": 404},
        "anthropic": {"rate_limited": 429, "quota_exhausted": 400, "overloaded": 529, "auth": 401,
                      "bad_request": 400, "server_error": 500, "model_not_found": 404},
        # Gemini: RESOURCE_EXHAUSTED is rate_limited unless a QuotaFailure names a per-day quota;
        # a bad key is a 400 with reason API_KEY_INVALID.
        "gemini": {"rate_limited": 429, "quota_exhausted": 429, "overloaded": 503, "auth": 400,
                   "bad_request": 400, "server_error": 500, "timeout": 504, "model_not_found": 404},
        "generic": {"rate_limited": 429, "quota_exhausted": 429, "overloaded": 503, "auth": 401,
                    "bad_request": 422, "server_error": 500},
    }[fmt].items()
]


@pytest.mark.parametrize(("fmt", "cls", "status"), ERROR_CASES)
@pytest.mark.parametrize("stream", [True, False], ids=["stream", "whole"])
def test_http_error_classes(wire: MockServer, fmt: str, cls: str, status: int, stream: bool) -> None:
    wire.fail(error_fault(fmt, cls))
    rec = go(contender_for(fmt, wire), stream=stream)
    assert rec.status == "error"
    assert rec.error_class == cls, (rec.error_class, rec.error_message)
    assert rec.http_status == status
    assert rec.error_message
    if not (fmt == "generic" and cls == "bad_request"):  # FastAPI 422 `detail` has no code
        assert rec.provider_error_code


IN_STREAM = {
    "openai-chat": ("server_error", None),
    "openai-responses": ("server_error", None),
    "openai-completions": ("server_error", None),
    "anthropic": ("overloaded", None),
    "gemini": ("rate_limited", 7.0),
    "generic": ("rate_limited", None),
}


@pytest.mark.parametrize("fmt", FORMATS)
def test_in_stream_error_event(wire: MockServer, fmt: str) -> None:
    wire.fail(Fault("stream_error"))
    rec = go(contender_for(fmt, wire))
    cls, retry = IN_STREAM[fmt]
    assert (rec.error_class, rec.retry_after_s) == (cls, retry), rec.error_message
    assert rec.http_status == 200  # the error arrived inside a 200 stream
    assert rec.n_chunks == 1  # the chunk before the error was seen and timed


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("kind", ["truncated_json", "abort", "malformed_sse"])
def test_broken_streams_are_protocol_errors(wire: MockServer, fmt: str, kind: str) -> None:
    wire.fail(Fault(kind))
    rec = go(contender_for(fmt, wire))
    assert rec.error_class == "protocol", (rec.error_class, rec.error_message)
    if kind == "truncated_json":
        assert "truncated" in (rec.error_message or "")


@pytest.mark.parametrize("fmt", FORMATS)
def test_timeout(wire: MockServer, fmt: str) -> None:
    """The client gives up at its own timeout, not when the (much later) first byte comes."""
    wire.script = MockScript(ttft_s=12.0)
    rec = go(contender_for(fmt, wire, timeout_s=0.25))
    assert rec.error_class == "timeout"
    assert rec.e2e_s is not None and 0.24 <= rec.e2e_s < wire.script.ttft_s


@pytest.mark.parametrize("fmt", FORMATS)
def test_connection_refused(wire: MockServer, fmt: str) -> None:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    c = contender_for(fmt, wire, base_url=f"http://127.0.0.1:{port}")
    rec = go(c)
    assert rec.error_class == "connection"


def _http_date(seconds_ahead: float) -> str:
    return email.utils.formatdate(time.time() + seconds_ahead, usegmt=True)


RETRY_AFTER_CASES = [
    *[(fmt, {"retry-after": "3"}, 3.0) for fmt in FORMATS if fmt != "gemini"],
    ("openai-chat", {"retry-after-ms": "250", "retry-after": "1"}, 0.25),
    ("generic", {"retry-after": "<http-date +30s>"}, 30.0),
    ("gemini", None, 7.0),  # google.rpc.RetryInfo retryDelay "7s" in the body
]


@pytest.mark.parametrize(("fmt", "headers", "expected"), RETRY_AFTER_CASES)
def test_retry_after_sources(wire: MockServer, fmt: str, headers: dict[str, str] | None,
                             expected: float) -> None:
    is_date = headers is not None and headers.get("retry-after") == "<http-date +30s>"
    if is_date:
        headers = {"retry-after": _http_date(30)}  # now, not at collection time
    fault = error_fault(fmt, "rate_limited")
    rl = {"x-ratelimit-limit-requests": "500", "x-ratelimit-remaining-requests": "0",
          "anthropic-ratelimit-requests-remaining": "0"}
    fault.headers = {**(headers or {}), **rl}
    wire.fail(fault)
    rec = go(contender_for(fmt, wire))
    assert rec.error_class == "rate_limited"
    assert rec.retry_after_s is not None
    if is_date:  # HTTP dates have 1 s resolution
        assert abs(rec.retry_after_s - expected) < 2.0
    else:
        assert rec.retry_after_s == expected
    assert rec.rate_limit is not None
    assert rec.rate_limit["x-ratelimit-remaining-requests"] == "0"
    assert "anthropic-ratelimit-requests-remaining" in rec.rate_limit


def test_gemini_fractional_retry_delay(wire: MockServer) -> None:
    wire.fail(error_fault("gemini", "rate_limited", retry_s=1.5))
    rec = go(contender_for("gemini", wire))
    assert rec.retry_after_s == 1.5


@pytest.mark.parametrize("fmt", FORMATS)
def test_retries_one_record_per_attempt(wire: MockServer, fmt: str) -> None:
    wait = 0.05
    wire.fail(error_fault(fmt, "rate_limited", retry_s=wait), error_fault(fmt, "overloaded"))
    c = contender_for(fmt, wire)
    policy = RetryPolicy(max_attempts=4, backoff_base_s=0.03, backoff_cap_s=0.05, seed=1)

    async def _go() -> list[Record]:
        async with make_client(2, c.timeout_s, lean=LEAN) as client:
            return await probe_with_retries(client, Target.hosted(c), PROMPT, policy, request_id="logical-1")

    recs = run(_go())
    assert [r.attempt for r in recs] == [1, 2, 3]
    assert [r.error_class for r in recs] == ["rate_limited", "overloaded", None]
    assert {r.logical_request_id for r in recs} == {"logical-1"}
    assert len({r.request_id for r in recs}) == 3
    assert recs[-1].ok and recs[-1].output_text == "Hello, world!"
    # The server's hint was honoured, and no sleep is inside any attempt's e2e: each wait lies
    # between one attempt's end and the next one's start (a wait timed inside either attempt
    # would leave no such gap).
    assert recs[1].extra["retry_wait_s"] == pytest.approx(wait)
    for prev, nxt in itertools.pairwise(recs):
        assert prev.e2e_s is not None
        gap = nxt.t_start_unix - (prev.t_start_unix + prev.e2e_s)
        assert gap >= nxt.extra["retry_wait_s"] - 0.005


@pytest.mark.parametrize("fmt", FORMATS)
def test_no_retry_for_non_retryable(wire: MockServer, fmt: str) -> None:
    wire.fail(error_fault(fmt, "auth"))
    c = contender_for(fmt, wire)

    async def _go() -> list[Record]:
        async with make_client(2, c.timeout_s, lean=LEAN) as client:
            return await probe_with_retries(client, Target.hosted(c), PROMPT, RetryPolicy(max_attempts=3))

    recs = run(_go())
    assert len(recs) == 1 and recs[0].error_class == "auth"


KEY_HEADER = {"openai-chat": ("authorization", f"Bearer {CANARY}"),
              "openai-completions": ("authorization", f"Bearer {CANARY}"),
    "openai-responses": ("authorization", f"Bearer {CANARY}"),
              "anthropic": ("x-api-key", CANARY),
              "gemini": ("x-goog-api-key", CANARY),
              "generic": ("authorization", f"Bearer {CANARY}")}


@pytest.mark.parametrize("fmt", FORMATS)
def test_canary_key_never_in_records(wire: MockServer, fmt: str) -> None:
    """The key reaches the server in the format's own header, and never any record, even when
    the server echoes it in an error message or in its answer."""
    c = contender_for(fmt, wire)
    wire.script = MockScript(pieces=("echo ", CANARY), headers={"x-ratelimit-remaining-requests": "9"})
    ok = go(c)
    fault = error_fault(fmt, "auth")
    fault.body = _echo(fault.body)
    fault.headers = {"x-ratelimit-limit-requests": "10"}
    wire.fail(fault)
    bad = go(c)
    assert ok.ok and bad.error_class == "auth"
    name, value = KEY_HEADER[fmt]
    assert all(r["headers"].get(name) == value for r in wire.requests)
    for rec in (ok, bad):
        flat = repr(rec.to_dict())
        assert CANARY not in flat
        assert not any(k in flat.lower() for k in ("authorization", "x-api-key", "x-goog-api-key"))
    assert "[REDACTED]" in (bad.error_message or "")


def _echo(body: Any) -> Any:
    """The same error body with the key echoed into its message."""
    import json

    return json.loads(json.dumps(body).replace("invalid x-api-key", f"bad key {CANARY}")
                      .replace("Incorrect API key provided: sk-abc***xyz.", f"bad key {CANARY}")
                      .replace("API key not valid.", f"bad key {CANARY}")
                      .replace("bad token", f"bad key {CANARY}"))
