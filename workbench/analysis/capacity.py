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
import warnings
from typing import TYPE_CHECKING, Any, cast

from workbench import metrics
from workbench.analysis import distribution, stats
from workbench.analysis.catalog import format_interval, format_value
from workbench.analysis.quantiles import quantile_ci

if TYPE_CHECKING:
    import pandas as pd


__all__ = ["QS", "format_levels", "in_flight", "knee_and_usl", "level_summary", "poisson_rate_ci", "request_ends"]

QS = distribution.QS


def poisson_rate_ci(k: int, window_s: float, ci: float = 0.95) -> stats.Estimate:
    """k events in window_s seconds → rate with the exact (Garwood) Poisson interval.

    Completions of a closed loop are more regular than Poisson, so the interval is conservative.
    """
    from scipy.stats import chi2

    if not window_s > 0:
        return stats.Estimate(math.nan, math.nan, math.nan, k, "Garwood")
    a = 1.0 - ci
    low = 0.0 if k == 0 else float(chi2.ppf(a / 2, 2 * k)) / 2.0 / window_s
    high = float(chi2.ppf(1 - a / 2, 2 * k + 2)) / 2.0 / window_s
    return stats.Estimate(k / window_s, low, high, k, "Garwood")


def request_ends(g: pd.DataFrame) -> pd.Series:
    """When each request ended on the run's clock: hand-off to the probe + the probe's pre-wire
    time + E2E (0 for a record that never got a response; NaN for one never sent)."""
    delay = g["send_delay_s"].fillna(0.0) if "send_delay_s" in g else 0.0
    return g["sent_s"] + delay + g["e2e_s"].fillna(0.0)


def _window(g: Any) -> float:
    """First hand-off to the probe → last response end."""
    return metrics.window_s(g["sent_s"], request_ends(g))


def level_summary(df: pd.DataFrame, slo: metrics.SLO | float) -> pd.DataFrame:
    """One row per (contender, level) of the sweep: counts, throughput, percentiles, errors, goodput.

    `slo`: the scenario's objective (`metrics.SLO`; a number is seconds of p95 E2E): goodput counts
    the requests within its bound, `meets_slo` says whether the level's percentile is.
    Columns ending in `_low` / `_high` are the 95% interval of the column they extend.
    """
    slo = metrics.SLO.of(slo)
    import pandas as pd

    sweep = df[df["phase"] == "sweep"]
    rows = []
    for (contender, level), g in sweep.groupby(["contender", "level"], sort=True):
        ok = g[g["status"] == "ok"]
        window = _window(g)
        row: dict[str, Any] = {"contender": contender, "level": int(cast("int", level)), "sent": len(g), "ok": len(ok),
                               "window_s": window}
        n_good = int((pd.to_numeric(ok[slo.field], errors="coerce") <= slo.max_s).sum()) if slo.field in ok else 0
        # Output throughput counts visible tokens (reasoning is not output a user receives).
        tokens = (ok["visible_output_tokens"].fillna(ok["output_tokens"]) if "visible_output_tokens" in ok
                  else ok["output_tokens"])
        rps, tok_s = metrics.throughput(len(ok), float(tokens.fillna(0).sum()), window)
        for name, value, est in (
            ("throughput_rps", rps, poisson_rate_ci(len(ok), window)),
            ("goodput_rps", metrics.goodput(n_good, window), poisson_rate_ci(n_good, window)),
        ):
            row[name], row[f"{name}_low"], row[f"{name}_high"] = value, est.low, est.high
        row["output_tok_s"] = tok_s
        row["tokens_estimated"] = bool(ok["tokens_estimated"].any()) if len(ok) else False
        for field in ("ttft_s", "e2e_s"):
            row.update(distribution.summarize(ok[field].to_numpy(dtype=float), distribution.key_of(field)))
        # The client's own time before each request went out (outside every latency above):
        # large values mean the generator, not the server, was busy.
        delays = ok["send_delay_s"].dropna() if "send_delay_s" in ok else pd.Series(dtype=float)
        row["send_delay_p99"] = float(delays.quantile(0.99)) if len(delays) else math.nan
        err = stats.wilson_interval(len(g) - len(ok), len(g))
        row["error_rate"], row["error_rate_low"], row["error_rate_high"] = err.value, err.low, err.high
        classes = g.loc[g["status"] != "ok", "error_class"].value_counts().to_dict()
        row["errors_by_class"] = ", ".join(f"{k}: {v}" for k, v in sorted(classes.items())) or "none"
        at = quantile_ci(pd.to_numeric(ok[slo.field], errors="coerce").to_numpy(dtype=float), slo.percentile).value \
            if slo.field in ok else math.nan
        row["slo_value"] = at  # the level's value of the SLO's percentile
        row["meets_slo"] = bool(at <= slo.max_s)
        rows.append(row)
    return pd.DataFrame(rows)


