"""Cost at scale: what a records frame cost, and what a workload would cost per hour, document or month.

Prices come from `workbench.pricing`; a machine-priced contender's (embedded, self-hosted) from the
machine time its requests held in this run (`measured_throughput` → `local_price`). Every
projection takes measured numbers from its caller;
nothing here is a constant about a model or a machine. Each projection returns its assumptions
as printable strings so a report can show exactly what a number rests on.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from workbench.pricing import MTOK, Price, price_from_throughput, request_cost

__all__ = [
    "DEFAULT_HEADROOM",
    "BatchProjection",
    "PrototypingProjection",
    "RealtimeProjection",
    "answered",
    "arm_records",
    "batch_api_hours",
    "cached_tokens",
    "cost_frame",
    "cost_per_document",
    "flagged",
    "local_price",
    "measured_throughput",
    "project_batch",
    "project_prototyping",
    "project_realtime",
    "realtime_cost_per_1k",
]

#: Share of a self-hosted fleet's capacity kept free for peaks (a parameter of every projection).
DEFAULT_HEADROOM = 0.30


def cost_frame(df: pd.DataFrame, prices: dict[str, Price], batch: bool = False) -> pd.DataFrame:
    """A copy of a records frame with `cost_usd` per row; NaN where the contender has no price.

    Rows with unknown token counts also get NaN. A missing or NaN `cached_input_tokens` or
    `cache_creation_input_tokens` counts as 0 (no cache read or write reported); cache writes are
    charged at their own rate (`Price.cache_write_input`), output at every billed token. Rows sent
    through a batch API (`batch_api` true) get the price's `batch_discount`; `batch=True` gives it to
    every row.
    """
    out = df.copy()
    usable = {k: p for k, p in prices.items() if p.per_token}
    contender = out["contender"]
    rate_in = contender.map({k: p.input for k, p in usable.items()}).astype(float)
    rate_out = contender.map({k: p.output for k, p in usable.items()}).astype(float)
    rate_cached = contender.map(
        {k: (p.cached_input if p.cached_input is not None else p.input) for k, p in usable.items()}
    ).astype(float)
    rate_write = contender.map(
        {k: (p.cache_write_input if p.cache_write_input is not None else p.input) for k, p in usable.items()}
    ).astype(float)
    discount = contender.map({k: p.batch_discount for k, p in usable.items()}).astype(float)
    # Batch API rows (`batch_api`, workbench.measure.batch) are billed at the batch rate; `batch`
    # prices every row so (a projection of a synchronous run sent as a batch).
    as_batch = pd.Series(batch, index=out.index)
    if "batch_api" in out:
        as_batch |= out["batch_api"].eq(True)
    factor = (1.0 - discount.fillna(0.0)).where(as_batch, 1.0)
    inp = pd.to_numeric(out["input_tokens"], errors="coerce")
    outp = pd.to_numeric(out["output_tokens"], errors="coerce")
    if "cached_input_tokens" in out:
        cached = pd.to_numeric(out["cached_input_tokens"], errors="coerce").fillna(0)
    else:
        cached = pd.Series(0.0, index=out.index)
    if "cache_creation_input_tokens" in out:
        written = pd.to_numeric(out["cache_creation_input_tokens"], errors="coerce").fillna(0)
    else:
        written = pd.Series(0.0, index=out.index)
    usd = ((inp - cached - written) * rate_in + cached * rate_cached + written * rate_write + outp * rate_out) / MTOK
    out["cost_usd"] = usd * factor.astype(float)
    return out


def cost_per_document(total_cost: float, n_documents: int) -> float:
    """USD per document; raises on zero documents rather than dividing into inf."""
    if n_documents <= 0:
        raise ValueError("n_documents must be > 0")
    return total_cost / n_documents


@dataclass(frozen=True)
class _Projection:
    assumptions: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass(frozen=True, kw_only=True)
class BatchProjection(_Projection):
    """A nightly batch: its cost, and whether it finishes inside the window at a concurrency."""

    n_documents: int
    n_requests: int
    total_cost_usd: float
    cost_per_document_usd: float
    wall_time_s: float
    window_s: float
    fits_window: bool
    min_concurrency_to_fit: int
    concurrency_limit: int


@dataclass(frozen=True, kw_only=True)
class RealtimeProjection(_Projection):
    """Serving a steady request rate: replicas (0 for a hosted API), cost per hour and per 1k requests."""

    target_qps: float
    replicas: int
    token_cost_per_hour_usd: float
    replica_cost_per_hour_usd: float
    cost_per_hour_usd: float
    cost_per_1k_requests_usd: float


@dataclass(frozen=True, kw_only=True)
class PrototypingProjection(_Projection):
    """A prototype's monthly bill."""

    monthly_requests: int
    monthly_cost_usd: float


