"""The experiments, one module and one notebook each, registered by name in run order.

`workbench run` executes the notebooks of the registered experiments in this order; the
summary comes last because it reads the others' records.

A notebook's own parameter defaults are small, so CI and a first look stay fast; an
experiment's `run_params` are what a full `workbench run` (`make run`) uses instead. Precedence,
lowest to highest: notebook defaults < `run_params` < `--param` overrides.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from workbench import workspace
from workbench.errors import WorkbenchError, lookup

__all__ = ["EXPERIMENTS", "Experiment", "get_experiment", "scenario_input", "select_experiments",
           "workspace_inputs"]


@dataclass(frozen=True)
class Experiment:
    """One registered experiment.

    `run_params` are the sizes `workbench run` (and so `make run`) uses instead of the
    notebook's CI-safe defaults; a `--param` given by the user always wins over them.
    """

    name: str
    notebook: str
    summary: str
    #: export the executed notebook as report.html (without code cells)
    html_report: bool = False
    run_params: Mapping[str, Any] = field(default_factory=dict, hash=False)
    """Parameters `workbench run` passes unless the user overrides them (e.g. the full dataset)."""
    planned: Callable[[Mapping[str, Any], int], int | Mapping[str, int] | None] | None = field(
        default=None, hash=False)
    """Logical requests the run will send, from its parameters and the number of contenders (for the
    progress line; an estimate, None when the experiment cannot tell); by part (`{phase: n}`, the
    first part taking every other phase) when the experiment has parts planned apart."""

    @property
    def path(self) -> Path:
        """The notebook that runs: the workspace's own copy if it has one, else the packaged one."""
        return workspace.current().notebook(self.notebook)


def _levels(p: Mapping[str, Any]) -> list[int]:
    return sorted({int(x) for x in str(p.get("levels", "")).split(",") if x.strip()})


def _planned_latency(p: Mapping[str, Any], n: int) -> int:
    return n * (1 + int(p.get("warmup", 0)) + int(p.get("n_requests", 0)))


def _planned_concurrency(p: Mapping[str, Any], n: int) -> int | dict[str, int]:
    """The sweep (warm-up and confirmation in it) and the rate-limit rehearsal, each its own plan:
    the rehearsal's logical requests per mitigation are not the sweep's."""
    sweep = sum(max(int(p.get("requests_per_level", 0)), level) for level in _levels(p))
    rehearsal = 4 * int(p.get("rehearse_requests", 0)) if p.get("rehearse_rate_limit") else 0
    warmup = int(p.get("shards", 1)) or os.cpu_count() or 1  # one warm-up request per shard (0: one per CPU)
    swept = n * (warmup + sweep + int(p.get("confirm_requests", 0)))
    return {"sweep": swept, "rehearsal": rehearsal} if rehearsal else swept


def _planned_hallucination(p: Mapping[str, Any], n: int) -> int | None:
    from workbench.experiments.hallucination import load_items

    try:
        items = int(p.get("sample_size", 0)) or len(load_items(str(p.get("datasets") or "")))
    except (WorkbenchError, ValueError, OSError):
        return None  # the notebook reports the mistake itself
    samples = 1 + (int(p.get("k_samples", 1)) if int(p.get("k_samples", 1)) > 1 else 0)
    return n * items * samples


def _planned_context(p: Mapping[str, Any], n: int) -> int | None:
    """Per contender: each generated document's questions (one per depth and the two-fact one),
    and the window probe; None for the user's documents (their count is read by the notebook)."""
    if p.get("documents"):
        return None
    try:
        from workbench.experiments.context import parse_depths, parse_lengths

        docs = len(parse_lengths(str(p.get("lengths", "")))) * int(p.get("docs_per_length", 1))
        questions = len(parse_depths(str(p.get("depths", "")))) + 1
    except ValueError:
        return None  # the notebook reports the mistake itself
    return n * (docs * questions + (1 if p.get("probe_window") else 0))


