"""What each hosted API sends on the wire, as the mock server (`serve/mock.py`) sends it.

One class per wire format, registered by name in `FORMATS`, each owning its routes, its stream
events (opening, one per piece of the answer, closing), its whole (non-streamed) body, its usage
report, its in-stream error and its real HTTP error bodies:

  openai-chat         POST /v1/chat/completions          base_url  {url}/v1
  openai-completions  POST /v1/completions               base_url  {url}/v1
  openai-responses    POST /v1/responses                 base_url  {url}/v1
  (listing)           GET  /v1/models                    llama.cpp-style `meta.n_ctx_train`
  anthropic           POST /v1/messages                  base_url  {url}/v1
                      GET  /v1/models/{id}
  gemini              POST /v1beta/models/{m}:generateContent | :streamGenerateContent?alt=sse
                      GET  /v1beta/models/{m}            `inputTokenLimit`
  generic             POST /generate                     base_url  {url}

The opening events carry no answer text (OpenAI's role-only chunk, Anthropic's
`message_start`, a Gemini thought part), so a client's TTFT must skip them, as with the real APIs.
No I/O here but reading the recorded bodies: the error bodies are the providers' own, from
recorded responses (serve/transcripts/, sources in its README) where there is one, else copied
from each provider's documentation.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

from workbench.serve import transcripts

__all__ = ["CTX", "FORMATS", "GEMINI_CTX", "Event", "MockScript", "WireFormat", "anthropic_error", "base_url_for",
           "context_exceeded", "format_for", "google_error", "listing", "lookup_format", "model_not_found",
           "openai_error", "prompt_tokens", "text_of"]

CTX = 32768
GEMINI_CTX = 1048576

#: An SSE event: (event name or None, data: a JSON-able object or a literal string such as "[DONE]").
Event = tuple[str | None, Any]


@dataclass(frozen=True)
class MockScript:
    """What the mock server answers, how fast, and what usage it reports: the known truth.

    The first piece of the answer goes out `ttft_s` after the request was read, the others
    `itl_s` apart (E2E = ttft + (n − 1)·itl); a non-streamed answer is sent whole at that E2E.
    Frozen: a server renders each answer once per script; give it a new one to change it."""

    ttft_s: float = 0.0
    itl_s: float = 0.0
    pieces: tuple[str, ...] = ("Hello", ",", " world", "!")
    #: The answer as a function of the request body (e.g. a contender that always says "I don't
    #: know"): its text is sent as one piece instead of `pieces`. Not possible in a child process.
    answer: Callable[[dict[str, Any]], str] | None = None
    input_tokens: int = 12  # total prompt, cached tokens included
    output_tokens: int | None = None  # answer tokens (excluding thoughts); None: one per piece
    cached_input_tokens: int = 0
    cache_creation_input_tokens: int = 0
    thoughts_tokens: int = 0  # gemini: sends a thought part first when > 0
    openai_stream_usage: bool = True  # honour stream_options.include_usage
    headers: dict[str, str] = field(default_factory=dict)  # extra headers on every answer
    #: Answer every request (any path) at once with one tiny fixed chat-completion JSON: the null
    #: server a load generator's top speed is measured against.
    null: bool = False
    #: Prefill: the first piece goes out `prefill_s_per_token` × the request's prompt tokens
    #: later than `ttft_s` (a prompt token is `prompt_tokens`: four characters of the body's
    #: text), and usage reports those tokens as `input_tokens`. 0: `input_tokens` as given.
    prefill_s_per_token: float = 0.0
    #: A request of more prompt tokens than this gets the provider's own context-length error
    #: (`context_exceeded`); None: no limit.
    context_window: int | None = None

    def __post_init__(self) -> None:
        if self.ttft_s < 0 or self.itl_s < 0 or not self.pieces or self.prefill_s_per_token < 0:
            raise ValueError("ttft_s, itl_s and prefill_s_per_token must be >= 0 and pieces non-empty")
        if self.context_window is not None and self.context_window < 1:
            raise ValueError("context_window must be >= 1 (or None: no limit)")

    @property
    def counts_prompt(self) -> bool:
        """The server counts each request's prompt (for a prefill delay or a context window)."""
        return self.prefill_s_per_token > 0 or self.context_window is not None

    @classmethod
    def timed(cls, ttft_ms: float, itl_ms: float, n_chunks: int, text: str = " tok") -> MockScript:
        """`n_chunks` equal pieces (one token each), the first after `ttft_ms`, then every `itl_ms`:
        the CLI's --ttft-ms/--itl-ms/--n-chunks (milliseconds, as GuideLLM's mock server)."""
        if n_chunks < 1:
            raise ValueError("n_chunks must be >= 1")
        return cls(ttft_s=ttft_ms / 1000, itl_s=itl_ms / 1000, pieces=(text,) * n_chunks)

    @property
    def n_chunks(self) -> int:
        return len(self.pieces)

    @property
    def e2e_s(self) -> float:
        """The true end-to-end time of a streamed answer of `pieces` (network excluded)."""
        return self.ttft_s + (len(self.pieces) - 1) * self.itl_s

    def pieces_for(self, req: dict[str, Any]) -> tuple[str, ...]:
        return (self.answer(req),) if self.answer is not None else self.pieces

    def output_for(self, pieces: tuple[str, ...]) -> int:
        return self.output_tokens if self.output_tokens is not None else len(pieces)


