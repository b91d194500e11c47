"""Cost model: known usage gives a known bill, and every projection's arithmetic is checkable."""

from __future__ import annotations

import math
from datetime import date

import pandas as pd
import pytest
from pydantic import ValidationError

from workbench.analysis.cost import (
    cost_frame,
    cost_per_document,
    project_batch,
    project_prototyping,
    project_realtime,
    realtime_cost_per_1k,
)
from workbench.config import Contender
from workbench.errors import ConfigError, UnknownNameError
from workbench.pricing import Price, declared_prices, price_for, price_from_throughput, provider_for_api, request_cost

P = Price(input=2.0, output=8.0, cached_input=0.5, batch_discount=0.5, source="test", as_of=date(2026, 1, 1))


def hosted(**price: object) -> Contender:
    return Contender(
        name="gpt",
        api="openai-chat",
        model="gpt-4o",
        base_url="https://api.openai.com/v1",
        price=dict(price) if price else None,
    )


def test_known_usage_known_cost() -> None:
    # 1M in at $2 + 0.5M out at $8 = 2 + 4
    assert request_cost(P, 1_000_000, 500_000) == pytest.approx(6.0)
    assert request_cost(P, 1000, 100) == pytest.approx(0.0028)


def test_cached_tokens_are_part_of_input_at_cached_rate() -> None:
    # 1M input of which 0.6M cached: 0.4M*2 + 0.6M*0.5 = 0.8 + 0.3
    assert request_cost(P, 1_000_000, 0, cached_input_tokens=600_000) == pytest.approx(1.1)
    no_cache_rate = P.model_copy(update={"cached_input": None})
    assert request_cost(no_cache_rate, 1_000_000, 0, cached_input_tokens=600_000) == pytest.approx(2.0)
    with pytest.raises(ValueError, match="cannot exceed"):
        request_cost(P, 10, 0, cached_input_tokens=11)


def test_batch_discount() -> None:
    assert request_cost(P, 1_000_000, 500_000, batch=True) == pytest.approx(3.0)
    assert request_cost(P.model_copy(update={"batch_discount": 0.0}), 1_000_000, 0, batch=True) == 2.0


def test_price_from_throughput() -> None:
    # $3.60/h = $0.001/s; 100 out tok/s end to end → $10 per 1M output, input free
    p = price_from_throughput(3.6, 100.0)
    assert p.output == pytest.approx(10.0) and p.input == 0.0 and p.machine_hour_usd == 3.6
    assert "100 output tok/s" in p.source
    # with a prefill rate of 1000 tok/s input costs $1 per 1M
    p2 = price_from_throughput(3.6, 100.0, input_tokens_per_s=1000.0)
    assert p2.input == pytest.approx(1.0) and p2.output == pytest.approx(10.0)
    with pytest.raises(ValueError):
        price_from_throughput(3.6, 0.0)


def test_machine_hour_price_needs_throughput_before_costing() -> None:
    mh = Price(machine_hour_usd=3.6, source="rented box")
    assert not mh.per_token
    with pytest.raises(ValueError, match="throughput"):
        request_cost(mh, 1, 1)
    resolved = mh.resolve(output_tokens_per_s=100.0)
    assert resolved.output == pytest.approx(10.0) and resolved.source.startswith("rented box; ")


def test_price_needs_rates_or_machine_hour() -> None:
    with pytest.raises(ValueError, match="machine_hour_usd"):
        Price(source="x")
    with pytest.raises(ValueError, match="both"):
        Price(input=1.0, machine_hour_usd=2.0)


def test_cost_frame_adds_cost_and_nan_without_price() -> None:
    df = pd.DataFrame(
        {
            "contender": ["a", "a", "b", "a"],
            "input_tokens": [1_000_000, 1_000_000, 10, None],
            "output_tokens": [0, 500_000, 10, 10],
            "cached_input_tokens": [600_000, None, 0, 0],
        }
    )
    out = cost_frame(df, {"a": P})
    assert "cost_usd" not in df  # a copy
    assert out["cost_usd"].iloc[0] == pytest.approx(1.1)
    assert out["cost_usd"].iloc[1] == pytest.approx(6.0)
    assert math.isnan(out["cost_usd"].iloc[2])  # no price for b
    assert math.isnan(out["cost_usd"].iloc[3])  # unknown tokens
    assert cost_frame(df, {"a": P}, batch=True)["cost_usd"].iloc[1] == pytest.approx(3.0)


def test_cost_per_document() -> None:
    assert cost_per_document(10.0, 4) == 2.5
    with pytest.raises(ValueError):
        cost_per_document(1.0, 0)


def test_project_batch_arithmetic() -> None:
    # 2M docs, 4 docs per request → 500k requests; 2 s each; 8 h window
    pr = project_batch(
        n_documents=2_000_000,
        window_hours=8,
        per_doc_input_tokens=100,
        per_doc_output_tokens=5,
        price=P,
        requests_per_doc=0.25,
        per_request_latency_s=2.0,
        concurrency_limit=16,
    )
    assert pr.n_requests == 500_000
    assert pr.total_cost_usd == pytest.approx(2_000_000 * (100 * 2 + 5 * 8) / 1e6)  # 480
    assert pr.cost_per_document_usd == pytest.approx(480 / 2_000_000)
    assert pr.wall_time_s == pytest.approx(500_000 * 2 / 16)  # 62,500 s > 28,800 s
    assert not pr.fits_window
    assert pr.min_concurrency_to_fit == math.ceil(1_000_000 / 28_800)  # 35
    assert any("wall time" in a for a in pr.assumptions)
    d = pr.to_dict()
    assert d["n_requests"] == 500_000 and isinstance(d["assumptions"], list)
    fits = project_batch(2_000_000, 8, 100, 5, P, 0.25, 2.0, 35, batch_api=True)
    assert fits.fits_window and fits.total_cost_usd == pytest.approx(240.0)
    assert any("batch API" in a for a in fits.assumptions)


