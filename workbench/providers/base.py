"""The one small interface every wire format implements, and its registry.

A provider knows four things about its API: the headers its calls carry, how to build a request,
how to read a complete response, and how to turn a stream's events into `StreamDelta`s. Timing,
retries and records live in `workbench.measure.probe`, so every provider is measured the same way.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from workbench.errors import lookup
from workbench.types import ErrorClass, ErrorInfo, Prompt, ServerTimings, StreamDelta, Usage

if TYPE_CHECKING:
    from workbench.config import Contender
    from workbench.providers.sse import SSEEvent

__all__ = [
    "BLOCK_FINISH",
    "LENGTH_FINISH",
    "REFUSAL_FINISH",
    "RETIREMENT_WARNING_DAYS",
    "Completion",
    "HttpRequest",
    "Lifecycle",
    "Provider",
    "ResponseError",
    "StreamParser",
    "api_headers",
    "api_kinds",
    "event_json",
    "event_object",
    "extra_body",
    "get_provider",
    "is_blocked",
    "json_post",
    "parse_date",
    "provider_for",
    "register",
    "request_summary",
    "requested_processing",
    "sampling_fields",
    "served_processing",
]


#: Finish reasons that mean "stopped at the output-token cap", in each wire format's spelling
#: (OpenAI chat/completions `length`, Anthropic `max_tokens`, Gemini `MAX_TOKENS`, OpenAI
#: Responses `incomplete_details.reason` `max_output_tokens`). With no visible text this is the
#: `truncated` outcome (workbench.types.ErrorClass.TRUNCATED).
LENGTH_FINISH = frozenset({"length", "max_tokens", "MAX_TOKENS", "max_output_tokens",
                           "model_context_window_exceeded",  # Anthropic: the window, not the cap, ended it
                           "CONTINUATION"})  # Gemini's per-request limit, when not followed (probe)
#: Finish reasons that mean the model declined to answer (Anthropic `stop_reason: refusal`).
REFUSAL_FINISH = frozenset({"refusal"})
#: Finish reasons that mean the provider's safety system stopped the answer: OpenAI
#: `content_filter`; Gemini's safety-type `FinishReason` and `BlockedReason` values
#: (google-genai `types.FinishReason` / `BlockedReason`: SAFETY, RECITATION, BLOCKLIST,
#: PROHIBITED_CONTENT, SPII, IMAGE_*, MODEL_ARMOR, JAILBREAK).
BLOCK_FINISH = frozenset({"content_filter", "SAFETY", "RECITATION", "BLOCKLIST", "PROHIBITED_CONTENT", "SPII",
                          "IMAGE_SAFETY", "IMAGE_PROHIBITED_CONTENT", "IMAGE_RECITATION", "MODEL_ARMOR", "JAILBREAK"})


class ResponseError(ValueError):
    """Raised by `parse_response` for a 200 body that reports a failure of its own (a non-streamed
    Responses `status: failed`): the probe and a batch item record `info`, typed by the provider's
    code, instead of an unreadable-response `protocol` error (a ValueError, so a caller that only
    needs "no answer here" treats it like any unreadable body)."""

    def __init__(self, info: ErrorInfo) -> None:
        super().__init__(info.message)
        self.info = info


def is_blocked(finish: str | None) -> bool:
    """A finish reason that means the provider's safety system stopped the answer (`BLOCK_FINISH`,
    or Gemini's prompt-level block, `prompt_blocked:<reason>`)."""
    return finish is not None and (finish in BLOCK_FINISH or finish.startswith("prompt_blocked:"))


@dataclass(slots=True)
class HttpRequest:
    """A fully built HTTP request, ready for httpx. Headers may hold the key: never log them."""

    method: str
    url: str
    headers: dict[str, str]
    json: dict[str, Any]
    stream: bool
    _content: bytes | None = field(default=None, init=False, repr=False, compare=False)

    def content(self) -> bytes:
        """The body as sent: `json` encoded as httpx encodes it (UTF-8, no spaces, NaN refused),
        once — a load run sends the same request object for every repeat of a prompt."""
        if self._content is None:
            self._content = json.dumps(self.json, ensure_ascii=False, separators=(",", ":"),
                                       allow_nan=False).encode("utf-8")
        return self._content


#: A model that retires within this many days gets a warning before a run sends it anything.
RETIREMENT_WARNING_DAYS = 30