def text_of(content: Any) -> str:
    """A user turn's text: the string itself, or its text parts joined (image parts left out)."""
    if isinstance(content, list):
        return "".join(str(p.get("text", "")) for p in content
                       if isinstance(p, dict) and p.get("type") in ("text", "input_text"))
    return str(content)


class WireFormat:
    """One answer in one wire format. Subclasses fill in the shapes.

    An answer depends on nothing but the constructor's arguments and the pieces passed in, so a
    server may render it once and send the same bytes to every request that asks the same."""

    name: ClassVar[str]
    base_path: ClassVar[str] = "/v1"

    def __init__(self, sc: MockScript, model: str, output_tokens: int, include_usage: bool) -> None:
        self.sc, self.model, self.output_tokens, self.include_usage = sc, model, output_tokens, include_usage

    @staticmethod
    def request_model(req: dict[str, Any]) -> str:
        """The model named in the request body (echoed in the answer)."""
        return str(req.get("model") or "mock-model")

    @staticmethod
    def wants_usage(req: dict[str, Any]) -> bool:
        """OpenAI's `stream_options.include_usage`: a usage chunk ends the stream."""
        options = req.get("stream_options")
        return isinstance(options, dict) and bool(options.get("include_usage"))

    @staticmethod
    def matches(path: str) -> bool:
        raise NotImplementedError

    @staticmethod
    def streamed(path: str, query: str, req: dict[str, Any]) -> bool:
        return bool(req.get("stream"))

    @staticmethod
    def user_text(req: dict[str, Any]) -> str:
        """The last user text: names a request in the truth notes and the fault log."""
        messages = req.get("messages")
        if isinstance(messages, list) and messages and isinstance(messages[-1], dict):
            return text_of(messages[-1].get("content", ""))
        return str(req.get("prompt", ""))

    def opening(self) -> list[Event]:
        return []

    def piece(self, text: str) -> list[Event]:
        raise NotImplementedError

    def closing(self) -> list[Event]:
        raise NotImplementedError

    def whole(self, text: str) -> dict[str, Any]:
        raise NotImplementedError

    @staticmethod
    def stream_error() -> Event:
        """The format's own error event inside a 200 stream."""
        raise NotImplementedError

    #: ErrorClass value → (HTTP status, the provider's real error body).
    errors: ClassVar[dict[str, tuple[int, Any]]] = {}

    @classmethod
    def error(cls, error_class: str, retry_s: float | None = None) -> tuple[int, Any, dict[str, str]]:
        """(status, body, headers) of the provider's real HTTP error for an ErrorClass value."""
        if error_class not in cls.errors:
            raise ValueError(f"{cls.name} has no {error_class!r} error; valid: {', '.join(cls.errors)}")
        status, body = cls.errors[error_class]
        return status, copy.deepcopy(body), ({"retry-after": f"{retry_s:g}"} if retry_s is not None else {})


def _openai_usage(sc: MockScript, output: int) -> dict[str, Any]:
    return {"prompt_tokens": sc.input_tokens, "completion_tokens": output,
            "total_tokens": sc.input_tokens + output,
            "prompt_tokens_details": {"cached_tokens": sc.cached_input_tokens},
            "completion_tokens_details": {"reasoning_tokens": 0}}


def openai_error(message: str, type_: str, code: str | None, param: str | None = None) -> dict[str, Any]:
    return {"error": {"message": message, "type": type_, "param": param, "code": code}}


