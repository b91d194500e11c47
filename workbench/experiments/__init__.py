"""The experiments, one module and one notebook each, registered by name in run order.

`workbench run` executes the notebooks of the registered experiments in this order; the
summary comes last because it reads the others' records.

A notebook's own parameter defaults are small, so CI and a first look stay fast; an
experiment's `run_params` are what a full `workbench run` (`make run`) uses instead. Precedence,
lowest to highest: notebook defaults < `run_params` < `--param` overrides.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from workbench.config import PROJECT_ROOT
from workbench.errors import lookup

__all__ = ["EXPERIMENTS", "NOTEBOOKS_DIR", "Experiment", "get_experiment", "select_experiments"]

NOTEBOOKS_DIR = PROJECT_ROOT / "notebooks"


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

    @property
    def path(self) -> Path:
        return NOTEBOOKS_DIR / self.notebook


EXPERIMENTS: dict[str, Experiment] = {
    e.name: e
    for e in (
        # Every routing message once (162): p95 has both order-statistic bounds from n = 72, and
        # routing accuracy gets an interval narrow enough to separate contenders.
        Experiment("latency", "latency.ipynb", "TTFT / E2E / TPOT percentiles with intervals, routing accuracy, "
                   "cold start", run_params={"n_requests": 162}),
        # Answers long enough for decoding to dominate (the generation prompts, 24 tokens), so the
        # server's batching shows; 72 requests per level: p95 has both bounds at every level; 4
        # levels up to 16: a USL fit with a residual degree of freedom, and a knee to find.
        Experiment("concurrency", "concurrency.ipynb",
                   "load sweep: throughput, p95 vs concurrency, knee, USL, fleet cost, rate-limit rehearsal",
                   run_params={"prompt_set": "generation", "max_tokens": 24, "levels": "1,4,8,16",
                               "requests_per_level": 72, "confirm_requests": 24}),
        Experiment(
            "hallucination", "hallucination.ipynb",
            "answerable / unanswerable items apart, hallucination score, paired McNemar, worst answers",
            run_params={"sample_size": 0, "concurrency": 4},  # the full dataset (173 items), 4 in flight
        ),
        Experiment(
            "coalescing", "coalescing.ipynb",
            "architecture levers on annotation: naive vs coalesced vs dedup vs cache, with projections",
            run_params={"n_docs": 64, "window": 16, "concurrency": 4},
        ),
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
