"""Order-statistic percentile intervals, and a small seeded coverage check of the interval procedures."""

from __future__ import annotations

import math
from fractions import Fraction
from typing import Any

import numpy as np
import pytest
from scipy import stats as sps

from bench import calibration as cov
from workbench.analysis.catalog import format_estimate
from workbench.analysis.evidence import order_stat_rows, percentile_rows, proportion_metric
from workbench.analysis.quantiles import (
    QuantileEstimate,
    min_n_for_bounds,
    min_n_for_lower,
    min_n_for_upper,
    n_to_resolve,
    order_stat_coverage,
    order_stat_ranks,
    quantile_ci,
)
from workbench.analysis.stats import Estimate

QS = (1.0, 10.0, 25.0, 50.0, 75.0, 90.0, 95.0, 99.0)


def _same(a: float, b: float) -> bool:
    return (math.isnan(a) and math.isnan(b)) or a == b


def _brute_ranks(n: int, q: float, ci: float) -> tuple[int, int]:
    """Ranks straight from the definition, with binomial CDF/SF arrays."""
    k = np.arange(n + 1)
    tail = (1.0 - ci) / 2.0
    lo = int(np.sum(sps.binom.cdf(k, n, q / 100.0) <= tail))
    hi = int(np.argmax(sps.binom.sf(k, n, q / 100.0) <= tail)) + 1
    return lo, hi


# --------------------------------------------------------------------------------------------
# ranks and intervals


@pytest.mark.parametrize("ci", [0.90, 0.95, 0.99])
def test_bounds_match_scipy_quantile_test(ci: float) -> None:
    rng = np.random.default_rng(1)
    for n in [*range(1, 41), 59, 71, 72, 100, 299, 367, 368, 500]:
        x = rng.lognormal(0.0, 1.0, size=n)
        for q in QS:
            est = quantile_ci(x, q, ci)
            ref = sps.quantile_test(x, q=1.0, p=q / 100.0).confidence_interval(confidence_level=ci)
            assert _same(est.low, float(ref.low)), (n, q, ci)
            assert _same(est.high, float(ref.high)), (n, q, ci)


def test_ranks_match_definition() -> None:
    for n in range(1, 200):
        for q in QS:
            assert order_stat_ranks(n, q, 0.95) == _brute_ranks(n, q, 0.95), (n, q)


def test_known_small_ranks() -> None:
    # Textbook: the 95% interval for the median of n=10 is [X_(2), X_(9)], coverage 0.9785.
    assert order_stat_ranks(10, 50.0, 0.95) == (2, 9)
    assert order_stat_coverage(10, 50.0, 0.95) == pytest.approx(0.978515625)
    assert order_stat_ranks(100, 50.0, 0.95) == (40, 61)
    assert order_stat_ranks(100, 95.0, 0.95) == (90, 100)  # P(B >= 99) = 0.037 > 0.025
    est = quantile_ci(np.arange(1.0, 11.0), 50.0)
    assert (est.value, est.low, est.high, est.n, est.supported) == (5.0, 2.0, 9.0, 10, True)


def test_coverage_at_least_ci_when_supported() -> None:
    for n in range(1, 400, 7):
        for q in QS:
            lo, hi = order_stat_ranks(n, q, 0.95)
            if lo >= 1 and hi <= n:
                assert order_stat_coverage(n, q, 0.95) >= 0.95


@pytest.mark.parametrize(("q", "threshold"), [(50.0, 6), (90.0, 36), (95.0, 72), (99.0, 368)])
def test_below_threshold_is_unsupported(q: float, threshold: int) -> None:
    assert min_n_for_bounds(q) == threshold
    assert min_n_for_upper(q) == threshold
    rng = np.random.default_rng(2)
    below = quantile_ci(rng.random(threshold - 1), q)
    assert not below.supported
    assert math.isnan(below.high)
    assert below.high_rank == below.n + 1
    assert not math.isnan(below.value)
    at = quantile_ci(rng.random(threshold), q)
    assert at.supported
    assert at.low <= at.value <= at.high


