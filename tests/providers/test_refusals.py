"""Refusals and safety blocks are typed outcomes, not `ok` answers graded "not attempted":
`refused` (the model declined) and `blocked` (the provider's safety system stopped it), in each
wire format as its official SDK's types spell them. The bodies are assembled from those types
(openai-python `types/chat/chat_completion_message.py` `refusal`, `chat_completion_chunk.py`
`delta.refusal`, finish `content_filter`; `types/responses/response_output_refusal.py`, the
`response.refusal.delta` event; anthropic-sdk-python `types/message.py` stop_reason `refusal` with
`types/refusal_stop_details.py`; google-genai `types.FinishReason` / `BlockedReason`)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.conftest import contender_for
from workbench.measure.probe import finish_record
from workbench.providers import get_provider
from workbench.providers.sse import SSEEvent
from workbench.serve.mock import MockServer
from workbench.types import Prompt, Record, Usage


def _record(wire: MockServer, fmt: str, *, text: str, finish: str | None, refusal: str | None = None) -> Record:
    c = contender_for(fmt, wire)
    rec = Record(run_id="t", experiment="t", contender=c.name, model=c.model, request_id="r", t_start_unix=0.0,
                 e2e_s=0.5, ttft_s=0.1)
    return finish_record(rec, c, Prompt("p", "q"), text=text, full_chars=len(text), finish=finish,
                         usage=Usage(input_tokens=10, output_tokens=5), timings=None, err=None, api_key=None,
                         refusal=refusal)


def _feed(fmt: str, events: list[dict[str, Any]]) -> tuple[str, str | None, str | None]:
    parser = get_provider(fmt).stream_parser()
    text, finish, refusal = "", None, ""
    for e in events:
        for d in parser.feed(SSEEvent(str(e.get("type", "message")), json.dumps(e))):
            text += d.text or ""
            finish = d.finish_reason or finish
            refusal += d.refusal or ""
    return text, finish, refusal or None


def test_openai_chat_refusal_field_streamed_and_whole(wire: MockServer) -> None:
    chat = get_provider("openai-chat")
    whole = chat.parse_response({"choices": [{"index": 0, "finish_reason": "stop", "message": {
        "role": "assistant", "content": None, "refusal": "I'm sorry, I cannot assist with that request."}}]})
    assert whole.refusal == "I'm sorry, I cannot assist with that request." and whole.text == ""
    text, finish, refusal = _feed("openai-chat", [
        {"choices": [{"index": 0, "delta": {"role": "assistant", "refusal": ""}, "finish_reason": None}]},
        {"choices": [{"index": 0, "delta": {"refusal": "I'm sorry, "}, "finish_reason": None}]},
        {"choices": [{"index": 0, "delta": {"refusal": "I cannot help."}, "finish_reason": None}]},
        {"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}])
    assert (text, finish, refusal) == ("", "stop", "I'm sorry, I cannot help.")
    rec = _record(wire, "openai-chat", text=text, finish=finish, refusal=refusal)
    assert (rec.status, rec.error_class) == ("error", "refused")
    assert rec.error_message == "the model declined (finish_reason stop): I'm sorry, I cannot help."
    assert (rec.input_tokens, rec.output_tokens) == (10, 5)  # billed: kept


def test_openai_content_filter_is_blocked(wire: MockServer) -> None:
    rec = _record(wire, "openai-chat", text="Here is how to", finish="content_filter")
    assert (rec.error_class, rec.provider_error_code) == ("blocked", "content_filter")
    assert rec.output_text == "Here is how to"  # what came before the filter stays on the record


def test_responses_refusal_part_and_event(wire: MockServer) -> None:
    responses = get_provider("openai-responses")
    body = {"status": "completed", "output": [{"type": "message", "role": "assistant", "content": [
        {"type": "refusal", "refusal": "I can't help with that."}]}], "usage": {"input_tokens": 9, "output_tokens": 7}}
    assert responses.parse_response(body).refusal == "I can't help with that."
    text, finish, refusal = _feed("openai-responses", [
        {"type": "response.refusal.delta", "delta": "I can't "},
        {"type": "response.refusal.delta", "delta": "help with that."},
        {"type": "response.refusal.done", "refusal": "I can't help with that."},
        {"type": "response.completed", "response": body}])
    assert (text, finish, refusal) == ("", "completed", "I can't help with that.")
    assert _record(wire, "openai-responses", text=text, finish=finish, refusal=refusal).error_class == "refused"


def test_anthropic_refusal_with_its_policy_category(wire: MockServer) -> None:
    claude = get_provider("anthropic")
    body = {"content": [{"type": "text", "text": "I can't"}], "stop_reason": "refusal",
            "stop_details": {"type": "refusal", "category": "cyber", "explanation": "could enable malware"}}
    whole = claude.parse_response(body)
    assert whole.refusal == "category cyber: could enable malware"
    text, finish, refusal = _feed("anthropic", [
        {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "I can't"}},
        {"type": "message_delta", "delta": {"stop_reason": "refusal", "stop_details": {"type": "refusal",
                                                                                         "category": None}},
         "usage": {"output_tokens": 3}}])
    assert (text, finish, refusal) == ("I can't", "refusal", "category no named category")
    rec = _record(wire, "anthropic", text=text, finish=finish, refusal=refusal)
    assert rec.error_class == "refused" and "category no named category" in (rec.error_message or "")


@pytest.mark.parametrize("finish", ["SAFETY", "PROHIBITED_CONTENT", "RECITATION", "SPII"])
def test_gemini_safety_finishes_and_prompt_blocks_are_blocked(wire: MockServer, finish: str) -> None:
    gemini = get_provider("gemini")
    whole = gemini.parse_response({"candidates": [{"content": {"parts": []}, "finishReason": finish}]})
    assert _record(wire, "gemini", text=whole.text, finish=whole.finish_reason).error_class == "blocked"
    prompt = gemini.parse_response({"promptFeedback": {"blockReason": "JAILBREAK"}})
    rec = _record(wire, "gemini", text=prompt.text, finish=prompt.finish_reason)
    assert rec.error_class == "blocked" and "prompt_blocked:JAILBREAK" in (rec.error_message or "")


def test_an_ordinary_answer_is_neither(wire: MockServer) -> None:
    for fmt, finish in (("openai-chat", "stop"), ("anthropic", "end_turn"), ("gemini", "STOP")):
        assert _record(wire, fmt, text="Paris", finish=finish).ok


@pytest.mark.parametrize(("status", "detail", "expected"), [
    (429, "contract_spend_limit_reached", "quota_exhausted"),
    (429, "linked_organization_spend_limit_reached", "quota_exhausted"),
    (400, "organization_on_hold", "auth"),
])
def test_anthropic_account_states_are_not_retried_as_rate_limits(status: int, detail: str, expected: str) -> None:
    """anthropic-sdk-python 2.x `types/shared/`: the spend caps and the organization on hold come
    as `error.details.error_code`; none of them is fixed by retrying, nor a bad request."""
    from workbench.providers.anthropic import classify_body

    etype = "rate_limit_error" if status == 429 else "invalid_request_error"
    info = classify_body(status, {"type": "error", "error": {"type": etype, "message": "m",
                                                             "details": {"error_code": detail}}})
    assert (info.error_class.value, info.retryable) == (expected, False)


def test_responses_caps_below_its_minimum_are_raised_to_it(wire: MockServer) -> None:
    from workbench.providers.openai_responses import MIN_OUTPUT_TOKENS
    from workbench.types import Prompt as P

    responses = get_provider("openai-responses")
    for asked, sent in ((1, MIN_OUTPUT_TOKENS), (8, MIN_OUTPUT_TOKENS), (64, 64)):
        c = contender_for("openai-responses", wire, sampling={"max_tokens": asked})
        req = responses.build_request(c, P("p", "q"), stream=False, api_key=None, base_url=c.base_url or "")
        assert req.json["max_output_tokens"] == sent, asked


def test_a_whole_responses_body_that_failed_is_typed_by_its_code(wire: MockServer) -> None:
    """A non-streamed Responses `status: failed` (openai-python `types/responses/response.py`
    `error: ResponseError {code, message}`) is the class its code says, as in a stream — not an
    unreadable `protocol` response."""
    from workbench.providers.base import ResponseError

    body = {"status": "failed", "output": [], "error": {"code": "rate_limit_exceeded", "message": "Slow down"}}
    with pytest.raises(ResponseError) as caught:
        get_provider("openai-responses").parse_response(body)
    assert caught.value.info.error_class.value == "rate_limited" and "Slow down" in caught.value.info.message


def test_anthropic_context_window_end_is_a_cut_off(wire: MockServer) -> None:
    """stop_reason `model_context_window_exceeded` (anthropic-sdk-python `types/stop_reason.py`):
    the window, not the cap, ended the answer — with no visible text that is `truncated`."""
    assert _record(wire, "anthropic", text="", finish="model_context_window_exceeded").error_class == "truncated"
    assert _record(wire, "anthropic", text="Partial", finish="model_context_window_exceeded").ok
