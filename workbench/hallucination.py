"""Aggregate per-item grades into the hallucination numbers the decision matrix shows.

The rates follow SimpleQA: a model that answers less but is right when it answers is not
penalised like one that makes things up, so we report the hallucination rate (incorrect / all)
beside the abstention rate and the accuracy on attempted items, and combine them in SimpleQA's
F-score. Every rate carries a 95% Wilson interval, because spot-check sets are small (tens to a
few hundred items) and a bare percentage would overstate what we know.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence

from workbench.grading import GRADES, normalize

__all__ = ["consistency_rate", "summarize_grades"]

_Z95 = 1.959963984540054  # two-sided 95% normal quantile


def _wilson(k: int, n: int) -> tuple[float, float]:
    """95% Wilson score interval for k successes in n trials; (0, 1) when there is no data.

    Kept private on purpose: `workbench.stats.wilson_interval` will replace it.
    """
    if n <= 0:
        return (0.0, 1.0)
    if not 0 <= k <= n:
        raise ValueError(f"need 0 <= k <= n, got k={k}, n={n}")
    p = k / n
    z2 = _Z95 * _Z95
    denom = 1 + z2 / n
    centre = (p + z2 / (2 * n)) / denom
    half = _Z95 * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n)) / denom
    return (max(0.0, centre - half), min(1.0, centre + half))


def _rate(k: int, n: int) -> float:
    return k / n if n else math.nan


def summarize_grades(grades: Sequence[str]) -> dict[str, float | int]:
    """Counts, rates and 95% Wilson intervals for a list of grades (one per item).

    Keys: n, correct, incorrect, not_attempted; then for each rate R in accuracy (correct/all),
    hallucination_rate (incorrect/all), abstention_rate (not_attempted/all) and
    accuracy_given_attempted (correct/(correct+incorrect)): R, R_low, R_high; and f_score, the
    harmonic mean of accuracy and accuracy_given_attempted (0 when either is 0, NaN when n = 0).
    A rate with an empty denominator is NaN with the uninformative interval (0, 1). The keys are
    flat so a list of summaries becomes a DataFrame directly.
    """
    counts = Counter(grades)
    unknown = set(counts) - set(GRADES)
    if unknown:
        raise ValueError(f"unknown grade(s) {sorted(unknown)}; valid: {', '.join(GRADES)}")
    n = len(grades)
    correct, incorrect, not_attempted = (counts[g] for g in GRADES)
    attempted = correct + incorrect
    out: dict[str, float | int] = {
        "n": n,
        "correct": correct,
        "incorrect": incorrect,
        "not_attempted": not_attempted,
    }
    for name, k, m in (
        ("accuracy", correct, n),
        ("hallucination_rate", incorrect, n),
        ("abstention_rate", not_attempted, n),
        ("accuracy_given_attempted", correct, attempted),
    ):
        low, high = _wilson(k, m)
        out[name] = _rate(k, m)
        out[f"{name}_low"] = low
        out[f"{name}_high"] = high
    acc, aga = out["accuracy"], out["accuracy_given_attempted"]
    if n == 0:
        out["f_score"] = math.nan
    elif correct == 0:
        out["f_score"] = 0.0
    else:
        out["f_score"] = 2 * acc * aga / (acc + aga)
    return out


def consistency_rate(samples_per_item: Sequence[Sequence[str]]) -> float:
    """Share of items whose K sampled answers all agree after `normalize` (self-consistency).

    A model that gives different answers to the same question when sampled is likely guessing;
    low consistency flags hallucination risk without needing a reference answer. Every item
    needs at least two samples (one sample always "agrees" and would inflate the rate); an empty
    input gives NaN.
    """
    if not samples_per_item:
        return math.nan
    agree = 0
    for i, samples in enumerate(samples_per_item):
        if isinstance(samples, str) or len(samples) < 2:
            raise ValueError(f"item {i}: need a sequence of at least 2 sampled answers")
        if len({normalize(s) for s in samples}) == 1:
            agree += 1
    return agree / len(samples_per_item)
