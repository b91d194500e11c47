"""A local test server that speaks each hosted wire format faithfully, standard library only.

One `WireServer` serves all formats at once on 127.0.0.1 (an ephemeral port), routed by path:

  openai-chat         POST /v1/chat/completions          base_url  {url}/v1
  openai-completions  POST /v1/completions               base_url  {url}/v1
  (listing)           GET  /v1/models                    llama.cpp-style `meta.n_ctx_train`
  anthropic           POST /v1/messages                  base_url  {url}/v1
  gemini              POST /v1beta/models/{m}:generateContent | :streamGenerateContent?alt=sse
                      GET  /v1beta/models/{m}            `inputTokenLimit`
  generic             POST /generate                     base_url  {url}

Timing: the first content chunk is sent `ttft_s` after the request is read (a role-only /
`message_start` / thought event goes out at once, so TTFT must skip it), later chunks
`itl_s` apart; a non-streamed answer is sent after ttft + itl·(n−1). Streams use chunked
transfer encoding with TCP_NODELAY, as real servers do, so each event reaches the client when
written. Usage numbers come from the `Scenario`; faults are queued with `server.fail(...)` and
consumed one per POST request (then the scenario's normal answer resumes).

Fault kinds: `none` (answer normally; a placeholder in a queue), `http` (status + body +
headers), `stream_error` (an in-stream error event in the format's own shape after the first
chunk), `truncate` (stream ends cleanly without its finish marker), `abort` (connection closed
mid-body), `malformed` (an event whose data is not JSON).
`error_fault(fmt, cls)` builds the provider's real error body for an error class.
"""

from __future__ import annotations

import json
import socket
import threading
import time
import urllib.parse
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

__all__ = ["FORMATS", "Fault", "Scenario", "WireServer", "error_fault", "stream_error_payload"]

FORMATS = ("openai-chat", "openai-completions", "anthropic", "gemini", "generic")
CTX = 32768
GEMINI_CTX = 1048576


@dataclass
class Scenario:
    ttft_s: float = 0.0
    itl_s: float = 0.0
    pieces: tuple[str, ...] = ("Hello", ",", " world", "!")
    input_tokens: int = 12  # total prompt
    output_tokens: int = 4  # answer tokens (excluding thoughts)
    cached_input_tokens: int = 0
    cache_creation_input_tokens: int = 0
    thoughts_tokens: int = 0  # gemini: sends a thought part first when > 0
    openai_stream_usage: bool = True  # honour stream_options.include_usage
    headers: dict[str, str] = field(default_factory=dict)  # extra headers on every answer
    # The answer as a function of the request body (e.g. a rehearsal contender that always says
    # "I don't know"): its text is sent as one piece instead of `pieces`.
    answer: Callable[[dict[str, Any]], str] | None = None

    def pieces_for(self, req: dict[str, Any]) -> tuple[str, ...]:
        return (self.answer(req),) if self.answer is not None else self.pieces


@dataclass
class Fault:
    kind: str  # http | stream_error | truncate | abort | malformed
    status: int = 500
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    payload: Any = None  # stream_error: the event data (default: the format's own shape)


