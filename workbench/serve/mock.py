"""The mock server: one local server that speaks every hosted wire format, with known timing,
injectable faults and notes of what it really did. Run it with `workbench mock-server`.

Like GuideLLM's mock server it is a feature, not a test fixture: a user rehearses a workload, a
provider's errors or a rate limit against it without a key, and every test of the client runs
against the same server. It is hand-written (on serve/http.py) because no kept library offers a
mock that speaks five vendors' wire formats with injectable faults and truth notes at
load-generator speed; and "mock" because it imitates providers, not a model.

- Wire formats (serve/wire.py): OpenAI chat and completions, Anthropic messages, Gemini and a
  generic `/generate`, all at once, routed by path; streamed and whole answers, usage numbers,
  model listings, each provider's real error bodies.
- Images in (serve/image_input.py): image parts in each dialect are decoded and answered by a
  small rule (each image's pixel size and type), an undecodable one by the dialect's 400.
- Known timing (`MockScript`): the first piece of the answer goes out `ttft_s` after the request
  was read, the rest `itl_s` apart; or the answer is `MockScript.answer(request)`. With
  `prefill_s_per_token` the first piece waits that much longer per prompt token (a long document
  costs prefill, as on a real server), and with `context_window` a longer prompt gets the
  provider's own context-length error.
- Faults (serve/faults.py): queued per request (`fail(Fault(...))`) or drawn from a `FaultPlan`;
  every answer request is counted by fault kind (`counts`), kept in `requests` (the last 10,000:
  method, path, headers, JSON body, fault) and, with `log_path`, written as one JSON line.
- Truth notes: for every streamed answer, on the machine's monotonic clock
  (`time.perf_counter_ns()`, CLOCK_MONOTONIC on Linux, the probe's clock), when the server had
  read the request, when it handed the first and the last piece to the socket (stamped just
  before each write, so a client can never see the bytes earlier) and when the first was due:
  `GET /v1/truth[?prefix=P]` returns and forgets them (or those whose user text starts with P,
  so several clients can share a server), keyed by the request's last user text. A client's
  measurement minus these is its own error; the server's lateness is reported apart.
- Null mode (`MockScript(null=True)`): every request, on any path, gets one tiny fixed JSON at
  once: the null server of bench/loadgen_bench.py.

Hosted in a thread (`with MockServer(...) as srv`) to inspect its state, or in a child process
(`MockServer(...).in_child(cpu=1)`) for benchmarks. Binds the loopback interface only: it fails
on purpose and keeps request headers, keys included, in memory.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import json
import math
import socket
import struct
import threading
import time
import urllib.parse
from collections import deque
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from workbench.serve.faults import DIALECTS, FAULTS, Fault, FaultPlan, error_fault, parse_fault_specs, transcript_fault
from workbench.serve.http import LOOPBACK, Request, Server, add_host_arguments, chunk, head, send_json
from workbench.serve.image_input import bad_image_error, describe, image_tokens, request_images
from workbench.serve.transcripts import StreamTranscript
from workbench.serve.wire import (
    FORMATS,
    GEMINI_CTX,
    Event,
    MockScript,
    WireFormat,
    base_url_for,
    context_exceeded,
    format_for,
    listing,
    lookup_format,
    model_not_found,
    prompt_tokens,
)

__all__ = [
    "DIALECTS",
    "FAULTS",
    "FORMATS",
    "GEMINI_CTX",
    "Fault",
    "FaultPlan",
    "MockScript",
    "MockServer",
    "add_arguments",
    "error_fault",
    "from_args",
    "transcript_fault",
]

MAX_LOGGED = 10_000  # requests kept in `MockServer.requests`
MAX_TRUTH = 1_000_000  # notes kept until fetched; beyond this, new ones are not noted
MAX_RENDERED = 1024  # streamed answers kept rendered (an `answer` function makes each one new)

_NULL_BODY = json.dumps({
    "id": "null", "object": "chat.completion", "created": 0, "model": "null",
    "choices": [{"index": 0, "message": {"role": "assistant", "content": "ok"}, "finish_reason": "stop"}],
    "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
}, separators=(",", ":")).encode()
_NULL_RESPONSE = head(200, {"content-type": "application/json", "connection": "keep-alive"},
                      len(_NULL_BODY)) + _NULL_BODY
_STREAM_HEADERS = {"content-type": "text/event-stream", "cache-control": "no-cache"}
_MALFORMED = b'data: {"choices": [{"delta": {"content": "x"\n\n'
_END = chunk(b"")
#: Faults that break a stream after its first piece (serve/faults.py says how).
_BREAKS_STREAM = frozenset({"stall", "abort", "malformed_sse", "truncated_json", "stream_error"})


def _sse(events: list[Event]) -> bytes:
    out = []
    for name, data in events:
        text = data if isinstance(data, str) else json.dumps(data)
        out.append(f"event: {name}\ndata: {text}\n\n" if name else f"data: {text}\n\n")
    return "".join(out).encode()


async def _sleep_until(loop: asyncio.AbstractEventLoop, when: float) -> None:
    delay = when - loop.time()
    if delay > 0:
        await asyncio.sleep(delay)


class MockServer(Server):
    """`with MockServer(script, plan) as srv:` serves on `srv.url` until the block ends;
    `srv.base_url` is the OpenAI base (/v1), `srv.base_url_for(fmt)` any format's."""

    base_path = "/v1"

    def __init__(self, script: MockScript | None = None, plan: FaultPlan | None = None, *,
                 host: str = "127.0.0.1", port: int = 0, log_path: str | Path | None = None,
                 missing_models: Iterable[str] = (), transcript: str | None = None,
                 model_fields: Mapping[str, Mapping[str, Any]] | None = None) -> None:
        if host not in LOOPBACK:
            raise ValueError("the mock server only binds to the loopback interface")
        super().__init__(host, port)
        self.script = script or MockScript()
        self.plan = plan or FaultPlan()
        self.log_path = Path(log_path) if log_path else None
        #: models this server says do not exist (lookups and requests get the provider's real 404)
        self.missing_models: set[str] = set(missing_models)
        #: per model, fields its lookup's model object carries over the defaults: a lifecycle
        #: (`{"lifecycle": "retired", "retires_at": ...}`, `{"shutdown_date": "2026-12-11"}`)
        self.model_fields: dict[str, dict[str, Any]] = {m: dict(f) for m, f in (model_fields or {}).items()}
        #: a recorded answer (serve/transcripts/) every answer request gets when nothing else is queued
        self.transcript = transcript
        if transcript is not None:
            transcript_fault(transcript)  # fail now, naming the valid ones, if it does not exist
        self.requests: deque[dict[str, Any]] = deque(maxlen=MAX_LOGGED)
        self.counts: dict[str, int] = {}  # answer requests by fault kind ("none" included)
        self.truth: dict[str, list[int]] = {}  # user text -> [read, first sent, last sent, first due] ns
        self._queue: deque[Fault] = deque()
        self._pick = self.plan.picker()
        self._rendered_for: MockScript | None = None
        self._rendered: dict[tuple[Any, ...], tuple[bytes, list[bytes], bytes]] = {}
        self._lock = threading.Lock()

    def base_url_for(self, fmt: str) -> str:
        return base_url_for(self.url, fmt)

    def fail(self, *faults: Fault) -> None:
        """Queue faults for the next answer requests, one each (`Fault("none")` skips one)."""
        with self._lock:
            self._queue.extend(faults)

    def reset(self, *, script: MockScript | None = None, plan: FaultPlan | None = None) -> None:
        """Back to a fresh server: the given (or default) script and plan, nothing queued or noted."""
        with self._lock:
            self.script = script or MockScript()
            self.plan = plan or FaultPlan()
            self._pick = self.plan.picker()
            self._queue.clear()
            self.missing_models.clear()
            self.model_fields.clear()
            self.transcript = None
            self.requests.clear()
            self.counts.clear()
            self.truth.clear()

    def take_truth(self, prefix: str = "") -> dict[str, list[int]]:
        """The truth notes (all, or those whose key starts with `prefix`), forgotten once taken."""
        if not prefix:
            taken, self.truth = self.truth, {}
            return taken
        taken = {k: v for k, v in self.truth.items() if k.startswith(prefix)}
        for k in taken:
            del self.truth[k]
        return taken

    # ---- requests
    async def handle(self, req: Request, w: asyncio.StreamWriter) -> bool:
        sc = self.script
        if sc.null:
            w.write(_NULL_RESPONSE)
            return True
        loop = asyncio.get_running_loop()
        t_recv, t_read_ns = loop.time(), time.perf_counter_ns()
        entry: dict[str, Any] = {"method": req.method, "path": req.path + ("?" + req.query if req.query else ""),
                                 "headers": req.headers, "json": None}
        self.requests.append(entry)
        if req.method == "GET":
            if req.path.endswith("/truth"):
                prefix = urllib.parse.parse_qs(req.query).get("prefix", [""])[0]
                send_json(w, 200, self.take_truth(prefix))
            elif (fmt_name := lookup_format(req.path, req.headers)) and \
                    req.path.rsplit("/", 1)[1] in self.missing_models:
                status, missing = model_not_found(fmt_name, req.path.rsplit("/", 1)[1])
                send_json(w, status, missing)
            elif (found := listing(req.path, req.headers, self.model_fields)) is not None:
                send_json(w, 200, found, sc.headers)
            else:
                send_json(w, 404, {"error": {"message": f"no route GET {req.path}", "type": "invalid_request_error",
                                         "code": "not_found"}})
            return True
        fmt = format_for(req.path) if req.method == "POST" else None
        if fmt is None:
            send_json(w, 404, {"error": {"message": f"no route {req.method} {req.path}",
                                     "type": "invalid_request_error", "code": "not_found"}})
            return True
        try:
            body = json.loads(req.body or b"{}")
            if not isinstance(body, dict):
                raise ValueError("not an object")
        except ValueError:
            send_json(w, 400, {"error": {"message": "body is not a JSON object", "type": "invalid_request_error",
                                     "code": None}})
            return True
        entry["json"] = body
        model = fmt.request_model(body) if fmt.name != "gemini" else req.path.split("/")[3].split(":")[0]
        if model in self.missing_models:
            send_json(w, *model_not_found(fmt.name, model))
            return True
        stream = fmt.streamed(req.path, req.query, body)
        if sc.counts_prompt:  # this request's own prompt size: its usage, its prefill, its window
            n_prompt = prompt_tokens(body)
            if sc.context_window is not None and n_prompt > sc.context_window:
                send_json(w, *context_exceeded(fmt.name, n_prompt, sc.context_window))
                return True
            sc = dataclasses.replace(sc, input_tokens=n_prompt, ttft_s=sc.ttft_s + sc.prefill_s_per_token * n_prompt)
        text = fmt.user_text(body)
        kind, fault = self._choose(text, stream, fmt.name)
        entry["fault"], entry["stream"] = kind, stream
        return await self._answer(fmt, sc, body, text, stream, fault, w, t_recv, t_read_ns)

    def _choose(self, text: str, stream: bool, route_format: str | None = None) -> tuple[str, Fault | None]:
        """(kind counted, fault to enact): the queue first, then the plan."""
        with self._lock:
            queued = self._queue.popleft() if self._queue else None
            if queued is None and self.transcript is not None:
                queued = transcript_fault(self.transcript)
            kind = queued.kind if queued is not None else self._pick()
            self.counts[kind] = self.counts.get(kind, 0) + 1
            plan = self.plan
        if self.log_path is not None:
            with open(self.log_path, "a", encoding="utf-8") as fh:
                fh.write(json.dumps({"text": text[:200], "fault": kind, "stream": stream}) + "\n")
        if kind == "none":
            return kind, None
        fault = queued if queued is not None else Fault(kind)
        return kind, plan.as_http(fault.kind, route_format) or fault

    async def _answer(self, fmt: type[WireFormat], sc: MockScript, body: dict[str, Any], text: str, stream: bool,
                      fault: Fault | None, w: asyncio.StreamWriter, t_recv: float, t_read_ns: int) -> bool:
        kind = fault.kind if fault is not None else "none"
        if fault is not None and kind == "http":
            send_json(w, fault.status, fault.body, {**sc.headers, **fault.headers})
            return True
        if fault is not None and kind == "transcript":
            return await self._replay(fault.payload, sc, w, t_recv)
        if kind == "reset":
            sock = w.get_extra_info("socket")
            if sock is not None:
                with contextlib.suppress(OSError):
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            w.transport.abort()
            return False
        late = self.plan.slow_s if kind == "slow_first_byte" else 0.0
        if late:
            await asyncio.sleep(late)
            t_recv += late  # the whole answer, that much later
        try:  # images in: answered by the image rule (serve/image_input.py), unless the script answers
            seen = request_images(fmt.name, body) if sc.answer is None else []
        except ValueError as exc:
            send_json(w, *bad_image_error(fmt.name, str(exc)), sc.headers)
            return True
        if seen:  # the images counted in the prompt, as the provider's usage counts them
            sc = dataclasses.replace(sc, input_tokens=sc.input_tokens + image_tokens(fmt.name, fmt.request_model(body),
                                                                                  seen))
        pieces = (describe(seen),) if seen else sc.pieces_for(body)
        output = sc.output_for(pieces)
        itl = sc.itl_s
        if kind == "oversized":  # at once after the TTFT: this is about size, not timing
            pieces = ("y" * 1000,) * max(1, self.plan.oversized_chars // 1000)
            output, itl = sum(map(len, pieces)) // 4, 0.0
        loop = asyncio.get_running_loop()
        if not stream:
            await _sleep_until(loop, t_recv + sc.ttft_s + itl * (len(pieces) - 1))
            answer = fmt(sc, fmt.request_model(body), output, False)
            return await self._whole(answer, "".join(pieces), fault, w)
        breaks = fault if kind in _BREAKS_STREAM else None
        opening, events, closing = self._render(fmt, sc, fmt.request_model(body), output, fmt.wants_usage(body),
                                                pieces)
        w.write(opening)
        note = [t_read_ns, 0, 0, t_read_ns + round((late + sc.ttft_s) * 1e9)]
        last = len(pieces) - 1
        for k, data in enumerate(events):
            await _sleep_until(loop, t_recv + sc.ttft_s + k * itl)
            done = k == last and breaks is None
            # Stamped before the write: the bytes cannot reach the client earlier, whereas a stamp
            # after it can be late by however long this process was preempted in between.
            note[2] = time.perf_counter_ns()
            if k == 0:
                note[1] = note[2]
            w.write(chunk(data + closing) + _END if done else chunk(data))
            if itl or done or k % 16 == 0:
                await w.drain()
            if breaks is not None:
                return await self._break_stream(fmt, breaks, w)
        if len(self.truth) < MAX_TRUTH:
            self.truth[text] = note
        return True

    def _render(self, fmt: type[WireFormat], sc: MockScript, model: str, output: int, include_usage: bool,
                pieces: tuple[str, ...]) -> tuple[bytes, list[bytes], bytes]:
        """(response head + opening chunk, each piece's events, closing events) as bytes, rendered
        once per script and request shape: identical requests cost no JSON encoding after the first."""
        if sc is not self._rendered_for or len(self._rendered) >= MAX_RENDERED:
            self._rendered_for, self._rendered = sc, {}
        key = (fmt, model, output, include_usage, pieces)
        found = self._rendered.get(key)
        if found is None:
            answer = fmt(sc, model, output, include_usage)
            opening = answer.opening()
            found = self._rendered[key] = (head(200, {**_STREAM_HEADERS, **sc.headers})
                                           + (chunk(_sse(opening)) if opening else b""),
                                           [_sse(answer.piece(p)) for p in pieces], _sse(answer.closing()))
        return found

    async def _replay(self, recorded: StreamTranscript, sc: MockScript, w: asyncio.StreamWriter,
                      t_recv: float) -> bool:
        """A recorded stream, byte for byte: one event per piece of the script's timing."""
        loop = asyncio.get_running_loop()
        w.write(head(200, {**_STREAM_HEADERS, **sc.headers}))
        for k, event in enumerate(recorded.events):
            await _sleep_until(loop, t_recv + sc.ttft_s + k * sc.itl_s)
            w.write(chunk(event))
            await w.drain()
        w.write(_END)
        await w.drain()
        return True

    async def _break_stream(self, fmt: type[WireFormat], fault: Fault, w: asyncio.StreamWriter) -> bool:
        """After the first piece: what `fault` does to a stream."""
        if fault.kind == "stall":
            await asyncio.sleep(self.plan.stall_s)
            return False
        if fault.kind == "abort":
            return False  # the connection is closed (FIN) mid-body
        if fault.kind == "malformed_sse":
            w.write(chunk(_MALFORMED) + _END)
        elif fault.kind == "stream_error":
            event = (None, fault.payload) if fault.payload is not None else fmt.stream_error()
            w.write(chunk(_sse([event])) + _END)
        else:  # truncated_json: a clean end without the finish marker
            w.write(_END)
        await w.drain()
        return True

    async def _whole(self, answer: WireFormat, text: str, fault: Fault | None, w: asyncio.StreamWriter) -> bool:
        kind = fault.kind if fault is not None else "none"
        headers = {"content-type": "application/json", **answer.sc.headers}
        if fault is not None and kind == "stream_error":  # an error object as a 200 body: no answer in it
            payload = fault.payload if fault.payload is not None else type(answer).stream_error()[1]
            send_json(w, 200, payload, answer.sc.headers)
            return True
        raw = json.dumps(answer.whole(text)).encode()
        if kind in ("stall", "abort"):  # half the promised body, then silence or a closed connection
            w.write(head(200, headers, len(raw)) + raw[: len(raw) // 2])
            await w.drain()
            if kind == "stall":
                await asyncio.sleep(self.plan.stall_s)
            return False
        if kind == "truncated_json":
            raw = raw[: len(raw) // 2]
        w.write(head(200, headers, len(raw)) + raw)
        return True

    # ---- the command line
    def describe(self) -> str:
        p = self.plan
        return (f"(OpenAI base {self.base_url}; faults {p.probabilities or '-'}, sequence {p.sequence or '-'}, "
                f"seed {p.seed})")

    def summary(self) -> str:
        return f"served {sum(self.counts.values())} requests: {dict(sorted(self.counts.items()))}"

    def argv(self) -> list[str]:
        """`workbench mock-server ...` for this script and plan; ValueError for what a command line
        cannot carry (an `answer` function, extra headers, token counts)."""
        sc, p = self.script, self.plan
        args = ["mock-server", f"--ttft-ms={sc.ttft_s * 1000!r}", f"--itl-ms={sc.itl_s * 1000!r}"]
        if len(set(sc.pieces)) == 1:
            args += [f"--n-chunks={len(sc.pieces)}", f"--text={sc.pieces[0]}"]
        else:
            args += [f"--piece={piece}" for piece in sc.pieces]
        if sc.null:
            args.append("--null")
        args += [f"--fault={k}={v!r}" for k, v in p.probabilities.items()]
        if p.sequence:
            args.append(f"--sequence={','.join(p.sequence)}")
        args += [f"--seed={p.seed}", f"--retry-after={p.retry_after_s!r}", f"--slow={p.slow_s!r}",
                 f"--stall={p.stall_s!r}", f"--oversized-chars={p.oversized_chars}", f"--dialect={p.dialect}"]
        if self.log_path is not None:
            args.append(f"--log={self.log_path}")
        if self.transcript is not None:
            args.append(f"--transcript={self.transcript}")
        args += [f"--missing-model={m}" for m in sorted(self.missing_models)]
        args += [f"--model-fields={m}={json.dumps(f)}" for m, f in sorted(self.model_fields.items())]
        parser = argparse.ArgumentParser(allow_abbrev=False)
        add_arguments(parser)
        back = from_args(parser.parse_args(args[1:]))
        same_timing = math.isclose(back.script.ttft_s, sc.ttft_s) and math.isclose(back.script.itl_s, sc.itl_s)
        if not same_timing or dataclasses.replace(back.script, ttft_s=sc.ttft_s, itl_s=sc.itl_s) != sc:
            raise ValueError(f"this script cannot run in a child process: a command line carries timing, "
                             f"pieces, null mode and faults, not {sc}")
        return args


def add_arguments(p: argparse.ArgumentParser) -> None:
    """`workbench mock-server` options."""
    add_host_arguments(p)
    g = p.add_argument_group("answers (times in milliseconds)")
    g.add_argument("--ttft-ms", type=float, default=50.0, help="time to the first piece of the answer")
    g.add_argument("--itl-ms", type=float, default=10.0, help="time between pieces")
    g.add_argument("--n-chunks", type=int, default=8, help="pieces in the answer, each --text")
    g.add_argument("--text", default=" tok", help="the text of each piece")
    g.add_argument("--piece", action="append", help="the answer's pieces in order (repeatable; replaces "
                   "--n-chunks/--text)")
    g.add_argument("--null", action="store_true", help="answer every request at once with a tiny fixed JSON")
    g = p.add_argument_group("faults (times in seconds)")
    g.add_argument("--fault", action="append", metavar="KIND[=PROB]",
                   help=f"inject KIND with probability PROB (default 1); repeatable. Kinds: {', '.join(FAULTS)}")
    g.add_argument("--sequence", help="comma-separated faults for the first requests, in order")
    g.add_argument("--seed", type=int, default=0, help="RNG seed: same seed, same faults")
    g.add_argument("--slow", type=float, default=0.3, help="slow_first_byte delay")
    g.add_argument("--stall", type=float, default=30.0, help="stall length")
    g.add_argument("--retry-after", type=float, default=1.0, help="retry-after of rate_limit")
    g.add_argument("--oversized-chars", type=int, default=1_000_000, help="size of oversized/huge_error")
    g.add_argument("--dialect", choices=list(DIALECTS), default="seed",
                   help="whose error bodies the faults send: the seed's production body, a provider's own "
                   "(openai, anthropic, gemini), or auto (the provider whose route was called)")
    g.add_argument("--log", help="append one JSON line per answer request (text, fault, stream) to this file")
    g = p.add_argument_group("recorded answers")
    g.add_argument("--transcript", help="answer every request with this recorded answer (a stream replayed "
                   "on the timing above, or an error); names: workbench/serve/transcripts/")
    g.add_argument("--missing-model", action="append", metavar="MODEL",
                   help="answer lookups of and requests for MODEL with the provider's real 404 (repeatable)")
    g.add_argument("--model-fields", action="append", metavar="MODEL=JSON", default=[],
                   help='fields of MODEL\'s lookup object, e.g. \'claude-x={"lifecycle": "retired"}\' (repeatable)')


def from_args(args: argparse.Namespace) -> MockServer:
    """The server `workbench mock-server ARGS` runs; ValueError names a bad option."""
    pieces = tuple(args.piece) if args.piece else None
    if pieces is None:
        script = MockScript.timed(args.ttft_ms, args.itl_ms, args.n_chunks, args.text)
    else:
        script = MockScript(ttft_s=args.ttft_ms / 1000, itl_s=args.itl_ms / 1000, pieces=pieces)
    script = dataclasses.replace(script, null=args.null)
    plan = FaultPlan(probabilities=parse_fault_specs(args.fault or []),
                     sequence=[k.strip() for k in (args.sequence or "").split(",") if k.strip()],
                     seed=args.seed, retry_after_s=args.retry_after, slow_s=args.slow, stall_s=args.stall,
                     oversized_chars=args.oversized_chars, dialect=args.dialect)
    return MockServer(script, plan, host=args.host, port=args.port, log_path=args.log,
                      missing_models=args.missing_model or (), transcript=args.transcript,
                      model_fields=_model_fields(args.model_fields))


def _model_fields(specs: Iterable[str]) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for spec in specs:
        model, sep, text = spec.partition("=")
        try:
            fields = json.loads(text) if sep else None
        except ValueError:
            fields = None
        if not model or not isinstance(fields, dict):
            raise ValueError(f"--model-fields {spec!r}: expected MODEL={{JSON object}}")
        out[model] = fields
    return out
