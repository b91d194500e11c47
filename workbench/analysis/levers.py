"""Annotation levers, analysed: what coalescing, de-duplication, an answer cache, a cached prompt
prefix and the providers' batch APIs changed.

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
    time is the mean over passes and its min-max range is shown. For `batch-api` the wall time
    is the turnaround: first submission → last results fetched;
  - TTFT p50: order-statistic interval over the strategy's streamed requests;
  - the prefix cache (`prefix_cache_table`): cached vs uncached on the same documents, paired —
    the median of the paired TTFT differences with its order-statistic interval, tokens the server evaluated and
    reused, and the billed cost of each.

The cached-prefix arm's control requests (`control=true`: the same request with the cache off)
are a measurement, not a way to run the workload: every per-strategy number leaves them out
(`cost.arm_records`); only `prefix_cache_table` reads them.
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
from workbench.analysis.catalog import format_estimate
from workbench.config import Contender
from workbench.providers.caching import min_prefix_tokens

if TYPE_CHECKING:
    from workbench.analysis.scenarios import ScenarioSet

__all__ = [
    "ASYNC_STRATEGIES",
    "batch_turnaround",
    "before_after",
    "best_strategy",
    "contender_prices",
    "format_before_after",
    "format_prefix_cache",
    "format_projections",
    "parse_failures",
    "plot_levers",
    "prefix_cache_table",
    "project_scenarios",
    "seed_comparison",
    "strategy_summary",
]


#: Strategies whose answers come back hours later at worst (a batch API): they serve the batch
#: scenario only, never a realtime or interactive one.
ASYNC_STRATEGIES = frozenset({"batch-api"})


def contender_prices(
    contenders: Sequence[Contender], records: pd.DataFrame, machine_hour_usd: float
) -> dict[str, pricing.Price]:
    """Per-token price of each contender: machine-priced ones (embedded, self-hosted) from their
    `price.machine_hour_usd` (else the `machine_hour_usd` parameter) and the throughput
    measured in THIS run (`price_from_throughput` with prefill and decode rates; output-only
    end-to-end rate when no TTFT was measured), hosted ones from `pricing.price_for`. Contenders
    without a price are left out (their cost shows as NaN, never as a guess)."""
    tps = cost.measured_throughput(records)
    prices: dict[str, pricing.Price] = {}
    for c in contenders:
        t = tps.get(c.name)
        if c.machine_priced:  # embedded or self-hosted: machine time at this run's throughput
            local = cost.local_price(t, c.machine_hour_usd(machine_hour_usd))
            if local is not None:
                prices[c.name] = local
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


def _busy_s(g: pd.DataFrame) -> pd.Series:
    """Seconds each request kept a server busy: its E2E; for a batch API item (whose e2e is the
    batch's turnaround) the server's own prompt + generation time where it reports one (llama.cpp
    `timings`), else unknown (NaN)."""
    e2e = pd.to_numeric(g["e2e_s"], errors="coerce").astype(float)
    batch = cost.flagged(g, "batch_api")
    if not batch.any():
        return e2e
    server = (pd.to_numeric(g["server_prompt_ms"], errors="coerce")
              + pd.to_numeric(g["server_predicted_ms"], errors="coerce")) / 1000.0 \
        if "server_prompt_ms" in g and "server_predicted_ms" in g else pd.Series(np.nan, index=g.index)
    return e2e.where(~batch, server.astype(float))


def strategy_summary(
    records: pd.DataFrame, outcomes: pd.DataFrame, prices: Mapping[str, pricing.Price], n_boot: int = 2000
) -> pd.DataFrame:
    """One row per (contender, strategy): counts, wall/busy time, TTFT, tokens (cached and
    cache-written among them), cost and accuracy per document, each statistic with its 95%
    interval and n (see the module docstring for which). A batch API row's wall time is its
    turnaround (also `turnaround_s`), its busy time the server's own where reported, its cost at
    the batch rate."""
    records = cost.arm_records(records)
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
        busy = _busy_s(g)
        is_batch = bool(cost.flagged(g, "batch_api").any())
        e2e = stats.mean_ci(busy, n_boot=n_boot)
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
            **stats.estimate_columns("parse_fail_rate", pf),
            "cache_hits": int((all_o["source"] == "cache").sum()) / n_pass,
            "fanouts": int((all_o["source"] == "fanout").sum()) / n_pass,
            "wall_s": float(np.mean(walls)), "wall_min_s": min(walls), "wall_max_s": max(walls),
            "wall_per_doc_s": float(np.mean(walls)) / n_docs,
            **stats.estimate_columns("busy_per_doc_s", e2e, per_doc),
            "mean_e2e_s": e2e.value,
            **distribution.summarize(busy.to_numpy(dtype=float), "e2e", qs=(95,)),
            **distribution.summarize(pd.to_numeric(g["ttft_s"], errors="coerce").to_numpy(dtype=float)
                                     if "ttft_s" in g else np.array([]), "ttft", qs=(50,)),
            "docs_per_busy_s": n_docs * n_pass / float(busy.sum()) if busy.notna().any() else math.nan,
            "batch_api": is_batch,
            "turnaround_s": float(np.mean(walls)) if is_batch else math.nan,
            "batch_concurrency": float(pd.to_numeric(g["batch_concurrency"], errors="coerce").max())
            if is_batch and "batch_concurrency" in g else math.nan,
            "batch_window_h": float(pd.to_numeric(g["batch_window_h"], errors="coerce").max())
            if is_batch and "batch_window_h" in g else math.nan,
            "batch_window_source": str(g["batch_window_source"].dropna().iloc[0])
            if is_batch and "batch_window_source" in g and g["batch_window_source"].notna().any() else "",
            "input_tokens_per_doc": float(pd.to_numeric(g["input_tokens"]).sum()) / n_pass / n_docs,
            "cached_tokens_per_doc": float(cost.cached_tokens(g).sum()) / n_pass / n_docs,
            "cache_write_tokens_per_doc": float(pd.to_numeric(g["cache_creation_input_tokens"], errors="coerce")
                                                .sum()) / n_pass / n_docs if "cache_creation_input_tokens" in g
            else 0.0,
            "output_tokens_per_doc": float(pd.to_numeric(g["output_tokens"]).sum()) / n_pass / n_docs,
            "tokens_estimated_share": float(est.mean()) if len(est) else math.nan,
            **stats.estimate_columns("cost_per_doc_usd", c, per_doc),
            **stats.estimate_columns("accuracy", acc),
            "accuracy_diff": diff.value, "accuracy_diff_low": diff.low, "accuracy_diff_high": diff.high,
        })
    return pd.DataFrame(rows)


def _rel(x: float, base: float) -> float:
    return (x / base - 1.0) * 100.0 if base and not math.isnan(base) else math.nan


def before_after(summary: pd.DataFrame) -> pd.DataFrame:
    """Relative change vs naive per contender: requests, wall time, cost per document (%), and
    accuracy (percentage points, with its paired 95% interval).

    Requests and wall time are compared per document: the cached-prefix and batch-api arms may
    label fewer documents than naive (`lever_docs`), and with the same documents per document is
    the same ratio."""
    rows = []
    for name, g in summary.groupby("contender", sort=False):
        base = g[g["strategy"] == "naive"]
        if base.empty:
            continue
        b = base.iloc[0]
        for _, r in g.iterrows():
            rows.append({
                "contender": name, "strategy": r["strategy"],
                "requests": r["requests"],
                "requests_change_pct": _rel(r["requests_per_doc"], b["requests_per_doc"]),
                "wall_s": r["wall_s"], "wall_change_pct": _rel(r["wall_per_doc_s"], b["wall_per_doc_s"]),
                "cost_per_doc_usd": r["cost_per_doc_usd"],
                "cost_change_pct": _rel(r["cost_per_doc_usd"], b["cost_per_doc_usd"]),
                "accuracy": r["accuracy"], "accuracy_change_pp": r["accuracy_diff"] * 100.0,
                "accuracy_change_pp_low": r["accuracy_diff_low"] * 100.0,
                "accuracy_change_pp_high": r["accuracy_diff_high"] * 100.0,
            })
    return pd.DataFrame(rows)


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
            "batch parse failures [95% CI]": "—" if r["parse_fail_rate_n"] == 0 else
            format_estimate(stats.estimate_from(r, "parse_fail_rate"), scale=100, unit="%"),
            "wall s (Δ)": ("turnaround " if r.get("batch_api") is True else "")
            + f"{r['wall_s']:.1f} ({_pct(d['wall_change_pct'])})",
            "TTFT p50 ms [95% CI]": distribution.format_cell(r, "ttft", 50) if r.get("ttft_n", 0) else "—",
            "busy ms/doc [95% CI]": format_estimate(stats.estimate_from(r, "busy_per_doc_s"), scale=1e3),
            "tokens/doc in+out": f"{r['input_tokens_per_doc']:.0f}+{r['output_tokens_per_doc']:.1f}"
            + (f" ({r['cached_tokens_per_doc']:.0f} in cached)" if r.get("cached_tokens_per_doc", 0) > 0 else "")
            + (" (est.)" if r["tokens_estimated_share"] > 0 else ""),
            "µ$/doc [95% CI] (Δ)": format_estimate(stats.estimate_from(r, "cost_per_doc_usd"), scale=1e6)
            + f" ({_pct(d['cost_change_pct'])})",
            "accuracy [95% CI]": format_estimate(stats.estimate_from(r, "accuracy"), "annotation_accuracy"),
            "Δ accuracy pp [95% CI]": "—" if r["strategy"] == "naive" else
            format_estimate(stats.estimate_from(d, "accuracy_change_pp")),
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


def best_strategy(summary: pd.DataFrame, contender: str, *, asynchronous: bool = True) -> str:
    """Cheapest strategy per document whose accuracy is not significantly below naive's (the
    upper end of the paired 95% interval of the change is >= 0); naive if none is.

    Cheapest by cost per document when priced, else by busy time per document. `asynchronous`
    False leaves out the strategies that answer hours later (a batch API): not for a scenario
    whose user waits."""
    g = summary[summary["contender"] == contender]
    if not asynchronous:
        g = g[~g["strategy"].isin(ASYNC_STRATEGIES)]
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
    machine_hour_usd: float | Mapping[str, float],
) -> pd.DataFrame:
    """Every scenario × contender × {naive, best strategy}, from this run's measured numbers.
    `local`: contender → machine-priced (embedded or self-hosted); `machine_hour_usd`: one price,
    or each contender's (`Contender.machine_hour_usd`).

    One row each with the headline time and cost and the list of assumptions it rests on.
    A "request" of a realtime or prototyping scenario is one document of this workload (the
    annotation documents stand in for the scenario's own prompts)."""
    rows: list[dict[str, Any]] = []
    for name in summary["contender"].unique():
        price = prices.get(str(name))
        is_local = bool(local.get(str(name), False))
        hourly = (machine_hour_usd if isinstance(machine_hour_usd, (int, float))
                  else float(machine_hour_usd.get(str(name), math.nan)))
        local_note = (f"a replica / in-flight slot = one model server at ${hourly:g}/hour; the per-token price is "
                      "that machine time at the throughput measured in this run")
        for sname in scenarios:
            scn = scenarios[sname]
            best = best_strategy(summary, str(name), asynchronous=scn.asynchronous)
            for role, strategy in (("naive", "naive"), ("best", best)):
                sel = summary[(summary["contender"] == name) & (summary["strategy"] == strategy)]
                if sel.empty:
                    continue
                r = sel.iloc[0]
                notes = [_measured_note(r, strategy)] + ([local_note] if is_local else [])
                row: dict[str, Any] = {"scenario": sname, "kind": scn.kind, "contender": name,
                                       "role": role, "strategy": strategy}
                if price is None:
                    part: dict[str, Any] = {"time": "n/a", "cost": "no price",
                                            "assumptions": ["no price: not projected"]}
                else:
                    projected = scn.lever_projection(r, price, is_local, hourly, strategy)
                    if projected is None:  # this kind projects no lever
                        continue
                    part = projected
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
        best = best_strategy(summary, str(name), asynchronous=False)
        r = ba[(ba["contender"] == name) & (ba["strategy"] == best)].iloc[0]
        rows.append({"contender": name, "best strategy": best,
                     "requests": f"{r['requests_change_pct']:+.0f}% (seed -70%)",
                     "wall time": f"{r['wall_change_pct']:+.0f}% (seed -45%)",
                     "cost per doc": f"{r['cost_change_pct']:+.0f}% (seed -38%)",
                     "accuracy": f"{r['accuracy_change_pp']:+.0f} pp [{r['accuracy_change_pp_low']:+.0f}, "
                                 f"{r['accuracy_change_pp_high']:+.0f}]"})
    return pd.DataFrame(rows)


def prefix_cache_table(records: pd.DataFrame, prices: Mapping[str, pricing.Price] | None = None,
                       contenders: Sequence[Contender] = ()) -> pd.DataFrame:
    """The cached-prefix arm, cached vs uncached on the same documents, one row per contender.

    Pairs: each document's lever request (`prefix_cache` on) with its control (the same request
    with the cache off), both successful. Per side: TTFT p50 with its order-statistic interval;
    the mean prompt tokens (`input`), read from the cache (`cached`: the API's count, else
    llama.cpp's `cache_n`), written to it (Anthropic), evaluated by the server (llama.cpp
    `prompt_n`) and its prompt milliseconds; the mean billed cost per document (cache reads and
    writes at their own rates; NaN without a price). Then the median of the paired TTFT differences
    (cached − uncached) with its order-statistic interval and n (6 pairs is the fewest that has
    both bounds). A contender whose API caches implicitly
    has no control: its row has the cached side only and says so.

    With `contenders`, each row also has the shortest prefix the API caches
    (`min_prefix_tokens`, its source in `min_prefix_source`; NaN for the embedded models, which
    reuse any common prefix): a hosted API caches nothing shorter, so a row whose prompts are
    shorter measured an uncacheable prompt, not the lever (`format_prefix_cache` says so)."""
    if "strategy" not in records:
        return pd.DataFrame()
    arm = records[(records["strategy"] == "cached-prefix") & (records["status"] == "ok")]
    if prices:
        arm = cost.cost_frame(arm, dict(prices))
    minimums = {c.name: min_prefix_tokens(c) for c in contenders}
    rows: list[dict[str, Any]] = []
    for name, g in arm.groupby("contender", sort=False):
        on, off = g[~cost.flagged(g, "control")], g[cost.flagged(g, "control")]
        keys = ["repeat", "prompt_id"]
        # the lever requests beside their control's TTFT, and the controls whose lever request succeeded
        paired = on.merge(off[[*keys, "ttft_s"]], on=keys, suffixes=("", "_off")) if len(off) else on
        control = off.merge(on[[*keys]], on=keys)
        least, source = minimums.get(str(name), (None, ""))
        row: dict[str, Any] = {"contender": name, "control": bool(len(off)), "pairs": len(paired) if len(off) else 0,
                               "cached_requests": len(on),
                               "min_prefix_tokens": math.nan if least is None else least, "min_prefix_source": source}
        for side, part in (("uncached", control), ("cached", paired)):
            row.update(distribution.summarize(pd.to_numeric(part["ttft_s"], errors="coerce").to_numpy(dtype=float),
                                              f"{side}_ttft", qs=(50,)))

            def mean(col: str, frame: pd.DataFrame = part) -> float:
                return float(pd.to_numeric(frame[col], errors="coerce").mean()) if col in frame and len(frame) \
                    else math.nan

            row[f"{side}_input_tokens"] = mean("input_tokens")
            row[f"{side}_cached_tokens"] = float(cost.cached_tokens(part).mean()) if len(part) else math.nan
            row[f"{side}_cache_write_tokens"] = mean("cache_creation_input_tokens")
            row[f"{side}_evaluated_tokens"] = mean("server_prompt_n")
            row[f"{side}_prompt_ms"] = mean("server_prompt_ms")
            row[f"{side}_cost_per_doc_usd"] = mean("cost_usd") if prices else math.nan
        diff = (pd.to_numeric(paired["ttft_s"], errors="coerce").to_numpy(dtype=float)
                - pd.to_numeric(paired["ttft_s_off"], errors="coerce").to_numpy(dtype=float)) if len(off) else []
        row.update(distribution.summarize(np.asarray(diff, dtype=float), "ttft_diff", qs=(50,)))
        rows.append(row)
    return pd.DataFrame(rows)


def _prefix_side(r: pd.Series, s: str) -> str:
    if r[f"{s}_ttft_p50"] != r[f"{s}_ttft_p50"]:
        return "—"
    ttft = f"{distribution.format_cell(r, f'{s}_ttft', 50)} ms, n={int(r[f'{s}_ttft_n'])}"
    toks = f"{r[f'{s}_input_tokens']:.0f} in, {r[f'{s}_cached_tokens']:.0f} cached"
    if r[f"{s}_evaluated_tokens"] == r[f"{s}_evaluated_tokens"]:
        toks += f", {r[f'{s}_evaluated_tokens']:.0f} evaluated in {r[f'{s}_prompt_ms']:.0f} ms"
    if r[f"{s}_cache_write_tokens"] == r[f"{s}_cache_write_tokens"] and r[f"{s}_cache_write_tokens"] > 0:
        toks += f", {r[f'{s}_cache_write_tokens']:.0f} written"
    price = r[f"{s}_cost_per_doc_usd"]
    return f"TTFT p50 {ttft}; {toks}" + (f"; {price * 1e6:.3g} µ$/doc" if price == price else "")


def _cacheable(r: pd.Series) -> str:
    """Whether the prompts were long enough for the API to cache them at all."""
    least = r.get("min_prefix_tokens", math.nan)
    if least != least:
        return "any common prefix"
    prompt = r["cached_input_tokens"]
    if prompt == prompt and prompt < least:
        return (f"no: prompts of {prompt:,.0f} tokens, the API caches from {least:,.0f} ({r['min_prefix_source']}) — "
                "this row measured an uncacheable prompt, not the lever")
    return f"yes: from {least:,.0f} tokens ({r['min_prefix_source']})"


def format_prefix_cache(table: pd.DataFrame) -> pd.DataFrame:
    """`prefix_cache_table` in words: per contender, uncached → cached."""
    out = []
    for _, r in table.iterrows():
        out.append({
            "contender": r["contender"],
            "long enough to cache": _cacheable(r),
            "documents paired": int(r["pairs"]) if r["control"] else "no control: the API caches implicitly",
            "uncached (control)": _prefix_side(r, "uncached"), "cached": _prefix_side(r, "cached"),
            "Δ TTFT median ms [95% CI] (paired)": "—" if not r["control"] else
            f"{distribution.format_cell(r, 'ttft_diff', 50)} n={int(r['ttft_diff_n'])}",
        })
    return pd.DataFrame(out)


def batch_turnaround(records: pd.DataFrame, summary: pd.DataFrame) -> pd.DataFrame:
    """The batch-api arm beside the synchronous naive pass, one row per contender.

    Turnaround (first submission → last results fetched, polling included: a point measurement
    of one pass, the mean over passes) against naive's wall time, both also per document because
    the arm may label fewer documents (`lever_docs`); the server's own time per document (busy,
    from llama.cpp `timings`, NaN for a provider); how the items ended (`batch_outcome`) and in
    how many batches; and the completion window a plan must assume (the provider's, or measured)."""
    if "strategy" not in summary or not (summary["strategy"] == "batch-api").any():
        return pd.DataFrame()
    arm = records[records["strategy"] == "batch-api"] if "strategy" in records else records.iloc[:0]
    rows = []
    for _, b in summary[summary["strategy"] == "batch-api"].iterrows():
        name = b["contender"]
        naive = summary[(summary["contender"] == name) & (summary["strategy"] == "naive")]
        n = naive.iloc[0] if len(naive) else None
        g = arm[arm["contender"] == name]
        outcomes = g["batch_outcome"].fillna("none").value_counts() if "batch_outcome" in g else pd.Series(dtype=int)
        window = b["batch_window_h"]
        rows.append({
            "contender": name, "documents": int(b["n_docs"]),
            "batches": int(g["batch_id"].nunique()) if "batch_id" in g else 0,
            "turnaround s": round(float(b["turnaround_s"]), 2),
            "turnaround s/doc": round(float(b["wall_per_doc_s"]), 3),
            "naive wall s (docs)": f"{n['wall_s']:.2f} ({int(n['n_docs'])})" if n is not None else "—",
            "naive wall s/doc": round(float(n["wall_per_doc_s"]), 3) if n is not None else math.nan,
            "turnaround / naive per doc": round(float(b["wall_per_doc_s"] / n["wall_per_doc_s"]), 2)
            if n is not None and n["wall_per_doc_s"] > 0 else math.nan,
            "server busy ms/doc": round(float(b["busy_per_doc_s"]) * 1e3, 1),
            "items": ", ".join(f"{k} {v}" for k, v in outcomes.items()),
            "window to plan with": f"{window:g} h — {b['batch_window_source']}" if window == window
            else f"measured: {int(b['batch_concurrency']) if b['batch_concurrency'] == b['batch_concurrency'] else '?'}"
                 " items at once on the local endpoint",
        })
    return pd.DataFrame(rows)


def parse_failures(records: pd.DataFrame, limit: int = 10) -> Any:
    """Coalesced answers that did not label every document (their documents were retried alone)."""
    if "batch_size" not in records:
        return "no coalesced requests"
    bad = records[(records["batch_size"] > 1) & (~records["parse_ok"].astype(bool))]
    if bad.empty:
        return "every batch answer parsed completely"
    return bad[["contender", "strategy", "doc_ids", "parse_detail", "output_text"]].head(limit)
