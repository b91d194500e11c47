"""Anthropic Messages API wire format (kind `anthropic`): `POST {base_url}/messages`.

Reference: docs.anthropic.com/en/api/messages and /en/docs/build-with-claude/streaming.
Two details matter for measurement:

- Anthropic's `usage.input_tokens` *excludes* prompt tokens read from or written to the prompt
  cache. `Usage.input_tokens` is the total prompt size everywhere in the workbench, so the three
  counts are summed here and the cache parts are kept beside it.
- In a stream, `message_start` carries the input counts and `message_delta` the *cumulative*
  output count, and (newer API versions) cumulative input and cache counts too. The stream parser
  accumulates the raw fields as the official SDK does (anthropic-sdk-python
  `lib/streaming/_messages.py`: each field a `message_delta` carries replaces the snapshot's)
  and sums the prompt total only from the merged fields.
- With extended thinking, `output_tokens` includes the thinking; `output_tokens_details.thinking_tokens`
  says how much (kept as `reasoning_tokens`). Thinking and signature deltas are not answer text.
  A stream that carried thinking deltas but no `thinking_tokens` gets an estimate, flagged:
  output − (visible characters / 4), since the thinking shown may be a summary of what was billed.
- New event types may be added by Anthropic at any time (their versioning policy says so);
  unknown ones are ignored, not errors.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from workbench.providers.base import (
    Completion,
    HttpRequest,
    Lifecycle,
    api_headers,
    event_json,
    extra_body,
    json_post,
    parse_date,
    register,
    sampling_fields,
    served_processing,
)
from workbench.providers.caching import PREFIX_CACHE_OPTION
from workbench.providers.errors import classify
from workbench.providers.image_parts import anthropic_content
from workbench.types import ErrorClass, ErrorInfo, Prompt, StreamDelta, Usage

if TYPE_CHECKING:
    from workbench.config import Contender
    from workbench.providers.sse import SSEEvent

__all__ = ["ANTHROPIC_VERSION", "LEGACY_VERSION", "NO_SAMPLING_FROM", "Anthropic", "AnthropicStream", "api_version",
           "classify_body", "error_fields", "parse_usage"]

#: The API version header sent by default: what the official SDK sends today (anthropic-sdk-python
#: 2.17.0, `_constants.ANTHROPIC_API_VERSION`), so Claude is measured as an application built on
#: that SDK calls it. `options.anthropic_version` selects another, e.g. `LEGACY_VERSION`.
ANTHROPIC_VERSION = "2026-10-21"
#: The version before it (the SDK's until 1.x): it still takes `temperature` and `top_p`.
LEGACY_VERSION = "2023-06-01"
#: From this version on, `MessageCreateParams` has no temperature, top_p or top_k (SDK 2.x's
#: `types/message_create_params.py`): the request leaves them out rather than draw a 400.
NO_SAMPLING_FROM = "2026-10-21"


def _int(v: Any) -> int | None:
    return v if isinstance(v, int) and not isinstance(v, bool) else None


#: The usage fields the Messages API reports, accumulated across a stream's events.
_USAGE_FIELDS = ("input_tokens", "cache_read_input_tokens", "cache_creation_input_tokens", "output_tokens")


def _raw_usage(u: Any) -> dict[str, int]:
    """The integer usage fields present in one report (`thinking_tokens` from `output_tokens_details`)."""
    if not isinstance(u, Mapping):
        return {}
    raw = {k: v for k in _USAGE_FIELDS if (v := _int(u.get(k))) is not None}
    details = u.get("output_tokens_details")
    if isinstance(details, Mapping) and (thinking := _int(details.get("thinking_tokens"))) is not None:
        raw["thinking_tokens"] = thinking
    return raw


def _usage_from(raw: Mapping[str, int]) -> Usage | None:
    """Accumulated raw fields → Usage, `input_tokens` the total prompt (uncached + cache reads +
    cache writes). Cache parts are only known once the uncached count is."""
    if not raw:
        return None
    uncached = raw.get("input_tokens")
    cache_read = raw.get("cache_read_input_tokens")
    cache_write = raw.get("cache_creation_input_tokens")
    total = None if uncached is None else uncached + (cache_read or 0) + (cache_write or 0)
    return Usage(
        input_tokens=total,
        output_tokens=raw.get("output_tokens"),
        cached_input_tokens=cache_read if uncached is not None else None,
        cache_creation_input_tokens=cache_write if uncached is not None else None,
        reasoning_tokens=raw.get("thinking_tokens"),
    )


def parse_usage(u: Mapping[str, Any] | None) -> Usage | None:
    """One whole Anthropic `usage` object → Usage (see `_usage_from`)."""
    return _usage_from(_raw_usage(u))


def error_fields(body: Any) -> tuple[str | None, str]:
    """(error.type, error.message) from `{"type": "error", "error": {"type", "message"}}`;
    anything else (a proxy's HTML page, say) is kept as a truncated message."""
    if isinstance(body, Mapping):
        err = body.get("error")
        if isinstance(err, Mapping):
            etype = err.get("type")
            return (str(etype) if etype is not None else None, str(err.get("message") or err))
        return None, json.dumps(body)[:500]
    return None, str(body)[:500]


# Anthropic reports an exhausted prepaid balance, and a spend limit the organization set itself,
# as a 400 invalid_request_error; the message is the only signal, and it is a quota problem
# (retrying will not help until someone pays or the month turns), not a bad request.
_CREDIT_MESSAGES = ("credit balance is too low", "reached your specified api usage limits",
                    "reached your specified workspace api usage limits")


def _detail_code(body: Any) -> str | None:
    """`error.details.error_code` (e.g. the tier spend cap's `enforced_spend_limit_reached`, a 429
    of type rate_limit_error that no retry fixes before the next month, sent without retry-after)."""
    err = body.get("error") if isinstance(body, Mapping) else None
    details = err.get("details") if isinstance(err, Mapping) else None
    code = details.get("error_code") if isinstance(details, Mapping) else None
    return str(code) if code else None


def classify_body(status: int | None, body: Any, headers: Mapping[str, str] | None = None) -> ErrorInfo:
    """An error body of this wire format (HTTP, in a stream, or a batch item's) → ErrorInfo."""
    etype, message = error_fields(body)
    detail = _detail_code(body)
    info = classify(status, detail or etype, message, headers, type_=etype)
    if info.error_class is ErrorClass.BAD_REQUEST:
        if any(m in message.lower() for m in _CREDIT_MESSAGES):
            info = dataclasses.replace(info, error_class=ErrorClass.QUOTA_EXHAUSTED, retryable=False)
        elif etype == "not_found_error" and message.startswith("model:"):
            # {"type": "not_found_error", "message": "model: claude-3-haiku-20240307"}: unknown or retired.
            info = dataclasses.replace(info, error_class=ErrorClass.MODEL_NOT_FOUND)
    return info


def _refusal_note(stop_reason: Any, details: Any) -> str | None:
    """A refusal's policy category and explanation (`stop_details`, anthropic-sdk-python
    `types/refusal_stop_details.py`) as one line; None unless `stop_reason` is `refusal`."""
    if stop_reason != "refusal":
        return None
    d = details if isinstance(details, Mapping) else {}
    category = d.get("category") or "no named category"
    return f"category {category}" + (f": {d['explanation']}" if d.get("explanation") else "")


def api_version(contender: Contender) -> str:
    """The `anthropic-version` this contender's requests carry."""
    return str(contender.options.get("anthropic_version", ANTHROPIC_VERSION))


@register("anthropic")
class Anthropic:
    """Messages API. Options: `anthropic_version` (header value; from 2026-10-21 on, the default,
    the request carries no temperature or top_p — that version has none), `omit_temperature`,
    `extra_body` (merged into the JSON body, e.g. `thinking`), `cache_prefix` (a cache breakpoint
    on the system prompt, see `workbench.providers.caching`)."""

    # Every provider declares the same three facts and implements the same `headers` and
    # `build_request` signatures (the `Provider` protocol): alike on purpose.
    kind = "anthropic"
    needs_prompt_template = False
    stream_format = "sse"

    def headers(self, contender: Contender, api_key: str | None) -> dict[str, str]:
        return api_headers(contender, {"x-api-key": api_key} if api_key else None,
                           {"anthropic-version": api_version(contender)})

    def build_request(
        self, contender: Contender, prompt: Prompt, *, stream: bool, api_key: str | None,
        base_url: str,
    ) -> HttpRequest:
        opts = contender.options
        body: dict[str, Any] = {
            "model": contender.model,
            "max_tokens": contender.wire_max_tokens,  # > budget_tokens, as thinking requires
            "messages": [{"role": "user", "content": anthropic_content(prompt.text, prompt.images)}],
        }
        system = prompt.system or contender.system_prompt
        if system and opts.get(PREFIX_CACHE_OPTION):
            # The shared prefix (instructions, examples) cached with an explicit breakpoint
            # (workbench.providers.caching): written once, read by every later request for 5 minutes.
            body["system"] = [{"type": "text", "text": system, "cache_control": {"type": "ephemeral"}}]
        elif system:
            body["system"] = system
        names = {"temperature": "temperature", "top_p": "top_p", "stop": "stop_sequences"}
        if api_version(contender) >= NO_SAMPLING_FROM:  # ISO dates compare as text
            names = {"stop": "stop_sequences"}
        fields = sampling_fields(contender, names)
        budget = contender.thinking_budget
        if budget:
            # Extended thinking accepts only the default temperature.
            body["thinking"] = {"type": "enabled", "budget_tokens": budget}
            fields.pop("temperature", None)
        elif contender.reasoning is not None and contender.reasoning.adaptive:
            body["thinking"] = {"type": "adaptive"}  # Claude decides when and how much
            fields.pop("temperature", None)
        if contender.reasoning is not None and contender.reasoning.effort is not None:
            body["output_config"] = {"effort": contender.reasoning.effort}
        body.update(fields)
        if stream:
            body["stream"] = True
        body.update(extra_body(contender))
        return json_post(base_url.rstrip("/") + "/messages", body, self.headers(contender, api_key), stream=stream)

    def parse_response(self, body: Any) -> Completion:
        if not isinstance(body, Mapping) or not isinstance(body.get("content"), list):
            raise ValueError("response has no 'content' list")
        text = "".join(
            str(block.get("text", ""))
            for block in body["content"]
            if isinstance(block, Mapping) and block.get("type") == "text"
        )
        return Completion(
            text=text,
            usage=served_processing(body.get("usage"), parse_usage(body.get("usage"))) or Usage(),
            finish_reason=body.get("stop_reason"),
            raw_model=body.get("model"),
            refusal=_refusal_note(body.get("stop_reason"), body.get("stop_details")),
        )

    def stream_parser(self) -> AnthropicStream:
        return AnthropicStream()

    def classify_error(self, status: int, body: Any, headers: Mapping[str, str]) -> ErrorInfo:
        return classify_body(status, body, headers)

    def lifecycle(self, model_object: Any) -> Lifecycle | None:
        """`lifecycle` (active / deprecated / retired) is the retirement signal; `retires_at` the
        scheduled date, which "can be revised until retirement occurs" — past it on a deprecated
        model, retirement is overdue, not done (anthropic-sdk-python `types/model_info.py`)."""
        if not isinstance(model_object, dict) or model_object.get("lifecycle") not in ("active", "deprecated",
                                                                                       "retired"):
            return None
        stage, retires = model_object["lifecycle"], model_object.get("retires_at")
        source = f"lifecycle: {stage}" + (f", retires_at: {retires}" if retires else "")
        return Lifecycle(stage, parse_date(retires), source, ends_is_final=False)


class AnthropicStream:
    """Turns Messages stream events into deltas; only `text_delta`s count as output text
    (thinking, signature and tool-input deltas are not answer text, so they do not start TTFT).
    Usage is accumulated over the stream (see the module docstring) and re-reported whole."""

    __slots__ = ("_text_chars", "_thought", "_usage")

    def __init__(self) -> None:
        self._usage: dict[str, int] = {}
        self._thought = False  # a thinking block streamed
        self._text_chars = 0

    def feed(self, event: SSEEvent) -> list[StreamDelta]:
        obj = event_json(event.data)
        if isinstance(obj, list):
            return obj
        etype = obj.get("type") or event.event
        if etype == "error" or event.event == "error":
            return [StreamDelta(error=classify_body(None, obj, None))]
        if etype == "message_start":
            reported = (obj.get("message") or {}).get("usage")
            raw = _raw_usage(reported)
            # message_start's output_tokens is a placeholder (1 or so); message_delta has the count.
            raw.pop("output_tokens", None)
            self._usage.update(raw)
            usage = served_processing(reported, _usage_from(self._usage))  # usage.service_tier / speed
            return [StreamDelta(usage=usage)] if usage is not None else []
        if etype == "content_block_delta":
            delta = obj.get("delta") or {}
            if delta.get("type") == "text_delta" and isinstance(delta.get("text"), str) and delta["text"]:
                self._text_chars += len(delta["text"])
                return [StreamDelta(text=delta["text"])]
            if delta.get("type") in ("thinking_delta", "signature_delta"):
                self._thought = True
            return []
        if etype == "message_delta":
            out: list[StreamDelta] = []
            stop = (obj.get("delta") or {}).get("stop_reason")
            raw = _raw_usage(obj.get("usage"))
            if raw:
                self._usage.update(raw)
                usage = _usage_from(self._usage)
                if usage is not None:
                    out.append(StreamDelta(usage=self._with_estimate(usage)))
            if stop:
                out.append(StreamDelta(finish_reason=str(stop),
                                       refusal=_refusal_note(stop, (obj.get("delta") or {}).get("stop_details"))))
            return out
        if etype == "message_stop":
            return [StreamDelta(done=True)]
        return []  # ping, content_block_start/stop, and event types added later

    def _with_estimate(self, usage: Usage) -> Usage:
        """Thinking streamed but not counted by the server: estimate it (output − visible/4), flagged."""
        if usage.reasoning_tokens is not None or not self._thought or usage.output_tokens is None:
            return usage
        visible = max(1, round(self._text_chars / 4)) if self._text_chars else 0
        return dataclasses.replace(usage, reasoning_tokens=max(0, usage.output_tokens - visible),
                                   reasoning_estimated=True)
