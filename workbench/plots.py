"""Plots shared by the notebooks and the report; each returns the figure and can save a PNG."""

from __future__ import annotations

from pathlib import Path
from typing import Any

__all__ = ["hallucination_bars", "latency_ecdf", "save"]


def save(fig: Any, path: str | Path | None) -> None:
    if path is not None:
        fig.savefig(path, dpi=110, bbox_inches="tight")


def latency_ecdf(df: Any, metrics: tuple[str, ...] = ("ttft_s", "e2e_s"), path: str | Path | None = None) -> Any:
    """ECDF of each latency metric per contender (successful warm requests), in milliseconds.

    An ECDF shows the whole distribution — the tail a p95 summarises and the modes a box plot
    hides — and reads directly as "this share of requests finished within x ms"."""
    import matplotlib.pyplot as plt
    import seaborn as sns

    data = df[(df["status"] == "ok") & (df["phase"] == "warm")] if "phase" in df else df[df["status"] == "ok"]
    fig, axes = plt.subplots(1, len(metrics), figsize=(5.5 * len(metrics), 3.8), squeeze=False)
    for ax, metric in zip(axes[0], metrics, strict=True):
        d = data[["contender", metric]].dropna()
        if d.empty:
            ax.set_title(f"{metric}: no data")
            continue
        d = d.assign(ms=d[metric] * 1000.0)
        sns.ecdfplot(data=d, x="ms", hue="contender", ax=ax)
        n = d.groupby("contender").size().to_dict()
        ax.set_title(f"{metric.removesuffix('_s').upper()} ECDF (n per contender: {n})", fontsize=9)
        ax.set_xlabel("milliseconds")
        ax.set_ylabel("share of requests ≤ x")
        ax.axhline(0.95, color="grey", lw=0.6, ls=":")
    fig.tight_layout()
    save(fig, path)
    return fig



def hallucination_bars(
    summary: Any,
    rates: tuple[str, ...] = ("hallucination_rate", "abstention_rate", "accuracy_given_attempted"),
    path: str | Path | None = None,
) -> Any:
    """Grouped bars of each rate per contender with their 95% Wilson intervals as error bars.

    `summary` is `workbench.hallucination.summary_table(df)`. Bars without error bars would
    invite reading a 3-point gap on 24 items as a difference; the whiskers say when it is not."""
    import matplotlib.pyplot as plt
    import numpy as np

    contenders = list(summary["contender"])
    x = np.arange(len(rates))
    width = 0.8 / max(1, len(contenders))
    fig, ax = plt.subplots(figsize=(max(6.0, 2.2 * len(rates)), 3.8))
    for i, (_, row) in enumerate(summary.iterrows()):
        vals = np.array([row[r] for r in rates], dtype=float)
        lo = np.array([row[f"{r}_low"] for r in rates], dtype=float)
        hi = np.array([row[f"{r}_high"] for r in rates], dtype=float)
        err = np.vstack([np.nan_to_num(vals - lo), np.nan_to_num(hi - vals)])
        ax.bar(x + (i - (len(contenders) - 1) / 2) * width, np.nan_to_num(vals), width,
               yerr=err, capsize=3, label=f"{row['contender']} (n={int(row['n'])})")
    ax.set_xticks(x, [r.replace("_", " ") for r in rates], fontsize=9)
    ax.set_ylim(0, 1)
    ax.set_ylabel("share of items (95% Wilson CI)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    save(fig, path)
    return fig
