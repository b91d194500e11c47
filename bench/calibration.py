"""Calibration: do the interval procedures cover the truth? A seeded coverage simulation.

Order-statistic percentile intervals vs the percentile bootstrap they replaced, and Wilson.

For each distribution, sample size n and percentile q we draw `reps` samples, compute both
95% intervals for every sample and report

- coverage: the share of samples whose interval contains the true quantile;
- supported: the share with both bounds (order statistics only; deterministic in n, q);
- rel. width: mean of (high - low) / true quantile over samples with both bounds.

True quantiles: lognormal exp(mu + sigma * Phi^-1(p)) in closed form; the mixture by root-finding
its CDF (`scipy.optimize.brentq`, tolerance 1e-14), no Monte Carlo error in the target.

The bootstrap is the old `percentile_ci` (before order statistics) (numpy "linear" percentile, n_boot resamples,
2.5/97.5 percentiles of the replicates). Running it literally costs reps x n_boot x n draws per
cell, so the study samples the *same* bootstrap distribution exactly and in O(1) per replicate:
with X sorted, the k-th smallest value of a resample is X_(ceil(n*U_(k))), where U_(k) is the
k-th order statistic of n uniforms, U_(k) ~ Beta(k, n-k+1), and the next one is
U_(k+1) = U_(k) + (1 - U_(k)) * Beta(1, n-k). The linear percentile of a resample needs only
those two. `percentile_ci_direct` is a verbatim copy of the original logic; the tests check
that both give the same coverage.

Wilson: coverage is computed exactly, sum_k Binom(k; n, p) * [p in Wilson(k, n)], and also
by simulation as a check on the harness.

The small seeded check runs in `make test` (tests/analysis/test_quantiles.py); the larger study
is `bench/coverage_study.py` (default 2000 reps, seed 0; ~30 s on one core), its table in
bench/README.md.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
import numpy.typing as npt
from scipy import optimize
from scipy import stats as sps

from workbench.analysis.quantiles import order_stat_coverage, order_stat_ranks

FloatArray = npt.NDArray[np.float64]
Row = dict[str, Any]
Sampler = Callable[[np.random.Generator, tuple[int, int]], FloatArray]

NS = (12, 30, 60, 100, 200, 400)
QS = (50.0, 95.0, 99.0)
WILSON_PS = (0.02, 0.1, 0.5, 0.8)
WILSON_NS = (20, 64, 173)
CI = 0.95
_REP_CHUNK = 250  # reps per bootstrap batch: 250 x 1000 x 8 bytes = 2 MB per array

# --------------------------------------------------------------------------------------------
# distributions

LN_MU, LN_SIGMA = math.log(0.2), 0.5
MIX_W, MIX_A, MIX_B = 0.05, (math.log(0.1), 0.3), (math.log(1.0), 0.5)


def _lognormal(rng: np.random.Generator, size: tuple[int, int]) -> FloatArray:
    return rng.lognormal(LN_MU, LN_SIGMA, size=size)


def _mixture(rng: np.random.Generator, size: tuple[int, int]) -> FloatArray:
    slow = rng.random(size) < MIX_W
    a = rng.lognormal(MIX_A[0], MIX_A[1], size=size)
    b = rng.lognormal(MIX_B[0], MIX_B[1], size=size)
    return np.where(slow, b, a)


def lognormal_quantile(q: float) -> float:
    """exp(mu + sigma * Phi^-1(q/100)) for the lognormal(log 0.2, 0.5)."""
    return math.exp(LN_MU + LN_SIGMA * float(sps.norm.ppf(q / 100.0)))


def mixture_cdf(x: float) -> float:
    """0.95 * Phi((ln x - ln 0.1) / 0.3) + 0.05 * Phi((ln x - ln 1) / 0.5)."""
    lx = math.log(x)
    a = float(sps.norm.cdf((lx - MIX_A[0]) / MIX_A[1]))
    b = float(sps.norm.cdf((lx - MIX_B[0]) / MIX_B[1]))
    return (1.0 - MIX_W) * a + MIX_W * b


def mixture_quantile(q: float) -> float:
    """Root of mixture_cdf(x) = q/100 by Brent's method on a bracket that always holds it."""
    p = q / 100.0
    root = optimize.brentq(lambda x: mixture_cdf(x) - p, 1e-6, 1e3, xtol=1e-14, rtol=1e-14)
    return float(root)


DISTS: dict[str, tuple[Sampler, Callable[[float], float]]] = {
    "lognormal": (_lognormal, lognormal_quantile),
    "mixture": (_mixture, mixture_quantile),
}

# --------------------------------------------------------------------------------------------
# interval methods on a (reps, n) matrix of sorted samples


