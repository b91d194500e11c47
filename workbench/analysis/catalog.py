"""Every metric the decision rests on: its name, what it means, its unit, and which way is better.

One home for the vocabulary shared by the scenarios file (hard constraints name these), the
decision matrix, the report and the README. Percentile names follow the one distribution
schema (`workbench.analysis.distribution`: `e2e_p95` is the 95th percentile of E2E, seconds).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from workbench.analysis.stats import Estimate

__all__ = ["METRICS", "MetricDef", "describe", "format_estimate", "format_interval", "format_number", "format_p",
           "format_value", "measured_by", "unmeasured_text"]


@dataclass(frozen=True)
class MetricDef:
    label: str
    unit: str  # shown after the scaled value
    scale: float  # stored value × scale = shown value
    higher_is_better: bool
    meaning: str


_PCT = 100.0
METRICS: dict[str, MetricDef] = {
    "e2e_p50": MetricDef("E2E p50", "ms", 1000, False, "median end-to-end latency of single warm requests"),
    "e2e_p90": MetricDef("E2E p90", "ms", 1000, False, "90th percentile end-to-end latency of single warm requests"),
    "e2e_p95": MetricDef("E2E p95", "ms", 1000, False,
                         "95th percentile end-to-end latency of single warm requests (a failed one is +∞)"),
    "e2e_p99": MetricDef("E2E p99", "ms", 1000, False, "99th percentile end-to-end latency of single warm requests"),
    "ttft_p50": MetricDef("TTFT p50", "ms", 1000, False, "median time to first token"),
    "ttft_p90": MetricDef("TTFT p90", "ms", 1000, False, "90th percentile time to first token"),
    "ttft_p95": MetricDef("TTFT p95", "ms", 1000, False, "95th percentile time to first token"),
    "ttft_p99": MetricDef("TTFT p99", "ms", 1000, False, "99th percentile time to first token"),
    "cold_e2e_s": MetricDef("cold E2E", "ms", 1000, False, "the first request after start or on a new connection"),
    "route_accuracy": MetricDef("routing accuracy", "%", _PCT, True,
                                "share of routing messages given an accepted intent label"),
    "qa_accuracy": MetricDef("QA accuracy", "%", _PCT, True,
                             "answerable questions answered correctly / all answerable"),
    "qa_accuracy_given_attempted": MetricDef("accuracy when answering", "%", _PCT, True,
                                             "answerable questions: correct / (correct + incorrect)"),
    "qa_f_score": MetricDef("QA F-score", "%", _PCT, True,
                            "SimpleQA F-score on answerable questions: harmonic mean of the two above"),
    "qa_net_score": MetricDef("QA net score", "%", _PCT, True,
                              "(1 + (correct − incorrect) / answerable) / 2: ½ always abstaining, 0 always wrong"),
    "qa_abstention_rate": MetricDef("abstention", "%", _PCT, False, "answerable questions left unanswered"),
    "false_premise_acceptance": MetricDef("false-premise acceptance", "%", _PCT, False,
                                          "unanswerable questions answered as if their premise were true "
                                          "(or failed: an error is not a rejection)"),
    "hallucination_score": MetricDef("hallucination score", "%", _PCT, True,
                                     "QA F-score × (1 − ½ × false-premise acceptance); 0 for a refuser"),
    "hallucination_rate": MetricDef("hallucination rate", "%", _PCT, False, "incorrect answers / all items"),
    "annotation_accuracy": MetricDef("annotation accuracy", "%", _PCT, True,
                                     "documents labelled as the gold label, with the chosen strategy"),
    "cost_per_1k_requests_usd": MetricDef("cost per 1k requests", "USD", 1, False,
                                          "at the target rate: fleet cost per hour / requests per hour × 1000"),
    "cost_per_document_usd": MetricDef("cost per document", "USD", 1, False,
                                       "requests per document × mean cost per request, chosen strategy"),
    "monthly_cost_usd": MetricDef("cost per month", "USD", 1, False,
                                  "the scenario's monthly requests × cost per request"),
    "monthly_busy_cost_usd": MetricDef("cost per month, busy time only", "USD", 1, False,
                                       "self-hosted: only the machine-hours the requests keep a server busy"),
    "monthly_always_on_cost_usd": MetricDef("cost per month, machine kept up", "USD", 1, False,
                                            "self-hosted: the machines that stay up all month to serve the requests"),
    "batch_wall_time_h": MetricDef("batch wall time", "h", 1, False,
                                   "documents per night × requests per document × mean request time / in flight; "
                                   "a batch API: its completion window, or the local endpoint's turnaround scaled"),
    "batch_api_wall_time_h": MetricDef("batch API wall time", "h", 1, False,
                                       "the provider's completion window (documented or declared), or the local "
                                       "batch endpoint's measured turnaround scaled to the night"),
    "longest_doc_window_share": MetricDef("longest document / context window", "%", _PCT, False,
                                          "batch scenario: the longest request one of its documents needs (with "
                                          "chunking: the longest chunk) over the contender's context window; "
                                          "≤ 100%: it fits"),
    "goodput_rps": MetricDef("goodput", "req/s", 1, True, "requests/s within the SLO, best load level that meets it"),
    "max_throughput_rps": MetricDef("max throughput", "req/s", 1, True, "completed requests/s, best load level"),
    "integration_score": MetricDef("integration facts established", "%", _PCT, True,
                                   "streaming, usage, JSON mode, tools, rate-limit headers, OpenAI-compatible"),
    "error_rate": MetricDef("error rate", "%", _PCT, False,
                            "failed requests / requests sent, the scenario's own experiments (rehearsal left out)"),
}


#: Which experiment measures a metric (by name prefix): an empty cell of a table says which one did
#: not run, or not for that contender.
_MEASURED_BY = (("ttft_", "latency"), ("e2e_", "latency"), ("cold_", "latency"), ("route_", "latency"),
                ("integration_", "latency"), ("max_throughput", "concurrency"), ("goodput", "concurrency"),
                ("qa_", "hallucination"), ("false_premise", "hallucination"), ("hallucination", "hallucination"),
                ("annotation_", "coalescing"), ("batch_", "coalescing"))


def measured_by(name: str) -> str | None:
    """The experiment whose records a metric comes from (None: several, or derived)."""
    return next((exp for prefix, exp in _MEASURED_BY if name.startswith(prefix)), None)


def unmeasured_text(name: str, reason: str = "") -> str:
    """What an empty cell says: why the value is missing, never a bare dash."""
    if reason:
        return f"not measured: {reason}"
    exp = measured_by(name)
    return f"not measured (no {exp} records for it in this run)" if exp else "not measured in this run"


def describe(name: str) -> MetricDef:
    """The definition of `name`; a name outside the catalogue gets a plain one (never raises)."""
    return METRICS.get(name, MetricDef(name, "", 1, True, ""))


def format_number(x: float, digits: int = 3) -> str:
    """`x` to `digits` significant digits with thousands separators ("1,234", "45.6", "0.0123");
    "∞" / "−∞" for an infinite one, "—" for NaN (a bound the sample cannot support)."""
    if math.isinf(x):
        return "∞" if x > 0 else "−∞"
    if x == 0 or not math.isfinite(x):
        return f"{x:g}" if not math.isnan(x) else "—"
    decimals = max(0, digits - 1 - math.floor(math.log10(abs(x))))
    return f"{x:,.{decimals}f}"


def format_p(p: float) -> str:
    """A p-value as people read one: "0.032", "0.0041", "< 0.001" (never 2.61e-11)."""
    if math.isnan(p):
        return "—"
    if p < 0.001:
        return "< 0.001"
    return f"{p:.2g}" if p < 0.01 else f"{p:.2f}" if p < 0.995 else "1"


def format_interval(value: float, low: float = math.nan, high: float = math.nan, n: int = 0, *,
                    scale: float = 1.0, unit: str = "", digits: int = 3) -> str:
    """The one way a number with its interval is shown: `"212 ms [180, 260] n=162"` (stored value
    × `scale`, `digits` significant digits); "—" for a missing bound, "n/a" for a missing value;
    no brackets when neither bound exists; an infinite value (a percentile on failed requests) is
    "∞" and keeps its interval (`"∞ ms [120, ∞] n=100"`: what the sample still bounds)."""
    if math.isnan(value):
        return "n/a"
    shown_unit = "" if not unit else (unit if unit == "%" else f" {unit}")
    text = f"{format_number(value * scale, digits)}{shown_unit}"
    if not (math.isnan(low) and math.isnan(high)):
        text += f" [{format_number(low * scale, digits)}, {format_number(high * scale, digits)}]"
    return text + (f" n={n}" if n else "")


def format_value(name: str, value: float, low: float = math.nan, high: float = math.nan, n: int = 0) -> str:
    """`format_interval` in the catalogue metric `name`'s unit and scale."""
    d = describe(name)
    return format_interval(value, low, high, n, scale=d.scale, unit=d.unit)


def format_estimate(est: Estimate, name: str = "", *, scale: float = 1.0, unit: str = "") -> str:
    """An `Estimate` (or a `Metric`, a `QuantileEstimate`) with its n: in catalogue metric
    `name`'s unit and scale, or (no name) × `scale` with `unit` (empty: the column's head says it)."""
    if name:
        return format_value(name, est.value, est.low, est.high, est.n)
    return format_interval(est.value, est.low, est.high, est.n, scale=scale, unit=unit)