def test_min_n_other_values() -> None:
    assert min_n_for_lower(95.0) == 2
    assert min_n_for_lower(50.0) == 6
    assert min_n_for_upper(95.0, ci=0.90) == 59  # a one-sided 95% upper bound
    assert min_n_for_upper(99.0, ci=0.90) == 299
    assert min_n_for_bounds(99.9) == 3688
    with pytest.raises(ValueError):
        min_n_for_upper(100.0)
    with pytest.raises(ValueError):
        min_n_for_lower(0.0)


def test_extreme_percentiles() -> None:
    x = np.arange(1.0, 101.0)
    top = quantile_ci(x, 100.0)
    assert (top.value, top.low, top.high_rank, top.supported) == (100.0, 100.0, 101, False)
    assert math.isnan(top.high)
    bottom = quantile_ci(x, 0.0)
    assert (bottom.value, bottom.high, bottom.low_rank, bottom.supported) == (1.0, 1.0, 0, False)


def test_monotone() -> None:
    rng = np.random.default_rng(3)
    for n in (5, 20, 73, 150, 400):
        prev_l, prev_u = order_stat_ranks(n, 1.0)
        for q in np.linspace(1.0, 99.0, 50):
            lo, hi = order_stat_ranks(n, float(q))
            assert lo >= prev_l and hi >= prev_u  # non-decreasing in q
            prev_l, prev_u = lo, hi
        for q in QS:  # nested in ci
            l90, u90 = order_stat_ranks(n, q, 0.90)
            l99, u99 = order_stat_ranks(n, q, 0.99)
            assert l99 <= l90 and u90 <= u99
        x = rng.lognormal(size=n)
        for q in QS:
            est = quantile_ci(x, q)
            lo_ok = math.isnan(est.low) or est.low <= est.value
            hi_ok = math.isnan(est.high) or est.value <= est.high
            assert lo_ok and hi_ok, (n, q)
    for q in QS:  # ranks step by 0 or 1 as n grows by one
        ranks = np.array([order_stat_ranks(n, q) for n in range(1, 300)])
        assert set(np.diff(ranks, axis=0).ravel().tolist()) <= {0, 1}


def test_point_is_inverted_cdf() -> None:
    rng = np.random.default_rng(4)
    for n in (1, 2, 7, 10, 33, 100, 101, 1000):
        x = rng.normal(size=n)
        xs = np.sort(x)
        for q in (*QS, 7.0, 33.3, 99.9):
            exact = Fraction(q).limit_denominator(1000) * n / 100  # n*p without float noise
            k = min(n, max(1, math.ceil(exact)))
            assert quantile_ci(x, q).value == xs[k - 1], (n, q)
            if exact.denominator != 1:  # numpy agrees except where n*p is an integer (float noise)
                assert quantile_ci(x, q).value == float(np.percentile(x, q, method="inverted_cdf")), (n, q)
    assert quantile_ci(np.arange(1.0, 101.0), 7.0).value == 7.0  # numpy's inverted_cdf says 8.0


def test_nans_dropped_and_empty() -> None:
    clean = [0.3, 0.1, 0.2, 0.5, 0.4, 0.9, 0.7]
    dirty = [None, 0.3, float("nan"), 0.1, 0.2, 0.5, None, 0.4, 0.9, 0.7]
    assert quantile_ci(dirty, 50.0) == quantile_ci(clean, 50.0)
    assert quantile_ci(iter(clean), 50.0) == quantile_ci(np.array(clean), 50.0)
    assert quantile_ci(dirty, 50.0).n == 7
    for empty in ([], [None, float("nan")]):
        est = quantile_ci(empty, 95.0)
        assert est.n == 0 and not est.supported
        assert math.isnan(est.value) and math.isnan(est.low) and math.isnan(est.high)
    one = quantile_ci([0.25], 50.0)
    assert (one.value, one.n, one.supported) == (0.25, 1, False)


