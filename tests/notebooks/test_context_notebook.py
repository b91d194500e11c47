"""The context notebook end to end on both embedded models with a short sweep, through the runner
`workbench run` uses: cold and warm questions per document, the cache read and the TTFT difference
with its interval, and the window probe typed as context_length_exceeded."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from workbench.analysis import context_length as cl
from workbench.experiments import get_experiment
from workbench.runner import run_experiments

pytestmark = [pytest.mark.notebook, pytest.mark.local_models, pytest.mark.slow]


def test_context_notebook(local_endpoints: dict[str, str], tmp_path: Path) -> None:
    run = run_experiments([get_experiment("context")], out_dir=tmp_path / "run",
                          params={"lengths": "256,1024", "depths": "0.5", "max_tokens": 8}, log=lambda _: None)
    df = cl.load(run.path)
    assert set(df["contender"]) == {"gemma-3-270m", "qwen2.5-coder-0.5b"}
    docs = df[df["phase"] == "document"]
    assert len(docs) == 2 * 2 * 2 and docs["status"].eq("ok").all()  # 2 models x 2 lengths x 2 questions
    assert docs["doc_token_source"].eq("tokenizer").all() and docs["grade"].notna().all()
    cache = pd.read_csv(run.path / "context_cache.csv")
    pooled = cache[cache["length"] == "all"]
    assert len(pooled) == 2 and pooled["pairs"].eq(2).all()
    assert (pooled["cache_read_tokens"] > 200).all()  # the warm question reused the cached document
    assert pooled["diff_low"].notna().all() and pooled["diff_high"].notna().all()
    window = cl.window_table(df)
    assert window["probe"].eq("context_length_exceeded").all()
    fits = pd.read_csv(run.path / "context_fit.csv")
    assert fits["n"].eq(2).all() and fits["slope_s_per_1k"].notna().all()
    assert (run.path / "context_ttft_vs_length.png").exists() and (run.path / "context_accuracy.png").exists()
