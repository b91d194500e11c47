"""Scenario scoring and the decision matrix: constraints with three outcomes, one joint resampling,
the probability of being best.

For each scenario (`experiments/scenarios.yaml`):
1. **Metrics** per contender, on every row of one joint resampling of the raw units
   (`workbench.analysis.evidence.Draws`; the scenario kind says which metrics,
   `workbench.analysis.axes` how each is computed).
2. **Hard constraints**, judged one-sided at 95% (`Constraint.status`): `pass` when the bound on
   the limit's side meets it, `fail` when the opposite bound misses it, `inconclusive` otherwise —
   with an estimate of the sample size that would decide it (none past the pool of units), and
   per constraint its P(pass) at this run size if the measured value were the truth
   (`constraint_power`). A contender is
   `eligible` when every constraint passes; an inconclusive one is listed with its score but not
   ranked. **Missing is unmeasured, never 0**: a constraint's metric, or a weighted axis's
   metric that another contender has, that a contender lacks makes it `inconclusive` ("not
   measured: …", with the reason the metric carries), never `fail` and never a 0 utility.
3. **Score** = Σ weight × axis utility, every utility on a bounded absolute scale in [0, 1]
   (the scenario kind owns the formulas). An axis no contender measured is dropped and the
   weights renormalised (said in the report); a contender missing an axis others have has no
   score (NaN): it cannot be ranked, and it keeps the pick from being decisive.
4. **From scores to a decision**, over the B joint replicates: `p_best` = the share of replicates
   in which a contender has the top score among the eligible ones; its rank in each replicate,
   summarised as the median rank and the 95% rank interval [rank_low, rank_high]; and
   P(pick beats X) for every other contender. The pick is the eligible contender with the
   highest `p_best`; it is **decisive** when it beats every rival that is not ruled out
   (eligible or inconclusive) in ≥ `decisive_p` (0.975) of the replicates — per rival, so two
   identical contenders come out decisive in ≤ 5% of runs (tests/analysis/test_decision.py
   simulates 400 pairs). Otherwise the report names the contenders the data cannot separate
   from it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeGuard

import numpy as np
import pandas as pd
from scipy import stats as sps

from workbench.analysis import stats
from workbench.analysis.catalog import describe, format_value
from workbench.analysis.evidence import Draws, Evidence, Metric
from workbench.analysis.quantiles import n_to_resolve, order_stat_ranks
from workbench.analysis.scenarios import AXES, Constraint, Scenario
from workbench.images import needs_status

if TYPE_CHECKING:
    from workbench.config import Contender

__all__ = ["DECISIVE_P", "ScenarioResult", "decide"]

#: The share of replicates in which the pick must beat each rival to be called decisive (one-sided
#: 97.5% per rival: with two identical contenders either can be the pick, so ~5% in all).
DECISIVE_P = 0.975

def _measured(m: Metric | None) -> TypeGuard[Metric]:
    """A metric with a value (an unmeasured one is absent, or NaN with its reason as source)."""
    return m is not None and not math.isnan(m.value)


def _unmeasured_text(m: Metric | None) -> str:
    """`not measured (why)`: the reason a NaN metric carries in its source, when it has one."""
    why = m.source if m is not None and m.source else ""
    return f"not measured ({why})" if why else "not measured"


@dataclass
class ScenarioResult:
    """The matrix rows of one scenario plus what the text needs."""

    name: str
    scenario: Scenario
    table: pd.DataFrame
    metrics: dict[str, dict[str, Metric]]
    dropped_axes: list[str] = field(default_factory=list)
    assumptions: list[str] = field(default_factory=list)
    pick: str | None = None
    decisive: bool = False
    verdict: str = ""
    tied_with: list[str] = field(default_factory=list)
    decided_by: str = ""  # the one number that decided it, in words
    certainty: str = ""  # how sure, in words (`_certainty`; the report's card says the same)

    def metric(self, label: str, name: str) -> Metric | None:
        return self.metrics.get(label, {}).get(name)


#: The unit family each proportion-type metric is counted on, for the pool its n is capped at.
_FAMILY = {"route_accuracy": "prompts", "annotation_accuracy": "documents", "qa_accuracy": "items",
           "qa_f_score": "items", "qa_net_score": "items", "hallucination_score": "items",
           "false_premise_acceptance": "items", "hallucination_rate": "items"}


def _pool(ev: Evidence, name: str) -> tuple[int, str] | None:
    """(size, what) of the finite pool a metric's units come from, when more requests cannot add
    units: the items, the documents (duplicate groups), or the prompts once requests reuse them."""
    family = _FAMILY.get(name)
    if family == "items" and ev.item_units:
        return len(ev.item_units), "items"
    if family == "documents" and ev.doc_units:
        return len(set(ev.doc_groups or ev.doc_units)), "distinct documents"
    if family == "prompts" and ev.prompt_groups and len(set(ev.prompt_groups)) < len(ev.prompt_units):
        return len(set(ev.prompt_groups)), "distinct prompts"
    return None


def _resolve_n(ev: Evidence, label: str, name: str, m: Metric, c: Constraint) -> int | None:
    """Estimated sample size at which the constraint's verdict would no longer be inconclusive;
    None when no run could reach it: the pool of units (items, distinct documents, distinct
    prompts) is smaller than that n — repeating a unit adds no information (`_pool`)."""
    limit = c.max if c.max is not None else c.min
    assert limit is not None
    if name.startswith(("e2e_p", "ttft_p")) and label in ev.prompts:
        field_name = "e2e_s" if name.startswith("e2e") else "ttft_s"
        return n_to_resolve(ev.prompts[label][field_name].to_numpy(dtype=float), float(name.rsplit("_p", 1)[1]),
                            limit)
    gap = abs(m.value - limit)
    if m.method == "Wilson" and m.n and gap > 0:
        n: int | None = _wilson_n(m.value, limit, upper=c.max is not None, start=m.n + 1)
        if n is None:
            return None
    else:
        half = (m.high - m.low) / 2 if math.isfinite(m.high) and math.isfinite(m.low) else math.nan
        if not (m.n and math.isfinite(half) and gap > 0):
            return None
        n = max(m.n + 1, math.ceil(m.n * (half / gap) ** 2))  # interval half-width shrinks as 1/√n
    pool = _pool(ev, name)
    return None if pool is not None and n > pool[0] else n


def _wilson_n(p: float, limit: float, *, upper: bool, start: int, most: int = 10_000_000) -> int | None:
    """The smallest n at which a proportion measured at p has its one-sided 95% Wilson bound on the
    limit's decided side (the bound depends on n non-monotonically only through rounding k = p·n:
    p is held fixed). None beyond `most`."""
    def decided(n: int) -> bool:
        est = stats.wilson_interval(round(p * n), n, ci=0.90)  # its ends: the one-sided 95% bounds
        return (est.high <= limit or est.low > limit) if upper else (est.low >= limit or est.high < limit)

    hi = max(start, 1)
    while not decided(hi):
        hi *= 2
        if hi > most:
            return None
    lo = max(start, 1)
    while lo < hi:  # the bounds tighten as n grows: bisect for the first decided n
        mid = (lo + hi) // 2
        if decided(mid):
            hi = mid
        else:
            lo = mid + 1
    return lo


def _pass_power(ev: Evidence, label: str, name: str, m: Metric | None, c: Constraint) -> float:
    """P(the constraint passes) at this run's sample size if the truth were the measured value:
    how often a run of this size could show a pass at all (NaN: not measured). Percentiles: K ~
    Binomial(n, measured share within the limit) must reach the one-sided order-statistic rank;
    proportions: k ~ Binomial(n, measured share) must put the one-sided Wilson bound past the
    limit; a derived number: normal, with the replicates' spread as its standard error."""
    if m is None or math.isnan(m.value):
        return math.nan
    limit = c.max if c.max is not None else c.min
    assert limit is not None
    upper = c.max is not None
    if m.reps is None and math.isnan(m.low) and math.isnan(m.high):
        return float(c.passes(m.value))
    if name.startswith(("e2e_p", "ttft_p")) and label in ev.prompts:
        values = ev.prompts[label]["e2e_s" if name.startswith("e2e") else "ttft_s"].to_numpy(dtype=float)
        values = values[~np.isnan(values)]
        q, n = float(name.rsplit("_p", 1)[1]), len(values)
        if not n:
            return math.nan
        share = float(np.mean(values <= limit))
        lo, hi = order_stat_ranks(n, q, 0.90)  # one-sided 95%: X_(hi) <= limit <=> K >= hi
        if upper:
            return float(sps.binom.sf(hi - 1, n, share)) if hi <= n else 0.0
        return float(sps.binom.cdf(lo - 1, n, share)) if lo >= 1 else 0.0  # X_(lo) >= limit <=> K <= lo - 1
    if m.method == "Wilson" and m.n:
        k = np.arange(m.n + 1)
        bounds = np.array([stats.wilson_interval(int(x), m.n, ci=0.90).high if upper
                           else stats.wilson_interval(int(x), m.n, ci=0.90).low for x in k])
        ok = bounds <= limit if upper else bounds >= limit
        return float(sps.binom.pmf(k, m.n, m.value)[ok].sum())
    if m.reps is None:
        return float(c.passes(m.value))
    reps = m.reps[np.isfinite(m.reps)]
    se = float(np.std(reps)) if len(reps) > 1 else math.nan
    if not se > 0:
        return float(c.passes(m.value))
    z = (limit - m.value) / se if upper else (m.value - limit) / se
    return float(sps.norm.cdf(z - sps.norm.ppf(0.95)))


