"""Scenario scoring and the decision matrix.

For each scenario (`experiments/scenarios.yaml`):
1. **Axis metrics** per contender, from `Evidence`, in the scenario's terms: latency = warm
   p95 E2E; cost = cost per 1k requests at the target rate (realtime), per document (batch) or
   per month (prototyping); hallucination = hallucination rate; accuracy = annotation accuracy
   vs gold (batch) or QA accuracy; integration = share of integration facts established.
2. **Hard constraints** first: a contender failing one (or with the metric unmeasured) is
   ineligible, shown with the failed constraint.
3. **Score** = Σ weight × axis value, each axis normalised to (0, 1] as a ratio to the best
   contender (lower-is-better: best / value; higher-is-better: value / best) — ratios keep
   the size of a difference, where min-max scaling would turn any gap between two contenders
   into 0 vs 1. An axis nobody measured is dropped and the weights renormalised (reported).
4. **Interval**: the same score over bootstrap replicates of every metric (2.5–97.5%).
5. **Rank**: 1 + the number of eligible contenders whose score interval lies wholly above
   this one's — overlapping intervals tie.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from workbench import pricing
from workbench.analysis import cost as costmod
from workbench.analysis.evidence import Evidence, Metric, concurrency_levels
from workbench.analysis.scenarios import AXES, BatchScenario, PrototypingScenario, RealtimeScenario, Scenario

__all__ = ["AXIS_METRIC", "LOWER_IS_BETTER", "ScenarioResult", "decide", "decision_matrix"]

LOWER_IS_BETTER = {"latency": True, "cost": True, "hallucination": True, "accuracy": False, "integration": False}
#: The metric behind each axis, per scenario kind (cost differs by workload shape).
AXIS_METRIC: dict[str, dict[str, str]] = {
    "realtime": {"latency": "p95_e2e_s", "cost": "cost_per_1k_requests_usd", "hallucination": "hallucination_rate",
                 "accuracy": "accuracy", "integration": "integration_score"},
    "batch": {"latency": "p95_e2e_s", "cost": "cost_per_document_usd", "hallucination": "hallucination_rate",
              "accuracy": "accuracy", "integration": "integration_score"},
    "prototyping": {"latency": "p95_e2e_s", "cost": "monthly_cost_usd", "hallucination": "hallucination_rate",
                    "accuracy": "accuracy", "integration": "integration_score"},
}
_UNITS = {"p95_e2e_s": (1000, " ms"), "cost_per_1k_requests_usd": (1, " USD"), "cost_per_document_usd": (1, " USD"),
          "monthly_cost_usd": (1, " USD"), "hallucination_rate": (100, "%"), "accuracy": (100, "%"),
          "integration_score": (100, "%")}


@dataclass
class ScenarioResult:
    """The matrix rows of one scenario plus what the text needs."""

    name: str
    scenario: Scenario
    table: pd.DataFrame
    metrics: dict[str, dict[str, Metric]]
    dropped_axes: list[str] = field(default_factory=list)
    assumptions: list[str] = field(default_factory=list)

    @property
    def pick(self) -> str | None:
        elig = self.table[self.table["eligible"]]
        if elig.empty:
            return None
        return str(elig.sort_values("score", ascending=False).iloc[0]["contender"])


def _price_for(label: str, ev: Evidence, contenders: dict[str, Any], machine_hour_usd: float,
               output_tps: float | None) -> tuple[pricing.Price | None, str]:
    c = contenders.get(label.split("@")[0])
    if c is None:
        return None, "contender not in the contenders file"
    if c.local is not None:
        if not output_tps:
            return None, "no measured throughput to price machine time"
        return pricing.price_from_throughput(machine_hour_usd, output_tps), "machine time"
    price = pricing.price_for(c)
    return (price, "list price") if price is not None else (None, "no price known")


def _scenario_metrics(ev: Evidence, sc: Scenario, contenders: dict[str, Any], machine_hour_usd: float,
                      assumptions: list[str]) -> dict[str, dict[str, Metric]]:
    out: dict[str, dict[str, Metric]] = {}
    levels = pd.DataFrame()
    if isinstance(sc, RealtimeScenario) and "concurrency" in ev.frames:
        levels = concurrency_levels(ev.frames["concurrency"], sc.slo_p95_e2e_s)
    for label in ev.contenders:
        m = dict(ev.metrics.get(label, {}))
        tps = (m.get("max_output_tps") or m.get("single_stream_output_tps") or Metric(math.nan)).value
        price, how = _price_for(label, ev, contenders, machine_hour_usd, tps if math.isfinite(tps) else None)
        tin, tout = m.get("input_tokens_per_request"), m.get("output_tokens_per_request")
        per_req = None
        if price is not None and price.per_token and tin is not None and tout is not None:
            per_req = pricing.request_cost(price, tin.value, tout.value)
        if isinstance(sc, RealtimeScenario):
            _realtime(label, m, sc, levels, contenders, machine_hour_usd, price, tin, tout, assumptions)
        elif isinstance(sc, BatchScenario):
            c = contenders.get(label.split("@")[0])
            _batch(label, m, sc, price, c is not None and c.local is not None, machine_hour_usd)
        elif isinstance(sc, PrototypingScenario) and per_req is not None:
            proj = costmod.project_prototyping(sc.monthly_requests, per_req)
            m["monthly_cost_usd"] = Metric(proj.monthly_cost_usd, source=f"{how}; {sc.monthly_requests} requests/month")
        if "accuracy" not in m and "qa_accuracy" in m and not isinstance(sc, BatchScenario):
            m["accuracy"] = m["qa_accuracy"]  # annotation accuracy must come from the annotation workload
        out[label] = m
    return out


def _realtime(label: str, m: dict[str, Metric], sc: RealtimeScenario, levels: pd.DataFrame, contenders: dict[str, Any],
              machine_hour_usd: float, price: pricing.Price | None, tin: Metric | None, tout: Metric | None,
              assumptions: list[str]) -> None:
    g = levels[levels["label"] == label] if not levels.empty else levels
    if g.empty:
        return
    meets = g[g["p95_e2e_s"] <= sc.slo_p95_e2e_s]
    goodput = float(meets["goodput_rps"].max()) if not meets.empty else 0.0
    m["goodput_rps"] = Metric(goodput, n=int(g["n"].sum()), source=f"best concurrency level with p95 ≤ SLO "
                              f"{sc.slo_p95_e2e_s * 1000:g} ms")
    c = contenders.get(label.split("@")[0])
    local = c is not None and c.local is not None
    if goodput <= 0:
        m["cost_per_1k_requests_usd"] = Metric(math.inf, source="no load level met the SLO")
        m["replicas"] = Metric(math.inf, source="no load level met the SLO")
        return
    token_cost = 0.0
    if not local and price is not None and price.per_token and tin is not None and tout is not None:
        token_cost = pricing.request_cost(price, tin.value, tout.value)
    elif not local:
        return
    proj = costmod.project_realtime(sc.target_qps, token_cost, goodput, machine_hour_usd if local else None)
    m["cost_per_1k_requests_usd"] = Metric(proj.cost_per_1k_requests_usd, source="; ".join(proj.assumptions))
    m["replicas"] = Metric(float(proj.replicas), source="; ".join(proj.assumptions))


def _batch(label: str, m: dict[str, Metric], sc: BatchScenario, price: pricing.Price | None, local: bool,
           machine_hour_usd: float) -> None:
    """Per strategy measured on the annotation workload: cost per document as the coalescing
    notebook priced it from this run (with its interval), else machine time for a self-hosted
    model (requests/doc × latency/request, one request at a time per server) or list-price tokens
    for a hosted one; the cheapest strategy whose accuracy meets the floor (else naive) then
    stands for the contender."""
    strategies = sorted({k[len("accuracy["):-1] for k in m if k.startswith("accuracy[")})
    if not strategies:
        return

    def per_doc(s: str) -> float | None:
        measured = m.get(f"cost_per_document_usd[{s}]")
        if measured is not None and math.isfinite(measured.value):
            return measured.value  # priced by the coalescing notebook from this run's throughput
        tin, tout = m.get(f"input_tokens_per_document[{s}]"), m.get(f"output_tokens_per_document[{s}]")
        lat, rpd = m.get(f"latency_per_request_s[{s}]"), m.get(f"requests_per_document[{s}]")
        if local:
            return None if lat is None or rpd is None else machine_hour_usd / 3600.0 * lat.value * rpd.value
        if price is None or not price.per_token or tin is None or tout is None:
            return None
        return pricing.request_cost(price, tin.value, tout.value)

    costs = {s: per_doc(s) for s in strategies}
    meeting = [s for s in strategies if m[f"accuracy[{s}]"].value >= sc.accuracy_floor and costs[s] is not None]
    chosen = min(meeting, key=lambda s: costs[s] or math.inf) if meeting else (
        "naive" if "naive" in strategies else strategies[0])
    m["accuracy"] = m[f"accuracy[{chosen}]"]
    m["strategy"] = Metric(math.nan, source=chosen)
    cost = costs[chosen]
    lat, rpd = m.get(f"latency_per_request_s[{chosen}]"), m.get(f"requests_per_document[{chosen}]")
    if cost is None or lat is None or rpd is None:
        return
    priced = m.get(f"cost_per_document_usd[{chosen}]")
    if priced is not None and math.isfinite(priced.value):
        m["cost_per_document_usd"] = Metric(priced.value, priced.low, priced.high, priced.n,
                                            source=f"strategy {chosen}; {priced.source}")
    else:
        how = (f"self-hosted: ${machine_hour_usd:g}/machine-hour × {rpd.value:.3g} requests/doc × "
               f"{lat.value:.3g} s/request" if local else "list-price tokens per document")
        m["cost_per_document_usd"] = Metric(cost, source=f"strategy {chosen}; {how}")
    wall_h = sc.documents_per_night * rpd.value * lat.value / sc.concurrency_limit / 3600.0
    m["batch_wall_time_h"] = Metric(wall_h, source=(
        f"strategy {chosen}: {sc.documents_per_night:,} docs × {rpd.value:.3g} requests/doc × {lat.value:.3g} s "
        f"/ {sc.concurrency_limit} in flight" + (" (= as many llama.cpp servers)" if local else "")))


def _axis_values(metrics: dict[str, dict[str, Metric]], labels: list[str], kind: str, axis: str,
                 rep: int | None) -> np.ndarray:
    name = AXIS_METRIC[kind][axis]
    vals = []
    for lab in labels:
        mm = metrics[lab].get(name)
        if mm is None:
            vals.append(math.nan)
        elif rep is not None and mm.reps is not None and len(mm.reps) > rep:
            vals.append(float(mm.reps[rep]))
        else:
            vals.append(mm.value)
    return np.asarray(vals, dtype=float)


def _normalise(vals: np.ndarray, lower_better: bool) -> np.ndarray:
    out = np.zeros_like(vals)
    finite = np.isfinite(vals)
    if not finite.any():
        return out
    if lower_better:
        best = np.nanmin(np.where(finite, vals, np.nan))
        with np.errstate(divide="ignore", invalid="ignore"):
            out = np.where(finite, np.where(vals > 0, best / vals, 1.0), 0.0)
        if best <= 0:
            out = np.where(finite & (vals <= 0), 1.0, np.where(finite, 0.0, 0.0))
    else:
        best = np.nanmax(np.where(finite, vals, np.nan))
        out = np.where(finite, vals / best if best > 0 else 1.0, 0.0)
    return np.asarray(np.clip(np.nan_to_num(out, nan=0.0), 0.0, 1.0), dtype=float)


def decide(ev: Evidence, name: str, sc: Scenario, contenders: dict[str, Any], *, machine_hour_usd: float,
           n_boot: int = 1000) -> ScenarioResult:
    assumptions: list[str] = [f"self-hosted machine: ${machine_hour_usd:g}/hour (parameter)"]
    metrics = _scenario_metrics(ev, sc, contenders, machine_hour_usd, assumptions)
    labels = sorted(metrics)
    kind = sc.kind
    weights = sc.normalized_weights
    dropped = [a for a in AXES if weights.get(a, 0) > 0 and all(
        metrics[lab].get(AXIS_METRIC[kind][a]) is None for lab in labels)]
    live = {a: w for a, w in weights.items() if w > 0 and a not in dropped}
    total = sum(live.values()) or 1.0
    live = {a: w / total for a, w in live.items()}

    eligible, failed = [], []
    for lab in labels:
        reason = ""
        for con in sc.hard_constraints:
            mm = metrics[lab].get(con.metric)
            if mm is None or math.isnan(mm.value):
                reason = f"{con.metric} not measured"
                break
            if not con.passes(mm.value):
                bound = f"≤ {con.max:g}" if con.max is not None else f"≥ {con.min:g}"
                reason = f"{con.metric} = {mm.value:.4g}, needs {bound}"
                break
        eligible.append(reason == "")
        failed.append(reason or None)
    elig_idx = [i for i, e in enumerate(eligible) if e]

    def scores(rep: int | None) -> np.ndarray:
        s = np.zeros(len(labels))
        for axis, w in live.items():
            vals = _axis_values(metrics, labels, kind, axis, rep)
            norm = np.zeros(len(labels))
            if elig_idx:
                norm[elig_idx] = _normalise(vals[elig_idx], LOWER_IS_BETTER[axis])
            others = [i for i in range(len(labels)) if i not in elig_idx]
            if others:  # ineligible rows are scored against everyone, for information only
                norm[others] = _normalise(vals, LOWER_IS_BETTER[axis])[others]
            s += w * norm
        return s

    point = scores(None)
    reps = np.vstack([scores(b) for b in range(n_boot)]) if labels else np.zeros((0, 0))
    low = np.percentile(reps, 2.5, axis=0) if labels else np.array([])
    high = np.percentile(reps, 97.5, axis=0) if labels else np.array([])
    ranks: list[float] = []
    for i in range(len(labels)):
        if not eligible[i]:
            ranks.append(math.nan)
            continue
        ranks.append(1 + sum(1 for j in elig_idx if j != i and low[j] > high[i]))
    rows = []
    for i, lab in enumerate(labels):
        row: dict[str, Any] = {"scenario": name, "contender": lab, "eligible": eligible[i],
                               "failed_constraint": failed[i], "score": point[i], "score_low": low[i],
                               "score_high": high[i], "rank": ranks[i]}
        for axis in AXES:
            mm = metrics[lab].get(AXIS_METRIC[kind][axis])
            row[f"{axis}_metric"] = mm.value if mm is not None else math.nan
        rows.append(row)
    table = pd.DataFrame(rows)
    res = ScenarioResult(name, sc, table, metrics, dropped, assumptions)
    table["gives_up"] = [_gives_up(res, lab) for lab in labels]
    res.table = table.sort_values(["eligible", "score"], ascending=[False, False]).reset_index(drop=True)
    return res


def _fmt_axis(res: ScenarioResult, lab: str, axis: str) -> str:
    name = AXIS_METRIC[res.scenario.kind][axis]
    mm = res.metrics[lab].get(name)
    if mm is None:
        return "not measured"
    scale, unit = _UNITS.get(name, (1, ""))
    return mm.fmt(scale, 3, unit)


def _gives_up(res: ScenarioResult, lab: str) -> str:
    """One sentence from the numbers: where `lab` is weakest against the best alternative."""
    t = res.table
    elig = t[t["eligible"]].sort_values("score", ascending=False)
    pick = str(elig.iloc[0]["contender"]) if not elig.empty else None
    other = None
    if lab == pick:
        rest = elig[elig["contender"] != lab]
        other = str(rest.iloc[0]["contender"]) if not rest.empty else None
    else:
        other = pick
    if other is None:
        if pick is None:
            return "no contender meets every hard constraint"
        return "no eligible alternative to compare with"
    kind = res.scenario.kind
    worst_axis, worst_gap = None, 0.0
    for axis in AXES:
        if res.scenario.normalized_weights.get(axis, 0) <= 0:
            continue
        a = _axis_values(res.metrics, [lab, other], kind, axis, None)
        if not np.isfinite(a).all():
            continue
        na = _normalise(a, LOWER_IS_BETTER[axis])
        gap = float(na[1] - na[0])
        if gap > worst_gap:
            worst_axis, worst_gap = axis, gap
    if worst_axis is None:
        return f"nothing measured against {other}: at least as good on every weighted axis"
    return (f"{worst_axis}: {_fmt_axis(res, lab, worst_axis)} vs {_fmt_axis(res, other, worst_axis)} "
            f"for {other}")


def decision_matrix(results: list[ScenarioResult]) -> pd.DataFrame:
    cols = ["scenario", "contender", "eligible", "failed_constraint", "score", "score_low", "score_high", "rank",
            "gives_up"]
    frames = [r.table for r in results]
    if not frames:
        return pd.DataFrame(columns=cols)
    df = pd.concat(frames, ignore_index=True)
    return df[cols + [c for c in df.columns if c not in cols]]
