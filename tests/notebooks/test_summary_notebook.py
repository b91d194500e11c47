"""summary.ipynb executes on a run folder and leaves decision_matrix.csv and report.html."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
import yaml

from tests.synthetic_runs import HOSTED, write_run
from workbench.runner import render_report

pytestmark = [pytest.mark.notebook, pytest.mark.slow]


def test_summary_renders_matrix_and_standalone_report(tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    run = write_run(tmp_path, {"fast": {"e2e": 0.05, "halluc": 0.3, "caps": {"streaming": True}},
                               "slow": {"e2e": 0.3, "halluc": 0.05}})
    cfile = tmp_path / "contenders.yaml"
    cfile.write_text(yaml.safe_dump({"contenders": [{"name": n, "model": n, **HOSTED} for n in ("fast", "slow")]}))
    html = render_report(run, params={"contenders_file": str(cfile), "n_boot": 200})
    matrix = pd.read_csv(run / "decision_matrix.csv")
    routing = matrix[matrix["scenario"] == "routing"].set_index("contender")
    assert bool(routing.loc["fast", "eligible"]) and not bool(routing.loc["slow", "eligible"])
    text = html.read_text()
    assert "wb-card" in text and "Decided by" in text  # the answer first, one card per scenario
    assert "Migration checklist" in text and "Statistical comparisons" in text
    assert "build_summary(" not in text  # code cells are left out of the report
    assert text.count("data:image/png;base64") >= 3  # plots are embedded: the file stands alone
    assert "Concurrency was not measured in this run" in text
    assert "without encryption" not in capfd.readouterr().err  # the kernel's transport is encrypted


def test_a_plain_papermill_run_of_the_summary_writes_the_report(tmp_path: Path) -> None:
    """The README's papermill path, no runner: the notebook itself leaves report.html."""
    import papermill as pm

    from workbench.workspace import bundled

    notebooks = bundled().packaged_notebooks

    run = write_run(tmp_path, {"fast": {"e2e": 0.05, "halluc": 0.3}, "slow": {"e2e": 0.3, "halluc": 0.05}})
    cfile = tmp_path / "contenders.yaml"
    cfile.write_text(yaml.safe_dump({"contenders": [{"name": n, "model": n, **HOSTED} for n in ("fast", "slow")]}))
    pm.execute_notebook(str(notebooks / "summary.ipynb"), str(run / "summary.ipynb"), cwd=str(notebooks),
                        parameters={"out_dir": str(run), "contenders_file": str(cfile), "n_boot": 100},
                        kernel_name="python3", progress_bar=False)
    assert (run / "decision_matrix.csv").exists()
    assert "wb-card" in (run / "report.html").read_text(encoding="utf-8")
