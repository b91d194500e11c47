"""Annotation levers, analysed: what coalescing, de-duplication and an answer cache changed.

From the coalescing experiment's records (`coalescing.jsonl`) and per-document outcomes
(`coalescing_documents.csv`): prices of the local models from the throughput measured in the
run, a per-strategy summary (requests, time, tokens, cost and accuracy per document, each
statistic with its interval and n), the before/after table against naive, and each scenario's
projection from the measured numbers (the scenario kinds own the projection rules).

Which numbers are statistics and which are point measurements:
  - accuracy: Wilson 95% interval over documents (first repeat); the change vs naive is a paired
    difference on the same documents (Newcombe method 10);
  - parse-failure rate of batch requests: Wilson;
  - busy time and cost per document: requests/document (an exact count) × the mean per-request
    e2e / cost, the mean with a bootstrap interval over requests;
  - requests sent and wall time: point measurements of one pass (temperature 0 makes the
    requests repeatable, and wall time is one number per pass); with `repeats` > 1 the wall
    time is the mean over passes and its min-max range is shown.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from workbench import pricing
from workbench.analysis import cost, distribution, stats
from workbench.config import Contender

if TYPE_CHECKING:
    from workbench.analysis.scenarios import ScenarioSet

__all__ = [
    "before_after",
    "best_strategy",
    "contender_prices",
    "format_before_after",
    "format_projections",
    "measured_throughput",
    "parse_failures",
    "plot_levers",
    "project_scenarios",
    "seed_comparison",
    "strategy_summary",
]


def _ok(df: pd.DataFrame) -> pd.DataFrame:
    return df[df["status"] == "ok"]


def measured_throughput(records: pd.DataFrame) -> dict[str, dict[str, float]]:
    """Per contender, rates measured in this run over its successful requests (all strategies).

    `prefill_tps` = Σ input tokens / Σ TTFT and `decode_tps` = Σ (output tokens − 1) /
    Σ (E2E − TTFT): the split `pricing.price_from_throughput` wants so a request is charged the
    machine time it held. `e2e_output_tps` = Σ output tokens / Σ E2E. llama.cpp reuses the KV
    cache of a shared prompt prefix, so `prefill_tps` is an effective rate (cached prefix
    included), not the raw prefill speed. One request at a time per server, so the sums are
    machine-busy seconds.
    """
    out: dict[str, dict[str, float]] = {}
    for name, g in _ok(records).groupby("contender", sort=True):
        inp = pd.to_numeric(g["input_tokens"], errors="coerce")
        outp = pd.to_numeric(g["output_tokens"], errors="coerce")
        e2e = pd.to_numeric(g["e2e_s"], errors="coerce")
        ttft = pd.to_numeric(g["ttft_s"], errors="coerce") if "ttft_s" in g else e2e * np.nan
        timed = ttft.notna() & inp.notna() & (outp >= 2)
        prefill_s = float(ttft[timed].sum())
        decode_s = float((e2e - ttft)[timed].sum())
        out[str(name)] = {
            "prefill_tps": float(inp[timed].sum()) / prefill_s if prefill_s > 0 else math.nan,
            "decode_tps": float((outp[timed] - 1).sum()) / decode_s if decode_s > 0 else math.nan,
            "e2e_output_tps": float(outp.sum()) / float(e2e.sum()) if e2e.sum() > 0 else math.nan,
            "requests": float(len(g)),
        }
    return out


def contender_prices(
    contenders: Sequence[Contender], records: pd.DataFrame, machine_hour_usd: float
) -> dict[str, pricing.Price]:
    """Per-token price of each contender: local ones from `machine_hour_usd` and the throughput
    measured in THIS run (`price_from_throughput` with prefill and decode rates; output-only
    end-to-end rate when no TTFT was measured), hosted ones from `pricing.price_for`. Contenders
    without a price are left out (their cost shows as NaN, never as a guess)."""
    tps = measured_throughput(records)
    prices: dict[str, pricing.Price] = {}
    for c in contenders:
        t = tps.get(c.name)
        if c.is_local:
            if t is None:
                continue
            if t["prefill_tps"] > 0 and t["decode_tps"] > 0:
                prices[c.name] = pricing.price_from_throughput(
                    machine_hour_usd, t["decode_tps"], t["prefill_tps"]
                )
            elif t["e2e_output_tps"] > 0:
                prices[c.name] = pricing.price_from_throughput(machine_hour_usd, t["e2e_output_tps"])
            continue
        p = pricing.price_for(c)
        if p is not None and not p.per_token and t is not None and t["e2e_output_tps"] > 0:
            p = p.resolve(t["e2e_output_tps"])
        if p is not None and p.per_token:
            prices[c.name] = p
    return prices


def _pass_wall_s(g: pd.DataFrame) -> list[float]:
    """Wall time of each pass: first send → last completion over that pass's requests."""
    walls = []
    for _, r in g.groupby("repeat"):
        start = r["t_start_unix"].astype(float)
        end = start + r["e2e_s"].astype(float).fillna(0.0)
        walls.append(float(end.max() - start.min()))
    return walls


