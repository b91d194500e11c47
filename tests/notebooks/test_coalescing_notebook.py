"""The coalescing notebook runs end to end on both embedded models with tiny parameters, through
the same runner `workbench run` uses, and leaves its records, summary and plot in the run folder."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from workbench.experiments import get_experiment
from workbench.results import load_records
from workbench.runner import run_experiments

pytestmark = [pytest.mark.notebook, pytest.mark.local_models, pytest.mark.slow]


def test_coalescing_notebook(local_endpoints: dict[str, str], tmp_path: Path) -> None:
    run = run_experiments(
        [get_experiment("coalescing")],
        out_dir=tmp_path / "run",
        # 6 documents (2 duplicates of another), k=2, window=3: every strategy sends requests.
        params={"n_docs": 6, "k": 2, "window": 3, "max_tokens": 6, "doc_max_tokens": 6},
        log=lambda _: None,
    )
    df = load_records(run.path, "coalescing")
    assert set(df["contender"]) == {"gemma-3-270m", "qwen2.5-coder-0.5b"}
    assert set(df["strategy"]) == {"naive", "coalesced", "dedup", "cached"}
    naive = df[df["strategy"] == "naive"].groupby("contender").size()
    assert (naive == 6).all()
    summary = pd.read_csv(run.path / "coalescing_summary.csv")
    assert len(summary) == 8 and summary["accuracy_n"].eq(6).all()
    assert summary["cost_per_doc_usd"].notna().all()
    assert (run.path / "coalescing_levers.png").exists()
    assert (run.path / "coalescing_projections.csv").exists()
    assert (run.path / "coalescing.ipynb").exists()
