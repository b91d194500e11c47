"""Integration-effort facts, observed rather than assumed.

`probe_capabilities` asks the API itself wherever it can: a streamed request (does streaming
work, does the stream carry usage, are rate-limit headers sent), a JSON-mode request, a
tool-calling request and the model listing (context window). Each fact is a dict
`{"value": ..., "source": "probed" | "declared" | "unknown", "detail": str}`:

- "probed": the API answered and the value is what it did (a 400 to a JSON-mode request is a
  probed `False`: the API refused it).
- "declared": from the contender's config (`declared:` in contenders.yaml, or the api kind).
- "unknown": the probe could not tell (a 429, a timeout, an API with no such request).

A transient failure never becomes a `False`: only an answer about the request itself does.
`contender.declared` fills facts the probe could not establish; when a probe disagrees with a
declaration, the probed value wins and the declared one is kept beside it (`"declared"`).
Probes use tiny `max_tokens`, so running this against a hosted API costs a few tokens.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Mapping
from typing import Any

import httpx

from workbench.config import Contender
from workbench.errors import ConfigError
from workbench.measure.image_probe import IMAGE_INPUT, probe_image_input
from workbench.measure.probe import probe
from workbench.measure.target import Target
from workbench.providers import Provider, ToolSpec, provider_for
from workbench.types import ErrorClass, Prompt, Record

__all__ = ["FACTS", "probe_capabilities"]

#: The facts reported, in order.
FACTS: tuple[str, ...] = (
    "streaming",
    "usage_in_stream",
    "json_mode",
    "tool_calling",
    "rate_limit_headers",
    "openai_compatible",
    "context_window",
    IMAGE_INPUT,
)

_PROBE_MAX_TOKENS = 16
# Failures that say something about the request (the API refused it / answered nonsense);
# anything else (rate limits, timeouts, outages) leaves the fact unknown.
_REFUSALS = {ErrorClass.BAD_REQUEST.value, ErrorClass.PROTOCOL.value}
# Keys under which model listings report a context size, most specific first:
# llama.cpp server `meta.n_ctx` / `meta.n_ctx_train`, vLLM `max_model_len`, Gemini
# `inputTokenLimit`, others `context_length` / `context_window` / `max_input_tokens`.
_CTX_KEYS = ("n_ctx", "max_model_len", "inputTokenLimit", "context_length", "context_window",
             "max_input_tokens", "n_ctx_train")

_TOOL = ToolSpec(name="get_weather", description="Current weather for a city.",
                 parameters={"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]})


def _fact(value: Any, source: str, detail: str = "") -> dict[str, Any]:
    return {"value": value, "source": source, "detail": detail}


def _unknown(detail: str) -> dict[str, Any]:
    return _fact(None, "unknown", detail)


async def probe_capabilities(client: httpx.AsyncClient, target: Target) -> dict[str, dict[str, Any]]:
    """Probe what the target contender's API accepts; return {fact: {value, source, detail}}."""
    contender, root = target.contender, target.base_url
    c = contender.with_sampling(max_tokens=min(contender.sampling.max_tokens, _PROBE_MAX_TOKENS))
    api_key = c.api_key()
    facts: dict[str, dict[str, Any]] = {}
    rate_names: set[str] = set()
    answered = False

    # 1. A streamed request.
    hello = Prompt(id="capabilities", text="Say hello in one word.")
    try:
        rec: Record | None = await probe(client, target.replace(contender=c, stream=True, keep_itl=False,
                                                                experiment="capabilities"), hello)
    except ConfigError as exc:  # e.g. a generic endpoint declared `stream: none`
        rec = None
        facts["streaming"] = _fact(False, "declared", str(exc))
        facts["usage_in_stream"] = _fact(False, "declared", "no streaming")
    if rec is not None:
        answered = rec.http_status is not None
        rate_names.update(rec.rate_limit or {})
        if rec.ok:
            facts["streaming"] = _fact(bool(rec.n_chunks), "probed",
                                       f"{rec.n_chunks} content chunks, ttft {rec.ttft_s}")
            facts["usage_in_stream"] = _fact((rec.token_source or "").startswith("server"), "probed",
                                             f"token counts from {rec.token_source}")
        elif rec.error_class in _REFUSALS:
            facts["streaming"] = _fact(False, "probed", f"{rec.error_class}: {rec.error_message}")
            facts["usage_in_stream"] = _fact(False, "probed", "streaming failed")
        else:
            facts["streaming"] = _unknown(f"{rec.error_class}: {rec.error_message}")
            facts["usage_in_stream"] = _unknown("streaming probe failed")

    # 2. JSON mode and 3. tool calling: one plain request each, with the feature switched on.
    provider = provider_for(c)
    for name, mutate, check in (
        ("json_mode", _json_mode_body, _json_observed),
        ("tool_calling", _tools_body, _tool_observed),
    ):
        if mutate(provider, {}) is None:
            facts[name] = _unknown(f"no automatic probe for api {c.api!r}")
            continue
        fact, headers_seen = await _feature_probe(client, c, root, api_key, mutate, check)
        facts[name] = fact
        if headers_seen is not None:
            answered = True
            rate_names.update(headers_seen)

    # 4. Rate-limit headers on any response seen so far.
    if rate_names:
        facts["rate_limit_headers"] = _fact(True, "probed", ", ".join(sorted(rate_names)))
    elif answered:
        facts["rate_limit_headers"] = _fact(False, "probed", "no x-ratelimit-*/anthropic-ratelimit-*/"
                                            "retry-after headers on any response")
    else:
        facts["rate_limit_headers"] = _unknown("no response received")

    # 5. From the config.
    facts["openai_compatible"] = _fact(provider.openai_compatible, "declared", f"api kind {c.api!r}")

    # 6. Context window from the model listing.
    facts["context_window"] = await _context_window(client, c, root, api_key)

    # 7. Image input: one tiny image when keyed, else the declaration or the wire format's kind.
    facts[IMAGE_INPUT] = await probe_image_input(client, target)

    return _merge_declared(facts, contender.declared, api_key)