def _powers(ev: Evidence, label: str, m: Mapping[str, Metric], sc: Scenario) -> str | None:
    """One entry per hard constraint: its P(pass) at the measured value with this n, and, where
    it did not pass and that is low though the measured value meets the limit, that this run size
    cannot decide it (or that the pool is too small for any run size to)."""
    parts = []
    for c in sc.hard_constraints:
        mm = m.get(c.metric)
        p = _pass_power(ev, label, c.metric, mm, c)
        if math.isnan(p):
            parts.append(f"{c.text}: not measured")
            continue
        text = f"{c.text}: P(pass) {p:.0%}" + (f" at n={mm.n:,}" if mm is not None and mm.n else "")
        if p < 0.8 and mm is not None and c.passes(mm.value) and c.status(mm) != "pass":
            pool = _pool(ev, c.metric)
            if pool is not None and (_resolve_n(ev, label, c.metric, mm, c) is None):
                text += f" — the dataset has only {pool[0]:,} {pool[1]}: more requests cannot decide it"
            else:
                text += " — this run size cannot reliably decide it: run more requests"
        parts.append(text)
    return "; ".join(parts) or None


def _constraints(ev: Evidence, label: str, m: Mapping[str, Metric], sc: Scenario, scored: Sequence[str] = (),
                 ) -> tuple[str, str | None, int | None]:
    """(status, text of the constraints that did not pass, n that would resolve the first
    inconclusive one). `scored`: the weighted axis metrics the scenario scores with; one this
    contender lacks makes it inconclusive ("not measured"), as an unmeasured constraint does. The
    scenario's input modalities (`Scenario.needs`) are judged on the contender's integration facts."""
    notes, statuses, resolve = [], [], None
    if sc.needs:
        status, why = needs_status(sc.needs, ev.facts.get(label, {}))
        statuses.append(status)
        if status != "pass":
            notes.append(f"needs {', '.join(sc.needs)}: {why} — {status}")
    for c in sc.hard_constraints:
        mm = m.get(c.metric)
        status = c.status(mm)
        statuses.append(status)
        if status == "pass":
            continue
        # the bounds the verdict read: one-sided 95% each (together a 90% interval), said so
        shown = (format_value(c.metric, mm.value, mm.one_sided("lower"), mm.one_sided("upper"), mm.n)
                 + (" (one-sided 95% bounds)" if mm.low1 is not None or mm.high1 is not None else "")
                 if _measured(mm) else _unmeasured_text(mm))
        note = f"{c.text}: {shown} — {status}"
        if status == "inconclusive" and _measured(mm):
            n = _resolve_n(ev, label, c.metric, mm, c)
            note += f" (about n={n:,} would decide it)" if n else ""
            resolve = resolve or n
        notes.append(note)
    constrained = {c.metric for c in sc.hard_constraints}
    for name in scored:
        if name not in constrained and not _measured(m.get(name)):
            statuses.append("inconclusive")
            notes.append(f"{describe(name).label}: {_unmeasured_text(m.get(name))} — inconclusive")
    status = "fail" if "fail" in statuses else "inconclusive" if "inconclusive" in statuses else "pass"
    return status, "; ".join(notes) or None, resolve


