"""One timed request → one record. The only place requests are timed.

Every reading is `time.perf_counter_ns()` (monotonic). A request starts when it went out: its
first byte handed to the socket, or the start of the connect when a connection was opened for
it (`workbench.measure.netbackend.wire_start_ns`). The client's own time before that — building the
request, httpx's and the pool's Python — is `send_delay_s` on the record, not part of any
latency (under a burst it is the load generator's cost, not the server's); a failure before
the response began is timed from the moment the request was handed to httpx. A chunk's time is
when its bytes reached this process (the network backend stamps each read as the loop receives
it, `workbench.measure.netbackend.arrival_clock`), not when the parser got to them: under load a busy
client parses late, and that delay is the client's, not the server's. The end of a response
(E2E) is the arrival of its last bytes. Other network backends (or HTTP/2) give neither stamp;
then the request starts when handed to httpx and chunks are stamped when parsed.

A stale kept-alive connection — closed by the server while idle (a keep-alive timeout; llama-server
closes one after each streamed answer without saying `Connection: close`) and found closed only
when the request was written on it, before any response byte — is not a request the server saw:
both transports send it again, once, on a new connection (`workbench.measure.netbackend.
AsyncioStream.stale_failure`). The clock starts again with that connection's connect, the
lost attempt's time is in `send_delay_s` (and so in a load run's latencies from the schedule),
and the record says `stale_resend`. A request that failed on a new connection, or after any
byte came back, is never resent here: it is an error record, retried (as a new record) only by
`workbench.measure.retry`.

A failure of any kind — HTTP error, timeout, refused connection, malformed or truncated
stream — comes back as a record with `status="error"` and a typed `error_class`; this function
does not raise for request failures.

Reasoning models: `output_tokens` is every billed output token; `reasoning_tokens` (when the API
says) the part spent thinking, and `visible_output_tokens` the rest — what TPOT counts, because
the thinking happens before the first visible token (inside TTFT). An answer that stops at the
token cap with no visible text is the `truncated` outcome (status "error", tokens kept so that
its cost is counted), never `ok`.

Token counts: the server's `usage` when it reports one (`token_source="server"`; streams ask for
it with `stream_options.include_usage`). When a response carries none, content chunks are counted
(`"chunks"`) or characters/4 (`"chars/4"`), both flagged `tokens_estimated`. Zero is never
reported for a non-empty answer. A server that reports its own `timings` (llama.cpp: prompt and
generation milliseconds and tokens) has them kept on the record (`server_*`), beside — never
instead of — the client's clock.
"""

from __future__ import annotations

import asyncio
import codecs
import json
import time
import uuid
from collections.abc import Callable
from typing import Any

import httpx

from workbench import keys, metrics
from workbench.aio import run_sync
from workbench.config import Contender
from workbench.image_tokens import contender_image_tokens
from workbench.images import unsupported_reason
from workbench.measure.http11 import LeanClient, RawResponse
from workbench.measure.netbackend import arrival_clock, async_transport, resent_stale, wire_start_ns
from workbench.measure.target import DEFAULT_MAX_OUTPUT_CHARS, Target
from workbench.measure.transport_errors import decode_body, error_from_exception
from workbench.providers import provider_for
from workbench.providers.base import (
    LENGTH_FINISH,
    REFUSAL_FINISH,
    HttpRequest,
    Provider,
    ResponseError,
    is_blocked,
    requested_processing,
)
from workbench.providers.errors import rate_limit_headers
from workbench.providers.sse import SSEDecoder, SSEEvent
from workbench.types import ErrorClass, ErrorInfo, Prompt, Record, ServerTimings, Usage

__all__ = [
    "DEFAULT_MAX_OUTPUT_CHARS",
    "MAX_BODY_BYTES",
    "MAX_ERROR_MESSAGE_CHARS",
    "fail_record",
    "finish_record",
    "make_client",
    "new_request_id",
    "probe",
    "probe_once",
    "wire_request",
]


_MAX_ERROR_BODY = 64 * 1024
# What of a provider's error message is kept on the record (a cut body may still parse).
MAX_ERROR_MESSAGE_CHARS = 2000
# A non-streamed body larger than this is not an answer but a fault; reading stops there.
MAX_BODY_BYTES = 8 * 1024 * 1024


