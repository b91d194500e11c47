"""Aggregate per-item grades into the hallucination numbers the decision matrix shows.

Answerable and unanswerable items are reported apart (`split_summary`), because a right refusal
on an unanswerable item is not the same thing as a right answer:
- **answerable** items, as SimpleQA: correct / incorrect / not attempted, accuracy (correct /
  all), accuracy given attempted (correct / (correct + incorrect)) and the F-score, their
  harmonic mean — 0 for a model that never answers, and 0 for one that is always wrong;
- **unanswerable** items (false premises, answers not in the passage): the false-premise
  acceptance rate — answered as if the premise were true.
The **hallucination score** combines them in one formula that a contender that always says "I
don't know" cannot win: `F × (1 − ½ × acceptance)` (`hallucination_score`). A refuser scores 0
(F = 0); a model right on every answerable item but credulous on every false premise scores ½;
one that also rejects every false premise scores 1. Without unanswerable items the score is F.

Every rate carries a 95% Wilson interval, because spot-check sets are small (tens to a few
hundred items) and a bare percentage would overstate what we know.

Contenders are compared on the *same* items (paired): McNemar's exact test on correct vs not,
Newcombe's paired interval for the difference in hallucination rate, Holm across pairs. The
input of the table functions is the records DataFrame of the hallucination experiment
(`workbench.load_records(run, "hallucination")`), one row per request.
"""

from __future__ import annotations

import itertools
import math
from collections import Counter
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from workbench.analysis import stats
from workbench.analysis.grading import GRADES, normalize

if TYPE_CHECKING:
    import pandas as pd


__all__ = [
    "GRADED",
    "RATES",
    "consistency_rate",
    "consistency_table",
    "f_score",
    "format_summary",
    "graded_rows",
    "hallucination_score",
    "judge_agreement",
    "judge_agreement_table",
    "paired_comparison",
    "split_summary",
    "summarize_grades",
    "summary_table",
    "worst_hallucinations",
]

#: The rates of `summarize_grades`, in the order tables show them.
RATES: tuple[str, ...] = ("hallucination_rate", "abstention_rate", "accuracy_given_attempted", "accuracy")
GRADED = "grade"


def _rate(k: int, n: int) -> tuple[float, float, float]:
    """k/n with its 95% Wilson interval; an empty denominator gives NaN and the uninformative
    (0, 1) interval, so a table never shows a blank where "we know nothing" is the truth."""
    if n == 0:
        return (math.nan, 0.0, 1.0)
    est = stats.wilson_interval(k, n)
    return (est.value, est.low, est.high)


def _f_score(correct: int, incorrect: int, n: int) -> float:
    """SimpleQA's F-score: harmonic mean of accuracy and accuracy given attempted."""
    if n == 0:
        return math.nan
    if correct == 0:
        return 0.0
    acc, aga = correct / n, correct / (correct + incorrect)
    return 2 * acc * aga / (acc + aga)


def f_score(correct: Any, incorrect: Any, n: Any) -> Any:
    """SimpleQA's F-score of arrays of counts (answerable items): harmonic mean of correct / n and
    correct / (correct + incorrect); 0 when nothing is correct, NaN when n = 0."""
    c, i, m = (np.asarray(x, dtype=float) for x in (correct, incorrect, n))
    with np.errstate(all="ignore"):
        acc = c / m
        aga = c / (c + i)
        f = 2 * acc * aga / (acc + aga)
    return np.where(m > 0, np.where(c > 0, f, 0.0), np.nan)


def hallucination_score(f: Any, acceptance: Any) -> Any:
    """F × (1 − ½ × false-premise acceptance), in [0, 1]; acceptance NaN (no unanswerable
    items measured) leaves F alone."""
    a = np.nan_to_num(np.asarray(acceptance, dtype=float), nan=0.0)
    return np.asarray(f, dtype=float) * (1.0 - 0.5 * a)