EXPERIMENTS: dict[str, Experiment] = {
    e.name: e
    for e in (
        # `make run` fits in 10 minutes on 2 idle cores (7:55 measured, setup included); what each
        # experiment gets for that:
        # 100 routing messages (of 162, a shuffled file: any prefix mixes intents and kinds): p95
        # has both order-statistic bounds from n = 72, routing accuracy an interval of about ±10%.
        Experiment("latency", "latency.ipynb", "TTFT / E2E / TPOT percentiles with intervals, routing accuracy, "
                   "cold start", run_params={"n_requests": 100}, planned=_planned_latency),
        # The realtime scenario's own requests (its prompt set, the notebook's default; the latency
        # experiment's 24-token cap), so the sweep prices the routing workload — a sweep on other
        # prompts leaves a self-hosted contender's routing cost unmeasured; 72 requests per level:
        # p95 has both bounds at every level; 4 levels up to 16: a USL fit with a residual degree
        # of freedom, and a knee to find.
        Experiment("concurrency", "concurrency.ipynb",
                   "load sweep: throughput, p95 vs concurrency, knee, USL, fleet cost, rate-limit rehearsal",
                   run_params={"max_tokens": 24, "levels": "1,4,8,16", "requests_per_level": 72,
                               "confirm_requests": 16},
                   planned=_planned_concurrency),
        Experiment(
            "hallucination", "hallucination.ipynb",
            "answerable / unanswerable items apart, hallucination score, paired McNemar, worst answers",
            # The full dataset (173 items), 8 in flight: one per server slot (answers, not latency,
            # are measured here, so the server may batch).
            run_params={"sample_size": 0, "concurrency": 8},
            planned=_planned_hallucination,
        ),
        Experiment(
            "coalescing", "coalescing.ipynb",
            "architecture levers on annotation: naive vs coalesced vs dedup vs cache, cached prefix and batch "
            "API, with projections",
            # A batch job fills the slots. The cached-prefix and batch-api arms label all 48
            # documents (so the batch scenario's lever is judged on the same n as naive; measured
            # +7 s over 16 documents on 2 cores), 6 of them also with the cache-off control (a full
            # prompt evaluated: the dearest requests of the experiment; 6 is the fewest pairs whose
            # median has an order-statistic interval), and the run keeps its 10 minutes.
            run_params={"n_docs": 48, "window": 16, "concurrency": 8, "lever_docs": 0, "prefix_control_docs": 6},
        ),
        # One contract per length to 4k tokens on both embedded models, each served from one
        # 9,216-token slot while it runs (77 s of make run's 9:06, measured). 8k is one parameter away
        # (`--param lengths=512,1024,2048,8192`) but costs make run's 10 minutes: Qwen2.5 0.5B's
        # 8k prefill alone took 91 s on 2 idle cores (~100 tokens/s, attention growing with the
        # length), and make run with it measured 10:53.
        Experiment("context", "context.ipynb",
                   "input-length axis: TTFT vs length fit, prefill rate, accuracy by length x depth, cached vs "
                   "uncached document, window, cost per document",
                   run_params={"lengths": "512,1024,2048,4096"}, planned=_planned_context),
        Experiment("summary", "summary.ipynb", "decision matrix per scenario: constraints, p_best, ranks, "
                   "comparisons, report.html", html_report=True),
    )
}


def get_experiment(name: str) -> Experiment:
    return lookup("experiment", name, EXPERIMENTS)


def select_experiments(names: str | None) -> list[Experiment]:
    """Comma-separated names (any order; run in registry order), or all when empty."""
    if not names or names == "all":
        return list(EXPERIMENTS.values())
    wanted = {get_experiment(n.strip()).name for n in names.split(",") if n.strip()}
    return [e for e in EXPERIMENTS.values() if e.name in wanted]


def workspace_inputs(ws: workspace.Workspace | None = None) -> dict[str, dict[str, Any]]:
    """Per experiment, the inputs the workspace's scenarios name (a realtime scenario's prompts —
    its task's, or its `prompt_set` — are the latency and load prompts, its SLO and rate the
    sweep's; a prototyping scenario's qa task is the hallucination questions; a batch scenario's
    task the annotation documents, read by the coalescing experiment itself; a long_doc task, of
    any kind, the context experiment's documents): each kind says
    which (`Scenario.experiment_inputs`), and the first scenario to name an experiment counts.
    A notebook run on its own (JupyterLab, papermill, nbval) finds the same through
    `scenario_input`, so it measures the workspace it sits in."""
    from workbench.analysis.scenarios import load_scenarios

    ws = ws or workspace.current()
    if not ws.scenarios_file.exists():
        return {}
    out: dict[str, dict[str, Any]] = {}
    for sc in load_scenarios(ws.scenarios_file).values():
        for experiment, params in sc.experiment_inputs().items():
            out.setdefault(experiment, params)
    return out


def scenario_input(experiment: str, name: str) -> str:
    """An input a notebook leaves empty (`prompt_set = ""`): what the workspace's scenarios name
    for it (`workspace_inputs`), or a WorkbenchError saying what to give instead."""
    from workbench.errors import WorkbenchError

    value = workspace_inputs().get(experiment, {}).get(name)
    if not value:
        raise WorkbenchError(f"{experiment}: {name} is empty and the workspace's scenarios name none "
                             f"({workspace.current().scenarios_file}): give --param {name}=…")
    return str(value)
