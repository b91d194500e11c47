"""Headless runs: execute experiment notebooks with papermill into one run folder.

Each notebook receives `out_dir` (the run folder) plus the user's `--param` overrides that its
`parameters` cell declares. A failing cell stops the run with the cell, the error and the path
of the executed notebook (which papermill saves with the traceback in it).
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from workbench.errors import WorkbenchError
from workbench.experiments import NOTEBOOKS_DIR, Experiment
from workbench.results import RunDir, update_manifest
from workbench.session import check_parameters

__all__ = ["ExperimentFailed", "notebook_parameters", "parse_params", "run_experiments"]

# Set by the runner itself, never by --param.
_RESERVED = {"out_dir"}


class ExperimentFailed(WorkbenchError):
    """A notebook cell raised; the executed notebook holds the traceback."""

    def __init__(self, experiment: str, notebook: Path, detail: str) -> None:
        self.experiment = experiment
        self.notebook = notebook
        super().__init__(f"experiment {experiment!r} failed: {detail}\n  executed notebook: {notebook}")


def parse_params(items: Sequence[str]) -> dict[str, Any]:
    """`k=v` strings → dict; values parsed as YAML scalars (`3` → 3, `true` → True, `a,b` stays text)."""
    out: dict[str, Any] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        key = key.strip()
        if not sep or not key.isidentifier():
            raise WorkbenchError(f"--param {item!r}: expected NAME=VALUE")
        try:
            out[key] = yaml.safe_load(raw) if raw.strip() else ""
        except yaml.YAMLError:
            out[key] = raw
    return out


def notebook_parameters(path: Path) -> dict[str, Any]:
    """Names and defaults of a notebook's `parameters` cell."""
    import papermill as pm

    info = pm.inspect_notebook(str(path))
    return {name: spec.get("default") for name, spec in info.items()}


def run_experiments(
    experiments: Sequence[Experiment],
    *,
    out_dir: str | Path | None = None,
    params: Mapping[str, Any] | None = None,
    log: Callable[[str], None] = print,
) -> RunDir:
    """Execute the notebooks in order; return the run folder."""
    import papermill as pm

    params = dict(params or {})
    check_parameters(params)
    declared: dict[str, dict[str, Any]] = {e.name: notebook_parameters(e.path) for e in experiments}
    known = set().union(*(set(d) for d in declared.values())) - _RESERVED if declared else set()
    for key in params:
        if key in _RESERVED:
            raise WorkbenchError(f"--param {key}: set by the runner; use --out instead")
        if key not in known:
            raise WorkbenchError(f"unknown parameter {key!r}; valid: {', '.join(sorted(known))}")
    run = RunDir.open_or_create(out_dir)
    update_manifest(run.path, runner={"experiments": [e.name for e in experiments], "params": params,
                                      "argv": sys.argv[1:]})
    log(f"run folder: {run.path}")
    for i, exp in enumerate(experiments, start=1):
        # Precedence: notebook defaults < the experiment's run_params < the user's --param.
        nb_params = {k: v for k, v in exp.run_params.items() if k in declared[exp.name]}
        nb_params.update({k: v for k, v in params.items() if k in declared[exp.name]})
        nb_params["out_dir"] = str(run.path.resolve())
        output = run.path / exp.notebook
        log(f"[{i}/{len(experiments)}] {exp.name}: {exp.summary}")
        t0 = time.perf_counter()
        try:
            pm.execute_notebook(
                str(exp.path),
                str(output),
                parameters=nb_params,
                cwd=str(NOTEBOOKS_DIR),
                kernel_name="python3",
                progress_bar=sys.stderr.isatty(),
                request_save_on_cell_execute=True,
            )
        except pm.PapermillExecutionError as exc:
            detail = f"cell {exc.exec_count}: {exc.ename}: {exc.evalue}"
            update_manifest(run.path, runner={"failed": {"experiment": exp.name, "detail": detail}})
            raise ExperimentFailed(exp.name, output, detail) from None
        log(f"      done in {time.perf_counter() - t0:.0f} s → {output}")
    log(f"results: {run.path}")
    return run
