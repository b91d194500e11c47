"""The summary: the decision matrix per scenario, the per-axis evidence, and the text around it.

The notebook calls `build_summary()` once and shows its parts; the runner then exports the
executed notebook as `report.html` (see `workbench.runner.export_html`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from workbench.analysis.checklist import migration_checklist
from workbench.analysis.comparisons import pairwise_tests
from workbench.analysis.decision import AXIS_METRIC, ScenarioResult, decide, decision_matrix
from workbench.analysis.evidence import Evidence, concurrency_levels, gather_evidence
from workbench.analysis.scenarios import RealtimeScenario, load_scenarios
from workbench.config import load_contenders

__all__ = ["AXES_SHOWN", "Summary", "build_summary"]

#: Per-contender metrics shown in the axes table: (metric, label, scale, unit).
AXES_SHOWN: tuple[tuple[str, str, float, str], ...] = (
    ("p50_ttft_s", "TTFT p50", 1000, " ms"),
    ("p95_ttft_s", "TTFT p95", 1000, " ms"),
    ("p50_e2e_s", "E2E p50", 1000, " ms"),
    ("p95_e2e_s", "E2E p95", 1000, " ms"),
    ("cold_e2e_s", "cold E2E", 1000, " ms"),
    ("max_throughput_rps", "max throughput", 1, " req/s"),
    ("error_rate", "error rate", 100, "%"),
    ("hallucination_rate", "hallucination rate", 100, "%"),
    ("abstention_rate", "abstention rate", 100, "%"),
    ("qa_accuracy", "QA accuracy", 100, "%"),
    ("integration_score", "integration facts established", 100, "%"),
)


@dataclass
class Summary:
    evidence: Evidence
    results: list[ScenarioResult]
    matrix: pd.DataFrame
    significance: pd.DataFrame
    missing_axes: list[str] = field(default_factory=list)

    def axes_table(self) -> pd.DataFrame:
        rows = []
        for label in self.evidence.contenders:
            row: dict[str, Any] = {"contender": label}
            for metric, name, scale, unit in AXES_SHOWN:
                m = self.evidence.get(label, metric)
                row[name] = m.fmt(scale, 3, unit) if m is not None else "—"
            rows.append(row)
        return pd.DataFrame(rows).set_index("contender").T

    def picks_markdown(self) -> str:
        lines = []
        for r in self.results:
            pick = r.pick
            if pick is None:
                why = "; ".join(sorted({str(x) for x in r.table["failed_constraint"].dropna()}))
                lines.append(f"- **{r.name}**: **no contender meets the hard constraints** ({why}).")
                continue
            row = r.table[r.table["contender"] == pick].iloc[0]
            tied = r.table[(r.table["eligible"]) & (r.table["rank"] == 1) & (r.table["contender"] != pick)]
            tie = f" — statistically tied with {', '.join(tied['contender'])}" if not tied.empty else ""
            lines.append(f"- **{r.name}**: **{pick}**, score {row['score']:.2f} "
                         f"[{row['score_low']:.2f}, {row['score_high']:.2f}]{tie}. "
                         f"What you give up: {row['gives_up']}.")
            if r.dropped_axes:
                lines.append(f"  - axes not measured in this run (weights renormalised): {', '.join(r.dropped_axes)}")
        return "\n".join(lines)

    def checklist_markdown(self) -> str:
        out = []
        for r in self.results:
            out.append(f"**{r.name}** → {r.pick or 'no pick'}")
            out += [f"- [ ] {item}" for item in migration_checklist(r, self.evidence)]
            out.append("")
        return "\n".join(out)

    def pareto_points(self) -> pd.DataFrame:
        rows = []
        for r in self.results:
            cost_metric = AXIS_METRIC[r.scenario.kind]["cost"]
            for label, m in r.metrics.items():
                cost = m.get(cost_metric)
                quality = m.get("accuracy") or m.get("qa_accuracy")
                if cost is None or quality is None:
                    continue
                rows.append({"scenario": r.name, "contender": label, "cost": cost.value, "quality": quality.value,
                             "cost_label": cost_metric, "quality_label": "accuracy (share correct)"})
        return pd.DataFrame(rows)

    def hallucination_rows(self) -> pd.DataFrame:
        rows = []
        for label in self.evidence.contenders:
            for metric in ("hallucination_rate", "abstention_rate", "qa_accuracy"):
                m = self.evidence.get(label, metric)
                if m is not None:
                    rows.append({"contender": label, "metric": metric, "value": m.value, "low": m.low,
                                 "high": m.high, "n": m.n})
        return pd.DataFrame(rows)

    def concurrency_levels(self) -> pd.DataFrame:
        df = self.evidence.frames.get("concurrency")
        slo = next((r.scenario.slo_p95_e2e_s for r in self.results if isinstance(r.scenario, RealtimeScenario)),
                   math.inf)
        return concurrency_levels(df, slo) if df is not None else pd.DataFrame()


def build_summary(
    runs: list[str | Path],
    *,
    scenarios_file: str | Path | None = None,
    contenders_file: str | Path | None = None,
    machine_hour_usd: float = 0.10,
    n_boot: int = 1000,
) -> Summary:
    ev = gather_evidence(runs, n_boot=n_boot)
    contenders = {c.name: c for c in load_contenders(contenders_file or None)}
    scenarios = load_scenarios(scenarios_file or None)
    results = [decide(ev, name, sc, contenders, machine_hour_usd=machine_hour_usd, n_boot=n_boot)
               for name, sc in scenarios.items()]
    return Summary(ev, results, decision_matrix(results), pairwise_tests(ev), list(ev.missing))