def new_request_id() -> str:
    return uuid.uuid4().hex[:16]


class _Cookies(httpx.Cookies):
    """httpx's cookie jar, which looks at a response only when it sets a cookie: httpx otherwise
    builds a `urllib.request.Request` for every response to find none (~10% of the load path's
    client CPU, cProfile, c=256 streamed)."""

    def extract_cookies(self, response: httpx.Response) -> None:
        if "set-cookie" in response.headers:
            super().extract_cookies(response)


def make_client(max_connections: int = 64, timeout_s: float = 60.0, *, lean: bool = False) -> httpx.AsyncClient:
    """An HTTP/1.1 keep-alive client sized for `max_connections` requests in flight.

    Pool waits would silently add to measured latency, so the pool is never smaller than the
    concurrency a caller asks for. The transport is httpx's over `workbench.measure.netbackend`'s
    asyncio backend, with the process's one shared TLS context (see that module for why);
    `lean=True` makes a `workbench.measure.http11.LeanClient` instead: same connections and stamps, no
    httpcore/h11, several times less client CPU per request — what the load runs use.
    """
    client: httpx.AsyncClient
    if lean:
        client = LeanClient(timeout_s=timeout_s, max_idle=max_connections, keepalive_expiry=30.0)
    else:
        limits = httpx.Limits(
            max_connections=max_connections,
            max_keepalive_connections=max_connections,
            keepalive_expiry=30.0,
        )
        client = httpx.AsyncClient(transport=async_transport(limits), timeout=httpx.Timeout(timeout_s),
                                   trust_env=False)
    client._cookies = _Cookies()  # httpx has no public hook; tests/measure/test_http11.py pins it
    return client


_URLS: dict[str, httpx.URL] = {}


def _url(url: str) -> httpx.URL:
    """Parsed once per endpoint: httpx parses a str URL twice per request (~10% of a load run's
    client CPU); an `httpx.URL` passes through as is."""
    parsed = _URLS.get(url)
    if parsed is None:
        if len(_URLS) > 1024:
            _URLS.clear()
        parsed = _URLS[url] = httpx.URL(url)
    return parsed


class _Text:
    """Output text kept up to `cap` characters; `total` counts all of it."""

    __slots__ = ("cap", "kept", "parts", "total")

    def __init__(self, cap: int) -> None:
        self.cap = cap
        self.parts: list[str] = []
        self.kept = 0
        self.total = 0

    def append(self, text: str) -> None:
        self.total += len(text)
        room = self.cap - self.kept
        if room > 0:
            piece = text[:room]
            self.parts.append(piece)
            self.kept += len(piece)


class _TooLarge(Exception):
    """A non-streamed body over MAX_BODY_BYTES: recorded as a protocol error."""


async def _read_capped(response: httpx.Response | RawResponse, cap: int) -> tuple[bytes, bool]:
    """The body, or its first `cap` bytes and True when it is longer (reading stops there)."""
    parts: list[bytes] = []
    size = 0
    async for part in response.aiter_bytes():
        parts.append(part)
        size += len(part)
        if size > cap:
            return b"".join(parts)[:cap], True
    return b"".join(parts), False


async def probe(
    client: httpx.AsyncClient,
    target: Target,
    prompt: Prompt,
    *,
    request_id: str | None = None,
    extra: dict[str, Any] | None = None,
    http_request: HttpRequest | None = None,
    admit: bool = True,
) -> Record:
    """Send one request to `target` and time it. Never raises for request failures.

    The spend budget's one admission step (`target.budget`, run-wide: `workbench.measure.budget`):
    the request's worst case is held while it is in flight and its real cost charged after; one
    the budget refuses is not sent and comes back as a `cancelled` record ("budget exhausted: spent
    $X of $Y"). `admit=False`: the caller holds the reservation itself (a load run, which also
    counts a request cut off in flight at its worst case).

    `http_request`: the provider's request for this target and prompt (`wire_request`), when
    the caller keeps one per prompt — a load run does, so a repeated prompt is not rebuilt and
    re-encoded each time. None: built here.

    At most `target.max_output_chars` of the answer are kept on the record (`output_truncated`
    says when it was cut); error bodies are read up to 64 KiB and non-streamed bodies up to
    `MAX_BODY_BYTES`, so an oversized response costs bounded memory."""
    budget = target.budget if admit else None
    if budget is None:
        return await _probe(client, target, prompt, request_id, extra, http_request)
    from workbench.measure.budget import estimate_input_tokens  # budget → pricing: only when used

    c = target.contender
    held = budget.reserve(c.name, estimate_input_tokens(c, prompt), c.wire_max_tokens)
    if held is None:
        rec = target.record(request_id or new_request_id(), prompt, extra)
        rec.status, rec.error_class, rec.error_message = "error", ErrorClass.CANCELLED.value, budget.message()
        return rec
    try:
        rec = await _probe(client, target, prompt, request_id, extra, http_request)
    finally:
        budget.release(held)
    budget.charge(rec)
    return rec


