"""Prices: what a token (or a machine-hour) costs, and what one measured request cost.

Prices are per 1M tokens in USD. Where they come from, highest precedence first:
  1. the contender's `price:` block in the contenders YAML (validated against `Price`; any
     field given there overrides the library's value for that field; its `source` says where
     the declared values come from, and the merged source names them beside the library's:
     `declared_prices` is what a report shows),
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

Nothing here is a constant about a model or a machine. What a workload costs at scale (the
projections) is `workbench.analysis.cost`; this module sits low because the spend budget of a
run (`workbench.measure.budget`) needs prices before anything is analysed.
"""

from __future__ import annotations

from datetime import date
from typing import Any, Protocol
from urllib.parse import urlparse

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from workbench.errors import ConfigError
from workbench.providers import get_provider
from workbench.providers.contender import ContenderIdentity

__all__ = [
    "MTOK",
    "Price",
    "PriceDeclaration",
    "Priced",
    "declared_prices",
    "library_price",
    "price_for",
    "price_from_throughput",
    "provider_for_api",
    "request_cost",
    "sized_request_cost",
]


class Priced(ContenderIdentity, Protocol):
    """What pricing reads of a contender (`workbench.config.Contender` is one): named here so
    this module needs nothing from the config that imports it."""

    @property
    def price(self) -> PriceDeclaration | None: ...
    @property
    def machine_priced(self) -> bool: ...

MTOK = 1_000_000
# Probe size for library lookups: small enough to stay in every provider's base price tier.
_PROBE_TOKENS = 1_000



class PriceDeclaration(BaseModel):
    """The fields of a price, each typed and bounded, none required: what a contenders file's
    `price:` block may say (`Contender.price`), checked when the file is loaded — an unknown field
    or a value that is not a number (`machine_hour_usd: "cheap"`) is a `ConfigError` naming the
    file, `contenders[<name>].price.<field>` and why. The block may be partial: a hosted model's
    declared fields override the library's (`price_for`), which then makes it a whole `Price`."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    input: float | None = Field(None, ge=0, description="USD per 1M uncached input tokens")
    output: float | None = Field(None, ge=0, description="USD per 1M output tokens")
    cached_input: float | None = Field(None, ge=0, description="USD per 1M cache-read input tokens")
    cache_write_input: float | None = Field(
        None, ge=0, description="USD per 1M input tokens written to the prompt cache (Anthropic: 1.25× input "
        "for the 5-minute cache); None: charged at `input`")
    batch_discount: float = Field(
        0.0, ge=0, lt=1, description="fraction off the whole request via the provider's batch API"
    )
    machine_hour_usd: float | None = Field(
        None, gt=0, description="self-hosted: what one serving machine costs per hour"
    )
    source: str = Field("", description="where the numbers came from (URL, library, measurement)")
    as_of: date | None = Field(None, description="date the price was read or measured")

    def declared(self) -> dict[str, Any]:
        """Only the fields given, as given (a partial override must not set the others to None)."""
        return self.model_dump(exclude_unset=True)


class Price(PriceDeclaration):
    """A contender's price: per-token list prices, or a machine-hour rate for self-hosting.

    `cached_input` None means the provider has no cached-input discount (cached tokens are
    charged at `input`). A machine-hour-only price has no per-token rates until it is resolved
    against measured throughput (`resolve`); `request_cost` refuses it until then.
    """

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
    """genai-prices provider id for an api kind (`Provider.price_provider`: openai-* → openai,
    anthropic → anthropic, gemini → google; None for a kind no price list knows)."""
    return get_provider(api_kind).price_provider


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
        written = calc_price(Usage(input_tokens=n, cache_write_tokens=n), model, **kw)
        both = calc_price(Usage(input_tokens=n, output_tokens=n), model, **kw)
        batch = calc_price(
            Usage(input_tokens=n, output_tokens=n), model, price_context={"processing": "batch"}, **kw
        )
    except LookupError:
        return None
    input_rate = float(inp.total_price) * scale
    cached_rate = float(cached.total_price) * scale
    write_rate = float(written.total_price) * scale
    discount = 0.0
    if both.total_price > 0:
        discount = max(0.0, float(1 - batch.total_price / both.total_price))
    urls = (inp.provider.pricing_urls or [""])[0]  # the provider's own price page, first listed
    return Price(
        input=input_rate,
        output=float(out.total_price) * scale,
        cached_input=cached_rate if cached_rate != input_rate else None,
        cache_write_input=write_rate if write_rate != input_rate else None,
        batch_discount=round(discount, 6),
        source=f"genai-prices {gp_version} ({inp.provider.id}/{inp.model.id})" + (f" {urls}" if urls else ""),
        as_of=ts.date(),
    )


def _library_kwargs(contender: Priced) -> dict[str, str] | None:
    """How to ask the library: by provider id, unless base_url points at some other host.

    An `openai-chat` contender served by a third party (Groq, Together, a proxy) is not billed
    at OpenAI's prices; for those we let genai-prices match the provider from the URL.
    """
    api = get_provider(contender.api)
    provider = api.price_provider
    if contender.base_url is None:
        return {"provider_id": provider} if provider else None
    host = urlparse(contender.base_url).hostname or ""
    if provider and host in api.price_hosts:
        return {"provider_id": provider}
    return {"provider_api_url": contender.base_url}


def price_for(contender: Priced, *, source: str = "contenders file", library: bool = True) -> Price | None:
    """The contender's price: YAML `price:` fields over the library's, or None if neither has one.

    Embedded and self-hosted contenders are never looked up in the library: a list price for a
    same-named hosted model is not what self-hosting costs. Give them `machine_hour_usd`.
    """
    where = f"contenders[{contender.name}].price"
    override = contender.price.declared() if contender.price is not None else {}
    base: Price | None = None
    if library and not contender.machine_priced:
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
    if base is not None:  # the library's numbers, with the declared ones named (and their source, if given)
        why = f" ({override['source']})" if "source" in override else ""
        merged["source"] = f"{base.source}; declared in {source}: {_declared_text(override)}{why}"
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


def _declared_text(override: dict[str, Any]) -> str:
    """`batch_discount=0.5, cached_input=0.1`: the price fields a contenders file declares."""
    return ", ".join(f"{k}={override[k]}" for k in sorted(override) if k not in ("source", "as_of"))


def declared_prices(contender: Priced) -> str | None:
    """What the contenders file declares of this contender's price, with its source; None if nothing."""
    override = contender.price.declared() if contender.price is not None else {}
    fields = _declared_text(override)
    if not fields:
        return None
    return fields + (f" ({override['source']})" if override.get("source") else " (no source given)")


