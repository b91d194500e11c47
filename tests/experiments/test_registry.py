"""The experiment registry: run order, notebooks present, names that explain themselves."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import nbformat
import pytest

from workbench.errors import UnknownNameError
from workbench.experiments import EXPERIMENTS, select_experiments
from workbench.runner import notebook_parameters


def test_summary_runs_last_because_it_reads_every_other_experiment() -> None:
    names = list(EXPERIMENTS)
    assert names[0] == "latency" and names[-1] == "summary"
    assert [e.name for e in select_experiments("summary,latency")] == ["latency", "summary"]


#: Code lines a notebook may hold (not blank, not comment-only), parameters cell included. A
#: notebook only calls the package and plots; what it computes lives in `workbench` where it is
#: tested. Measured 2026-12-07: concurrency 54, coalescing 51, summary 39, hallucination 38,
#: latency 33. The budget leaves the largest room for a few more calls (e.g. a warning cell),
#: not for a second analysis written in cells.
NOTEBOOK_CODE_LINES = 70


def code_lines(cells: Iterable[Mapping[str, Any]]) -> int:
    """Lines of code in a notebook's code cells, blank and comment-only lines not counted."""
    return sum(1 for c in cells if c["cell_type"] == "code" for line in str(c["source"]).splitlines()
               if line.strip() and not line.strip().startswith("#"))


def test_the_code_line_count_skips_blanks_and_comments() -> None:
    cells = [{"cell_type": "code", "source": "# a comment\n\nx = 1\n  # more\nplot(x)"},
             {"cell_type": "markdown", "source": "not code\nat all"}]
    assert code_lines(cells) == 2


@pytest.mark.parametrize("name", list(EXPERIMENTS))
def test_each_notebook_is_thin_tagged_and_committed_without_outputs(name: str) -> None:
    exp = EXPERIMENTS[name]
    nb = nbformat.read(exp.path, as_version=4)
    tagged = [c for c in nb.cells if "parameters" in c.get("metadata", {}).get("tags", [])]
    assert len(tagged) == 1, "exactly one parameters cell"
    assert all(not c.get("outputs") and c.get("execution_count") is None
               for c in nb.cells if c.cell_type == "code"), "commit notebooks without outputs"
    params = notebook_parameters(exp.path)
    assert "out_dir" in params
    assert not any(k in params for k in ("api_key", "openai_api_key", "key")), "no secret parameters"
    assert set(exp.run_params) <= set(params), "run_params must be declared by the notebook"
    n = code_lines(nb.cells)
    assert n <= NOTEBOOK_CODE_LINES, f"{exp.notebook}: {n} code lines, over the budget of {NOTEBOOK_CODE_LINES}: " \
        "move the logic into the package"


def test_unknown_experiment_lists_valid_names() -> None:
    with pytest.raises(UnknownNameError, match="valid: .*latency"):
        select_experiments("latncy")


def test_planned_counts_come_from_the_notebook_defaults_as_values() -> None:
    """papermill reports defaults as source text ('"enabled"'); the plan needs the values, else
    the contenders cannot be counted and the progress line shows a wrong denominator."""
    latency = EXPERIMENTS["latency"]
    params = {**notebook_parameters(latency.path), **latency.run_params}
    assert params["contenders"] == "enabled" and params["contenders_file"] == ""
    assert latency.planned is not None
    assert latency.planned(params, 2) == 2 * (1 + params["warmup"] + latency.run_params["n_requests"])
    hallucination = EXPERIMENTS["hallucination"]
    full = {**notebook_parameters(hallucination.path), **hallucination.run_params}
    assert hallucination.planned is not None and full["sample_size"] == 0
    assert hallucination.planned(full, 1) == 173  # the whole dataset, counted
