"""The processing tier and speed on the record: what the request asked (its body) and what the
response says served it (OpenAI `service_tier`, Anthropic `usage.service_tier` / `usage.speed`),
and in the manifest's request summary. Both change latency and price."""

from __future__ import annotations

from typing import Any

import pytest

from tests.conftest import contender_for
from tests.providers.test_contract import go
from workbench.providers.base import request_summary
from workbench.serve.faults import Fault
from workbench.serve.mock import MockScript, MockServer, transcript_fault

_CHAT = {"id": "c", "object": "chat.completion", "created": 0, "model": "gpt-6-luna", "service_tier": "flex",
         "choices": [{"index": 0, "message": {"role": "assistant", "content": "Hi"}, "finish_reason": "stop"}],
         "usage": {"prompt_tokens": 5, "completion_tokens": 1, "total_tokens": 6}}
_RESPONSES = {"id": "r", "object": "response", "status": "completed", "model": "gpt-6-luna", "service_tier": "flex",
              "output": [{"type": "message", "role": "assistant", "status": "completed",
                          "content": [{"type": "output_text", "text": "Hi", "annotations": []}]}],
              "usage": {"input_tokens": 5, "output_tokens": 1, "total_tokens": 6}}
_CLAUDE = {"id": "m", "type": "message", "role": "assistant", "model": "claude-haiku-5-5",
           "content": [{"type": "text", "text": "Hi"}], "stop_reason": "end_turn", "stop_sequence": None,
           "usage": {"input_tokens": 5, "output_tokens": 1, "service_tier": "priority", "speed": "fast"}}


@pytest.mark.parametrize(("fmt", "asked", "body", "got"), [
    ("openai-chat", {"service_tier": "flex"}, _CHAT, ("flex", None)),
    ("openai-responses", {"service_tier": "flex"}, _RESPONSES, ("flex", None)),
    ("anthropic", {"service_tier": "auto", "speed": "fast"}, _CLAUDE, ("priority", "fast")),
])
def test_asked_and_served_are_both_on_the_record(wire: MockServer, fmt: str, asked: dict[str, Any],
                                                 body: dict[str, Any], got: tuple[str, str | None]) -> None:
    c = contender_for(fmt, wire, options={"extra_body": asked})
    wire.fail(Fault("http", status=200, body=body))
    rec = go(c, stream=False)
    assert rec.ok, rec.error_message
    assert (rec.service_tier_requested, rec.speed_requested) == (asked["service_tier"], asked.get("speed"))
    assert (rec.service_tier, rec.speed) == got
    fields = request_summary(c)["fields"]
    assert {k: fields[k] for k in asked} == asked  # the manifest says what every request carried


def test_gemini_asks_in_service_tier_and_reports_none(wire: MockServer) -> None:
    """Gemini's generateContent takes a top-level `serviceTier` (google-genai 3.6.1
    `_GenerateContentConfig_to_mldev`); its usage metadata reports no tier, so none is recorded."""
    c = contender_for("gemini", wire, options={"extra_body": {"serviceTier": "flex"}})
    rec = go(c)
    assert rec.ok and (rec.service_tier_requested, rec.service_tier) == ("flex", None)
    assert request_summary(c)["fields"]["serviceTier"] == "flex"


def test_a_streamed_claude_answer_reports_its_tier_from_message_start(wire: MockServer) -> None:
    wire.script = MockScript(ttft_s=0.01, itl_s=0.001)
    wire.fail(transcript_fault("anthropic_thinking_signature"))  # usage.service_tier "standard" at message_start
    rec = go(contender_for("anthropic", wire))
    assert (rec.service_tier_requested, rec.service_tier, rec.speed) == (None, "standard", None)


def test_the_default_asks_nothing(wire: MockServer) -> None:
    rec = go(contender_for("openai-chat", wire))
    assert rec.ok and (rec.service_tier_requested, rec.speed_requested) == (None, None)
