"""The embedded default end to end: real llama.cpp servers, real models, the real probe."""

from __future__ import annotations

import asyncio

import pytest

from workbench.config import load_contenders
from workbench.measure.probe import make_client, probe, probe_once
from workbench.measure.target import Target
from workbench.measure.tokenizers import token_counter_for
from workbench.types import Prompt

pytestmark = [pytest.mark.local_models, pytest.mark.slow]

PROMPTS = [Prompt("p1", "What is the capital of Italy?"), Prompt("p2", "How many legs does a spider have?"),
           Prompt("p3", "Name a primary colour.")]


@pytest.mark.parametrize("name", ["gemma-3-270m", "qwen2.5-coder-0.5b"])
def test_streamed_probe_gives_real_timings_and_tokens(name: str, local_endpoints: dict[str, str]) -> None:
    c = load_contenders().get(name).with_sampling(max_tokens=16)
    assert c.local is not None
    rec = probe_once(Target(c, local_endpoints[c.local], token_counter=token_counter_for(c)), PROMPTS[0])
    assert rec.ok, rec.error_message
    assert rec.ttft_s is not None and rec.e2e_s is not None
    assert 0 < rec.ttft_s <= rec.e2e_s
    assert rec.output_text and rec.output_tokens and rec.output_tokens >= 1
    assert rec.input_tokens and rec.input_tokens > 5
    assert rec.token_source == "tokenizer" and rec.tokens_estimated is False
    assert rec.finish_reason in ("stop", "length")


@pytest.mark.parametrize("name", ["gemma-3-270m", "qwen2.5-coder-0.5b"])
def test_local_token_counts_match_the_servers_usage(name: str, local_endpoints: dict[str, str]) -> None:
    """The in-process tokenizer must count the prompt exactly as the server does; the output
    count may differ from the server's by the stop-sequence token, which the server counts
    but does not send."""
    c = load_contenders().get(name).with_sampling(max_tokens=16)
    assert c.local is not None
    counter = token_counter_for(c)
    assert counter is not None

    async def go() -> None:
        async with make_client(2) as client:
            for p in PROMPTS:
                full = await probe(client, Target(c, local_endpoints[c.local], stream=False), p)
                assert full.ok and full.token_source == "usage"
                assert counter.count_input(c, p) == full.input_tokens
                assert full.output_text is not None and full.output_tokens is not None
                assert 0 <= full.output_tokens - (counter.count_output(full.output_text) or 0) <= 1

    asyncio.run(go())


def test_endpoint_down_is_a_record_naming_the_url() -> None:
    c = load_contenders().get("qwen2.5-coder-0.5b")
    rec = probe_once(Target(c, "http://127.0.0.1:9/v1"), PROMPTS[0])
    assert rec.status == "error" and rec.error_class == "connection"
    assert "http://127.0.0.1:9/v1/chat/completions" in (rec.error_message or "")


def test_concurrent_streams_are_queued_not_cut_short(local_endpoints: dict[str, str]) -> None:
    """llama.cpp serves one request at a time; a second stream must wait, not truncate the first."""
    c = load_contenders().get("qwen2.5-coder-0.5b").with_sampling(max_tokens=24)
    assert c.local is not None
    prompt = Prompt("long", "List five fruits, separated by commas.")

    async def go() -> list[object]:
        async with make_client(4) as client:
            return list(await asyncio.gather(*[
                probe(client, Target(c, local_endpoints[c.local]), prompt) for _ in range(3)
            ]))

    recs = asyncio.run(go())
    assert all(r.ok for r in recs), [r.error_message for r in recs]  # type: ignore[attr-defined]
    assert len({r.output_text for r in recs}) == 1  # type: ignore[attr-defined]  # greedy: same answer
