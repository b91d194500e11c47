"""What switching to a scenario's pick implies: the migration checklist, from the measured numbers."""

from __future__ import annotations

import math

from workbench.analysis.decision import ScenarioResult
from workbench.analysis.evidence import Evidence
from workbench.analysis.scenarios import BatchScenario, RealtimeScenario

__all__ = ["migration_checklist"]


def migration_checklist(res: ScenarioResult, ev: Evidence) -> list[str]:
    """What switching to the scenario's pick implies, derived from the measured numbers."""
    pick = res.pick
    if pick is None:
        return [f"No contender meets the hard constraints of '{res.name}'; nothing to migrate to. "
                "Relax a constraint, add contenders, or change the architecture (batching, caching) and re-run."]
    m = res.metrics.get(pick, {})
    items: list[str] = []
    n_lat = m["p95_e2e_s"].n if "p95_e2e_s" in m else 0
    items.append(f"Re-run the latency benchmark for {pick} on your production prompts with at least 200 warm "
                 f"requests (this run had n={n_lat}; p95 intervals narrow roughly with 1/√n).")
    if isinstance(res.scenario, RealtimeScenario):
        items.append(f"Re-run the concurrency sweep up to the concurrency your {res.scenario.target_qps:g} QPS needs "
                     f"per replica, and confirm p95 ≤ {res.scenario.slo_p95_e2e_s * 1000:g} ms under that load.")
    if isinstance(res.scenario, BatchScenario):
        strat = m.get("strategy")
        items.append(f"Re-run the annotation experiment on a sample of real documents with the chosen strategy "
                     f"({strat.source if strat else 'naive'}) and check accuracy ≥ {res.scenario.accuracy_floor:.0%} "
                     "on your labels.")
    if "hallucination_rate" in m:
        h = m["hallucination_rate"]
        items.append(f"Hallucination rate measured {h.fmt(100, 3, '%')}: run the full spot-check on your own "
                     "questions (and the grounded subset on your documents) before switching.")
    else:
        items.append("Hallucination risk was not measured for the pick: run the hallucination experiment.")
    err = ev.get(pick, "error_rate")
    if err is not None and err.n:
        monthly = getattr(res.scenario, "monthly_requests", None)
        if isinstance(res.scenario, RealtimeScenario):
            monthly = int(res.scenario.target_qps * 3600 * 24 * 30)
        budget = f" ≈ {err.value * monthly:,.0f} failed requests/month at your volume" if monthly else ""
        items.append(f"Error budget: measured error rate {err.fmt(100, 2, '%')}{budget}; plan retries with "
                     "backoff (the workbench records each attempt separately) and alerting on this rate.")
    facts = ev.facts.get(pick, {})
    hints = {
        "usage_in_stream": "the stream carries no token usage: count tokens yourself (or request non-streamed usage) "
                           "for billing and budgets",
        "rate_limit_headers": "no rate-limit headers: enforce a client-side concurrency limit and back off on 429",
        "json_mode": "JSON mode not established: validate and repair structured outputs",
        "tool_calling": "tool calling not established: keep function routing in your own code",
        "streaming": "streaming not established: TTFT equals E2E for users",
    }
    for fact, hint in hints.items():
        v = facts.get(fact, {}).get("value")
        if v is not True:
            state = "unknown" if v is None else "false"
            items.append(f"Integration: {fact} is {state} — {hint}.")
    if not facts:
        items.append("Integration facts were not probed: run the latency notebook with probe_capabilities=True.")
    cold = m.get("cold_e2e_s")
    p50 = m.get("p50_e2e_s")
    if cold is not None and p50 is not None and math.isfinite(p50.value) and cold.value > 2 * p50.value:
        items.append(f"Cold start: first request took {cold.value * 1000:.0f} ms vs warm median "
                     f"{p50.value * 1000:.0f} ms — keep connections/replicas warm.")
    return items