class _Answer:
    """What the HTTP requests of one probe have said so far (more than one only when an unfinished
    answer is continued): the text, the chunk arrival times and the last request's outcome."""

    __slots__ = ("chunk_ns", "continuation", "err", "finish", "refusal", "text", "timings")

    def __init__(self, max_chars: int) -> None:
        self.text = _Text(max_chars)
        self.chunk_ns: list[int] = []
        self.finish: str | None = None
        self.err: ErrorInfo | None = None
        self.timings: ServerTimings | None = None
        self.refusal: str | None = None
        self.continuation: str | None = None


async def _probe(client: httpx.AsyncClient, target: Target, prompt: Prompt, request_id: str | None,
                 extra: dict[str, Any] | None, http_request: HttpRequest | None) -> Record:
    contender, stream = target.contender, target.stream
    provider = provider_for(contender)
    rec = target.record(request_id or new_request_id(), prompt, extra)
    api_key = contender.api_key()
    refused = _refusal_before_sending(contender, prompt)
    if refused is not None:
        fail_record(rec, refused)  # never sent
        return rec
    req = http_request or provider.build_request(contender, prompt, stream=stream, api_key=api_key,
                                                 base_url=target.base_url)
    rec.service_tier_requested, rec.speed_requested = requested_processing(req.json)
    timeout_s = contender.timeout_s
    usage: Usage | None = None
    ans = _Answer(max(0, target.max_output_chars))
    answered: httpx.Response | RawResponse | None = None
    t0 = time.perf_counter_ns()
    end = t0
    try:
        while True:  # one pass per HTTP request: more only to continue an unfinished answer
            headers_out = {**req.headers, **target.headers} if target.headers else req.headers
            first = rec.continuation_hops == 0
            hop_usage: Usage | None = None
            ans.continuation = None
            async with asyncio.timeout(timeout_s):
                response = await _send(client, req, headers_out)
                clock, t0 = _stamp_send(rec, response, t0, first)
                try:
                    answered = response
                    rec.http_status = response.status_code
                    hop_usage, end = await _read_answer(response, provider, req, stream, ans, clock)
                finally:
                    await response.aclose()
            usage = _sum_usage(usage, hop_usage) if not first else hop_usage
            if (ans.err is not None or ans.continuation is None or ans.finish != "CONTINUATION"
                    or rec.continuation_hops >= MAX_CONTINUATION_HOPS):
                break
            next_req = provider.continued(contender, req, ans.continuation)
            if next_req is None:
                break
            rec.continuation_hops += 1
            req = next_req
    except BaseException as exc:
        end = time.perf_counter_ns()
        if isinstance(exc, (KeyboardInterrupt, SystemExit)):
            raise
        if isinstance(exc, asyncio.CancelledError):
            # Task cancelled from outside (deadline of a load run): record it, then re-raise.
            fail_record(rec, error_from_exception(exc, req.url, timeout_s))
            rec.e2e_s = metrics.e2e_s(t0, end)
            raise
        ans.err = (ErrorInfo(ErrorClass.PROTOCOL, str(exc)) if isinstance(exc, _TooLarge)
                   else error_from_exception(exc, req.url, timeout_s))
    _stamp_timing(rec, target, t0, end, answered, ans.chunk_ns)
    return finish_record(rec, contender, prompt, text="".join(ans.text.parts), full_chars=ans.text.total,
                         finish=ans.finish, usage=usage, timings=ans.timings, err=ans.err, api_key=api_key,
                         n_chunks=len(ans.chunk_ns) if stream else None, refusal=ans.refusal)


