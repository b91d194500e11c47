"""Headless runs: execute experiment notebooks with papermill into one run folder, and the report.

Each notebook receives `out_dir` (the run folder) plus the user's `--param` overrides that its
`parameters` cell declares. A failing cell stops the run with the cell, the error and the path
of the executed notebook (which papermill saves with the traceback in it). Each experiment's
manifest entry also says whether other processes kept the machine busy while it ran (`machine`,
`workbench.measure.machine`: their CPU use beside this process tree's — the kernel and the
embedded servers it started).

The report: the summary notebook executed on a run folder writes `report.html` itself
(`workbench.report.summary.Summary.show`), so a plain papermill run of it leaves one too; it
reads on its own — the matrix, the plots (embedded), the significance table and the checklist. A
notebook with `html_report` that writes none (an older copy) is exported without code cells
(`workbench.report.html.export_html`). `workbench report RUN` calls `render_report`.
"""

from __future__ import annotations

import ast
import datetime as dt
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml
from traitlets.config import Config

from workbench import keys, workspace
from workbench.config import load_contenders
from workbench.errors import WorkbenchError
from workbench.experiments import Experiment, get_experiment, workspace_inputs
from workbench.measure.machine import CpuMeter, busy_warning
from workbench.progress import Progress
from workbench.report.check import check_report
from workbench.report.html import export_html
from workbench.results import RunDir, read_manifest, update_manifest

__all__ = [
    "ExperimentFailed",
    "notebook_parameters",
    "parse_params",
    "preflight",
    "render_report",
    "resolve_parameters",
    "run_experiments",
]

# Set by the runner itself, never by --param.
_RESERVED = {"out_dir", "resume"}
# The kernels papermill starts talk to it over loopback TCP: encrypt that (CurveZMQ keys the
# kernel manager provisions, jupyter_client >= 8.9) rather than warn about it on every start.
_KERNEL_CONFIG = Config({"KernelManager": {"transport_encryption": "auto"}})


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
    """Names and defaults of a notebook's `parameters` cell, as values (papermill reports each
    default as its source text: `'"enabled"'`, `'0.5'`)."""
    import papermill as pm

    info = pm.inspect_notebook(str(path))
    return {name: _literal(spec.get("default")) for name, spec in info.items()}


def _literal(source: Any) -> Any:
    try:
        return ast.literal_eval(source) if isinstance(source, str) else source
    except (ValueError, SyntaxError):
        return source  # an expression, not a literal: kept as its text