def _axis_rows(sc: Scenario, metrics: Mapping[str, Mapping[str, Metric]], labels: list[str], axis: str,
               rows: int) -> np.ndarray:
    """(labels, rows) utilities of one axis; a contender without the metric has none (NaN, never
    0: unmeasured is not worst — `_constraints` makes it inconclusive)."""
    name = sc.axis_metric[axis]
    out = np.full((len(labels), rows), np.nan)
    for i, lab in enumerate(labels):
        mm = metrics[lab].get(name)
        if _measured(mm):
            values = mm.at() if mm.reps is not None else np.full(rows, mm.value)
            out[i] = sc.utility(axis, values)
    return out


def decide(ev: Evidence, name: str, sc: Scenario, contenders: Mapping[str, Contender], *, machine_hour_usd: float,
           n_boot: int = 1000, seed: int = 0, decisive_p: float = DECISIVE_P, draws: Draws | None = None,
           ) -> ScenarioResult:
    draws = draws or Draws(ev, n_boot, seed)
    labels = list(ev.labels)
    metrics = {lab: sc.metrics(ev, draws, lab, contenders.get(lab.split("@")[0]), machine_hour_usd=machine_hour_usd)
               for lab in labels}
    weights = sc.normalized_weights
    dropped = [a for a in AXES if weights[a] > 0 and not any(_measured(metrics[lab].get(sc.axis_metric[a]))
                                                              for lab in labels)]
    live = {a: w for a, w in weights.items() if w > 0 and a not in dropped}
    total = sum(live.values()) or 1.0
    live = {a: w / total for a, w in live.items()}
    assumptions = [f"self-hosted machine: ${machine_hour_usd:g}/hour (parameter)"]
    if sc.projection_basis():
        assumptions.append(f"workload: {sc.projection_basis()}")
    utilities = {a: _axis_rows(sc, metrics, labels, a, draws.rows) for a in AXES}
    scores = sum((w * utilities[a] for a, w in live.items()), np.zeros((len(labels), draws.rows)))
    reps = scores[:, 1:]

    scored = [sc.axis_metric[a] for a in live]
    checks = [_constraints(ev, lab, metrics[lab], sc, scored) for lab in labels]
    status = [c[0] for c in checks]
    ranked = [i for i, s in enumerate(status) if s == "pass"]
    p_best = np.full(len(labels), math.nan)
    rank_med = np.full(len(labels), math.nan)
    rank_lo = np.full(len(labels), math.nan)
    rank_hi = np.full(len(labels), math.nan)
    if ranked:
        r = reps[ranked]
        top = r.max(axis=0)
        winners = r == top
        p_best[ranked] = (winners / winners.sum(axis=0)).mean(axis=1)  # a tie splits the replicate
        ranks = 1 + (r[None, :, :] > r[:, None, :]).sum(axis=1)
        rank_med[ranked] = np.median(ranks, axis=1)
        rank_lo[ranked] = np.percentile(ranks, 2.5, axis=1, method="lower")
        rank_hi[ranked] = np.percentile(ranks, 97.5, axis=1, method="higher")
    pick_i = max(ranked, key=lambda i: (p_best[i], scores[i, 0])) if ranked else None
    pick = labels[pick_i] if pick_i is not None else None
    beats = np.full(len(labels), math.nan)
    if pick_i is not None:
        for j in range(len(labels)):
            if j != pick_i and math.isfinite(scores[j, 0]):  # an unscored (unmeasured) one: unknown, NaN
                beats[j] = float(np.mean(reps[pick_i] > reps[j]))
    # decisive per rival: the pick beats every contender not ruled out (eligible or inconclusive)
    # in ≥ decisive_p of the replicates — a one-sided 97.5% call per rival, so two identical
    # contenders come out decisive about 5% of the time (either could be the pick), not 10%
    contested = [labels[j] for j in range(len(labels)) if j != pick_i and status[j] != "fail"
                 and not beats[j] >= decisive_p]  # NaN (unmeasured) contests the pick too
    decisive = pick_i is not None and not contested
    low, high = np.percentile(reps, [2.5, 97.5], axis=1) if len(labels) else (np.array([]), np.array([]))

    rows = []
    for i, lab in enumerate(labels):
        row: dict[str, Any] = {
            "scenario": name, "contender": lab, "eligible": status[i] == "pass", "constraint_status": status[i],
            "failed_constraint": checks[i][1], "n_to_resolve": checks[i][2], "score": scores[i, 0],
            "score_low": low[i], "score_high": high[i], "p_best": p_best[i], "rank": rank_med[i],
            "rank_low": rank_lo[i], "rank_high": rank_hi[i], "p_pick_beats": beats[i],
            "constraint_power": _powers(ev, lab, metrics[lab], sc)}
        for axis in AXES:
            mm = metrics[lab].get(sc.axis_metric[axis])
            row[f"{axis}_metric"] = mm.value if mm is not None else math.nan
            row[f"{axis}_utility"] = utilities[axis][i, 0]
        cost = metrics[lab].get(sc.axis_metric["cost"])
        row["cost_source"] = cost.source if cost is not None else "not measured"  # list price or machine-hours
        row.update(sc.matrix_fields(metrics[lab]))
        lost = metrics[lab].get("units_lost_to_errors")
        row["units_lost_to_errors"] = lost.value if lost is not None else math.nan
        row["units_lost_detail"] = lost.source if lost is not None else ""
        rows.append(row)
    table = pd.DataFrame(rows)
    res = ScenarioResult(name, sc, table, metrics, dropped, assumptions, pick, decisive, tied_with=contested)
    res.certainty = _certainty(res, decisive_p)
    res.verdict = _verdict(res, decisive_p)
    table["gives_up"] = [_gives_up(res, lab, live) for lab in labels]
    res.decided_by = _decided_by(res, live)
    order = table["constraint_status"].map({"pass": 0, "inconclusive": 1, "fail": 2})
    res.table = table.assign(_o=order).sort_values(["_o", "p_best", "score"], ascending=[True, False, False]) \
        .drop(columns="_o").reset_index(drop=True)
    return res


