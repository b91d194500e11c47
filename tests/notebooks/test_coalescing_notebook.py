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
        # 6 documents (2 duplicates of another), k=2, window=3: every strategy sends requests; the
        # cached-prefix and batch-api arms on 3 of them, 2 with the cache-off control.
        params={"n_docs": 6, "k": 2, "window": 3, "max_tokens": 6, "doc_max_tokens": 6, "lever_docs": 3,
                "prefix_control_docs": 2},
        log=lambda _: None,
    )
    df = load_records(run.path, "coalescing")
    assert set(df["contender"]) == {"gemma-3-270m", "qwen2.5-coder-0.5b"}
    assert set(df["strategy"]) == {"naive", "coalesced", "dedup", "cached", "cached-prefix", "batch-api"}
    naive = df[df["strategy"] == "naive"].groupby("contender").size()
    assert (naive == 6).all()
    # one record per document per lever arm (the controls apart), with the batch id / cache fields
    levers = df[df["strategy"].isin(["cached-prefix", "batch-api"]) & ~df["control"].eq(True)]
    assert levers.groupby(["contender", "strategy"])["prompt_id"].nunique().eq(3).all() and len(levers) == 12
    assert df.loc[df["strategy"] == "batch-api", "batch_id"].notna().all()
    assert df.loc[df["strategy"] == "cached-prefix", "server_cache_n"].notna().all()
    assert df["control"].eq(True).sum() == 4
    summary = pd.read_csv(run.path / "coalescing_summary.csv")
    assert len(summary) == 12 and summary["accuracy_n"].eq(summary["n_docs"]).all()
    assert summary["cost_per_doc_usd"].notna().all()
    prefix = pd.read_csv(run.path / "coalescing_prefix_cache.csv")
    assert set(prefix["contender"]) == {"gemma-3-270m", "qwen2.5-coder-0.5b"} and prefix["pairs"].eq(2).all()
    assert (run.path / "coalescing_levers.png").exists()
    assert (run.path / "coalescing_projections.csv").exists()
    assert (run.path / "coalescing.ipynb").exists()