def strategy_summary(
    records: pd.DataFrame, outcomes: pd.DataFrame, prices: Mapping[str, pricing.Price], n_boot: int = 2000
) -> pd.DataFrame:
    """One row per (contender, strategy): counts, wall/busy time, tokens, cost and accuracy per
    document, each statistic with its 95% interval and n (see the module docstring for which)."""
    priced = cost.cost_frame(records, dict(prices)) if len(records) else records.assign(cost_usd=np.nan)
    # A failed request carries no token counts: it is billed nothing, but it still took time.
    priced.loc[priced["status"] != "ok", "cost_usd"] = 0.0
    if not prices:
        priced["cost_usd"] = np.nan
    else:
        priced.loc[~priced["contender"].isin(list(prices)), "cost_usd"] = np.nan
    rows: list[dict[str, Any]] = []
    first = outcomes[outcomes["repeat"] == 0]
    for (name, strategy), g in priced.groupby(["contender", "strategy"], sort=False):
        o = first[(first["contender"] == name) & (first["strategy"] == strategy)]
        all_o = outcomes[(outcomes["contender"] == name) & (outcomes["strategy"] == strategy)]
        n_pass = int(g["repeat"].nunique())
        n_docs = len(o)
        req = len(g) / n_pass
        per_doc = req / n_docs
        batches = g[g["batch_size"] > 1]
        walls = _pass_wall_s(g)
        e2e = stats.mean_ci(g["e2e_s"].astype(float), n_boot=n_boot)
        c = stats.mean_ci(g["cost_usd"].astype(float), n_boot=n_boot)
        acc = stats.wilson_interval(int(o["correct"].sum()), n_docs)
        pf = stats.wilson_interval(int((~batches["parse_ok"].astype(bool)).sum()), len(batches))
        naive = first[(first["contender"] == name) & (first["strategy"] == "naive")]
        if strategy != "naive" and len(naive):
            pair = o.merge(naive, on="doc_id", suffixes=("", "_naive"))
            diff = stats.paired_proportion_diff(
                pair["correct"].astype(float), pair["correct_naive"].astype(float)
            )
        else:
            diff = stats.Estimate(math.nan, math.nan, math.nan, 0)
        est = g["tokens_estimated"].astype(bool)
        rows.append({
            "contender": name, "strategy": strategy, "n_docs": n_docs, "passes": n_pass,
            "requests": req, "requests_per_doc": per_doc,
            "batch_requests": len(batches) / n_pass,
            "fallback_requests": int(g["fallback"].astype(bool).sum()) / n_pass,
            "error_requests": int((g["status"] != "ok").sum()) / n_pass,
            "parse_fail_rate": pf.value, "parse_fail_low": pf.low, "parse_fail_high": pf.high,
            "parse_fail_n": pf.n,
            "cache_hits": int((all_o["source"] == "cache").sum()) / n_pass,
            "fanouts": int((all_o["source"] == "fanout").sum()) / n_pass,
            "wall_s": float(np.mean(walls)), "wall_min_s": min(walls), "wall_max_s": max(walls),
            "wall_per_doc_s": float(np.mean(walls)) / n_docs,
            "busy_per_doc_s": per_doc * e2e.value, "busy_per_doc_low": per_doc * e2e.low,
            "busy_per_doc_high": per_doc * e2e.high,
            "mean_e2e_s": e2e.value,
            **distribution.summarize(g["e2e_s"].to_numpy(dtype=float), "e2e", qs=(95,)),
            "docs_per_busy_s": n_docs * n_pass / float(g["e2e_s"].astype(float).sum()),
            "input_tokens_per_doc": float(pd.to_numeric(g["input_tokens"]).sum()) / n_pass / n_docs,
            "output_tokens_per_doc": float(pd.to_numeric(g["output_tokens"]).sum()) / n_pass / n_docs,
            "tokens_estimated_share": float(est.mean()) if len(est) else math.nan,
            "cost_per_doc_usd": per_doc * c.value, "cost_per_doc_low": per_doc * c.low,
            "cost_per_doc_high": per_doc * c.high,
            "accuracy": acc.value, "accuracy_low": acc.low, "accuracy_high": acc.high,
            "accuracy_n": acc.n,
            "accuracy_diff": diff.value, "accuracy_diff_low": diff.low, "accuracy_diff_high": diff.high,
        })
    return pd.DataFrame(rows)