def format_levels(summary: pd.DataFrame) -> pd.DataFrame:
    """The level summary as text: value [95% CI], latencies in ms."""
    import pandas as pd

    out = []
    for _, r in summary.iterrows():
        row = {"contender": r["contender"], "concurrency": r["level"], "sent": r["sent"], "ok": r["ok"],
               "req/s": format_interval(r["throughput_rps"], r["throughput_rps_low"], r["throughput_rps_high"]),
               "out tok/s": f"{r['output_tok_s']:.1f}" + (" (est.)" if r["tokens_estimated"] else "")}
        for m in ("ttft", "e2e"):
            row[f"{m.upper()} n"] = int(r[f"{m}_n"])
            for q in QS:
                row[f"{m.upper()} p{q} ms"] = distribution.format_cell(r, m, q)
        row["error rate"] = format_value("error_rate", r["error_rate"], r["error_rate_low"], r["error_rate_high"])
        row["errors"] = r["errors_by_class"]
        row["client send delay p99 ms"] = f"{r['send_delay_p99'] * 1000:.1f}"
        row["goodput req/s"] = format_interval(r["goodput_rps"], r["goodput_rps_low"], r["goodput_rps_high"])
        out.append(row)
    return pd.DataFrame(out)


def _ci(values: Any, lo_method: str = "linear", hi_method: str = "linear") -> tuple[float, float]:
    import numpy as np

    v = np.asarray(values, dtype=float)
    v = v[np.isfinite(v)] if np.isfinite(v).any() else v
    if not len(v):
        return math.nan, math.nan
    return (float(np.percentile(v, 2.5, method=lo_method)),  # type: ignore[call-overload]
            float(np.percentile(v, 97.5, method=hi_method)))  # type: ignore[call-overload]


def knee_and_usl(summary: Any, records: Any = None, n_boot: int = 200, seed: int = 0
                 ) -> tuple[Any, dict[str, stats.USLFit | None]]:
    """Per contender: the knee and the USL fit, each with the uncertainty it was decided from.

    With `records` (the sweep's records), B replicates redraw each level's throughput as
    Gamma(k, 1)/window (k completions) and its p95 E2E from the level's resampled requests; the
    knee and the USL parameters are recomputed on each, giving the knee's 95% range and
    intervals for σ, κ and N* (2.5–97.5% of the replicates). A peak N* above the largest tested
    level is reported as "beyond the tested range (> N)": the USL says nothing reliable there."""
    import numpy as np
    import pandas as pd

    rows, fits = [], {}
    rng = np.random.default_rng(seed)
    for contender, g in summary.groupby("contender", sort=True):
        g = g.sort_values("level")
        levels = g["level"].to_numpy(dtype=float)
        thr = g["throughput_rps"].to_numpy(dtype=float)
        p95 = g["e2e_p95"].to_numpy(dtype=float)
        knee, why = stats.knee_explained(levels, p95, thr)
        top = int(levels.max()) if len(levels) else 0
        row: dict[str, Any] = {"contender": contender, "levels": len(levels), "knee_concurrency": knee,
                               "knee_reason": why}
        if len(levels) and thr[0] > 0 and np.isfinite(thr).any():
            best = int(np.nanargmax(thr))  # the batching gain, beside the knee that limits latency
            row.update(best_throughput_level=levels[best], best_throughput_rps=thr[best],
                       best_vs_lowest=thr[best] / thr[0])
        fit: stats.USLFit | None = None
        try:
            fit = stats.usl_fit(levels, thr)
        except (ValueError, RuntimeError) as exc:
            row["usl_note"] = str(exc)
        reps_thr, reps_p95 = _level_replicates(g, records, contender, n_boot, rng)
        if reps_thr is not None and reps_p95 is not None:
            knees = [stats.knee_concurrency(levels, reps_p95[b], reps_thr[b]) for b in range(n_boot)]
            row["knee_low"], row["knee_high"] = _ci([k for k in knees if k is not None], "lower", "higher")
        if fit is not None:
            dof = fit.n_points - 3
            row.update(lambda_rps=fit.lambda_, sigma=fit.sigma, kappa=fit.kappa,
                       peak_concurrency=fit.peak_concurrency, peak_throughput_rps=fit.peak_throughput,
                       r2=fit.r2, rmse_rps=fit.rmse, n_points=fit.n_points, residual_dof=dof)
            if reps_thr is not None:
                boot = []
                for b in range(n_boot):
                    try:
                        f = stats.usl_fit(levels, reps_thr[b])
                    except (ValueError, RuntimeError):
                        continue
                    boot.append((f.sigma, f.kappa, f.peak_concurrency))
                if boot:
                    arr = np.asarray(boot, dtype=float)
                    for i, name in enumerate(("sigma", "kappa", "peak_concurrency")):
                        row[f"{name}_low"], row[f"{name}_high"] = _ci(arr[:, i])
            beyond = not fit.peak_concurrency <= top
            row["peak_note"] = (f"beyond the tested range (> {top})" if beyond
                                else f"N* = {fit.peak_concurrency:.1f}, inside the tested range")
            row["usl_note"] = (
                f"{fit.n_points} points for 3 parameters: {dof} residual degrees of freedom — "
                + ("the curve interpolates the points, r2 says nothing about fit quality"
                   if dof <= 0 else "weak; measure more levels before trusting the peak"
                   if dof < 3 else "r2 and rmse are informative")
            )
        fits[str(contender)] = fit
        rows.append(row)
    return pd.DataFrame(rows), fits