def summarize_grades(grades: Sequence[str]) -> dict[str, float | int]:
    """Counts, rates and 95% Wilson intervals for a list of grades (one per item).

    Keys: n, correct, incorrect, not_attempted; then for each rate R in accuracy (correct/all),
    hallucination_rate (incorrect/all), abstention_rate (not_attempted/all) and
    accuracy_given_attempted (correct/(correct+incorrect)): R, R_low, R_high; and f_score, the
    harmonic mean of accuracy and accuracy_given_attempted (0 when either is 0, NaN when n = 0).
    A rate with an empty denominator is NaN with the uninformative interval (0, 1). The keys are
    flat so a list of summaries becomes a DataFrame directly. Intervals are
    `workbench.analysis.stats.wilson_interval`, the one Wilson implementation of the workbench.
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
        value, low, high = _rate(k, m)
        out[name] = value
        out[f"{name}_low"] = low
        out[f"{name}_high"] = high
    out["f_score"] = _f_score(correct, incorrect, n)
    return out


# --------------------------------------------------------------------------------------------
# Tables over records (one row per request; see workbench/experiments/hallucination.py)

_CODE = {"correct": 0.0, "incorrect": 1.0, "not_attempted": 2.0}


def _f_score_of_codes(codes: Any) -> float:
    arr = np.asarray(codes)
    return _f_score(int(np.sum(arr == 0.0)), int(np.sum(arr == 1.0)), int(arr.size))


def graded_rows(df: pd.DataFrame, sample_index: int | None = 0) -> pd.DataFrame:
    """The rows that count for the headline numbers: successful requests with a grade.

    `sample_index=0` keeps one answer per (contender, item) -- the greedy one -- so every item
    weighs once and the Wilson intervals' independence assumption holds; None keeps every
    sample. A failed request has no grade: it is left out (and reported as an error elsewhere),
    never counted as a hallucination."""
    if df.empty or GRADED not in df:
        return df.iloc[0:0]
    keep = (df["status"] == "ok") & df[GRADED].notna()
    if sample_index is not None and "sample_index" in df:
        keep &= df["sample_index"] == sample_index
    return df[keep]


def summary_table(
    df: pd.DataFrame, by: Sequence[str] = ("contender",), *, grade_col: str = GRADED,
    f_score_ci: bool = True, n_boot: int = 2000, seed: int = 0,
) -> pd.DataFrame:
    """One row per group (default: per contender) with `summarize_grades` plus intervals for the
    F-score (percentile bootstrap over items: it is a ratio of rates, no closed-form interval)
    and the mean token F1 of answerable items (bootstrap). `grade_col="judge_grade"` summarises
    the model-graded verdicts instead; rows without that grade are dropped."""
    import pandas as pd

    data = graded_rows(df)
    if grade_col != GRADED:
        data = data[data[grade_col].notna()] if grade_col in data else data.iloc[0:0]
    rows: list[dict[str, Any]] = []
    for key, g in data.groupby(list(by), sort=True):
        keys = key if isinstance(key, tuple) else (key,)
        row: dict[str, Any] = dict(zip(by, keys, strict=True))
        grades = [str(x) for x in g[grade_col]]
        row.update(summarize_grades(grades))
        if f_score_ci:
            est = stats.bootstrap_ci([_CODE[x] for x in grades], _f_score_of_codes, n_boot=n_boot, seed=seed)
            row["f_score_low"], row["f_score_high"] = est.low, est.high
        if "f1" in g and "answerable" in g:
            f1 = g.loc[g["answerable"].astype(bool), "f1"].dropna().to_numpy(dtype=float)
            est = stats.mean_ci(f1, n_boot=n_boot, seed=seed)
            row["token_f1"], row["token_f1_low"], row["token_f1_high"] = est.value, est.low, est.high
            row["token_f1_n"] = est.n
        rows.append(row)
    if not rows:  # nothing graded (every request failed, say): the table's columns, no rows — not a crash
        return pd.DataFrame(columns=[*by, *summarize_grades([])])
    return pd.DataFrame(rows)


def split_summary(df: pd.DataFrame, n_boot: int = 2000, seed: int = 0) -> pd.DataFrame:
    """One row per contender: answerable items (SimpleQA counts, accuracy, accuracy given
    attempted, F with a bootstrap interval over items), unanswerable items (false-premise
    acceptance, Wilson) and the hallucination score (bootstrap over items, stratified)."""
    import pandas as pd

    from workbench.analysis.evidence import outcomes

    data = graded_rows(df)
    # the items whose request failed are not graded here (the decision counts them as wrong):
    # their number is shown beside n, so the n of this table never shrinks silently
    sent0 = df[df["sample_index"].fillna(0) == 0] if "sample_index" in df else df
    failed_n = sent0[outcomes(sent0) == "failed"].groupby("contender").size() if len(sent0) else pd.Series(dtype=int)
    rows: list[dict[str, Any]] = []
    rng = np.random.default_rng(seed)
    for contender, g in data.groupby("contender", sort=True):
        ans = g[g["answerable"].astype(bool)] if "answerable" in g else g
        una = g[~g["answerable"].astype(bool)] if "answerable" in g else g.iloc[0:0]
        ga, gu = ans[GRADED].astype(str).to_numpy(), una[GRADED].astype(str).to_numpy()
        c, i, na = (int(np.sum(ga == x)) for x in GRADES)
        row: dict[str, Any] = {"contender": contender, "answerable_n": len(ga), "correct": c, "incorrect": i,
                               "not_attempted": na, "unanswerable_n": len(gu),
                               "failed_n": int(failed_n.get(contender, 0))}
        for name, k, m in (("accuracy", c, len(ga)), ("accuracy_given_attempted", c, c + i),
                           ("abstention_rate", na, len(ga)),
                           ("false_premise_acceptance", int(np.sum(gu == "incorrect")), len(gu))):
            row[name], row[f"{name}_low"], row[f"{name}_high"] = _rate(k, m)
        # F and the score have no closed-form interval: bootstrap items within each stratum.
        ia = rng.integers(0, max(1, len(ga)), size=(n_boot, len(ga)))
        iu = rng.integers(0, max(1, len(gu)), size=(n_boot, len(gu)))
        bc = (ga[ia] == "correct").sum(axis=1) if len(ga) else np.zeros(n_boot)
        bi = (ga[ia] == "incorrect").sum(axis=1) if len(ga) else np.zeros(n_boot)
        bu = (gu[iu] == "incorrect").mean(axis=1) if len(gu) else np.full(n_boot, np.nan)
        fb = f_score(bc, bi, np.full(n_boot, len(ga)))
        sb = hallucination_score(fb, bu)
        f = float(f_score(c, i, len(ga)))
        score = float(hallucination_score(f, row["false_premise_acceptance"]))
        for name, value, boot in (("f_score", f, fb), ("hallucination_score", score, sb)):
            lo, hi = (np.percentile(boot[np.isfinite(boot)], [2.5, 97.5]) if np.isfinite(boot).any()
                      else (math.nan, math.nan))
            row[name], row[f"{name}_low"], row[f"{name}_high"] = value, float(lo), float(hi)
        rows.append(row)
    return pd.DataFrame(rows)


def format_summary(summary: pd.DataFrame, digits: int = 3) -> pd.DataFrame:
    """The summary as text cells `value [low, high]` plus n: what a reader should see."""
    import pandas as pd

    def cell(v: float, lo: float, hi: float) -> str:
        if v != v:
            return "n/a"
        if lo != lo:
            return f"{v:.{digits}f}"
        return f"{v:.{digits}f} [{lo:.{digits}f}, {hi:.{digits}f}]"

    keys = [c for c in summary.columns if c in ("contender", "category")]
    counts = [c for c in ("n", "answerable_n", "unanswerable_n", "failed_n") if c in summary]
    out = summary[[*keys, *counts]].copy()
    for name in (*RATES, "f_score", "token_f1", "false_premise_acceptance", "hallucination_score"):
        if name in summary and f"{name}_low" in summary:
            out[name] = [cell(v, lo, hi) for v, lo, hi in
                         zip(summary[name], summary[f"{name}_low"], summary[f"{name}_high"], strict=True)]
    if "correct" in summary:
        out["attempted"] = summary["correct"] + summary["incorrect"]
    return pd.DataFrame(out)


def paired_comparison(df: pd.DataFrame, *, grade_col: str = GRADED) -> pd.DataFrame:
    """Every pair of contenders on the items both answered (with a grade).

    Per pair (a, b): n_items; the McNemar exact p-value on correct vs not correct (b_only =
    items only a got right, c_only = only b); the paired difference in hallucination rate
    a - b with Newcombe's paired interval (`stats.paired_proportion_diff`); and Holm-adjusted
    p-values across all pairs (equal to the raw p-value when there is one pair). Pairing on the
    same items removes item difficulty from the noise, so it detects smaller differences than
    two independent intervals that happen not to overlap."""
    import pandas as pd

    data = graded_rows(df)
    data = data[data[grade_col].notna()] if grade_col in data else data.iloc[0:0]
    wide = data.pivot_table(index="item_id", columns="contender", values=grade_col, aggfunc="first")
    rows: list[dict[str, Any]] = []
    for a, b in itertools.combinations(sorted(wide.columns), 2):
        both = wide[[a, b]].dropna()
        ga, gb = both[a].astype(str), both[b].astype(str)
        ca, cb = (ga == "correct").to_numpy(), (gb == "correct").to_numpy()
        ha, hb = (ga == "incorrect").to_numpy(), (gb == "incorrect").to_numpy()
        only_a, only_b = int(np.sum(ca & ~cb)), int(np.sum(~ca & cb))
        diff = stats.paired_proportion_diff(ha, hb)
        rows.append({
            "a": a, "b": b, "n_items": len(both),
            "correct_a": int(ca.sum()), "correct_b": int(cb.sum()),
            "only_a_correct": only_a, "only_b_correct": only_b,
            "mcnemar_p": stats.mcnemar_exact(only_a, only_b),
            "halluc_a": float(ha.mean()) if len(both) else math.nan,
            "halluc_b": float(hb.mean()) if len(both) else math.nan,
            "halluc_diff": diff.value, "halluc_diff_low": diff.low, "halluc_diff_high": diff.high,
            "halluc_mcnemar_p": stats.mcnemar_exact(int(np.sum(ha & ~hb)), int(np.sum(~ha & hb))),
        })
    out = pd.DataFrame(rows)
    if not out.empty:
        out["mcnemar_p_holm"] = stats.holm(out["mcnemar_p"].tolist())
        out["halluc_mcnemar_p_holm"] = stats.holm(out["halluc_mcnemar_p"].tolist())
    return out


def judge_agreement_table(df: pd.DataFrame) -> pd.DataFrame:
    """Per contender: how often the judge agrees with the rule grader (Wilson), over all judged
    answers and over those the rules marked doubtful (`grade_doubt`), with the judge's verdicts
    on the doubtful ones. A judge agrees more with some contenders' phrasing than others', so one
    pooled rate would hide where its second opinion is worth least."""
    import pandas as pd

    if "judge_grade" not in df:
        return pd.DataFrame()
    judged = graded_rows(df).dropna(subset=["judge_grade"])
    doubtful = judged["grade_doubt"].notna() if "grade_doubt" in judged else pd.Series(False, index=judged.index)
    rows: list[dict[str, Any]] = []
    for contender, g in judged.groupby("contender", sort=True):
        same = g["judge_grade"] == g[GRADED]
        d = doubtful.loc[g.index]
        row: dict[str, Any] = {"contender": contender}
        for prefix, mask in (("agree", slice(None)), ("doubtful_agree", d)):
            row[f"{prefix}_n"] = int(same[mask].size)
            row[prefix], row[f"{prefix}_low"], row[f"{prefix}_high"] = _rate(int(same[mask].sum()), row[f"{prefix}_n"])
        row.update({f"doubtful_judge_{k}": int((g.loc[d, "judge_grade"] == k).sum()) for k in GRADES})
        rows.append(row)
    return pd.DataFrame(rows)


def judge_agreement(df: pd.DataFrame) -> str:
    """The judge's verdicts summarised, and how often it agrees with the rule grader (Wilson),
    overall and per contender (`judge_agreement_table`)."""
    if "judge_grade" not in df:
        return "no model-graded verdicts in these records"
    judged = graded_rows(df).dropna(subset=["judge_grade"])
    agree = stats.wilson_interval(int((judged["judge_grade"] == judged[GRADED]).sum()), len(judged))
    table = format_summary(summary_table(df, grade_col="judge_grade", f_score_ci=False))
    per = judge_agreement_table(df)
    return (f"{table.to_string(index=False)}\njudge agrees with the rule grader: {agree}\n"
            f"per contender (doubtful = the rules could not settle the grade):\n{per.to_string(index=False)}")


def consistency_table(df: pd.DataFrame) -> pd.DataFrame:
    """Per contender: the share of items whose sampled answers (sample_index >= 1, drawn at
    temperature > 0) all agree after normalisation, with its Wilson interval and n items.

    Empty when no item has two or more successful samples (k_samples = 1)."""
    import pandas as pd

    if df.empty or "sample_index" not in df:
        return pd.DataFrame()
    s = df[(df["status"] == "ok") & (df["sample_index"] >= 1)]
    rows: list[dict[str, Any]] = []
    for contender, g in s.groupby("contender", sort=True):
        per_item = [list(x.fillna("").astype(str)) for _, x in g.groupby("item_id")["response"]]
        per_item = [x for x in per_item if len(x) >= 2]
        if not per_item:
            continue
        rate = consistency_rate(per_item)
        n = len(per_item)
        est = stats.wilson_interval(round(rate * n), n)
        rows.append({"contender": contender, "n_items": n, "samples_per_item": max(map(len, per_item)),
                     "consistency_rate": est.value, "consistency_rate_low": est.low,
                     "consistency_rate_high": est.high})
    return pd.DataFrame(rows)


def worst_hallucinations(df: pd.DataFrame, limit: int = 20) -> pd.DataFrame:
    """Confidently wrong answers for a human to read, verbatim: incorrect grades, answers to
    unanswerable questions (made-up facts about things that do not exist) first, then the
    rest by category and item."""
    cols = ["contender", "item_id", "category", "answerable", "question", "response"]
    data = graded_rows(df)
    bad = data[data[GRADED] == "incorrect"]
    if bad.empty:
        return bad.reindex(columns=cols)
    bad = bad.sort_values(["answerable", "category", "item_id", "contender"], kind="stable")
    return bad[cols].head(limit).reset_index(drop=True)


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