def _refusal_before_sending(contender: Contender, prompt: Prompt) -> ErrorInfo | None:
    """Why this request is not sent at all: its key is not set, or the contender cannot take the
    prompt's input (images); None when it goes out."""
    if contender.key_missing():
        return ErrorInfo(ErrorClass.AUTH, f"${contender.api_key_env} is not set")
    if (unsupported := unsupported_reason(contender, prompt)) is not None:
        return ErrorInfo(ErrorClass.UNSUPPORTED_INPUT, unsupported)
    return None


async def _send(client: httpx.AsyncClient, req: HttpRequest,
                headers: dict[str, str]) -> httpx.Response | RawResponse:
    """Send one request and return its response with the body unread. A lean client sends the
    request as bytes (its head built once per endpoint); any other through httpx's Request and
    Response."""
    lean = client if isinstance(client, LeanClient) else None
    prepared = lean.prepare(req.method, req.url, headers, req.content()) if lean is not None else None
    if lean is not None and prepared is not None:
        return await lean.send_raw(prepared)
    return await client.send(client.build_request(req.method, _url(req.url), headers=headers, json=req.json),
                             stream=True)


def _stamp_send(rec: Record, response: httpx.Response | RawResponse, t0: int,
                first: bool) -> tuple[Callable[[], int], int]:
    """The clock that stamps this response's bytes, and the probe's start: moved to when the
    first request left the socket, if the transport knows (the wait before is `send_delay_s`)."""
    network_stream = response.extensions.get("network_stream")
    clock = arrival_clock(network_stream)
    sent = wire_start_ns(network_stream)
    if first and sent is not None and sent >= t0:
        rec.send_delay_s = (sent - t0) * metrics.NS
        t0 = sent
    if first and resent_stale(network_stream):
        rec.stale_resend = True
    return clock, t0


async def _read_answer(response: httpx.Response | RawResponse, provider: Provider, req: HttpRequest, stream: bool,
                       ans: _Answer, clock: Callable[[], int]) -> tuple[Usage | None, int]:
    """Read one response into `ans` (an error status, a stream or a whole body); its usage and
    when its last byte arrived."""
    hop_usage: Usage | None = None
    if response.status_code >= 400:
        raw, _ = await _read_capped(response, _MAX_ERROR_BODY)
        end = clock()
        ans.err = provider.classify_error(response.status_code, decode_body(raw), response.headers)
    elif stream:
        st = await _read_stream(response, provider, ans.text, ans.chunk_ns, clock)
        hop_usage, ans.finish, ans.err, ans.timings, ans.continuation = (st.usage, st.finish, st.error, st.timings,
                                                                         st.continuation)
        ans.refusal = st.refusal or ans.refusal
        end = clock()
    else:
        raw, too_big = await _read_capped(response, MAX_BODY_BYTES)
        end = clock()
        if too_big:
            raise _TooLarge(f"response from {req.url} is larger than {MAX_BODY_BYTES} bytes")
        try:
            completion = provider.parse_response(json.loads(raw))
        except ResponseError as exc:
            ans.err = exc.info
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            ans.err = ErrorInfo(ErrorClass.PROTOCOL, f"unreadable response from {req.url}: {exc}")
        else:
            ans.text.append(completion.text)
            hop_usage = completion.usage
            ans.finish = completion.finish_reason
            ans.timings = completion.timings
            ans.refusal = completion.refusal or ans.refusal
            ans.continuation = completion.continuation
    return hop_usage, end


def _stamp_timing(rec: Record, target: Target, t0: int, end: int,
                  answered: httpx.Response | RawResponse | None, chunk_ns: list[int]) -> None:
    """The record's clock-derived fields: end-to-end time, rate-limit headers, and for a stream
    the chunk count, time to first token and (if kept) the inter-token gaps."""
    rec.e2e_s = metrics.e2e_s(t0, end)
    if answered is not None:
        rec.rate_limit = rate_limit_headers(answered.header_items() if isinstance(answered, RawResponse)
                                            else answered.headers.items())
    if target.stream:
        rec.n_chunks = len(chunk_ns)
        rec.ttft_s = metrics.ttft_s(t0, chunk_ns[0] if chunk_ns else None)
        if target.keep_itl:
            rec.itl_s = metrics.itl_s(chunk_ns)