def project_batch(
    n_documents: int,
    window_hours: float,
    per_doc_input_tokens: float,
    per_doc_output_tokens: float,
    price: Price,
    requests_per_doc: float,
    per_request_latency_s: float,
    concurrency_limit: int,
    batch_api: bool = False,
    per_doc_cached_input_tokens: float = 0.0,
) -> BatchProjection:
    """Cost and wall time of annotating `n_documents` in a window.

    Token counts are per document, amortised: with k documents coalesced into one request,
    pass requests_per_doc = 1/k and the request's tokens divided by k.
    """
    if n_documents <= 0 or window_hours <= 0 or requests_per_doc <= 0:
        raise ValueError("n_documents, window_hours and requests_per_doc must be > 0")
    if per_request_latency_s < 0 or concurrency_limit < 1:
        raise ValueError("per_request_latency_s must be >= 0 and concurrency_limit >= 1")
    n_requests = math.ceil(n_documents * requests_per_doc)
    total = request_cost(
        price,
        n_documents * per_doc_input_tokens,
        n_documents * per_doc_output_tokens,
        n_documents * per_doc_cached_input_tokens,
        batch=batch_api,
    )
    window_s = window_hours * 3600.0
    busy_s = n_requests * per_request_latency_s
    wall = busy_s / concurrency_limit
    min_conc = max(1, math.ceil(busy_s / window_s))
    assumptions = [
        f"{n_documents} documents, {requests_per_doc:g} requests per document → {n_requests} requests",
        f"per document: {per_doc_input_tokens:g} input tokens ({per_doc_cached_input_tokens:g} cached), "
        f"{per_doc_output_tokens:g} output tokens",
        f"price: input ${price.input}/1M, output ${price.output}/1M, cached ${price.cached_input}/1M "
        f"({price.source or 'no source given'}{', as of ' + str(price.as_of) if price.as_of else ''})",
        f"every request takes the measured {per_request_latency_s:g} s, at any concurrency "
        "(no slowdown as concurrency rises; check with the concurrency sweep)",
        f"{concurrency_limit} requests always in flight, no retries, no rate-limit stalls",
        "wall time = requests × latency / concurrency",
    ]
    if batch_api:
        assumptions.append(
            f"batch API: {price.batch_discount:.0%} off; its turnaround is the provider's (often up to "
            "24 h), not modelled here, so 'fits window' is the synchronous estimate"
        )
    return BatchProjection(
        n_documents=n_documents,
        n_requests=n_requests,
        total_cost_usd=total,
        cost_per_document_usd=cost_per_document(total, n_documents),
        wall_time_s=wall,
        window_s=window_s,
        fits_window=wall <= window_s,
        min_concurrency_to_fit=min_conc,
        concurrency_limit=concurrency_limit,
        assumptions=assumptions,
    )


def batch_api_hours(n_documents: int, *, concurrency_limit: int, window_h: float | None = None,
                    turnaround_s: float | None = None, n_measured: int = 0,
                    endpoint_concurrency: float | None = None) -> tuple[float, str]:
    """(hours, why) a batch API takes for `n_documents`.

    A hosted provider promises a completion window, not a speed: the batch is planned at that
    window (`window_h`: documented, e.g. "up to 24 h", or declared by the user), whatever one
    sample batch took. The local batch endpoint is measured: `turnaround_s` for `n_measured`
    documents with `endpoint_concurrency` items running at once, scaled linearly to
    `n_documents` and to `concurrency_limit` items at once."""
    if window_h is not None and window_h == window_h:
        return float(window_h), f"the provider's completion window, {window_h:g} h"
    if turnaround_s is None or endpoint_concurrency is None or n_measured <= 0 \
            or not (turnaround_s > 0 and endpoint_concurrency > 0):  # NaN fails both comparisons
        return math.nan, "no turnaround measured"
    hours = n_documents * turnaround_s / n_measured * endpoint_concurrency / concurrency_limit / 3600.0
    return hours, (f"measured turnaround {turnaround_s:.1f} s for {n_measured} documents at {endpoint_concurrency:g} "
                   f"in flight, scaled linearly to {n_documents:,} documents at {concurrency_limit}")


