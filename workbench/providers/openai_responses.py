"""OpenAI Responses API wire format (kind `openai-responses`): `POST {base_url}/responses`.

Reference: platform.openai.com/docs/api-reference/responses (and /responses-streaming), read
beside openai-python's types (`types/responses/`, 2026-08 snapshot). OpenAI recommends it for its
reasoning models. What matters for measurement:

- Streamed, every event names its type (`event:` line and `type` field). Only
  `response.output_text.delta` carries answer text, so TTFT skips the `response.created`,
  reasoning-item and content-part events before it (and reasoning summaries, which are not the
  answer). The stream ends with `response.completed`, `response.incomplete` (with
  `incomplete_details.reason`, e.g. `max_output_tokens`) or `response.failed` (with `error`);
  an `error` event carries `code` and `message` at the top level.
- `usage`: `input_tokens` (with `input_tokens_details.cached_tokens` and `cache_write_tokens`),
  `output_tokens` (reasoning included) and `output_tokens_details.reasoning_tokens`.
- The finish reason kept on the record is the response's `status` ("completed"), or the
  incomplete reason ("max_output_tokens", which with no text is the `truncated` outcome).
- The cap is `max_output_tokens` (reasoning + visible: the reasoning reserve is added); reasoning
  effort is `reasoning.effort`; the system prompt is `instructions`. Errors have the chat API's
  shape (`{"error": {"message", "type", "code"}}`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from workbench.providers.base import (
    Completion,
    HttpRequest,
    Lifecycle,
    ResponseError,
    api_headers,
    event_json,
    extra_body,
    json_post,
    register,
    sampling_fields,
    served_processing,
)
from workbench.providers.errors import classify
from workbench.providers.image_parts import responses_content
from workbench.providers.openai import bearer, classify_body, openai_lifecycle
from workbench.types import ErrorInfo, Prompt, StreamDelta, Usage

if TYPE_CHECKING:
    from workbench.config import Contender
    from workbench.providers.sse import SSEEvent

__all__ = ["OpenAIResponses", "ResponsesStream", "parse_usage"]


def _int(v: Any) -> int | None:
    return v if isinstance(v, int) and not isinstance(v, bool) else None


def parse_usage(u: Any) -> Usage | None:
    """Responses `usage` → Usage (cached, cache-write and reasoning counts from the `*_details`
    objects: `input_tokens_details.cache_write_tokens`, openai-python 3.63.0 `types/responses/response_usage.py`)."""
    if not isinstance(u, Mapping) or not u:
        return None
    inp = u.get("input_tokens_details") or {}
    out = u.get("output_tokens_details") or {}
    return Usage(input_tokens=_int(u.get("input_tokens")), output_tokens=_int(u.get("output_tokens")),
                 cached_input_tokens=_int(inp.get("cached_tokens")),
                 cache_creation_input_tokens=_int(inp.get("cache_write_tokens")),
                 reasoning_tokens=_int(out.get("reasoning_tokens")))


#: The Responses API rejects a smaller cap: "Invalid 'max_output_tokens': integer below minimum
#: value. Expected a value >= 16" (400 `integer_below_min_value`, quoted in vectorize-io/hindsight#58,
#: BerriAI/litellm#31536). A smaller cap asked for (a one-label annotation, the 1-token preflight)
#: is raised to it; the manifest's `requests` shows the cap sent.
MIN_OUTPUT_TOKENS = 16


def _finish(response: Mapping[str, Any]) -> str | None:
    details = response.get("incomplete_details")
    if isinstance(details, Mapping) and details.get("reason"):
        return str(details["reason"])
    status = response.get("status")
    return str(status) if status else None


def _output_text(response: Mapping[str, Any]) -> str:
    return "".join(
        str(part.get("text") or "")
        for item in response.get("output") or () if isinstance(item, Mapping) and item.get("type") == "message"
        for part in item.get("content") or () if isinstance(part, Mapping) and part.get("type") == "output_text"
    )


def _refusal_text(response: Mapping[str, Any]) -> str | None:
    """A message's `refusal` content parts (`{"type": "refusal", "refusal": "..."}`), joined."""
    text = "".join(
        str(part.get("refusal") or "")
        for item in response.get("output") or () if isinstance(item, Mapping) and item.get("type") == "message"
        for part in item.get("content") or () if isinstance(part, Mapping) and part.get("type") == "refusal"
    )
    return text or None