def _rel(x: float, base: float) -> float:
    return (x / base - 1.0) * 100.0 if base and not math.isnan(base) else math.nan


def before_after(summary: pd.DataFrame) -> pd.DataFrame:
    """Relative change vs naive per contender: requests, wall time, cost per document (%), and
    accuracy (percentage points, with its paired 95% interval)."""
    rows = []
    for name, g in summary.groupby("contender", sort=False):
        base = g[g["strategy"] == "naive"]
        if base.empty:
            continue
        b = base.iloc[0]
        for _, r in g.iterrows():
            rows.append({
                "contender": name, "strategy": r["strategy"],
                "requests": r["requests"], "requests_change_pct": _rel(r["requests"], b["requests"]),
                "wall_s": r["wall_s"], "wall_change_pct": _rel(r["wall_s"], b["wall_s"]),
                "cost_per_doc_usd": r["cost_per_doc_usd"],
                "cost_change_pct": _rel(r["cost_per_doc_usd"], b["cost_per_doc_usd"]),
                "accuracy": r["accuracy"], "accuracy_change_pp": r["accuracy_diff"] * 100.0,
                "accuracy_change_low_pp": r["accuracy_diff_low"] * 100.0,
                "accuracy_change_high_pp": r["accuracy_diff_high"] * 100.0,
            })
    return pd.DataFrame(rows)


def _iv(v: float, lo: float, hi: float, fmt: str) -> str:
    if v != v:
        return "n/a"
    if lo != lo or hi != hi:
        return format(v, fmt)
    return f"{format(v, fmt)} [{format(lo, fmt)}, {format(hi, fmt)}]"


def _pct(v: float) -> str:
    return "—" if v != v else f"{v:+.0f}%"


