"""The summary: the decision matrix per scenario, the per-axis evidence, and the text around it.

The notebook calls `build_summary()` once and `Summary.show(run_dir)`, which writes
`decision_matrix.csv` and `report.html` (`html.write_report`: the report's parts, `report_parts`, as a
standalone page) and displays the same parts — so a notebook run on its own (papermill,
JupyterLab, nbval) leaves the report `workbench run` does. One joint resampling
(`Draws`) serves every scenario, so the scenarios' uncertainties come from the same replicates.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from workbench.analysis import capacity
from workbench.analysis.catalog import describe, format_p, format_value, unmeasured_text
from workbench.analysis.checklist import migration_checklist
from workbench.analysis.comparisons import pairwise_tests
from workbench.analysis.decision import DECISIVE_P, ScenarioResult, decide
from workbench.analysis.evidence import Draws, Evidence, gather_evidence
from workbench.analysis.scenarios import AXES, load_scenarios
from workbench.config import load_contenders
from workbench.pricing import declared_prices
from workbench.report.columns import AXES_TABLE, display_matrix, matrix_frame
from workbench.report.html import Card, Part, figure_parts, render_cards, show_parts, write_report
from workbench.report.long_documents import long_document_parts

__all__ = ["SCORE_TEXT", "Summary", "build_summary", "run_summary"]

#: How to read the matrix, in plain words (the report shows it; README says the same).
SCORE_TEXT = """\
**Score** = Σ weight × utility over the scenario's axes; every utility lies in [0, 1] on an absolute
scale (it does not depend on the other contenders): quality and hallucination are the share itself;
latency and cost are 1 / (1 + value / reference), ½ at the scenario's reference value.
**Hallucination score** = QA F-score on answerable questions × (1 − ½ × false-premise acceptance): a
contender that always says "I don't know" scores 0.
**Constraints** are judged one-sided at 95% (a limit has one side): *pass* (the one-sided bound on the
limit's side meets it), *fail* (the opposite one-sided bound misses it), *inconclusive* (otherwise —
listed with the sample size that would decide it, not ranked — or the metric was not measured:
missing is never 0); beside each, P(pass): how often a run of this size would pass it if the
measured value were the truth.
**Failed requests count**: +∞ in latency percentiles, wrong in every accuracy; every scenario limits
its own error rate.
**p_best** = the share of {n_boot} joint bootstrap replicates (prompts, items and documents resampled
once for every contender together) in which the contender has the top score among the eligible
ones; **rank [low, high]** = its median rank and 95% rank interval over the same replicates. A pick is
**decisive** when it beats every other contender that could still qualify in ≥ {decisive:.1%} of the
replicates (each rival may beat it in at most {undecided:.1%})."""


@dataclass
class Summary:
    evidence: Evidence
    results: list[ScenarioResult]
    matrix: pd.DataFrame
    significance: pd.DataFrame
    missing_axes: list[str] = field(default_factory=list)
    n_boot: int = 1000
    _hosted: set[str] = field(default_factory=set)
    #: contender → the price fields its contenders-file entry declares (with their source): the
    #: prices genai-prices does not have (e.g. a batch discount), which the report must name
    declared_prices: dict[str, str] = field(default_factory=dict)
    #: name → Contender (the contenders file's): what prices the long-document section's documents
    contenders: dict[str, Any] = field(default_factory=dict)
    #: the run's assumed USD per self-hosted machine-hour (the notebook's parameter)
    machine_hour_usd: float = 0.10

    def axes_table(self) -> pd.DataFrame:
        """Value [95% interval] n per contender and metric (the shared metrics of every scenario)."""
        merged: dict[str, dict[str, Any]] = {}
        for r in self.results:
            for label, m in r.metrics.items():
                merged.setdefault(label, {}).update({k: v for k, v in m.items() if k in AXES_TABLE})
        for label in merged:  # each scenario counts its own requests; this table: every request sent
            overall = self.evidence.get(label, "error_rate")
            if overall is not None:
                merged[label]["error_rate"] = overall
        rows = []
        for label in self.evidence.contenders:
            row: dict[str, Any] = {"contender": label}
            for name in AXES_TABLE:
                mm = merged.get(label, {}).get(name)
                if mm is None or math.isnan(mm.value):  # an empty cell says why
                    row[describe(name).label] = unmeasured_text(name, mm.source if mm is not None else "")
                else:
                    row[describe(name).label] = format_value(name, mm.value, mm.low, mm.high, mm.n)
            rows.append(row)
        return pd.DataFrame(rows).set_index("contender").T if rows else pd.DataFrame()

    def cards_html(self) -> str:
        """The first screen: per scenario one card — the pick (or that none qualifies and the
        nearest miss), how sure, what you give up, the one number that decided it."""
        cards = []
        for r in self.results:
            sc = r.scenario
            if r.pick is None:
                pending = r.table[r.table["constraint_status"] == "inconclusive"]
                if pending.empty:
                    head, tone = "No contender qualifies", "none"
                    sure = "Every contender fails a hard constraint (see the matrix)."
                else:  # inconclusive is not failed: say so, and what would decide it
                    head, tone = "Inconclusive: no pick yet", "tied"
                    sure = (f"No contender passes every hard constraint, but {len(pending)} inconclusive "
                            f"({', '.join(map(str, pending['contender']))}) could still qualify: measure more "
                            "(see the matrix).")
                give = ""
            else:
                row = r.table[r.table["contender"] == r.pick].iloc[0]
                head = r.pick
                tone = "decisive" if r.decisive else "tied"
                sure = r.certainty[:1].upper() + r.certainty[1:] + "."
                give = str(row["gives_up"])
            weights = ", ".join(f"{a} {w:.0%}" for a, w in sc.normalized_weights.items() if w > 0)
            cards.append(Card(scenario=r.name, kind=sc.kind, head=head, tone=tone, sure=sure, gives_up=give,
                              decided_by=r.decided_by, description=sc.description, weights=weights,
                              detail=sc.card_detail(r.metrics, r.pick)))
        return render_cards(cards)

    def display_matrix(self) -> pd.DataFrame:
        """The matrix in words: what each column means instead of its CSV name (the CSV keeps the
        names of the contract, `columns.MATRIX`, listed in the README)."""
        return display_matrix(self.matrix)

    def _lost(self, label: str, axis: str) -> int:
        """Units of a comparison's family (prompts; items for hallucination) whose request failed:
        still in the test (as +∞ or wrong), and said."""
        tables = self.evidence.items if axis == "hallucination" else self.evidence.prompts
        t = tables.get(label)
        return int(t["error_class"].notna().sum()) if t is not None and "error_class" in t else 0

    def comparisons_display(self) -> pd.DataFrame:
        """The paired tests in words: what is compared, the difference with its interval, p-values,
        and how many of the paired units each side lost to errors."""
        rows = []
        for _, r in self.significance.iterrows():
            rows.append({
                "what is tested": r["tests"], "a": r["a"], "b": r["b"], "paired units": int(r["n"]),
                "lost to errors (a / b)": f"{self._lost(r['a'], r['axis'])} / {self._lost(r['b'], r['axis'])}",
                "difference a − b [95% interval]": f"{r['effect']:.2f} [{r['effect_low']:.2f}, {r['effect_high']:.2f}] "
                                                   f"{str(r['effect_unit']).split(' ')[0]}",
                "p": format_p(r["p"]), "p after Holm": format_p(r["p_holm"]),
                "verdict": "different" if r["significant"] else "not shown to differ",
            })
        return pd.DataFrame(rows)

    def scoring_markdown(self) -> str:
        """How each scenario's axes are scored, and the constraints, in words."""
        out = [SCORE_TEXT.format(n_boot=self.n_boot, decisive=DECISIVE_P, undecided=1 - DECISIVE_P), ""]
        for r in self.results:
            sc = r.scenario
            w = sc.normalized_weights
            parts = [f"{a} {w[a]:.0%}: {sc.utility_text()[a]}" for a in AXES if w[a] > 0]
            out.append(f"- **{r.name}** ({sc.kind}): " + "; ".join(parts) + ". Constraints: "
                       + ", ".join(c.text for c in sc.hard_constraints) + ".")
        return "\n".join(out)

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
            cost_name, quality_name = r.scenario.axis_metric["cost"], r.scenario.axis_metric["accuracy"]
            for label, m in r.metrics.items():
                cost, quality = m.get(cost_name), m.get(quality_name)
                if cost is None or quality is None or not math.isfinite(cost.value):
                    continue
                rows.append({"scenario": r.name, "contender": label, "cost": cost.value, "quality": quality.value,
                             "cost_label": describe(cost_name).label, "quality_label": describe(quality_name).label})
        return pd.DataFrame(rows)

    def hallucination_rows(self) -> pd.DataFrame:
        rows = []
        shown = ("qa_f_score", "false_premise_acceptance", "hallucination_score")
        for r in self.results[:1]:
            for label, m in r.metrics.items():
                for name in shown:
                    mm = m.get(name)
                    if mm is not None:
                        rows.append({"contender": label, "metric": describe(name).label, "value": mm.value,
                                     "low": mm.low, "high": mm.high, "n": mm.n})
        return pd.DataFrame(rows)

    def concurrency_levels(self) -> pd.DataFrame:
        df = self.evidence.frames.get("concurrency")
        slo = next((o for r in self.results if (o := r.scenario.latency_objective) is not None), math.inf)
        if df is None or "level" not in df:
            return pd.DataFrame()
        table = capacity.level_summary(df.assign(contender=df["label"]), slo)
        return table.rename(columns={"contender": "label", "level": "concurrency", "output_tok_s": "output_tps"})

    def assumptions_markdown(self) -> str:
        lines: set[str] = set()
        for r in self.results:
            lines.update(f"- {r.name}: {a}" for a in r.assumptions)
            for label, m in r.metrics.items():
                for name in ("cost_per_1k_requests_usd", "cost_per_document_usd", "monthly_cost_usd",
                             "monthly_busy_cost_usd", "monthly_always_on_cost_usd", "batch_wall_time_h"):
                    if name in m and m[name].source:
                        lines.add(f"- {r.name} / {label} / {describe(name).label}: {m[name].source}")
        shown = {str(label).split("@")[0] for r in self.results for label in r.metrics}
        lines.update(f"- price declared in the contenders file (over genai-prices where it has one): {name}: {text}"
                     for name, text in self.declared_prices.items() if name in shown)
        return "\n".join(sorted(lines)) or "no projections in this run"

    def next_steps_markdown(self) -> str:
        """What would change the answer: hosted contenders when none ran, experiments not run."""
        out = []
        contenders = {c for r in self.results for c in r.metrics}
        hosted = [c for c in contenders if "@" not in c and c in self._hosted]
        if not hosted:
            out.append("Only the embedded models ran. A hosted contender is one entry in "
                       "`experiments/contenders.yaml` (README: *Adding a hosted contender*) and its key in the "
                       "environment variable it names; with one, routing and prototyping costs become tokens at "
                       "list price instead of machines kept up, and its latency includes the network.")
        if self.missing_axes:
            out.append(f"Experiments missing from this run (their axes are left out of the scores): "
                       f"{', '.join(self.missing_axes)}.")
        return "\n\n".join(out) or "Every experiment ran, with hosted and embedded contenders."

    def self_hosted_costs(self) -> pd.DataFrame:
        """Self-hosted contenders' monthly cost both ways (busy time, kept up all month) and
        which one each scenario's matrix uses, so neither hides the other."""
        rows = []
        for r in self.results:
            for label, m in r.metrics.items():
                busy, on = m.get("monthly_busy_cost_usd"), m.get("monthly_always_on_cost_usd")
                if busy is None or on is None:
                    continue
                rows.append({"scenario": r.name, "contender": label,
                             "busy time only": format_value("monthly_busy_cost_usd", busy.value, busy.low, busy.high),
                             "machine kept up all month": format_value("monthly_always_on_cost_usd", on.value, on.low,
                                                                       on.high),
                             "the matrix uses": r.scenario.self_hosted_basis()})
        return pd.DataFrame(rows)


    def report_parts(self, run_dir: str | Path) -> list[Part]:
        """Everything the report shows, in order — the one list both the notebook (`show`) and
        `report.html` (`write_report`) are made of. The plots are saved as PNGs in `run_dir`."""
        from workbench.analysis import plots

        run_dir = Path(run_dir)
        parts = [
            Part("markdown", "# Which model for which workload\n\nPer workload scenario, the answer first; how "
                 "sure it is and what it rests on below. Every number carries its 95% interval and sample size."),
            Part("html", self.cards_html()),
            Part("markdown", self.next_steps_markdown()),
            Part("markdown", "## How the answer was reached"),
            Part("markdown", self.scoring_markdown()),
            Part("table", self.display_matrix()),
            Part("markdown", "## The axes per contender\nValue [95% interval] n = sample size; — = a bound the "
                 "sample cannot support."),
            Part("table", self.axes_table(), index=True),
            Part("markdown", "## Self-hosted cost, both ways\nA machine kept up all month costs the same however "
                 "little it is used; busy time is what the requests alone keep it busy. The matrix uses the one "
                 "the scenario names (`self_hosted`)."),
        ]
        costs = self.self_hosted_costs()
        parts.append(Part("table", costs) if not costs.empty else
                     Part("text", "No self-hosted contender has a measured monthly cost in this run."))
        parts.append(Part("markdown", "## Latency, throughput, hallucination, cost vs quality"))
        figures: list[tuple[str, Any]] = []
        frames = self.evidence.frames
        if "latency" in frames:
            figures.append(("summary_latency_ecdf.png", lambda p: plots.latency_ecdf(frames["latency"], path=p)))
        levels = self.concurrency_levels()
        if not levels.empty:
            slo = next((o.max_s for r in self.results  # the plot's axis is p95 E2E
                        if (o := r.scenario.latency_objective) is not None and o.name == "e2e_p95"), None)
            figures.append(("summary_throughput.png",
                            lambda p: plots.throughput_vs_concurrency(levels, path=p, slo_s=slo)))
        else:
            parts.append(Part("text", "Concurrency was not measured in this run: run the concurrency experiment."))
        figures.append(("summary_hallucination.png", lambda p: plots.rate_bars(
            self.hallucination_rows(), path=p,
            title="QA F-score, false-premise acceptance, hallucination score (95% intervals)")))
        figures.append(("summary_pareto.png", lambda p: plots.cost_quality_pareto(self.pareto_points(), path=p)))
        for name, draw in figures:
            parts += figure_parts(run_dir, name, draw)
        parts += long_document_parts(run_dir, self.contenders, self.machine_hour_usd)
        parts.append(Part("markdown", "## Statistical comparisons\nEvery pair, paired on the same prompts and "
                          "items; each row says what it tests, the effect (a − b) with its 95% interval, the raw "
                          "p-value and the Holm-adjusted one across the whole table."))
        sig = self.comparisons_display()
        parts.append(Part("table", sig) if not sig.empty else Part("text", "no pair to compare"))
        parts += [
            Part("markdown", "## Migration checklist\nWhat switching to each scenario's pick implies, from the "
                 "measured numbers."),
            Part("markdown", self.checklist_markdown()),
            Part("markdown", "## Assumptions\nEvery projection above rests on these; change the parameters or "
                 "the scenarios file to match your setting."),
            Part("markdown", self.assumptions_markdown()),
        ]
        return parts

    def show(self, run_dir: str | Path) -> Path:
        """The summary notebook's one call: write `decision_matrix.csv` and `report.html` into
        `run_dir`, and display the report's parts in the notebook. A notebook run on its own
        (papermill, JupyterLab, nbval) so leaves the same report as `workbench run`."""
        run_dir = Path(run_dir)
        self.matrix.to_csv(run_dir / "decision_matrix.csv", index=False)
        parts = self.report_parts(run_dir)
        show_parts(parts)
        return write_report(parts, run_dir / "report.html")


