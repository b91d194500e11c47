"""Capacity: what a concurrency sweep's records say per level, and across levels.

Per (contender, level) of a closed-loop sweep: throughput (completed requests/s and output
tokens/s over the level's window, with an exact Poisson interval), TTFT/E2E percentiles, the
error rate by class (Wilson), and goodput under an E2E SLO. Across levels: the knee
(`stats.knee_concurrency`, model-free) and a Universal Scalability Law fit (`stats.usl_fit`)
reported with its residual degrees of freedom.

Window of a level = first hand-off to the probe → last response end, over that level's records.
Goodput counts successful requests with E2E <= SLO; a level *meets* the SLO when its p95 E2E
(point value) is within it. The concurrency notebook and the summary's decision read levels
through `level_summary`, so they cannot disagree.
"""

from __future__ import annotations

import math
from typing import Any

from workbench import metrics
from workbench.analysis import stats

__all__ = ["QS", "format_levels", "knee_and_usl", "level_summary", "poisson_rate_ci", "request_ends"]

QS = (50, 95, 99)


def poisson_rate_ci(k: int, window_s: float, ci: float = 0.95) -> stats.Estimate:
    """k events in window_s seconds → rate with the exact (Garwood) Poisson interval.

    Completions of a closed loop are more regular than Poisson, so the interval is conservative.
    """
    from scipy.stats import chi2

    if not window_s > 0:
        return stats.Estimate(math.nan, math.nan, math.nan, k)
    a = 1.0 - ci
    low = 0.0 if k == 0 else float(chi2.ppf(a / 2, 2 * k)) / 2.0 / window_s
    high = float(chi2.ppf(1 - a / 2, 2 * k + 2)) / 2.0 / window_s
    return stats.Estimate(k / window_s, low, high, k)


def request_ends(g: Any) -> Any:
    """When each request ended on the run's clock: hand-off to the probe + the probe's pre-wire
    time + E2E (0 for a record that never got a response; NaN for one never sent)."""
    delay = g["send_delay_s"].fillna(0.0) if "send_delay_s" in g else 0.0
    return g["sent_s"] + delay + g["e2e_s"].fillna(0.0)


def _window(g: Any) -> float:
    """First hand-off to the probe → last response end."""
    return metrics.window_s(g["sent_s"], request_ends(g))


def level_summary(df: Any, slo_e2e_s: float, n_boot: int = 2000) -> Any:
    """One row per (contender, level) of the sweep: counts, throughput, percentiles, errors, goodput.

    Columns ending in `_low` / `_high` are the 95% interval of the column they extend.
    """
    import pandas as pd

    sweep = df[df["phase"] == "sweep"]
    rows = []
    for (contender, level), g in sweep.groupby(["contender", "level"], sort=True):
        ok = g[g["status"] == "ok"]
        window = _window(g)
        row: dict[str, Any] = {"contender": contender, "level": int(level), "sent": len(g), "ok": len(ok),
                               "window_s": window}
        n_good = int((ok["e2e_s"] <= slo_e2e_s).sum())
        rps, tok_s = metrics.throughput(len(ok), float(ok["output_tokens"].fillna(0).sum()), window)
        for name, value, est in (
            ("throughput_rps", rps, poisson_rate_ci(len(ok), window)),
            ("goodput_rps", metrics.goodput(n_good, window), poisson_rate_ci(n_good, window)),
        ):
            row[name], row[f"{name}_low"], row[f"{name}_high"] = value, est.low, est.high
        row["output_tok_s"] = tok_s
        row["tokens_estimated"] = bool(ok["tokens_estimated"].any()) if len(ok) else False
        for metric in ("ttft_s", "e2e_s"):
            for q in QS:
                est = stats.percentile_ci(ok[metric].dropna().to_numpy(dtype=float), q, n_boot=n_boot)
                key = f"{metric.removesuffix('_s')}_p{q}"
                row[key], row[f"{key}_low"], row[f"{key}_high"] = est.value, est.low, est.high
        # The client's own time before each request went out (outside every latency above):
        # large values mean the generator, not the server, was busy.
        delays = ok["send_delay_s"].dropna() if "send_delay_s" in ok else pd.Series(dtype=float)
        row["send_delay_p99"] = float(delays.quantile(0.99)) if len(delays) else math.nan
        err = stats.wilson_interval(len(g) - len(ok), len(g))
        row["error_rate"], row["error_rate_low"], row["error_rate_high"] = err.value, err.low, err.high
        classes = g.loc[g["status"] != "ok", "error_class"].value_counts().to_dict()
        row["errors_by_class"] = ", ".join(f"{k}: {v}" for k, v in sorted(classes.items())) or "none"
        row["meets_slo"] = bool(row["e2e_p95"] <= slo_e2e_s)
        rows.append(row)
    return pd.DataFrame(rows)


