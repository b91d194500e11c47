"""Statistics for ranking contenders: intervals, paired tests, multiplicity, and scalability fits.

Every number the workbench reports comes with an interval and a sample size, computed one way
and one way only. Tools disagree (numpy has nine percentile definitions, there are a dozen
binomial intervals, "McNemar" may or may not be exact or continuity-corrected), so we say which:

- All intervals are two-sided 95% by default (`ci=0.95`).
- Percentiles (p50/p95/p99 latency): order statistics, distribution-free, and no bound where the
  sample cannot support one (`workbench.analysis.quantiles`; the percentile bootstrap covered
  p95 at n = 12 42% of the time: `bench/calibration.py`).
- Means: a *percentile bootstrap* (not a t-interval): latency and cost are skewed and
  heavy-tailed, the bootstrap makes no normality assumption. Seeded, so a report is reproducible.
- Proportions (error rate, hallucination rate): the *Wilson* score interval. It behaves at
  0/n and n/n, where the Wald interval collapses to zero width, and is what statsmodels calls
  `method="wilson"`.
- Paired comparisons (two contenders on the same items): *McNemar exact* (binomial test on the
  discordant pairs) for a p-value, *Newcombe's method 10* (paired Wilson square-and-add) for
  the interval of the difference in proportions, and a *paired bootstrap* (item indices
  resampled jointly) for continuous metrics. Pairing removes item difficulty from the noise.
- Many pairs at once: *Holm*-Bonferroni adjusted p-values. It controls the family-wise error
  rate like Bonferroni but is uniformly more powerful, and needs no independence assumption.
- Concurrency: the Universal Scalability Law fitted by bounded least squares, plus a
  model-free "knee" read straight off the measured levels.

Missing values (None / NaN) are dropped before anything is computed; `Estimate.n` is the count
actually used. An empty sample gives NaN everywhere; a single observation gives its value with
NaN bounds, because one point says nothing about spread.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt
from scipy import optimize
from scipy import stats as sps

if TYPE_CHECKING:
    from pandas import Series

__all__ = [
    "Estimate",
    "USLFit",
    "bootstrap_ci",
    "ecdf",
    "estimate_columns",
    "estimate_from",
    "holm",
    "knee_concurrency",
    "knee_explained",
    "mcnemar_exact",
    "mean_ci",
    "paired_bootstrap_diff",
    "paired_proportion_diff",
    "proportion_summary",
    "usl_fit",
    "wilson_interval",
]

FloatArray = npt.NDArray[np.float64]
Values = Iterable[float | None] | npt.NDArray[Any]
Stat = Callable[[FloatArray], Any]
"""A statistic of a 1-D sample; must return something `float()` accepts (numpy scalars do)."""

NAN = float("nan")

# Bootstrap index matrices are drawn in chunks of at most this many elements (~32 MB of int64
# indices plus the gathered values), so n=1e5 with 2000 resamples never needs gigabytes.
_CHUNK_ELEMS = 1 << 22

# usl_fit: relative effect below which a fitted sigma/kappa is reported as exactly 0.
_SNAP = 1e-5


@dataclass(frozen=True)
class Estimate:
    """A point value with its interval, the sample size behind it, and how the bounds were made.

    The one interval type: a percentile (`quantiles.QuantileEstimate`, with its ranks) and a
    decision metric (`evidence.Metric`, with its replicates and source) are Estimates too.
    Bounds are NaN when they cannot be computed (n < 2 for a bootstrap); all three are NaN for
    an empty sample. Reporting `n` beside every interval keeps small samples honest. `method`:
    "bootstrap", "Wilson", "Newcombe", "order statistics", "Garwood" (a Poisson rate), or "fixed"
    (no sampling error: a declared or probed fact, a price). Shown by `catalog.format_value`.
    """

    value: float
    low: float = math.nan
    high: float = math.nan
    n: int = 0
    method: str = "fixed"


def estimate_columns(name: str, est: Estimate, scale: float = 1.0) -> dict[str, float | int]:
    """An estimate as a table's column family `name, name_low, name_high, name_n` (the one
    scheme of every CSV the workbench writes), values × `scale` (e.g. per document)."""
    return {name: est.value * scale, f"{name}_low": est.low * scale, f"{name}_high": est.high * scale,
            f"{name}_n": est.n}


def estimate_from(row: Mapping[str, Any] | Series[Any], name: str, method: str = "") -> Estimate:
    """The estimate a row holds in the column family `name` (`estimate_columns`); n is 0 when
    the family has no `_n` column."""
    n = row.get(f"{name}_n", 0)
    return Estimate(float(row[name]), float(row.get(f"{name}_low", math.nan)),
                    float(row.get(f"{name}_high", math.nan)), int(n) if n == n else 0, method or "fixed")


# --------------------------------------------------------------------------------------------
# helpers


def _raw(values: Values) -> FloatArray:
    """A 1-D float array, missing values kept as NaN (None becomes NaN under dtype=float)."""
    if not isinstance(values, np.ndarray | Sequence):
        values = list(values)  # generators, pandas-free iterables
    return np.asarray(values, dtype=np.float64).ravel()


def _clean(values: Values) -> FloatArray:
    """A 1-D float array with None/NaN removed."""
    arr = _raw(values)
    return arr[~np.isnan(arr)]


def _paired(x: Values, y: Values) -> tuple[FloatArray, FloatArray]:
    """Two equal-length float arrays with every pair that has a missing side removed."""
    xa, ya = _raw(x), _raw(y)
    if xa.shape != ya.shape:
        raise ValueError(f"paired samples must have the same length, got {xa.size} and {ya.size}")
    keep = ~(np.isnan(xa) | np.isnan(ya))
    return xa[keep], ya[keep]


def _check_ci(ci: float) -> None:
    if not 0.0 < ci < 1.0:
        raise ValueError(f"ci must be in (0, 1), got {ci}")


def _check_n_boot(n_boot: int) -> None:
    if n_boot < 1:
        raise ValueError(f"n_boot must be >= 1, got {n_boot}")


def _bounds(boot: FloatArray, ci: float) -> tuple[float, float]:
    alpha = 1.0 - ci
    lo, hi = np.percentile(boot, [100.0 * alpha / 2.0, 100.0 * (1.0 - alpha / 2.0)])
    return float(lo), float(hi)


def _boot_rows(
    rng: np.random.Generator,
    x: FloatArray,
    n_boot: int,
    reducer: Callable[[FloatArray], FloatArray],
) -> FloatArray:
    """`n_boot` bootstrap replicates of a row-wise statistic, drawn as index matrices in chunks.

    `reducer` maps an (r, n) matrix of resamples to r statistics (e.g. `np.mean(m, axis=1)`).
    The chunk size depends only on n, so results are deterministic for a given seed.
    """
    n = x.size
    rows = max(1, min(n_boot, _CHUNK_ELEMS // n))
    out = np.empty(n_boot, dtype=np.float64)
    for start in range(0, n_boot, rows):
        r = min(rows, n_boot - start)
        idx = _indices(rng, n, r)
        out[start : start + r] = reducer(x[idx])
    return out


def _indices(rng: np.random.Generator, n: int, rows: int) -> npt.NDArray[np.integer[Any]]:
    """A (rows, n) matrix of resample indices; int32 when it fits (faster to draw and gather)."""
    dtype = np.int32 if n < 2**31 - 1 else np.int64
    return rng.integers(0, n, size=(rows, n), dtype=dtype)


def _z(ci: float) -> float:
    return float(sps.norm.ppf(1.0 - (1.0 - ci) / 2.0))


# --------------------------------------------------------------------------------------------
# one-sample intervals


def _sample(values: Values, stat: Stat, ci: float, n_boot: int) -> tuple[FloatArray, Estimate | None]:
    """The clean sample, and the answer when it is too small to resample (n = 0 or 1)."""
    _check_ci(ci)
    _check_n_boot(n_boot)
    x = _clean(values)
    if x.size == 0:
        return x, Estimate(NAN, NAN, NAN, 0)
    return x, Estimate(float(stat(x)), NAN, NAN, 1) if x.size == 1 else None


def mean_ci(values: Values, *, n_boot: int = 2000, ci: float = 0.95, seed: int = 0) -> Estimate:
    """The mean with a percentile-bootstrap interval (resamples are rows of an index matrix)."""
    x, small = _sample(values, np.mean, ci, n_boot)
    if small is not None:
        return small
    n, value = int(x.size), float(np.mean(x))
    rng = np.random.default_rng(seed)
    boot = _boot_rows(rng, x, n_boot, lambda m: np.mean(m, axis=1))
    lo, hi = _bounds(boot, ci)
    return Estimate(value, lo, hi, n, "bootstrap")


def bootstrap_ci(
    values: Values, stat: Stat, *, n_boot: int = 2000, ci: float = 0.95, seed: int = 0
) -> Estimate:
    """Any statistic with a percentile-bootstrap interval: the generic, one-resample-at-a-time path.

    Use it for statistics that cannot work row-wise on a matrix; prefer `mean_ci` where it
    applies, it is much faster.
    """
    x, small = _sample(values, stat, ci, n_boot)
    if small is not None:
        return small
    n, value = int(x.size), float(stat(x))
    rng = np.random.default_rng(seed)
    boot = np.empty(n_boot, dtype=np.float64)
    for i in range(n_boot):
        boot[i] = float(stat(x[rng.integers(0, n, size=n)]))
    lo, hi = _bounds(boot, ci)
    return Estimate(value, lo, hi, n, "bootstrap")


def wilson_interval(k: int, n: int, ci: float = 0.95) -> Estimate:
    """The proportion k/n with its Wilson score interval (no continuity correction).

    Matches statsmodels' `proportion_confint(k, n, method="wilson")`. n=0 gives NaNs.
    """
    _check_ci(ci)
    if n < 0 or k < 0 or k > n:
        raise ValueError(f"need 0 <= k <= n, got k={k}, n={n}")
    if n == 0:
        return Estimate(NAN, NAN, NAN, 0)
    p = k / n
    z = _z(ci)
    z2 = z * z
    denom = 1.0 + z2 / n
    centre = (p + z2 / (2.0 * n)) / denom
    half = (z / denom) * math.sqrt(p * (1.0 - p) / n + z2 / (4.0 * n * n))
    # Exact 0 and 1 at the boundaries, not 1e-17 from rounding.
    low = 0.0 if k == 0 else max(0.0, centre - half)
    high = 1.0 if k == n else min(1.0, centre + half)
    return Estimate(p, low, high, n, "Wilson")


def proportion_summary(k: int, n: int) -> Estimate:
    """Alias of `wilson_interval(k, n)` at 95%, for readability at call sites."""
    return wilson_interval(k, n)


# --------------------------------------------------------------------------------------------
# paired and two-sample comparisons


def mcnemar_exact(b: int, c: int) -> float:
    """Two-sided exact McNemar p-value from the discordant counts b and c.

    Under H0 the b of the b+c discordant pairs is Binomial(b+c, 1/2); the two-sided p-value is
    min(1, 2 * P(X <= min(b, c))). No discordant pairs (b=c=0) gives 1.0: no evidence at all.
    """
    if b < 0 or c < 0:
        raise ValueError(f"discordant counts must be >= 0, got b={b}, c={c}")
    m = b + c
    if m == 0:
        return 1.0
    return float(min(1.0, 2.0 * sps.binom.cdf(min(b, c), m, 0.5)))


def paired_proportion_diff(x: Values, y: Values, *, ci: float = 0.95) -> Estimate:
    """mean(x) - mean(y) for paired binary outcomes, with Newcombe's (1998) method 10 interval.

    x and y are booleans (or 0/1) on the same items; a pair with a missing side is dropped.
    Method 10 combines the Wilson intervals of both marginal proportions ("square and add"),
    adjusted for their correlation phi, computed as in Newcombe's paper (numerator AD-BC
    shrunk by n/2 towards zero when positive). Reference value: the table (59, 6, 16, 80)
    gives -0.0621 [-0.1186, -0.0046]. `n` is the number of pairs used.
    """
    _check_ci(ci)
    xa, ya = _paired(x, y)
    if not (np.isin(xa, (0.0, 1.0)).all() and np.isin(ya, (0.0, 1.0)).all()):
        raise ValueError("paired_proportion_diff needs boolean / 0-1 outcomes")
    n = int(xa.size)
    if n == 0:
        return Estimate(NAN, NAN, NAN, 0)
    xb, yb = xa.astype(bool), ya.astype(bool)
    a = int(np.sum(xb & yb))
    b = int(np.sum(xb & ~yb))
    c = int(np.sum(~xb & yb))
    d = n - a - b - c
    p1, p2 = (a + b) / n, (a + c) / n
    w1 = wilson_interval(a + b, n, ci)
    w2 = wilson_interval(a + c, n, ci)
    marg = (a + b) * (c + d) * (a + c) * (b + d)
    if marg == 0:
        phi = 0.0
    else:
        num = a * d - b * c
        if num > n / 2:
            num_adj = num - n / 2
        elif num >= 0:
            num_adj = 0.0
        else:
            num_adj = float(num)
        phi = num_adj / math.sqrt(marg)
    d1l, d1u = p1 - w1.low, w1.high - p1
    d2l, d2u = p2 - w2.low, w2.high - p2
    delta = math.sqrt(max(0.0, d1l**2 - 2.0 * phi * d1l * d2u + d2u**2))
    eps = math.sqrt(max(0.0, d1u**2 - 2.0 * phi * d1u * d2l + d2l**2))
    diff = p1 - p2
    return Estimate(diff, max(-1.0, diff - delta), min(1.0, diff + eps), n, "Newcombe")


def _as_row_stat(stat: Stat) -> Callable[[FloatArray], FloatArray] | None:
    """A row-wise version of a few known numpy reducers, so the paired bootstrap can vectorise."""
    if stat is np.mean:
        return lambda m: np.mean(m, axis=1)
    if stat is np.median:
        return lambda m: np.median(m, axis=1)
    return None


def paired_bootstrap_diff(
    x: Values,
    y: Values,
    stat: Stat = np.mean,
    *,
    n_boot: int = 2000,
    ci: float = 0.95,
    seed: int = 0,
) -> Estimate:
    """stat(x) - stat(y) on paired samples, resampling item indices jointly.

    Resampling the same items for both keeps the per-item correlation, so the interval is
    narrower than an unpaired one when contenders find the same items hard. Pairs with a
    missing side are dropped. `np.mean` / `np.median` are vectorised; other stats loop.
    """
    _check_ci(ci)
    _check_n_boot(n_boot)
    xa, ya = _paired(x, y)
    n = int(xa.size)
    if n == 0:
        return Estimate(NAN, NAN, NAN, 0)
    value = float(stat(xa)) - float(stat(ya))
    if n == 1:
        return Estimate(value, NAN, NAN, 1)
    rng = np.random.default_rng(seed)
    row = _as_row_stat(stat)
    boot = np.empty(n_boot, dtype=np.float64)
    if row is not None:
        rows = max(1, min(n_boot, _CHUNK_ELEMS // n))
        for start in range(0, n_boot, rows):
            r = min(rows, n_boot - start)
            idx = _indices(rng, n, r)
            boot[start : start + r] = row(xa[idx]) - row(ya[idx])
    else:
        for i in range(n_boot):
            idx1 = rng.integers(0, n, size=n)
            boot[i] = float(stat(xa[idx1])) - float(stat(ya[idx1]))
    lo, hi = _bounds(boot, ci)
    return Estimate(value, lo, hi, n, "bootstrap")


def holm(pvalues: Sequence[float]) -> list[float]:
    """Holm-Bonferroni adjusted p-values, in the original order.

    The i-th smallest of m p-values is multiplied by (m - i), running maxima keep the result
    monotone, and it is capped at 1. NaN entries pass through as NaN and do not count in m.
    Compare each adjusted value with the family-wise alpha (e.g. 0.05).
    """
    p = np.asarray(pvalues, dtype=np.float64)
    out = np.full(p.shape, NAN)
    ok = np.flatnonzero(~np.isnan(p))
    m = ok.size
    if m == 0:
        return [float(v) for v in out]
    order = ok[np.argsort(p[ok], kind="stable")]
    running = 0.0
    for i, j in enumerate(order):
        running = max(running, min(1.0, (m - i) * float(p[j])))
        out[j] = running
    return [float(v) for v in out]


# --------------------------------------------------------------------------------------------
# concurrency


@dataclass(frozen=True)
class USLFit:
    """A fitted Universal Scalability Law: X(N) = lambda*N / (1 + sigma*(N-1) + kappa*N*(N-1)).

    lambda_ is the throughput of one worker, sigma the contention (serialised fraction),
    kappa the coherency (crosstalk) cost. Peak concurrency N* = sqrt((1 - sigma) / kappa);
    with kappa == 0 there is no peak (N* = inf) and peak_throughput is the asymptote
    lambda / sigma (inf if sigma is 0 as well). r2 and rmse are on the fitted points.
    """

    lambda_: float
    sigma: float
    kappa: float
    peak_concurrency: float
    peak_throughput: float
    r2: float
    rmse: float
    n_points: int

    def predict(self, n: float | Sequence[float] | npt.NDArray[Any]) -> FloatArray:
        """Modelled throughput at concurrency n (scalar or array); always returns an array."""
        return _usl(np.asarray(n, dtype=np.float64), self.lambda_, self.sigma, self.kappa)


def _usl(n: FloatArray, lam: float, sigma: float, kappa: float) -> FloatArray:
    return np.asarray(lam * n / (1.0 + sigma * (n - 1.0) + kappa * n * (n - 1.0)), dtype=np.float64)


def usl_fit(concurrency: Values, throughput: Values) -> USLFit:
    """Fit the USL by bounded least squares (`scipy.optimize.curve_fit`, trust-region reflective).

    Bounds: lambda > 0, 0 <= sigma <= 1, kappa >= 0. The starting lambda is the throughput per
    worker at the smallest concurrency; a few starting (sigma, kappa) pairs are tried and the
    lowest residual wins, since the surface is flat along sigma-kappa trade-offs. A sigma or
    kappa whose effect at the largest measured N is below 1e-5 is reported as 0 (so linear
    data gives peak_concurrency = inf, not an artefact at N ~ 1e4); r2/rmse use the reported
    parameters. Points with a missing side are dropped. Needs >= 3 distinct concurrency levels
    (three parameters).
    """
    n_arr, x_arr = _paired(concurrency, throughput)
    levels = np.unique(n_arr)
    if levels.size < 3:
        raise ValueError(
            f"usl_fit needs at least 3 distinct concurrency levels, got {levels.size} "
            f"({levels.tolist()}); measure more levels before fitting"
        )
    if np.any(n_arr <= 0):
        raise ValueError("concurrency levels must be > 0")
    n_min = levels[0]
    lam0 = float(np.mean(x_arr[n_arr == n_min]) / n_min)
    if not lam0 > 0:
        lam0 = float(max(np.max(x_arr / n_arr), 1e-9))

    def model(n: FloatArray, lam: float, sigma: float, kappa: float) -> FloatArray:
        return _usl(n, lam, sigma, kappa)

    lower = [1e-12, 0.0, 0.0]
    upper = [np.inf, 1.0, np.inf]
    best: tuple[float, float, float] | None = None
    best_sse = np.inf
    for s0, k0 in ((0.05, 1e-4), (0.3, 1e-3), (0.05, 1e-2), (0.5, 0.0)):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", optimize.OptimizeWarning)
                popt, _ = optimize.curve_fit(
                    model, n_arr, x_arr, p0=[lam0, s0, k0], bounds=(lower, upper), maxfev=10000
                )
        except RuntimeError:
            continue
        lam, sigma, kappa = (float(v) for v in popt)
        sse = float(np.sum((x_arr - _usl(n_arr, lam, sigma, kappa)) ** 2))
        if sse < best_sse:
            best, best_sse = (lam, sigma, kappa), sse
    if best is None:
        raise RuntimeError("usl_fit: the least-squares fit did not converge from any start")
    lam, sigma, kappa = best
    # The bounded solver stays strictly inside its bounds, so a true 0 comes back as ~1e-10 and
    # would put a "peak" at N ~ 1e4. A term that moves the model by < 1e-5 (relative) even at
    # the largest measured N is indistinguishable from zero on this data: snap it to 0.
    n_max = float(levels[-1])
    if sigma * (n_max - 1.0) < _SNAP:
        sigma = 0.0
    if kappa * n_max * (n_max - 1.0) < _SNAP:
        kappa = 0.0
    if kappa > 0:
        peak_n = math.sqrt((1.0 - sigma) / kappa)
        peak_x = float(_usl(np.asarray(peak_n), lam, sigma, kappa))
    else:
        peak_n = math.inf
        peak_x = lam / sigma if sigma > 0 else math.inf
    sse = float(np.sum((x_arr - _usl(n_arr, lam, sigma, kappa)) ** 2))
    ss_tot = float(np.sum((x_arr - np.mean(x_arr)) ** 2))
    r2 = 1.0 - sse / ss_tot if ss_tot > 0 else NAN
    rmse = math.sqrt(sse / x_arr.size)
    return USLFit(lam, sigma, kappa, peak_n, peak_x, r2, rmse, int(x_arr.size))


def knee_concurrency(
    concurrency: Values,
    p95_latency: Values,
    throughput: Values,
    *,
    latency_factor: float = 2.0,
    gain_floor: float = 0.1,
) -> float | None:
    """The highest concurrency worth running: the last level before scaling stops paying.

    Levels are sorted by concurrency N_0 < N_1 < ... (duplicate levels are averaged). Level
    i >= 1 *fails* when either
      - its p95 latency exceeds `latency_factor` x the p95 at the lowest level N_0, or
      - its marginal gain per added worker, relative to the per-worker throughput at N_0,
        ((X_i - X_{i-1}) / (N_i - N_{i-1})) / (X_0 / N_0), is below `gain_floor`
        (1.0 = each added worker adds as much as a worker did at N_0; 0.1 = only 10% of it).
    A NaN latency or throughput at a level counts as a failure (e.g. everything errored).
    The knee is the level just before the first failing one. If no level fails, the highest
    tested level is returned: the knee lies at or beyond the tested range. A criterion whose
    baseline is not positive and finite (p95 or X at N_0) is skipped. None if fewer than 2
    levels. Model-free on purpose: it reads the measurements, so it does not depend on the
    USL fitting well. `knee_explained` also says which criterion stopped it.
    """
    return knee_explained(concurrency, p95_latency, throughput, latency_factor=latency_factor,
                          gain_floor=gain_floor)[0]


def knee_explained(
    concurrency: Values,
    p95_latency: Values,
    throughput: Values,
    *,
    latency_factor: float = 2.0,
    gain_floor: float = 0.1,
) -> tuple[float | None, str]:
    """`knee_concurrency` and, in words, why the next level failed (or that none did)."""
    c, lat, thr = _raw(concurrency), _raw(p95_latency), _raw(throughput)
    if not (c.shape == lat.shape == thr.shape):
        raise ValueError("concurrency, p95_latency and throughput must have the same length")
    keep = ~np.isnan(c)
    c, lat, thr = c[keep], lat[keep], thr[keep]
    levels, inverse = np.unique(c, return_inverse=True)
    if levels.size < 2:
        return None, "fewer than 2 levels"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # mean of an all-NaN group is NaN: wanted
        lat_l = np.array([np.mean(lat[inverse == i]) for i in range(levels.size)])
        thr_l = np.array([np.mean(thr[inverse == i]) for i in range(levels.size)])
    base_lat, base_thr = float(lat_l[0]), float(thr_l[0])
    check_lat = math.isfinite(base_lat) and base_lat > 0
    per_worker0 = base_thr / float(levels[0]) if levels[0] > 0 else NAN
    check_gain = math.isfinite(per_worker0) and per_worker0 > 0
    n0 = f"{levels[0]:g}"
    for i in range(1, levels.size):
        li, xi, xp = float(lat_l[i]), float(thr_l[i]), float(thr_l[i - 1])
        ni, nprev = f"{levels[i]:g}", f"{levels[i - 1]:g}"
        if check_lat and not (li <= latency_factor * base_lat):  # NaN fails too
            why = (f"at {ni}, p95 is {li / base_lat:.1f}× the p95 at {n0} (limit {latency_factor:g}×)"
                   if math.isfinite(li) else f"at {ni}, no p95 (no successful request)")
            return float(levels[i - 1]), why
        if check_gain:
            gain = ((xi - xp) / float(levels[i] - levels[i - 1])) / per_worker0
            if not (gain >= gain_floor):  # NaN fails too
                why = (f"each worker added from {nprev} to {ni} adds {gain:.0%} of a worker's "
                       f"throughput at {n0} (floor {gain_floor:.0%})" if math.isfinite(gain)
                       else f"at {ni}, no throughput")
                return float(levels[i - 1]), why
        elif math.isnan(xi):
            return float(levels[i - 1]), f"at {ni}, no throughput"
    return float(levels[-1]), f"no level failed: the knee is at or beyond {levels[-1]:g}"


# --------------------------------------------------------------------------------------------
# distributions


def ecdf(values: Values) -> tuple[FloatArray, FloatArray]:
    """Empirical CDF: sorted values x and y = i/n for i = 1..n (so y is in (0, 1]).

    Missing values are dropped; an empty sample gives two empty arrays. Ties keep one step per
    observation, which plots correctly with `drawstyle="steps-post"`.
    """
    x = np.sort(_clean(values))
    n = x.size
    y = np.arange(1, n + 1, dtype=np.float64) / n if n else np.empty(0, dtype=np.float64)
    return x, y