def order_stat_bounds(xs: FloatArray, q: float, ci: float = CI) -> tuple[FloatArray, FloatArray]:
    """Bounds of `quantiles.quantile_ci` for every row of a row-sorted matrix; NaN when missing."""
    reps, n = xs.shape
    lo, hi = order_stat_ranks(n, q, ci)
    low = xs[:, lo - 1] if lo >= 1 else np.full(reps, np.nan)
    high = xs[:, hi - 1] if hi <= n else np.full(reps, np.nan)
    return low, high


def bootstrap_bounds_fast(
    xs: FloatArray, q: float, rng: np.random.Generator, n_boot: int = 1000, ci: float = CI
) -> tuple[FloatArray, FloatArray]:
    """Percentile-bootstrap bounds of numpy's linear percentile, per row of a row-sorted matrix.

    Same bootstrap distribution as `percentile_ci_direct`, sampled via Beta order statistics
    (see the module docstring). Replicates: X*_(k) + g * (X*_(k+1) - X*_(k)) with the 0-based
    virtual index h = (n-1)p, k = floor(h) + 1, g = h - floor(h), as numpy's "linear".
    """
    reps, n = xs.shape
    h = (n - 1) * q / 100.0
    k = math.floor(h) + 1  # 1-based rank of the lower neighbour
    g = h - math.floor(h)
    alpha = 1.0 - ci
    low = np.empty(reps)
    high = np.empty(reps)
    for s in range(0, reps, _REP_CHUNK):
        rows = xs[s : s + _REP_CHUNK]
        r = rows.shape[0]
        u_k = rng.beta(k, n - k + 1, size=(r, n_boot))
        a = np.take_along_axis(rows, _index(u_k, n), axis=1)
        if g > 0 and k < n:
            u_next = u_k + (1.0 - u_k) * rng.beta(1, n - k, size=(r, n_boot))
            b = np.take_along_axis(rows, _index(u_next, n), axis=1)
            boot = a + g * (b - a)
        else:
            boot = a
        bl, bh = np.percentile(boot, [100.0 * alpha / 2.0, 100.0 * (1.0 - alpha / 2.0)], axis=1)
        low[s : s + r], high[s : s + r] = bl, bh
    return low, high


def _index(u: FloatArray, n: int) -> npt.NDArray[np.intp]:
    """0-based resample index ceil(n*u) - 1 of a uniform draw u, clipped against u == 0."""
    return np.clip(np.ceil(u * n).astype(np.intp) - 1, 0, n - 1)