def test_project_realtime_arithmetic() -> None:
    pr = project_realtime(
        target_qps=10_000, per_request_cost=0.0001, replica_goodput_rps=300, replica_hour_usd=2.0, headroom=0.0
    )
    assert pr.replicas == 34  # ceil(33.3)
    assert pr.token_cost_per_hour_usd == pytest.approx(0.0001 * 10_000 * 3600)  # 3600
    assert pr.cost_per_hour_usd == pytest.approx(3600 + 68)
    assert pr.cost_per_1k_requests_usd == pytest.approx(3668 / 36_000_000 * 1000)
    with_headroom = project_realtime(10_000, 0.0, 300, 2.0, mean_e2e_s=0.08)  # 30% kept free by default
    assert with_headroom.replicas == 48  # ceil(10000 / 210)
    assert any("Little's law" in a and "800 requests" in a for a in with_headroom.assumptions)
    hosted = project_realtime(10_000, 0.0001, None, tokens_per_request=120)
    assert hosted.replicas == 0 and hosted.replica_cost_per_hour_usd == 0.0
    assert hosted.cost_per_1k_requests_usd == pytest.approx(0.1)
    assert any("600,000 requests/min, 72,000,000 tokens/min" in a for a in hosted.assumptions)
    assert all(isinstance(a, str) for a in pr.assumptions)
    rows = realtime_cost_per_1k(10_000, [0.0, 0.0], [300.0, 0.0], 2.0, headroom=0.0)
    assert rows[0] == pytest.approx(68 / 36_000_000 * 1000) and rows[1] == float("inf")


def test_project_prototyping() -> None:
    pr = project_prototyping(50_000, 0.002)
    assert pr.monthly_cost_usd == pytest.approx(100.0)
    assert pr.to_dict()["monthly_requests"] == 50_000 and pr.assumptions


def test_provider_for_api() -> None:
    assert provider_for_api("openai-chat") == "openai"
    assert provider_for_api("openai-completions") == "openai"
    assert provider_for_api("anthropic") == "anthropic"
    assert provider_for_api("gemini") == "google"
    assert provider_for_api("generic") is None
    with pytest.raises(UnknownNameError, match="unknown api kind 'something-else'; valid: anthropic"):
        provider_for_api("something-else")


def test_yaml_price_overrides_everything() -> None:
    p = price_for(hosted(input=1.0, output=2.0, source="contract", as_of="2026-05-01"), library=False)
    assert p is not None and p.input == 1.0 and p.output == 2.0 and p.as_of == date(2026, 5, 1)
    assert p.source == "contract"


def test_yaml_price_fields_are_checked_when_the_contender_is_built() -> None:
    """Unknown and ill-typed price fields fail at load (tests/test_config.py: file, field, reason);
    what is left to `price_for` is the merged price being incomplete."""
    with pytest.raises(ValidationError, match="outptu"):
        hosted(input=1.0, output=2.0, outptu=3.0)
    with pytest.raises(ValidationError, match="batch_discount"):
        hosted(input=1.0, output=2.0, batch_discount=1.5)
    with pytest.raises(ConfigError, match="machine_hour_usd") as ei:
        price_for(hosted(batch_discount=0.5), library=False)  # incomplete and nothing to merge onto
    assert ei.value.field == "contenders[gpt].price"


def test_declared_prices_say_what_and_from_where() -> None:
    assert declared_prices(hosted()) is None
    assert declared_prices(hosted(batch_discount=0.5, source="docs")) == "batch_discount=0.5 (docs)"
    assert declared_prices(hosted(input=1.0, output=2.0)) == "input=1.0, output=2.0 (no source given)"


def test_no_price_anywhere_is_none() -> None:
    assert price_for(hosted(), library=False) is None


def test_library_price_offline() -> None:
    pytest.importorskip("genai_prices")
    p = price_for(hosted())
    assert p is not None and p.input is not None and p.output is not None
    assert p.input > 0 and p.output > p.input and "genai-prices" in p.source
    # a partial YAML block overrides only the fields it names
    q = price_for(hosted(batch_discount=0.25))
    assert q is not None and q.batch_discount == 0.25 and q.input == p.input
    # the merged source keeps the library's and names what was declared, with the declared source
    r = price_for(hosted(batch_discount=0.5, source="the provider's batch page"))
    assert r is not None and r.source.startswith(p.source)
    assert r.source.endswith("declared in contenders file: batch_discount=0.5 (the provider's batch page)")
    unknown = Contender(
        name="x", api="openai-chat", model="no-such-model-xyz", base_url="https://api.openai.com/v1"
    )
    assert price_for(unknown) is None