def wire_request(target: Target, prompt: Prompt) -> HttpRequest:
    """The provider's HTTP request for `prompt` to `target`, its key read from the environment
    now (it holds the key: keep it in memory only)."""
    c = target.contender
    return provider_for(c).build_request(c, prompt, stream=target.stream, api_key=c.api_key(),
                                         base_url=target.base_url)


def finish_record(
    rec: Record,
    contender: Contender,
    prompt: Prompt,
    *,
    text: str,
    full_chars: int,
    finish: str | None,
    usage: Usage | None,
    timings: ServerTimings | None,
    err: ErrorInfo | None,
    api_key: str | None,
    n_chunks: int | None = None,
    refusal: str | None = None,
) -> Record:
    """Complete a timed record from what its response said: the answer (`text`, the first
    `full_chars` characters kept), the server's usage and timings, or the typed error.

    The one place a record gets its tokens, its `truncated`, `refused` and `blocked` outcomes
    and TPOT, so a probed request and a batch API item (`workbench.measure.batch`) are recorded
    the same way. Keys are redacted before anything is cut."""
    rec.output_truncated = full_chars > len(text)
    rec.output_text = text
    rec.finish_reason = finish
    if timings is not None:
        rec.server_prompt_ms, rec.server_predicted_ms = timings.prompt_ms, timings.predicted_ms
        rec.server_prompt_n, rec.server_predicted_n, rec.server_cache_n = (
            timings.prompt_n, timings.predicted_n, timings.cache_n)
    if err is not None:
        fail_record(rec, err)
        _redact(rec, api_key)  # before cutting, so no part of a key survives the cut
        _cap_message(rec)
        return rec
    _redact(rec, api_key)
    _fill_tokens(rec, usage, text, prompt, contender, n_chunks, full_chars)
    if is_blocked(finish):
        fail_record(rec, ErrorInfo(ErrorClass.BLOCKED, f"stopped by the provider's safety system (finish_reason "
                                                       f"{finish})", provider_code=finish))
        return rec
    if refusal or finish in REFUSAL_FINISH:
        said = " ".join((refusal or text).split())[:300]
        fail_record(rec, ErrorInfo(ErrorClass.REFUSED, f"the model declined (finish_reason {finish})"
                                   + (f": {said}" if said else ""), provider_code=finish))
        return rec
    if full_chars == 0 and finish in LENGTH_FINISH:
        fail_record(rec, ErrorInfo(ErrorClass.TRUNCATED, _truncated_message(contender, rec)))
        return rec
    rec.tpot_s = metrics.tpot_s(rec.e2e_s, rec.ttft_s, rec.visible_output_tokens)
    return rec


def _truncated_message(contender: Contender, rec: Record) -> str:
    spent = f"{rec.reasoning_tokens} of {rec.output_tokens}" if rec.reasoning_tokens is not None else (
        f"{rec.output_tokens}" if rec.output_tokens is not None else "all")
    return (f"no visible answer: stopped at the output cap of {contender.wire_max_tokens} tokens "
            f"(finish_reason {rec.finish_reason}) with {spent} output tokens spent on reasoning; "
            "raise max_tokens or reasoning.reserve_tokens, or lower reasoning.effort")


