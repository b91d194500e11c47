"""Tests for workbench.analysis.stats: published reference values first, then properties and edge cases.

All deterministic (fixed seeds) and small, so the whole file runs in a couple of seconds.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from workbench.analysis.catalog import format_estimate
from workbench.analysis.stats import (
    Estimate,
    USLFit,
    bootstrap_ci,
    ecdf,
    holm,
    knee_concurrency,
    knee_explained,
    mcnemar_exact,
    mean_ci,
    paired_bootstrap_diff,
    paired_proportion_diff,
    proportion_summary,
    usl_fit,
    wilson_interval,
)

NAN = float("nan")


def _all_nan(e: Estimate) -> bool:
    return math.isnan(e.value) and math.isnan(e.low) and math.isnan(e.high)


# ---------------------------------------------------------------------------- Estimate


def test_an_estimate_is_shown_by_the_one_formatter() -> None:
    e = Estimate(0.1234, 0.1, 0.15, 40, "bootstrap")
    assert format_estimate(e) == "0.123 [0.100, 0.150] n=40"
    assert format_estimate(e, scale=1000) == "123 [100, 150] n=40"
    assert format_estimate(e, "e2e_p95") == "123 ms [100, 150] n=40"
    assert Estimate(1.0).method == "fixed" and math.isnan(Estimate(1.0).low)


def test_estimate_is_frozen() -> None:
    e = Estimate(1.0, 0.0, 2.0, 3)
    with pytest.raises(AttributeError):
        e.value = 2.0  # type: ignore[misc]


# ---------------------------------------------------------------------------- Wilson


def test_wilson_known_values() -> None:
    # statsmodels proportion_confint(k, n, method="wilson")
    e = wilson_interval(5, 10)
    assert e.value == 0.5 and e.n == 10
    assert e.low == pytest.approx(0.236593, abs=1e-5)
    assert e.high == pytest.approx(0.763407, abs=1e-5)
    z = wilson_interval(0, 10)
    assert z.value == 0.0 and z.low == 0.0
    assert z.high == pytest.approx(0.277533, abs=1e-5)
    full = wilson_interval(10, 10)
    assert full.high == 1.0 and full.low == pytest.approx(1 - 0.277533, abs=1e-5)


def test_wilson_edges() -> None:
    assert _all_nan(wilson_interval(0, 0)) and wilson_interval(0, 0).n == 0
    with pytest.raises(ValueError):
        wilson_interval(11, 10)
    with pytest.raises(ValueError):
        wilson_interval(-1, 10)
    assert proportion_summary(5, 10) == wilson_interval(5, 10)
    # wider at 99%
    assert wilson_interval(5, 10, ci=0.99).low < wilson_interval(5, 10).low


# ---------------------------------------------------------------------------- McNemar / Newcombe


def test_mcnemar_exact() -> None:
    assert mcnemar_exact(0, 6) == pytest.approx(0.03125)
    assert mcnemar_exact(6, 0) == pytest.approx(0.03125)
    assert mcnemar_exact(4, 4) == 1.0
    assert mcnemar_exact(0, 0) == 1.0
    # contingencytables (Fagerland et al.), McNemar exact conditional test on cavo_2012
    assert mcnemar_exact(6, 16) == pytest.approx(0.052479, abs=1e-6)
    with pytest.raises(ValueError):
        mcnemar_exact(-1, 2)


def _paired_table(a: int, b: int, c: int, d: int) -> tuple[list[bool], list[bool]]:
    x = [True] * a + [True] * b + [False] * c + [False] * d
    y = [True] * a + [False] * b + [True] * c + [False] * d
    return x, y


def test_paired_proportion_diff_newcombe_reference() -> None:
    # cavo_2012 = rbind(c(59, 6), c(16, 80)); contingencytables' Newcombe square-and-add:
    # estimate = -0.0621 (95% CI -0.1186 to -0.0046)
    x, y = _paired_table(59, 6, 16, 80)
    e = paired_proportion_diff(x, y)
    assert e.n == 161
    assert e.value == pytest.approx(-10 / 161)
    assert e.low == pytest.approx(-0.1186, abs=5e-5)
    assert e.high == pytest.approx(-0.0046, abs=5e-5)


def test_paired_proportion_diff_properties() -> None:
    x, y = _paired_table(10, 3, 7, 20)
    e = paired_proportion_diff(x, y)
    r = paired_proportion_diff(y, x)
    assert e.low <= e.value <= e.high
    assert r.value == pytest.approx(-e.value)
    assert r.low == pytest.approx(-e.high) and r.high == pytest.approx(-e.low)
    same = paired_proportion_diff([True, False, True], [True, False, True])
    assert same.value == 0.0 and same.low < 0 < same.high
    assert paired_proportion_diff([1] * 5, [0] * 5).low >= -1.0
    # a pair with a missing side is dropped
    assert paired_proportion_diff([1, 0, None], [0, 0, 1]).n == 2
    assert _all_nan(paired_proportion_diff([], []))
    with pytest.raises(ValueError):
        paired_proportion_diff([1, 0], [1])
    with pytest.raises(ValueError):
        paired_proportion_diff([0.5], [1])


# ---------------------------------------------------------------------------- Holm


def test_holm_hand_example() -> None:
    # sorted 0.005, 0.01, 0.03, 0.04 -> x4, x3, x2, x1 = 0.02, 0.03, 0.06, 0.04 -> monotone 0.06
    assert holm([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02])


def test_holm_caps_nan_and_empty() -> None:
    assert holm([0.5, 0.6]) == [1.0, 1.0]
    out = holm([0.01, NAN, 0.04])
    assert out[0] == pytest.approx(0.02) and math.isnan(out[1]) and out[2] == pytest.approx(0.04)
    assert holm([]) == []
    assert holm([0.02]) == [0.02]


# ---------------------------------------------------------------------------- bootstrap


def test_mean_ci_and_generic_bootstrap_agree() -> None:
    x = np.random.default_rng(3).normal(1.0, 1.0, size=200)
    m = mean_ci(x, n_boot=500)
    g = bootstrap_ci(x, np.mean, n_boot=500)
    assert m.value == pytest.approx(float(np.mean(x))) and g.value == m.value
    assert m.low < 1.0 < m.high
    assert g.low == pytest.approx(m.low, abs=0.05) and g.high == pytest.approx(m.high, abs=0.05)
    assert _all_nan(mean_ci([])) and _all_nan(bootstrap_ci([], np.median))
    assert math.isnan(bootstrap_ci([2.0], np.median).low) and bootstrap_ci([2.0], np.median).value == 2.0
    assert bootstrap_ci(iter([1.0, 2.0, 3.0]), np.median, n_boot=50).n == 3  # any iterable


def test_paired_bootstrap_diff() -> None:
    rng = np.random.default_rng(7)
    item = rng.normal(0, 5, size=100)  # shared item difficulty: pairing removes it
    x = item + 1.0 + rng.normal(0, 0.5, size=100)
    y = item + rng.normal(0, 0.5, size=100)
    e = paired_bootstrap_diff(x, y, n_boot=500)
    assert e.low <= e.value <= e.high and e.low > 0.5 and e.high < 1.5
    loop = paired_bootstrap_diff(x, y, lambda v: float(np.mean(v)), n_boot=500)
    assert loop.value == pytest.approx(e.value)
    assert loop.low == pytest.approx(e.low, abs=0.1)
    med = paired_bootstrap_diff(x, y, np.median, n_boot=200)
    assert med.low <= med.value <= med.high
    assert paired_bootstrap_diff([1.0, None, 3.0], [1.0, 2.0, NAN], n_boot=10).n == 1
    assert _all_nan(paired_bootstrap_diff([], []))
    with pytest.raises(ValueError):
        paired_bootstrap_diff([1.0], [1.0, 2.0])


def test_ecdf() -> None:
    x, y = ecdf([3.0, None, 1.0, 2.0, NAN])
    assert x.tolist() == [1.0, 2.0, 3.0]
    assert y.tolist() == pytest.approx([1 / 3, 2 / 3, 1.0])
    ex, ey = ecdf([])
    assert ex.size == 0 and ey.size == 0


# ---------------------------------------------------------------------------- USL / knee


def _usl(n: np.ndarray, lam: float, sigma: float, kappa: float) -> np.ndarray:
    return np.asarray(lam * n / (1 + sigma * (n - 1) + kappa * n * (n - 1)), dtype=np.float64)


def test_usl_fit_recovers_parameters() -> None:
    lam, sigma, kappa = 50.0, 0.08, 0.002
    n = np.array([1, 2, 4, 8, 12, 16, 24, 32, 48, 64], dtype=float)
    noise = 1 + 0.005 * np.random.default_rng(11).normal(size=n.size)
    fit = usl_fit(n, _usl(n, lam, sigma, kappa) * noise)
    assert isinstance(fit, USLFit)
    assert fit.lambda_ == pytest.approx(lam, rel=0.03)
    assert fit.sigma == pytest.approx(sigma, abs=0.01)
    assert fit.kappa == pytest.approx(kappa, rel=0.15)
    true_peak = math.sqrt((1 - sigma) / kappa)  # ~21.4
    assert fit.peak_concurrency == pytest.approx(true_peak, rel=0.08)
    assert fit.peak_throughput == pytest.approx(float(_usl(np.array(true_peak), lam, sigma, kappa)), rel=0.03)
    assert fit.r2 > 0.99 and fit.n_points == n.size and fit.rmse > 0
    assert fit.predict([1.0, 2.0]).shape == (2,)
    assert float(fit.predict(1.0)) == pytest.approx(fit.lambda_)


def test_usl_fit_linear_scaling_has_no_peak() -> None:
    n = np.array([1, 2, 4, 8], dtype=float)
    fit = usl_fit(n, 10.0 * n)
    assert fit.sigma == 0.0 and fit.kappa == 0.0  # solver noise (~1e-10) snapped to zero
    assert fit.lambda_ == pytest.approx(10.0, rel=1e-4)
    assert math.isinf(fit.peak_concurrency) and math.isinf(fit.peak_throughput)
    # pure contention, no coherency cost: no peak, throughput approaches lambda / sigma
    sat = usl_fit(n, _usl(n, 10.0, 0.2, 0.0))
    assert sat.kappa == 0.0 and sat.sigma == pytest.approx(0.2, rel=1e-3)
    assert math.isinf(sat.peak_concurrency) and sat.peak_throughput == pytest.approx(50.0, rel=1e-3)


def test_usl_fit_needs_three_levels() -> None:
    with pytest.raises(ValueError, match="at least 3 distinct"):
        usl_fit([1, 1, 2, 2], [10, 11, 19, 20])
    with pytest.raises(ValueError, match="at least 3 distinct"):
        usl_fit([1, 2, None], [10, 19, 30])


def test_knee_latency_criterion() -> None:
    n = [1, 2, 4, 8, 16]
    thr = [10, 20, 40, 80, 160]  # perfect scaling: only latency can trigger
    lat = [1.0, 1.1, 1.5, 2.5, 5.0]  # 2.5 > 2 x 1.0 at N=8
    assert knee_concurrency(n, lat, thr) == 4.0
    assert knee_concurrency(n, lat, thr, latency_factor=3.0) == 8.0


def test_knee_gain_criterion() -> None:
    n = np.array([1, 2, 4, 8, 16, 32], dtype=float)
    thr = _usl(n, 10.0, 0.05, 0.01)  # peak near N=9.7
    lat = np.ones_like(n)
    # gain per added worker vs ~10/worker at N=1: 0.87, 0.64, 0.26, -0.04 -> fails at N=16
    assert knee_concurrency(n, lat, thr) == 8.0
    assert knee_concurrency(n, lat, thr, gain_floor=0.5) == 4.0


def test_knee_edges() -> None:
    assert knee_concurrency([4], [1.0], [10.0]) is None
    assert knee_concurrency([], [], []) is None
    # never fails within the tested range -> highest level
    assert knee_concurrency([1, 2, 4], [1.0, 1.0, 1.0], [1.0, 2.0, 4.0]) == 4.0
    # a level where everything failed (NaN p95, zero throughput) is past the knee
    assert knee_concurrency([1, 2, 4], [1.0, 1.2, NAN], [1.0, 2.0, 0.0]) == 2.0
    # order of input does not matter
    assert knee_concurrency([4, 1, 2], [3.0, 1.0, 1.1], [4.0, 1.0, 2.0]) == 2.0
    with pytest.raises(ValueError):
        knee_concurrency([1, 2], [1.0], [1.0, 2.0])


def test_knee_says_which_criterion_stopped_it() -> None:
    """A knee of 1 on a batching server reads as a bug unless it says why (p95 doubled)."""
    knee, why = knee_explained([1, 4, 8], [0.5, 1.9, 3.0], [2.0, 2.6, 3.1])
    assert knee == 1.0 and why == "at 4, p95 is 3.8× the p95 at 1 (limit 2×)"
    knee, why = knee_explained([1, 2, 4], [1.0, 1.0, 1.0], [1.0, 2.0, 2.1])
    assert knee == 2.0 and why.startswith("each worker added from 2 to 4 adds 5% of a worker's throughput")
    assert knee_explained([1, 2], [1.0, 1.0], [1.0, 2.0]) == (2.0, "no level failed: the knee is at or beyond 2")
    assert knee_explained([4], [1.0], [1.0]) == (None, "fewer than 2 levels")
