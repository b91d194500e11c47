"""The context experiment's results: the length axis, read from a run folder's `context.jsonl`.

Each table takes the records as a DataFrame (`load(run_dir)`) and returns a DataFrame, so a
notebook or the report wires one in a line. Definitions (README "Context"):

- **input tokens** of a request: the server's usage count (`input_tokens`), else the document's
  own count (`doc_tokens`, flagged by `doc_token_source`);
- **prefill rate** = server prompt tokens evaluated / server prompt time (`server_prompt_n` /
  `server_prompt_ms`, llama.cpp `timings`), tokens per second, on cold requests only (a warm
  one evaluates only the question);
- **TTFT(length) fit**: least squares TTFT = a + b·(input tokens / 1000) over the cold requests,
  with a pairs-bootstrap interval for b (2,000 resamples; resamples with fewer than two distinct
  lengths are dropped), and the super-linear check: the quadratic coefficient c of TTFT = a' +
  b'·x + c·x², with its bootstrap interval; growth is called super-linear when that interval
  lies above 0;
- **depth**: fraction of the document before the planted fact; accuracy by length × depth is
  correct / graded with a Wilson interval;
- **cached vs uncached**: per document, its cold request against each of its warm ones (same
  document as the prefix, a different question): the TTFT difference, mean with a paired
  bootstrap interval, and the server's cache read (`server_cache_n`) or the API's cached tokens;
- **window**: where each contender stops: the longest document answered, and the window probe's
  outcome (`context_length_exceeded` expected).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from workbench.analysis import distribution, stats

__all__ = ["accuracy_by_depth", "accuracy_heatmap", "cache_table", "cost_by_length", "fit_ttft", "length_table",
           "load", "tables", "ttft_vs_length_plot", "window_table"]

_N_BOOT = 2000


def load(run_dir: str | Path) -> Any:
    """The context experiment's records of a run, with `x_tokens` (the input-token axis) added."""
    from workbench.results import load_records

    df = load_records(run_dir, "context")
    if len(df):
        df = df.copy()
        tokens = df.get("input_tokens")
        df["x_tokens"] = tokens.fillna(df["doc_tokens"]) if tokens is not None else df["doc_tokens"]
    return df


def tables(run_dir: str | Path, contenders: Mapping[str, Any] | None = None,
           machine_hour_usd: float | None = None) -> dict[str, Any]:
    """Every table of a run's context experiment, by name: `lengths`, `fit`, `accuracy`, `cache`,
    `window` and `cost` (empty without `contenders`, name → Contender, to price them; self-hosted
    ones by machine time given `machine_hour_usd`). Empty frames when the run has no context
    records."""
    import pandas as pd

    df = load(run_dir)
    if not len(df):
        return {k: pd.DataFrame() for k in ("lengths", "fit", "accuracy", "cache", "window", "cost")}
    return {"lengths": length_table(df), "fit": fit_ttft(df), "accuracy": accuracy_by_depth(df),
            "cache": cache_table(df), "window": window_table(df),
            "cost": cost_by_length(df, contenders, machine_hour_usd) if contenders else pd.DataFrame()}


def _docs(df: Any) -> Any:
    if not len(df) or "phase" not in df:
        return df.iloc[0:0]
    return df[df["phase"] == "document"]


def _length_key(df: Any) -> Any:
    """The length a row belongs to: the sweep's target, else the document's own count."""
    if "doc_target_tokens" in df and df["doc_target_tokens"].notna().any():
        return df["doc_target_tokens"].fillna(df["doc_tokens"])
    return df["doc_tokens"]


def length_table(df: Any) -> Any:
    """Per contender and length, over cold (uncached) requests: n, input tokens, TTFT and E2E
    medians with order-statistic intervals, server prompt time and prefill rate (tokens/s)."""
    import pandas as pd

    cold = _docs(df)
    cold = cold[(cold["status"] == "ok") & (cold["cache_state"] == "cold")]
    rows = []
    for (contender, length), g in cold.groupby([cold["contender"], _length_key(cold)], sort=True):
        row: dict[str, Any] = {"contender": contender, "length": int(length),
                               "input_tokens": float(g["x_tokens"].median())}
        row.update(distribution.summarize(g["ttft_s"].to_numpy(dtype=float), "ttft", qs=(50,)))
        row.update(distribution.summarize(g["e2e_s"].to_numpy(dtype=float), "e2e", qs=(50,)))
        if "server_prompt_ms" in g and g["server_prompt_ms"].notna().any():
            ms = g["server_prompt_ms"].astype(float)
            row["server_prompt_ms"] = float(ms.median())
            row["prefill_tokens_per_s"] = float((g["server_prompt_n"].astype(float) / ms * 1000.0).median())
        else:
            row["server_prompt_ms"] = row["prefill_tokens_per_s"] = math.nan
        rows.append(row)
    return pd.DataFrame(rows)


