"""Cost model: what a measured request costs, and what a workload would cost at scale.

Prices are per 1M tokens in USD. Where they come from, highest precedence first:
  1. the contender's `price:` block in the contenders YAML (validated against `Price`; any
     field given there overrides the library's value for that field),
  2. the `genai-prices` library (pydantic/genai-prices), looked up by model id and provider,
  3. nothing: `price_for` returns None and callers show "no price" rather than a guess.

Why genai-prices: it is maintained (prices change monthly; a table pasted into this repo
would rot silently), it ships its price data inside the wheel so a lookup works offline
(checked with the network namespace removed: `calc_price` never fetches unless you opt into
`UpdatePrices`), it knows cached-input and batch rates per provider, and it is typed. We
call it through its public `calc_price`/`Usage` API only, at a small request size (1,000
tokens) so that long-context price tiers do not leak into the per-token rate, and scale up.

Self-hosted contenders have no list price: give `machine_hour_usd` and turn it into a
per-token price from *measured* throughput with `price_from_throughput`.

Every projection takes measured numbers from its caller; nothing here is a constant about a
model or a machine. Each projection returns its assumptions as printable strings so a report
can show exactly what a number rests on.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from datetime import date
from typing import TYPE_CHECKING, Any
from urllib.parse import urlparse

import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from workbench.errors import ConfigError

if TYPE_CHECKING:
    from workbench.config import Contender

__all__ = [
    "BatchProjection",
    "Price",
    "PrototypingProjection",
    "RealtimeProjection",
    "cost_frame",
    "cost_per_document",
    "library_price",
    "price_for",
    "price_from_throughput",
    "project_batch",
    "project_prototyping",
    "project_realtime",
    "provider_for_api",
    "request_cost",
]

MTOK = 1_000_000
# Probe size for library lookups: small enough to stay in every provider's base price tier.
_PROBE_TOKENS = 1_000

# api kind prefix -> genai-prices provider id, and the hosts that mean "the provider itself".
_PROVIDERS: dict[str, tuple[str, tuple[str, ...]]] = {
    "openai": ("openai", ("api.openai.com",)),
    "anthropic": ("anthropic", ("api.anthropic.com",)),
    "gemini": ("google", ("generativelanguage.googleapis.com",)),
}


class Price(BaseModel):
    """A contender's price: per-token list prices, or a machine-hour rate for self-hosting.

    `cached_input` None means the provider has no cached-input discount (cached tokens are
    charged at `input`). A machine-hour-only price has no per-token rates until it is resolved
    against measured throughput (`resolve`); `request_cost` refuses it until then.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    input: float | None = Field(None, ge=0, description="USD per 1M uncached input tokens")
    output: float | None = Field(None, ge=0, description="USD per 1M output tokens")
    cached_input: float | None = Field(None, ge=0, description="USD per 1M cache-read input tokens")
    batch_discount: float = Field(
        0.0, ge=0, lt=1, description="fraction off the whole request via the provider's batch API"
    )
    machine_hour_usd: float | None = Field(
        None, gt=0, description="self-hosted: what one serving machine costs per hour"
    )
    source: str = Field("", description="where the numbers came from (URL, library, measurement)")
    as_of: date | None = Field(None, description="date the price was read or measured")

    @model_validator(mode="after")
    def _complete(self) -> Price:
        has_tokens = self.input is not None and self.output is not None
        if not has_tokens and self.machine_hour_usd is None:
            raise ValueError("give input and output (USD per 1M tokens), or machine_hour_usd")
        if (self.input is None) != (self.output is None):
            raise ValueError("give both input and output, or neither (with machine_hour_usd)")
        return self

    @property
    def per_token(self) -> bool:
        """True when this price can cost a request (it has input and output rates)."""
        return self.input is not None and self.output is not None

    def resolve(self, output_tokens_per_s: float, input_tokens_per_s: float | None = None) -> Price:
        """Per-token price of a machine-hour price, from measured throughput (see below)."""
        if self.machine_hour_usd is None:
            return self
        resolved = price_from_throughput(self.machine_hour_usd, output_tokens_per_s, input_tokens_per_s)
        return resolved.model_copy(update={"source": f"{self.source}; {resolved.source}".lstrip("; ")})


