"""Executes notebooks/hallucination.ipynb end to end against the embedded models, through the
same runner `workbench run` uses, on a tiny stratified sample so it stays CI-sized."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from workbench.experiments import get_experiment
from workbench.results import load_records, read_manifest
from workbench.runner import run_experiments

pytestmark = [pytest.mark.notebook, pytest.mark.local_models, pytest.mark.slow]


def test_hallucination_notebook_tiny(local_endpoints: dict[str, str], tmp_path: Path) -> None:
    out = tmp_path / "run"
    run = run_experiments(
        [get_experiment("hallucination")], out_dir=out,
        params={"sample_size": 10, "max_tokens": 16}, log=lambda _: None,
    )
    df = load_records(run.path, "hallucination")
    # 10 items x both embedded models; the run_params default (full dataset) was overridden.
    assert set(df["contender"]) == {"gemma-3-270m", "qwen2.5-coder-0.5b"}
    assert len(df) == 20 and (df["sample_index"] == 0).all()
    assert df.loc[df["status"] == "ok", "grade"].isin(["correct", "incorrect", "not_attempted"]).all()
    summary = pd.read_csv(run.path / "hallucination_summary.csv")
    assert set(summary["contender"]) == set(df["contender"])
    for col in ("answerable_n", "unanswerable_n", "f_score", "hallucination_score", "accuracy_low"):
        assert summary[col].notna().all()  # answerable and unanswerable items reported apart
    assert (summary["hallucination_score"] <= summary["f_score"]).all()
    assert (run.path / "hallucination_rates.png").stat().st_size > 0
    assert (run.path / "hallucination_paired.csv").exists()
    params = read_manifest(run.path)["experiments"]["hallucination"]["parameters"]
    assert params["sample_size"] == 10 and params["max_tokens"] == 16  # recorded by the runner
    assert (run.path / "hallucination.ipynb").exists()
