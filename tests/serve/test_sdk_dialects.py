"""The official SDKs against the mock server's fault dialects (offline: loopback only).

Pointed at the seed dialect, the OpenAI SDK reports a 429 as a bare "Error code: 429" with no
code or type (the seed body is `{"error": "...", "message": "..."}`, not OpenAI's shape); in
each provider's own dialect every SDK raises its own typed error with the message and the
server's retry hint. The SDKs are test dependencies (`dev` extra); no key, no network."""

from __future__ import annotations

from typing import Any

import pytest

from workbench.serve.mock import FaultPlan, MockServer

pytestmark = pytest.mark.timeout(60)


def _server(dialect: str) -> MockServer:
    return MockServer(plan=FaultPlan(probabilities={"rate_limit": 1.0}, dialect=dialect, retry_after_s=7))


def _openai_429(openai: Any, dialect: str) -> Any:
    with (_server(dialect) as srv,
          openai.OpenAI(base_url=srv.base_url, api_key="test-key", max_retries=0) as client,
          pytest.raises(openai.RateLimitError) as caught):
        client.chat.completions.create(model="m", messages=[{"role": "user", "content": "hi"}])
    return caught.value


@pytest.mark.slow  # the vendor SDK's first import: up to ~10 s on 2 cores
def test_openai_sdk() -> None:
    openai = pytest.importorskip("openai")
    for dialect in ("openai", "auto"):
        e = _openai_429(openai, dialect)
        assert (e.status_code, e.code, e.type) == (429, "rate_limit_exceeded", "tokens")
        assert "Please try again in 26.604s" in e.message
        assert e.response.headers["retry-after"] == "7"
    seed = _openai_429(openai, "seed")
    assert seed.message == "Error code: 429" and seed.code is None  # why the dialects exist


@pytest.mark.slow  # the vendor SDK's first import: up to ~10 s on 2 cores
def test_anthropic_sdk() -> None:
    anthropic = pytest.importorskip("anthropic")
    with (_server("anthropic") as srv,
          anthropic.Anthropic(base_url=srv.url, api_key="test-key", max_retries=0) as client,
          pytest.raises(anthropic.RateLimitError) as caught):
        client.messages.create(model="m", max_tokens=8, messages=[{"role": "user", "content": "hi"}])
    e: Any = caught.value
    assert e.status_code == 429 and e.body["error"]["type"] == "rate_limit_error"
    assert "rate limit" in e.message and e.response.headers["retry-after"] == "7"


@pytest.mark.slow  # the vendor SDK's first import: up to ~10 s on 2 cores
def test_google_genai_sdk() -> None:
    genai = pytest.importorskip("google.genai")
    from google.genai import errors, types

    with _server("gemini") as srv:
        client = genai.Client(api_key="test-key", http_options=types.HttpOptions(base_url=srv.url,
                                                                                 api_version="v1beta"))
        try:
            with pytest.raises(errors.ClientError) as caught:
                client.models.generate_content(model="gemini-test", contents="hi")
        finally:
            client.close()
    e: Any = caught.value
    assert (e.code, e.status) == (429, "RESOURCE_EXHAUSTED") and "exceeded your current quota" in e.message
    [retry] = [d for d in e.details["error"]["details"] if d["@type"].endswith("RetryInfo")]
    assert retry["retryDelay"] == "7s"


@pytest.mark.parametrize("dialect", ["openai", "anthropic", "gemini", "auto"])
@pytest.mark.parametrize("kind", ["rate_limit", "http500", "http503", "huge_error"])
def test_dialect_faults_classify_as_the_seed_ones(wire: MockServer, dialect: str, kind: str) -> None:
    """Whatever the dialect, the workbench's own client records the class the fault stands for."""
    from tests.conftest import contender_for
    from tests.providers.test_contract import go
    from workbench.serve.faults import DIALECTS, FAULTS

    fmt = DIALECTS[dialect] or "anthropic"
    wire.reset(plan=FaultPlan(sequence=[kind], dialect=dialect, oversized_chars=5000))
    rec = go(contender_for(fmt, wire))
    assert rec.error_class == FAULTS[kind][0], (rec.error_class, rec.error_message)
    if kind == "rate_limit" and fmt != "gemini":
        assert rec.retry_after_s == 1.0  # the plan's retry-after header


@pytest.mark.parametrize("fmt", ["openai-responses", "openai-completions"])
def test_auto_answers_the_openai_routes_in_openais_own_body(wire: MockServer, fmt: str) -> None:
    """`--dialect auto` on /v1/responses and /v1/completions: OpenAI's error shape, not the seed's."""
    from tests.conftest import contender_for
    from tests.providers.test_contract import go

    wire.reset(plan=FaultPlan(sequence=["http503"], dialect="auto"))
    rec = go(contender_for(fmt, wire, prompt_template="{prompt}") if fmt == "openai-completions"
             else contender_for(fmt, wire))
    assert rec.error_class == "overloaded"
    assert "The engine is currently overloaded" in (rec.error_message or ""), rec.error_message  # not "injected"


