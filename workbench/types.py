"""The workbench's whole vocabulary: what a request record, a usage count and an error are.

Every other module speaks these types. A record is the unit of truth: one per request attempt,
appended to `<run>/<experiment>.jsonl` as it happens. Metric definitions live in
`workbench.metrics` and are applied to the raw timestamps captured here, never re-derived
elsewhere.
"""

from __future__ import annotations

import dataclasses
import enum
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "RECORD_CORE_FIELDS",
    "ErrorClass",
    "ErrorInfo",
    "ImageInput",
    "Prompt",
    "Record",
    "ServerTimings",
    "StreamDelta",
    "Usage",
]


class ErrorClass(enum.StrEnum):
    """Why a request failed, independent of the provider that failed it.

    The provider's own code and message are kept beside the class on the record.
    """

    RATE_LIMITED = "rate_limited"  # 429 and friends: retry later
    QUOTA_EXHAUSTED = "quota_exhausted"  # billing/quota: retrying will not help
    OVERLOADED = "overloaded"  # 503 / 529: the provider is shedding load
    AUTH = "auth"  # 401 / 403, or a missing key
    BAD_REQUEST = "bad_request"  # 400 / 404 / 422: the request itself is wrong
    SERVER_ERROR = "server_error"  # other 5xx
    TIMEOUT = "timeout"  # connect/read/total deadline passed
    CONNECTION = "connection"  # refused, reset, DNS: never reached a response
    MODEL_NOT_FOUND = "model_not_found"  # the model does not exist, is retired, or this key has no access
    PROTOCOL = "protocol"  # malformed or truncated response / stream
    CANCELLED = "cancelled"  # stopped by the workbench (budget, deadline, Ctrl-C)
    # The answer ended at the output-token cap with no visible text: a reasoning model spent the
    # whole cap thinking (finish_reason length / max_tokens / MAX_TOKENS). Tokens were billed;
    # there is no answer to grade. Never `ok`.
    TRUNCATED = "truncated"
    DROPPED = "dropped"  # never sent: the load generator's own in-flight cap was full (open loop)
    # A batch API item that never ran: the provider's completion window ended first (OpenAI
    # `batch_expired`, Anthropic result `expired`, Gemini BATCH_STATE_EXPIRED). Billed nothing.
    EXPIRED = "expired"
    # An answer that is no answer, for a policy reason (HTTP 200): the model declined (`refused`:
    # OpenAI `refusal`, Anthropic stop_reason `refusal`), or the provider's safety system stopped
    # it (`blocked`: OpenAI finish `content_filter`, Gemini SAFETY-type finish or blockReason).
    # Neither "I don't know" nor a wrong answer: a failure of the product's request, typed.
    REFUSED = "refused"
    BLOCKED = "blocked"
    # Never sent: the prompt carries input the contender cannot take (images to a text-only
    # model or wire format; workbench.images.image_input_support says why).
    UNSUPPORTED_INPUT = "unsupported_input"
    # The prompt is longer than the model's context window (or the server's slot): OpenAI code
    # `context_length_exceeded`, Anthropic "prompt is too long: N tokens > M maximum", Gemini
    # "The input token count (N) exceeds the maximum number of tokens allowed (M)", llama-server
    # `exceed_context_size_error`. A bad request that only a shorter prompt (or chunking) cures.
    CONTEXT_LENGTH_EXCEEDED = "context_length_exceeded"


@dataclass(slots=True)
class ErrorInfo:
    """A typed failure: our class plus what the provider said, verbatim."""

    error_class: ErrorClass
    message: str
    http_status: int | None = None
    provider_code: str | None = None
    retry_after_s: float | None = None
    retryable: bool = False
    provider_type: str | None = None  # the provider's error type/status when it has one beside the code


