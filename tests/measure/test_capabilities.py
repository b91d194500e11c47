"""Integration facts are probed against the faithful servers, never assumed."""

from __future__ import annotations

from typing import Any

import pytest

from tests.conftest import contender_for, run
from workbench.config import Contender
from workbench.measure.capabilities import FACTS, probe_capabilities
from workbench.measure.probe import make_client
from workbench.measure.target import Target
from workbench.serve.mock import GEMINI_CTX, Fault, MockScript, MockServer, error_fault

pytestmark = pytest.mark.timeout(30)


def caps(c: Contender) -> dict[str, dict[str, Any]]:
    async def _go() -> dict[str, dict[str, Any]]:
        async with make_client(2, c.timeout_s) as client:
            return await probe_capabilities(client, Target.hosted(c))

    return run(_go())


def test_openai_compatible_server_like_llama_cpp(wire: MockServer) -> None:
    wire.script = MockScript(headers={"x-ratelimit-remaining-requests": "99"})
    f = caps(contender_for("openai-chat", wire))
    assert list(f)[: len(FACTS)] == list(FACTS)
    assert f["streaming"]["value"] is True and f["streaming"]["source"] == "probed"
    assert f["usage_in_stream"] == {**f["usage_in_stream"], "value": True, "source": "probed"}
    assert f["json_mode"]["value"] is True
    assert f["json_mode"]["source"] == "probed"
    assert f["tool_calling"]["value"] is True and f["tool_calling"]["source"] == "probed"
    assert f["rate_limit_headers"]["value"] is True
    assert f["openai_compatible"]["value"] is True
    assert f["context_window"] == {**f["context_window"], "value": 32768, "source": "probed"}
    sent = [r["json"] for r in wire.requests if r["method"] == "POST"]
    assert {"type": "json_object"} in [b.get("response_format") for b in sent]
    assert any("tools" in b for b in sent)


def test_server_that_ignores_include_usage_and_refuses_tools(wire: MockServer) -> None:
    wire.script = MockScript(openai_stream_usage=False)
    wire.fail(Fault("none"), Fault("none"), error_fault("openai-chat", "bad_request"))
    f = caps(contender_for("openai-chat", wire))
    assert f["usage_in_stream"]["value"] is False and f["usage_in_stream"]["source"] == "probed"
    assert f["tool_calling"]["value"] is False and f["tool_calling"]["source"] == "probed"
    assert f["rate_limit_headers"]["value"] is False


def test_rate_limited_probe_is_unknown_not_false(wire: MockServer) -> None:
    wire.fail(error_fault("openai-chat", "rate_limited"), error_fault("openai-chat", "rate_limited"))
    f = caps(contender_for("openai-chat", wire))
    assert f["streaming"]["source"] == "unknown" and f["streaming"]["value"] is None
    assert f["json_mode"]["source"] == "unknown"


def test_anthropic_declared_json_mode_and_gemini_context(wire: MockServer) -> None:
    a = caps(contender_for("anthropic", wire, declared={"json_mode": False, "sdk": "anthropic"}))
    assert a["json_mode"] == {"value": False, "source": "declared", "detail": "from contender.declared"}
    assert a["sdk"]["source"] == "declared"
    assert a["tool_calling"]["source"] == "probed"
    assert a["openai_compatible"]["value"] is False
    assert a["context_window"]["source"] == "unknown"  # this listing reports no size
    g = caps(contender_for("gemini", wire, declared={"context_window": 1}))
    assert g["context_window"]["value"] == GEMINI_CTX and g["context_window"]["declared"] == 1
    assert g["json_mode"]["source"] == "probed"
    body = [r["json"] for r in wire.requests if r["method"] == "POST"]
    assert any((b.get("generationConfig") or {}).get("responseMimeType") == "application/json"
               for b in body)


def test_generic_without_streaming_is_declared(wire: MockServer) -> None:
    f = caps(contender_for("generic", wire, options={"stream": "none"}))
    assert f["streaming"] == {**f["streaming"], "value": False, "source": "declared"}
    assert f["tool_calling"]["source"] == "unknown"


def test_a_reasoning_model_that_spends_the_cap_leaves_streaming_unknown(wire: MockServer) -> None:
    """The probe's streamed request ends `truncated` (gpt-5, only reasoning tokens): that says
    nothing about streaming, so the fact is unknown — not false."""
    from workbench.serve.mock import transcript_fault

    wire.fail(transcript_fault("openai_chat_gpt5_reasoning_only"))
    f = caps(contender_for("openai-chat", wire, reasoning={"effort": "minimal"}))
    assert f["streaming"]["value"] is None and f["streaming"]["source"] == "unknown"
    assert f["streaming"]["detail"].startswith("truncated")
    assert f["usage_in_stream"]["source"] == "unknown"
