"""Plots shared by the notebooks and the report; each returns the figure and can save a PNG."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from workbench.analysis.stats import USLFit

__all__ = ["cost_quality_pareto", "hallucination_bars", "in_flight_bars", "latency_ecdf", "overlapping_texts",
           "plot_sweep", "rate_bars", "save", "throughput_vs_concurrency"]


def save(fig: Any, path: str | Path | None) -> None:
    if path is not None:
        fig.savefig(path, dpi=110, bbox_inches="tight")


def _label(ax: Any, xlabel: str | None, ylabel: str, title: str, size: int = 9) -> None:
    """Axis labels, title and legend, the same way on every panel."""
    if xlabel is not None:
        ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=size)
    ax.legend(fontsize=7)


def overlapping_texts(fig: Any) -> list[tuple[str, str]]:
    """Pairs of visible, non-empty texts of `fig` (titles, labels, tick labels, legends,
    annotations) whose boxes overlap once drawn: what makes a plot unreadable at a glance."""
    from matplotlib.text import Text

    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    undrawn = {id(label) for label in _ticks_outside_view(fig)}
    boxes = [(t.get_text(), t.get_window_extent(renderer)) for t in fig.findobj(Text)
             if t.get_visible() and t.get_text().strip() and t.get_alpha() != 0 and id(t) not in undrawn]
    return [(a, b) for i, (a, box_a) in enumerate(boxes) for b, box_b in boxes[i + 1:]
            if box_a.overlaps(box_b) and box_a.width > 0 and box_b.width > 0]


def _ticks_outside_view(fig: Any) -> list[Any]:
    """Tick labels an axis keeps but does not draw (their tick lies outside the view limits):
    visible as objects, absent from the picture."""
    out = []
    for ax in fig.axes:
        for axis in (ax.xaxis, ax.yaxis):
            low, high = sorted(axis.get_view_interval())
            for tick in [*axis.get_major_ticks(), *axis.get_minor_ticks()]:
                loc = tick.get_loc()
                if loc is None or not low <= loc <= high:
                    out += [tick.label1, tick.label2]
    return out


def _done(fig: Any, path: str | Path | None) -> Any:
    fig.tight_layout()
    save(fig, path)
    return fig


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
        n = d.groupby("contender")["contender"].transform("size")
        d = d.assign(ms=d[metric] * 1000.0, label=d["contender"] + " (n=" + n.astype(str) + ")")
        sns.ecdfplot(data=d, x="ms", hue="label", ax=ax)  # each n in its legend line, not a long title
        legend = ax.get_legend()
        if legend is not None:
            legend.set_title("contender")
        ax.set_title(f"{metric.removesuffix('_s').upper()}: share of requests done within x", fontsize=9)
        ax.set_xlabel("milliseconds")
        ax.set_ylabel("share of requests ≤ x")
        ax.axhline(0.95, color="grey", lw=0.6, ls=":")
    fig.tight_layout()
    save(fig, path)
    return fig



def throughput_vs_concurrency(levels: Any, path: str | Path | None = None, slo_s: float | None = None) -> Any:
    """Throughput and p95 E2E against concurrency per contender, with the USL fit where one
    converges (≥ 3 levels). `levels`: `Summary.concurrency_levels()` (label, concurrency, ...)."""
    import matplotlib.pyplot as plt
    import numpy as np

    from workbench.analysis import stats

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 3.8))
    if levels is None or len(levels) == 0:
        ax1.set_title("no concurrency data in this run")
        save(fig, path)
        return fig
    for label, g in levels.groupby("label"):
        g = g.sort_values("concurrency")
        line = ax1.plot(g["concurrency"], g["throughput_rps"], "o", label=str(label))[0]
        try:
            fit = stats.usl_fit(g["concurrency"], g["throughput_rps"])
            xs = np.linspace(1, max(g["concurrency"].max(), 2), 100)  # the tested range only
            ax1.plot(xs, fit.predict(xs), "-", color=line.get_color(), alpha=0.6,
                     label=f"USL σ={fit.sigma:.2f} κ={fit.kappa:.3f} R²={fit.r2:.2f}")
        except ValueError:
            pass
        ax2.plot(g["concurrency"], g["e2e_p95"] * 1000, "o-", color=line.get_color(), label=str(label))
    if slo_s is not None:
        ax2.axhline(slo_s * 1000, color="red", ls="--", lw=0.8, label=f"SLO {slo_s * 1000:g} ms")
    ax1.set_xlabel("concurrency (closed-loop workers)")
    ax1.set_ylabel("completed requests/s")
    ax1.set_title("Throughput vs concurrency, with USL fit", fontsize=9)
    ax1.legend(fontsize=7)
    _label(ax2, "concurrency", "p95 E2E (ms)", "p95 E2E vs concurrency")
    return _done(fig, path)


def rate_bars(rows: Any, path: str | Path | None = None, title: str = "Hallucination") -> Any:
    """Bar chart of rates with 95% interval error bars. `rows`: DataFrame with columns
    contender, metric, value, low, high, n."""
    import matplotlib.pyplot as plt
    import numpy as np

    fig, ax = plt.subplots(figsize=(7, 3.6))
    if rows is None or len(rows) == 0:
        ax.set_title(f"{title}: no data in this run")
        save(fig, path)
        return fig
    metrics = list(dict.fromkeys(rows["metric"]))
    contenders = list(dict.fromkeys(rows["contender"]))
    width = 0.8 / max(len(contenders), 1)
    for i, c in enumerate(contenders):
        sub = rows[rows["contender"] == c].set_index("metric").reindex(metrics)
        x = np.arange(len(metrics)) + i * width
        v = sub["value"].to_numpy(float) * 100
        err = np.vstack([v - sub["low"].to_numpy(float) * 100, sub["high"].to_numpy(float) * 100 - v])
        v, err = np.nan_to_num(v), np.clip(np.nan_to_num(err), 0, None)  # undefined rate: no bar
        n = int(sub["n"].max()) if sub["n"].notna().any() else 0
        ax.bar(x, v, width, yerr=err, capsize=3, label=f"{c} (n={n})")
    ax.set_xticks(np.arange(len(metrics)) + width * (len(contenders) - 1) / 2, metrics)
    _label(ax, None, "% of items (95% interval)", title)
    return _done(fig, path)


def cost_quality_pareto(points: Any, path: str | Path | None = None) -> Any:
    """Cost vs quality per contender and scenario; the Pareto front (nothing both cheaper and
    better) is marked. `points`: DataFrame with scenario, contender, cost, quality, cost_label,
    quality_label. Costs span orders of magnitude (hosted tokens vs a fleet of machines), so the
    cost axis is logarithmic, in plain numbers; a scenario with fewer than one priced contender is
    left out with a line saying so, never drawn as an empty panel."""
    import matplotlib.pyplot as plt
    import numpy as np
    from matplotlib.ticker import FuncFormatter, NullFormatter

    usable = points.dropna(subset=["cost", "quality"]) if points is not None and len(points) else points
    if usable is not None and len(usable):
        usable = usable[(usable["cost"] > 0) & (usable["cost"] < float("inf"))]
    scen = list(dict.fromkeys(usable["scenario"])) if usable is not None and len(usable) else []
    fig, axes = plt.subplots(1, max(len(scen), 1), figsize=(4.6 * max(len(scen), 1), 3.6), squeeze=False)
    if not scen:
        axes[0][0].axis("off")
        axes[0][0].text(0.5, 0.5, "No contender has both a finite cost and a quality measured in this run.",
                        ha="center", va="center", wrap=True, fontsize=9)
    for ax, s in zip(axes[0], scen, strict=False):
        d = usable[usable["scenario"] == s]
        front = [not ((d["cost"] <= r.cost) & (d["quality"] >= r.quality)
                      & ((d["cost"] < r.cost) | (d["quality"] > r.quality))).any() for r in d.itertuples()]
        lo, hi = float(d["cost"].min()), float(d["cost"].max())
        for i, (r, on_front) in enumerate(zip(d.itertuples(), front, strict=True)):
            ax.scatter(r.cost, r.quality * 100, s=60, marker="o" if on_front else "x")
            # names open toward the middle, so the rightmost one stays inside its panel; at one
            # cost (a single column of points) they alternate sides, so close ones do not collide
            side = ("right" if i % 2 else "left") if hi <= lo * 1.01 else (
                "right" if math.log(r.cost / lo) > 0.5 * math.log(hi / lo) else "left")
            ax.annotate(str(r.contender) + (" ★" if on_front else ""), (r.cost, r.quality * 100), fontsize=7,
                        xytext={"left": (4, 4), "right": (-4, 4)}[side], textcoords="offset points", ha=side)
        ax.set_xscale("log")
        ax.margins(x=0.12, y=0.12)
        # Within a decade the log axis labels its minor ticks too, in colliding 2×10⁻¹ strings:
        # three plain ticks across the data instead, no minor labels.
        ax.xaxis.set_minor_formatter(NullFormatter())
        if hi / lo < 10:
            ax.set_xticks(np.geomspace(lo, hi, 3) if hi > lo * 1.01 else [lo])
        ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:.3g}"))
        ax.set_xlabel(f"{d['cost_label'].iloc[0]} (USD, log scale)")
        ax.set_ylabel(f"{d['quality_label'].iloc[0]} (%)")
        ax.set_title(f"{s}: cost vs quality (★ Pareto front)", fontsize=9)
    missing = sorted(set(points["scenario"]) - set(scen)) if points is not None and len(points) else []
    if missing:
        fig.text(0.01, 0.01, f"not shown (no finite cost measured): {', '.join(missing)}", fontsize=7)
    return _done(fig, path)


def hallucination_bars(
    summary: Any,
    rates: tuple[str, ...] = ("hallucination_rate", "abstention_rate", "accuracy_given_attempted"),
    path: str | Path | None = None,
) -> Any:
    """Grouped bars of each rate per contender with their 95% Wilson intervals as error bars.

    `summary` is `workbench.analysis.hallucination.summary_table(df)`. Bars without error bars would
    invite reading a 3-point gap on 24 items as a difference; the whiskers say when it is not."""
    import pandas as pd

    rows = pd.DataFrame([
        {"contender": r["contender"], "metric": rate.replace("_", " "), "value": r[rate],
         "low": r[f"{rate}_low"], "high": r[f"{rate}_high"], "n": r["n"]}
        for _, r in summary.iterrows() for rate in rates
    ])
    return rate_bars(rows, path=path, title="Hallucination, abstention and accuracy (95% Wilson intervals)")


def plot_sweep(summary: Any, fits: dict[str, USLFit | None], slo_e2e_s: float | None, path: Any = None) -> Any:
    """Throughput vs concurrency with the USL curve, and p95 E2E vs concurrency with its CI."""
    import matplotlib.pyplot as plt
    import numpy as np

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 3.8))
    for i, (contender, g) in enumerate(summary.groupby("contender", sort=True)):
        g = g.sort_values("level")
        color = f"C{i}"
        x = g["level"].to_numpy(dtype=float)
        y = g["throughput_rps"].to_numpy(dtype=float)
        yerr = [y - g["throughput_rps_low"].to_numpy(dtype=float),
                g["throughput_rps_high"].to_numpy(dtype=float) - y]
        ax1.errorbar(x, y, yerr=yerr, fmt="o", color=color, capsize=3, label=f"{contender} (measured)")
        fit = fits.get(str(contender))
        if fit is not None:
            inside = np.linspace(1, max(x.max(), 2), 100)
            beyond = np.linspace(max(x.max(), 2), max(x.max(), 2) * 2, 50)
            ax1.plot(inside, fit.predict(inside), "-", color=color, alpha=0.6,
                     label=f"USL σ={fit.sigma:.2f} κ={fit.kappa:.3g} (n={fit.n_points})")
            ax1.plot(beyond, fit.predict(beyond), "--", color=color, alpha=0.4, label="USL extrapolation (untested)")
        p = g["e2e_p95"].to_numpy(dtype=float) * 1000
        perr = [p - g["e2e_p95_low"].to_numpy(dtype=float) * 1000,
                g["e2e_p95_high"].to_numpy(dtype=float) * 1000 - p]
        ax2.errorbar(x, p, yerr=np.nan_to_num(perr), fmt="o-", color=color, capsize=3, label=str(contender))
    if slo_e2e_s is not None:  # None: the SLO is not on this panel's metric (p95 E2E)
        ax2.axhline(slo_e2e_s * 1000, color="grey", ls=":", label=f"SLO {slo_e2e_s * 1000:g} ms")
    for ax, title, ylabel in ((ax1, "Throughput (95% Poisson CI)", "completed requests/s"),
                              (ax2, "p95 E2E (95% order-statistic interval)", "milliseconds")):
        ax.set_xscale("log", base=2)
        _label(ax, "concurrency (closed-loop workers)", ylabel, title, size=10)
    return _done(fig, path)


def in_flight_bars(table: Any, path: str | Path | None = None) -> Any:
    """Per contender, against concurrency: the client's mean requests in flight beside the
    server's own busy slots and deferred queue (from its /metrics). `table`: `capacity.in_flight`."""
    import matplotlib.pyplot as plt

    names = list(dict.fromkeys(table["contender"])) if len(table) else []
    fig, axes = plt.subplots(1, max(len(names), 1), figsize=(5.2 * max(len(names), 1), 3.4), squeeze=False)
    if not names:
        axes[0][0].set_title("no server metrics in this run (hosted contenders report none)")
    for ax, name in zip(axes[0], names, strict=False):
        g = table[table["contender"] == name].sort_values("level")
        x = [str(v) for v in g["level"]]
        ax.plot(x, g["client_in_flight_mean"], "o-", label="client: in flight (mean, Little's law)")
        if "server_requests_processing_mean" in g:
            ax.bar(x, g["server_requests_processing_mean"], alpha=0.5, label="server: busy slots (mean)")
            ax.bar(x, g["server_requests_deferred_mean"], bottom=g["server_requests_processing_mean"], alpha=0.5,
                   label="server: deferred, waiting for a slot (mean)")
        _label(ax, "concurrency (closed-loop workers)", "requests",
               f"{name}: what the client sent vs what the server did")
    return _done(fig, path)