@dataclass(slots=True)
class Usage:
    """Token counts as the server reported them (or as estimated; see `Record.tokens_estimated`).

    `input_tokens` is the total prompt size; cached and cache-creation counts are parts of it.
    `output_tokens` is every billed output token; `reasoning_tokens` is the part of it spent on
    reasoning the caller does not see (OpenAI `completion_tokens_details.reasoning_tokens`,
    Anthropic `output_tokens_details.thinking_tokens`, Gemini `thoughtsTokenCount`).
    """

    input_tokens: int | None = None
    output_tokens: int | None = None
    cached_input_tokens: int | None = None
    cache_creation_input_tokens: int | None = None
    #: The images' part of input_tokens, where the API splits it out (OpenAI chat
    #: `prompt_tokens_details.image_tokens`, Gemini `promptTokensDetails` of modality IMAGE).
    image_input_tokens: int | None = None
    reasoning_tokens: int | None = None
    #: reasoning_tokens is an estimate (the API gave no count; see providers/anthropic.py)
    reasoning_estimated: bool = False
    #: The processing the provider says served the request (it changes latency and price):
    #: OpenAI's response `service_tier` ("default", "flex", "priority", ...), Anthropic's
    #: `usage.service_tier` ("standard", "priority", "batch") and `usage.speed` ("standard", "fast").
    service_tier: str | None = None
    speed: str | None = None


@dataclass(slots=True, frozen=True)
class ServerTimings:
    """What a server says it spent on one request (llama.cpp's `timings`), in its own clock.

    `prompt_n` prompt tokens evaluated now, `cache_n` reused from the slot's KV cache
    (prompt_n + cache_n = the prompt), `predicted_n` tokens generated; milliseconds of wall time
    for each phase. Checked against the client's own figures, never used in their place."""

    prompt_ms: float | None = None
    predicted_ms: float | None = None
    prompt_n: int | None = None
    predicted_n: int | None = None
    cache_n: int | None = None


@dataclass(slots=True)
class StreamDelta:
    """One parsed piece of a streamed response: output text, a usage report, an error, or the end.

    A provider's stream parser turns each wire event into zero or more deltas; the probe times
    them. `text` is only set when the event carries output text (role-only or empty chunks
    carry none), so TTFT is measured on real content.
    """

    text: str | None = None
    usage: Usage | None = None
    error: ErrorInfo | None = None
    done: bool = False
    finish_reason: str | None = None
    timings: ServerTimings | None = None
    refusal: str | None = None  # text of a refusal the API sends apart from the answer (OpenAI)
    continuation: str | None = None  # a token to continue an unfinished answer with (Gemini CONTINUATION)


@dataclass(slots=True, frozen=True)
class ImageInput:
    """One image a prompt shows the model: its bytes (a local file, read once) or a URL the
    provider fetches itself, with the pixel size the token estimates need (`workbench.images`)."""

    mime_type: str  # image/png, image/jpeg, image/gif or image/webp
    width: int | None = None  # pixels; None for a URL not read here
    height: int | None = None
    data: bytes | None = field(default=None, repr=False)
    url: str | None = None
    source: str = ""  # the file or URL, for messages

    def __post_init__(self) -> None:
        if (self.data is None) == (self.url is None):
            raise ValueError("an image has exactly one of data or url")


@dataclass(slots=True, frozen=True)
class Prompt:
    """One item of a prompt set (see `experiments/prompts/`). `images` are shown with the text
    (in the order given, before it) to contenders that take image input."""

    id: str
    text: str
    system: str | None = None
    meta: dict[str, Any] = field(default_factory=dict)
    images: tuple[ImageInput, ...] = ()


# The fields every record carries (README "What `make run` produces"), in the order they are written.
RECORD_CORE_FIELDS: tuple[str, ...] = (
    "run_id",
    "experiment",
    "contender",
    "model",
    "request_id",
    "t_start_unix",
    "ttft_s",
    "e2e_s",
    "tpot_s",
    "input_tokens",
    "output_tokens",
    "tokens_estimated",
    "status",
    "error_class",
    "error_message",
)


