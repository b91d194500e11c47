"""Cache writes are priced at their own rate (Anthropic: 1.25× input for the 5-minute cache), in the
per-request cost, the cost frame and the spend budget; output is every billed token."""

from __future__ import annotations

import pandas as pd
import pytest

from workbench.analysis.cost import cost_frame
from workbench.config import Contender
from workbench.measure.budget import Budget
from workbench.pricing import Price, price_for, request_cost
from workbench.serve.mock import MockServer
from workbench.types import Record

PRICE = Price(input=3.0, output=15.0, cached_input=0.3, cache_write_input=3.75)


def test_cache_writes_at_their_own_rate() -> None:
    # 1,000 prompt tokens: 600 read from the cache, 300 written to it, 100 uncached; 200 output.
    usd = request_cost(PRICE, 1000, 200, cached_input_tokens=600, cache_write_input_tokens=300)
    assert usd == pytest.approx((100 * 3.0 + 600 * 0.3 + 300 * 3.75 + 200 * 15.0) / 1e6)
    plain = Price(input=3.0, output=15.0)  # no write rate: charged as input
    assert request_cost(plain, 1000, 0, cache_write_input_tokens=300) == pytest.approx(1000 * 3.0 / 1e6)
    with pytest.raises(ValueError, match="cannot exceed"):
        request_cost(PRICE, 100, 0, cached_input_tokens=60, cache_write_input_tokens=60)


def test_cost_frame_and_budget_charge_cache_writes() -> None:
    df = pd.DataFrame({"contender": ["c"], "input_tokens": [1000], "output_tokens": [200],
                       "cached_input_tokens": [600], "cache_creation_input_tokens": [300]})
    expected = request_cost(PRICE, 1000, 200, 600, cache_write_input_tokens=300)
    assert cost_frame(df, {"c": PRICE})["cost_usd"].iloc[0] == pytest.approx(expected)
    budget = Budget(max_usd=1.0, prices={"c": PRICE})
    rec = Record(run_id="r", experiment="e", contender="c", model="m", request_id="q", t_start_unix=0.0,
                 input_tokens=1000, output_tokens=200, cached_input_tokens=600, cache_creation_input_tokens=300)
    assert budget.charge(rec) == pytest.approx(expected)


def test_library_knows_anthropic_cache_write_rate() -> None:
    c = Contender.model_validate({"name": "h", "api": "anthropic", "model": "claude-haiku-4-5",
                                  "base_url": "https://api.anthropic.com/v1"})
    price = price_for(c)
    if price is None:
        pytest.skip("genai-prices does not know claude-haiku-4-5 in this version")
    assert price.input is not None and price.cache_write_input == pytest.approx(1.25 * price.input)


#: An OpenAI body whose usage reports a cache write (openai-python 3.63.0: chat
#: `prompt_tokens_details.cache_write_tokens`, Responses `input_tokens_details.cache_write_tokens`).
_CHAT = {"id": "c", "object": "chat.completion", "created": 0, "model": "gpt-6.2-sol",
         "choices": [{"index": 0, "message": {"role": "assistant", "content": "Hi"}, "finish_reason": "stop"}],
         "usage": {"prompt_tokens": 3000, "completion_tokens": 100, "total_tokens": 3100,
                   "prompt_tokens_details": {"cached_tokens": 1024, "cache_write_tokens": 1536}}}
_RESPONSES = {"id": "r", "object": "response", "status": "completed", "model": "gpt-6.2-sol",
              "output": [{"type": "message", "role": "assistant", "status": "completed",
                          "content": [{"type": "output_text", "text": "Hi", "annotations": []}]}],
              "usage": {"input_tokens": 3000, "output_tokens": 100, "total_tokens": 3100,
                        "input_tokens_details": {"cached_tokens": 1024, "cache_write_tokens": 1536},
                        "output_tokens_details": {"reasoning_tokens": 0}}}


@pytest.mark.parametrize(("fmt", "body"), [("openai-chat", _CHAT), ("openai-responses", _RESPONSES)])
def test_openai_cache_writes_are_recorded_and_priced(wire: MockServer, fmt: str, body: dict[str, object]) -> None:
    """The record carries OpenAI's cache-write count, and the cost charges it at genai-prices' own
    write rate (1.25x input for gpt-6.2-sol), apart from cached reads and plain input."""
    from tests.conftest import contender_for
    from tests.providers.test_contract import go
    from workbench.pricing import library_price
    from workbench.serve.faults import Fault

    wire.fail(Fault("http", status=200, body=body))
    rec = go(contender_for(fmt, wire), stream=False)
    assert rec.ok, rec.error_message
    assert (rec.input_tokens, rec.cached_input_tokens, rec.cache_creation_input_tokens) == (3000, 1024, 1536)
    price = library_price("gpt-6.2-sol", provider_id="openai")
    if price is None or price.cache_write_input is None:
        pytest.skip("genai-prices prices no cache write for gpt-6.2-sol in this version")
    assert price.input is not None and price.cache_write_input == pytest.approx(1.25 * price.input)
    expected = request_cost(price, 3000, 100, 1024, cache_write_input_tokens=1536)
    frame = cost_frame(pd.DataFrame([rec.to_dict()]).assign(contender="c"), {"c": price})
    assert frame["cost_usd"].iloc[0] == pytest.approx(expected)
    assert expected > request_cost(price, 3000, 100, 1024)  # the write costs more than plain input