def price_from_throughput(
    machine_hour_usd: float,
    output_tokens_per_s: float,
    input_tokens_per_s: float | None = None,
    *,
    as_of: date | None = None,
) -> Price:
    """Turn a machine-hour rate into a per-token price, using throughput you measured.

    Assumption: the machine is kept busy at the measured *aggregate* throughput (all concurrent
    streams together, at the concurrency you will run), and you pay for every hour of it.
    - Only `output_tokens_per_s` given: all machine time is charged to output tokens, so it must
      be an end-to-end rate (output tokens / wall time, prefill included); input is free.
    - Both given: a request occupies the machine for input/input_tps + output/output_tps
      seconds (prefill and decode do not overlap), so pass the prefill rate and the decode-only
      rate. No prefix cache is assumed (cached input costs the same as input).
    """
    if machine_hour_usd <= 0:
        raise ValueError("machine_hour_usd must be > 0")
    if output_tokens_per_s <= 0:
        raise ValueError("output_tokens_per_s must be > 0 (a measured aggregate rate)")
    if input_tokens_per_s is not None and input_tokens_per_s <= 0:
        raise ValueError("input_tokens_per_s must be > 0 when given")
    per_second = machine_hour_usd / 3600.0
    output = per_second / output_tokens_per_s * MTOK
    if input_tokens_per_s is None:
        inp = 0.0
        how = f"{output_tokens_per_s:g} output tok/s end to end, input not charged separately"
    else:
        inp = per_second / input_tokens_per_s * MTOK
        how = f"{input_tokens_per_s:g} prefill tok/s and {output_tokens_per_s:g} decode tok/s"
    return Price(
        input=inp,
        output=output,
        cached_input=None,
        batch_discount=0.0,
        machine_hour_usd=machine_hour_usd,
        source=f"${machine_hour_usd:g}/machine-hour at measured {how}",
        as_of=as_of or date.today(),
    )


def provider_for_api(api_kind: str) -> str | None:
    """genai-prices provider id for an api kind: openai-* → openai, anthropic → anthropic, gemini → google."""
    for prefix, (provider, _hosts) in _PROVIDERS.items():
        if api_kind == prefix or api_kind.startswith(prefix + "-"):
            return provider
    return None


def library_price(
    model: str,
    *,
    provider_id: str | None = None,
    provider_api_url: str | None = None,
    when: date | None = None,
) -> Price | None:
    """The genai-prices price of `model`, or None if the library is missing or does not know it."""
    try:
        from genai_prices import Usage, calc_price
        from genai_prices import __version__ as gp_version
    except ImportError:
        return None
    from datetime import UTC, datetime

    ts = datetime(when.year, when.month, when.day, tzinfo=UTC) if when else datetime.now(tz=UTC)
    kw: dict[str, Any] = {"genai_request_timestamp": ts}
    if provider_api_url is not None:
        kw["provider_api_url"] = provider_api_url
    else:
        kw["provider_id"] = provider_id

    n = _PROBE_TOKENS
    scale = MTOK / n
    try:
        inp = calc_price(Usage(input_tokens=n), model, **kw)
        out = calc_price(Usage(output_tokens=n), model, **kw)
        cached = calc_price(Usage(input_tokens=n, cache_read_tokens=n), model, **kw)
        both = calc_price(Usage(input_tokens=n, output_tokens=n), model, **kw)
        batch = calc_price(
            Usage(input_tokens=n, output_tokens=n), model, price_context={"processing": "batch"}, **kw
        )
    except LookupError:
        return None
    input_rate = float(inp.total_price) * scale
    cached_rate = float(cached.total_price) * scale
    discount = 0.0
    if both.total_price > 0:
        discount = max(0.0, float(1 - batch.total_price / both.total_price))
    urls = (inp.provider.pricing_urls or [""])[0]  # the provider's own price page, first listed
    return Price(
        input=input_rate,
        output=float(out.total_price) * scale,
        cached_input=cached_rate if cached_rate != input_rate else None,
        batch_discount=round(discount, 6),
        source=f"genai-prices {gp_version} ({inp.provider.id}/{inp.model.id})" + (f" {urls}" if urls else ""),
        as_of=ts.date(),
    )


def _library_kwargs(contender: Contender) -> dict[str, str] | None:
    """How to ask the library: by provider id, unless base_url points at some other host.

    An `openai-chat` contender served by a third party (Groq, Together, a proxy) is not billed
    at OpenAI's prices; for those we let genai-prices match the provider from the URL.
    """
    provider = provider_for_api(contender.api)
    if contender.base_url is None:
        return {"provider_id": provider} if provider else None
    host = urlparse(contender.base_url).hostname or ""
    official = next((hosts for p, hosts in _PROVIDERS.values() if p == provider), ())
    if provider and host in official:
        return {"provider_id": provider}
    return {"provider_api_url": contender.base_url}


def price_for(contender: Contender, *, source: str = "contenders file", library: bool = True) -> Price | None:
    """The contender's price: YAML `price:` fields over the library's, or None if neither has one.

    Embedded (local) contenders are never looked up in the library: a list price for a
    same-named hosted model is not what self-hosting costs. Give them `machine_hour_usd`.
    """
    where = f"contenders[{contender.name}].price"
    override = dict(contender.price or {})
    unknown = sorted(set(override) - set(Price.model_fields))
    if unknown:
        valid = ", ".join(Price.model_fields)
        raise ConfigError(source, f"{where}.{unknown[0]}", f"unknown price field; valid: {valid}")
    base: Price | None = None
    if library and not contender.is_local:
        kwargs = _library_kwargs(contender)
        if kwargs is not None:
            base = library_price(
                contender.model,
                provider_id=kwargs.get("provider_id"),
                provider_api_url=kwargs.get("provider_api_url"),
            )
    if not override:
        return base
    merged: dict[str, Any] = base.model_dump() if base is not None else {}
    merged.update(override)
    if base is not None and "source" not in override:
        merged["source"] = f"{base.source}; overridden in {source}: {', '.join(sorted(override))}"
    elif "source" not in override:
        merged["source"] = source
    try:
        return Price.model_validate(merged)
    except ValidationError as exc:
        err = exc.errors()[0]
        loc = ".".join(str(p) for p in err["loc"])
        raise ConfigError(
            source, f"{where}.{loc}" if loc else where, err["msg"].removeprefix("Value error, ")
        ) from None