@dataclass(slots=True)
class Record:
    """One request attempt, as written to a results JSONL file.

    Times are seconds derived from `time.perf_counter_ns()` deltas; `t_start_unix` is the wall
    clock at send time, only for placing the record on a timeline. `extra` holds
    experiment-specific fields (`concurrency`, `target_rate`, `grade`, ...) and is flattened into
    the written object.
    """

    run_id: str
    experiment: str
    contender: str
    model: str
    request_id: str
    t_start_unix: float
    ttft_s: float | None = None
    e2e_s: float | None = None
    tpot_s: float | None = None
    input_tokens: int | None = None
    output_tokens: int | None = None
    tokens_estimated: bool = False
    status: str = "ok"  # "ok" | "error"
    error_class: str | None = None
    error_message: str | None = None
    # Beyond the core contract:
    api_kind: str | None = None
    stream: bool | None = None
    prompt_id: str | None = None
    # "server" (its usage) | "server+reasoning chars/4" (its usage; reasoning estimated) | "chunks" | "chars/4"
    token_source: str | None = None
    cached_input_tokens: int | None = None
    cache_creation_input_tokens: int | None = None  # prompt tokens written to the cache (billed apart)
    image_input_tokens: int | None = None  # the images' part of input_tokens, as the server split it
    # Output tokens spent on reasoning the caller never sees (part of output_tokens, billed);
    # None where the API does not say. visible = output - reasoning: what TPOT and output
    # throughput count (workbench.metrics.visible_tokens).
    reasoning_tokens: int | None = None
    visible_output_tokens: int | None = None
    reasoning: str | None = None  # the contender's reasoning settings, e.g. "effort=low" (Contender.reasoning_label)
    # The processing tier and speed the request asked for (its body's `service_tier` / Gemini
    # `serviceTier`, Anthropic `speed`) and what the response says it got (Usage.service_tier /
    # speed; None where the API does not say: Gemini's generateContent reports no tier).
    service_tier_requested: str | None = None
    service_tier: str | None = None
    speed_requested: str | None = None
    speed: str | None = None
    n_chunks: int | None = None
    itl_s: list[float] | None = None
    # The client's own time before the request went out (httpx, the pool); not in any latency.
    send_delay_s: float | None = None
    # The request first went out on a kept-alive connection the server had closed while idle,
    # failed before any byte came back, and was sent again on a new connection
    # (`workbench.measure.netbackend.resent_stale`). Not a retry of a request the server saw:
    # its latencies start at the resend, the lost attempt is in `send_delay_s`.
    stale_resend: bool = False
    http_status: int | None = None
    provider_error_code: str | None = None
    provider_error_type: str | None = None
    retry_after_s: float | None = None
    rate_limit: dict[str, str] | None = None
    attempt: int = 1
    logical_request_id: str | None = None
    # Follow-up requests this answer took: Gemini stops at a per-request token limit with
    # finish CONTINUATION and a continuationToken, which google-genai follows by default (the
    # same request again with the token, until the finish is something else); so does the
    # probe (`options.automatic_continuation: false` stops at the first). Latencies and tokens
    # cover every hop, as the SDK's merged response does.
    continuation_hops: int = 0
    finish_reason: str | None = None
    # The server's own account of this request (llama.cpp `timings`), milliseconds and tokens.
    server_prompt_ms: float | None = None
    server_predicted_ms: float | None = None
    server_prompt_n: int | None = None
    server_predicted_n: int | None = None
    server_cache_n: int | None = None
    output_text: str | None = None
    output_truncated: bool = False  # output_text was cut at the probe's max_output_chars
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    def __reduce__(self) -> tuple[Any, ...]:
        """Pickled as its field values (shards send every record to the coordinator): a dataclass
        with slots is otherwise rebuilt by a Python `__setstate__` setting 43 fields one by one."""
        return (Record, tuple(getattr(self, name) for name in _RECORD_INIT_NAMES))

    def to_dict(self) -> dict[str, Any]:
        """Flat JSON-ready dict: core fields first, then the rest, then `extra`."""
        out = {name: getattr(self, name) for name in _RECORD_FIELD_NAMES}
        for key, value in self.extra.items():
            if key in out:
                raise ValueError(f"experiment field {key!r} would overwrite a record field")
            out[key] = value
        return out


#: Record's own fields in declaration order, `extra` left out (`dataclasses.fields` on every
#: record was a quarter of the record writer's CPU).
_RECORD_FIELD_NAMES: tuple[str, ...] = tuple(f.name for f in dataclasses.fields(Record) if f.name != "extra")
#: ... and every field in `__init__`'s order (all are init fields)
_RECORD_INIT_NAMES: tuple[str, ...] = tuple(f.name for f in dataclasses.fields(Record))