def _level_replicates(g: Any, records: Any, contender: Any, n_boot: int, rng: Any) -> tuple[Any, Any]:
    """(n_boot, levels) throughput and p95 replicates of one contender's sweep, or (None, None)."""
    import numpy as np

    if records is None or records.empty:
        return None, None
    sweep = records[(records["phase"] == "sweep") & (records["contender"] == contender)]
    thr = np.empty((n_boot, len(g)))
    p95 = np.empty((n_boot, len(g)))
    for j, (level, window) in enumerate(zip(g["level"], g["window_s"], strict=True)):
        lv = sweep[sweep["level"] == level]
        ok = lv["status"] == "ok"
        k = int(ok.sum())
        thr[:, j] = rng.gamma(k, 1.0, size=n_boot) / window if k and window > 0 else 0.0
        e2e = np.where(ok, lv["e2e_s"].to_numpy(dtype=float), np.nan)
        idx = rng.integers(0, max(1, len(e2e)), size=(n_boot, len(e2e)))
        with np.errstate(all="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            p95[:, j] = np.nanpercentile(e2e[idx], 95, axis=1, method="inverted_cdf") if len(e2e) else np.nan
    return thr, p95


def in_flight(df: pd.DataFrame, samples: Any) -> pd.DataFrame:
    """Per (contender, level): what the client held in flight — the mean by Little's law, Σ request
    durations / window — beside what the server said it was doing (`<experiment>_server.csv`,
    sampled from /metrics every 0.25 s): busy slots and requests deferred (queued for a slot),
    mean and max. The gap between the client's count and the busy slots is the server's queue."""
    import pandas as pd

    sweep = df[df["phase"] == "sweep"]
    rows = []
    for (contender, level), g in sweep.groupby(["contender", "level"], sort=True):
        window = _window(g)
        durations = (request_ends(g) - g["sent_s"]).clip(lower=0)
        row: dict[str, Any] = {"contender": contender, "level": int(cast("int", level)),
                               "client_in_flight_mean": float(durations.sum()) / window if window > 0 else math.nan}
        s = samples[(samples["contender"] == contender) & (samples["level"] == level)] if len(samples) else samples
        for gauge in ("requests_processing", "requests_deferred"):
            if len(s) and gauge in s:
                row[f"server_{gauge}_mean"] = float(s[gauge].mean())
                row[f"server_{gauge}_max"] = float(s[gauge].max())
        rows.append(row)
    return pd.DataFrame(rows)
