"""Generic JSON wire format (kind `generic`) for in-house endpoints that speak no standard API.

`POST {base_url}{options.path}` (default `/generate`) with `{"model", "prompt", "max_tokens"}`
(+ `temperature`, `stop`); the answer's fields are found by dotted paths with list indices
(`"choices.0.text"`), all set in `contender.options`:

  path                "/generate"
  text_path           "text"
  input_tokens_path   "usage.input_tokens"
  output_tokens_path  "usage.output_tokens"
  finish_path         "finish_reason"        (optional in the answer)
  stream              "none" | "sse"         (default "none")
  delta_path          text_path              (text of one SSE event, when stream is "sse")
  done_marker         "[DONE]"               (SSE data that ends the stream)
  auth_header         "authorization"        (header that carries the key)
  auth_scheme         "Bearer {key}"         (its value; "{key}" alone for a bare key header)

Streaming is opt-in because nothing can be assumed about an unknown server: with `stream:
none`, asking the probe to stream raises a `ConfigError` that says to pass `stream=False`
(or declare SSE), instead of silently measuring a non-streamed answer as if it had a TTFT.
With `stream: sse`, each event's JSON gives text at `delta_path`; the stream is complete at the
`done_marker` or an event with a value at `finish_path`; token counts found in any event are
used (last wins). Errors are read like OpenAI's, including the gateway shape
`{"error": "rate_limit_exceeded", "message": "..."}`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field, field_validator

from workbench.errors import ConfigError
from workbench.providers.base import (
    Completion,
    HttpRequest,
    Lifecycle,
    Provider,
    api_headers,
    extra_body,
    json_post,
    register,
    sampling_fields,
)
from workbench.providers.contender import ProviderOptions, options_as
from workbench.providers.openai import classify_body, stream_object
from workbench.types import ErrorInfo, Prompt, StreamDelta, Usage

if TYPE_CHECKING:
    from workbench.providers.contender import WireContender as Contender
    from workbench.providers.sse import SSEEvent

__all__ = ["Generic", "GenericOptions", "GenericStream", "get_path"]

_MISSING = object()


def get_path(obj: Any, path: str, default: Any = None) -> Any:
    """Follow a dotted path through dicts and lists ("choices.0.text"); `default` if absent."""
    cur = obj
    for part in path.split(".") if path else ():
        if isinstance(cur, Mapping):
            cur = cur.get(part, _MISSING)
        elif isinstance(cur, list) and part.lstrip("-").isdigit():
            i = int(part)
            cur = cur[i] if -len(cur) <= i < len(cur) else _MISSING
        else:
            return default
        if cur is _MISSING:
            return default
    return cur


def _int(v: Any) -> int | None:
    return v if isinstance(v, int) and not isinstance(v, bool) else None


class GenericOptions(ProviderOptions):
    """The endpoint's shape (see the module docstring)."""

    path: str = Field("/generate", description="the POST route under base_url")
    text_path: str = Field("text", description="dotted path of the answer text")
    delta_path: str | None = Field(None, description="dotted path of one SSE event's text (default: text_path)")
    input_tokens_path: str = Field("usage.input_tokens", description="dotted path of the prompt token count")
    output_tokens_path: str = Field("usage.output_tokens", description="dotted path of the answer token count")
    finish_path: str = Field("finish_reason", description="dotted path of the finish reason (optional in answers)")
    stream: Literal["none", "sse"] = Field("none", description="whether the endpoint streams Server-Sent Events")
    done_marker: str = Field("[DONE]", description="the SSE data that ends the stream")
    auth_header: str = Field("authorization", description="the header that carries the key")
    auth_scheme: str = Field("Bearer {key}", description='its value; "{key}" alone for a bare key header')

    @field_validator("stream", mode="before")
    @classmethod
    def _lower(cls, v: Any) -> Any:
        return v.lower() if isinstance(v, str) else v


