"""Format-specific details the shared contract cannot express."""

from __future__ import annotations

import pytest

from tests.conftest import contender_for
from tests.providers.test_contract import PROMPT, go
from workbench.errors import ConfigError
from workbench.providers import get_provider
from workbench.providers.errors import classify, parse_duration, parse_retry_after
from workbench.providers.generic import get_path
from workbench.providers.sse import SSEEvent
from workbench.serve.mock import MockScript, MockServer

pytestmark = pytest.mark.timeout(20)


def test_anthropic_cache_counts_sum_into_total_input(wire: MockServer) -> None:
    wire.script = MockScript(input_tokens=30, cached_input_tokens=20, cache_creation_input_tokens=4)
    for stream in (True, False):
        rec = go(contender_for("anthropic", wire), stream=stream)
        assert (rec.input_tokens, rec.cached_input_tokens) == (30, 20), stream


def test_anthropic_request_shape(wire: MockServer) -> None:
    """As SDK 2.x sends it: anthropic-version 2026-10-21, whose Messages request has no
    temperature or top_p; the version before it, selected per contender, still carries them."""
    sampling = {"max_tokens": 7, "stop": ["END"], "top_p": 0.9, "temperature": 0.0}
    go(contender_for("anthropic", wire, sampling=sampling))
    req = wire.requests[-1]
    assert req["path"] == "/v1/messages"
    assert req["headers"]["anthropic-version"] == "2026-10-21"
    body = req["json"]
    assert body["max_tokens"] == 7 and body["stop_sequences"] == ["END"]
    assert "top_p" not in body and "temperature" not in body and "top_k" not in body
    assert body["system"] == "Be brief." and body["stream"] is True
    assert body["messages"] == [{"role": "user", "content": PROMPT.text}]
    go(contender_for("anthropic", wire, sampling=sampling, options={"anthropic_version": "2023-06-01"}))
    req = wire.requests[-1]
    assert req["headers"]["anthropic-version"] == "2023-06-01"
    assert req["json"]["top_p"] == 0.9 and req["json"]["temperature"] == 0.0


def test_anthropic_ignores_thinking_and_unknown_events() -> None:
    parser = get_provider("anthropic").stream_parser()
    assert parser.feed(SSEEvent("content_block_delta", '{"type": "content_block_delta", "index": 0, '
                                '"delta": {"type": "thinking_delta", "thinking": "hmm"}}')) == []
    assert parser.feed(SSEEvent("content_block_delta", '{"type": "content_block_delta", "index": 1, '
                                '"delta": {"type": "input_json_delta", "partial_json": "{"}}')) == []
    assert parser.feed(SSEEvent("brand_new", '{"type": "brand_new"}')) == []


def test_gemini_thoughts_do_not_start_ttft_and_count_as_output(wire: MockServer) -> None:
    wire.script = MockScript(ttft_s=0.1, thoughts_tokens=3, cached_input_tokens=5)
    rec = go(contender_for("gemini", wire))
    assert rec.ok and rec.output_text == "Hello, world!"
    assert rec.ttft_s is not None and rec.ttft_s >= 0.099
    assert (rec.output_tokens, rec.reasoning_tokens, rec.cached_input_tokens) == (7, 3, 5)
    whole = go(contender_for("gemini", wire), stream=False)
    assert whole.output_text == "Hello, world!" and whole.output_tokens == 7


def test_gemini_request_shape(wire: MockServer) -> None:
    c = contender_for("gemini", wire, sampling={"max_tokens": 9, "seed": 3, "stop": ["x"]},
                      options={"thinking_budget": 0})
    go(c)
    req = wire.requests[-1]
    assert req["path"] == "/v1beta/models/gemini-test:streamGenerateContent?alt=sse"
    gen = req["json"]["generationConfig"]
    assert gen == {"maxOutputTokens": 9, "temperature": 0.0, "seed": 3, "stopSequences": ["x"],
                   "thinkingConfig": {"thinkingBudget": 0}}
    assert req["json"]["systemInstruction"] == {"parts": [{"text": "Be brief."}]}
    go(c, stream=False)
    assert wire.requests[-1]["path"] == "/v1beta/models/gemini-test:generateContent"


def test_gemini_blocked_prompt_completes() -> None:
    parser = get_provider("gemini").stream_parser()
    out = parser.feed(SSEEvent("message", '{"promptFeedback": {"blockReason": "SAFETY"}}'))
    assert out[0].finish_reason == "prompt_blocked:SAFETY"


def test_generic_paths_and_auth_header(wire: MockServer) -> None:
    c = contender_for("generic", wire, options={"stream": "none", "path": "/generate",
                                                "text_path": "text", "auth_header": "x-token",
                                                "auth_scheme": "{key}"},
                      prompt_template="<s>{prompt}</s>")
    rec = go(c, stream=False)
    assert rec.ok and rec.output_tokens == 4
    req = wire.requests[-1]
    assert req["json"]["prompt"] == f"<s>{PROMPT.text}</s>" and "authorization" not in req["headers"]
    assert req["headers"]["x-token"].startswith("canary-")


def test_generic_refuses_to_stream_unless_declared(wire: MockServer) -> None:
    c = contender_for("generic", wire, options={"stream": "none"})
    with pytest.raises(ConfigError, match="stream=False"):
        go(c, stream=True)