def request_cost(
    price: Price,
    input_tokens: float,
    output_tokens: float,
    cached_input_tokens: float = 0,
    batch: bool = False,
) -> float:
    """USD for one request (or a sum of requests). Cached tokens are part of `input_tokens`.

    Uncached input is charged at `input`, cached input at `cached_input` (or `input` when the
    provider has no cache rate), output at `output`; `batch` takes `batch_discount` off the total.
    """
    if price.input is None or price.output is None:
        raise ValueError("a machine-hour price needs measured throughput first: use Price.resolve(...)")
    if min(input_tokens, output_tokens, cached_input_tokens) < 0:
        raise ValueError("token counts must be >= 0")
    if cached_input_tokens > input_tokens:
        raise ValueError("cached_input_tokens is part of input_tokens and cannot exceed it")
    cached_rate = price.cached_input if price.cached_input is not None else price.input
    usd = (
        (input_tokens - cached_input_tokens) * price.input
        + cached_input_tokens * cached_rate
        + output_tokens * price.output
    ) / MTOK
    return usd * (1 - price.batch_discount) if batch else usd


def cost_frame(df: pd.DataFrame, prices: dict[str, Price], batch: bool = False) -> pd.DataFrame:
    """A copy of a records frame with `cost_usd` per row; NaN where the contender has no price.

    Rows with unknown token counts also get NaN. A missing or NaN `cached_input_tokens` counts
    as 0 (no cache hit reported).
    """
    out = df.copy()
    usable = {k: p for k, p in prices.items() if p.per_token}
    contender = out["contender"]
    rate_in = contender.map({k: p.input for k, p in usable.items()}).astype(float)
    rate_out = contender.map({k: p.output for k, p in usable.items()}).astype(float)
    rate_cached = contender.map(
        {k: (p.cached_input if p.cached_input is not None else p.input) for k, p in usable.items()}
    ).astype(float)
    factor = contender.map({k: (1 - p.batch_discount) if batch else 1.0 for k, p in usable.items()})
    inp = pd.to_numeric(out["input_tokens"], errors="coerce")
    outp = pd.to_numeric(out["output_tokens"], errors="coerce")
    if "cached_input_tokens" in out:
        cached = pd.to_numeric(out["cached_input_tokens"], errors="coerce").fillna(0)
    else:
        cached = pd.Series(0.0, index=out.index)
    usd = ((inp - cached) * rate_in + cached * rate_cached + outp * rate_out) / MTOK
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
    """Serving a steady request rate: replicas, cost per hour and per 1k requests."""

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


def project_realtime(
    target_qps: float,
    per_request_cost: float,
    replica_goodput_rps: float,
    replica_hour_usd: float | None = None,
) -> RealtimeProjection:
    """Replicas and hourly cost to serve `target_qps` within the SLO.

    `replica_goodput_rps` is what one replica (or one API key's quota) sustained *within the
    SLO*, measured; `per_request_cost` is the measured mean token cost of a request.
    """
    if target_qps <= 0 or replica_goodput_rps <= 0:
        raise ValueError("target_qps and replica_goodput_rps must be > 0")
    if per_request_cost < 0 or (replica_hour_usd is not None and replica_hour_usd < 0):
        raise ValueError("costs must be >= 0")
    replicas = math.ceil(target_qps / replica_goodput_rps)
    token_hour = per_request_cost * target_qps * 3600.0
    replica_hour = replicas * (replica_hour_usd or 0.0)
    per_hour = token_hour + replica_hour
    assumptions = [
        f"steady {target_qps:g} requests/s, no peaks or diurnal swing, no headroom added",
        f"one replica sustains the measured {replica_goodput_rps:g} requests/s within the SLO, "
        "and replicas scale linearly",
        f"mean token cost per request ${per_request_cost:.6g} (measured prompt and answer lengths)",
        "replicas = ceil(target_qps / replica goodput)",
    ]
    if replica_hour_usd is None:
        assumptions.append("no per-replica charge (hosted API: pay per token only)")
    else:
        assumptions.append(f"each replica costs ${replica_hour_usd:g}/hour, billed whole")
    return RealtimeProjection(
        target_qps=target_qps,
        replicas=replicas,
        token_cost_per_hour_usd=token_hour,
        replica_cost_per_hour_usd=replica_hour,
        cost_per_hour_usd=per_hour,
        cost_per_1k_requests_usd=per_hour / (target_qps * 3600.0) * 1000.0,
        assumptions=assumptions,
    )


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