def _recorded(name: str) -> tuple[int, Any]:
    t = transcripts.error(name)
    return t.status, t.body


class OpenAIChat(WireFormat):
    name = "openai-chat"
    errors: ClassVar[dict[str, tuple[int, Any]]] = {
        "rate_limited": _recorded("openai_429_rate_limit_tokens"),
        "quota_exhausted": _recorded("openai_429_insufficient_quota"),
        "model_not_found": _recorded("openai_404_model_not_found"),
        "overloaded": (503, openai_error("The engine is currently overloaded, please try again later.",
                                      "server_error", None)),
        "auth": (401, openai_error("Incorrect API key provided: sk-abc***xyz.", "invalid_request_error",
                                "invalid_api_key")),
        "bad_request": (400, openai_error("Unsupported parameter: 'max_tokens'", "invalid_request_error",
                                       "unsupported_parameter", "max_tokens")),
        "server_error": (500, openai_error("The server had an error while processing your request.",
                                        "server_error", None)),
    }

    @staticmethod
    def matches(path: str) -> bool:
        return path == "/v1/chat/completions"

    def _chunk(self, delta: dict[str, Any], finish: str | None) -> dict[str, Any]:
        return {"id": "chatcmpl-mock", "object": "chat.completion.chunk", "created": 1, "model": self.model,
                "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}

    def opening(self) -> list[Event]:
        return [(None, self._chunk({"role": "assistant", "content": ""}, None))]

    def piece(self, text: str) -> list[Event]:
        return [(None, self._chunk({"content": text}, None))]

    def _finish(self) -> dict[str, Any]:
        return self._chunk({}, "stop")

    def closing(self) -> list[Event]:
        out: list[Event] = [(None, self._finish())]
        if self.sc.openai_stream_usage and self.include_usage:
            out.append((None, {"id": "chatcmpl-mock", "object": "chat.completion.chunk", "created": 1,
                               "model": self.model, "choices": [],
                               "usage": _openai_usage(self.sc, self.output_tokens)}))
        out.append((None, "[DONE]"))
        return out

    def whole(self, text: str) -> dict[str, Any]:
        return {"id": "chatcmpl-mock", "object": "chat.completion", "created": 1, "model": self.model,
                "choices": [{"index": 0, "message": {"role": "assistant", "content": text},
                             "finish_reason": "stop"}], "usage": _openai_usage(self.sc, self.output_tokens)}

    @staticmethod
    def stream_error() -> Event:
        return None, OpenAIChat.errors["server_error"][1]


class OpenAICompletions(OpenAIChat):
    name = "openai-completions"

    @staticmethod
    def matches(path: str) -> bool:
        return path == "/v1/completions"

    def _text(self, text: str, finish: str | None) -> dict[str, Any]:
        return {"id": "cmpl-mock", "object": "text_completion", "created": 1, "model": self.model,
                "choices": [{"index": 0, "text": text, "finish_reason": finish, "logprobs": None}]}

    def opening(self) -> list[Event]:
        return []

    def piece(self, text: str) -> list[Event]:
        return [(None, self._text(text, None))]

    def _finish(self) -> dict[str, Any]:
        return self._text("", "stop")

    def whole(self, text: str) -> dict[str, Any]:
        return {**self._text(text, "stop"), "usage": _openai_usage(self.sc, self.output_tokens)}


class OpenAIResponses(OpenAIChat):
    """The Responses API's event stream (`response.created` ... `response.completed`), shaped as in
    the API reference's per-event examples; errors as the chat API's."""

    name = "openai-responses"

    def __init__(self, sc: MockScript, model: str, output_tokens: int, include_usage: bool) -> None:
        super().__init__(sc, model, output_tokens, include_usage)
        self._seq = 0
        self._text = ""  # the pieces sent so far: the `*.done` events and the completed response repeat them

    @staticmethod
    def matches(path: str) -> bool:
        return path == "/v1/responses"

    @staticmethod
    def user_text(req: dict[str, Any]) -> str:
        inp = req.get("input")
        if isinstance(inp, list) and inp and isinstance(inp[-1], dict):
            return text_of(inp[-1].get("content", ""))
        return str(inp or "")

    def _ev(self, type_: str, **fields: Any) -> Event:
        self._seq += 1
        return type_, {"type": type_, **fields, "sequence_number": self._seq - 1}

    def _response(self, status: str, output: list[Any], usage: dict[str, Any] | None) -> dict[str, Any]:
        return {"id": "resp_mock", "object": "response", "created_at": 1, "status": status, "error": None,
                "incomplete_details": None, "model": self.model, "output": output, "usage": usage}

    def _usage(self) -> dict[str, Any]:
        sc = self.sc
        return {"input_tokens": sc.input_tokens, "input_tokens_details": {"cached_tokens": sc.cached_input_tokens},
                "output_tokens": self.output_tokens, "output_tokens_details": {"reasoning_tokens": 0},
                "total_tokens": sc.input_tokens + self.output_tokens}

    def _message(self, text: str, status: str) -> dict[str, Any]:
        return {"id": "msg_mock", "type": "message", "status": status, "role": "assistant",
                "content": [{"type": "output_text", "text": text, "annotations": []}] if status == "completed" else []}

    def opening(self) -> list[Event]:
        return [self._ev("response.created", response=self._response("in_progress", [], None)),
                self._ev("response.output_item.added", output_index=0, item=self._message("", "in_progress")),
                self._ev("response.content_part.added", item_id="msg_mock", output_index=0, content_index=0,
                         part={"type": "output_text", "text": "", "annotations": []})]

    def piece(self, text: str) -> list[Event]:
        self._text += text
        return [self._ev("response.output_text.delta", item_id="msg_mock", output_index=0, content_index=0,
                         delta=text, logprobs=[])]

    def closing(self) -> list[Event]:
        """The text, its part and its item each closed (`*.done`, as the API sends them), then the
        completed response carrying the finished message: the official SDK's `responses.stream()`
        refuses to complete a response whose output items were never finished."""
        text = self._text
        message = self._message(text, "completed")
        return [self._ev("response.output_text.done", item_id="msg_mock", output_index=0, content_index=0,
                         text=text, logprobs=[]),
                self._ev("response.content_part.done", item_id="msg_mock", output_index=0, content_index=0,
                         part=message["content"][0]),
                self._ev("response.output_item.done", output_index=0, item=message),
                self._ev("response.completed", response=self._response("completed", [message], self._usage()))]

    def whole(self, text: str) -> dict[str, Any]:
        return self._response("completed", [self._message(text, "completed")], self._usage())

    @staticmethod
    def stream_error() -> Event:
        return "error", {"type": "error", "code": "server_error", "message": "The server had an error while "
                         "processing your request.", "param": None, "sequence_number": 1}


def anthropic_error(type_: str, message: str) -> dict[str, Any]:
    return {"type": "error", "error": {"type": type_, "message": message}}


class Anthropic(WireFormat):
    name = "anthropic"
    errors: ClassVar[dict[str, tuple[int, Any]]] = {
        "rate_limited": (429, anthropic_error("rate_limit_error", "Number of requests has exceeded your "
                                               "rate limit")),
        "quota_exhausted": (400, anthropic_error("invalid_request_error", "Your credit balance is too low to "
                                                  "access the Anthropic API.")),
        "overloaded": (529, anthropic_error("overloaded_error", "Overloaded")),
        "auth": (401, anthropic_error("authentication_error", "invalid x-api-key")),
        "model_not_found": _recorded("anthropic_404_model_not_found"),
        "bad_request": (400, anthropic_error("invalid_request_error", "max_tokens: Field required")),
        "server_error": (500, anthropic_error("api_error", "Internal server error")),
    }

    @staticmethod
    def matches(path: str) -> bool:
        return path == "/v1/messages"

    def _usage(self, output: int) -> dict[str, Any]:
        sc = self.sc  # Anthropic's input_tokens EXCLUDES cache reads and writes.
        return {"input_tokens": sc.input_tokens - sc.cached_input_tokens - sc.cache_creation_input_tokens,
                "cache_read_input_tokens": sc.cached_input_tokens,
                "cache_creation_input_tokens": sc.cache_creation_input_tokens, "output_tokens": output}

    def opening(self) -> list[Event]:
        return [("message_start", {"type": "message_start", "message": {
                    "id": "msg_mock", "type": "message", "role": "assistant", "content": [],
                    "model": self.model, "stop_reason": None, "stop_sequence": None, "usage": self._usage(1)}}),
                ("content_block_start", {"type": "content_block_start", "index": 0,
                                         "content_block": {"type": "text", "text": ""}}),
                ("ping", {"type": "ping"})]

    def piece(self, text: str) -> list[Event]:
        return [("content_block_delta", {"type": "content_block_delta", "index": 0,
                                         "delta": {"type": "text_delta", "text": text}})]

    def closing(self) -> list[Event]:
        return [("content_block_stop", {"type": "content_block_stop", "index": 0}),
                ("message_delta", {"type": "message_delta",
                                   "delta": {"stop_reason": "end_turn", "stop_sequence": None},
                                   "usage": {"output_tokens": self.output_tokens}}),
                ("message_stop", {"type": "message_stop"})]

    def whole(self, text: str) -> dict[str, Any]:
        return {"id": "msg_mock", "type": "message", "role": "assistant", "model": self.model,
                "content": [{"type": "text", "text": text}], "stop_reason": "end_turn",
                "stop_sequence": None, "usage": self._usage(self.output_tokens)}

    @staticmethod
    def stream_error() -> Event:
        return "error", Anthropic.errors["overloaded"][1]


def google_error(code: int, status: str, message: str, details: list[Any] | None = None) -> dict[str, Any]:
    err: dict[str, Any] = {"code": code, "message": message, "status": status}
    if details:
        err["details"] = details
    return {"error": err}


def _retry_info(seconds: float) -> list[Any]:
    return [{"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": f"{seconds:g}s"}]


class Gemini(WireFormat):
    name = "gemini"
    base_path = "/v1beta"
    errors: ClassVar[dict[str, tuple[int, Any]]] = {
        "rate_limited": (429, google_error(429, "RESOURCE_EXHAUSTED", "You exceeded your current quota, please "
                                            "check your plan and billing details.", _retry_info(7))),
        "overloaded": (503, google_error(503, "UNAVAILABLE", "The model is overloaded. Please try again later.")),
        "quota_exhausted": _recorded("gemini_429_quota_per_day"),
        "model_not_found": _recorded("gemini_404_model_not_found"),
        "auth": (400, google_error(400, "INVALID_ARGUMENT", "API key not valid. Please pass a valid API key.",
                                    [{"@type": "type.googleapis.com/google.rpc.ErrorInfo",
                                      "reason": "API_KEY_INVALID", "domain": "googleapis.com"}])),
        "bad_request": (400, google_error(400, "INVALID_ARGUMENT", "Invalid value at 'generation_config'")),
        "server_error": (500, google_error(500, "INTERNAL", "An internal error has occurred.")),
        "timeout": (504, google_error(504, "DEADLINE_EXCEEDED", "Deadline expired before operation could "
                                       "complete.")),
    }

    @staticmethod
    def matches(path: str) -> bool:
        return path.startswith("/v1beta/models/") and ":" in path

    @staticmethod
    def streamed(path: str, query: str, req: dict[str, Any]) -> bool:
        return path.endswith(":streamGenerateContent") and "alt=sse" in query.split("&")

    @staticmethod
    def user_text(req: dict[str, Any]) -> str:
        contents = req.get("contents")
        if isinstance(contents, list) and contents and isinstance(contents[-1], dict):
            parts = contents[-1].get("parts")
            if isinstance(parts, list) and parts and isinstance(parts[-1], dict):
                return str(parts[-1].get("text", ""))
        return ""

    @classmethod
    def error(cls, error_class: str, retry_s: float | None = None) -> tuple[int, Any, dict[str, str]]:
        status, body, _ = super().error(error_class)
        if error_class == "rate_limited" and retry_s is not None:  # Gemini's hint is in the body
            body = google_error(429, "RESOURCE_EXHAUSTED", body["error"]["message"], _retry_info(retry_s))
        return status, body, {}

    def _usage(self) -> dict[str, Any]:
        sc = self.sc
        u: dict[str, Any] = {"promptTokenCount": sc.input_tokens, "candidatesTokenCount": self.output_tokens,
                             "totalTokenCount": sc.input_tokens + self.output_tokens + sc.thoughts_tokens}
        if sc.cached_input_tokens:
            u["cachedContentTokenCount"] = sc.cached_input_tokens
        if sc.thoughts_tokens:
            u["thoughtsTokenCount"] = sc.thoughts_tokens
        return u

    def _event(self, parts: list[dict[str, Any]], usage: dict[str, Any], finish: str | None = None) -> Event:
        candidate: dict[str, Any] = {"content": {"role": "model", "parts": parts}, "index": 0}
        if finish:
            candidate["finishReason"] = finish
        return None, {"candidates": [candidate], "usageMetadata": usage, "modelVersion": self.model}

    def _prompt_only(self) -> dict[str, Any]:
        return {"promptTokenCount": self.sc.input_tokens, "totalTokenCount": self.sc.input_tokens}

    def opening(self) -> list[Event]:
        if not self.sc.thoughts_tokens:
            return []
        return [self._event([{"text": "Thinking about it.", "thought": True}], self._prompt_only())]

    def piece(self, text: str) -> list[Event]:
        return [self._event([{"text": text}], self._prompt_only())]

    def closing(self) -> list[Event]:
        return [self._event([{"text": ""}], self._usage(), "STOP")]

    def whole(self, text: str) -> dict[str, Any]:
        parts: list[dict[str, Any]] = []
        if self.sc.thoughts_tokens:
            parts.append({"text": "Thinking about it.", "thought": True})
        parts.append({"text": text})
        return {"candidates": [{"content": {"role": "model", "parts": parts}, "finishReason": "STOP",
                                "index": 0}], "usageMetadata": self._usage(), "modelVersion": self.model}

    @staticmethod
    def stream_error() -> Event:
        return None, google_error(429, "RESOURCE_EXHAUSTED", "Resource has been exhausted", _retry_info(7))


#: The production error a provider at its concurrent-request limit sends (the failure story the
#: workbench was specified from); also the body of the mock's `rate_limit` fault and of the rate-limit proxy's 429.
RATE_LIMIT_BODY = {"error": "rate_limit_exceeded", "message": "Concurrent limit reached: 512 active requests"}


class Generic(WireFormat):
    name = "generic"
    base_path = ""
    errors: ClassVar[dict[str, tuple[int, Any]]] = {
        "rate_limited": (429, RATE_LIMIT_BODY),
        "quota_exhausted": (429, {"error": "insufficient_quota", "message": "Monthly quota used up"}),
        "overloaded": (503, {"error": "overloaded", "message": "try later"}),
        "auth": (401, {"error": "unauthorized", "message": "bad token"}),
        "bad_request": (422, {"detail": [{"loc": ["body", "prompt"], "msg": "field required"}]}),
        "server_error": (500, {"error": "internal", "message": "boom"}),
    }

    @staticmethod
    def matches(path: str) -> bool:
        return path == "/generate"

    def _usage(self) -> dict[str, Any]:
        return {"input_tokens": self.sc.input_tokens, "output_tokens": self.output_tokens}

    def piece(self, text: str) -> list[Event]:
        return [(None, {"text": text})]

    def closing(self) -> list[Event]:
        return [(None, {"finish_reason": "stop", "usage": self._usage()}), (None, "[DONE]")]

    def whole(self, text: str) -> dict[str, Any]:
        return {"text": text, "usage": self._usage(), "finish_reason": "stop"}

    @staticmethod
    def stream_error() -> Event:
        return None, RATE_LIMIT_BODY


FORMATS: dict[str, type[WireFormat]] = {f.name: f for f in (OpenAIChat, OpenAICompletions, OpenAIResponses,
                                                             Anthropic, Gemini, Generic)}


#: The model each recorded model-not-found body names (replaced by the model asked for).
_RECORDED_MODEL = {"openai-chat": "gpt-4o", "anthropic": "claude-3-haiku-20240307", "gemini": "gemini-1.0-pro"}


#: Body fields whose strings are not prompt text: names, roles, and image data or addresses
#: (images are counted by their own rule, `serve/image_input`).
_NOT_TEXT = frozenset({"model", "role", "type", "source", "image_url", "inlineData", "inline_data", "fileData",
                       "file_data", "image_data"})


def prompt_tokens(body: Any) -> int:
    """The mock's token count of a request: every text in the body (messages, system, contents,
    prompt), four characters a token, rounded up; the JSON's keys, names, roles and image parts
    do not count."""
    def chars(x: Any) -> int:
        if isinstance(x, str):
            return len(x)
        if isinstance(x, Mapping):
            return sum(chars(v) for k, v in x.items() if k not in _NOT_TEXT)
        if isinstance(x, list):
            return sum(chars(v) for v in x)
        return 0

    return -(-chars(body) // 4)


def context_exceeded(fmt: str, n_tokens: int, window: int) -> tuple[int, Any]:
    """The provider's own HTTP error for a prompt of `n_tokens` past a `window`-token context:
    OpenAI 400 `context_length_exceeded` (its documented error code, the message its API sends),
    Anthropic 400 invalid_request_error "prompt is too long: N tokens > M maximum", Gemini 400
    INVALID_ARGUMENT "The input token count (N) exceeds the maximum number of tokens allowed (M).",
    as their APIs answer (the SDKs carry no error bodies: these are the bodies users report, e.g.
    anthropics/claude-code#12186, google-gemini/gemini-cli#4118). `generic` answers as llama-server
    does (`exceed_context_size_error`, as measured on the pinned build)."""
    if fmt == "anthropic":
        return 400, anthropic_error("invalid_request_error",
                                    f"prompt is too long: {n_tokens} tokens > {window} maximum")
    if fmt == "gemini":
        return 400, google_error(400, "INVALID_ARGUMENT", f"The input token count ({n_tokens}) exceeds the maximum "
                                                          f"number of tokens allowed ({window}).")
    if fmt == "generic":
        return 400, {"error": {"code": 400, "message": f"request ({n_tokens} tokens) exceeds the available context "
                                                       f"size ({window} tokens), try increasing it",
                               "type": "exceed_context_size_error",
                               "n_prompt_tokens": n_tokens, "n_ctx": window}}
    param = "input" if fmt == "openai-responses" else ("prompt" if fmt == "openai-completions" else "messages")
    return 400, openai_error(f"This model's maximum context length is {window} tokens. However, your messages "
                             f"resulted in {n_tokens} tokens. Please reduce the length of the messages.",
                             "invalid_request_error", "context_length_exceeded", param)


def model_not_found(fmt: str, model: str) -> tuple[int, Any]:
    """The provider's real 404 for an unknown or retired `model` (formats without one of their
    own answer as OpenAI does)."""
    fmt = fmt if fmt in _RECORDED_MODEL else "openai-chat"
    status, body, _ = FORMATS[fmt].error("model_not_found")
    text = json.dumps(body).replace(_RECORDED_MODEL[fmt], model.removeprefix("models/"))
    return status, json.loads(text)


def lookup_format(path: str, headers: dict[str, str]) -> str | None:
    """Which provider a model lookup `GET path` speaks (None: not a lookup)."""
    if path.startswith("/v1beta/models/"):
        return "gemini"
    if path.startswith("/v1/models/"):
        return "anthropic" if "anthropic-version" in headers else "openai-chat"
    return None


def format_for(path: str) -> type[WireFormat] | None:
    """The format whose POST route `path` is, or None."""
    for fmt in FORMATS.values():
        if fmt.matches(path):
            return fmt
    return None


def base_url_for(url: str, fmt: str) -> str:
    """A contender's `base_url` for wire format `fmt` on a mock server at root `url`."""
    if fmt not in FORMATS:
        raise ValueError(f"unknown wire format {fmt!r}; valid: {', '.join(FORMATS)}")
    return url + FORMATS[fmt].base_path


def listing(path: str, headers: Mapping[str, str] | None = None,
            lifecycles: Mapping[str, Mapping[str, Any]] | None = None) -> dict[str, Any] | None:
    """The answer to GET `path` when it is a model listing or a model's details, else None: the
    provider's own model object (OpenAI `types/model.py`, Anthropic `types/model_info.py`, by the
    `anthropic-version` header), with a model's `lifecycles` fields over the defaults (e.g.
    `{"lifecycle": "retired", "retires_at": ...}` or `{"shutdown_date": "2026-12-11"}`)."""
    if path == "/v1/models":
        return {"object": "list", "data": [{"id": "mock-model", "object": "model", "owned_by": "workbench-mock",
                                            "meta": {"n_ctx_train": CTX, "n_params": 1}}]}
    if path.startswith("/v1beta/models/"):
        return {"name": path.removeprefix("/v1beta/"), "inputTokenLimit": GEMINI_CTX, "outputTokenLimit": 65536}
    if path.startswith("/v1/models/"):
        model = path.rsplit("/", 1)[1]
        extra = dict((lifecycles or {}).get(model, {}))
        if lookup_format(path, dict(headers or {})) == "anthropic":
            return {"type": "model", "id": model, "display_name": "Mock", "created_at": "2025-02-19T00:00:00Z",
                    "lifecycle": "active", "retires_at": None, "deprecated_at": None, **extra}
        return {"id": model, "object": "model", "created": 1739923200, "owned_by": "workbench-mock",
                "shutdown_date": None, **extra}
    return None
