"""capacity.knee_and_usl and the concurrency report's knee lines: the knee says why it stopped,
and the batching gain stands beside it (a knee of 1 on a batching server is not the whole story)."""

from __future__ import annotations

import pandas as pd

from workbench.analysis import capacity
from workbench.experiments.concurrency import SweepReport


def _summary() -> pd.DataFrame:
    # A batching server: throughput grows 1.6x up to 16 in flight while p95 grows 6x.
    return pd.DataFrame({
        "contender": ["m"] * 4,
        "level": [1, 4, 8, 16],
        "throughput_rps": [3.8, 4.4, 5.4, 5.9],
        "e2e_p95": [0.4, 1.1, 1.6, 2.5],
        "window_s": [19.0, 16.0, 13.0, 12.0],
    })


def test_knee_reason_and_batching_gain_are_reported() -> None:
    table, fits = capacity.knee_and_usl(_summary())
    row = table.iloc[0]
    assert row["knee_concurrency"] == 1.0
    assert row["knee_reason"] == "at 4, p95 is 2.8× the p95 at 1 (limit 2×)"
    assert row["best_throughput_level"] == 16 and abs(row["best_vs_lowest"] - 5.9 / 3.8) < 1e-9
    assert fits["m"] is not None


def test_knee_lines_read_as_sentences() -> None:
    table, fits = capacity.knee_and_usl(_summary())
    report = SweepReport(levels=None, levels_text=None, knee=table, fits=fits, projections=[],
                         loadgen=None, client_warnings=[])
    (line,) = report.knee_lines()
    assert line.startswith("m: knee at concurrency 1 (at 4, p95 is 2.8× the p95 at 1 (limit 2×))")
    assert "throughput peaks at 16 in flight: 5.90 req/s, 1.55× the lowest level" in line
    assert "nan" not in line.lower()