def project_realtime(
    target_qps: float,
    per_request_cost: float,
    replica_goodput_rps: float | None,
    replica_hour_usd: float | None = None,
    *,
    headroom: float = DEFAULT_HEADROOM,
    mean_e2e_s: float | None = None,
    tokens_per_request: float | None = None,
) -> RealtimeProjection:
    """What serving `target_qps` within the SLO takes, and what it costs per hour and per 1k.

    Self-hosted (`replica_hour_usd` given): `replicas = ceil(target / (goodput × (1 − headroom)))`,
    where `replica_goodput_rps` is what one replica sustained *within the SLO*, measured, and
    `headroom` (default 30%) is kept free for peaks. Hosted (`replica_hour_usd` None): no
    replicas — the provider's capacity is what the target needs in requests and tokens per
    minute, stated as such; the cost is `per_request_cost` (the measured mean token cost) per
    request. Little's law gives the requests in flight at the target: rate × mean E2E.
    """
    if target_qps <= 0:
        raise ValueError("target_qps must be > 0")
    if not 0 <= headroom < 1:
        raise ValueError("headroom must be in [0, 1)")
    if per_request_cost < 0 or (replica_hour_usd is not None and replica_hour_usd < 0):
        raise ValueError("costs must be >= 0")
    hosted = replica_hour_usd is None
    if not hosted and not (replica_goodput_rps and replica_goodput_rps > 0):
        raise ValueError("a self-hosted projection needs the replica goodput (> 0)")
    replicas = 0 if hosted else math.ceil(target_qps / (float(replica_goodput_rps or 0) * (1.0 - headroom)))
    token_hour = per_request_cost * target_qps * 3600.0
    replica_hour = replicas * (replica_hour_usd or 0.0)
    per_hour = token_hour + replica_hour
    assumptions = [f"steady {target_qps:g} requests/s, no diurnal swing"]
    if mean_e2e_s is not None:
        assumptions.append(f"in flight at that rate (Little's law: rate × mean E2E {mean_e2e_s:.3g} s): "
                           f"{target_qps * mean_e2e_s:,.0f} requests")
    if hosted:
        tpm = f", {target_qps * 60 * tokens_per_request:,.0f} tokens/min" if tokens_per_request else ""
        assumptions += [
            f"hosted API: the target needs a quota of {target_qps * 60:,.0f} requests/min{tpm} "
            "(ask the provider; its own capacity is not measured here)",
            f"mean token cost per request ${per_request_cost:.6g} (measured prompt and answer lengths)",
        ]
    else:
        assumptions += [
            f"one replica sustains the measured {replica_goodput_rps:g} requests/s within the SLO; replicas "
            f"scale linearly; {headroom:.0%} headroom kept free: replicas = ceil(target / (goodput × "
            f"{1 - headroom:g}))",
            f"each replica costs ${replica_hour_usd:g}/hour, kept up around the clock",
        ]
    return RealtimeProjection(
        target_qps=target_qps,
        replicas=replicas,
        token_cost_per_hour_usd=token_hour,
        replica_cost_per_hour_usd=replica_hour,
        cost_per_hour_usd=per_hour,
        cost_per_1k_requests_usd=per_hour / (target_qps * 3600.0) * 1000.0,
        assumptions=assumptions,
    )


def realtime_cost_per_1k(
    target_qps: float, per_request_cost: Any, replica_goodput_rps: Any, replica_hour_usd: float | None,
    headroom: float = DEFAULT_HEADROOM,
) -> Any:
    """`project_realtime(...).cost_per_1k_requests_usd` for arrays (one value per replicate of a
    joint resampling); a goodput of 0 (no load level met the SLO) costs infinity."""
    import numpy as np

    token_hour = np.asarray(per_request_cost, dtype=float) * target_qps * 3600.0
    if replica_hour_usd is None:
        per_hour = token_hour
    else:
        goodput = np.asarray(replica_goodput_rps, dtype=float) * (1.0 - headroom)
        with np.errstate(divide="ignore", invalid="ignore"):
            replicas = np.where(goodput > 0, np.ceil(target_qps / np.where(goodput > 0, goodput, 1.0)), np.inf)
        per_hour = token_hour + replicas * replica_hour_usd
    return per_hour / (target_qps * 3600.0) * 1000.0