@pytest.mark.parametrize("status", [502, 529])
def test_a_gemini_body_repeats_the_status_it_is_sent_with(status: int) -> None:
    from workbench.serve.faults import FaultPlan as Plan

    fault = Plan(dialect="gemini").as_http(f"http{status}")
    assert fault is not None and fault.status == status and fault.body["error"]["code"] == status


@pytest.mark.slow  # the vendor SDK's first import
def test_the_openai_sdks_responses_stream_completes_on_the_mock() -> None:
    """`client.responses.stream()` accumulates the events into the final response and refuses
    one whose output items were never finished ("Cannot complete response with unfinished output
    items"): the mock closes its text, part and item and completes with the message."""
    openai = pytest.importorskip("openai")
    with (MockServer() as srv,
          openai.OpenAI(base_url=srv.base_url, api_key="test-key", max_retries=0) as client,
          client.responses.stream(model="m", input="hi") as stream):
        kinds = [e.type for e in stream]
        final = stream.get_final_response()
    assert kinds[-4:] == ["response.output_text.done", "response.content_part.done", "response.output_item.done",
                          "response.completed"]
    assert (final.status, final.output_text) == ("completed", "Hello, world!")


@pytest.mark.slow  # the vendor SDK's first import
def test_the_openai_sdk_reads_the_refusal_and_block_transcripts() -> None:
    """Each OpenAI refusal / block transcript the mock replays, read by the official SDK as the API's
    own answer (the same bytes our client records as refused / blocked: tests/providers/test_transcripts.py)."""
    openai = pytest.importorskip("openai")
    messages: Any = [{"role": "user", "content": "hi"}]
    with (MockServer() as srv,
          openai.OpenAI(base_url=srv.base_url, api_key="test-key", max_retries=0) as client):
        srv.transcript = "openai_chat_refusal_stream"
        chunks = list(client.chat.completions.create(model="m", messages=messages, stream=True))
        refusal = "".join(c.choices[0].delta.refusal or "" for c in chunks if c.choices)
        assert refusal == "I'm sorry, I can't assist with that request."
        srv.transcript = "openai_chat_content_filter"
        chunks = list(client.chat.completions.create(model="m", messages=messages, stream=True))
        assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "content_filter"
        srv.transcript = "openai_chat_refusal"
        whole = client.chat.completions.create(model="m", messages=messages)
        assert (whole.choices[0].message.content, whole.choices[0].message.refusal) == (
            None, "I'm very sorry, but I can't assist with that.")
        srv.transcript = "openai_responses_refusal"
        with client.responses.stream(model="m", input="hi") as stream:
            kinds = {e.type for e in stream}
            final = stream.get_final_response()
    assert "response.refusal.delta" in kinds
    [part] = final.output[0].content  # type: ignore[union-attr]
    assert (part.type, part.refusal) == ("refusal", "I'm sorry, I can't assist with that.")


@pytest.mark.slow  # the vendor SDK's first import
def test_the_anthropic_sdk_reads_the_refusal_transcript() -> None:
    anthropic = pytest.importorskip("anthropic")
    with (MockServer(transcript="anthropic_refusal_stop_details") as srv,
          anthropic.Anthropic(base_url=srv.url, api_key="test-key", max_retries=0) as client,
          client.messages.stream(model="m", max_tokens=8, messages=[{"role": "user", "content": "hi"}]) as stream):
        final: Any = stream.get_final_message()
    assert final.stop_reason == "refusal"
    assert (final.stop_details.type, final.stop_details.category) == ("refusal", "cyber")


@pytest.mark.slow  # the vendor SDK's first import
def test_the_google_genai_sdk_reads_the_safety_transcripts() -> None:
    genai = pytest.importorskip("google.genai")
    from google.genai import types

    with MockServer() as srv:
        client = genai.Client(api_key="test-key", http_options=types.HttpOptions(base_url=srv.url,
                                                                                 api_version="v1beta"))
        try:
            srv.transcript = "gemini_finish_safety"
            whole = client.models.generate_content(model="gemini-test", contents="hi")
            srv.transcript = "gemini_prompt_blocked"
            [chunk] = list(client.models.generate_content_stream(model="gemini-test", contents="hi"))
        finally:
            client.close()
    assert whole.candidates and whole.candidates[0].finish_reason == types.FinishReason.SAFETY
    assert whole.text is None
    assert chunk.prompt_feedback and chunk.prompt_feedback.block_reason == types.BlockedReason.SAFETY
    assert not chunk.candidates