def test_get_path() -> None:
    obj = {"choices": [{"text": "a"}, {"text": "b"}], "usage": {"n": 3}}
    assert get_path(obj, "choices.1.text") == "b"
    assert get_path(obj, "choices.-1.text") == "b"
    assert get_path(obj, "choices.5.text") is None
    assert get_path(obj, "usage.n") == 3
    assert get_path(obj, "usage.n.x", "d") == "d"


@pytest.mark.parametrize(("headers", "expected"), [
    ({"retry-after": "12"}, 12.0),
    ({"Retry-After": "1.5"}, 1.5),
    ({"retry-after-ms": "350"}, 0.35),
    ({"retry-after": "Wed, 21 Oct 2015 07:28:00 GMT"}, 0.0),  # in the past: no wait
    ({"retry-after": "soon"}, None),
    ({}, None),
])
def test_parse_retry_after(headers: dict[str, str], expected: float | None) -> None:
    assert parse_retry_after(headers) == expected


@pytest.mark.parametrize(("value", "expected"), [
    ("7s", 7.0), ("1.5s", 1.5), ("0.250s", 0.25), ({"seconds": 2, "nanos": 500000000}, 2.5),
    ("bogus", None), (None, None),
])
def test_parse_duration(value: object, expected: float | None) -> None:
    assert parse_duration(value) == expected


@pytest.mark.parametrize(("status", "code", "message", "cls"), [
    (429, "rate_limit_exceeded", "", "rate_limited"),
    (429, "rate_limit_error", "", "rate_limited"),
    (429, "RESOURCE_EXHAUSTED", "You exceeded your current quota", "rate_limited"),
    (429, "rate_limit_exceeded", "Concurrent limit reached: 512 active requests", "rate_limited"),
    (429, "insufficient_quota", "", "quota_exhausted"),
    (429, None, "You exceeded your current quota, please check your plan", "quota_exhausted"),
    (529, "overloaded_error", "", "overloaded"),
    (503, None, "", "overloaded"),
    (None, "UNAVAILABLE", "", "overloaded"),
    (401, None, "", "auth"),
    (403, "PERMISSION_DENIED", "", "auth"),
    (None, "UNAUTHENTICATED", "", "auth"),
    (400, None, "", "bad_request"),
    (404, "not_found_error", "", "bad_request"),
    (413, "request_too_large", "", "bad_request"),
    (422, None, "", "bad_request"),
    (None, "INVALID_ARGUMENT", "", "bad_request"),
    (None, "FAILED_PRECONDITION", "", "bad_request"),
    (500, "api_error", "", "server_error"),
    (502, None, "", "server_error"),
    (None, "INTERNAL", "", "server_error"),
    (None, "DEADLINE_EXCEEDED", "", "timeout"),
    (504, None, "", "timeout"),
])
def test_classify_table(status: int | None, code: str | None, message: str, cls: str) -> None:
    info = classify(status, code, message)
    assert info.error_class.value == cls
    assert info.retryable == (cls in {"rate_limited", "overloaded", "server_error", "timeout"})


def test_anthropic_usage_accumulates_across_events_as_the_sdk_does() -> None:
    """Newer API versions repeat input and cache counts in message_delta; each field a delta
    carries replaces the snapshot's, the prompt total is summed from the merged fields, and
    thinking tokens come from output_tokens_details."""
    parser = get_provider("anthropic").stream_parser()
    start = parser.feed(SSEEvent("message_start", '{"type": "message_start", "message": {"usage": '
                                 '{"input_tokens": 10, "cache_read_input_tokens": 0, "output_tokens": 1}}}'))
    assert start[0].usage is not None and start[0].usage.output_tokens is None  # a placeholder, not a count
    out = parser.feed(SSEEvent("message_delta", '{"type": "message_delta", "delta": {"stop_reason": "end_turn"}, '
                               '"usage": {"cache_read_input_tokens": 90, "cache_creation_input_tokens": 5, '
                               '"output_tokens": 40, "output_tokens_details": {"thinking_tokens": 30}}}'))
    usage = out[0].usage
    assert usage is not None
    assert (usage.input_tokens, usage.cached_input_tokens, usage.cache_creation_input_tokens) == (105, 90, 5)
    assert (usage.output_tokens, usage.reasoning_tokens) == (40, 30)
    assert out[1].finish_reason == "end_turn"


def test_anthropic_thinking_without_a_count_is_estimated_and_flagged() -> None:
    """An older response shape: thinking deltas streamed, no output_tokens_details."""
    parser = get_provider("anthropic").stream_parser()
    parser.feed(SSEEvent("content_block_delta", '{"type": "content_block_delta", "index": 0, '
                         '"delta": {"type": "thinking_delta", "thinking": "let me think"}}'))
    parser.feed(SSEEvent("content_block_delta", '{"type": "content_block_delta", "index": 1, '
                         '"delta": {"type": "text_delta", "text": "Paris is the capital."}}'))
    [delta] = parser.feed(SSEEvent("message_delta", '{"type": "message_delta", "delta": {}, '
                                   '"usage": {"output_tokens": 50}}'))
    assert delta.usage is not None
    assert (delta.usage.reasoning_tokens, delta.usage.reasoning_estimated) == (50 - 5, True)