class _StreamState:
    """What a stream has said so far; `take()` applies the deltas of one network read."""

    __slots__ = ("chunk_ns", "complete", "continuation", "error", "finish", "refusal", "text_parts", "timings",
                 "usage")

    def __init__(self, text_parts: _Text, chunk_ns: list[int]) -> None:
        self.text_parts = text_parts
        self.chunk_ns = chunk_ns
        self.usage: Usage | None = None
        self.finish: str | None = None
        self.complete = False
        self.error: ErrorInfo | None = None
        self.timings: ServerTimings | None = None
        self.refusal: str | None = None
        self.continuation: str | None = None

    def take(self, events: list[SSEEvent], parser: Any, now: int) -> bool:
        """Apply the events of one read (all stamped `now`); False once the stream errored."""
        for event in events:
            for delta in parser.feed(event):
                if delta.error is not None:
                    self.error = delta.error
                    return False
                if delta.text:
                    self.text_parts.append(delta.text)
                    self.chunk_ns.append(now)
                if delta.usage is not None:
                    self.usage = _merge_usage(self.usage, delta.usage)
                if delta.timings is not None:
                    self.timings = delta.timings  # the last report covers the whole request
                if delta.refusal:
                    self.refusal = (self.refusal or "") + delta.refusal
                if delta.continuation:
                    self.continuation = delta.continuation
                if delta.finish_reason:
                    self.finish = delta.finish_reason
                    self.complete = True
                if delta.done:
                    self.complete = True
        return True


async def _read_stream(
    response: httpx.Response | RawResponse,
    provider: Any,
    text_parts: _Text,
    chunk_ns: list[int],
    clock: Callable[[], int] = time.perf_counter_ns,
) -> _StreamState:
    """Read a stream to its end; the state holds what it said (`error` set when it failed)."""
    decoder = SSEDecoder()
    parser = provider.stream_parser()
    utf8 = codecs.getincrementaldecoder("utf-8")("replace")
    st = _StreamState(text_parts, chunk_ns)
    async for raw in response.aiter_raw():
        if not st.take(decoder.feed(utf8.decode(raw)), parser, clock()):
            return st
    tail = utf8.decode(b"", final=True)
    partial = decoder.has_partial or bool(tail)
    if not st.take(decoder.feed(tail) + decoder.flush(), parser, clock()):
        return st
    if not st.complete:
        why = "ended mid-event" if partial else "ended without a finish marker"
        st.error = ErrorInfo(ErrorClass.PROTOCOL, f"truncated stream: {why}")
    return st


#: Follow-up requests one answer may take to continue (Gemini CONTINUATION) before the probe stops
#: and records what it has (a server that never finishes would otherwise hold the request forever).
MAX_CONTINUATION_HOPS = 32


def _sum_usage(old: Usage | None, new: Usage | None) -> Usage | None:
    """Two continuation hops' usage as one answer's: every count summed (each hop bills its prompt
    and its output, as google-genai's `merge_continuation_responses` sums the `*_count` fields)."""
    if old is None or new is None:
        return new if old is None else old

    def add(a: int | None, b: int | None) -> int | None:
        return None if a is None and b is None else (a or 0) + (b or 0)

    return Usage(
        input_tokens=add(old.input_tokens, new.input_tokens),
        output_tokens=add(old.output_tokens, new.output_tokens),
        cached_input_tokens=add(old.cached_input_tokens, new.cached_input_tokens),
        cache_creation_input_tokens=add(old.cache_creation_input_tokens, new.cache_creation_input_tokens),
        image_input_tokens=add(old.image_input_tokens, new.image_input_tokens),
        reasoning_tokens=add(old.reasoning_tokens, new.reasoning_tokens),
        reasoning_estimated=old.reasoning_estimated or new.reasoning_estimated,
        service_tier=new.service_tier or old.service_tier,
        speed=new.speed or old.speed,
    )


def _merge_usage(old: Usage | None, new: Usage) -> Usage:
    """Later usage reports win field by field (Anthropic sends input early, output late)."""
    if old is None:
        return new
    return Usage(
        input_tokens=new.input_tokens if new.input_tokens is not None else old.input_tokens,
        output_tokens=new.output_tokens if new.output_tokens is not None else old.output_tokens,
        cached_input_tokens=new.cached_input_tokens
        if new.cached_input_tokens is not None else old.cached_input_tokens,
        cache_creation_input_tokens=new.cache_creation_input_tokens
        if new.cache_creation_input_tokens is not None else old.cache_creation_input_tokens,
        image_input_tokens=new.image_input_tokens if new.image_input_tokens is not None else old.image_input_tokens,
        reasoning_tokens=new.reasoning_tokens
        if new.reasoning_tokens is not None else old.reasoning_tokens,
        reasoning_estimated=new.reasoning_estimated if new.reasoning_tokens is not None else old.reasoning_estimated,
        service_tier=new.service_tier if new.service_tier is not None else old.service_tier,
        speed=new.speed if new.speed is not None else old.speed,
    )


