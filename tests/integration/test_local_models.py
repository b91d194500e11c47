"""The embedded default end to end: real llama-server processes, real models, the real probe."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from workbench.config import load_contenders
from workbench.measure.probe import make_client, probe, probe_once
from workbench.measure.target import Target
from workbench.types import Prompt, Record

pytestmark = [pytest.mark.local_models, pytest.mark.slow]

PROMPTS = [Prompt("p1", "What is the capital of Italy?"), Prompt("p2", "How many legs does a spider have?"),
           Prompt("p3", "Name a primary colour.")]


def _tokens(root: str, text: str) -> int:
    r = httpx.post(f"{root}/tokenize", json={"content": text, "add_special": False}, timeout=30)
    return len(r.json()["tokens"])


@pytest.mark.parametrize("name", ["gemma-3-270m", "qwen2.5-coder-0.5b"])
@pytest.mark.parametrize("stream", [True, False])
def test_server_usage_and_timings_are_on_every_record(name: str, stream: bool,
                                                      local_endpoints: dict[str, str]) -> None:
    """Token counts come from the server's own usage (streamed: the last chunk, asked for with
    include_usage), checked against the server's tokenizer on the answer text: equal, or one
    more for the stop token the server counts but does not send. Its timings ride along."""
    c = load_contenders().get(name).with_sampling(max_tokens=16)
    assert c.local is not None
    url = local_endpoints[c.local]
    for p in PROMPTS:
        rec = probe_once(Target(c, url, stream=stream), p)
        assert rec.ok, rec.error_message
        assert rec.token_source == "server" and rec.tokens_estimated is False
        assert rec.output_text and rec.output_tokens and rec.input_tokens and rec.input_tokens > 5
        assert 0 <= rec.output_tokens - _tokens(url.removesuffix("/v1"), rec.output_text) <= 1
        assert rec.server_predicted_n == rec.output_tokens
        assert rec.server_prompt_n is not None and rec.server_cache_n is not None
        assert rec.server_prompt_n + rec.server_cache_n == rec.input_tokens
        assert rec.server_prompt_ms is not None and rec.e2e_s is not None
        assert rec.server_prompt_ms / 1000 < rec.e2e_s  # the server's prompt time fits inside the client's
        if stream:
            assert rec.ttft_s is not None and 0 < rec.ttft_s <= rec.e2e_s
        assert rec.finish_reason in ("stop", "length")


def test_endpoint_down_is_a_record_naming_the_url() -> None:
    c = load_contenders().get("qwen2.5-coder-0.5b")
    rec = probe_once(Target(c, "http://127.0.0.1:9/v1"), PROMPTS[0])
    assert rec.status == "error" and rec.error_class == "connection"
    assert "http://127.0.0.1:9/v1/chat/completions" in (rec.error_message or "")


def test_concurrent_streams_are_batched_not_cut_short(local_endpoints: dict[str, str]) -> None:
    """llama-server serves concurrent requests in parallel slots: every stream completes, the
    same greedy answer each time, and /metrics saw them in flight together."""
    c = load_contenders().get("qwen2.5-coder-0.5b").with_sampling(max_tokens=24)
    assert c.local is not None
    prompt = Prompt("long", "List five fruits, separated by commas.")

    async def go() -> list[Record]:
        async with make_client(4) as client:
            return list(await asyncio.gather(*[
                probe(client, Target(c, local_endpoints[c.local]), prompt) for _ in range(3)
            ]))

    recs = asyncio.run(go())
    assert all(r.ok for r in recs), [r.error_message for r in recs]
    assert len({r.output_text for r in recs}) == 1  # greedy: same answer
    metrics = httpx.get(local_endpoints[c.local].removesuffix("/v1") + "/metrics", timeout=10).text
    assert "llamacpp:requests_processing" in metrics and "llamacpp:requests_deferred" in metrics