def project_prototyping(monthly_requests: int, per_request_cost: float) -> PrototypingProjection:
    """Monthly bill of a prototype: requests × measured mean cost per request."""
    if monthly_requests < 0 or per_request_cost < 0:
        raise ValueError("monthly_requests and per_request_cost must be >= 0")
    return PrototypingProjection(
        monthly_requests=monthly_requests,
        monthly_cost_usd=monthly_requests * per_request_cost,
        assumptions=[
            f"{monthly_requests} requests a month at the measured mean ${per_request_cost:.6g} each",
            "no free tier, no minimum spend, no batch or cache discounts beyond those measured",
        ],
    )


# --------------------------------------------------------------------------------------------
# machine time measured in a run → a per-token price


def answered(df: pd.DataFrame) -> pd.DataFrame:
    """The records whose request was answered (`status` ok)."""
    return df[df["status"] == "ok"]


def flagged(df: pd.DataFrame, column: str) -> pd.Series:
    """A boolean column that may be missing or hold NaN (records without the field): True only where True."""
    return df[column].eq(True) if column in df else pd.Series(False, index=df.index)


def arm_records(records: pd.DataFrame) -> pd.DataFrame:
    """The records of the strategies themselves: the cached-prefix arm's cache-off controls left out."""
    return records[~flagged(records, "control")]


def cached_tokens(g: pd.DataFrame) -> pd.Series:
    """Prompt tokens each request read from a cache: the API's count, else llama.cpp's `cache_n`."""
    cached = pd.to_numeric(g["cached_input_tokens"], errors="coerce") if "cached_input_tokens" in g else None
    server = pd.to_numeric(g["server_cache_n"], errors="coerce") if "server_cache_n" in g else None
    if cached is None and server is None:
        return pd.Series(np.nan, index=g.index)
    if cached is None:
        assert server is not None
        return server
    return cached.fillna(server) if server is not None else cached


def measured_throughput(records: pd.DataFrame) -> dict[str, dict[str, float]]:
    """Per contender, rates measured in this run over its successful requests (all strategies).

    `prefill_tps` = Σ evaluated prompt tokens / Σ TTFT and `decode_tps` = Σ (output tokens − 1) /
    Σ (E2E − TTFT): the split `price_from_throughput` wants so a request is charged the
    machine time it held. Evaluated = input − cached (llama.cpp reuses the KV cache of a shared
    prompt prefix and reports how much, `cached_input_tokens` / `server_cache_n`): a reused token
    takes no prefill time, so it is not counted in the rate and costs nothing (`contender_prices`).
    `e2e_output_tps` = Σ output tokens / Σ E2E. Batch API items (their e2e is a turnaround) and
    the cached-prefix controls are left out.
    """
    out: dict[str, dict[str, float]] = {}
    sync = arm_records(records)
    sync = sync[~flagged(sync, "batch_api")]  # a batch item's e2e is its turnaround, not machine time
    for name, g in answered(sync).groupby("contender", sort=True):
        cached = cached_tokens(g)
        # Tokens the server evaluated: a prompt prefix reused from the KV cache costs no prefill.
        inp = pd.to_numeric(g["input_tokens"], errors="coerce") - cached.fillna(0.0)
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
            "cached_known": float(cached.notna().any()),
        }
    return out


def local_price(t: Mapping[str, float] | None, machine_hour_usd: float) -> Price | None:
    """A self-hosted contender's per-token price from its `measured_throughput` row: machine time at
    the prefill and decode rates (the end-to-end output rate when no TTFT was measured); prompt
    tokens reused from the KV cache at 0 when the run counted them. None: nothing measured."""
    if t is None:
        return None
    if t["prefill_tps"] > 0 and t["decode_tps"] > 0:
        p = price_from_throughput(machine_hour_usd, t["decode_tps"], t["prefill_tps"])
        if t.get("cached_known"):  # the rate counts evaluated tokens: reused ones cost nothing
            p = p.model_copy(update={"cached_input": 0.0, "source": f"{p.source}; prompt tokens reused from "
                                     "llama.cpp's KV cache take no machine time"})
        return p
    if t["e2e_output_tps"] > 0:
        return price_from_throughput(machine_hour_usd, t["e2e_output_tps"])
    return None
