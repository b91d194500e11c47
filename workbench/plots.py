"""Plots shared by the notebooks and the report; each returns the figure and can save a PNG."""

from __future__ import annotations

from pathlib import Path
from typing import Any

__all__ = ["latency_ecdf", "save"]


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

