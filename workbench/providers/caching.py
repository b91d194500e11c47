"""Prompt caching of a shared prefix: how each API is told, the documented way, and the prefix
length below which it does nothing. The per-kind facts are the providers' hooks (`how_cached`,
`min_prefix_tokens`, `prefix_cache_options`); the embedded models' llama.cpp cache is decided here.

- `anthropic`: an explicit breakpoint — the system prompt goes as a text block with
  `cache_control: {"type": "ephemeral"}` (the 5-minute cache); `usage.cache_creation_input_tokens`
  (writes, billed at their own rate) and `cache_read_input_tokens`. Off: no breakpoint, no cache.
- `openai-chat` / `openai-responses` (OpenAI): implicit, automatic for prompts of 1,024 tokens or
  more; `prompt_tokens_details.cached_tokens` (reads) and `cache_write_tokens` (writes, billed at
  their own rate). Off: `prompt_cache_options: {"mode": "explicit"}` with no explicit breakpoint —
  "If there are no explicit breakpoints, the request does not use prompt caching" (openai-python
  3.63.0, `PromptCacheOptions` in `types/chat/completion_create_params.py` and
  `types/responses/response_create_params.py`: the main namespace, not beta; "supported for
  gpt-5.6 and later models" — an older model may reject the field, which its records then say).
  `openai-completions` has no such field: cannot be switched off.
- `gemini`: implicit caching (Gemini 2.5 and later); `usageMetadata.cachedContentTokenCount`.
  Cannot be switched off.
- embedded (llama.cpp): the slot's KV cache of its previous prompt (`cache_prompt`, on by
  default), so a common prefix is not evaluated again; `timings.cache_n`. Off: `cache_prompt: false`
  (the whole prompt is evaluated; llama-server's tools/server/server-context.cpp).

Minimum prefix lengths, as documented, are each provider's `min_prefix_tokens` (a contender's
`options.prefix_cache_min_tokens` overrides): Anthropic 1,024 to 4,096 tokens by model family
(docs.anthropic.com prompt caching, "minimum cacheable prompt length"); OpenAI 1,024
(platform.openai.com prompt caching); Gemini 1,024 for Flash, 4,096 for Pro (ai.google.dev
implicit caching). Below the minimum the request succeeds uncached: the records say so (no cached
or cache-write tokens), never a guess.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, TypeVar

from workbench.providers.base import provider_for
from workbench.providers.openai import OPENAI_NO_CACHE

if TYPE_CHECKING:
    from workbench.providers.contender import WireContender as Contender

__all__ = ["OPENAI_NO_CACHE", "how_cached", "min_prefix_tokens", "prefix_cached"]

C = TypeVar("C", bound="Contender")


def how_cached(contender: Contender) -> str:
    """One line: how this contender's shared prefix is cached (`Provider.how_cached`)."""
    if contender.is_local:
        return "llama.cpp slot prompt cache (cache_prompt)"
    return provider_for(contender).how_cached


def min_prefix_tokens(contender: Contender) -> tuple[int | None, str]:
    """(tokens, where that comes from): the shortest prefix the API caches; None for the embedded
    models (llama.cpp reuses any common prefix) and for wire formats with no documented caching."""
    declared = contender.provider_options.prefix_cache_min_tokens
    if declared is not None:
        return declared, "declared in the contenders file (options.prefix_cache_min_tokens)"
    if contender.is_local:
        return None, "llama.cpp reuses any common prefix"
    return provider_for(contender).min_prefix_tokens(contender.model)


def prefix_cached(contender: C, on: bool) -> C | None:
    """A copy of `contender` with its shared prefix cached (`on`) or not, the documented way; None
    when the API cannot switch it off (Gemini and OpenAI completions cache implicitly) and `on` is
    False. OpenAI chat and Responses: on is the API's default (implicit), off is `OPENAI_NO_CACHE`."""
    if contender.is_local:  # llama.cpp's own switch, whatever wire format the server speaks
        switch: dict[str, Any] | None = {"extra_body": {"cache_prompt": on}}
    else:
        switch = provider_for(contender).prefix_cache_options(on)
    if switch is None:
        return None
    if not switch:
        return contender
    opts: dict[str, Any] = dict(contender.options)
    for key, value in switch.items():  # a body switch joins the contender's own extra_body
        opts[key] = {**dict(opts.get(key) or {}), **value} if isinstance(value, Mapping) else value
    return contender.override(f"prefix cache {'on' if on else 'off'}", options=opts)
