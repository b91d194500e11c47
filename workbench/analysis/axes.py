"""The axis metrics, computed from the evidence on every row of one joint resampling.

Each function returns `Metric`s whose `reps` are the metric on replicate rows 1..B of
`workbench.analysis.evidence.Draws` (row 0 is the point estimate), so a scenario score computed
row by row carries every one of these uncertainties at once. Headline intervals are the exact
ones where they exist — order statistics for percentiles, Wilson for proportions — and the
2.5–97.5% of the replicates for derived numbers (costs, F-scores, wall times). The formulas:

- latency (prompts family, warm requests; a failed one is +∞: `evidence.outcomes`):
  `e2e_p50/p95/p99`, `ttft_p50/p95`; mean tokens in/out and mean E2E per answered request;
- `route_accuracy` = accepted labels / graded routing prompts (a failed request is a wrong label);
- QA (items family), answerable items: `qa_accuracy` = correct / all, `qa_accuracy_given_attempted`
  = correct / (correct + incorrect), `qa_f_score` = their harmonic mean (SimpleQA; 0 when nothing
  is correct), `qa_net_score` = (1 + (correct − incorrect) / all) / 2 (a wrong answer costs what a
  right one earns: ½ for always abstaining, 0 for always wrong), `qa_abstention_rate`;
  unanswerable items: `false_premise_acceptance` = answered as if the premise were true / all
  unanswerable; `hallucination_score` = F × (1 − ½ × acceptance)
  (`workbench.analysis.hallucination.hallucination_score`), unmeasured (NaN) when no unanswerable
  item was measured — an unknown acceptance is not 0; `hallucination_rate` = incorrect / all
  items (shown, not scored). A failed request is graded `incorrect` in all of them (on an
  unanswerable item: not a rejection), so failing never scores better than answering;
- `error_rate` = failed / sent over the scenario's own experiments (Wilson), and
  `units_lost_to_errors` (`error_metrics`);
- goodput (levels family, the scenario's prompt set only — swept on other prompts it is
  unmeasured, and says so): per level, throughput × share of requests within the SLO; the level
  chosen once on the point (the best goodput among levels whose p95 E2E — a failed request +∞ —
  meets the SLO, else of any level), its goodput in every row — continuous near the SLO, which
  acts through its own constraint (a row whose p95 crosses the SLO does not drop to 0 and its
  cost to ∞);
- `cost_per_1k_requests_usd`: the fleet to serve the target rate at that goodput (self-hosted:
  machine-hours with headroom), or tokens at list price (hosted) — `cost.realtime_cost_per_1k`;
- annotation (documents family): the strategy is chosen once, on the measured accuracy intervals (below);
  `annotation_accuracy` over documents;
  `cost_per_document_usd` = requests per document (a count) × mean cost of that strategy's
  requests (resampled; cache reads and writes at their own rates, batch API items at the batch
  rate); `batch_wall_time_h` = documents per night × requests per document × mean request time /
  requests in flight — for the batch-api strategy the provider's completion window (documented or
  declared), or for the local endpoint its measured turnaround scaled to the night. The strategy
  (the **lever**) is the cheapest whose accuracy passes the floor on its one-sided Wilson bound (as
  the constraint judges it; failing that, whose point meets it) and whose night fits the window,
  else the cheapest that meets the floor (and the window constraint fails); when no strategy meets
  the floor (the contender fails it whatever lever it pulls), the same choice among the strategies
  no less accurate than naive on the same documents — the lever is a property of the workload, and
  the report should still say which one the night would run on;
- `monthly_cost_usd` = hosted: monthly requests × list price × tokens; self-hosted: the machines
  kept up all month (`always_on`, the default: a prototype must answer whenever it is asked) or
  only the busy machine time (`busy_time`), per the scenario's `self_hosted` field; both are kept.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from workbench import metrics as timing
from workbench.analysis.cost import batch_api_hours, cost_frame, local_price, measured_throughput, realtime_cost_per_1k
from workbench.analysis.evidence import (
    Draws,
    Evidence,
    Metric,
    distinct_groups,
    from_rows,
    mean_rows,
    outcomes,
    percentile_rows,
    proportion_metric,
    quantile_metric,
    resampled,
)
from workbench.analysis.hallucination import f_score, hallucination_score
from workbench.pricing import price_for

if TYPE_CHECKING:
    from workbench.config import Contender
    from workbench.pricing import Price

__all__ = [
    "annotation_metrics",
    "error_metrics",
    "goodput_metrics",
    "latency_metrics",
    "monthly_cost",
    "qa_metrics",
    "realtime_cost",
]

_LAT = "latency.jsonl, warm requests (a failed one is +∞)"
#: Hours in a month (365.25 × 24 / 12), for a machine kept up all month.
HOURS_PER_MONTH = 730.5


def latency_metrics(ev: Evidence, draws: Draws, label: str) -> dict[str, Metric]:
    t = ev.prompts.get(label)
    if t is None:
        return {}
    idx, u = draws.prompts, draws.uniform(f"prompts:{label}")
    e2e, ttft = t["e2e_s"].to_numpy(), t["ttft_s"].to_numpy()
    out = {
        **{f"{name}_p{q}": quantile_metric(values, idx, q, _LAT, u)
           for name, values in (("e2e", e2e), ("ttft", ttft)) for q in timing.SLO_PERCENTILES},
        "mean_e2e_s": from_rows(mean_rows(np.where(np.isfinite(e2e), e2e, np.nan), idx), _LAT + " (answered)",
                                int(np.isfinite(e2e).sum())),
        "input_tokens_per_request": from_rows(mean_rows(t["input_tokens"].to_numpy(), idx), _LAT),
        "output_tokens_per_request": from_rows(mean_rows(t["output_tokens"].to_numpy(), idx), _LAT),
    }
    route = t["route_correct"].to_numpy(dtype=float)
    if np.isfinite(route).any():
        m = resampled(route, idx)
        out["route_accuracy"] = proportion_metric(np.nansum(m, axis=1), np.isfinite(m).sum(axis=1),
                                                  "latency.jsonl, labelled routing prompts",
                                                  distinct_groups(ev.prompt_groups, np.isfinite(route)))
    return out


def qa_metrics(ev: Evidence, draws: Draws, label: str) -> dict[str, Metric]:
    t = ev.items.get(label)
    if t is None:
        return {}
    idx = draws.items
    present = t["grade"].notna().to_numpy()
    answerable = t["answerable"].fillna(True).astype(bool).to_numpy() & present
    unanswerable = ~t["answerable"].fillna(True).astype(bool).to_numpy() & present
    grade = t["grade"].fillna("").to_numpy(dtype=str)

    def count(mask: Any) -> Any:
        return resampled(mask.astype(float), idx).sum(axis=1)

    a_n, a_c = count(answerable), count(answerable & (grade == "correct"))
    a_i = count(answerable & (grade == "incorrect"))
    a_na = count(answerable & (grade == "not_attempted"))
    u_n, u_i = count(unanswerable), count(unanswerable & (grade == "incorrect"))
    all_n, all_i = count(present), count(present & (grade == "incorrect"))
    src = "hallucination.jsonl, rule grader"
    f = f_score(a_c, a_i, a_n)
    with np.errstate(all="ignore"):
        net = np.where(a_n > 0, (1.0 + (a_c - a_i) / np.where(a_n > 0, a_n, 1)) / 2.0, np.nan)
    acceptance = proportion_metric(u_i, u_n, src + ", unanswerable items")
    with np.errstate(all="ignore"):
        acc_rows = np.where(u_n > 0, u_i / np.where(u_n > 0, u_n, 1), np.nan)
    # no unanswerable item measured: the acceptance is unknown, not 0 (perfect), so the score is too
    score_rows = np.where(np.isfinite(acc_rows), hallucination_score(f, acc_rows), np.nan)
    return {
        "qa_accuracy": proportion_metric(a_c, a_n, src + ", answerable items"),
        "qa_accuracy_given_attempted": proportion_metric(a_c, a_c + a_i, src + ", answered answerable items"),
        "qa_f_score": from_rows(f, src + ", answerable items (SimpleQA F)", int(a_n[0])),
        "qa_net_score": from_rows(net, src + ", answerable items: (1 + (correct − incorrect) / all) / 2",
                                  int(a_n[0])),
        "qa_abstention_rate": proportion_metric(a_na, a_n, src + ", answerable items"),
        "false_premise_acceptance": acceptance,
        "hallucination_score": from_rows(score_rows, src + ", F × (1 − ½ acceptance)", int(all_n[0])),
        "hallucination_rate": proportion_metric(all_i, all_n, src + ", all items"),
    }


def _level_rows(g: pd.DataFrame, draws: Draws, key: str, slo: timing.SLO) -> tuple[Any, Any, Any]:
    """(throughput, goodput, the SLO's percentile) rows of one level of one contender."""
    from workbench.analysis.capacity import request_ends

    outcome = outcomes(g).to_numpy()
    ok = outcome == "ok"
    latency = (pd.to_numeric(g[slo.field], errors="coerce").to_numpy(dtype=float) if slo.field in g
               else np.full(len(g), np.nan))
    window = timing.window_s(g["sent_s"], request_ends(g))
    thr = draws.rate(key, int(ok.sum()), window)
    idx = draws.own(key, len(g))
    good = (ok & (latency <= slo.max_s)).astype(float)
    with np.errstate(all="ignore"):
        share = resampled(good, idx).sum(axis=1) / np.maximum(resampled(ok.astype(float), idx).sum(axis=1), 1.0)
    # a failed request never answered (+∞), so a level whose percentile lands on failures misses the SLO
    pct = percentile_rows(np.where(ok, latency, np.where(outcome == "failed", math.inf, np.nan)), idx,
                          slo.percentile)
    return thr, thr * share, pct


def goodput_metrics(ev: Evidence, draws: Draws, label: str, slo: timing.SLO | float,
                    prompt_set: str | None = None) -> dict[str, Metric]:
    """Goodput from the levels swept on `prompt_set` (None: any): a sweep on other prompts says
    nothing about this workload's rate within its SLO (`slo`: an SLO, or seconds of p95 E2E)."""
    slo = timing.SLO.of(slo)
    levels = ev.levels.get(label)
    if levels and prompt_set is not None:
        swept = sorted({str(x) for g in levels.values() if "prompt_set" in g for x in g["prompt_set"].dropna()})
        levels = {lv: g[g["prompt_set"] == prompt_set] if "prompt_set" in g else g for lv, g in levels.items()}
        levels = {lv: g for lv, g in levels.items() if len(g)}
        if not levels:  # swept, but not on this workload: unmeasured here, and said so
            return {"goodput_rps": Metric(math.nan, source=(
                f"not measured on this scenario's prompts ({prompt_set}): the load sweep ran on "
                f"{', '.join(swept) or 'other prompts'}"))}
    if not levels:
        return {}
    best_thr = np.zeros(draws.rows)
    tps = np.zeros(draws.rows)
    per_level: dict[int, tuple[Any, Any]] = {}
    for level, g in sorted(levels.items()):
        thr, good, p95 = _level_rows(g, draws, f"{label}:c{level}", slo)
        per_level[level] = (good, p95)
        best_thr = np.maximum(best_thr, np.nan_to_num(thr))
        out_tokens = float(pd.to_numeric(g.loc[g["status"] == "ok", "output_tokens"], errors="coerce").mean())
        tps = np.maximum(tps, np.nan_to_num(thr * out_tokens))
    # One level, chosen on the point: the best goodput among the levels whose p95 meets the SLO,
    # else the best goodput of any level. Its goodput in every replicate — not the best level
    # meeting the SLO in that replicate — so near the SLO the replicates move smoothly instead of
    # jumping to 0 (and the cost to ∞) whenever a replicate's p95 crosses it; the SLO acts through
    # its own constraint and through the share of requests within it.
    meeting = [lv for lv, (good, p95) in per_level.items() if np.nan_to_num(p95[0], nan=math.inf) <= slo.max_s]
    level = max(meeting or list(per_level), key=lambda lv: float(np.nan_to_num(per_level[lv][0][0])))
    best_good = np.nan_to_num(per_level[level][0])
    n = sum(len(g) for g in levels.values())
    meets = "meets" if level in meeting else "no level meets"
    src = (f"concurrency.jsonl{f' (prompt set {prompt_set})' if prompt_set else ''}, concurrency {level} "
           f"({meets} the SLO {slo.text}): throughput × share within the SLO")
    return {"goodput_rps": from_rows(best_good, src, n),
            "max_throughput_rps": from_rows(best_thr, "concurrency.jsonl, best level", n),
            "max_output_tps": from_rows(tps, "concurrency.jsonl, best level", n)}


def _hosted_price(contender: Contender | None) -> Price | None:
    if contender is None or contender.machine_priced:
        return None
    p = price_for(contender)
    return p if p is not None and p.per_token else None


def _token_cost_rows(price: Price, m: dict[str, Metric]) -> Any | None:
    tin, tout = m.get("input_tokens_per_request"), m.get("output_tokens_per_request")
    if tin is None or tout is None:
        return None
    rows_in, rows_out = tin.at(), tout.at()
    return (np.nan_to_num(rows_in) * (price.input or 0.0) + np.nan_to_num(rows_out) * (price.output or 0.0)) / 1e6


def realtime_cost(m: dict[str, Metric], contender: Contender | None, *, target_qps: float, headroom: float,
                  machine_hour_usd: float) -> dict[str, Metric]:
    if contender is None:
        return {}
    if contender.machine_priced:
        machine_hour_usd = contender.machine_hour_usd(machine_hour_usd)
        good = m.get("goodput_rps")
        if good is None or math.isnan(good.value):
            why = good.source if good is not None else "no load sweep of this contender"
            return {"cost_per_1k_requests_usd": Metric(math.nan, source=f"self-hosted: needs goodput, {why}")}
        rows = realtime_cost_per_1k(target_qps, 0.0, good.at(), machine_hour_usd, headroom)
        src = (f"{contender.hosted_by}: ${machine_hour_usd:g}/machine-hour, replicas = ceil({target_qps:g} / "
               f"(goodput × {1 - headroom:g}))")
        return {"cost_per_1k_requests_usd": from_rows(rows, src, good.n)}
    price = _hosted_price(contender)
    per_req = _token_cost_rows(price, m) if price is not None else None
    if price is None or per_req is None:
        return {}
    rows = realtime_cost_per_1k(target_qps, per_req, None, None)
    return {"cost_per_1k_requests_usd": from_rows(rows, f"{price.source}: tokens per request × list price")}


def _request_costs(g: pd.DataFrame, price: Price | None) -> Any:
    """Each request's billed cost (`cost.cost_frame`: cache reads and writes at their own rates, a
    batch API item at the batch rate); a failed request is billed nothing."""
    if price is None:
        return np.full(len(g), np.nan)
    priced = cost_frame(g.assign(contender="_"), {"_": price})["cost_usd"].fillna(0.0).to_numpy(dtype=float)
    return np.where((g["status"] == "ok").to_numpy(), priced, 0.0)


def _annotation_price(ev: Evidence, label: str, contender: Contender | None, machine_hour_usd: float) -> Price | None:
    """Hosted: list price. Self-hosted: machine time at the throughput this run's annotation
    requests measured (`levers.contender_prices`: prefill and decode rates)."""
    if contender is None:
        return None
    if not contender.machine_priced:
        return _hosted_price(contender)
    machine_hour_usd = contender.machine_hour_usd(machine_hour_usd)

    frames = [g for g in ev.doc_requests.get(label, {}).values()]
    if not frames:
        return None
    return local_price(measured_throughput(pd.concat(frames).assign(contender=label)).get(label), machine_hour_usd)


def _batch_api_hours(g: pd.DataFrame, n_docs: int, documents_per_night: int, concurrency_limit: int
                     ) -> tuple[float, str]:
    """The batch-api strategy's hours for the night (`cost.batch_api_hours`) from its records."""
    def first(col: str) -> float | None:
        v = pd.to_numeric(g[col], errors="coerce").dropna() if col in g else pd.Series(dtype=float)
        return float(v.iloc[0]) if len(v) else None

    passes = [float((r["t_start_unix"].astype(float) + r["e2e_s"].astype(float)).max()
                     - r["t_start_unix"].astype(float).min()) for _, r in g.groupby("repeat")] if "repeat" in g else []
    hours, why = batch_api_hours(documents_per_night, concurrency_limit=concurrency_limit,
                                 window_h=first("batch_window_h"),
                                 turnaround_s=float(np.mean(passes)) if passes else None, n_measured=n_docs,
                                 endpoint_concurrency=first("batch_concurrency"))
    source = next(iter(g["batch_window_source"].dropna()), None) if "batch_window_source" in g else None
    return hours, f"{why} ({source})" if source else why


def annotation_metrics(ev: Evidence, draws: Draws, label: str, contender: Contender | None, *,
                       machine_hour_usd: float, floor: float, documents_per_night: int,
                       concurrency_limit: int, window_hours: float = math.inf) -> dict[str, Metric]:
    docs = ev.docs.get(label)
    requests = ev.doc_requests.get(label, {})
    if not docs:
        return {}
    price = _annotation_price(ev, label, contender, machine_hour_usd)
    per_strategy = _strategy_draws(draws, label, docs, requests, price, documents_per_night=documents_per_night,
                                   concurrency_limit=concurrency_limit)
    if not per_strategy:
        return {}

    def accuracy(s: str) -> Metric:
        acc = per_strategy[s]["accuracy"]
        return proportion_metric(np.nansum(acc, axis=1), np.isfinite(acc).sum(axis=1),
                                 f"coalescing, strategy {s}, documents vs gold",
                                 distinct_groups(ev.doc_groups, np.isfinite(docs[s])))

    chosen = _cheapest_strategy(per_strategy, docs, accuracy, floor=floor, window_hours=window_hours)
    s = per_strategy[chosen]
    src = f"coalescing, strategy {chosen}"
    out = {"annotation_accuracy": accuracy(chosen),
           "strategy": Metric(math.nan, source=chosen)}
    if price is not None:
        how = "list price" if contender is None or not contender.machine_priced else (
            f"{contender.hosted_by}: ${contender.machine_hour_usd(machine_hour_usd):g}/machine-hour at this run's "
            "measured throughput")
        out["cost_per_document_usd"] = from_rows(s["cost"], f"{src}: {s['rpd']:.3g} requests/document × mean "
                                                 f"request cost ({how})", s["n_requests"])
    out["batch_wall_time_h"] = _wall_metric(s, f"{src}: {s['wall_source']}")
    if "batch-api" in per_strategy:
        b = per_strategy["batch-api"]
        out["batch_api_wall_time_h"] = _wall_metric(b, f"batch-api: {b['wall_source']}")
    return out


def _strategy_draws(
    draws: Draws, label: str, docs: Mapping[str, Any], requests: Mapping[str, pd.DataFrame], price: Price | None, *,
    documents_per_night: int, concurrency_limit: int,
) -> dict[str, dict[str, Any]]:
    """Per coalescing strategy of contender `label`: its resampled accuracy, requests per
    document, cost per document and night's wall time (with where that comes from)."""
    per_strategy: dict[str, dict[str, Any]] = {}
    for strategy, correct in docs.items():
        g = requests.get(strategy)
        if g is None or not len(g):
            continue
        # per strategy: the cached-prefix and batch-api arms may label a subset (`lever_docs`)
        n_docs = int(np.isfinite(correct).sum())
        passes = max(1, int(g["repeat"].nunique())) if "repeat" in g else 1
        rpd = len(g) / passes / max(1, n_docs)
        idx = draws.own(f"{label}:{strategy}", len(g))
        e2e = mean_rows(pd.to_numeric(g["e2e_s"], errors="coerce").to_numpy(dtype=float), idx)
        entry: dict[str, Any] = {
            "accuracy": resampled(correct, draws.docs),
            "rpd": rpd,
            "cost": rpd * mean_rows(_request_costs(g, price), idx),
            "n_requests": len(g),
            "wall": documents_per_night * rpd * e2e / concurrency_limit / 3600.0,
            "wall_source": (f"{documents_per_night:,} docs × {rpd:.3g} requests/doc × mean request time / "
                            f"{concurrency_limit} in flight"),
        }
        if "batch_api" in g and g["batch_api"].eq(True).any():
            # A batch API's night is its turnaround: the provider's window (a fact) or the local
            # endpoint's measured turnaround, scaled (one pass: a point measurement, no interval).
            hours, why = _batch_api_hours(g, n_docs, documents_per_night, concurrency_limit)
            entry["wall"], entry["wall_source"] = np.full(draws.rows, hours), why
        per_strategy[strategy] = entry
    return per_strategy


def _cheapest_strategy(per_strategy: Mapping[str, Mapping[str, Any]], docs: Mapping[str, Any],
                       accuracy: Callable[[str], Metric], *, floor: float, window_hours: float) -> str:
    """The strategy a contender pulls: the cheapest that is accurate enough and fits the night."""

    def point_acc(s: str) -> float:
        return float(np.nanmean(per_strategy[s]["accuracy"][0]))

    def fits(s: str) -> bool:
        return bool(per_strategy[s]["wall"][0] <= window_hours)

    def not_worse(s: str) -> bool:
        """Accuracy at least naive's on the documents both labelled (paired point estimates)."""
        if s == "naive" or "naive" not in docs:
            return True
        a, b = np.asarray(docs[s], dtype=float), np.asarray(docs["naive"], dtype=float)
        both = np.isfinite(a) & np.isfinite(b)
        return bool(both.any() and a[both].mean() >= b[both].mean())

    def passes_floor(s: str) -> bool:
        """The floor met on the one-sided 95% Wilson bound, as the constraint will judge it."""
        low = accuracy(s).one_sided("lower")
        return bool(np.isfinite(low) and low >= floor)

    priced = [s for s in per_strategy if np.isfinite(per_strategy[s]["cost"][0])]
    # The lever: among the strategies whose accuracy passes the floor on its interval (a point
    # estimate over the floor whose interval straddles it would pick a strategy the constraint
    # then calls inconclusive over one that passes) — else those whose point meets it, else (the
    # contender fails it whatever it pulls) those no less accurate than naive on the same documents
    # — the cheapest whose night fits the window; if none fits, the cheapest (and the window
    # constraint says it does not fit).
    pool = ([s for s in priced if passes_floor(s)] or [s for s in priced if point_acc(s) >= floor]
            or [s for s in priced if not_worse(s)])
    meeting = [s for s in pool if fits(s)] or pool
    return min(meeting, key=lambda s: float(per_strategy[s]["cost"][0])) if meeting else (
        "naive" if "naive" in per_strategy else sorted(per_strategy)[0])


def _wall_metric(s: dict[str, Any], source: str) -> Metric:
    wall = s["wall"]
    if np.all(wall == wall[0]):  # a fact or one pass's measurement: no sampling interval to draw
        return Metric(float(wall[0]), n=s["n_requests"], source=source)
    return from_rows(wall, source, s["n_requests"])


def monthly_cost(ev: Evidence, draws: Draws, m: dict[str, Metric], label: str, contender: Contender | None, *,
                 monthly_requests: int, machine_hour_usd: float, self_hosted: str = "always_on") -> dict[str, Metric]:
    """The month's bill. Hosted: monthly requests × list price × measured tokens. Self-hosted,
    both ways, the scenario saying which stands for its cost (`self_hosted`): `busy_time` — the
    machine-hours the requests keep a server busy (output tokens / the best level's output
    tok/s) — or `always_on` — the machines that must stay up all month to serve them
    (ceil(busy hours / HOURS_PER_MONTH) machines × HOURS_PER_MONTH h, at least one)."""
    if contender is None:
        return {}
    if contender.machine_priced:
        machine_hour_usd = contender.machine_hour_usd(machine_hour_usd)
        tout = m.get("output_tokens_per_request")
        tps = m.get("max_output_tps")
        if tps is None:
            tps = goodput_metrics(ev, draws, label, math.inf).get("max_output_tps")
        if tout is None or tps is None:
            return {}
        with np.errstate(all="ignore"):
            busy_h = np.nan_to_num(tout.at()) / tps.at() * monthly_requests / 3600.0
        busy = from_rows(busy_h * machine_hour_usd, (
            f"self-hosted, busy time only: {monthly_requests:,} requests × output tokens / the best level's "
            f"output tok/s × ${machine_hour_usd:g}/machine-hour"))
        machines = np.maximum(1.0, np.ceil(np.nan_to_num(busy_h, nan=0.0) / HOURS_PER_MONTH))
        on_rows = machines * HOURS_PER_MONTH * machine_hour_usd
        on_source = (f"self-hosted, kept up all month: ceil(busy hours / {HOURS_PER_MONTH:g}) machines (at least "
                     f"one) × {HOURS_PER_MONTH:g} h × ${machine_hour_usd:g}/machine-hour")
        # The same machine count in every replicate is a fact of the sample, not an interval [x, x].
        on = (Metric(float(on_rows[0]), source=on_source) if np.all(on_rows == on_rows[0])
              else from_rows(on_rows, on_source))
        chosen = on if self_hosted == "always_on" else busy
        return {"monthly_cost_usd": chosen, "monthly_busy_cost_usd": busy, "monthly_always_on_cost_usd": on}
    price = _hosted_price(contender)
    per_req = _token_cost_rows(price, m) if price is not None else None
    if price is None or per_req is None:
        return {}
    return {"monthly_cost_usd": from_rows(per_req * monthly_requests,
                                          f"{price.source}: tokens per request × list price × {monthly_requests:,}")}


def _by_class(error_class: pd.Series) -> str:
    """` (timeout 3, rate_limited 1)`: the typed failures behind a count ("" when none)."""
    counts = error_class.dropna().astype(str).value_counts()
    return f" ({', '.join(f'{c} {k}' for c, k in counts.items())})" if len(counts) else ""


def error_metrics(ev: Evidence, label: str, experiments: tuple[str, ...], *, prompt_set: str | None = None,
                  families: tuple[str, ...] = (), strategy: str | None = None) -> dict[str, Metric]:
    """The scenario's own `error_rate` and the units its metrics lost to errors.

    `error_rate` = failed / sent over this contender's records in `experiments` (a concurrency
    sweep only on `prompt_set`; the rate-limit rehearsal, which provokes errors on purpose, and
    requests the workbench never sent are left out: `evidence.outcomes`), Wilson interval.
    `units_lost_to_errors` counts the units of the scenario's families (prompts, items, the
    chosen strategy's documents) that failed: still in every metric (as +∞ or wrong), said here."""
    frames = []
    for e in experiments:
        df = ev.frames.get(e)
        if df is None:
            continue
        g = df[df["label"] == label]
        if "mitigation" in g:
            g = g[g["mitigation"].isna()]
        if e == "concurrency" and prompt_set is not None and "prompt_set" in g:
            g = g[g["prompt_set"].isna() | (g["prompt_set"] == prompt_set)]
        frames.append(g)
    out: dict[str, Metric] = {}
    sent = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
    if len(sent):
        sent = sent[outcomes(sent) != "unsent"]
    if len(sent):
        failed = sent[sent["status"] != "ok"]
        classes = _by_class(failed["error_class"]) if "error_class" in failed else ""
        where = ", ".join(f"{e}.jsonl" for e in experiments if e in ev.frames)
        # the one Wilson construction (`proportion_metric`), on the counts alone: no replicates,
        # the rate is a constraint, not an axis
        out["error_rate"] = dataclasses.replace(proportion_metric(
            np.array([float(len(failed))]), np.array([float(len(sent))]), (
                f"{len(failed)} of {len(sent)} requests failed{classes}: {where}"
                f"{f' (sweep on prompt set {prompt_set})' if prompt_set and 'concurrency' in ev.frames else ''}, "
                "rehearsal and unsent requests left out")), reps=None)
    parts, lost, total = [], 0, 0
    for family, tables, col in (("prompts", ev.prompts, "e2e_s"), ("items", ev.items, "grade")):
        if family in families and label in tables:
            t = tables[label]
            cls = t["error_class"] if "error_class" in t else pd.Series(None, index=t.index, dtype=object)
            k, n = int(cls.notna().sum()), int(t[col].notna().sum())
            parts.append(f"{family} {k}/{n}{_by_class(cls)}")
            lost, total = lost + k, total + n
    if "documents" in families and strategy is not None and strategy in ev.docs.get(label, {}):
        k = ev.doc_lost.get(label, {}).get(strategy, 0)
        n = int(np.isfinite(ev.docs[label][strategy]).sum())
        parts.append(f"documents {k}/{n} ({strategy})")
        lost, total = lost + k, total + n
    if parts:
        out["units_lost_to_errors"] = Metric(float(lost), n=total, source="; ".join(parts))
    return out