def _rival(t: pd.DataFrame, x: str) -> str:
    """A contender the pick cannot be told apart from, with why: how often the pick beats it, or
    that it was not measured (no score to compare)."""
    beats = t.loc[x, "p_pick_beats"]
    if beats == beats:
        return f"{x} (the pick wins {beats:.0%} of replicates)"
    return f"{x} ({t.loc[x, 'failed_constraint'] or 'not measured'})"


def _certainty(res: ScenarioResult, decisive_p: float) -> str:
    """How sure the pick is, in words; "" without a pick. With one eligible contender p_best is
    1 by construction, so it is not quoted: the sentence says it is the only eligible one."""
    if res.pick is None:
        return ""
    t = res.table.set_index("contender")
    rivals = ", ".join(_rival(t, x) for x in res.tied_with)
    if int((t["constraint_status"] == "pass").sum()) == 1:
        if res.decisive or not rivals:
            others = "every other contender fails a hard constraint" if len(t) > 1 else "no other contender"
            return f"the only eligible contender ({others})"
        return f"the only eligible contender, but not decisive: {rivals} could still qualify"
    p = t.loc[res.pick, "p_best"]
    if res.decisive:
        return f"decisive: best in {p:.0%} of the joint replicates"
    return (f"leads (best in {p:.0%} of the joint replicates) but is not decisive: the data cannot separate it "
            f"from {rivals} (decisive needs ≥ {decisive_p:.1%})")


