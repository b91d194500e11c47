"""Gemini's CONTINUATION finish: the answer stopped at a per-request token limit, unfinished, with
a `continuationToken` to ask for the rest. google-genai 3.6.1 follows it by default (the same
request again with the token, until the finish is something else, counts summed); so does the
probe, and says how many follow-ups it took. Not followed, it is a cut-off like MAX_TOKENS."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.conftest import contender_for
from tests.providers.test_contract import go
from workbench.serve.faults import Fault
from workbench.serve.mock import MockScript, MockServer
from workbench.serve.transcripts import StreamTranscript

TOKEN = "Q0hFQ0tQT0lOVA=="  # base64, as the API sends the SDK's bytes


def _hop(text: str, finish: str, prompt: int, out: int, token: str | None = None) -> dict[str, Any]:
    cand: dict[str, Any] = {"content": {"role": "model", "parts": [{"text": text}] if text else []},
                            "finishReason": finish, "index": 0}
    if token:
        cand["continuationToken"] = token
    return {"candidates": [cand], "modelVersion": "gemini-3.8-flash",
            "usageMetadata": {"promptTokenCount": prompt, "candidatesTokenCount": out,
                              "totalTokenCount": prompt + out}}


def _stream(body: dict[str, Any]) -> Fault:
    return Fault("transcript", payload=StreamTranscript("hop", (f"data: {json.dumps(body)}\n\n".encode(),)))


@pytest.mark.parametrize("stream", [True, False], ids=["stream", "whole"])
def test_a_continuation_is_followed_to_the_end(wire: MockServer, stream: bool) -> None:
    wire.script = MockScript(ttft_s=0.01, itl_s=0.001)
    hops = [_hop("The first half, ", "CONTINUATION", 10, 4, TOKEN), _hop("and the rest.", "STOP", 10, 3)]
    wire.fail(*[_stream(h) if stream else Fault("http", status=200, body=h) for h in hops])
    rec = go(contender_for("gemini", wire), stream=stream)
    assert rec.ok, rec.error_message
    assert (rec.output_text, rec.finish_reason, rec.continuation_hops) == ("The first half, and the rest.", "STOP", 1)
    assert (rec.input_tokens, rec.output_tokens) == (20, 7)  # each hop bills its prompt and output
    first, second = (r["json"] for r in list(wire.requests)[-2:])
    assert "continuationToken" not in first and second == {**first, "continuationToken": TOKEN}
    if stream:
        assert rec.ttft_s is not None and rec.e2e_s is not None and rec.ttft_s < rec.e2e_s


def test_not_followed_it_is_a_cut_off(wire: MockServer) -> None:
    c = contender_for("gemini", wire, options={"automatic_continuation": False})
    wire.fail(Fault("http", status=200, body=_hop("The first half, ", "CONTINUATION", 10, 4, TOKEN)))
    rec = go(c, stream=False)
    assert rec.ok and (rec.finish_reason, rec.continuation_hops, len(wire.requests)) == ("CONTINUATION", 0, 1)
    wire.fail(Fault("http", status=200, body=_hop("", "CONTINUATION", 10, 4, TOKEN)))
    rec = go(c, stream=False)
    assert rec.error_class == "truncated"  # no visible answer within the request


@pytest.mark.slow  # the vendor SDK's first import
def test_the_sdk_continues_the_same_way() -> None:
    """google-genai against the same two answers: it sends the token as the top-level
    `continuationToken` of the same request and merges the text — what the probe does."""
    genai = pytest.importorskip("google.genai")
    from google.genai import types

    with MockServer() as srv:
        srv.fail(*[Fault("http", status=200, body=h) for h in
                   (_hop("The first half, ", "CONTINUATION", 10, 4, TOKEN), _hop("and the rest.", "STOP", 10, 3))])
        client = genai.Client(api_key="test-key", http_options=types.HttpOptions(base_url=srv.url,
                                                                                 api_version="v1beta"))
        try:
            merged = client.models.generate_content(model="gemini-test", contents="hi")
        finally:
            client.close()
        bodies = [r["json"] for r in srv.requests]
    assert merged.text == "The first half, and the rest."
    assert [b.get("continuationToken") for b in bodies] == [None, TOKEN]
    assert merged.usage_metadata and merged.usage_metadata.candidates_token_count == 7