def test_validation_and_format() -> None:
    with pytest.raises(ValueError):
        quantile_ci([1.0], 101.0)
    with pytest.raises(ValueError):
        quantile_ci([1.0], 50.0, ci=1.0)
    est = QuantileEstimate(0.5, 0.25, math.nan, 10, "order statistics", low_rank=2, high_rank=11, supported=False)
    assert format_estimate(est, "e2e_p95") == "500 ms [250, —] n=10"
    assert (est.value, est.low) == (0.5, 0.25) and isinstance(est, Estimate)


# --------------------------------------------------------------------------------------------
# n_to_resolve


def _sample(n: int, k_below: int, limit: float = 1.0) -> list[float]:
    """n values, k_below of them at or under `limit`."""
    return [0.5] * k_below + [2.0] * (n - k_below)


def test_n_to_resolve_already_decisive_and_degenerate() -> None:
    assert n_to_resolve(_sample(100, 100), 95.0, 1.0) == 100  # every value under: X_(99) <= limit
    assert n_to_resolve(_sample(100, 80), 95.0, 1.0) == 100  # decisive fail: X_(90) > limit
    assert n_to_resolve(_sample(100, 95), 95.0, 1.0) is None  # p_hat == p: never decides
    assert n_to_resolve([], 95.0, 1.0) is None
    assert n_to_resolve(_sample(100, 99), 95.0, 1.0, max_n=150) is not None
    assert n_to_resolve(_sample(1000, 951), 95.0, 1.0, max_n=2000) is None  # beyond max_n


def test_n_to_resolve_all_under_needs_upper_bound() -> None:
    assert n_to_resolve(_sample(50, 50), 99.0, 1.0) == min_n_for_upper(99.0) == 368
    assert n_to_resolve(_sample(20, 20), 95.0, 1.0) == min_n_for_upper(95.0) == 72


@pytest.mark.parametrize(("n", "k", "q"), [(60, 58, 95.0), (60, 54, 95.0), (40, 23, 50.0), (200, 199, 99.0)])
def test_n_to_resolve_is_first_decisive_projection(n: int, k: int, q: float) -> None:
    est = quantile_ci(_sample(n, k), q)
    assert est.low <= 1.0 < est.high or math.isnan(est.high)  # inconclusive now
    m = n_to_resolve(_sample(n, k), q, 1.0)
    assert m is not None and m > n
    passing = k / n > q / 100.0

    def projected(size: int) -> QuantileEstimate:
        kk = (k * size) // n if passing else -((-k * size) // n)
        return quantile_ci(_sample(size, kk), q)

    at = projected(m)
    assert (at.high <= 1.0) if passing else (at.low > 1.0)
    for size in range(n, m):  # no earlier size resolves
        before = projected(size)
        assert not (before.high <= 1.0 or before.low > 1.0), size
    z2 = 1.959964**2
    approx = z2 * (q / 100) * (1 - q / 100) / (k / n - q / 100) ** 2  # score-test scale
    assert 0.3 * approx < m < 3.0 * approx


# --------------------------------------------------------------------------------------------
# coverage (seeded, small)


@pytest.mark.parametrize("dist", ["lognormal", "mixture"])
def test_coverage_n100(dist: str) -> None:
    rows = cov.quantile_cells(dist, 100, (50.0, 95.0), reps=1000, seed=7, bootstrap=False)
    for row in rows:
        assert row["os_supported"] == 1.0
        assert row["os_coverage"] >= 0.90, row


def test_true_quantiles() -> None:
    assert cov.lognormal_quantile(50.0) == pytest.approx(0.2)
    for q in (50.0, 95.0, 99.0):
        assert cov.mixture_cdf(cov.mixture_quantile(q)) == pytest.approx(q / 100.0, abs=1e-12)
    big = cov._mixture(np.random.default_rng(5), (1, 400_000)).ravel()
    assert float(np.mean(big <= cov.mixture_quantile(95.0))) == pytest.approx(0.95, abs=0.002)