def resolve_parameters(
    experiment: Experiment, declared: Mapping[str, Any], params: Mapping[str, Any],
    inputs: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """What one notebook receives: the experiment's `run_params`, then the inputs the workspace's
    scenarios name (`experiments.workspace_inputs`), then the user's overrides, each kept only when
    the notebook's parameters cell declares it (the rest are its defaults). `out_dir` is added by
    the caller."""
    merged = {**experiment.run_params, **(inputs or {}), **params}
    return {k: v for k, v in merged.items() if k in declared}


def preflight(params: Mapping[str, Any], log: Callable[[str], None] = print) -> dict[str, Any]:
    """Preflight the hosted contenders the run selects (`contenders_file`, `contenders` params),
    once, before any notebook: one line per contender that will be skipped (model not found,
    retired, no access) or whose check was inconclusive. The result goes to the manifest, where
    each experiment's session reads it instead of checking again."""
    from workbench.session import preflight_hosted

    chosen, _ = load_contenders(params.get("contenders_file") or None).select(params.get("contenders") or None)
    results = preflight_hosted(chosen)
    for p in results:
        if p.ok is False:
            log(p.skip_line)
        elif p.warning:
            log(p.warning_line)
        elif p.ok is None:
            log(f"preflight inconclusive for {p.contender} ({p.model!r}): {p.message}; running it")
    return {p.contender: p.to_dict() for p in results}


#: Parameters naming files: a relative path is the shell's (made absolute here, so the notebook
#: kernel, which runs elsewhere, reads the same file), and it must exist before anything runs.
_FILE_PARAMS = ("contenders_file", "scenarios_file")


def check_parameters(declared: Mapping[str, Mapping[str, Any]], params: Mapping[str, Any]) -> dict[str, Any]:
    """The user's `--param` values, checked before any notebook starts: each has the type of the
    notebook default it overrides (an int where the default is an int; a float takes an int; text
    where it is text), file parameters exist (made absolute), and a prompt set or dataset is read
    and validated as the experiment will read it. Any mistake is one WorkbenchError naming the
    parameter, the notebook and what would be right."""
    out = dict(params)
    for key, value in params.items():
        owners = [(name, d[key]) for name, d in declared.items() if key in d]
        for name, default in owners:
            out[key] = _typed(key, value, default, name)
        if key in _FILE_PARAMS and out[key]:
            p = Path(str(out[key])).expanduser()
            if not p.is_file():
                raise WorkbenchError(f"--param {key}={value}: no such file ({p.resolve()})")
            out[key] = str(p.resolve())
    _check_inputs(out)
    return out


def _typed(key: str, value: Any, default: Any, notebook: str) -> Any:
    where = f"--param {key}={value!r}: {notebook}.ipynb's {key} is"
    if isinstance(default, bool):
        if not isinstance(value, bool):
            raise WorkbenchError(f"{where} true or false (default {default})")
    elif isinstance(default, int):
        if isinstance(value, bool) or not isinstance(value, int):
            raise WorkbenchError(f"{where} a whole number (default {default})")
    elif isinstance(default, float):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise WorkbenchError(f"{where} a number (default {default})")
        return float(value)
    elif isinstance(default, str) and not isinstance(value, str):
        return str(value)  # YAML read `1,2` or `3` as text the notebook wants: keep its spelling
    return value


def _check_inputs(params: Mapping[str, Any]) -> None:
    """A prompt set or QA dataset given by parameter, read now, and the parameters a notebook
    parses read by the same package function it calls (`levels`, `strategies`): a typo fails
    before any server starts, and nothing is parsed two ways."""
    from workbench.errors import ConfigError

    try:
        if "levels" in params:
            from workbench.experiments.concurrency import parse_levels

            parse_levels(params["levels"])
        if "lengths" in params or "depths" in params:
            from workbench.experiments.context import parse_depths, parse_lengths

            parse_lengths(params.get("lengths", "512"))
            parse_depths(params.get("depths", "0.5"))
        if params.get("strategies"):
            from workbench.experiments.coalescing import parse_strategies

            parse_strategies(str(params["strategies"]))
    except ValueError as exc:
        raise WorkbenchError(f"--param {exc}") from None
    try:
        if params.get("prompt_set"):
            from workbench.prompts import load_prompts

            load_prompts(str(params["prompt_set"]))
        if params.get("datasets"):
            from workbench.analysis.grading import load_dataset
            from workbench.experiments.hallucination import resolve_datasets

            load_dataset(resolve_datasets(str(params["datasets"])))
    except ConfigError as exc:
        raise WorkbenchError(f"--param: {exc}") from None


def run_experiments(
    experiments: Sequence[Experiment],
    *,
    out_dir: str | Path | None = None,
    params: Mapping[str, Any] | None = None,
    log: Callable[[str], None] = print,
    resume: bool = False,
) -> RunDir:
    """Execute the notebooks in order; return the run folder.

    `resume=True` finishes an interrupted run in its `out_dir`: an experiment that completed
    (`experiments.<name>.completed_utc` in the manifest) is kept as it is; the one that was cut
    off runs again with `resume=True` when its notebook declares it (it skips the request ids
    already recorded); one that cannot resume by id (a load level is measured whole) has its
    partial records set aside — renamed `<name>.jsonl.interrupted-<k>`, kept, never loaded — and
    runs again from the start, so no record is counted twice; the rest run as usual."""
    params = dict(params or {})
    keys.check_parameters(params)
    if resume and not (out_dir and (Path(out_dir) / "manifest.json").exists()):
        raise WorkbenchError(f"cannot resume {out_dir or '(no folder)'}: not a run folder (no manifest.json)")
    declared: dict[str, dict[str, Any]] = {e.name: notebook_parameters(e.path) for e in experiments}
    params = _validated_params(declared, params)
    ws = workspace.current()
    inputs = workspace_inputs(ws)
    run = RunDir.open_or_create(out_dir)
    completed = _open_manifest(run, experiments, params, ws, inputs, resume=resume)
    log(f"run folder: {run.path}")
    if any(e.name != "summary" for e in experiments):
        update_manifest(run.path, preflight=preflight(params, log))
    for i, exp in enumerate(experiments, start=1):
        step = f"[{i}/{len(experiments)}] {exp.name}"
        if exp.name in completed:
            log(f"{step}: completed before the interruption, kept")
            continue
        nb_params = resolve_parameters(exp, declared[exp.name], params, inputs.get(exp.name))
        nb_params["out_dir"] = str(run.path.resolve())
        if resume and "resume" in declared[exp.name]:
            nb_params["resume"] = True
        elif resume and (kept := _set_aside(run.jsonl(exp.name))) is not None:
            log(f"      {exp.name} cannot resume by request id: its partial records are kept in {kept.name} "
                "(not loaded) and it runs again from the start")
        _execute(run, exp, step, declared[exp.name], nb_params, ws, log)
    log(f"results: {run.path}")
    return run


def _validated_params(declared: Mapping[str, Mapping[str, Any]], params: dict[str, Any]) -> dict[str, Any]:
    """`params` checked against what the notebooks declare: no runner-owned name, none that no
    notebook declares (the valid ones listed), each value of the declared type."""
    known = set().union(*(set(d) for d in declared.values())) - _RESERVED if declared else set()
    for key in params:
        if key in _RESERVED:
            raise WorkbenchError(f"--param {key}: set by the runner; use --out / --resume instead")
        if key not in known:
            raise WorkbenchError(f"unknown parameter {key!r}; valid: {', '.join(sorted(known))}")
    return check_parameters(declared, params)


def _open_manifest(run: RunDir, experiments: Sequence[Experiment], params: Mapping[str, Any],
                   ws: workspace.Workspace, inputs: Mapping[str, Any], *, resume: bool) -> set[str]:
    """Write the run's header in its manifest (a resumed run adds the time it resumed) and return
    the experiments that completed before an interruption."""
    if resume:
        manifest = read_manifest(run.path)
        completed = {name for name, state in (manifest.get("experiments") or {}).items()
                     if isinstance(state, Mapping) and state.get("completed_utc")}
        previous = manifest.get("runner") or {}
        resumes = [*previous.get("resumed_utc", []), dt.datetime.now(dt.UTC).isoformat(timespec="seconds")]
        update_manifest(run.path, runner={"resumed_utc": resumes, "failed": None})
        return completed
    update_manifest(run.path, runner={"experiments": [e.name for e in experiments], "params": params,
                                      "argv": sys.argv[1:], "workspace": str(ws.root),
                                      "workspace_inputs": inputs})
    return set()


def _execute(run: RunDir, exp: Experiment, step: str, declared: Mapping[str, Any], nb_params: dict[str, Any],
             ws: workspace.Workspace, log: Callable[[str], None]) -> None:
    """Run one experiment's notebook by papermill into the run folder, with its progress line and
    CPU meter; record its parameters, completion and machine use in the manifest; check its HTML
    report. A failing cell is recorded and raised as ExperimentFailed."""
    import papermill as pm

    effective = {k: v for k, v in {**declared, **nb_params}.items() if k not in _RESERVED}
    update_manifest(run.path, experiments={exp.name: {"parameters": effective, "completed_utc": None}})
    output = run.path / exp.notebook
    log(f"{step}: {exp.summary}")
    t0 = time.perf_counter()
    started_unix = time.time()
    meter = CpuMeter()  # this process's tree: the kernel and the servers it starts are ours
    planned = exp.planned(effective, _n_contenders(effective)) if exp.planned else None
    try:
        # absolute: papermill runs the notebook with the process in its folder, and the tail
        # thread reads while it does (a relative --out counted nothing)
        with Progress(exp.name, run.jsonl(exp.name).resolve(), planned, tty=sys.stderr.isatty(), log=log), \
                workspace.in_force(ws.root):
            pm.execute_notebook(
                str(exp.path),
                str(output),
                parameters=nb_params,
                cwd=str(exp.path.parent),
                kernel_name="python3",
                progress_bar=False,
                request_save_on_cell_execute=True,
                config=_KERNEL_CONFIG,
            )
    except pm.PapermillExecutionError as exc:
        detail = f"cell {exc.exec_count}: {exc.ename}: {exc.evalue}"
        update_manifest(run.path, runner={"failed": {"experiment": exp.name, "detail": detail}})
        raise ExperimentFailed(exp.name, output, detail) from None
    use = meter.stop()
    update_manifest(run.path, experiments={exp.name: {
        "completed_utc": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"), "machine": use.to_dict()}})
    log(f"      done in {time.perf_counter() - t0:.0f} s → {output}")
    if (busy := busy_warning(exp.name, use)) is not None:
        log(f"      {busy}")
    if exp.html_report:
        _check_html_report(run, output, started_unix, log)


def _check_html_report(run: RunDir, output: Path, started_unix: float, log: Callable[[str], None]) -> None:
    """Export the notebook to report.html unless it wrote one itself, then look at it in a browser
    and log what that finds."""
    html = run.path / "report.html"
    if not html.exists() or html.stat().st_mtime < started_unix:  # a notebook that does not write it
        export_html(output, html)
    log(f"      report: {html}")
    seen = check_report(html, run.path / "report_first_screen.png")
    if seen.skipped:
        log(f"      report not checked in a browser: {seen.skipped}")
    for problem in seen.problems:
        log(f"      report problem: {problem}")


def _set_aside(jsonl: Path) -> Path | None:
    """Rename an interrupted experiment's records to `<name>.jsonl.interrupted-<k>` (the first
    free k): kept for inspection, out of the `*.jsonl` the loaders read. None when there are none."""
    if not jsonl.exists():
        return None
    k = 1
    while (kept := jsonl.with_name(f"{jsonl.name}.interrupted-{k}")).exists():
        k += 1
    jsonl.rename(kept)
    return kept


def _n_contenders(params: Mapping[str, Any]) -> int:
    """How many contenders the experiment will run (those whose key is set), for the plan."""
    from workbench.config import load_contenders

    try:
        chosen, _ = load_contenders(params.get("contenders_file") or None).select(params.get("contenders") or None)
    except WorkbenchError:
        return 0  # the notebook reports the mistake itself
    return len(chosen)


def render_report(
    run_dir: str | Path, *, compare: list[str] | None = None, params: dict[str, Any] | None = None
) -> Path:
    """Execute the summary notebook on `run_dir` and write `report.html` there."""
    p = dict(params or {})
    if compare:
        p["compare_runs"] = ",".join(str(Path(c).resolve()) for c in compare)
    run = run_experiments([get_experiment("summary")], out_dir=run_dir, params=p)
    return run.path / "report.html"