def format_before_after(summary: pd.DataFrame) -> pd.DataFrame:
    """The before/after table as text: each value, its change vs naive, intervals where they exist.

    Requests and wall time are point measurements of a pass; busy time and cost per document
    carry bootstrap intervals over requests; accuracy a Wilson interval, its change a paired one.
    """
    ba = before_after(summary).set_index(["contender", "strategy"])
    out = []
    for _, r in summary.iterrows():
        d = ba.loc[(r["contender"], r["strategy"])]
        out.append({
            "contender": r["contender"], "strategy": r["strategy"], "docs": r["n_docs"],
            "requests (Δ)": f"{r['requests']:.0f} ({_pct(d['requests_change_pct'])})",
            "fallbacks": f"{r['fallback_requests']:.0f}",
            "batch parse failures [95% CI]": "—" if r["parse_fail_n"] == 0 else
            f"{_iv(r['parse_fail_rate'], r['parse_fail_low'], r['parse_fail_high'], '.0%')} "
            f"n={r['parse_fail_n']}",
            "wall s (Δ)": f"{r['wall_s']:.1f} ({_pct(d['wall_change_pct'])})",
            "busy ms/doc [95% CI]": _iv(r["busy_per_doc_s"] * 1e3, r["busy_per_doc_low"] * 1e3,
                                         r["busy_per_doc_high"] * 1e3, ".0f"),
            "tokens/doc in+out": f"{r['input_tokens_per_doc']:.0f}+{r['output_tokens_per_doc']:.1f}"
            + (" (est.)" if r["tokens_estimated_share"] > 0 else ""),
            "µ$/doc [95% CI] (Δ)": _iv(r["cost_per_doc_usd"] * 1e6, r["cost_per_doc_low"] * 1e6,
                                        r["cost_per_doc_high"] * 1e6, ".3g")
            + f" ({_pct(d['cost_change_pct'])})",
            "accuracy [95% CI]": _iv(r["accuracy"], r["accuracy_low"], r["accuracy_high"], ".0%")
            + f" n={r['accuracy_n']}",
            "Δ accuracy pp [95% CI]": "—" if r["strategy"] == "naive" else
            _iv(d["accuracy_change_pp"], d["accuracy_change_low_pp"], d["accuracy_change_high_pp"], "+.0f"),
        })
    return pd.DataFrame(out)


def plot_levers(summary: pd.DataFrame, path: str | Path | None = None) -> Any:
    """Left: change vs naive in requests, wall time and cost per document; right: accuracy with
    Wilson intervals. One group of bars per contender and strategy."""
    import matplotlib.pyplot as plt

    from workbench.analysis.plots import save

    ba = before_after(summary)
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(12, 4))
    labels = [f"{c}\n{s}" for c, s in zip(ba["contender"], ba["strategy"], strict=True)]
    x = np.arange(len(ba))
    for i, (col, name) in enumerate((("requests_change_pct", "requests"), ("wall_change_pct", "wall time"),
                                      ("cost_change_pct", "cost/doc"))):
        ax1.bar(x + (i - 1) * 0.27, ba[col].fillna(0.0), width=0.27, label=name)
    ax1.axhline(0, color="black", lw=0.6)
    ax1.set_xticks(x, labels, fontsize=7)
    ax1.set_ylabel("change vs naive, %")
    ax1.set_title("What each lever saves (point measurements of one pass)", fontsize=9)
    ax1.legend(fontsize=8)
    acc = summary["accuracy"].to_numpy(dtype=float)
    err = np.vstack([acc - summary["accuracy_low"].to_numpy(dtype=float),
                     summary["accuracy_high"].to_numpy(dtype=float) - acc])
    ax2.bar(x, acc, yerr=err, capsize=3, color="tab:gray")
    ax2.set_xticks(x, labels, fontsize=7)
    ax2.set_ylim(0, 1)
    ax2.set_ylabel("accuracy vs gold")
    n = int(summary["accuracy_n"].max())
    ax2.set_title(f"Accuracy with 95% Wilson intervals (n = {n} documents)", fontsize=9)
    fig.tight_layout()
    save(fig, path)
    return fig


# --------------------------------------------------------------------------------------------
# projections of the scenarios from the measured numbers


def best_strategy(summary: pd.DataFrame, contender: str) -> str:
    """Cheapest strategy per document whose accuracy is not significantly below naive's (the
    upper end of the paired 95% interval of the change is >= 0); naive if none is.

    Cheapest by cost per document when priced, else by busy time per document."""
    g = summary[summary["contender"] == contender]
    ok = g[(g["strategy"] == "naive") | (g["accuracy_diff_high"] >= 0)]
    key = "cost_per_doc_usd" if ok["cost_per_doc_usd"].notna().all() else "busy_per_doc_s"
    return str(ok.sort_values(key).iloc[0]["strategy"]) if len(ok) else "naive"


def _measured_note(r: pd.Series, strategy: str) -> str:
    return (
        f"measured on {r['n_docs']} documents, strategy {strategy}: {r['requests_per_doc']:.3f} "
        f"requests/doc (fallbacks included), mean request {r['mean_e2e_s']:.3f} s, "
        f"{r['input_tokens_per_doc']:.1f} input + {r['output_tokens_per_doc']:.1f} output tokens/doc, "
        f"accuracy {r['accuracy']:.0%} [{r['accuracy_low']:.0%}, {r['accuracy_high']:.0%}]"
    )