def _failed(response: Mapping[str, Any]) -> ErrorInfo:
    err = response.get("error")
    if not isinstance(err, Mapping) or not err:
        err = {"message": "response.failed without an error object"}
    return classify_body(None, {"error": err})


@register("openai-responses")
class OpenAIResponses:
    """Responses API. Options: `omit_temperature` (reasoning models take only the default),
    `extra_body` (merged into the JSON body)."""

    kind = "openai-responses"
    needs_prompt_template = False
    stream_format = "sse"

    def parse_response(self, body: Any) -> Completion:
        if not isinstance(body, Mapping) or not isinstance(body.get("output"), list):
            raise ValueError("response has no 'output' list")
        if body.get("status") == "failed":
            raise ResponseError(_failed(body))  # typed by its error code, as in a stream
        return Completion(text=_output_text(body), usage=served_processing(body, parse_usage(body.get("usage")))
                          or Usage(),
                          finish_reason=_finish(body), raw_model=body.get("model"), refusal=_refusal_text(body))

    def stream_parser(self) -> ResponsesStream:
        return ResponsesStream()

    def classify_error(self, status: int, body: Any, headers: Mapping[str, str]) -> ErrorInfo:
        return classify_body(status, body, headers)

    def lifecycle(self, model_object: Any) -> Lifecycle | None:
        return openai_lifecycle(model_object)

    def headers(self, contender: Contender, api_key: str | None) -> dict[str, str]:
        return api_headers(contender, bearer(api_key))

    def build_request(
        self, contender: Contender, prompt: Prompt, *, stream: bool, api_key: str | None,
        base_url: str,
    ) -> HttpRequest:
        content = responses_content(prompt.text, prompt.images, contender.options.get("image_detail"))
        body: dict[str, Any] = {"model": contender.model, "input": [{"role": "user", "content": content}],
                                "max_output_tokens": max(MIN_OUTPUT_TOKENS, contender.wire_max_tokens)}
        system = prompt.system or contender.system_prompt
        if system:
            body["instructions"] = system
        if contender.reasoning is not None and contender.reasoning.effort is not None:
            body["reasoning"] = {"effort": contender.reasoning.effort}
        body.update(sampling_fields(contender, {"temperature": "temperature", "top_p": "top_p"}))
        if stream:
            body["stream"] = True
        body.update(extra_body(contender))
        return json_post(base_url.rstrip("/") + "/responses", body, self.headers(contender, api_key), stream=stream)


class ResponsesStream:
    """`response.*` events → deltas; see the module docstring."""

    __slots__ = ()

    def feed(self, event: SSEEvent) -> list[StreamDelta]:
        obj = event_json(event.data)
        if isinstance(obj, list):
            return obj
        etype = obj.get("type") or event.event
        if etype == "response.output_text.delta":
            delta = obj.get("delta")
            return [StreamDelta(text=delta)] if isinstance(delta, str) and delta else []
        if etype == "response.refusal.delta":  # the model declining, apart from the answer text
            delta = obj.get("delta")
            return [StreamDelta(refusal=delta)] if isinstance(delta, str) and delta else []
        response = obj.get("response")
        if not isinstance(response, Mapping):
            response = {}
        if etype in ("response.completed", "response.incomplete"):
            out = []
            usage = served_processing(response, parse_usage(response.get("usage")))
            if usage is not None:
                out.append(StreamDelta(usage=usage))
            out.append(StreamDelta(finish_reason=_finish(response) or etype.rpartition(".")[2], done=True))
            return out
        if etype == "response.failed":
            return [StreamDelta(error=_failed(response))]
        if etype == "error":
            code = obj.get("code")
            return [StreamDelta(error=classify(None, str(code) if code else None, str(obj.get("message") or obj)))]
        return []  # created, in_progress, output_item/content_part added/done, reasoning summaries, ...
