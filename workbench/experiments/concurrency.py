"""Concurrency experiment: how latency and throughput move as concurrent requests rise.

Per contender, one closed-loop run per concurrency level (lowest first) after one warm-up
request, all on one shared client. Per level: throughput (completed requests/s and output
tokens/s over the level's window, with an exact Poisson interval), TTFT/E2E p50/p95/p99 with
bootstrap intervals, error rate by class (Wilson), and goodput under an E2E SLO. Across levels:
the knee (`stats.knee_concurrency`, model-free), a Universal Scalability Law fit
(`stats.usl_fit`) reported with its residual degrees of freedom, and a fleet projection
(`cost.project_realtime`) to a target rate under the SLO.

With a spend budget (`session.budget`, the notebook's `budget_usd`), every request's worst case
is held while it is in flight (`workbench.budget.Budget.reserve`); the first request the budget
refuses is a `cancelled` record and the sweep ends there, for every contender (one budget).

Window of a level = first send → last response end, over that level's records. Goodput counts
successful requests with E2E <= SLO; a level *meets* the SLO when its p95 E2E (point value)
is within it.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from workbench import metrics, stats
from workbench.aio import run_sync
from workbench.config import Contender
from workbench.cost import price_for, price_from_throughput, project_realtime, request_cost
from workbench.load import LoadResult, LoadTarget, closed_loop
from workbench.load.common import ClientShards
from workbench.session import Session
from workbench.types import Prompt

__all__ = [
    "Projection",
    "client_warnings",
    "format_levels",
    "knee_and_usl",
    "level_summary",
    "plot_sweep",
    "poisson_rate_ci",
    "project_fleet",
    "request_ends",
    "run_sweep",
]

QS = (50, 95, 99)


async def _sweep(
    session: Session, prompts: Sequence[Prompt], levels: Sequence[int], requests_per_level: int,
    max_duration_per_level_s: float, stream: bool, ramp_s: float = 0.0,
) -> list[dict[str, Any]]:
    loadgen: list[dict[str, Any]] = []
    with session.writer() as writer:
        for c in session.contenders:
            target = LoadTarget(c, session.base_url(c), prompts, session.token_counter(c), stream,
                                budget=session.budget)
            # One set of connections per contender, kept across levels (no reconnects mid-sweep),
            # sharded so the client's CPU per request does not grow with the level.
            async with ClientShards.for_pool(None, max(levels), c.timeout_s) as client:
                await closed_loop(target, concurrency=1, n_requests=1,
                                  max_duration_s=max_duration_per_level_s, client=client,
                                  on_record=writer.write, run_id=session.run_id,
                                  experiment=session.experiment, request_prefix=f"{c.name}:warmup:",
                                  extra={"phase": "warmup", "level": 1})
                for level in sorted(set(levels)):
                    res: LoadResult = await closed_loop(
                        target, concurrency=level, n_requests=max(requests_per_level, level),
                        max_duration_s=max_duration_per_level_s, client=client, on_record=writer.write,
                        run_id=session.run_id, experiment=session.experiment,
                        request_prefix=f"{c.name}:c{level}:", extra={"phase": "sweep", "level": level},
                        ramp_s=ramp_s if level > 1 else 0.0,
                    )
                    loadgen.append({"contender": c.name, "level": level, **res.summary(),
                                    "client_notes": res.client.notes, "notes": res.notes})
                    if res.budget_stopped:
                        print(f"stopped: {c.name} at concurrency {level}: {'; '.join(res.notes)}")
                        break
                if target.budget is not None and target.budget.refused:
                    break  # the budget is shared by every contender: the sweep ends here
    (session.run.path / f"{session.experiment}_loadgen.json").write_text(json.dumps(loadgen, indent=1))
    return loadgen


def run_sweep(
    session: Session, prompts: Sequence[Prompt], *, levels: Sequence[int] = (1, 2, 4),
    requests_per_level: int = 8, max_duration_per_level_s: float = 60.0, stream: bool = True,
    ramp_s: float = 0.0,
) -> list[dict[str, Any]]:
    """Run the sweep; records go to `<run>/<experiment>.jsonl` as they complete.

    `ramp_s` > 0 spreads each level's worker starts over that many seconds (`closed_loop`):
    the steady state instead of N requests in the same instant every round.

    Each level sends max(requests_per_level, level) requests, so every worker sends at least
    one. Returns the load generator's own per-level figures (also saved as
    `<experiment>_loadgen.json`): loop lag, client CPU share, and whether the client limited.
    """
    if not levels or min(levels) < 1:
        raise ValueError("levels must be a non-empty list of integers >= 1")
    if requests_per_level < 1:
        raise ValueError("requests_per_level must be >= 1")
    if not 0 <= ramp_s < max_duration_per_level_s:
        raise ValueError(f"ramp_s must be in [0, max_duration_per_level_s={max_duration_per_level_s:g})")
    return run_sync(_sweep(session, prompts, levels, requests_per_level, max_duration_per_level_s, stream, ramp_s))


def client_warnings(loadgen: Sequence[dict[str, Any]]) -> list[str]:
    """One line per run in which the client, not the server, may have limited the numbers."""
    return [f"{row['contender']} @ concurrency {row['level']}: {row['client_limited']}"
            for row in loadgen if row.get("client_limited")]


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


@dataclass
class Projection:
    """A fleet projection for one contender, with every assumption spelled out."""

    contender: str
    feasible: bool
    basis_level: int | None
    replica_goodput_rps: float | None
    replicas: int | None = None
    cost_per_hour_usd: float | None = None
    cost_per_1k_requests_usd: float | None = None
    price_note: str = ""
    assumptions: list[str] = field(default_factory=list)


def project_fleet(
    summary: Any, df: Any, contenders: Sequence[Contender], *, target_qps: float, slo_e2e_s: float,
    machine_hour_usd: float, respect_slo: bool = True,
) -> list[Projection]:
    """Replicas and cost/hour to serve `target_qps`, from the best measured level.

    Basis: among levels whose p95 E2E meets the SLO (all levels if `respect_slo` is False), the
    one with the highest goodput (throughput if not respecting the SLO). Local contenders pay
    `machine_hour_usd` per replica (whole machines, no per-token charge; the per-token
    equivalent from `cost.price_from_throughput` is shown for comparison); hosted ones pay
    their per-token price for the measured mean tokens per request.
    """
    out = []
    for c in contenders:
        g = summary[summary["contender"] == c.name]
        cand = g[g["meets_slo"]] if respect_slo else g
        col = "goodput_rps" if respect_slo else "throughput_rps"
        cand = cand[cand[col] > 0]
        if cand.empty:
            lowest = g.sort_values("level").head(1)
            p95 = float(lowest["e2e_p95"].iloc[0]) if len(lowest) else math.nan
            out.append(Projection(c.name, False, None, None, assumptions=[
                f"no measured level has p95 E2E within the SLO {slo_e2e_s * 1000:g} ms (at the lowest "
                f"level p95 = {p95 * 1000:.0f} ms): adding replicas does not lower latency, so no fleet "
                "of this contender meets the SLO on this hardware"]))
            continue
        best = cand.sort_values(col, ascending=False).iloc[0]
        rps, level = float(best[col]), int(best["level"])
        ok = df[(df["contender"] == c.name) & (df["phase"] == "sweep") & (df["level"] == level)
                & (df["status"] == "ok")]
        mean_in = float(ok["input_tokens"].fillna(0).mean())
        mean_out = float(ok["output_tokens"].fillna(0).mean())
        if c.is_local:
            tok_price = price_from_throughput(machine_hour_usd, float(best["output_tok_s"]))
            note = (f"self-hosted: ${machine_hour_usd:g}/machine-hour per replica (parameter); per-token "
                    f"equivalent at the measured {best['output_tok_s']:.1f} output tok/s: "
                    f"${tok_price.output:.2f}/1M output tokens")
            proj = project_realtime(target_qps, 0.0, rps, replica_hour_usd=machine_hour_usd)
        else:
            price = price_for(c)
            if price is None or not price.per_token:
                out.append(Projection(c.name, False, level, rps, price_note="no per-token price known",
                                      assumptions=["give the contender a price: in the contenders file"]))
                continue
            per_req = request_cost(price, mean_in, mean_out)
            note = f"{price.source}: ${price.input}/1M in, ${price.output}/1M out"
            proj = project_realtime(target_qps, per_req, rps)
        lo, hi = best[col + "_low"], best[col + "_high"]
        basis = (f"basis: concurrency {level}, {'goodput' if respect_slo else 'throughput'} "
                 f"{rps:.2f} req/s [{lo:.2f}, {hi:.2f}] (n={int(best['ok'])} ok), "
                 f"p95 E2E {best['e2e_p95'] * 1000:.0f} ms; "
                 f"mean {mean_in:.0f} input / {mean_out:.1f} output tokens per request")
        out.append(Projection(c.name, True, level, rps, proj.replicas, proj.cost_per_hour_usd,
                              proj.cost_per_1k_requests_usd, note, [basis, *proj.assumptions]))
    return out


def plot_sweep(summary: Any, fits: dict[str, stats.USLFit | None], slo_e2e_s: float, path: Any = None) -> Any:
    """Throughput vs concurrency with the USL curve, and p95 E2E vs concurrency with its CI."""
    import matplotlib.pyplot as plt
    import numpy as np

    from workbench.plots import save

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
            xs = np.linspace(1, max(x.max() * 2, 2), 100)
            ax1.plot(xs, fit.predict(xs), "-", color=color, alpha=0.6,
                     label=f"USL σ={fit.sigma:.2f} κ={fit.kappa:.3g} (n={fit.n_points})")
        p = g["e2e_p95"].to_numpy(dtype=float) * 1000
        perr = [p - g["e2e_p95_low"].to_numpy(dtype=float) * 1000,
                g["e2e_p95_high"].to_numpy(dtype=float) * 1000 - p]
        ax2.errorbar(x, p, yerr=np.nan_to_num(perr), fmt="o-", color=color, capsize=3, label=str(contender))
    ax2.axhline(slo_e2e_s * 1000, color="grey", ls=":", label=f"SLO {slo_e2e_s * 1000:g} ms")
    for ax, title, ylabel in ((ax1, "Throughput (95% Poisson CI)", "completed requests/s"),
                              (ax2, "p95 E2E (95% bootstrap CI)", "milliseconds")):
        ax.set_xscale("log", base=2)
        ax.set_xlabel("concurrency (closed-loop workers)")
        ax.set_ylabel(ylabel)
        ax.set_title(title, fontsize=10)
        ax.legend(fontsize=7)
    fig.tight_layout()
    save(fig, path)
    return fig

