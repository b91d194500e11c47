"""Prompt caching of a shared prefix, per wire format: how each API is told, the documented way,
and the prefix length below which it does nothing.

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

Minimum prefix lengths, as documented (read 2026-12-02; a contender's `options.prefix_cache_min_tokens`
overrides): Anthropic 1,024 tokens for Sonnet 4.x and Opus 4/4.1, 4,096 for Haiku 4.5 and Opus
4.5/4.6, 2,048 for Haiku 3.x (docs.anthropic.com prompt caching, "minimum cacheable prompt length");
OpenAI 1,024 (platform.openai.com prompt caching); Gemini 1,024 for Flash, 4,096 for Pro
(ai.google.dev context caching, implicit caching). Below the minimum the request succeeds
uncached: the records say so (no cached or cache-write tokens), never a guess.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from workbench.config import Contender

__all__ = ["OPENAI_NO_CACHE", "PREFIX_CACHE_OPTION", "how_cached", "min_prefix_tokens", "prefix_cached"]

#: The contender option the Anthropic provider reads to put a cache breakpoint on the system prompt.
PREFIX_CACHE_OPTION = "cache_prefix"
#: The OpenAI body field that switches the implicit cache off (no explicit breakpoint is sent).
OPENAI_NO_CACHE = {"prompt_cache_options": {"mode": "explicit"}}
_OPENAI_CONTROLLED = ("openai-chat", "openai-responses")

_ANTHROPIC_MIN = (("haiku-4", 4096), ("opus-4-5", 4096), ("opus-4-6", 4096), ("haiku-3", 2048), ("3-5-haiku", 2048),
                  ("3-haiku", 2048))


def how_cached(contender: Contender) -> str:
    """One line: how this contender's shared prefix is cached."""
    if contender.is_local:
        return "llama.cpp slot prompt cache (cache_prompt)"
    if contender.api == "anthropic":
        return "explicit cache_control breakpoint on the system prompt"
    if contender.api in _OPENAI_CONTROLLED:
        return "implicit (automatic above the minimum prefix length; off: prompt_cache_options mode explicit)"
    if contender.api.startswith("openai") or contender.api == "gemini":
        return "implicit (automatic above the minimum prefix length; cannot be switched off)"
    return "unknown for this wire format"


def min_prefix_tokens(contender: Contender) -> tuple[int | None, str]:
    """(tokens, where that comes from): the shortest prefix the API caches; None for the embedded
    models (llama.cpp reuses any common prefix) and for wire formats with no documented caching."""
    declared = contender.options.get("prefix_cache_min_tokens")
    if declared is not None:
        return int(declared), "declared in the contenders file (options.prefix_cache_min_tokens)"
    if contender.is_local:
        return None, "llama.cpp reuses any common prefix"
    model = contender.model.lower()
    if contender.api == "anthropic":
        n = next((v for k, v in _ANTHROPIC_MIN if k in model), 1024)
        return n, "Anthropic prompt caching docs, minimum cacheable prompt length"
    if contender.api.startswith("openai"):
        return 1024, "OpenAI prompt caching docs (prompts of 1,024 tokens or more)"
    if contender.api == "gemini":
        return (4096 if "pro" in model else 1024), "Gemini implicit caching docs (minimum input token count)"
    return None, "no documented prompt caching for this wire format"


def prefix_cached(contender: Contender, on: bool) -> Contender | None:
    """A copy of `contender` with its shared prefix cached (`on`) or not, the documented way; None
    when the API cannot switch it off (Gemini and OpenAI completions cache implicitly) and `on` is
    False. OpenAI chat and Responses: on is the API's default (implicit), off is `OPENAI_NO_CACHE`."""
    opts: dict[str, Any] = dict(contender.options)
    if contender.is_local:
        opts["extra_body"] = {**dict(opts.get("extra_body") or {}), "cache_prompt": on}
    elif contender.api == "anthropic":
        opts[PREFIX_CACHE_OPTION] = on
    elif contender.api in _OPENAI_CONTROLLED and not on:
        opts["extra_body"] = {**dict(opts.get("extra_body") or {}), **OPENAI_NO_CACHE}
    elif not on:
        return None
    else:
        return contender
    return contender.override(f"prefix cache {'on' if on else 'off'}", options=opts)