def run_summary(
    out_dir: str | Path = "",
    compare_runs: str = "",
    *,
    scenarios_file: str | Path | None = None,
    contenders_file: str | Path | None = None,
    machine_hour_usd: float = 0.10,
    n_boot: int = 1000,
) -> Summary:
    """The summary notebook's one call: summarise `out_dir` (empty: the newest run folder) with
    the runs in `compare_runs` (comma-separated folders), then `Summary.show` — the notebook's
    display, `decision_matrix.csv` and `report.html` in `out_dir`."""
    from workbench.results import results_root

    run_dir = Path(out_dir) if out_dir else sorted(p for p in results_root().iterdir() if p.is_dir())[-1]
    runs: list[str | Path] = [run_dir, *(Path(p.strip()) for p in compare_runs.split(",") if p.strip())]
    summary = build_summary(runs, scenarios_file=scenarios_file, contenders_file=contenders_file,
                            machine_hour_usd=machine_hour_usd, n_boot=n_boot)
    summary.show(run_dir)
    return summary


def build_summary(
    runs: list[str | Path],
    *,
    scenarios_file: str | Path | None = None,
    contenders_file: str | Path | None = None,
    machine_hour_usd: float = 0.10,
    n_boot: int = 1000,
    seed: int = 0,
) -> Summary:
    ev = gather_evidence(runs)
    contenders = {c.name: c for c in load_contenders(contenders_file or None)}
    scenarios = load_scenarios(scenarios_file or None)
    draws = Draws(ev, n_boot, seed)
    results = [decide(ev, name, sc, contenders, machine_hour_usd=machine_hour_usd, draws=draws)
               for name, sc in scenarios.items()]
    hosted = {name for name, c in contenders.items() if not c.machine_priced}
    declared = {name: text for name, c in contenders.items() if (text := declared_prices(c)) is not None}
    return Summary(ev, results, matrix_frame(results), pairwise_tests(ev, seed=seed), list(ev.missing), n_boot,
                   hosted, declared, contenders, machine_hour_usd)