def request_cost(
    price: Price,
    input_tokens: float,
    output_tokens: float,
    cached_input_tokens: float = 0,
    batch: bool = False,
    cache_write_input_tokens: float = 0,
) -> float:
    """USD for one request (or a sum of requests). Cached and cache-write tokens are parts of
    `input_tokens`; output tokens are every billed one (reasoning included).

    Uncached input is charged at `input`, cached input at `cached_input` and input written to the
    cache at `cache_write_input` (each `input` when the provider has no such rate), output at
    `output`; `batch` takes `batch_discount` off the total.
    """
    if price.input is None or price.output is None:
        raise ValueError("a machine-hour price needs measured throughput first: use Price.resolve(...)")
    if min(input_tokens, output_tokens, cached_input_tokens, cache_write_input_tokens) < 0:
        raise ValueError("token counts must be >= 0")
    if cached_input_tokens + cache_write_input_tokens > input_tokens:
        raise ValueError("cached and cache-write tokens are parts of input_tokens and cannot exceed it")
    cached_rate = price.cached_input if price.cached_input is not None else price.input
    write_rate = price.cache_write_input if price.cache_write_input is not None else price.input
    usd = (
        (input_tokens - cached_input_tokens - cache_write_input_tokens) * price.input
        + cached_input_tokens * cached_rate
        + cache_write_input_tokens * write_rate
        + output_tokens * price.output
    ) / MTOK
    return usd * (1 - price.batch_discount) if batch else usd


def sized_request_cost(contender: Priced, input_tokens: int, output_tokens: int, cached_input_tokens: int = 0,
                       ) -> tuple[float | None, str]:
    """(USD, where the rate comes from) for one request of this size, long-context tiers included:
    a contender whose price the contenders file declares pays `request_cost` at the declared
    rates (flat: a declaration has no tiers); otherwise genai-prices prices the request at its
    real size (`calc_price` applies a model's tier above its threshold, e.g. input past 200k
    tokens), which `library_price`'s small probe leaves out on purpose. (None, why) when neither
    has a price; the embedded models are machine-priced, never looked up."""
    if contender.price is not None and contender.price.declared():
        price = price_for(contender)
        if price is None or price.input is None:
            return None, "declared machine-hour price: per-token cost needs measured throughput"
        return request_cost(price, input_tokens, output_tokens, cached_input_tokens), "declared (no tiers)"
    kwargs = None if contender.machine_priced else _library_kwargs(contender)
    if kwargs is None:
        return None, "no list price (self-hosted: machine-hour priced)"
    try:
        from genai_prices import Usage, calc_price
    except ImportError:
        return None, "genai-prices is not installed"
    usage = Usage(input_tokens=input_tokens, output_tokens=output_tokens, cache_read_tokens=cached_input_tokens or None)
    try:
        got = (calc_price(usage, contender.model, provider_id=kwargs["provider_id"]) if "provider_id" in kwargs
               else calc_price(usage, contender.model, provider_api_url=kwargs["provider_api_url"]))
    except LookupError:
        return None, "genai-prices does not know this model"
    return float(got.total_price), f"genai-prices ({got.provider.id}/{got.model.id}), priced at this size"