def format_levels(summary: Any) -> Any:
    """The level summary as text: value [95% CI], latencies in ms."""
    import pandas as pd

    out = []
    for _, r in summary.iterrows():
        row = {"contender": r["contender"], "concurrency": r["level"], "sent": r["sent"], "ok": r["ok"],
               "req/s": stats.format_interval(r["throughput_rps"], r["throughput_rps_low"], r["throughput_rps_high"],
                                              digits=2),
               "out tok/s": f"{r['output_tok_s']:.1f}" + (" (est.)" if r["tokens_estimated"] else "")}
        for m in ("ttft", "e2e"):
            for q in QS:
                k = f"{m}_p{q}"
                row[f"{m.upper()} p{q} ms"] = stats.format_interval(r[k], r[f"{k}_low"], r[f"{k}_high"], 1000.0, 0)
        row["error rate"] = stats.format_interval(r["error_rate"], r["error_rate_low"], r["error_rate_high"],
                                                  100.0, 0) + " %"
        row["errors"] = r["errors_by_class"]
        row["client send delay p99 ms"] = f"{r['send_delay_p99'] * 1000:.1f}"
        row["goodput req/s"] = stats.format_interval(r["goodput_rps"], r["goodput_rps_low"], r["goodput_rps_high"],
                                                     digits=2)
        out.append(row)
    return pd.DataFrame(out)


def knee_and_usl(summary: Any) -> tuple[Any, dict[str, stats.USLFit | None]]:
    """Per contender: the knee and the USL fit with its quality, as a table; and the fits."""
    import pandas as pd

    rows, fits = [], {}
    for contender, g in summary.groupby("contender", sort=True):
        g = g.sort_values("level")
        levels = g["level"].to_numpy(dtype=float)
        thr = g["throughput_rps"].to_numpy(dtype=float)
        knee = stats.knee_concurrency(levels, g["e2e_p95"].to_numpy(dtype=float), thr)
        row: dict[str, Any] = {"contender": contender, "levels": len(levels), "knee_concurrency": knee}
        fit: stats.USLFit | None = None
        try:
            fit = stats.usl_fit(levels, thr)
        except (ValueError, RuntimeError) as exc:
            row["usl_note"] = str(exc)
        if fit is not None:
            dof = fit.n_points - 3
            row.update(lambda_rps=fit.lambda_, sigma=fit.sigma, kappa=fit.kappa,
                       peak_concurrency=fit.peak_concurrency, peak_throughput_rps=fit.peak_throughput,
                       r2=fit.r2, rmse_rps=fit.rmse, n_points=fit.n_points, residual_dof=dof)
            row["usl_note"] = (
                f"{fit.n_points} points for 3 parameters: {dof} residual degrees of freedom — "
                + ("the curve interpolates the points, r2 says nothing about fit quality"
                   if dof <= 0 else "weak; measure more levels before trusting the peak"
                   if dof < 3 else "r2 and rmse are informative")
            )
        fits[str(contender)] = fit
        rows.append(row)
    return pd.DataFrame(rows), fits
