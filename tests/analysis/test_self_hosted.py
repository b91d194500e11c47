"""A user's own server (vLLM, TGI, llama.cpp, Ollama) is costed like the embedded models: machine-hours
at the measured throughput, at its own declared machine-hour price — never at a hosted list price."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
from pydantic import ValidationError

from tests.synthetic_runs import contenders, write_concurrency, write_run
from workbench.analysis.decision import decide
from workbench.analysis.evidence import gather_evidence
from workbench.analysis.scenarios import load_scenarios
from workbench.config import Contender
from workbench.experiments.concurrency import _gauges
from workbench.pricing import price_for

SC = load_scenarios()


def _own(name: str, hourly: float | None = 3.0) -> Contender:
    price = {"machine_hour_usd": hourly} if hourly is not None else None
    return Contender.model_validate({"name": name, "api": "openai-chat", "model": "gpt-4o", "hosting": "self-hosted",
                                     "base_url": "http://127.0.0.1:8000/v1", "price": price})


def test_hosting_defaults_and_contradictions() -> None:
    own = _own("mine")
    assert own.hosted_by == "self-hosted" and own.machine_priced and own.machine_hour_usd(0.1) == 3.0
    assert _own("mine", None).machine_hour_usd(0.1) == 0.1  # the run's parameter when none is declared
    hosted = contenders("api")["api"]
    assert hosted.hosted_by == "hosted" and not hosted.machine_priced
    with pytest.raises(ValidationError, match="hosting embedded needs `local`"):
        Contender.model_validate({"name": "x", "api": "openai-chat", "model": "m", "base_url": "http://h/v1",
                                  "hosting": "embedded"})
    with pytest.raises(ValidationError, match="is hosting embedded, not hosted"):
        Contender.model_validate({"name": "x", "api": "openai-chat", "model": "m", "local": "gemma-3-270m",
                                  "hosting": "hosted"})


def test_a_self_hosted_model_is_never_given_a_same_named_hosted_list_price() -> None:
    # "gpt-4o" has a list price in genai-prices; a user's own server running a model of that name does not
    assert price_for(Contender.model_validate({"name": "h", "api": "openai-chat", "model": "gpt-4o",
                                               "base_url": "https://api.openai.com/v1"})) is not None
    p = price_for(_own("mine"))
    assert p is not None and p.machine_hour_usd == 3.0 and not p.per_token


def test_the_routing_cost_of_a_self_hosted_server_is_its_machine_hours(tmp_path: Path) -> None:
    run = write_run(tmp_path, {"api": {"e2e": 0.05, "halluc": 0.1}, "mine": {"e2e": 0.04, "halluc": 0.1}})
    write_concurrency(run, "mine", {1: 0.04, 2: 0.06, 4: 0.2}, prompt_set="routing")
    cs = {**contenders("api"), "mine": _own("mine", 3.0)}
    ev = gather_evidence(run)
    res = decide(ev, "routing", SC["routing"], cs, machine_hour_usd=0.1, n_boot=200)
    cost = res.metrics["mine"]["cost_per_1k_requests_usd"]
    assert math.isfinite(cost.value) and cost.source.startswith("self-hosted: $3/machine-hour")
    row = res.table.set_index("contender").loc["mine"]
    assert row["cost_source"].startswith("self-hosted: $3/machine-hour")
    # at 30× the machine-hour price the same fleet costs 30× more
    cheap = decide(ev, "routing", SC["routing"], {**cs, "mine": _own("mine", 0.1)}, machine_hour_usd=0.1, n_boot=200)
    assert cost.value == pytest.approx(30 * cheap.metrics["mine"]["cost_per_1k_requests_usd"].value)


def test_running_and_waiting_requests_are_read_from_llama_cpp_and_vllm_metrics() -> None:
    llama = "# HELP x\nllamacpp:requests_processing 3\nllamacpp:requests_deferred 1\nllamacpp:other 9\n"
    vllm = ('# TYPE vllm:num_requests_running gauge\nvllm:num_requests_running{model_name="m"} 5.0\n'
            'vllm:num_requests_waiting{model_name="m"} 2.0\n')
    assert _gauges(llama) == {"requests_processing": 3.0, "requests_deferred": 1.0}
    assert _gauges(vllm) == {"requests_processing": 5.0, "requests_deferred": 2.0}


def test_a_ttft_slo_is_the_constraint_the_goodput_and_the_latency_axis(tmp_path: Path) -> None:
    """A chat-like scenario's objective, "TTFT p95 ≤ 300 ms": its E2E may be long."""
    from workbench.analysis.scenarios import RealtimeScenario
    from workbench.metrics import SLO

    chat = RealtimeScenario.model_validate({
        "name": "chat", "description": "a streaming chat", "prompt_set": "routing", "target_qps": 10,
        "slo": {"metric": "ttft", "percentile": 95, "max_s": 0.3}, "accuracy_floor": 0.0, "cost_ref_usd": 1.0,
        "weights": {"latency": 1, "cost": 1}})
    assert chat.objective == SLO(0.3, "ttft", 95) and chat.axis_metric["latency"] == "ttft_p95"
    assert any(c.metric == "ttft_p95" and c.max == 0.3 for c in chat.hard_constraints)
    assert chat.latency_ref_s == 0.3
    run = write_run(tmp_path, {"mine": {"e2e": 0.5, "halluc": 0.1}})  # TTFT ~ a fraction of a slow E2E
    # levels of E2E 0.4 / 0.5 / 1.2 s: TTFT (half of it) within 300 ms up to the second level only
    write_concurrency(run, "mine", {1: 0.4, 2: 0.5, 4: 1.2}, prompt_set="routing")
    ev = gather_evidence(run)
    res = decide(ev, "chat", chat, {"mine": _own("mine")}, machine_hour_usd=0.1, n_boot=100)
    good = res.metrics["mine"]["goodput_rps"]
    assert "concurrency 2 (meets the SLO TTFT p95 ≤ 300 ms)" in good.source
    # an E2E SLO of the same bound: no level meets it
    e2e = RealtimeScenario.model_validate({**chat.model_dump(by_alias=True), "slo": None, "slo_p95_e2e_s": 0.3,
                                           "hard_constraints": []})
    res_e2e = decide(ev, "chat", e2e, {"mine": _own("mine")}, machine_hour_usd=0.1, n_boot=100)
    assert "no level meets the SLO E2E p95 ≤ 300 ms" in res_e2e.metrics["mine"]["goodput_rps"].source
