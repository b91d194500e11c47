"""The contract on recorded wire bytes (workbench/serve/transcripts/, sources in its README): each
transcript replayed by the mock server through the provider it belongs to, with both HTTP
clients; the class, the tokens (visible, reasoning, cached) and TTFT on the first *visible* token."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from tests.conftest import contender_for
from tests.providers.test_contract import SLACK, go
from workbench.providers.errors import classify, parse_go_duration
from workbench.serve import transcripts
from workbench.serve.mock import MockScript, MockServer, transcript_fault

pytestmark = pytest.mark.timeout(30)

TTFT, ITL = 0.05, 0.01


@pytest.fixture(autouse=True, params=["httpcore", "lean"])
def _client_kind(request: pytest.FixtureRequest) -> None:
    """Both HTTP clients, as in the contract suite (its `go` reads this switch)."""
    import tests.providers.test_contract as contract

    contract.LEAN = request.param == "lean"


@dataclass(frozen=True)
class Stream:
    fmt: str
    error_class: str | None
    text: str
    tokens: tuple[int | None, int | None, int | None, int | None, int | None]  # in, out, reasoning, visible, cached
    finish: str | None
    first_visible_event: int | None  # index of the first event with answer text (TTFT lands there)
    options: dict[str, object] | None = None
    said: str | None = None  # what the error message must carry (the provider's refusal text or category)


STREAMS = {
    # gpt-4o cut at max_tokens=1 after one visible token: a short answer, not `truncated`.
    "openai_chat_length_visible": Stream("openai-chat", None, '{"', (79, 1, 0, 1, None), "length", 1),
    # gpt-5 spent its whole cap reasoning: no visible text, finish length → truncated, tokens kept.
    "openai_chat_gpt5_reasoning_only": Stream("openai-chat", "truncated", "", (12, 400, 400, 0, 0), "length", None),
    # Claude with thinking and signature deltas before the text: TTFT is the text_delta's (event 10);
    # it ends with stop_reason refusal — the model declined after "Hi": `refused`, tokens kept.
    "anthropic_thinking_signature": Stream("anthropic", "refused", "Hi", (28, 106, 67, 39, 0), "refusal", 10),
    # overloaded_error inside a 200 stream after one visible delta.
    "anthropic_overloaded_in_stream": Stream("anthropic", "overloaded", "Hello", (None, None, None, None, None),
                                             None, 3),
    # The Responses API: a reasoning item, then the message's output_text deltas.
    "openai_responses_reasoning": Stream("openai-responses", None, "Hello! How can I help you today?",
                                         (13, 75, 64, 11, 0), "completed", 6),
    # The Responses API stopped at max_output_tokens inside the reasoning item.
    "openai_responses_incomplete": Stream("openai-responses", "truncated", "", (13, 64, 64, 0, 0),
                                          "max_output_tokens", None),
    # gpt-4o declined in delta.refusal (no content): `refused`, the refusal text as the message.
    "openai_chat_refusal_stream": Stream("openai-chat", "refused", "", (79, 11, 0, 11, None), "stop", None,
                                         said="I'm sorry, I can't assist with that request."),
    # Five visible tokens, then finish content_filter: `blocked`, the text before kept.
    "openai_chat_content_filter": Stream("openai-chat", "blocked", "Here is the story:", (21, 5, 0, 5, None),
                                         "content_filter", 1),
    # The Responses API's refusal content part, streamed as response.refusal.delta.
    "openai_responses_refusal": Stream("openai-responses", "refused", "", (75, 10, 0, 10, 0), "completed", None,
                                       said="I'm sorry, I can't assist with that."),
    # Claude's stop_reason refusal with stop_details.category "cyber" and no text.
    "anthropic_refusal_stop_details": Stream("anthropic", "refused", "", (20, 0, None, 0, None), "refusal", None,
                                             said="cyber"),
    # Gemini blocked the prompt: one chunk, promptFeedback.blockReason SAFETY, no candidate.
    "gemini_prompt_blocked": Stream("gemini", "blocked", "", (11, 0, None, 0, None), "prompt_blocked:SAFETY",
                                    None, said="SAFETY"),
}


@pytest.mark.parametrize("name", sorted(STREAMS))
def test_recorded_stream(wire: MockServer, name: str) -> None:
    case = STREAMS[name]
    wire.script = MockScript(ttft_s=TTFT, itl_s=ITL)
    wire.fail(transcript_fault(name))
    rec = go(contender_for(case.fmt, wire, options=case.options or {}))
    assert rec.error_class == case.error_class, rec.error_message
    assert rec.http_status == 200
    assert (rec.output_text or "") == case.text
    if case.error_class in (None, "truncated", "refused", "blocked"):  # answered: the tokens were billed
        assert (rec.input_tokens, rec.output_tokens, rec.reasoning_tokens, rec.visible_output_tokens,
                rec.cached_input_tokens) == case.tokens
        assert rec.token_source == "server" and rec.finish_reason == case.finish
    if case.first_visible_event is None:
        assert rec.ttft_s is None and rec.tpot_s is None
    else:
        due = TTFT + case.first_visible_event * ITL
        assert rec.ttft_s is not None and due - 0.001 <= rec.ttft_s <= due + SLACK, rec.ttft_s
    if case.error_class is None and rec.visible_output_tokens and rec.visible_output_tokens >= 2:
        # TPOT over the visible tokens only, never the reasoning ones.
        assert rec.e2e_s is not None and rec.ttft_s is not None
        assert rec.tpot_s == pytest.approx((rec.e2e_s - rec.ttft_s) / (rec.visible_output_tokens - 1))
    if case.error_class == "truncated":
        assert rec.status == "error" and "no visible answer" in (rec.error_message or "")
    if case.said is not None:
        assert case.said in (rec.error_message or ""), rec.error_message


@dataclass(frozen=True)
class Whole:
    """A recorded non-streamed 200 answer that is no answer (a refusal or a safety block)."""

    fmt: str
    error_class: str
    tokens: tuple[int | None, int | None]  # in, out
    finish: str
    said: str


WHOLE = {
    # gpt-4o's message.refusal beside content null (finish stop): `refused`, the refusal as the message.
    "openai_chat_refusal": Whole("openai-chat", "refused", (79, 12), "stop",
                                 "I'm very sorry, but I can't assist with that."),
    # Gemini's candidate stopped by SAFETY, no content, one rating blocked: `blocked`.
    "gemini_finish_safety": Whole("gemini", "blocked", (2417, 1), "SAFETY", "SAFETY"),
}


@pytest.mark.parametrize("name", sorted(WHOLE))
def test_recorded_whole_answer(wire: MockServer, name: str) -> None:
    case = WHOLE[name]
    assert transcripts.error(name).status == 200
    wire.fail(transcript_fault(name))
    rec = go(contender_for(case.fmt, wire), stream=False)
    assert (rec.status, rec.error_class, rec.http_status) == ("error", case.error_class, 200), rec.error_message
    assert (rec.input_tokens, rec.output_tokens) == case.tokens and rec.token_source == "server"
    assert rec.finish_reason == case.finish and case.said in (rec.error_message or ""), rec.error_message


@dataclass(frozen=True)
class Error:
    fmt: str
    error_class: str
    code: str | None
    type_: str | None = None
    retry_after_s: float | None = None


ERRORS = {
    "openai_429_insufficient_quota": Error("openai-chat", "quota_exhausted", "insufficient_quota"),
    "openai_429_insufficient_quota_code_null": Error("openai-chat", "quota_exhausted", "insufficient_quota"),
    # No retry-after header: the wait comes from the message's "Please try again in 26.604s".
    "openai_429_rate_limit_tokens": Error("openai-chat", "rate_limited", "rate_limit_exceeded", "tokens", 26.604),
    "openai_404_model_not_found": Error("openai-chat", "model_not_found", "model_not_found", "invalid_request_error"),
    # The tier spend cap: a 429 rate_limit_error that no retry fixes before next month.
    "anthropic_429_spend_limit": Error("anthropic", "quota_exhausted", "enforced_spend_limit_reached",
                                       "rate_limit_error"),
    "anthropic_402_billing_error": Error("anthropic", "quota_exhausted", "billing_error"),
    "anthropic_404_model_not_found": Error("anthropic", "model_not_found", "not_found_error"),
    # RESOURCE_EXHAUSTED for a per-day quota (QuotaFailure quota id ...PerDay..., no RetryInfo).
    "gemini_429_quota_per_day": Error("gemini", "quota_exhausted", "GenerateRequestsPerDayPerProjectPerModel",
                                      "RESOURCE_EXHAUSTED"),
    "gemini_404_model_not_found": Error("gemini", "model_not_found", "NOT_FOUND"),
}


@pytest.mark.parametrize("name", sorted(ERRORS))
@pytest.mark.parametrize("stream", [True, False], ids=["stream", "whole"])
def test_recorded_error(wire: MockServer, name: str, stream: bool) -> None:
    case = ERRORS[name]
    recorded = transcripts.error(name)
    wire.fail(transcript_fault(name))
    rec = go(contender_for(case.fmt, wire), stream=stream)
    assert rec.error_class == case.error_class, (rec.error_class, rec.error_message)
    assert rec.http_status == recorded.status
    assert (rec.provider_error_code, rec.provider_error_type) == (case.code, case.type_)
    assert rec.retry_after_s == case.retry_after_s
    assert rec.error_message


def test_every_transcript_is_replayed_by_a_test() -> None:
    assert set(transcripts.names()) == set(STREAMS) | set(ERRORS) | set(WHOLE)


def test_transcript_names_with_or_without_suffix_and_unknown_names_list_all() -> None:
    assert transcript_fault("openai_responses_reasoning.sse").kind == "transcript"
    assert transcript_fault("openai_404_model_not_found.json").status == 404
    with pytest.raises(ValueError, match="valid: .*openai_responses_reasoning.*openai_404_model_not_found|"
                                         "valid: .*openai_404_model_not_found.*openai_responses_reasoning"):
        transcript_fault("nope")


@pytest.mark.parametrize(("status", "code", "message", "headers", "cls", "retry", "retryable"), [
    # OpenAI 429 without retry-after: the body's own hint, else the reset header of the exhausted limit.
    (429, "rate_limit_exceeded", "Limit 30000, Used 29937, Requested 385. Please try again in 644ms.", {},
     "rate_limited", 0.644, True),
    (429, "rate_limit_exceeded", "Rate limit reached", {"x-ratelimit-remaining-requests": "0",
                                                        "x-ratelimit-reset-requests": "6m0s",
                                                        "x-ratelimit-remaining-tokens": "12",
                                                        "x-ratelimit-reset-tokens": "20ms"},
     "rate_limited", 360.0, True),
    (429, "rate_limit_exceeded", "Please try again in 1s", {"retry-after": "3"}, "rate_limited", 3.0, True),
    # Both SDKs retry 409 (lock timeout); x-should-retry overrides the class's default either way.
    (409, None, "conflict", {}, "server_error", None, True),
    (500, "api_error", "boom", {"x-should-retry": "false"}, "server_error", None, False),
    (400, "invalid_request_error", "try me", {"x-should-retry": "true"}, "bad_request", None, True),
    # A 403 billing_not_active (an OpenAI account with no active billing) is a quota problem.
    (403, "billing_not_active", "Your account is not active, please check your billing details.", {},
     "quota_exhausted", None, False),
])
def test_classify_hints(status: int, code: str | None, message: str, headers: dict[str, str], cls: str,
                        retry: float | None, retryable: bool) -> None:
    info = classify(status, code, message, headers)
    assert (info.error_class.value, info.retryable) == (cls, retryable)
    assert info.retry_after_s == (pytest.approx(retry) if retry is not None else None)


@pytest.mark.parametrize(("value", "seconds"), [("6m0s", 360.0), ("1.5s", 1.5), ("20ms", 0.02), ("1h2m", 3720.0),
                                                ("26.604s", 26.604), ("soon", None), ("", None)])
def test_parse_go_duration(value: str, seconds: float | None) -> None:
    assert parse_go_duration(value) == (pytest.approx(seconds) if seconds is not None else None)


def test_workbench_probe_on_a_reasoning_transcript(wire: MockServer, tmp_path: object,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    """`workbench probe` against a mock replaying a recorded Claude thinking stream that ends in a
    refusal prints it as `refused` with its reasoning tokens and finish_reason kept (billed), and no
    TPOT (no answer to time)."""
    import json
    from pathlib import Path

    import yaml

    from workbench.cli import main

    wire.script = MockScript(ttft_s=TTFT, itl_s=ITL)
    wire.transcript = "anthropic_thinking_signature"
    c = contender_for("anthropic", wire, reasoning={"budget_tokens": 1024})
    p = Path(str(tmp_path)) / "c.yaml"
    p.write_text(yaml.safe_dump({"contenders": [c.model_dump(mode="json", exclude_none=True)]}))
    assert main(["probe", "--contender", c.name, "--prompt", "What is an eclipse?", "--contenders-file", str(p)]) == 1
    rec = json.loads(capsys.readouterr().out)  # exit 1: not an answer
    assert (rec["reasoning_tokens"], rec["output_tokens"], rec["visible_output_tokens"]) == (67, 106, 39)
    assert rec["finish_reason"] == "refusal" and rec["reasoning"] == "budget=1024"
    assert (rec["status"], rec["error_class"], rec["tpot_s"]) == ("error", "refused", None)
    assert rec["error_message"].startswith("the model declined (finish_reason refusal)")