def _fit(x: np.ndarray[Any, Any], y: np.ndarray[Any, Any], degree: int) -> np.ndarray[Any, Any] | None:
    if len(np.unique(x)) <= degree:
        return None
    return np.polyfit(x, y, degree)


def fit_ttft(df: Any, *, seed: int = 0) -> Any:
    """Per contender, the TTFT(length) fit over cold requests (see the module docstring):
    intercept_s, slope_s_per_1k with its 95% bootstrap interval, the quadratic coefficient with
    its interval, `superlinear` (True / False / None when the points cannot tell), n points."""
    import pandas as pd

    cold = _docs(df)
    cold = cold[(cold["status"] == "ok") & (cold["cache_state"] == "cold")].dropna(subset=["ttft_s", "x_tokens"])
    rows = []
    rng = np.random.default_rng(seed)
    for contender, g in cold.groupby("contender", sort=True):
        x = g["x_tokens"].to_numpy(dtype=float) / 1000.0
        y = g["ttft_s"].to_numpy(dtype=float)
        lin, quad = _fit(x, y, 1), _fit(x, y, 2)
        row: dict[str, Any] = {"contender": contender, "n": len(x), "max_tokens": float(x.max() * 1000) if len(x) else
                               math.nan, "intercept_s": math.nan, "slope_s_per_1k": math.nan,
                               "slope_low": math.nan, "slope_high": math.nan, "quad_s_per_1k2": math.nan,
                               "quad_low": math.nan, "quad_high": math.nan, "superlinear": None}
        if lin is not None:
            row.update(slope_s_per_1k=float(lin[0]), intercept_s=float(lin[1]))
            slopes, quads = [], []
            for _ in range(_N_BOOT):
                idx = rng.integers(0, len(x), size=len(x))
                b1, b2 = _fit(x[idx], y[idx], 1), _fit(x[idx], y[idx], 2)
                if b1 is not None:
                    slopes.append(b1[0])
                if b2 is not None:
                    quads.append(b2[0])
            if slopes:
                row["slope_low"], row["slope_high"] = (float(v) for v in np.percentile(slopes, [2.5, 97.5]))
            if quad is not None:
                row["quad_s_per_1k2"] = float(quad[0])
                if len(quads) >= _N_BOOT // 2:
                    lo, hi = (float(v) for v in np.percentile(quads, [2.5, 97.5]))
                    row.update(quad_low=lo, quad_high=hi, superlinear=bool(lo > 0) if lo > 0 or hi < 0 or
                               len(x) >= 6 else None)
        rows.append(row)
    return pd.DataFrame(rows)


def accuracy_by_depth(df: Any) -> Any:
    """Per contender, length and depth (the planted depth, rounded to the sweep's target depth
    where there is one; two-fact questions as depth "two facts"): correct / graded with a Wilson
    interval."""
    import pandas as pd

    docs = _docs(df)
    if "correct" not in docs:
        return pd.DataFrame()
    graded = docs[docs["correct"].notna()].copy()
    if not len(graded):
        return pd.DataFrame()
    depth = graded["target_depth"] if "target_depth" in graded else graded["depth"]
    depth = depth.fillna(graded["depth"]) if "depth" in graded else depth
    graded["depth_label"] = [("two facts" if kind == "two_fact" else f"{float(d):.0%}" if d == d else "?")
                             for kind, d in zip(graded["question_kind"], depth, strict=True)]
    graded["length"] = _length_key(graded).astype(int)
    rows = []
    for (contender, length, label), g in graded.groupby(["contender", "length", "depth_label"], sort=True):
        ok = g["correct"].astype(bool)
        est = stats.wilson_interval(int(ok.sum()), len(ok))
        rows.append({"contender": contender, "length": length, "depth": label, "accuracy": est.value,
                     "low": est.low, "high": est.high, "n": est.n})
    return pd.DataFrame(rows)