@dataclass(frozen=True, slots=True)
class Lifecycle:
    """Where a model stands in its provider's lifecycle, as its model lookup says (`stage`:
    active, deprecated or retired; `ends`: the announced shutdown or scheduled retirement, UTC;
    `source`: the fields read, for the one line a run prints). `ends_is_final`: whether a past
    `ends` means the model is gone (OpenAI's `shutdown_date`) or only that retirement is overdue
    while `stage` decides (Anthropic's `retires_at` beside `lifecycle`)."""

    stage: str
    ends: datetime | None
    source: str
    ends_is_final: bool = True

    def verdict(self, now: datetime) -> tuple[bool, str | None]:
        """(runnable, why): not runnable once retired or past a final end; runnable with a
        warning when deprecated or ending within `RETIREMENT_WARNING_DAYS`; else (True, None)."""
        if self.stage == "retired":
            return False, f"retired ({self.source})"
        if self.ends is not None and self.ends <= now and self.ends_is_final:
            return False, f"shut down on {self.ends.date().isoformat()} ({self.source})"
        if self.ends is not None and (self.ends - now).days < RETIREMENT_WARNING_DAYS:
            left = (self.ends - now).days
            when = f"in {left} day{'s' if left != 1 else ''}" if self.ends > now else "overdue"
            return True, f"retires {when}, on {self.ends.date().isoformat()} ({self.source})"
        if self.stage == "deprecated":
            return True, f"deprecated ({self.source})"
        return True, None


def parse_date(value: Any) -> datetime | None:
    """An RFC 3339 date or datetime from a model object as an aware UTC datetime (None if absent
    or unreadable: a field the provider may leave null)."""
    if not isinstance(value, str) or not value.strip():
        return None
    try:
        d = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        return None
    return d.replace(tzinfo=UTC) if d.tzinfo is None else d.astimezone(UTC)


@dataclass(slots=True)
class Completion:
    """A parsed non-streamed response."""

    text: str
    usage: Usage = field(default_factory=Usage)
    finish_reason: str | None = None
    raw_model: str | None = None
    timings: ServerTimings | None = None
    refusal: str | None = None  # a refusal sent apart from the answer (OpenAI `message.refusal`)
    continuation: str | None = None  # a token to continue an unfinished answer with (Gemini CONTINUATION)


class StreamParser(Protocol):
    """Stateful: fed each SSE event of one response in order."""

    def feed(self, event: SSEEvent) -> list[StreamDelta]: ...


class Provider(Protocol):
    """A wire format. Implementations are stateless singletons registered by api kind."""

    kind: str
    #: completion-style APIs render `Contender.prompt_template` and need one.
    needs_prompt_template: bool
    #: whether the stream is Server-Sent Events (all current ones) or JSON lines.
    stream_format: str

    def headers(self, contender: Contender, api_key: str | None) -> dict[str, str]:
        """The headers every call to this API carries (its version, the contender's extra headers,
        the key), without a content type: `build_request` sends them with its JSON body, and the
        batch APIs (`workbench.measure.batch`) with their own calls."""
        ...

    def build_request(
        self, contender: Contender, prompt: Prompt, *, stream: bool, api_key: str | None,
        base_url: str,
    ) -> HttpRequest: ...

    def parse_response(self, body: Any) -> Completion: ...

    def stream_parser(self) -> StreamParser: ...

    def classify_error(
        self, status: int, body: Any, headers: Mapping[str, str]
    ) -> ErrorInfo: ...

    def lifecycle(self, model_object: Any) -> Lifecycle | None:
        """The model's lifecycle from the body of its model lookup (None: the API says nothing)."""
        ...


_REGISTRY: dict[str, Provider] = {}
P = TypeVar("P")


def register(kind: str) -> Callable[[type[P]], type[P]]:
    """Class decorator: instantiate and register a provider under `kind`."""

    def deco(cls: type[P]) -> type[P]:
        inst = cls()
        inst.kind = kind  # type: ignore[attr-defined]
        _REGISTRY[kind] = inst  # type: ignore[assignment]
        return cls

    return deco


def event_object(data: str) -> dict[str, Any] | StreamDelta:
    """A stream event's JSON object, or a `protocol` error delta saying why it is not one.

    Every wire format streams JSON objects; a malformed or non-object event is the server's
    fault and ends the stream as a typed error rather than an exception."""
    try:
        obj = json.loads(data)
    except json.JSONDecodeError:
        return StreamDelta(error=ErrorInfo(ErrorClass.PROTOCOL, f"malformed event: {data[:200]}"))
    if not isinstance(obj, dict):
        return StreamDelta(error=ErrorInfo(ErrorClass.PROTOCOL, f"event is not an object: {data[:200]}"))
    return obj


def event_json(data: str) -> dict[str, Any] | list[StreamDelta]:
    """A stream event's JSON object, or the deltas that stand for it instead: none for an empty
    event, a `protocol` error for one that is not a JSON object (`event_object`)."""
    if not data:
        return []
    obj = event_object(data)
    return [obj] if isinstance(obj, StreamDelta) else obj


