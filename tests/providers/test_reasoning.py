"""Reasoning settings: validated per api, sent in each wire format's own fields, and the output cap
sent covers reasoning (`Contender.wire_max_tokens`)."""

from __future__ import annotations

import pytest

from tests.conftest import contender_for
from workbench.config import DEFAULT_REASONING_RESERVE, Contender
from workbench.errors import ConfigError
from workbench.metrics import tpot_s, visible_tokens
from workbench.providers import get_provider
from workbench.serve.mock import MockServer
from workbench.types import Prompt

PROMPT = Prompt(id="p", text="hi")


def _body(c: Contender, stream: bool = True) -> dict[str, object]:
    return get_provider(c.api).build_request(c, PROMPT, stream=stream, api_key="k", base_url="http://x").json


def test_openai_effort_and_cap(wire: MockServer) -> None:
    c = contender_for("openai-chat", wire, reasoning={"effort": "low"}, sampling={"max_tokens": 8},
                      options={"max_tokens_field": "max_completion_tokens"})
    body = _body(c)
    assert body["reasoning_effort"] == "low"
    assert body["max_completion_tokens"] == 8 + DEFAULT_REASONING_RESERVE
    assert c.reasoning_label() == "effort=low"
    off = contender_for("openai-chat", wire, reasoning={"effort": "none"}, sampling={"max_tokens": 8})
    assert _body(off)["max_completion_tokens"] == 8  # no reasoning, no reserve; a reasoning model's field
    plain = _body(contender_for("openai-chat", wire, sampling={"max_tokens": 8}))
    assert plain["max_tokens"] == 8 and "max_completion_tokens" not in plain  # what OpenAI-compatible servers take


def test_anthropic_thinking_budget_is_inside_max_tokens(wire: MockServer) -> None:
    c = contender_for("anthropic", wire, reasoning={"budget_tokens": 2048, "effort": "high"},
                      sampling={"max_tokens": 64, "temperature": 0.0})
    body = _body(c)
    assert body["thinking"] == {"type": "enabled", "budget_tokens": 2048}
    assert body["max_tokens"] == 64 + 2048 > 2048  # the API requires budget_tokens < max_tokens
    assert body["output_config"] == {"effort": "high"}
    assert "temperature" not in body  # thinking takes only the default temperature
    plain = _body(contender_for("anthropic", wire))
    assert "thinking" not in plain and "temperature" not in plain  # 2026-10-21 takes no temperature
    legacy = _body(contender_for("anthropic", wire, options={"anthropic_version": "2023-06-01"}))
    assert legacy["temperature"] == 0.0


def test_gemini_thinking_config(wire: MockServer) -> None:
    c = contender_for("gemini", wire, reasoning={"budget_tokens": 512}, sampling={"max_tokens": 10})
    gen = _body(c)["generationConfig"]
    assert isinstance(gen, dict)
    assert gen["thinkingConfig"] == {"thinkingBudget": 512} and gen["maxOutputTokens"] == 522
    off = contender_for("gemini", wire, reasoning={"budget_tokens": 0}, sampling={"max_tokens": 10})
    gen_off = _body(off)["generationConfig"]
    assert isinstance(gen_off, dict)
    assert gen_off["thinkingConfig"] == {"thinkingBudget": 0} and gen_off["maxOutputTokens"] == 10
    level = contender_for("gemini", wire, reasoning={"effort": "low", "reserve_tokens": 100})
    gen_level = _body(level)["generationConfig"]
    assert isinstance(gen_level, dict)
    assert gen_level["thinkingConfig"] == {"thinkingLevel": "LOW"} and gen_level["maxOutputTokens"] == 164


@pytest.mark.parametrize(("fmt", "reasoning", "match"), [
    ("anthropic", {"budget_tokens": 512}, ">= 1024"),
    ("openai-chat", {"budget_tokens": 2048}, "effort, not a budget"),
    ("openai-chat", {"effort": "extreme"}, "not one of openai-chat's"),
    ("anthropic", {"effort": "minimal"}, "not one of anthropic's"),
    ("openai-completions", {"effort": "low"}, "has no reasoning settings"),
    ("generic", {"effort": "low"}, "has no reasoning settings"),
])
def test_reasoning_is_validated(wire: MockServer, fmt: str, reasoning: dict[str, object], match: str) -> None:
    base = contender_for(fmt, wire)
    with pytest.raises(ConfigError, match=match):
        base.override("test", reasoning=reasoning)


def test_unknown_reasoning_field_lists_the_valid_ones(wire: MockServer) -> None:
    with pytest.raises(ConfigError, match="valid: adaptive, budget_tokens, effort, reserve_tokens"):
        contender_for("openai-chat", wire).override("test", reasoning={"effrot": "low"})


def test_tpot_counts_visible_tokens_only() -> None:
    assert visible_tokens(120, 100) == 20
    assert visible_tokens(5, None) == 5 and visible_tokens(None, 3) is None
    # 100 reasoning tokens before the first visible one: TPOT is over the 20 visible tokens.
    assert tpot_s(2.0, 1.05, visible_tokens(120, 100)) == pytest.approx(0.05)


def test_anthropic_adaptive_thinking_and_gemini_xhigh(wire: MockServer) -> None:
    """anthropic 2.17.0 `ThinkingConfigAdaptiveParam` ({"type": "adaptive"}); google-genai 3.6.1
    `ThinkingLevel.XHIGH`."""
    from workbench.errors import ConfigError

    c = contender_for("anthropic", wire, reasoning={"adaptive": True, "effort": "high"})
    body = _body(c)
    assert body["thinking"] == {"type": "adaptive"} and body["output_config"] == {"effort": "high"}
    assert c.reasoning_label() == "effort=high,adaptive"
    gem = _body(contender_for("gemini", wire, reasoning={"effort": "xhigh"}))["generationConfig"]
    assert isinstance(gem, dict) and gem["thinkingConfig"]["thinkingLevel"] == "XHIGH"
    for bad, why in (({"adaptive": True, "budget_tokens": 2048}, "leave budget_tokens out"),):
        with pytest.raises((ValueError, ConfigError), match=why):
            contender_for("anthropic", wire, reasoning=bad)
    with pytest.raises((ValueError, ConfigError), match="Anthropic's thinking mode"):
        contender_for("gemini", wire, reasoning={"adaptive": True})
