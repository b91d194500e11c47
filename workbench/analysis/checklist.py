"""What switching to a scenario's pick implies: the migration checklist, from the measured numbers."""

from __future__ import annotations

import math

from workbench.analysis.catalog import format_value
from workbench.analysis.decision import ScenarioResult
from workbench.analysis.evidence import Evidence
from workbench.analysis.quantiles import min_n_for_bounds

__all__ = ["migration_checklist"]

_HINTS = {
    "usage_in_stream": "the stream carries no token usage: count tokens yourself (or request non-streamed usage) "
                       "for billing and budgets",
    "rate_limit_headers": "no rate-limit headers: enforce a client-side concurrency limit and back off on 429",
    "json_mode": "JSON mode not established: validate and repair structured outputs",
    "tool_calling": "tool calling not established: keep function routing in your own code",
    "streaming": "streaming not established: TTFT equals E2E for users",
}


def migration_checklist(res: ScenarioResult, ev: Evidence) -> list[str]:
    """What switching to the scenario's pick implies, derived from the measured numbers."""
    pick = res.pick
    if pick is None:
        pending = res.table[res.table["constraint_status"] == "inconclusive"]
        if len(pending):  # not failed: what is missing or too uncertain decides it
            return [f"No contender is eligible yet for '{res.name}': {len(pending)} inconclusive "
                    f"({', '.join(map(str, pending['contender']))}), none failed outright. Measure what is missing "
                    "or too uncertain (the matrix says which constraint and about which n) and re-run."]
        return [f"No contender meets the hard constraints of '{res.name}'; nothing to migrate to. "
                "Relax a constraint, add contenders, or change the architecture (batching, caching) and re-run."]
    m = res.metrics.get(pick, {})
    items: list[str] = []
    if not res.decisive:
        items.append(f"The pick is not decisive ({res.verdict}) Measure more before switching: more warm "
                     "requests, more items, more documents narrow every interval of the score.")
    p95 = m.get("e2e_p95")
    n_lat = p95.n if p95 is not None else 0
    items.append(f"Re-run the latency benchmark for {pick} on your production prompts with at least "
                 f"{max(200, min_n_for_bounds(99))} warm requests (this run had n={n_lat}; p99 has both bounds "
                 f"from n={min_n_for_bounds(99)}).")
    items += res.scenario.checklist(pick, m)
    h = m.get("hallucination_score")
    if h is not None and math.isfinite(h.value):
        fp = m.get("false_premise_acceptance")
        fp_text = f", false-premise acceptance {format_value('false_premise_acceptance', fp.value, fp.low, fp.high)}" \
            if fp is not None else ""
        items.append(f"Hallucination score {format_value('hallucination_score', h.value, h.low, h.high)}{fp_text}: "
                     "run the spot-check on your own questions (and the grounded subset on your documents).")
    else:
        items.append("Hallucination risk was not measured for the pick: run the hallucination experiment.")
    err = m.get("error_rate") or ev.get(pick, "error_rate")  # the scenario's own requests first
    if err is not None and err.n:
        items.append(f"Error budget: measured error rate {format_value('error_rate', err.value, err.low, err.high)}; "
                     "plan retries with backoff (the workbench records each attempt separately) and alert on it.")
    facts = ev.facts.get(pick, {})
    for fact, hint in _HINTS.items():
        v = facts.get(fact, {}).get("value")
        if v is not True:
            state = "unknown" if v is None else "false"
            items.append(f"Integration: {fact} is {state} — {hint}.")
    if not facts:
        items.append("Integration facts were not probed: run the latency notebook with probe_capabilities=True.")
    cold = ev.get(pick, "cold_e2e_s")
    p50 = m.get("e2e_p50")
    if cold is not None and p50 is not None and math.isfinite(p50.value) and cold.value > 2 * p50.value:
        items.append(f"Cold start: first request took {cold.value * 1000:.0f} ms vs warm median "
                     f"{p50.value * 1000:.0f} ms — keep connections/replicas warm.")
    return items