def error_fault(fmt: str, cls: str, retry_s: float | None = None) -> Fault:
    """The provider's real HTTP error for an ErrorClass value (see each provider's docs)."""
    if fmt.startswith("openai"):
        table: dict[str, tuple[int, Any]] = {
            "rate_limited": (429, {"error": {"message": "Rate limit reached for requests",
                                             "type": "requests", "param": None,
                                             "code": "rate_limit_exceeded"}}),
            "quota_exhausted": (429, {"error": {"message": "You exceeded your current quota, please "
                                                "check your plan and billing details.",
                                                "type": "insufficient_quota", "param": None,
                                                "code": "insufficient_quota"}}),
            "overloaded": (503, {"error": {"message": "The engine is currently overloaded, please try "
                                           "again later.", "type": "server_error", "param": None,
                                           "code": None}}),
            "auth": (401, {"error": {"message": "Incorrect API key provided: sk-abc***xyz.",
                                     "type": "invalid_request_error", "param": None,
                                     "code": "invalid_api_key"}}),
            "bad_request": (400, {"error": {"message": "Unsupported parameter: 'max_tokens'",
                                            "type": "invalid_request_error", "param": "max_tokens",
                                            "code": "unsupported_parameter"}}),
            "server_error": (500, {"error": {"message": "The server had an error while processing "
                                             "your request.", "type": "server_error", "param": None,
                                             "code": None}}),
        }
    elif fmt == "anthropic":
        def a(t: str, m: str) -> dict[str, Any]:
            return {"type": "error", "error": {"type": t, "message": m}}
        table = {
            "rate_limited": (429, a("rate_limit_error", "Number of requests has exceeded your rate limit")),
            "quota_exhausted": (400, a("invalid_request_error", "Your credit balance is too low to access "
                                       "the Anthropic API.")),
            "overloaded": (529, a("overloaded_error", "Overloaded")),
            "auth": (401, a("authentication_error", "invalid x-api-key")),
            "bad_request": (400, a("invalid_request_error", "max_tokens: Field required")),
            "server_error": (500, a("api_error", "Internal server error")),
        }
    elif fmt == "gemini":
        def g(code: int, status: str, m: str, details: list[Any] | None = None) -> dict[str, Any]:
            err: dict[str, Any] = {"code": code, "message": m, "status": status}
            if details:
                err["details"] = details
            return {"error": err}
        retry = [{"@type": "type.googleapis.com/google.rpc.RetryInfo",
                  "retryDelay": f"{retry_s if retry_s is not None else 7}s"}]
        table = {
            "rate_limited": (429, g(429, "RESOURCE_EXHAUSTED", "You exceeded your current quota, please "
                                    "check your plan and billing details.", retry)),
            "overloaded": (503, g(503, "UNAVAILABLE", "The model is overloaded. Please try again later.")),
            "auth": (400, g(400, "INVALID_ARGUMENT", "API key not valid. Please pass a valid API key.",
                            [{"@type": "type.googleapis.com/google.rpc.ErrorInfo",
                              "reason": "API_KEY_INVALID", "domain": "googleapis.com"}])),
            "bad_request": (400, g(400, "INVALID_ARGUMENT", "Invalid value at 'generation_config'")),
            "server_error": (500, g(500, "INTERNAL", "An internal error has occurred.")),
            "timeout": (504, g(504, "DEADLINE_EXCEEDED", "Deadline expired before operation could "
                                "complete.")),
        }
    elif fmt == "generic":
        table = {
            "rate_limited": (429, {"error": "rate_limit_exceeded",
                                   "message": "Concurrent limit reached: 512 active requests"}),
            "quota_exhausted": (429, {"error": "insufficient_quota", "message": "Monthly quota used up"}),
            "overloaded": (503, {"error": "overloaded", "message": "try later"}),
            "auth": (401, {"error": "unauthorized", "message": "bad token"}),
            "bad_request": (422, {"detail": [{"loc": ["body", "prompt"], "msg": "field required"}]}),
            "server_error": (500, {"error": "internal", "message": "boom"}),
        }
    else:
        raise ValueError(fmt)
    status, body = table[cls]
    headers: dict[str, str] = {}
    if retry_s is not None and fmt != "gemini":
        headers["retry-after"] = f"{retry_s:g}"
    return Fault("http", status=status, body=body, headers=headers)


def stream_error_payload(fmt: str) -> tuple[str | None, Any]:
    """(SSE event name, data) of the format's in-stream error."""
    if fmt.startswith("openai"):
        return None, {"error": {"message": "The server had an error while processing your request.",
                                "type": "server_error", "param": None, "code": None}}
    if fmt == "anthropic":
        return "error", {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}
    if fmt == "gemini":
        return None, {"error": {"code": 429, "message": "Resource has been exhausted",
                                "status": "RESOURCE_EXHAUSTED",
                                "details": [{"@type": "type.googleapis.com/google.rpc.RetryInfo",
                                             "retryDelay": "7s"}]}}
    return None, {"error": "rate_limit_exceeded", "message": "Concurrent limit reached: 512 active requests"}