def percentile_ci_direct(
    values: FloatArray, q: float, *, n_boot: int = 2000, ci: float = CI, seed: int = 0
) -> tuple[float, float, float]:
    """Verbatim logic of `workbench.stats.percentile_ci` for a clean 1-D sample: (value, low, high)."""
    x = np.asarray(values, dtype=np.float64)
    n = int(x.size)
    value = float(np.percentile(x, q))
    if n < 2:
        return value, math.nan, math.nan
    rng = np.random.default_rng(seed)
    rows = max(1, min(n_boot, (1 << 22) // n))
    boot = np.empty(n_boot, dtype=np.float64)
    for start in range(0, n_boot, rows):
        r = min(rows, n_boot - start)
        idx = rng.integers(0, n, size=(r, n), dtype=np.int32)
        boot[start : start + r] = np.percentile(x[idx], q, axis=1)
    alpha = 1.0 - ci
    lo, hi = np.percentile(boot, [100.0 * alpha / 2.0, 100.0 * (1.0 - alpha / 2.0)])
    return value, float(lo), float(hi)


def _summarise(low: FloatArray, high: FloatArray, true: float) -> tuple[float, float, float]:
    """(coverage with a missing bound taken as infinite, share supported, mean relative width)."""
    lo = np.where(np.isnan(low), -np.inf, low)
    hi = np.where(np.isnan(high), np.inf, high)
    cover = float(np.mean((lo <= true) & (true <= hi)))
    ok = ~(np.isnan(low) | np.isnan(high))
    supported = float(np.mean(ok))
    width = float(np.mean((high[ok] - low[ok]) / true)) if ok.any() else math.nan
    return cover, supported, width


# --------------------------------------------------------------------------------------------
# Wilson


def wilson_bounds(k: npt.NDArray[np.int64], n: int, ci: float = CI) -> tuple[FloatArray, FloatArray]:
    """Vectorised `workbench.stats.wilson_interval` bounds (exact 0 and 1 at k = 0 and k = n)."""
    z = float(sps.norm.ppf(1.0 - (1.0 - ci) / 2.0))
    z2 = z * z
    p = k / n
    denom = 1.0 + z2 / n
    centre = (p + z2 / (2.0 * n)) / denom
    half = (z / denom) * np.sqrt(p * (1.0 - p) / n + z2 / (4.0 * n * n))
    low = np.where(k == 0, 0.0, np.maximum(0.0, centre - half))
    high = np.where(k == n, 1.0, np.minimum(1.0, centre + half))
    return low, high


def wilson_exact_coverage(p: float, n: int, ci: float = CI) -> float:
    """sum over k of P(K = k) * [low_k <= p <= high_k], K ~ Binomial(n, p)."""
    k = np.arange(n + 1, dtype=np.int64)
    low, high = wilson_bounds(k, n, ci)
    inside = (low <= p) & (p <= high)
    return float(np.sum(sps.binom.pmf(k, n, p)[inside]))


def wilson_simulated_coverage(p: float, n: int, reps: int, rng: np.random.Generator, ci: float = CI) -> float:
    k = rng.binomial(n, p, size=reps).astype(np.int64)
    low, high = wilson_bounds(k, n, ci)
    return float(np.mean((low <= p) & (p <= high)))


# --------------------------------------------------------------------------------------------
# the study


def quantile_cells(
    dist: str,
    n: int,
    qs: tuple[float, ...],
    reps: int,
    seed: int,
    *,
    n_boot: int = 1000,
    bootstrap: bool = True,
) -> list[Row]:
    """Rows for one (distribution, n): order statistics and (optionally) bootstrap, for each q."""
    sampler, quantile = DISTS[dist]
    rng = np.random.default_rng([seed, list(DISTS).index(dist), n])
    xs = np.sort(sampler(rng, (reps, n)), axis=1)
    out: list[Row] = []
    for q in qs:
        true = quantile(q)
        row: Row = {"kind": "quantile", "dist": dist, "n": n, "q": q, "true": true}
        cov, sup, width = _summarise(*order_stat_bounds(xs, q), true)
        row.update(os_coverage=cov, os_supported=sup, os_rel_width=width, os_exact=order_stat_coverage(n, q, CI))
        if bootstrap:
            cov, _, width = _summarise(*bootstrap_bounds_fast(xs, q, rng, n_boot), true)
            row.update(boot_coverage=cov, boot_rel_width=width)
        out.append(row)
    return out


def run_study(reps: int = 2000, seed: int = 0, *, n_boot: int = 1000) -> list[Row]:
    """All quantile cells (2 distributions x 6 n x 3 q) and Wilson cells (4 p x 3 n), seeded.

    Each (distribution, n) cell has its own generator seeded by (seed, distribution, n), so a
    cell's numbers do not depend on which other cells ran.
    """
    rows: list[Row] = []
    for dist in DISTS:
        for n in NS:
            rows.extend(quantile_cells(dist, n, QS, reps, seed, n_boot=n_boot))
    for p in WILSON_PS:
        for n in WILSON_NS:
            rng = np.random.default_rng([seed, 99, n, round(p * 1000)])
            rows.append(
                {
                    "kind": "wilson",
                    "p": p,
                    "n": n,
                    "exact": wilson_exact_coverage(p, n),
                    "simulated": wilson_simulated_coverage(p, n, max(reps, 10_000), rng),
                }
            )
    return rows


def _f(x: float, digits: int = 3) -> str:
    return "—" if math.isnan(x) else f"{x:.{digits}f}"


def markdown(rows: list[Row]) -> str:
    """The study as Markdown tables (quantiles, then Wilson)."""
    lines = [
        "| dist | n | q | bootstrap cover | boot rel.width | order-stat cover | exact | supported | OS rel.width |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        if r["kind"] != "quantile":
            continue
        mark = "" if r["os_supported"] == 1.0 else " †"
        lines.append(
            f"| {r['dist']} | {r['n']} | p{r['q']:g} | {_f(r.get('boot_coverage', math.nan))} "
            f"| {_f(r.get('boot_rel_width', math.nan), 2)} | {_f(r['os_coverage'])}{mark} | {_f(r['os_exact'])} "
            f"| {_f(r['os_supported'], 2)} | {_f(r['os_rel_width'], 2)} |"
        )
    lines += [
        "",
        "† a bound does not exist at this n (NaN, supported=False); coverage is that of the remaining one-sided bound.",
        "",
        "| Wilson p | n | exact coverage | simulated |",
        "|---:|---:|---:|---:|",
    ]
    for r in rows:
        if r["kind"] == "wilson":
            lines.append(f"| {r['p']:g} | {r['n']} | {_f(r['exact'])} | {_f(r['simulated'])} |")
    return "\n".join(lines)
