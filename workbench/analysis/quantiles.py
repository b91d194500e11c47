"""Distribution-free intervals for percentiles, from order statistics.

Why not the bootstrap: the percentile bootstrap of a tail quantile can only ever return values
from inside the sample, so with n=30 its "95% interval" for p99 tops out at the sample maximum
even though the true p99 lies above the maximum about 74% of the time (0.99^30). It
under-covers for tail percentiles at the sample sizes we run (see coverage.py). The interval
here is exact for any continuous distribution and needs no resampling.

The method (Thompson 1936; Conover, *Practical Nonparametric Statistics*, 3.2; Hahn & Meeker
5.2). Let X_(1) <= ... <= X_(n) be the sorted sample and xi_p the true p-quantile (p = q/100).
The number of observations at or below xi_p is B ~ Binomial(n, p), whatever the distribution,
so for 1-based ranks l < u

    P(X_(l) <= xi_p <= X_(u)) = P(l <= B < u) = P(B <= u-1) - P(B <= l-1).

The ranks are chosen *equal-tailed and conservative*: each tail may hold at most alpha/2
(alpha = 1 - ci),

    l = 1 + max{k : P(B <= k) <= alpha/2}          (the largest admissible lower rank)
    u = 1 + min{k : P(B >  k) <= alpha/2}          (the smallest admissible upper rank)

so the coverage P(l <= B < u) is >= ci, and each bound read alone is a one-sided bound at
level 1 - alpha/2. We prefer this to the shortest interval with total coverage >= ci because
a hard constraint ("p95 <= 800 ms") reads one bound only, and with equal tails the error rate
of that reading is known (<= alpha/2) rather than depending on how the shortest interval
happened to split alpha. It is also the textbook interval and exactly what
`scipy.stats.quantile_test(x, p=p).confidence_interval(ci)` returns in the two-sided case
(l = binom.ppf(alpha/2) and u = binom.isf(alpha/2) + 1, which is how the ranks are computed
here; the tests check the agreement). For tied/discrete data the closed interval covers at
least as often as for continuous data, so the guarantee still holds.

A bound *does not exist* when no rank qualifies: the lower one needs P(B = 0) = (1-p)^n <=
alpha/2 and the upper one P(B = n) = p^n <= alpha/2. Then the bound is NaN and
`supported=False`, never a made-up number. By the usual convention X_(0) = -inf and
X_(n+1) = +inf, the missing ranks are reported as l = 0 and u = n+1 (so the coverage formula
above still holds, for the one-sided interval). Sample sizes at which bounds first exist
(two-sided, ci=0.95, i.e. 2.5% per tail; `min_n_for_bounds` / `min_n_for_upper`):

    percentile   upper bound exists   both bounds exist   (p^n <= 0.025)
    p50          n >= 6               n >= 6
    p90          n >= 36              n >= 36
    p95          n >= 72              n >= 72
    p99          n >= 368             n >= 368
    p99.9        n >= 3688            n >= 3688

(For a *one-sided* 95% upper bound use ci=0.90: p95 needs n >= 59 and p99 n >= 299.)

Point value: the order statistic X_(k), k = ceil(n*p) (k = 1 for p = 0), i.e. the smallest x
with ECDF(x) >= p: numpy's `method="inverted_cdf"` (Hyndman & Fan type 1), not numpy's default
"linear" used by the old percentile-bootstrap `percentile_ci`. Reasons: it is always an observed latency; it
always lies inside [X_(l), X_(u)] (the linear value can fall outside at tiny n, e.g. p99 with
n=2); and "point <= limit" is exactly "share of values <= limit is >= p", the same count the
interval and `n_to_resolve` work with, so point, interval and verdict cannot disagree. It
differs from the linear value by less than one gap between neighbouring order statistics.
(numpy computes n*p in floats and takes one rank too many when n*p is an integer that rounds
up, e.g. p7 of n=100 gives X_(8); here X_(7).)

Missing values (None / NaN) are dropped; `n` is the count used. An empty sample gives NaN
everywhere.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
from scipy import stats as sps

from workbench.analysis.stats import Estimate

__all__ = [
    "QuantileEstimate",
    "min_n_for_bounds",
    "min_n_for_lower",
    "min_n_for_upper",
    "n_to_resolve",
    "order_stat_coverage",
    "order_stat_ranks",
    "quantile_ci",
]

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
Values = Iterable[float | None] | npt.NDArray[Any]

NAN = float("nan")


@dataclass(frozen=True, slots=True)
class QuantileEstimate(Estimate):
    """A percentile with its order-statistic interval: an `Estimate` plus the ranks behind it.

    `low_rank` / `high_rank` are the 1-based ranks l and u of the bounds X_(l), X_(u); l = 0
    and u = n + 1 mean "this bound does not exist at this n" (X_(0) = -inf, X_(n+1) = +inf)
    and the bound is then NaN (`fmt` shows it as "-"). `supported` is True only when both
    bounds exist.
    """

    low_rank: int = 0
    high_rank: int = 1
    supported: bool = False


# --------------------------------------------------------------------------------------------
# helpers


def _clean(values: Values) -> FloatArray:
    """A 1-D float array with None/NaN removed (as `workbench.analysis.stats._clean`)."""
    if not isinstance(values, np.ndarray | Sequence):
        values = list(values)
    arr = np.asarray(values, dtype=np.float64).ravel()
    return arr[~np.isnan(arr)]


def _check_q(q: float) -> None:
    if not 0.0 <= q <= 100.0:
        raise ValueError(f"percentile q must be in [0, 100], got {q}")


def _check_ci(ci: float) -> None:
    if not 0.0 < ci < 1.0:
        raise ValueError(f"ci must be in (0, 1), got {ci}")


def _ranks(ns: IntArray, q: float, ci: float) -> tuple[IntArray, IntArray]:
    """Ranks (l, u) for every sample size in `ns` at once (scipy's binomial ppf/isf vectorise over n).

    l = binom.ppf(alpha/2) = 1 + max{k : P(B <= k) < alpha/2}, u = binom.isf(alpha/2) + 1;
    0 and n+1 when the bound does not exist. Exactly scipy's `quantile_test` ranks.
    """
    tail = (1.0 - ci) / 2.0
    p = q / 100.0
    lo = np.asarray(sps.binom.ppf(tail, ns, p), dtype=np.float64)
    hi = np.asarray(sps.binom.isf(tail, ns, p), dtype=np.float64) + 1.0
    return lo.astype(np.int64), hi.astype(np.int64)


def _point_rank(n: int, q: float) -> int:
    """k = ceil(n*q/100), clipped to [1, n]; a 1e-9 slack stops 7.000000000000001 becoming 8."""
    return min(n, max(1, math.ceil(n * q / 100.0 - 1e-9)))


# --------------------------------------------------------------------------------------------
# ranks and sample-size thresholds


@functools.lru_cache(maxsize=4096)
def order_stat_ranks(n: int, q: float, ci: float = 0.95) -> tuple[int, int]:
    """1-based ranks (l, u) of the equal-tailed order-statistic interval [X_(l), X_(u)].

    Each tail P(B <= l-1) and P(B >= u), B ~ Binomial(n, q/100), is <= (1-ci)/2. l = 0 means
    no lower bound exists at this n, u = n+1 no upper bound. With a sorted sample `xs` the
    bounds are `xs[l-1]` and `xs[u-1]`. Cached: reports ask for the same (n, q) many times.
    """
    _check_q(q)
    _check_ci(ci)
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    if n == 0:
        return 0, 1
    lo, hi = _ranks(np.array([n], dtype=np.int64), q, ci)
    return int(lo[0]), int(hi[0])


def order_stat_coverage(n: int, q: float, ci: float = 0.95) -> float:
    """Exact coverage P(l <= B < u) of the interval at this n, for any continuous distribution.

    >= ci when both bounds exist; with a missing bound it is the coverage of the one-sided
    interval (the missing side taken as infinite).
    """
    lo, hi = order_stat_ranks(n, q, ci)
    p = q / 100.0
    return float(sps.binom.cdf(hi - 1, n, p) - sps.binom.cdf(lo - 1, n, p))


def _min_n(q: float, ci: float, which: int) -> int:
    """Smallest n at which bound `which` (0 lower, 1 upper) exists.

    Upper exists iff p^n <= alpha/2, lower iff (1-p)^n <= alpha/2 (both monotone in n). The
    closed form ceil(log(alpha/2) / log(p)) is then nudged against `order_stat_ranks` so the
    answer agrees with the ranks actually used, rounding included.
    """
    _check_q(q)
    _check_ci(ci)
    p = q / 100.0
    base = p if which == 1 else 1.0 - p
    if base >= 1.0:
        side = "upper" if which == 1 else "lower"
        raise ValueError(f"no {side} bound exists for q={q} at any n")
    if base <= 0.0:
        return 1
    n = max(1, math.ceil(math.log((1.0 - ci) / 2.0) / math.log(base)))

    def exists(m: int) -> bool:
        lo, hi = order_stat_ranks(m, q, ci)
        return hi <= m if which == 1 else lo >= 1

    while not exists(n):
        n += 1
    while n > 1 and exists(n - 1):
        n -= 1
    return n


def min_n_for_upper(q: float, ci: float = 0.95) -> int:
    """Smallest n with an upper bound for the q-th percentile: p^n <= (1-ci)/2.

    ci=0.95: p50 -> 6, p90 -> 36, p95 -> 72, p99 -> 368, p99.9 -> 3688. For a one-sided
    upper bound at level c pass ci = 2c - 1 (c=0.95: p95 -> 59, p99 -> 299).
    """
    return _min_n(q, ci, 1)


def min_n_for_lower(q: float, ci: float = 0.95) -> int:
    """Smallest n with a lower bound for the q-th percentile: (1-p)^n <= (1-ci)/2 (p95 -> 2)."""
    return _min_n(q, ci, 0)


def min_n_for_bounds(q: float, ci: float = 0.95) -> int:
    """Smallest n at which both bounds exist (`supported=True`); needs 0 < q < 100.

    ci=0.95: p50 -> 6, p90 -> 36, p95 -> 72, p99 -> 368 (see the module docstring).
    """
    return max(min_n_for_lower(q, ci), min_n_for_upper(q, ci))


# --------------------------------------------------------------------------------------------
# the interval


def quantile_ci(values: Values, q: float, ci: float = 0.95) -> QuantileEstimate:
    """The q-th percentile (q in [0, 100]) with its distribution-free order-statistic interval.

    value = X_(ceil(n*q/100)); interval [X_(l), X_(u)] with the ranks of `order_stat_ranks`,
    coverage >= ci for any continuous distribution. A bound that does not exist at this n is
    NaN and `supported` is False. NaN/None are dropped; an empty sample gives NaNs.
    """
    _check_q(q)
    _check_ci(ci)
    x = np.sort(_clean(values))
    n = int(x.size)
    if n == 0:
        return QuantileEstimate(NAN, NAN, NAN, 0, "order statistics", low_rank=0, high_rank=1, supported=False)
    lo, hi = order_stat_ranks(n, q, ci)
    low = float(x[lo - 1]) if lo >= 1 else NAN
    high = float(x[hi - 1]) if hi <= n else NAN
    value = float(x[_point_rank(n, q) - 1])
    return QuantileEstimate(value, low, high, n, "order statistics", low_rank=lo, high_rank=hi,
                            supported=lo >= 1 and hi <= n)


def n_to_resolve(values: Values, q: float, limit: float, ci: float = 0.95, *, max_n: int = 100_000) -> int | None:
    """Estimated sample size at which the q-th percentile's interval stops straddling `limit`.

    For a hard constraint "q-th percentile <= limit". With K = #{x <= limit} of n values the
    verdict is a count comparison against the ranks of `quantile_ci`:
      decisive pass  X_(u) <= limit  <=>  K >= u(n)
      decisive fail  X_(l) >  limit  <=>  K <= l(n) - 1
    otherwise inconclusive. Projecting the observed share p_hat = K/n forward, the answer is
    the smallest n' >= n at which floor(p_hat*n') >= u(n') (when p_hat > p) or
    ceil(p_hat*n') <= l(n') - 1 (when p_hat < p), found by a vectorised scan.

    The returned n' points towards the verdict the point value already gives (point <= limit
    iff p_hat >= p), so "inconclusive, would fail at ~n'" is as informative as "would pass":
    we return it rather than None. It is a plug-in estimate: if the true share equals p_hat,
    the interval resolves at n' only about half the time. For large n it approaches the score
    test (Wilson interval at p_hat excluding p), n' ~ z^2 p(1-p) / (p_hat - p)^2. When
    p_hat = 1 (every value under the limit) it is `min_n_for_upper(q, ci)`: the sample size
    at which an upper bound first exists.

    Returns n when already decisive, and None when the sample is empty, p_hat == p exactly
    (no amount of data at this share would decide) or n' > max_n. Cost grows with the answer
    (~3.5 us per candidate n', so ~0.4 s to rule out max_n = 1e5); e.g. p95 with p_hat =
    0.951 gives n' = 182653, found only with a larger max_n.
    """
    _check_q(q)
    _check_ci(ci)
    x = _clean(values)
    n = int(x.size)
    if n == 0:
        return None
    k = int(np.count_nonzero(x <= limit))
    lo, hi = order_stat_ranks(n, q, ci)
    if k >= hi or k <= lo - 1:
        return n
    # Compare p_hat = k/n with p = q/100 as k*100 vs n*q, which avoids float noise in p_hat.
    diff = k * 100.0 - n * q
    if abs(diff) <= 1e-9 * max(1.0, n * q):
        return None
    passing = diff > 0
    start, step = n + 1, 256
    while start <= max_n:
        stop = min(max_n, start + step - 1)
        ns = np.arange(start, stop + 1, dtype=np.int64)
        ls, us = _ranks(ns, q, ci)
        # projected count: floor(p_hat * n') towards a pass, ceil(p_hat * n') towards a fail
        ok = (k * ns) // n >= us if passing else -((-k * ns) // n) <= ls - 1
        hits = np.flatnonzero(ok)
        if hits.size:
            return int(ns[hits[0]])
        start, step = stop + 1, step * 2
    return None
