"""The summary writes `report.html` itself: a summary notebook run on its own (plain papermill,
JupyterLab, nbval) leaves the report, not only `workbench run` (which used to export it after).
Tested through the package call the notebook makes, without a kernel."""

from __future__ import annotations

from pathlib import Path

import matplotlib
import pandas as pd
import yaml

from tests.synthetic_runs import HOSTED, write_run
from workbench.report.summary import run_summary


def test_the_summary_call_writes_the_matrix_and_a_standalone_report(tmp_path: Path) -> None:
    matplotlib.use("Agg")
    run = write_run(tmp_path, {"fast": {"e2e": 0.05, "halluc": 0.3}, "slow": {"e2e": 0.3, "halluc": 0.05}})
    cfile = tmp_path / "contenders.yaml"
    cfile.write_text(yaml.safe_dump({"contenders": [{"name": n, "model": n, **HOSTED} for n in ("fast", "slow")]}))
    summary = run_summary(str(run), contenders_file=str(cfile), n_boot=100)
    assert set(pd.read_csv(run / "decision_matrix.csv")["contender"]) == {"fast", "slow"}
    assert len(summary.matrix)
    text = (run / "report.html").read_text(encoding="utf-8")
    assert "wb-card" in text and "Decided by" in text  # the answer first
    assert "Migration checklist" in text and "Statistical comparisons" in text and "Assumptions" in text
    assert "run_summary(" not in text and "build_summary(" not in text  # no code in the report
    assert text.count("data:image/png;base64") >= 3  # plots embedded: the file stands alone
    assert "Concurrency was not measured in this run" in text
    assert "cdn.jsdelivr" not in text and "unpkg.com" not in text  # nothing fetched at view time
