"""The experiments, one module and one notebook each, registered by name in run order.

`workbench run` executes the notebooks of the registered experiments in this order; the
summary comes last because it reads the others' records.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from workbench.config import PROJECT_ROOT
from workbench.errors import UnknownNameError

__all__ = ["EXPERIMENTS", "NOTEBOOKS_DIR", "Experiment", "get_experiment", "select_experiments"]

NOTEBOOKS_DIR = PROJECT_ROOT / "notebooks"


@dataclass(frozen=True)
class Experiment:
    name: str
    notebook: str
    summary: str
    #: export the executed notebook as report.html (without code cells)
    html_report: bool = False

    @property
    def path(self) -> Path:
        return NOTEBOOKS_DIR / self.notebook


EXPERIMENTS: dict[str, Experiment] = {
    e.name: e
    for e in (
        Experiment("latency", "latency.ipynb", "TTFT / E2E / TPOT percentiles with CIs, cold start"),
        Experiment("concurrency", "concurrency.ipynb",
                   "load sweep: throughput, p95 vs concurrency, knee, USL, fleet cost, rate-limit rehearsal"),
        Experiment("summary", "summary.ipynb", "decision matrix per scenario, comparisons, report.html",
                   html_report=True),
    )
}


def get_experiment(name: str) -> Experiment:
    try:
        return EXPERIMENTS[name]
    except KeyError:
        raise UnknownNameError("experiment", name, EXPERIMENTS) from None


def select_experiments(names: str | None) -> list[Experiment]:
    """Comma-separated names (any order; run in registry order), or all when empty."""
    if not names or names == "all":
        return list(EXPERIMENTS.values())
    wanted = {get_experiment(n.strip()).name for n in names.split(",") if n.strip()}
    return [e for e in EXPERIMENTS.values() if e.name in wanted]