def project_scenarios(
    summary: pd.DataFrame,
    prices: Mapping[str, pricing.Price],
    scenarios: ScenarioSet,
    *,
    local: Mapping[str, bool],
    machine_hour_usd: float,
) -> pd.DataFrame:
    """Every scenario × contender × {naive, best strategy}, from this run's measured numbers.

    One row each with the headline time and cost and the list of assumptions it rests on.
    A "request" of a realtime or prototyping scenario is one document of this workload (the
    annotation documents stand in for the scenario's own prompts)."""
    rows: list[dict[str, Any]] = []
    local_note = (
        f"a replica / in-flight slot = one llama.cpp server on this machine at ${machine_hour_usd:g}/hour; "
        "the per-token price is that machine time at the throughput measured in this run"
    )
    for name in summary["contender"].unique():
        best = best_strategy(summary, str(name))
        price = prices.get(str(name))
        is_local = bool(local.get(str(name), False))
        for role, strategy in (("naive", "naive"), ("best", best)):
            sel = summary[(summary["contender"] == name) & (summary["strategy"] == strategy)]
            if sel.empty:
                continue
            r = sel.iloc[0]
            notes = [_measured_note(r, strategy)] + ([local_note] if is_local else [])
            for sname in scenarios:
                scn = scenarios[sname]
                row: dict[str, Any] = {"scenario": sname, "kind": scn.kind, "contender": name,
                                       "role": role, "strategy": strategy}
                if price is None:
                    part: dict[str, Any] = {"time": "n/a", "cost": "no price",
                                            "assumptions": ["no price: not projected"]}
                else:
                    part = scn.lever_projection(r, price, is_local, machine_hour_usd, strategy)
                row.update(part)
                row["assumptions"] = notes + part["assumptions"]
                rows.append(row)
    return pd.DataFrame(rows)


def format_projections(proj: pd.DataFrame) -> str:
    """The projections as text: one block per scenario and contender, assumptions listed."""
    lines: list[str] = []
    for (sname, name), g in proj.groupby(["scenario", "contender"], sort=False):
        lines.append(f"== {sname} · {name}")
        for _, r in g.iterrows():
            lines.append(f"  [{r['role']}: {r['strategy']}] time: {r['time']}; cost: {r['cost']}")
            lines.extend(f"      - {a}" for a in r["assumptions"])
    return "\n".join(lines)


def seed_comparison(summary: pd.DataFrame) -> pd.DataFrame:
    """Each contender's best strategy against the seed report's coalescing figures (−70% requests,
    −45% wall time, −38% cost per document), with the accuracy change and its paired interval."""
    ba = before_after(summary)
    rows = []
    for name in summary["contender"].unique():
        best = best_strategy(summary, str(name))
        r = ba[(ba["contender"] == name) & (ba["strategy"] == best)].iloc[0]
        rows.append({"contender": name, "best strategy": best,
                     "requests": f"{r['requests_change_pct']:+.0f}% (seed -70%)",
                     "wall time": f"{r['wall_change_pct']:+.0f}% (seed -45%)",
                     "cost per doc": f"{r['cost_change_pct']:+.0f}% (seed -38%)",
                     "accuracy": f"{r['accuracy_change_pp']:+.0f} pp [{r['accuracy_change_low_pp']:+.0f}, "
                                 f"{r['accuracy_change_high_pp']:+.0f}]"})
    return pd.DataFrame(rows)


def parse_failures(records: pd.DataFrame, limit: int = 10) -> Any:
    """Coalesced answers that did not label every document (their documents were retried alone)."""
    if "batch_size" not in records:
        return "no coalesced requests"
    bad = records[(records["batch_size"] > 1) & (~records["parse_ok"].astype(bool))]
    if bad.empty:
        return "every batch answer parsed completely"
    return bad[["contender", "strategy", "doc_ids", "parse_detail", "output_text"]].head(limit)
