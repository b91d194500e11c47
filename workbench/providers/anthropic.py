"""Anthropic Messages API wire format (kind `anthropic`): `POST {base_url}/messages`.

Reference: docs.anthropic.com/en/api/messages and /en/docs/build-with-claude/streaming.
Two details matter for measurement:

- Anthropic's `usage.input_tokens` *excludes* prompt tokens read from or written to the prompt
  cache. `Usage.input_tokens` is the total prompt size everywhere in the workbench, so the three
  counts are summed here and the cache parts are kept beside it.
- In a stream, `message_start` carries the input counts and `message_delta` the *cumulative*
  output count; the probe merges usage reports field by field, later ones winning, so the last
  `message_delta` gives the final output count. New event types may be added by Anthropic at
  any time (their versioning policy says so); unknown ones are ignored, not errors.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from workbench.providers.base import Completion, HttpRequest, event_object, extra_body, register, sampling_fields
from workbench.providers.errors import classify
from workbench.types import ErrorClass, ErrorInfo, Prompt, StreamDelta, Usage

if TYPE_CHECKING:
    from workbench.config import Contender
    from workbench.providers.sse import SSEEvent

__all__ = ["ANTHROPIC_VERSION", "Anthropic", "AnthropicStream", "error_fields", "parse_usage"]

#: The API version header value the request and response shapes here follow.
ANTHROPIC_VERSION = "2023-06-01"


def _int(v: Any) -> int | None:
    return v if isinstance(v, int) and not isinstance(v, bool) else None


def parse_usage(u: Mapping[str, Any] | None) -> Usage | None:
    """Anthropic `usage` → Usage, with `input_tokens` the total prompt (uncached + cache reads +
    cache writes). Fields absent from this report stay None so that a later report merges in."""
    if not isinstance(u, Mapping) or not u:
        return None
    uncached = _int(u.get("input_tokens"))
    cache_read = _int(u.get("cache_read_input_tokens"))
    cache_write = _int(u.get("cache_creation_input_tokens"))
    total = None if uncached is None else uncached + (cache_read or 0) + (cache_write or 0)
    return Usage(
        input_tokens=total,
        output_tokens=_int(u.get("output_tokens")),
        cached_input_tokens=cache_read if uncached is not None else None,
        cache_creation_input_tokens=cache_write if uncached is not None else None,
    )


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


# Anthropic reports an exhausted prepaid balance as a 400 invalid_request_error; the message is
# the only signal, and it is a quota problem (retrying will not help), not a bad request.
_CREDIT_MESSAGES = ("credit balance is too low",)


def _classify(status: int | None, body: Any, headers: Mapping[str, str] | None) -> ErrorInfo:
    code, message = error_fields(body)
    info = classify(status, code, message, headers)
    if info.error_class is ErrorClass.BAD_REQUEST and any(m in message.lower() for m in _CREDIT_MESSAGES):
        info = dataclasses.replace(info, error_class=ErrorClass.QUOTA_EXHAUSTED, retryable=False)
    return info


@register("anthropic")
class Anthropic:
    """Messages API. Options: `anthropic_version` (header value), `omit_temperature`,
    `extra_body` (merged into the JSON body, e.g. `thinking`)."""

    # Every provider declares the same three facts and implements the same `build_request`
    # signature (the `Provider` protocol): alike on purpose, reported as a pair by `duplicates`.
    kind = "anthropic"
    needs_prompt_template = False
    stream_format = "sse"

    def build_request(
        self, contender: Contender, prompt: Prompt, *, stream: bool, api_key: str | None,
        base_url: str,
    ) -> HttpRequest:
        s = contender.sampling
        opts = contender.options
        body: dict[str, Any] = {
            "model": contender.model,
            "max_tokens": s.max_tokens,
            "messages": [{"role": "user", "content": prompt.text}],
        }
        system = prompt.system or contender.system_prompt
        if system:
            body["system"] = system
        body.update(sampling_fields(contender, {"temperature": "temperature", "top_p": "top_p",
                                                "stop": "stop_sequences"}))
        if stream:
            body["stream"] = True
        body.update(extra_body(contender))
        headers = {
            "content-type": "application/json",
            "anthropic-version": str(opts.get("anthropic_version", ANTHROPIC_VERSION)),
            **contender.headers,
        }
        if api_key:
            headers["x-api-key"] = api_key
        return HttpRequest(
            method="POST",
            url=base_url.rstrip("/") + "/messages",
            headers=headers,
            json=body,
            stream=stream,
        )

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
            usage=parse_usage(body.get("usage")) or Usage(),
            finish_reason=body.get("stop_reason"),
            raw_model=body.get("model"),
        )

    def stream_parser(self) -> AnthropicStream:
        return AnthropicStream()

    def classify_error(self, status: int, body: Any, headers: Mapping[str, str]) -> ErrorInfo:
        return _classify(status, body, headers)


class AnthropicStream:
    """Turns Messages stream events into deltas; only `text_delta`s count as output text
    (thinking, signature and tool-input deltas are not answer text, so they do not start TTFT)."""

    __slots__ = ()

    def feed(self, event: SSEEvent) -> list[StreamDelta]:
        if not event.data:
            return []
        obj = event_object(event.data)
        if isinstance(obj, StreamDelta):
            return [obj]
        etype = obj.get("type") or event.event
        if etype == "error" or event.event == "error":
            return [StreamDelta(error=_classify(None, obj, None))]
        if etype == "message_start":
            usage = parse_usage((obj.get("message") or {}).get("usage"))
            if usage is not None:
                # message_start's output_tokens is a placeholder (1 or so); message_delta has the count.
                usage.output_tokens = None
                return [StreamDelta(usage=usage)]
            return []
        if etype == "content_block_delta":
            delta = obj.get("delta") or {}
            if delta.get("type") == "text_delta" and isinstance(delta.get("text"), str) and delta["text"]:
                return [StreamDelta(text=delta["text"])]
            return []
        if etype == "message_delta":
            out: list[StreamDelta] = []
            stop = (obj.get("delta") or {}).get("stop_reason")
            usage = parse_usage(obj.get("usage"))
            if usage is not None:
                out.append(StreamDelta(usage=usage))
            if stop:
                out.append(StreamDelta(finish_reason=str(stop)))
            return out
        if etype == "message_stop":
            return [StreamDelta(done=True)]
        return []  # ping, content_block_start/stop, and event types added later