def _json_mode_body(provider: Provider, body: dict[str, Any]) -> dict[str, Any] | None:
    """The request body with JSON mode on, or None when the API has no such switch to probe
    (Anthropic has none: JSON is done with tools or prompting, so it stays declared)."""
    return provider.json_mode_body(body)


def _tools_body(provider: Provider, body: dict[str, Any]) -> dict[str, Any] | None:
    return provider.tools_body(body, _TOOL)


def _json_observed(provider: Provider, body: Any) -> str:
    try:
        text = provider.parse_response(body).text
        json.loads(text)
    except (ValueError, TypeError, KeyError, AttributeError):
        return "accepted; answer was not valid JSON (tiny max_tokens may cut it)"
    return "accepted; answer parsed as JSON"


def _tool_observed(provider: Provider, body: Any) -> str:
    return "accepted; model called the tool" if provider.tool_called(body) else "accepted; model did not call the tool"


async def _feature_probe(
    client: httpx.AsyncClient,
    contender: Contender,
    root: str,
    api_key: str | None,
    mutate: Any,
    check: Any,
) -> tuple[dict[str, Any], list[str] | None]:
    """Send one non-streamed request with a feature switched on. Returns the fact and the
    rate-limit header names seen (None when no response arrived)."""
    prompt = Prompt(id="capabilities",
                    text='What is the weather in Paris? Reply as JSON: {"city": "...", "answer": "..."}')
    provider = provider_for(contender)
    req = provider.build_request(contender, prompt, stream=False, api_key=api_key, base_url=root)
    body = mutate(provider, req.json)
    try:
        async with asyncio.timeout(contender.timeout_s):
            resp = await client.post(req.url, headers=req.headers, json=body)
    except (httpx.HTTPError, TimeoutError) as exc:
        return _unknown(f"no answer: {type(exc).__name__}"), None
    names = [k.lower() for k in resp.headers
             if k.lower().startswith(("x-ratelimit-", "anthropic-ratelimit-", "retry-after"))]
    try:
        payload: Any = resp.json()
    except ValueError:
        payload = resp.text[:500]
    if resp.status_code < 400:
        return _fact(True, "probed", check(provider, payload)), names
    info = provider.classify_error(resp.status_code, payload, resp.headers)
    detail = f"HTTP {resp.status_code} {info.error_class.value}: {info.message[:300]}"
    if info.error_class.value in _REFUSALS:
        return _fact(False, "probed", "refused: " + detail), names
    return _unknown(detail), names