class _Abort(Exception):
    pass


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def setup(self) -> None:
        super().setup()
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        pass

    # ---- plumbing
    def _send_json(self, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
        raw = json.dumps(body).encode() if not isinstance(body, bytes) else body
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(raw)))
        for k, v in {**self.server.scenario.headers, **(headers or {})}.items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(raw)

    def _start_stream(self) -> None:
        self.send_response(200)
        self.send_header("content-type", "text/event-stream")
        self.send_header("transfer-encoding", "chunked")
        self.send_header("cache-control", "no-cache")
        for k, v in self.server.scenario.headers.items():
            self.send_header(k, v)
        self.end_headers()

    def _chunk(self, data: bytes) -> None:
        self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")

    def _event(self, data: Any, event: str | None = None) -> None:
        text = data if isinstance(data, str) else json.dumps(data)
        prefix = f"event: {event}\n" if event else ""
        self._chunk(f"{prefix}data: {text}\n\n".encode())

    def _end(self) -> None:
        self.wfile.write(b"0\r\n\r\n")

    # ---- routing
    def do_GET(self) -> None:
        path = urllib.parse.urlsplit(self.path).path
        self.server.log(self, None)
        if path == "/v1/models":
            self._send_json(200, {"object": "list", "data": [
                {"id": "test-model", "object": "model", "owned_by": "wire",
                 "meta": {"n_ctx_train": CTX, "n_params": 1}}]})
        elif path.startswith("/v1beta/models/"):
            name = path.removeprefix("/v1beta/")
            self._send_json(200, {"name": name, "inputTokenLimit": GEMINI_CTX, "outputTokenLimit": 65536})
        elif path.startswith("/v1/models/"):
            self._send_json(200, {"type": "model", "id": path.rsplit("/", 1)[1],
                                  "display_name": "Test", "created_at": "2025-02-19T00:00:00Z"})
        else:
            self._send_json(404, {"error": {"message": "not found", "type": "invalid_request_error"}})

    def do_POST(self) -> None:
        length = int(self.headers.get("content-length") or 0)
        body = json.loads(self.rfile.read(length) or b"{}")
        split = urllib.parse.urlsplit(self.path)
        path, query = split.path, urllib.parse.parse_qs(split.query)
        self.server.log(self, body)
        t0 = time.perf_counter()
        if path == "/v1/chat/completions":
            fmt, stream = "openai-chat", bool(body.get("stream"))
        elif path == "/v1/completions":
            fmt, stream = "openai-completions", bool(body.get("stream"))
        elif path == "/v1/messages":
            fmt, stream = "anthropic", bool(body.get("stream"))
        elif path.startswith("/v1beta/models/") and ":" in path:
            fmt = "gemini"
            stream = path.endswith(":streamGenerateContent") and query.get("alt") == ["sse"]
        elif path == "/generate":
            fmt, stream = "generic", bool(body.get("stream"))
        else:
            self._send_json(404, {"error": {"message": f"no route {path}"}})
            return
        fault = self.server.next_fault()
        if fault is not None and fault.kind == "none":
            fault = None
        try:
            if fault is not None and fault.kind == "http":
                self._send_json(fault.status, fault.body, fault.headers)
            elif stream:
                self._stream(fmt, body, fault, t0)
            else:
                self._whole(fmt, body, t0)
        except (BrokenPipeError, ConnectionResetError, _Abort):
            self.close_connection = True

    def _sleep_until(self, t: float) -> None:
        d = t - time.perf_counter()
        if d > 0:
            time.sleep(d)

    # ---- non-streamed answers
    def _whole(self, fmt: str, req: dict[str, Any], t0: float) -> None:
        sc = self.server.scenario
        pieces = sc.pieces_for(req)
        self._sleep_until(t0 + sc.ttft_s + sc.itl_s * max(0, len(pieces) - 1))
        text = "".join(pieces)
        self._send_json(200, _whole_body(fmt, sc, text, req))

    # ---- streams
    def _stream(self, fmt: str, req: dict[str, Any], fault: Fault | None, t0: float) -> None:
        sc = self.server.scenario
        self._start_stream()
        w = _Writer(self, fmt, sc, req)
        w.opening()
        for i, piece in enumerate(sc.pieces_for(req)):
            self._sleep_until(t0 + sc.ttft_s + i * sc.itl_s)
            w.piece(piece)
            if i == 0 and fault is not None:
                if fault.kind == "stream_error":
                    name, data = stream_error_payload(fmt)
                    if fault.payload is not None:
                        name, data = None, fault.payload
                    self._event(data, name)
                    self._end()
                    return
                if fault.kind == "malformed":
                    self._chunk(b'data: {"choices": [{"delta": {"content": "x"\n\n')
                    self._end()
                    return
                if fault.kind == "truncate":
                    self._end()
                    return
                if fault.kind == "abort":
                    self.wfile.flush()
                    self.connection.shutdown(socket.SHUT_RDWR)
                    raise _Abort
        w.closing()
        self._end()


