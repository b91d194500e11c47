"""Cache writes are priced at their own rate (Anthropic: 1.25× input for the 5-minute cache), in the
per-request cost, the cost frame and the spend budget; output is every billed token."""

from __future__ import annotations

import pandas as pd
import pytest

from workbench.analysis.cost import cost_frame
from workbench.config import Contender
from workbench.measure.budget import Budget
from workbench.pricing import Price, price_for, request_cost
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