def _find_ctx(entry: Mapping[str, Any]) -> tuple[int, str] | None:
    scopes: list[Mapping[str, Any]] = [entry]
    meta = entry.get("meta")
    if isinstance(meta, Mapping):
        scopes.insert(0, meta)
    for key in _CTX_KEYS:
        for scope in scopes:
            v = scope.get(key)
            if isinstance(v, int) and not isinstance(v, bool) and v > 0:
                return v, key
    return None


async def _context_window(
    client: httpx.AsyncClient, contender: Contender, root: str, api_key: str | None
) -> dict[str, Any]:
    """The context size from the model's lookup (`Provider.model_url`), else from the model
    listing (`Provider.models_listing_url`: OpenAI-compatible servers such as llama.cpp and vLLM
    answer no per-model lookup but list their models with a size)."""
    provider = provider_for(contender)
    urls = [u for u in (provider.model_url(contender.model, root), provider.models_listing_url(root)) if u]
    if not urls:
        return _unknown(f"no model lookup for api {contender.api!r}")
    req = provider.build_request(contender, Prompt(id="capabilities", text=""), stream=False, api_key=api_key,
                                 base_url=root)
    headers = {k: v for k, v in req.headers.items() if k.lower() != "content-type"}
    why = ""
    for url in urls:
        try:
            async with asyncio.timeout(contender.timeout_s):
                resp = await client.get(url, headers=headers)
            payload = resp.json()
        except (httpx.HTTPError, TimeoutError, ValueError) as exc:
            why = f"model lookup unavailable: {type(exc).__name__}"
            continue
        if resp.status_code >= 400 or not isinstance(payload, Mapping):
            why = f"model lookup: HTTP {resp.status_code} from {url}"
            continue
        found = _context_in(payload, contender.model)
        if found is not None:
            return _fact(found[0], "probed", f"{found[1]} from {url}")
        why = f"{url} reports no context size"
    return _unknown(why)


def _context_in(payload: Mapping[str, Any], model: str) -> tuple[int, str] | None:
    """(size, key) from one model object or an OpenAI-style listing (`data`) naming `model`."""
    entries: list[Mapping[str, Any]] = [payload]
    if isinstance(payload.get("data"), list):
        data = [e for e in payload["data"] if isinstance(e, Mapping)]
        entries = [e for e in data if e.get("id") == model] or (data if len(data) == 1 else [])
    for entry in entries:
        found = _find_ctx(entry)
        if found is not None:
            return found
    return None


def _merge_declared(
    facts: dict[str, dict[str, Any]], declared: Mapping[str, Any], api_key: str | None
) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for name in (*FACTS, *[k for k in declared if k not in FACTS]):
        fact = facts.get(name)
        if name in declared:
            if fact is None or fact["source"] != "probed":
                fact = _fact(declared[name], "declared", "from contender.declared")
            elif fact["value"] != declared[name]:
                fact = {**fact, "declared": declared[name]}
        if fact is None:
            continue
        if api_key and isinstance(fact.get("detail"), str):
            fact["detail"] = fact["detail"].replace(api_key, "[REDACTED]")
        out[name] = fact
    return out