def _verdict(res: ScenarioResult, decisive_p: float) -> str:
    t = res.table.set_index("contender")
    if res.pick is None:
        if t.empty:
            return "No contender was measured."
        near = t[t["constraint_status"] != "fail"]
        pending = not near.empty
        if near.empty:
            near = t
        closest = near.sort_values("score", ascending=False, na_position="last").index[0]
        why = t.loc[closest, "failed_constraint"]
        if pending:  # inconclusive is not failed: nothing qualifies *yet*
            return (f"No contender qualifies yet: {len(near)} inconclusive, none failed outright. "
                    f"Nearest: {closest} ({why}).")
        return f"No contender qualifies. Nearest: {closest} ({why})."
    return f"{res.pick}, {res.certainty or _certainty(res, decisive_p)}."


def _shown(res: ScenarioResult, label: str, name: str) -> str:
    mm = res.metric(label, name)
    return format_value(name, mm.value, mm.low, mm.high) if mm is not None else "not measured"


def _widest_gap(t: pd.DataFrame, ahead: str, behind: str, live: Mapping[str, float]) -> str | None:
    """The axis on which `ahead` gains most weighted utility over `behind` (None: on none)."""
    gains = {a: w * (float(t.loc[ahead, f"{a}_utility"]) - float(t.loc[behind, f"{a}_utility"]))
             for a, w in live.items()}
    best = max(gains, key=lambda a: gains[a], default=None)
    return best if best is not None and gains[best] > 0 else None


