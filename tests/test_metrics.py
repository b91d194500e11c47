"""The metric definitions (README, DESIGN §5), pinned where they are computed."""

from __future__ import annotations

import math

import pytest

from workbench import metrics


def test_ttft_e2e_tpot_itl_from_timestamps() -> None:
    t0 = 1_000_000_000
    assert metrics.ttft_s(t0, None) is None  # no content chunk (or not streamed): undefined
    assert metrics.ttft_s(t0, t0 + 120_000_000) == pytest.approx(0.12)
    assert metrics.e2e_s(t0, t0 + 500_000_000) == pytest.approx(0.5)
    assert metrics.tpot_s(0.5, 0.1, 5) == pytest.approx(0.1)  # (E2E - TTFT) / (tokens - 1)
    assert metrics.tpot_s(0.5, 0.1, 1) is None
    assert metrics.itl_s([t0, t0 + 10_000_000, t0 + 10_000_000]) == pytest.approx([0.01, 0.0])


def test_throughput_and_goodput_over_the_measured_window() -> None:
    window = metrics.window_s([10.0, 10.5, 11.0], [10.4, 11.2, 12.0])
    assert window == pytest.approx(2.0)  # first send -> last end
    rps, tok_s = metrics.throughput(3, 30.0, window)
    assert (rps, tok_s) == (pytest.approx(1.5), pytest.approx(15.0))
    assert metrics.goodput(2, window) == pytest.approx(1.0)
    assert math.isnan(metrics.window_s([], []))
    assert all(math.isnan(x) for x in metrics.throughput(0, 0.0, 0.0))
