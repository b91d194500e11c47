"""Live calls to each hosted provider, tiny max_tokens; each runs only when its key is set."""

from __future__ import annotations

import os

import pytest

from tests.conftest import run
from workbench.config import Contender
from workbench.measure.probe import make_client, probe
from workbench.measure.target import Target
from workbench.types import Prompt, Record

pytestmark = [pytest.mark.live, pytest.mark.timeout(60)]

LIVE = {
    # Reasoning models: max_tokens is the visible cap; the reasoning reserve is added on the wire.
    "gpt-5.5": {"api": "openai-responses", "model": "gpt-5.5", "base_url": "https://api.openai.com/v1",
                "api_key_env": "OPENAI_API_KEY", "sampling": {"max_tokens": 16},
                "reasoning": {"effort": "low", "reserve_tokens": 512}, "options": {"omit_temperature": True}},
    "gpt-6-luna": {"api": "openai-chat", "model": "gpt-6-luna", "base_url": "https://api.openai.com/v1",
                   "api_key_env": "OPENAI_API_KEY", "sampling": {"max_tokens": 16},
                   "reasoning": {"effort": "low", "reserve_tokens": 512}, "options": {"omit_temperature": True}},
    "claude-haiku-5.5": {"api": "anthropic", "model": "claude-haiku-5-5",
                         "base_url": "https://api.anthropic.com/v1", "api_key_env": "ANTHROPIC_API_KEY",
                         "sampling": {"max_tokens": 8}},
    "gemini-3.8-flash": {"api": "gemini", "model": "gemini-3.8-flash",
                         "base_url": "https://generativelanguage.googleapis.com/v1beta",
                         "api_key_env": "GEMINI_API_KEY", "sampling": {"max_tokens": 8},
                         "reasoning": {"effort": "low", "reserve_tokens": 512}},
}


@pytest.mark.parametrize("name", sorted(LIVE))
@pytest.mark.parametrize("stream", [True, False], ids=["stream", "whole"])
def test_live_provider(name: str, stream: bool) -> None:
    spec = LIVE[name]
    env = str(spec["api_key_env"])
    if not os.environ.get(env):
        pytest.skip(f"${env} is not set")
    c = Contender.model_validate({"name": name, **spec})

    async def _go() -> Record:
        async with make_client(1, c.timeout_s) as client:
            return await probe(client, Target.hosted(c, stream=stream), Prompt(id="live", text="Say OK."))

    rec = run(_go(), timeout=60)
    assert rec.ok, (rec.error_class, rec.error_message)
    assert rec.token_source == "server" and rec.output_tokens and rec.input_tokens
    if stream:
        assert rec.ttft_s is not None and rec.e2e_s is not None and rec.ttft_s <= rec.e2e_s
    assert os.environ[env] not in repr(rec.to_dict())