def api_headers(contender: Contender, auth: Mapping[str, str] | None = None,
                fixed: Mapping[str, str] | None = None) -> dict[str, str]:
    """A format's `Provider.headers`: its `fixed` headers (e.g. an API version), then the
    contender's extra headers, then the key header(s) `auth`."""
    return {**(fixed or {}), **contender.headers, **(auth or {})}


def json_post(url: str, body: dict[str, Any], headers: Mapping[str, str], *, stream: bool) -> HttpRequest:
    """A JSON POST carrying the provider's `headers`."""
    return HttpRequest(method="POST", url=url, headers={"content-type": "application/json", **headers}, json=body,
                       stream=stream)


def sampling_fields(contender: Contender, names: Mapping[str, str]) -> dict[str, Any]:
    """The contender's sampling settings under one wire format's field names.

    `names` maps temperature / top_p / stop / seed to the format's own field; a setting the
    format has no field for is left out, and so is one that is unset. `options.omit_temperature`
    drops the temperature (models that accept only their default)."""
    s = contender.sampling
    values: dict[str, Any] = {
        "temperature": None if contender.options.get("omit_temperature", False) else s.temperature,
        "top_p": s.top_p, "stop": list(s.stop) or None, "seed": s.seed,
    }
    return {names[k]: v for k, v in values.items() if k in names and v is not None}


def extra_body(contender: Contender) -> dict[str, Any]:
    """`options.extra_body`: fields merged into the request body as given (a provider feature
    the workbench does not model, e.g. Anthropic `thinking`)."""
    return dict(contender.options.get("extra_body") or {})


#: Body fields that carry the prompt or the model name, not a setting: left out of `request_summary`.
_CONTENT_FIELDS = frozenset({"model", "messages", "input", "contents", "prompt", "system", "instructions",
                             "systemInstruction", "stream", "stream_options"})


def request_summary(contender: Contender) -> dict[str, Any]:
    """What this contender's requests carry besides the prompt, from a request built the way the
    run builds them: the API version headers and every setting field of the body with its value
    (e.g. Anthropic's 2026-10-21 sends no temperature). For the manifest: a reader sees what was
    sent, not what the contenders file asked for."""
    provider = provider_for(contender)
    req = provider.build_request(contender, Prompt(id="manifest", text="…"), stream=True, api_key=None,
                                 base_url=contender.base_url or "http://127.0.0.1")
    headers = {k: v for k, v in req.headers.items() if "version" in k.lower() or "beta" in k.lower()}
    body = {k: v for k, v in req.json.items() if k not in _CONTENT_FIELDS}
    return {"path": req.url.split("?", 1)[0].rsplit("/", 1)[-1], "headers": headers, "fields": body}


def requested_processing(body: Mapping[str, Any]) -> tuple[str | None, str | None]:
    """(service tier, speed) a request body asks for: `service_tier` (OpenAI, Anthropic) or
    `serviceTier` (Gemini), and Anthropic's `speed` (None where it asks nothing: the provider's
    default). Both change latency and price, so a record says what was asked beside what was got."""
    tier = body.get("service_tier", body.get("serviceTier"))
    speed = body.get("speed")
    return (str(tier) if tier is not None else None, str(speed) if speed is not None else None)


def served_processing(obj: Any, usage: Usage | None) -> Usage | None:
    """`usage` with the `service_tier` / `speed` strings of `obj` (the response object or usage
    object that carries them) added; a Usage of those alone when there is no usage yet."""
    if not isinstance(obj, Mapping):
        return usage
    tier, speed = obj.get("service_tier"), obj.get("speed")
    tier = tier if isinstance(tier, str) else None
    speed = speed if isinstance(speed, str) else None
    if tier is None and speed is None:
        return usage
    base = usage if usage is not None else Usage()
    return dataclasses.replace(base, service_tier=tier or base.service_tier, speed=speed or base.speed)


def get_provider(kind: str) -> Provider:
    return lookup("api kind", kind, _REGISTRY)


def provider_for(contender: Contender) -> Provider:
    """The provider that serves `contender`: the registered singleton, or, for wire formats whose
    response parsing depends on per-contender settings (the `generic` field paths), the
    instance its optional `bind(contender)` method returns. Stateless providers need no `bind`."""
    provider = get_provider(contender.api)
    bind = getattr(provider, "bind", None)
    if bind is None:
        return provider
    bound: Provider = bind(contender)
    return bound


def api_kinds() -> list[str]:
    return sorted(_REGISTRY)
