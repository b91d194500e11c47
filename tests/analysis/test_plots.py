"""The report's plots read at a glance: no two texts of a figure overlap once drawn (titles,
labels, tick labels, legends, point names), on the numbers of a real `make run`."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import numpy as np
import pandas as pd
import pytest

from workbench.analysis import plots


def _latency_frame() -> pd.DataFrame:
    rng = np.random.default_rng(0)
    rows = [{"contender": name, "status": "ok", "phase": "warm", "ttft_s": t, "e2e_s": t * 3}
            for name, mean in (("gemma-3-270m", 0.08), ("qwen2.5-coder-0.5b", 0.25))
            for t in rng.normal(mean, mean / 4, 100).clip(0.01)]
    return pd.DataFrame(rows)


#: Costs and qualities of a `make run` (2026-12-07): within one decade per scenario, where the log
#: axis labelled its minor ticks in colliding strings, and equal costs in one scenario.
POINTS = pd.DataFrame([
    ("routing", "gemma-3-270m", 0.144, 0.07, "cost per 1k requests", "routing accuracy"),
    ("routing", "qwen2.5-coder-0.5b", 0.71, 0.41, "cost per 1k requests", "routing accuracy"),
    ("batch_annotation", "gemma-3-270m", 1.2e-5, 0.458, "cost per document", "annotation accuracy"),
    ("batch_annotation", "qwen2.5-coder-0.5b", 2.7e-5, 0.417, "cost per document", "annotation accuracy"),
    ("prototyping", "gemma-3-270m", 73.0, 0.504, "cost per month", "QA net score"),
    ("prototyping", "qwen2.5-coder-0.5b", 73.0, 0.687, "cost per month", "QA net score"),
], columns=["scenario", "contender", "cost", "quality", "cost_label", "quality_label"])


@pytest.mark.parametrize("draw", [lambda: plots.latency_ecdf(_latency_frame()),
                                  lambda: plots.cost_quality_pareto(POINTS)], ids=["ecdf", "pareto"])
def test_no_two_texts_of_a_report_plot_overlap(draw) -> None:  # type: ignore[no-untyped-def]
    assert plots.overlapping_texts(draw()) == []


def test_the_check_sees_two_titles_run_into_each_other() -> None:
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(6, 2))
    for ax in axes:
        ax.set_title("a title far too long for its panel, running into the next one's", fontsize=9)
    assert plots.overlapping_texts(fig)