class _Writer:
    """Emits one format's stream events."""

    def __init__(self, h: _Handler, fmt: str, sc: Scenario, req: dict[str, Any]) -> None:
        self.h, self.fmt, self.sc, self.req = h, fmt, sc, req
        self.model = str(req.get("model") or "test-model")

    def opening(self) -> None:
        sc, h = self.sc, self.h
        if self.fmt == "openai-chat":
            h._event(self._oa_chunk({"role": "assistant", "content": ""}, None))
        elif self.fmt == "anthropic":
            h._event({"type": "message_start", "message": {
                "id": "msg_test", "type": "message", "role": "assistant", "content": [],
                "model": self.model, "stop_reason": None, "stop_sequence": None,
                "usage": _anthropic_usage(sc, output=1)}}, "message_start")
            h._event({"type": "content_block_start", "index": 0,
                      "content_block": {"type": "text", "text": ""}}, "content_block_start")
            h._event({"type": "ping"}, "ping")
        elif self.fmt == "gemini" and sc.thoughts_tokens:
            h._event({"candidates": [{"content": {"role": "model", "parts": [
                {"text": "Thinking about it.", "thought": True}]}, "index": 0}],
                "usageMetadata": {"promptTokenCount": sc.input_tokens,
                                  "totalTokenCount": sc.input_tokens},
                "modelVersion": self.model})

    def _oa_chunk(self, delta: dict[str, Any], finish: str | None) -> dict[str, Any]:
        return {"id": "chatcmpl-test", "object": "chat.completion.chunk", "created": 1,
                "model": self.model, "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}

    def piece(self, text: str) -> None:
        h = self.h
        if self.fmt == "openai-chat":
            h._event(self._oa_chunk({"content": text}, None))
        elif self.fmt == "openai-completions":
            h._event({"id": "cmpl-test", "object": "text_completion", "created": 1, "model": self.model,
                      "choices": [{"index": 0, "text": text, "finish_reason": None, "logprobs": None}]})
        elif self.fmt == "anthropic":
            h._event({"type": "content_block_delta", "index": 0,
                      "delta": {"type": "text_delta", "text": text}}, "content_block_delta")
        elif self.fmt == "gemini":
            h._event({"candidates": [{"content": {"role": "model", "parts": [{"text": text}]}, "index": 0}],
                      "usageMetadata": {"promptTokenCount": self.sc.input_tokens,
                                        "totalTokenCount": self.sc.input_tokens},
                      "modelVersion": self.model})
        else:
            h._event({"text": text})

    def closing(self) -> None:
        sc, h = self.sc, self.h
        if self.fmt in ("openai-chat", "openai-completions"):
            if self.fmt == "openai-chat":
                h._event(self._oa_chunk({}, "stop"))
            else:
                h._event({"id": "cmpl-test", "object": "text_completion", "created": 1, "model": self.model,
                          "choices": [{"index": 0, "text": "", "finish_reason": "stop"}]})
            if sc.openai_stream_usage and (self.req.get("stream_options") or {}).get("include_usage"):
                h._event({"id": "chatcmpl-test", "object": "chat.completion.chunk", "created": 1,
                          "model": self.model, "choices": [], "usage": _openai_usage(sc)})
            h._event("[DONE]")
        elif self.fmt == "anthropic":
            h._event({"type": "content_block_stop", "index": 0}, "content_block_stop")
            h._event({"type": "message_delta", "delta": {"stop_reason": "end_turn", "stop_sequence": None},
                      "usage": {"output_tokens": sc.output_tokens}}, "message_delta")
            h._event({"type": "message_stop"}, "message_stop")
        elif self.fmt == "gemini":
            h._event({"candidates": [{"content": {"role": "model", "parts": [{"text": ""}]},
                                      "finishReason": "STOP", "index": 0}],
                      "usageMetadata": _gemini_usage(sc), "modelVersion": self.model})
        else:
            h._event({"finish_reason": "stop", "usage": {"input_tokens": sc.input_tokens,
                                                         "output_tokens": sc.output_tokens}})
            h._event("[DONE]")


def _openai_usage(sc: Scenario) -> dict[str, Any]:
    return {"prompt_tokens": sc.input_tokens, "completion_tokens": sc.output_tokens,
            "total_tokens": sc.input_tokens + sc.output_tokens,
            "prompt_tokens_details": {"cached_tokens": sc.cached_input_tokens},
            "completion_tokens_details": {"reasoning_tokens": 0}}


def _anthropic_usage(sc: Scenario, output: int) -> dict[str, Any]:
    # Anthropic's input_tokens EXCLUDES cache reads and writes.
    return {"input_tokens": sc.input_tokens - sc.cached_input_tokens - sc.cache_creation_input_tokens,
            "cache_read_input_tokens": sc.cached_input_tokens,
            "cache_creation_input_tokens": sc.cache_creation_input_tokens,
            "output_tokens": output}


def _gemini_usage(sc: Scenario) -> dict[str, Any]:
    u: dict[str, Any] = {"promptTokenCount": sc.input_tokens, "candidatesTokenCount": sc.output_tokens,
                         "totalTokenCount": sc.input_tokens + sc.output_tokens + sc.thoughts_tokens}
    if sc.cached_input_tokens:
        u["cachedContentTokenCount"] = sc.cached_input_tokens
    if sc.thoughts_tokens:
        u["thoughtsTokenCount"] = sc.thoughts_tokens
    return u


def _whole_body(fmt: str, sc: Scenario, text: str, req: dict[str, Any]) -> dict[str, Any]:
    model = str(req.get("model") or "test-model")
    if fmt == "openai-chat":
        return {"id": "chatcmpl-test", "object": "chat.completion", "created": 1, "model": model,
                "choices": [{"index": 0, "message": {"role": "assistant", "content": text},
                             "finish_reason": "stop"}], "usage": _openai_usage(sc)}
    if fmt == "openai-completions":
        return {"id": "cmpl-test", "object": "text_completion", "created": 1, "model": model,
                "choices": [{"index": 0, "text": text, "finish_reason": "stop"}], "usage": _openai_usage(sc)}
    if fmt == "anthropic":
        return {"id": "msg_test", "type": "message", "role": "assistant", "model": model,
                "content": [{"type": "text", "text": text}], "stop_reason": "end_turn",
                "stop_sequence": None, "usage": _anthropic_usage(sc, sc.output_tokens)}
    if fmt == "gemini":
        parts: list[dict[str, Any]] = []
        if sc.thoughts_tokens:
            parts.append({"text": "Thinking about it.", "thought": True})
        parts.append({"text": text})
        return {"candidates": [{"content": {"role": "model", "parts": parts}, "finishReason": "STOP",
                                "index": 0}], "usageMetadata": _gemini_usage(sc), "modelVersion": model}
    return {"text": text, "usage": {"input_tokens": sc.input_tokens, "output_tokens": sc.output_tokens},
            "finish_reason": "stop"}


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.scenario = Scenario()
        self.faults: deque[Fault] = deque()
        self.requests: list[dict[str, Any]] = []
        self.lock = threading.Lock()

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # injected aborts close sockets on purpose; tracebacks would only be noise

    def next_fault(self) -> Fault | None:
        with self.lock:
            return self.faults.popleft() if self.faults else None

    def log(self, h: _Handler, body: Any) -> None:
        with self.lock:
            self.requests.append({"method": h.command, "path": h.path,
                                  "headers": {k.lower(): v for k, v in h.headers.items()}, "json": body})


class WireServer:
    """Context manager: `with WireServer() as srv: srv.base_url("anthropic")`."""

    def __init__(self, scenario: Scenario | None = None) -> None:
        self._srv = _Server()
        if scenario is not None:
            self._srv.scenario = scenario
        self._thread = threading.Thread(target=self._srv.serve_forever, kwargs={"poll_interval": 0.05},
                                        daemon=True)

    def __enter__(self) -> WireServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._srv.shutdown()
        self._srv.server_close()
        self._thread.join(timeout=2)

    @property
    def url(self) -> str:
        host, port = self._srv.server_address[:2]
        return f"http://{host!s}:{port}"

    def base_url(self, fmt: str) -> str:
        if fmt in ("openai-chat", "openai-completions", "anthropic"):
            return self.url + "/v1"
        if fmt == "gemini":
            return self.url + "/v1beta"
        return self.url

    @property
    def scenario(self) -> Scenario:
        return self._srv.scenario

    @scenario.setter
    def scenario(self, sc: Scenario) -> None:
        self._srv.scenario = sc

    @property
    def requests(self) -> list[dict[str, Any]]:
        return self._srv.requests

    def fail(self, *faults: Fault) -> None:
        with self._srv.lock:
            self._srv.faults.extend(faults)

    def reset(self, scenario: Scenario | None = None) -> None:
        with self._srv.lock:
            self._srv.faults.clear()
            self._srv.requests.clear()
            self._srv.scenario = scenario or Scenario()
