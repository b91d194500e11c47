"""Gemini API wire format (kind `gemini`): `models/{model}:generateContent` and
`:streamGenerateContent?alt=sse` under `base_url` (e.g. https://generativelanguage.googleapis.com/v1beta).

Reference: ai.google.dev/api/generate-content. Measurement-relevant details:

- Each stream event is a whole `GenerateContentResponse`; `usageMetadata` may ride on several
  of them (the last wins, which the probe's field-by-field usage merge gives), and the final
  one carries `finishReason`, which is what makes a stream complete.
- `promptTokenCount` already includes `cachedContentTokenCount` (the total prompt, as
  `Usage.input_tokens` wants). Thinking tokens (`thoughtsTokenCount`) are billed as output but
  reported apart from `candidatesTokenCount`; they are added to `output_tokens` and kept in
  `reasoning_tokens`, matching OpenAI, whose `completion_tokens` include reasoning.
- Parts flagged `"thought": true` are thought summaries, not answer text: skipped for TTFT.
- Errors are google.rpc statuses, `{"error": {"code", "message", "status", "details"}}`, in an
  HTTP error body or as an event inside a 200 stream. RESOURCE_EXHAUSTED is rate_limited, with the
  wait from the `google.rpc.RetryInfo` detail's `retryDelay` — unless a `google.rpc.QuotaFailure`
  violation names a per-day quota (`...PerDay...` quota id): then it is quota_exhausted.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from pydantic import Field

from workbench.providers.base import (
    Completion,
    HttpRequest,
    Lifecycle,
    Provider,
    SdkRetry,
    ToolSpec,
    api_headers,
    event_json,
    extra_body,
    json_post,
    register,
    sampling_fields,
)
from workbench.providers.contender import ThinkingOptions, options_as
from workbench.providers.errors import classify, parse_duration
from workbench.providers.image_parts import gemini_parts
from workbench.types import ErrorClass, ErrorInfo, Prompt, StreamDelta, Usage

if TYPE_CHECKING:
    from workbench.providers.contender import WireContender as Contender
    from workbench.providers.sse import SSEEvent

__all__ = ["Gemini", "GeminiStream", "classify_body", "error_fields", "parse_usage", "quota_ids", "retry_delay"]


def _int(v: Any) -> int | None:
    return v if isinstance(v, int) and not isinstance(v, bool) else None


def parse_usage(u: Mapping[str, Any] | None) -> Usage | None:
    """`usageMetadata` → Usage; output = candidates + thoughts (see module docstring)."""
    if not isinstance(u, Mapping) or not u:
        return None
    cand = _int(u.get("candidatesTokenCount"))
    thoughts = _int(u.get("thoughtsTokenCount"))
    prompt = _int(u.get("promptTokenCount"))
    output = None if cand is None and thoughts is None else (cand or 0) + (thoughts or 0)
    if output is None and prompt is not None and _int(u.get("totalTokenCount")) == prompt:
        output = 0  # a complete report with nothing generated omits candidatesTokenCount
    return Usage(
        input_tokens=prompt,
        output_tokens=output,
        cached_input_tokens=_int(u.get("cachedContentTokenCount")),
        image_input_tokens=_modality_tokens(u.get("promptTokensDetails"), "IMAGE"),
        reasoning_tokens=thoughts,
    )


def _modality_tokens(details: Any, modality: str) -> int | None:
    """The tokens of one modality in a `promptTokensDetails` list (google-genai 3.6.1
    `types.ModalityTokenCount`); None when the list has no entry of it."""
    counts = [_int(d.get("tokenCount")) for d in details or ()
              if isinstance(d, Mapping) and d.get("modality") == modality]
    ints = [n for n in counts if n is not None]
    return sum(ints) if ints else None


def retry_delay(err: Mapping[str, Any]) -> float | None:
    """Seconds from the `google.rpc.RetryInfo` entry of `error.details`, if any."""
    for detail in err.get("details") or ():
        if isinstance(detail, Mapping) and str(detail.get("@type", "")).endswith("google.rpc.RetryInfo"):
            return parse_duration(detail.get("retryDelay"))
    return None


def error_fields(body: Any) -> tuple[str | None, str, float | None]:
    """(status name, message, RetryInfo seconds) from a google.rpc error body."""
    if isinstance(body, list) and body and isinstance(body[0], Mapping):
        body = body[0]  # some Google front ends wrap the error in a one-element list
    if isinstance(body, Mapping):
        err = body.get("error")
        if isinstance(err, Mapping):
            status = err.get("status")
            return (str(status) if status else None, str(err.get("message") or err), retry_delay(err))
        return None, json.dumps(body)[:500], None
    return None, str(body)[:500], None


def _error_details(body: Any) -> list[Mapping[str, Any]]:
    if isinstance(body, list) and body and isinstance(body[0], Mapping):
        body = body[0]
    err = body.get("error") if isinstance(body, Mapping) else None
    details = err.get("details") if isinstance(err, Mapping) else None
    return [d for d in details or () if isinstance(d, Mapping)]


def _error_reasons(body: Any) -> set[str]:
    return {str(d.get("reason")) for d in _error_details(body) if d.get("reason")}


def quota_ids(body: Any) -> list[str]:
    """The `quotaId`s of a `google.rpc.QuotaFailure` detail's violations (e.g.
    `GenerateRequestsPerDayPerProjectPerModel-FreeTier`)."""
    return [str(v.get("quotaId")) for d in _error_details(body)
            if str(d.get("@type", "")).endswith("google.rpc.QuotaFailure")
            for v in d.get("violations") or () if isinstance(v, Mapping) and v.get("quotaId")]


# Gemini answers a wrong or expired key with 400 INVALID_ARGUMENT; only the ErrorInfo detail's
# `reason` says it is a key problem (auth), not a malformed request.
_KEY_REASONS = {"API_KEY_INVALID", "API_KEY_EXPIRED", "API_KEY_SERVICE_BLOCKED"}


def classify_body(status: int | None, body: Any, headers: Mapping[str, str] | None = None) -> ErrorInfo:
    """An error body of this wire format (HTTP, in a stream, or a batch item's) → ErrorInfo."""
    code, message, delay = error_fields(body)
    ids = quota_ids(body)
    # RESOURCE_EXHAUSTED is a per-minute rate limit *or* an exhausted daily quota; the QuotaFailure
    # quota ids say which. A day's quota is not worth retrying within a run.
    daily = any("PerDay" in q for q in ids)
    info = classify(status, "quota_exhausted" if daily else code, message, headers, type_=code)
    if info.error_class is ErrorClass.BAD_REQUEST and _error_reasons(body) & _KEY_REASONS:
        info = dataclasses.replace(info, error_class=ErrorClass.AUTH, retryable=False)
    if code == "NOT_FOUND" and message.startswith("models/"):
        # "models/gemini-1.0-pro is not found for API version v1beta, or is not supported for generateContent."
        info = dataclasses.replace(info, error_class=ErrorClass.MODEL_NOT_FOUND, retryable=False)
    if info.retry_after_s is None and delay is not None:
        info = dataclasses.replace(info, retry_after_s=delay)
    if ids:
        info = dataclasses.replace(info, provider_code=ids[0] if daily else code,
                                   message=f"{message} [quota: {', '.join(ids)}]")
    return info


def _model_path(model: str) -> str:
    return model if model.startswith(("models/", "tunedModels/")) else f"models/{model}"


def _deep_merge(base: dict[str, Any], over: Mapping[str, Any]) -> None:
    for k, v in over.items():
        if isinstance(v, Mapping) and isinstance(base.get(k), dict):
            _deep_merge(base[k], v)
        else:
            base[k] = v


#: python-genai's retries (`_api_client.py` `retry_args`; 3.6.1, read 2026-12-07, transcribed): none
#: unless `HttpRetryOptions` is given; with it, 5 attempts, wait `min(1 · 2^n + U(0, 1), 60)` s, on
#: 408, 429, 500, 502, 503, 504 and transient httpx errors; no `retry-after`. These are the
#: `HttpRetryOptions` defaults.
GENAI_SDK_RETRY = SdkRetry(sdk="google-genai", max_attempts=5, backoff_base_s=1.0, backoff_cap_s=60.0, jitter=0.0,
                           additive_jitter_s=1.0, honour_retry_after=False,
                           retry_statuses=frozenset({408, 429, 500, 502, 503, 504}))


def _upper_types(schema: Any) -> Any:
    """A JSON Schema with Gemini's `Type` spelling (OBJECT, STRING, ...; google-genai `types.Type`)."""
    if isinstance(schema, Mapping):
        return {k: (v.upper() if k == "type" and isinstance(v, str) else _upper_types(v)) for k, v in schema.items()}
    if isinstance(schema, list):
        return [_upper_types(v) for v in schema]
    return schema


class GeminiOptions(ThinkingOptions):
    """Options of generateContent."""

    automatic_continuation: bool = Field(
        True, description="follow a CONTINUATION finish with its continuationToken, as google-genai does; false: "
                          "stop at the first answer (a cut-off)")


@register("gemini")
class Gemini(Provider):
    """Gemini generateContent. Thinking from `Contender.reasoning` (`budget_tokens` →
    `thinkingBudget`, 0 turns thinking off on 2.5 Flash; `effort` → `thinkingLevel`) or the older
    `options.thinking_budget`. Options: `omit_temperature`, `extra_body` (deep-merged into the body)."""

    Options = GeminiOptions
    #: google-genai 3.6.1 `types.ThinkingLevel`, read 2026-12-07.
    efforts = ("minimal", "low", "medium", "high", "xhigh")
    takes_thinking_budget = True
    how_cached = "implicit (automatic above the minimum prefix length; cannot be switched off)"
    price_provider = "google"
    price_hosts = ("generativelanguage.googleapis.com",)
    batch_dialect = "gemini"
    sdk_retry = GENAI_SDK_RETRY

    def model_url(self, model: str, root: str) -> str | None:
        return f"{root.rstrip('/')}/{_model_path(model)}"

    def json_mode_body(self, body: dict[str, Any]) -> dict[str, Any] | None:
        return {**body, "generationConfig": {**(body.get("generationConfig") or {}),
                                             "responseMimeType": "application/json"}}

    def tools_body(self, body: dict[str, Any], tool: ToolSpec) -> dict[str, Any] | None:
        declaration = {"name": tool.name, "description": tool.description,
                       "parameters": _upper_types(tool.parameters)}
        return {**body, "tools": [{"functionDeclarations": [declaration]}]}

    def tool_called(self, body: Any) -> bool:
        cands = body.get("candidates") if isinstance(body, Mapping) else None
        return any(isinstance(p, Mapping) and "functionCall" in p
                   for c in cands or () if isinstance(c, Mapping)
                   for p in (c.get("content") or {}).get("parts") or ())

    def min_prefix_tokens(self, model: str) -> tuple[int | None, str]:
        return (4096 if "pro" in model.lower() else 1024), "Gemini implicit caching docs (minimum input token count)"

    def headers(self, contender: Contender, api_key: str | None) -> dict[str, str]:
        # The key goes in a header, never `?key=`: URLs end up in messages.
        return api_headers(contender, {"x-goog-api-key": api_key} if api_key else None)

    def build_request(
        self, contender: Contender, prompt: Prompt, *, stream: bool, api_key: str | None,
        base_url: str,
    ) -> HttpRequest:
        # maxOutputTokens covers thoughts and answer, hence the reasoning reserve.
        gen: dict[str, Any] = {"maxOutputTokens": contender.wire_max_tokens, **sampling_fields(contender, {
            "temperature": "temperature", "top_p": "topP", "stop": "stopSequences", "seed": "seed"})}
        thinking: dict[str, Any] = {}
        if contender.thinking_budget is not None:
            thinking["thinkingBudget"] = contender.thinking_budget
        if contender.reasoning is not None and contender.reasoning.effort is not None:
            thinking["thinkingLevel"] = contender.reasoning.effort.upper()
        if thinking:
            gen["thinkingConfig"] = thinking
        body: dict[str, Any] = {
            "contents": [{"role": "user", "parts": gemini_parts(prompt.text, prompt.images)}],
            "generationConfig": gen,
        }
        system = prompt.system or contender.system_prompt
        if system:
            body["systemInstruction"] = {"parts": [{"text": system}]}
        _deep_merge(body, extra_body(contender))
        method = "streamGenerateContent?alt=sse" if stream else "generateContent"
        return json_post(f"{base_url.rstrip('/')}/{_model_path(contender.model)}:{method}", body,
                         self.headers(contender, api_key), stream=stream)

    def parse_response(self, body: Any) -> Completion:
        if not isinstance(body, Mapping):
            raise ValueError("response is not an object")
        if "candidates" not in body and "promptFeedback" not in body:
            raise ValueError("response has neither 'candidates' nor 'promptFeedback'")
        text, finish = _candidate(body)
        return Completion(
            text=text or "",
            usage=parse_usage(body.get("usageMetadata")) or Usage(),
            finish_reason=finish,
            raw_model=body.get("modelVersion"),
            continuation=_continuation(body, finish),
        )

    def continued(self, contender: Contender, request: HttpRequest, token: str) -> HttpRequest | None:
        """The follow-up of `request` after a CONTINUATION finish: the same request with the
        returned token as the top-level `continuationToken` (google-genai 3.6.1: `models.py`
        `_generate_content_with_continuation`, the config's `continuation_token` →
        `continuationToken`); None when `options.automatic_continuation` is false."""
        if not options_as(contender, GeminiOptions).automatic_continuation:
            return None
        return dataclasses.replace(request, json={**request.json, "continuationToken": token})

    def stream_parser(self) -> GeminiStream:
        return GeminiStream()

    def classify_error(self, status: int, body: Any, headers: Mapping[str, str]) -> ErrorInfo:
        return classify_body(status, body, headers)

    def lifecycle(self, model_object: Any) -> Lifecycle | None:
        return None  # its model object carries no retirement fields


def _continuation(obj: Mapping[str, Any], finish: str | None) -> str | None:
    """The first candidate's `continuationToken` when its finish lets the answer be continued
    (CONTINUATION, or none yet: google-genai `_extra_utils.is_resumable_finish_reason`)."""
    cands = obj.get("candidates") or []
    cand = cands[0] if cands and isinstance(cands[0], Mapping) else {}
    token = cand.get("continuationToken")
    return token if isinstance(token, str) and token and finish in (None, "CONTINUATION") else None


def _candidate(obj: Mapping[str, Any]) -> tuple[str | None, str | None]:
    """(answer text, finish reason) of the first candidate; a prompt blocked by safety filters
    has no candidate and finishes with `prompt_blocked:<reason>`."""
    cands = obj.get("candidates") or []
    if not cands:
        block = (obj.get("promptFeedback") or {}).get("blockReason")
        return None, (f"prompt_blocked:{block}" if block else None)
    cand = cands[0] if isinstance(cands[0], Mapping) else {}
    parts = (cand.get("content") or {}).get("parts") or []
    text = "".join(
        p["text"] for p in parts
        if isinstance(p, Mapping) and isinstance(p.get("text"), str) and not p.get("thought")
    )
    finish = cand.get("finishReason")
    return text or None, (str(finish) if finish else None)


class GeminiStream:
    """Each event is a full response chunk; see the module docstring."""

    __slots__ = ()

    def feed(self, event: SSEEvent) -> list[StreamDelta]:
        obj = event_json(event.data)
        if isinstance(obj, list):
            return obj
        if "error" in obj:
            # No HTTP status: the response itself was a 200; the rpc status name classifies it.
            return [StreamDelta(error=classify_body(None, obj, None))]
        out: list[StreamDelta] = []
        text, finish = _candidate(obj)
        if text:
            out.append(StreamDelta(text=text))
        usage = parse_usage(obj.get("usageMetadata"))
        if usage is not None:
            out.append(StreamDelta(usage=usage))
        token = _continuation(obj, finish)
        if token is not None:
            out.append(StreamDelta(continuation=token))
        if finish:
            out.append(StreamDelta(finish_reason=finish))
        return out