@pytest.mark.parametrize("p", cov.WILSON_PS)
@pytest.mark.parametrize("n", cov.WILSON_NS)
def test_wilson_coverage(p: float, n: int) -> None:
    # Holds everywhere on this grid; the lowest exact value is 0.940 (p=0.02, n=20 and p=0.5, n=64).
    assert cov.wilson_exact_coverage(p, n) >= 0.90
    sim = cov.wilson_simulated_coverage(p, n, 4000, np.random.default_rng([11, n]))
    assert sim >= 0.90
    assert sim == pytest.approx(cov.wilson_exact_coverage(p, n), abs=0.02)


def test_fast_bootstrap_matches_direct() -> None:
    """The Beta order-statistic sampler reproduces `percentile_ci`'s bootstrap bounds in distribution."""
    x = np.sort(np.random.default_rng(6).lognormal(np.log(0.2), 0.5, size=30))
    reps = 150
    for q in (50.0, 95.0, 99.0):
        fast_lo, fast_hi = cov.bootstrap_bounds_fast(np.tile(x, (reps, 1)), q, np.random.default_rng(8), 1000)
        direct = np.array([cov.percentile_ci_direct(x, q, n_boot=1000, seed=s)[1:] for s in range(reps)])
        scale = float(np.ptp(x))
        assert float(np.mean(fast_lo)) == pytest.approx(float(np.mean(direct[:, 0])), abs=0.01 * scale), q
        assert float(np.mean(fast_hi)) == pytest.approx(float(np.mean(direct[:, 1])), abs=0.01 * scale), q


def _replicate_coverage(rows_of: Any, n: int = 100, q: float = 95, trials: int = 400, b: int = 200) -> float:
    """Share of seeded samples whose replicates' 2.5–97.5% range holds the true percentile."""
    rng = np.random.default_rng(7)
    truth = float(sps.expon.ppf(q / 100))
    hits = 0
    for _ in range(trials):
        x = rng.exponential(size=n)
        idx = np.vstack([np.arange(n), rng.integers(0, n, size=(b, n))])
        reps = rows_of(x, idx, q, rng.random(b))[1:]
        low, high = np.percentile(reps, [2.5, 97.5], method="inverted_cdf")
        hits += bool(low <= truth <= high)
    return hits / trials


def test_score_latency_replicates_cover_like_the_interval_shown() -> None:
    """The score's p95 replicates come from the order-statistic (binomial rank) law: their
    2.5–97.5% cover the true p95 ≥ 0.93 at n=100, where the percentile bootstrap covers ~0.88."""
    assert _replicate_coverage(order_stat_rows) >= 0.93
    assert _replicate_coverage(lambda x, idx, q, u: percentile_rows(x, idx, q)) < 0.91


def test_a_proportion_over_reused_prompts_covers_when_counted_by_prompt() -> None:
    """1,000 requests cycling 162 prompts, each prompt right or wrong every time (temperature 0):
    the Wilson interval over 1,000 requests covers the true share far below 95%; over the 162
    distinct prompts (`units`) it covers as Wilson should."""
    rng = np.random.default_rng(11)
    hits_requests = hits_units = 0
    trials = 400
    for _ in range(trials):
        right = (rng.random(162) < 0.8).astype(float)[np.arange(1000) % 162]
        k, n = right.sum() * np.ones(1), 1000 * np.ones(1)
        naive, by_unit = proportion_metric(k, n, ""), proportion_metric(k, n, "", units=162)
        hits_requests += naive.low <= 0.8 <= naive.high
        hits_units += by_unit.low <= 0.8 <= by_unit.high
    assert hits_units / trials >= 0.93 and hits_requests / trials < 0.75
