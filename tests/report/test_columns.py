"""The matrix's one column list: the CSV, the report's matrix and README's table come from it."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from tests.synthetic_runs import contenders, write_run
from workbench.analysis.decision import decide
from workbench.analysis.evidence import gather_evidence
from workbench.analysis.scenarios import load_scenarios
from workbench.report.columns import MATRIX, display_matrix, matrix_frame, readme_table

SC = load_scenarios()
README = Path(__file__).resolve().parents[2] / "README.md"


def test_matrix_has_the_contract_columns(tmp_path: Path) -> None:
    run = write_run(tmp_path, {"a": {"e2e": 0.05, "halluc": 0.1}, "b": {"e2e": 0.08, "halluc": 0.2}})
    ev = gather_evidence(run)
    cs = contenders("a", "b")
    m = matrix_frame([decide(ev, n, s, cs, machine_hour_usd=0.1, n_boot=100) for n, s in SC.items()])
    assert list(m.columns) == [c.name for c in MATRIX]
    assert {"constraint_status", "p_best", "rank_low", "rank_high"} <= set(m.columns)
    assert set(m["scenario"]) == {"routing", "batch_annotation", "prototyping"}
    batch = m[m["scenario"] == "batch_annotation"]
    # nothing annotated: unmeasured, so inconclusive (not failed), and said
    assert (batch["constraint_status"] == "inconclusive").all()
    assert batch["failed_constraint"].str.contains("annotation accuracy ≥ 80%: not measured — inconclusive").all()
    assert {"units_lost_to_errors", "units_lost_detail"} <= set(m.columns)


def test_readme_lists_the_matrix_columns_as_the_code_does() -> None:
    assert readme_table() in README.read_text(encoding="utf-8"), (
        "README's decision_matrix.csv table differs from workbench.report.columns.MATRIX: paste readme_table()")


def test_a_column_the_list_does_not_name_is_refused(tmp_path: Path) -> None:
    run = write_run(tmp_path, {"a": {"e2e": 0.05, "halluc": 0.1}})
    res = decide(gather_evidence(run), "routing", SC["routing"], contenders("a"), machine_hour_usd=0.1, n_boot=50)
    res.table = res.table.assign(surprise=1)
    with pytest.raises(ValueError, match="surprise"):
        matrix_frame([res])


def test_every_shown_cell_says_something_even_when_the_csv_is_empty() -> None:
    row = {c.name: float("nan") for c in MATRIX} | {"scenario": "s", "contender": "c", "constraint_status": "fail"}
    shown = display_matrix(pd.DataFrame([row]))
    assert list(shown.columns) == [c.label for c in MATRIX if c.label]
    assert all(shown.iloc[0]), shown.iloc[0].to_dict()