class _Paths:
    """The options of one contender, resolved once per request/stream."""

    __slots__ = ("delta", "done_marker", "finish", "input", "output", "text")

    def __init__(self, opts: GenericOptions) -> None:
        self.text = opts.text_path
        self.delta = opts.delta_path or self.text
        self.input = opts.input_tokens_path
        self.output = opts.output_tokens_path
        self.finish = opts.finish_path
        self.done_marker = opts.done_marker

    def usage(self, obj: Any) -> Usage | None:
        inp = _int(get_path(obj, self.input))
        out = _int(get_path(obj, self.output))
        if inp is None and out is None:
            return None
        return Usage(input_tokens=inp, output_tokens=out)


@register("generic")
class Generic(Provider):
    """A configurable JSON-over-HTTP endpoint; see the module docstring for the options.

    `parse_response` takes the paths from the contender, so the probe's call (which passes only
    the body) goes through `bind`; the registered instance uses the default paths.
    """

    Options = GenericOptions

    def __init__(self, paths: _Paths | None = None) -> None:
        self._paths = paths or _Paths(GenericOptions())

    def bind(self, contender: Contender) -> Generic:
        bound = Generic(_Paths(options_as(contender, GenericOptions)))
        bound.kind = self.kind
        return bound

    def headers(self, contender: Contender, api_key: str | None) -> dict[str, str]:
        if not api_key:
            return api_headers(contender)
        opts = options_as(contender, GenericOptions)
        return api_headers(contender, {opts.auth_header: opts.auth_scheme.replace("{key}", api_key)})

    def build_request(
        self, contender: Contender, prompt: Prompt, *, stream: bool, api_key: str | None,
        base_url: str,
    ) -> HttpRequest:
        opts = options_as(contender, GenericOptions)
        if stream and opts.stream != "sse":
            raise ConfigError(
                f"contender {contender.name}", "options.stream",
                "this generic endpoint is not declared to stream; probe it with stream=False "
                "or set options.stream: sse (and delta_path) if it speaks Server-Sent Events",
            )
        s = contender.sampling
        template = contender.prompt_template or "{prompt}"
        body: dict[str, Any] = {
            "model": contender.model,
            "prompt": template.replace("{prompt}", prompt.text),
            "max_tokens": s.max_tokens,
        }
        body.update(sampling_fields(contender, {"temperature": "temperature", "stop": "stop"}))
        if stream:
            body["stream"] = True
        body.update(extra_body(contender))
        path = opts.path
        return json_post(base_url.rstrip("/") + ("" if path.startswith("/") else "/") + path, body,
                         self.headers(contender, api_key), stream=stream)

    def parse_response(self, body: Any) -> Completion:
        text = get_path(body, self._paths.text, _MISSING)
        if not isinstance(text, str):
            raise ValueError(f"no text at {self._paths.text!r} in the response")
        finish = get_path(body, self._paths.finish)
        return Completion(
            text=text,
            usage=self._paths.usage(body) or Usage(),
            finish_reason=str(finish) if finish is not None else None,
            raw_model=body.get("model") if isinstance(body, Mapping) else None,
        )

    def stream_parser(self) -> GenericStream:
        return GenericStream(self._paths)

    def classify_error(self, status: int, body: Any, headers: Mapping[str, str]) -> ErrorInfo:
        return classify_body(status, body, headers)

    def lifecycle(self, model_object: Any) -> Lifecycle | None:
        return None  # its model object carries no retirement fields


class GenericStream:
    __slots__ = ("_paths",)

    def __init__(self, paths: _Paths) -> None:
        self._paths = paths

    def feed(self, event: SSEEvent) -> list[StreamDelta]:
        data = event.data
        if data.strip() == self._paths.done_marker:
            return [StreamDelta(done=True)]
        obj = stream_object(data)
        if not isinstance(obj, dict):
            return obj
        out: list[StreamDelta] = []
        text = get_path(obj, self._paths.delta)
        if isinstance(text, str) and text:
            out.append(StreamDelta(text=text))
        usage = self._paths.usage(obj)
        if usage is not None:
            out.append(StreamDelta(usage=usage))
        finish = get_path(obj, self._paths.finish)
        if finish is not None:
            out.append(StreamDelta(finish_reason=str(finish)))
        return out