def cache_table(df: Any, *, seed: int = 0) -> Any:
    """Per contender and length: the cold (uncached) TTFT, the warm (cached) TTFT, their paired
    difference (cold − warm, mean with a bootstrap interval over the pairs: each warm request
    beside its document's cold one) and the cache read (median `server_cache_n`, or the API's
    cached input tokens), plus a row `all` pooling every pair of the contender."""
    import pandas as pd

    docs = _docs(df)
    docs = docs[docs["status"] == "ok"]
    rows = []
    for contender, g in docs.groupby("contender", sort=True):
        pairs: list[tuple[Any, float, float, float]] = []  # (length, cold, warm, cache read)
        for _doc, d in g.groupby("doc_id", sort=False):
            cold = d[d["cache_state"] == "cold"]
            if cold.empty:
                continue
            length = _length_key(d).iloc[0]
            for _, w in d[d["cache_state"] == "warm"].iterrows():
                read = w.get("server_cache_n")
                if read is None or read != read:
                    read = w.get("cached_input_tokens")
                pairs.append((length, float(cold["ttft_s"].iloc[0]), float(w["ttft_s"]),
                              float(read) if read is not None and read == read else math.nan))
        for length in [*sorted({p[0] for p in pairs}), "all"]:
            sel = [p for p in pairs if length == "all" or p[0] == length]
            if not sel:
                continue
            cold_v, warm_v = [p[1] for p in sel], [p[2] for p in sel]
            diff = stats.paired_bootstrap_diff(cold_v, warm_v, n_boot=_N_BOOT, seed=seed)
            reads = [p[3] for p in sel if p[3] == p[3]]
            rows.append({"contender": contender, "length": length if length == "all" else int(length),
                         "cold_ttft_s": float(np.mean(cold_v)), "warm_ttft_s": float(np.mean(warm_v)),
                         "diff_s": diff.value, "diff_low": diff.low, "diff_high": diff.high, "pairs": diff.n,
                         "cache_read_tokens": float(np.median(reads)) if reads else math.nan})
    return pd.DataFrame(rows)


def window_table(df: Any) -> Any:
    """Per contender: its window and where the number comes from, the longest document answered,
    the shortest refused, and the window probe's outcome (the error class it got)."""
    import pandas as pd

    rows = []
    for contender, g in df.groupby("contender", sort=True) if len(df) else []:
        docs, probe = g[g["phase"] == "document"], g[g["phase"] == "window_probe"]
        ok = docs[docs["status"] == "ok"]
        refused = g[g["error_class"] == "context_length_exceeded"]
        window = g["window_tokens"].dropna()
        rows.append({
            "contender": contender,
            "window_tokens": int(window.iloc[0]) if len(window) else None,
            "window_source": g["window_source"].dropna().iloc[0] if g["window_source"].notna().any() else None,
            "longest_answered_tokens": int(ok["x_tokens"].max()) if len(ok) else None,
            "shortest_refused_tokens": int(refused["x_tokens"].min()) if len(refused) and
            refused["x_tokens"].notna().any() else (int(refused["doc_tokens"].min()) if len(refused) else None),
            "probe": (probe["error_class"].iloc[0] or "answered") if len(probe) else "not probed",
        })
    return pd.DataFrame(rows)


def cost_by_length(df: Any, contenders: Mapping[str, Any], machine_hour_usd: float | None = None) -> Any:
    """Per contender and length: USD per document (its cold request: the whole prompt billed
    uncached) and per question on a cached document (a warm one), each priced at its own size
    (`workbench.pricing.sized_request_cost`: long-context tiers apply), with where the rate comes
    from. `contenders`: name → Contender (the session's or the contenders file's). A self-hosted
    contender has no list price: given `machine_hour_usd` (the run's parameter; its own declared
    rate first), each request costs its busy time, E2E × USD per machine-hour (one request at a
    time on the machine, as the experiment sends them)."""
    import pandas as pd

    from workbench.pricing import sized_request_cost

    def machine_cost(c: Any, r: Any) -> tuple[float | None, str]:
        if machine_hour_usd is None or not c.machine_priced or r.get("e2e_s") is None or r["e2e_s"] != r["e2e_s"]:
            return None, ""
        rate = c.machine_hour_usd(machine_hour_usd)
        return float(r["e2e_s"]) * rate / 3600.0, f"machine time: E2E × ${rate:g}/machine-hour (one request at a time)"

    docs = _docs(df)
    docs = docs[docs["status"] == "ok"]
    rows = []
    for (contender, length), g in docs.groupby([docs["contender"], _length_key(docs)], sort=True):
        c = contenders.get(str(contender))
        if c is None:
            continue
        out: dict[str, Any] = {"contender": contender, "length": int(length)}
        for state in ("cold", "warm"):
            s = g[g["cache_state"] == state]
            costs, source = [], ""
            for _, r in s.iterrows():
                usd, source = machine_cost(c, r)
                if usd is None:
                    usd, source = sized_request_cost(c, int(r["x_tokens"]), int(r.get("output_tokens") or 0),
                                                     int(r.get("cached_input_tokens") or 0))
                if usd is not None:
                    costs.append(usd)
            out[f"{state}_usd"] = float(np.mean(costs)) if costs else math.nan
            out["price_source"] = source or out.get("price_source", "")
        rows.append(out)
    return pd.DataFrame(rows)


