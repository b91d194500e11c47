"""OpenAI wire format: `/chat/completions` (kind `openai-chat`) and `/completions`
(kind `openai-completions`), the format llama.cpp's server and many gateways also speak.

Reference: platform.openai.com/docs/api-reference/chat. Streaming asks for
`stream_options.include_usage`, which makes the last chunk carry `usage` with empty `choices`
(llama.cpp's `llama-server` does the same, and adds its own `timings`, kept as `ServerTimings`);
servers that ignore it send no usage, and the probe then estimates tokens and says so on the record.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field

from workbench.providers.base import (
    Completion,
    HttpRequest,
    Lifecycle,
    Provider,
    SdkRetry,
    ToolSpec,
    api_headers,
    event_object,
    extra_body,
    json_post,
    parse_date,
    register,
    sampling_fields,
    served_processing,
)
from workbench.providers.contender import ProviderOptions, options_as
from workbench.providers.errors import classify
from workbench.providers.image_parts import openai_chat_content
from workbench.types import ErrorClass, ErrorInfo, Prompt, ServerTimings, StreamDelta, Usage

if TYPE_CHECKING:
    from workbench.providers.contender import WireContender as Contender
    from workbench.providers.sse import SSEEvent

__all__ = ["EFFORTS", "OPENAI_NO_CACHE", "OPENAI_SDK_RETRY", "OpenAIChat", "OpenAICompletions",
           "OpenAIImageOptions", "OpenAIOptions", "OpenAIPlatform", "SwitchableCache", "bearer",
           "classify_body", "error_fields", "error_parts", "openai_lifecycle", "parse_timings",
           "parse_usage", "stream_object"]


def parse_usage(u: Mapping[str, Any] | None) -> Usage | None:
    """OpenAI `usage` → Usage (cached, cache-write and reasoning counts from the `*_details`
    objects; `prompt_tokens_details.cache_write_tokens` is "the unadjusted number of prompt tokens
    written to cache", openai-python 3.63.0 `types/completion_usage.py`, priced apart from input)."""
    if not u:
        return None
    prompt_details = u.get("prompt_tokens_details") or {}
    completion_details = u.get("completion_tokens_details") or {}
    return Usage(
        input_tokens=u.get("prompt_tokens"),
        output_tokens=u.get("completion_tokens"),
        cached_input_tokens=prompt_details.get("cached_tokens"),
        cache_creation_input_tokens=prompt_details.get("cache_write_tokens"),
        image_input_tokens=prompt_details.get("image_tokens"),  # openai-python 3.63.0 PromptTokensDetails
        reasoning_tokens=completion_details.get("reasoning_tokens"),
    )


def parse_timings(t: Any) -> ServerTimings | None:
    """llama.cpp's `timings` object (non-standard; on the last stream chunk and on whole
    responses) → ServerTimings; None for servers that send none."""
    if not isinstance(t, Mapping):
        return None

    def num(key: str) -> float | None:
        v = t.get(key)
        return float(v) if isinstance(v, int | float) else None

    def count(key: str) -> int | None:
        v = t.get(key)
        return int(v) if isinstance(v, int | float) else None

    return ServerTimings(prompt_ms=num("prompt_ms"), predicted_ms=num("predicted_ms"), prompt_n=count("prompt_n"),
                         predicted_n=count("predicted_n"), cache_n=count("cache_n"))


def error_parts(body: Any) -> tuple[str | None, str | None, str]:
    """(code, type, message) from the shapes seen in the wild:
    `{"error": {"message", "type", "code"}}` (OpenAI: both `type` and `code` matter — a 429 of
    type `insufficient_quota` may carry a billing code, or none), `{"error": "code", "message":
    "..."}`, `{"detail": "..."}` (FastAPI), or plain text."""
    if isinstance(body, Mapping):
        err = body.get("error")
        if isinstance(err, Mapping):
            code, etype = err.get("code"), err.get("type") or err.get("status")
            return (str(code) if code is not None else None, str(etype) if etype is not None else None,
                    str(err.get("message") or err))
        if isinstance(err, str):
            return err, None, str(body.get("message") or err)
        if "detail" in body:
            return None, None, json.dumps(body["detail"])[:500]
        return None, None, json.dumps(body)[:500]
    return None, None, str(body)[:500]


def error_fields(body: Any) -> tuple[str | None, str]:
    """(code, message): the code, or the type when there is no code (see `error_parts`)."""
    code, etype, message = error_parts(body)
    return code or etype, message


def classify_body(status: int | None, body: Any, headers: Mapping[str, str] | None = None) -> ErrorInfo:
    """An OpenAI-shaped error body (HTTP or in-stream) → ErrorInfo, from its code *and* type."""
    code, etype, message = error_parts(body)
    return classify(status, code or etype, message, headers, type_=etype)


def bearer(api_key: str | None) -> dict[str, str] | None:
    """The key as OpenAI's APIs take it: `Authorization: Bearer <key>`."""
    return {"authorization": f"Bearer {api_key}"} if api_key else None


def stream_object(data: str) -> dict[str, Any] | list[StreamDelta]:
    """One stream event's JSON object, or the deltas that stand for it instead: none for an
    empty event, a typed error for malformed JSON or an `{"error": ...}` object (OpenAI-style
    servers, and the generic endpoints that copy them, send errors inside a 200 stream)."""
    if not data:
        return []
    obj = event_object(data)
    if isinstance(obj, StreamDelta):
        return [obj]
    if "error" in obj:
        return [StreamDelta(error=classify_body(None, obj))]
    return obj


#: Effort levels OpenAI's reasoning models accept (openai 3.63.0 `types/shared/reasoning_effort.py`,
#: read 2026-12-07).
EFFORTS = ("none", "minimal", "low", "medium", "high", "xhigh", "max")

#: openai-python's default retries (`_constants.py`, `_base_client.py`; 3.63.0, read 2026-12-07,
#: transcribed): 2 retries (3 attempts); backoff `min(0.5 · 2^n, 8)` s times a jitter factor in
#: [0.75, 1]; a `retry-after-ms` / `retry-after` (seconds or date) in (0, 120] s is used as is, one
#: above 120 s means no retry, read from the headers only (never a message's "try again in 26.6s");
#: `x-should-retry: true|false` decides first; then 408, 409, 429 and >= 500 are retried, and so
#: are timeouts and connection errors.
OPENAI_SDK_RETRY = SdkRetry(sdk="openai", max_attempts=3, backoff_base_s=0.5, backoff_cap_s=8.0, jitter=0.25,
                            retry_statuses=frozenset({408, 409, 429}), retry_5xx=True, honour_should_retry=True,
                            ignore_zero_hint=True, max_retry_after_s=120.0, long_hint_stops=True,
                            hint_from_headers_only=True)


class OpenAIImageOptions(ProviderOptions):
    """Options of the OpenAI APIs that take images (chat and Responses)."""

    image_detail: Literal["auto", "low", "high", "original"] | None = Field(
        None, description="each image part's `detail` (openai-python's ImageDetail; default: the API's, auto)")


class OpenAIOptions(OpenAIImageOptions):
    """Options of `/chat/completions` and `/completions`."""

    max_tokens_field: str | None = Field(
        None, description="the body field the output cap goes in (default: max_completion_tokens for a reasoning "
                          "contender, else max_tokens)")


#: The body field that switches OpenAI's implicit prompt cache off: explicit mode with no breakpoint
#: (openai-python 3.63.0 `PromptCacheOptions`, chat and Responses; see `workbench.providers.caching`).
OPENAI_NO_CACHE: dict[str, Any] = {"prompt_cache_options": {"mode": "explicit"}}


class OpenAIPlatform(Provider):
    """What every OpenAI API shares besides its wire: model lookup, caching, prices, batch, SDK retries."""

    openai_compatible = True
    how_cached = "implicit (automatic above the minimum prefix length; cannot be switched off)"
    price_provider = "openai"
    price_hosts = ("api.openai.com",)
    batch_dialect = "openai"
    sdk_retry = OPENAI_SDK_RETRY

    def model_url(self, model: str, root: str) -> str | None:
        return f"{root.rstrip('/')}/models/{model}"

    def models_listing_url(self, root: str) -> str | None:
        return f"{root.rstrip('/')}/models"

    def min_prefix_tokens(self, model: str) -> tuple[int | None, str]:
        return 1024, "OpenAI prompt caching docs (prompts of 1,024 tokens or more)"


class SwitchableCache(OpenAIPlatform):
    """The chat and Responses APIs: the implicit cache can be switched off (`OPENAI_NO_CACHE`)."""

    how_cached = "implicit (automatic above the minimum prefix length; off: prompt_cache_options mode explicit)"

    def prefix_cache_options(self, on: bool) -> dict[str, Any] | None:
        return {} if on else {"extra_body": OPENAI_NO_CACHE}


class _OpenAIBase(OpenAIPlatform):
    path = ""
    Options = OpenAIOptions

    def headers(self, contender: Contender, api_key: str | None) -> dict[str, str]:
        return api_headers(contender, bearer(api_key))

    def _sampling(self, contender: Contender, stream: bool) -> dict[str, Any]:
        opts = options_as(contender, OpenAIOptions)
        body: dict[str, Any] = {"model": contender.model}
        # `max_tokens` is "deprecated in favor of `max_completion_tokens`, and is not compatible
        # with o-series models" (openai-python 3.63.0 `types/chat/completion_create_params.py`):
        # the default for a reasoning contender, whose cap covers reasoning + visible tokens (hence
        # the reserve); other contenders (OpenAI-compatible servers) keep `max_tokens`.
        default_field = "max_completion_tokens" if contender.reasoning is not None else "max_tokens"
        body[opts.max_tokens_field or default_field] = contender.wire_max_tokens
        if contender.reasoning is not None and contender.reasoning.effort is not None:
            body["reasoning_effort"] = contender.reasoning.effort
        body.update(sampling_fields(contender, {"temperature": "temperature", "top_p": "top_p", "stop": "stop",
                                                "seed": "seed"}))
        if stream:
            body["stream"] = True
            body["stream_options"] = {"include_usage": True}
        return body | extra_body(contender)

    def build_request(
        self, contender: Contender, prompt: Prompt, *, stream: bool, api_key: str | None,
        base_url: str,
    ) -> HttpRequest:
        body = self._sampling(contender, stream)
        body.update(self._payload(contender, prompt))
        return json_post(base_url.rstrip("/") + self.path, body, self.headers(contender, api_key), stream=stream)

    def _payload(self, contender: Contender, prompt: Prompt) -> dict[str, Any]:
        raise NotImplementedError

    def _choice_text(self, choice: Mapping[str, Any]) -> str | None:
        raise NotImplementedError

    def parse_response(self, body: Any) -> Completion:
        if not isinstance(body, Mapping) or not isinstance(body.get("choices"), list):
            raise ValueError("response has no 'choices' list")
        choices = body["choices"]
        text = ""
        finish = None
        refusal = None
        if choices:
            text = self._full_text(choices[0]) or ""
            finish = choices[0].get("finish_reason")
            message = choices[0].get("message")
            refusal = message.get("refusal") if isinstance(message, Mapping) else None
        return Completion(
            text=text,
            usage=served_processing(body, parse_usage(body.get("usage"))) or Usage(),
            finish_reason=finish,
            raw_model=body.get("model"),
            timings=parse_timings(body.get("timings")),
            refusal=refusal if isinstance(refusal, str) and refusal else None,
        )

    def _full_text(self, choice: Mapping[str, Any]) -> str | None:
        raise NotImplementedError

    def stream_parser(self) -> _OpenAIStream:
        return _OpenAIStream(self)

    def classify_error(self, status: int, body: Any, headers: Mapping[str, str]) -> ErrorInfo:
        return classify_body(status, body, headers)

    def lifecycle(self, model_object: Any) -> Lifecycle | None:
        return openai_lifecycle(model_object)


def openai_lifecycle(model_object: Any) -> Lifecycle | None:
    """OpenAI's model object names `shutdown_date` ("The date when the model will shut down, or
    null if not announced", openai-python `types/model.py`): announced means deprecated, and past
    it the model is gone. Nothing announced: None."""
    if not isinstance(model_object, dict) or not model_object.get("shutdown_date"):
        return None
    raw = model_object["shutdown_date"]
    return Lifecycle("deprecated", parse_date(raw), f"shutdown_date: {raw}", ends_is_final=True)


class _OpenAIStream:
    __slots__ = ("_finished", "_p")

    def __init__(self, provider: _OpenAIBase) -> None:
        self._p = provider
        self._finished = False

    def feed(self, event: SSEEvent) -> list[StreamDelta]:
        data = event.data
        if data.strip() == "[DONE]":
            if not self._finished:
                # OpenAI-format servers send a finish_reason before [DONE]; without one the
                # server cut the answer short (llama-cpp-python's server did this to a running
                # stream when another request arrived, unless told not to).
                return [StreamDelta(error=ErrorInfo(
                    ErrorClass.PROTOCOL, "stream ended by [DONE] before any finish_reason: "
                    "the server cut the answer short"))]
            return [StreamDelta(done=True)]
        obj = stream_object(data)
        if not isinstance(obj, dict):
            return obj
        out: list[StreamDelta] = []
        for choice in obj.get("choices") or ():
            text = self._p._choice_text(choice)
            finish = choice.get("finish_reason")
            delta = choice.get("delta")
            refusal = delta.get("refusal") if isinstance(delta, Mapping) else None  # chat: `delta.refusal`
            refusal = refusal if isinstance(refusal, str) and refusal else None
            if finish:
                self._finished = True
            if text or finish or refusal:
                out.append(StreamDelta(text=text or None, finish_reason=finish, refusal=refusal))
        usage = parse_usage(obj.get("usage"))
        if usage is not None:  # the usage chunk carries the tier too, as every chunk does
            out.append(StreamDelta(usage=served_processing(obj, usage)))
        timings = parse_timings(obj.get("timings"))
        if timings is not None:
            out.append(StreamDelta(timings=timings))
        return out


@register("openai-chat")
class OpenAIChat(_OpenAIBase, SwitchableCache):
    path = "/chat/completions"
    efforts = EFFORTS

    def json_mode_body(self, body: dict[str, Any]) -> dict[str, Any] | None:
        return {**body, "response_format": {"type": "json_object"}}

    def tools_body(self, body: dict[str, Any], tool: ToolSpec) -> dict[str, Any] | None:
        return {**body, "tools": [{"type": "function", "function": {
            "name": tool.name, "description": tool.description, "parameters": tool.parameters}}]}

    def tool_called(self, body: Any) -> bool:
        choices = body.get("choices") if isinstance(body, Mapping) else None
        return any(isinstance(c, Mapping) and isinstance(c.get("message"), Mapping) and bool(c["message"].get(
            "tool_calls")) for c in choices or ())

    def _payload(self, contender: Contender, prompt: Prompt) -> dict[str, Any]:
        messages: list[dict[str, Any]] = []
        system = prompt.system or contender.system_prompt
        if system:
            messages.append({"role": "system", "content": system})
        detail = options_as(contender, OpenAIOptions).image_detail
        messages.append({"role": "user", "content": openai_chat_content(prompt.text, prompt.images, detail)})
        return {"messages": messages}

    def _choice_text(self, choice: Mapping[str, Any]) -> str | None:
        delta = choice.get("delta") or {}
        content = delta.get("content")
        return content if isinstance(content, str) else None

    def _full_text(self, choice: Mapping[str, Any]) -> str | None:
        message = choice.get("message") or {}
        content = message.get("content")
        return content if isinstance(content, str) else None


@register("openai-completions")
class OpenAICompletions(_OpenAIBase):
    path = "/completions"
    needs_prompt_template = True

    def _payload(self, contender: Contender, prompt: Prompt) -> dict[str, Any]:
        template = contender.prompt_template or "{prompt}"
        return {"prompt": template.replace("{prompt}", prompt.text)}

    def _choice_text(self, choice: Mapping[str, Any]) -> str | None:
        text = choice.get("text")
        return text if isinstance(text, str) else None

    def _full_text(self, choice: Mapping[str, Any]) -> str | None:
        return self._choice_text(choice)
