"""Pairwise statistical comparisons between contenders, all paired on the same units.

Every contender answers the same prompts (warm request i carries prompt i) and the same items,
so every comparison is paired — pairing removes prompt and item difficulty from the noise. In
each row the effect and the test describe the same quantity:

- **E2E p95 difference** (a − b): paired bootstrap over prompts (the same resampled prompts for
  both), interval = 2.5–97.5% of the replicates, p = twice the smaller share of replicates on
  either side of 0;
- **E2E location shift**: the Hodges–Lehmann pseudo-median of the paired differences a_i − b_i
  (the quantity the signed-rank test tests) with the interval that inverts that test, p = Wilcoxon
  signed-rank (two-sided) on the same differences;
- **routing accuracy difference**: paired by prompt, Newcombe's interval, p = McNemar exact on
  the prompts only one of the two got right;
- **hallucination difference** (incorrect rate, a − b): paired by item, Newcombe's interval,
  p = McNemar exact on the discordant items.

Holm's correction runs across every test in the table (one family), so that with many
contenders and axes a "significant" difference is not a product of how many were looked at.
"""

from __future__ import annotations

import itertools
import math
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats as sps

from workbench.analysis import stats
from workbench.analysis.evidence import Evidence

__all__ = ["hodges_lehmann", "pairwise_tests"]


def _both(a: pd.Series, b: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    keep = a.notna() & b.notna()
    return a[keep].to_numpy(dtype=float), b[keep].to_numpy(dtype=float)


def _sub(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """a − b where a failed request is +∞ (`evidence.outcomes`): two failures tie (0), a failure
    against an answer is ±∞ — never ∞ − ∞ = NaN."""
    with np.errstate(invalid="ignore"):
        return np.where(a == b, 0.0, np.asarray(a, dtype=float) - b)


def _boot_p(reps: np.ndarray) -> float:
    reps = reps[~np.isnan(reps)]
    if not len(reps):
        return math.nan
    below, above = float(np.mean(reps <= 0)), float(np.mean(reps >= 0))
    return min(1.0, 2 * min(below, above))


def _latency_rows(ev: Evidence, n_boot: int, seed: int) -> list[dict[str, Any]]:
    rows = []
    rng = np.random.default_rng(seed)
    for a, b in itertools.combinations(sorted(ev.prompts), 2):
        xa, xb = _both(ev.prompts[a]["e2e_s"], ev.prompts[b]["e2e_s"])
        n = len(xa)
        if n < 2:
            continue
        idx = rng.integers(0, n, size=(n_boot, n))
        d95 = _sub(np.percentile(xa[idx], 95, axis=1, method="inverted_cdf"),
                   np.percentile(xb[idx], 95, axis=1, method="inverted_cdf"))
        point95 = float(_sub(np.percentile(xa, 95, method="inverted_cdf"),
                             np.percentile(xb, 95, method="inverted_cdf")))
        diff = _sub(xa, xb)
        hl, hl_low, hl_high = hodges_lehmann(diff)
        wil = sps.wilcoxon(diff).pvalue if np.any(diff != 0) else 1.0
        base = {"axis": "latency", "a": a, "b": b, "n": n, "effect_unit": "ms (a − b)"}
        # bounds as order statistics of the replicates: an ∞ replicate (failures) stays ∞, never NaN
        lo95, hi95 = np.percentile(d95, [2.5, 97.5], method="inverted_cdf")
        rows.append({**base, "tests": "E2E p95 difference, paired bootstrap over prompts",
                     "effect": point95 * 1000, "effect_low": float(lo95) * 1000,
                     "effect_high": float(hi95) * 1000, "p": _boot_p(d95)})
        rows.append({**base, "tests": "E2E location shift (Hodges–Lehmann pseudo-median of the paired differences), "
                     "Wilcoxon signed-rank", "effect": hl * 1000, "effect_low": hl_low * 1000,
                     "effect_high": hl_high * 1000, "p": float(wil)})
    return rows


def hodges_lehmann(d: np.ndarray, ci: float = 0.95) -> tuple[float, float, float]:
    """The Hodges–Lehmann estimate of the paired shift — the median of the Walsh averages
    (d_i + d_j) / 2, i ≤ j — with the interval that inverts the Wilcoxon signed-rank test.

    Why: the signed-rank test tests this pseudo-median, not the median of the differences (the
    two can even differ in sign on a skewed difference), so the effect shown beside its p-value
    must be this one. Interval: the C-th smallest and C-th largest Walsh averages, C from the
    signed-rank statistic's normal approximation, M/2 − z·√(n(n+1)(2n+1)/24) (Hollander & Wolfe
    3.2; M = n(n+1)/2 Walsh averages)."""
    d = np.asarray(d, dtype=float)
    d = d[np.isfinite(d)]
    n = len(d)
    if n == 0:
        return math.nan, math.nan, math.nan
    i, j = np.triu_indices(n)
    walsh = np.sort((d[i] + d[j]) / 2.0)
    m = len(walsh)
    z = float(sps.norm.ppf(1 - (1 - ci) / 2))
    c = math.floor(m / 2 - z * math.sqrt(n * (n + 1) * (2 * n + 1) / 24))
    if c < 1:  # too few pairs for an interval at this level
        return float(np.median(walsh)), math.nan, math.nan
    return float(np.median(walsh)), float(walsh[c - 1]), float(walsh[m - c])


def _paired_binary(name: str, what: str, unit: str, a: str, b: str, xa: np.ndarray, xb: np.ndarray
                   ) -> dict[str, Any]:
    d = stats.paired_proportion_diff(xa, xb)
    only_a, only_b = int(np.sum((xa == 1) & (xb == 0))), int(np.sum((xa == 0) & (xb == 1)))
    return {"axis": name, "tests": what, "a": a, "b": b, "n": len(xa), "effect": d.value * 100,
            "effect_low": d.low * 100, "effect_high": d.high * 100, "effect_unit": unit,
            "p": stats.mcnemar_exact(only_a, only_b)}


def pairwise_tests(ev: Evidence, alpha: float = 0.05, n_boot: int = 2000, seed: int = 0) -> pd.DataFrame:
    """One row per (test, pair): what it tests, the effect with its 95% CI, raw and Holm p, verdict."""
    rows = _latency_rows(ev, n_boot, seed)
    for a, b in itertools.combinations(sorted(ev.prompts), 2):
        xa, xb = _both(ev.prompts[a]["route_correct"], ev.prompts[b]["route_correct"])
        if len(xa):
            rows.append(_paired_binary("quality", "routing accuracy difference, McNemar exact (paired by prompt)",
                                       "pp (a − b)", a, b, xa, xb))
    for a, b in itertools.combinations(sorted(ev.items), 2):
        ga, gb = ev.items[a]["grade"], ev.items[b]["grade"]
        keep = ga.notna() & gb.notna()
        if keep.any():
            xa = (ga[keep] == "incorrect").to_numpy(dtype=float)
            xb = (gb[keep] == "incorrect").to_numpy(dtype=float)
            rows.append(_paired_binary("hallucination", "incorrect-answer rate difference, McNemar exact "
                                       "(paired by item)", "pp (a − b)", a, b, xa, xb))
    df = pd.DataFrame(rows)
    if df.empty:
        return df
    df["p_holm"] = stats.holm(df["p"].astype(float).tolist())
    df["significant"] = df["p_holm"] < alpha
    return df