def ttft_vs_length_plot(df: Any, fits: Any, path: str | Path | None = None, lengths: Any = None) -> Any:
    """Cold TTFT against input tokens per contender, with each fitted line; given `lengths`
    (`length_table`), each length's median TTFT with its 95% order-statistic interval as an
    error bar (a bound the sample cannot support is left off)."""
    import matplotlib.pyplot as plt

    from workbench.analysis.plots import save

    cold = _docs(df)
    cold = cold[(cold["status"] == "ok") & (cold["cache_state"] == "cold")]
    fig, ax = plt.subplots(figsize=(6.4, 3.6))
    for contender, g in cold.groupby("contender", sort=True):
        pts = ax.plot(g["x_tokens"], g["ttft_s"], "o", alpha=0.5, label=str(contender))
        own = lengths[lengths["contender"] == contender] if lengths is not None and len(lengths) else None
        if own is not None and len(own):
            mid = own["ttft_p50"].to_numpy(dtype=float)
            low = np.nan_to_num(mid - own["ttft_p50_low"].to_numpy(dtype=float), nan=0.0)
            high = np.nan_to_num(own["ttft_p50_high"].to_numpy(dtype=float) - mid, nan=0.0)
            ax.errorbar(own["input_tokens"].to_numpy(dtype=float), mid, yerr=[low, high], fmt="_", capsize=4,
                        markersize=12, color=pts[0].get_color())
        fit = fits[fits["contender"] == contender] if len(fits) else fits
        if len(fit) and fit["slope_s_per_1k"].iloc[0] == fit["slope_s_per_1k"].iloc[0]:
            xs = np.linspace(0, float(g["x_tokens"].max()), 50)
            ax.plot(xs, fit["intercept_s"].iloc[0] + fit["slope_s_per_1k"].iloc[0] * xs / 1000.0, "-",
                    color=pts[0].get_color(), alpha=0.6)
    ax.set_xlabel("input tokens")
    ax.set_ylabel("TTFT (s), uncached")
    ax.set_title("TTFT vs input length (points: cold requests; bars: median, 95% interval; lines: fit)",
                 fontsize=9)
    ax.legend(fontsize=8)
    fig.tight_layout()
    save(fig, path)
    return fig


def accuracy_heatmap(table: Any, path: str | Path | None = None) -> Any:
    """Accuracy by length (rows) × depth (columns), one panel per contender, n in each cell."""
    import matplotlib.pyplot as plt

    from workbench.analysis.plots import save

    contenders = sorted(set(table["contender"])) if len(table) else []
    fig, axes = plt.subplots(1, max(1, len(contenders)), figsize=(4.2 * max(1, len(contenders)), 3.2),
                             squeeze=False)
    for ax, contender in zip(axes[0], contenders, strict=False):
        t = table[table["contender"] == contender]
        grid = t.pivot(index="length", columns="depth", values="accuracy")
        ns = t.pivot(index="length", columns="depth", values="n")
        ax.imshow(grid.to_numpy(dtype=float), vmin=0, vmax=1, cmap="RdYlGn", aspect="auto")
        ax.set_xticks(range(len(grid.columns)), list(grid.columns), fontsize=8)
        ax.set_yticks(range(len(grid.index)), [str(i) for i in grid.index], fontsize=8)
        for i in range(grid.shape[0]):
            for j in range(grid.shape[1]):
                v, n = grid.iat[i, j], ns.iat[i, j]
                if v == v:
                    ax.text(j, i, f"{v:.0%}\nn={int(n)}", ha="center", va="center", fontsize=7)
        ax.set_title(str(contender), fontsize=9)
        ax.set_xlabel("depth")
        ax.set_ylabel("length (tokens)")
    fig.tight_layout()
    save(fig, path)
    return fig
