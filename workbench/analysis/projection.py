"""The fleet projection of the concurrency sweep: what a target rate needs, from the best level.

The arithmetic (replicas with headroom, Little's law, hosted quota in requests and tokens per
minute) is `workbench.analysis.cost.project_realtime`, used by this, the realtime scenario and
the annotation levers alike. Here: which measured level it rests on. Local contenders pay a
machine-hour rate per replica (whole machines, no per-token charge); hosted ones pay their
per-token price for the measured tokens per request, and need a provider quota, not replicas.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from workbench.analysis.cost import DEFAULT_HEADROOM, project_realtime
from workbench.config import Contender
from workbench.metrics import SLO
from workbench.pricing import price_for, price_from_throughput, request_cost

__all__ = ["Projection", "project_fleet"]


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

    def headline(self) -> str:
        if not self.feasible:
            return f"{self.contender}: no projection"
        what = f"{self.replicas} replicas" if self.replicas else "a provider quota (no replicas)"
        return (f"{self.contender}: {what}, ${self.cost_per_hour_usd:,.2f}/hour, "
                f"${self.cost_per_1k_requests_usd:.4f} per 1k requests; price: {self.price_note}")


def project_fleet(
    summary: Any, df: Any, contenders: Sequence[Contender], *, target_qps: float, slo_e2e_s: float | SLO,
    machine_hour_usd: float, respect_slo: bool = True, headroom: float = DEFAULT_HEADROOM,
) -> list[Projection]:
    """Replicas and cost/hour to serve `target_qps`, from the best measured level.

    Basis: among levels whose p95 E2E meets the SLO (all levels if `respect_slo` is False), the
    one with the highest goodput (throughput if not respecting the SLO). Local contenders pay
    `machine_hour_usd` per replica (whole machines, no per-token charge; the per-token
    equivalent from `pricing.price_from_throughput` is shown for comparison); hosted ones pay
    their per-token price for the measured mean tokens per request.
    """
    slo = SLO.of(slo_e2e_s)
    out = []
    for c in contenders:
        g = summary[summary["contender"] == c.name]
        cand = g[g["meets_slo"]] if respect_slo else g
        col = "goodput_rps" if respect_slo else "throughput_rps"
        cand = cand[cand[col] > 0]
        if cand.empty:
            lowest = g.sort_values("level").head(1)
            col_at = "slo_value" if "slo_value" in lowest else "e2e_p95"
            at = float(lowest[col_at].iloc[0]) if len(lowest) else math.nan
            out.append(Projection(c.name, False, None, None, assumptions=[
                f"no measured level meets the SLO {slo.text} (at the lowest level {slo.metric.upper()} "
                f"p{slo.percentile} = {at * 1000:.0f} ms): adding replicas does not lower latency, so no fleet "
                "of this contender meets the SLO on this hardware"]))
            continue
        best = cand.sort_values(col, ascending=False).iloc[0]
        rps, level = float(best[col]), int(best["level"])
        ok = df[(df["contender"] == c.name) & (df["phase"] == "sweep") & (df["level"] == level)
                & (df["status"] == "ok")]
        mean_in = float(ok["input_tokens"].fillna(0).mean())
        mean_out = float(ok["output_tokens"].fillna(0).mean())
        mean_e2e = float(ok["e2e_s"].mean())
        if c.machine_priced:
            hourly = c.machine_hour_usd(machine_hour_usd)
            tok_price = price_from_throughput(hourly, float(best["output_tok_s"]))
            note = (f"{c.hosted_by}: ${hourly:g}/machine-hour per replica; per-token "
                    f"equivalent at the measured {best['output_tok_s']:.1f} output tok/s: "
                    f"${tok_price.output:.2f}/1M output tokens")
            proj = project_realtime(target_qps, 0.0, rps, hourly, headroom=headroom, mean_e2e_s=mean_e2e)
        else:
            price = price_for(c)
            if price is None or not price.per_token:
                out.append(Projection(c.name, False, level, rps, price_note="no per-token price known",
                                      assumptions=["give the contender a price: in the contenders file"]))
                continue
            per_req = request_cost(price, mean_in, mean_out)
            note = f"{price.source}: ${price.input}/1M in, ${price.output}/1M out"
            proj = project_realtime(target_qps, per_req, None, None, mean_e2e_s=mean_e2e,
                                    tokens_per_request=mean_in + mean_out)
        lo, hi = best[col + "_low"], best[col + "_high"]
        basis = (f"basis: concurrency {level}, {'goodput' if respect_slo else 'throughput'} "
                 f"{rps:.2f} req/s [{lo:.2f}, {hi:.2f}] (n={int(best['ok'])} ok), "
                 f"p95 E2E {best['e2e_p95'] * 1000:.0f} ms; "
                 f"mean {mean_in:.0f} input / {mean_out:.1f} output tokens per request")
        out.append(Projection(c.name, True, level, rps, proj.replicas, proj.cost_per_hour_usd,
                              proj.cost_per_1k_requests_usd, note, [basis, *proj.assumptions]))
    return out