def _fill_tokens(
    rec: Record,
    usage: Usage | None,
    text: str,
    prompt: Prompt,
    contender: Contender,
    n_chunks: int | None,
    full_chars: int | None = None,
) -> None:
    if usage is not None:
        rec.service_tier, rec.speed = usage.service_tier, usage.speed
    images = contender_image_tokens(contender, prompt) if prompt.images else None
    if prompt.images:  # what the images cost by the provider's documented rule, beside the server's count
        rec.extra.update(n_images=len(prompt.images), image_tokens_estimate=images.tokens if images else None,
                         image_tokens_rule=images.rule if images else None)
    if usage is not None and usage.output_tokens is not None:
        rec.input_tokens = usage.input_tokens
        rec.output_tokens = usage.output_tokens
        rec.cached_input_tokens = usage.cached_input_tokens
        rec.cache_creation_input_tokens = usage.cache_creation_input_tokens
        rec.image_input_tokens = usage.image_input_tokens
        rec.reasoning_tokens = usage.reasoning_tokens
        rec.visible_output_tokens = metrics.visible_tokens(usage.output_tokens, usage.reasoning_tokens)
        rec.token_source = "server+reasoning chars/4" if usage.reasoning_estimated else "server"
        rec.tokens_estimated = False
        return
    truncated = full_chars is not None and full_chars > len(text)
    if n_chunks:
        rec.output_tokens = n_chunks
        rec.token_source = "chunks"
    else:
        rec.output_tokens = _chars_estimate("x" * full_chars if truncated and full_chars else text)
        rec.token_source = "chars/4"
    rec.tokens_estimated = True
    rec.visible_output_tokens = rec.output_tokens  # estimated from the visible text itself
    if usage is not None and usage.input_tokens is not None:
        rec.input_tokens = usage.input_tokens
    else:
        rec.input_tokens = _chars_estimate(_rendered_prompt(contender, prompt)) + (images.tokens if images else 0)


def _rendered_prompt(contender: Contender, prompt: Prompt) -> str:
    if contender.prompt_template:
        return contender.prompt_template.replace("{prompt}", prompt.text)
    system = prompt.system or contender.system_prompt or ""
    return (system + "\n" + prompt.text) if system else prompt.text


def _chars_estimate(text: str) -> int:
    return 0 if not text else max(1, round(len(text) / 4))


def fail_record(rec: Record, err: ErrorInfo) -> None:
    """Mark `rec` failed with the typed error `err` (its class, the provider's code, type and hint)."""
    rec.status = "error"
    rec.error_class = err.error_class.value
    rec.error_message = err.message
    rec.provider_error_code = err.provider_code
    rec.provider_error_type = err.provider_type
    rec.retry_after_s = err.retry_after_s
    if err.http_status is not None:
        rec.http_status = err.http_status


def _cap_message(rec: Record) -> None:
    """Keep a huge error message (a provider echoing a whole page) from bloating the results."""
    msg = rec.error_message
    if msg and len(msg) > MAX_ERROR_MESSAGE_CHARS:
        rec.error_message = msg[:MAX_ERROR_MESSAGE_CHARS] + f"... [{len(msg) - MAX_ERROR_MESSAGE_CHARS} chars cut]"


def _redact(rec: Record, api_key: str | None) -> None:
    """Keys never reach a record: a server may echo the key it was sent in an error message
    (or, misbehaving, in its answer), and records are written to disk and shared."""
    if rec.error_message:
        rec.error_message = keys.redact(rec.error_message, api_key)
    if rec.output_text:
        rec.output_text = keys.redact(rec.output_text, api_key)
    if rec.rate_limit:
        rec.rate_limit = {k: keys.redact(v, api_key) for k, v in rec.rate_limit.items()}


def probe_once(target: Target, prompt: Prompt) -> Record:
    """Synchronous convenience for the CLI and notebooks: one request on a fresh client (inside
    a running loop, a notebook's, on a worker thread's own: `workbench.aio.run_sync`)."""

    async def _go() -> Record:
        async with make_client(1, target.contender.timeout_s) as client:
            return await probe(client, target, prompt)

    return run_sync(_go())