def _decided_by(res: ScenarioResult, live: Mapping[str, float]) -> str:
    """The one number behind the answer: for a pick, the axis on which it gains most over the
    runner-up; with no pick, the constraint the nearest contender fails."""
    t = res.table.set_index("contender")
    if res.pick is None:
        near = t[t["constraint_status"] != "fail"] if (t["constraint_status"] != "fail").any() else t
        if near.empty:
            return "nothing was measured"
        first = str(near.sort_values("score", ascending=False, na_position="last").index[0])
        why = str(t.loc[first, "failed_constraint"] or "").split("; ")[0]
        return f"{first}: {why}"
    rest = t[(t.index != res.pick) & (t["constraint_status"] != "fail") & t["score"].notna()]
    if rest.empty:
        return "the only contender that meets every hard constraint"
    other = str(rest.sort_values("score", ascending=False).index[0])
    best = _widest_gap(t, res.pick, other, live)
    if best is None:
        return f"no axis separates it from {other}"
    name = res.scenario.axis_metric[best]
    return f"{describe(name).label}: {_shown(res, res.pick, name)} vs {_shown(res, other, name)} for {other}"


def _gives_up(res: ScenarioResult, lab: str, live: Mapping[str, float]) -> str:
    """One sentence from the numbers: where `lab` is weakest against the best alternative."""
    t = res.table.set_index("contender")
    unscored = [a for a in live if t.loc[lab, f"{a}_utility"] != t.loc[lab, f"{a}_utility"]]
    if unscored:  # nothing to weigh: say what is missing instead of inventing a gap
        return "unknown: " + ", ".join(f"{describe(res.scenario.axis_metric[a]).label} not measured"
                                       for a in unscored)
    other = res.pick if lab != res.pick else None
    if lab == res.pick:
        rest = t[(t.index != lab) & (t["constraint_status"] != "fail") & t["score"].notna()]
        other = str(rest.sort_values("score", ascending=False).index[0]) if len(rest) else None
    if other is None:
        return ("no contender meets every hard constraint" if res.pick is None
                else "nothing: it is the only contender that meets every hard constraint")
    worst = _widest_gap(t, other, lab, live)
    if worst is None:
        return f"nothing against {other}: at least as good on every weighted axis"
    name = res.scenario.axis_metric[worst]
    return f"{describe(name).label}: {_shown(res, lab, name)} vs {_shown(res, other, name)} for {other}"
