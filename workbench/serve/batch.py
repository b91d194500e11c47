"""The local batch endpoint: OpenAI Batch, Anthropic Message Batches and Gemini Batch Mode over
real models. Run it with `workbench batch-server --upstream URL`.

It speaks the three providers' batch wire formats (the shapes `workbench.measure.batch` documents
and the official SDKs parse: tests/serve/test_batch_server.py drives it with all three) and runs
every item as the synchronous request it wraps against an upstream — by default the embedded
llama-server of the model (`/v1/chat/completions`, `/v1/completions` and Anthropic `/v1/messages`,
all of which llama-server serves), or any OpenAI-, Anthropic- or Gemini-shaped base URL (the mock
server, in tests) — at most `concurrency` items at a time across all batches. So the whole batch
path runs with real answers and a real turnaround, and a test can rehearse what a provider does
over hours in seconds:

- `completion_window_s`: a batch still running that long after it was created expires — items
  not started are `expired` (OpenAI `batch_expired` lines, Anthropic `expired` results, Gemini
  BATCH_STATE_EXPIRED), items running finish;
- cancellation: items not started are cancelled, running ones finish (as the providers do);
- partial failure: an item the upstream fails is that item's error (a fault-injecting mock
  upstream makes some fail), never the batch's;
- limits: a batch over `max_requests` items or `max_bytes` of input is refused with the
  provider's 400, as the providers refuse it (defaults: each provider's documented limits).

Any other request (the synchronous API: `/v1/chat/completions`, `/v1/messages`, ...) is forwarded
to the upstream as it is, streams unbuffered, so one base URL serves a contender's synchronous and
batch calls, as a provider's does.

What it really did is kept in memory (`jobs`: each item's start, end and outcome), for tests and
for comparing the turnaround a client measured with the execution time. State is in memory only;
the endpoint binds the loopback interface only.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import secrets
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from email import policy
from email.parser import BytesParser
from typing import Any

import httpx

from workbench.measure.batch import BatchDialect
from workbench.measure.batch.anthropic import AnthropicBatch
from workbench.measure.batch.gemini import GeminiBatch
from workbench.measure.batch.openai import OpenAIBatch
from workbench.serve.http import (
    LOOPBACK,
    Request,
    Server,
    UpstreamClient,
    add_host_arguments,
    forward,
    head,
    send_json,
)
from workbench.serve.wire import anthropic_error, base_url_for, google_error, openai_error

__all__ = ["BatchServer", "add_arguments", "from_args"]

#: The batch client of each dialect spoken here: its documented limits per batch are the defaults.
_CLIENTS: dict[str, BatchDialect] = {"openai": OpenAIBatch(), "anthropic": AnthropicBatch(), "gemini": GeminiBatch()}
_OPENAI_ENDPOINTS = ("/v1/chat/completions", "/v1/completions", "/v1/responses")
_GEMINI_TYPE = "type.googleapis.com/google.ai.generativelanguage.v1main.GenerateContentBatch"


def _rfc3339(t: float | None) -> str | None:
    if t is None:
        return None
    return dt.datetime.fromtimestamp(t, dt.UTC).isoformat().replace("+00:00", "Z")


def _multipart(body: bytes, content_type: str) -> dict[str, tuple[str | None, bytes]]:
    """Form fields of a multipart/form-data body: name → (filename, bytes)."""
    msg = BytesParser(policy=policy.HTTP).parsebytes(
        b"Content-Type: " + content_type.encode("latin-1") + b"\r\n\r\n" + body)
    out: dict[str, tuple[str | None, bytes]] = {}
    for part in msg.iter_parts():
        name = part.get_param("name", header="content-disposition")
        payload = part.get_payload(decode=True)
        if isinstance(name, str):
            out[name] = (part.get_filename(), payload if isinstance(payload, bytes) else b"")
    return out


@dataclass
class Item:
    """One request of a batch and what became of it."""

    custom_id: str
    url: str | None  # the upstream URL it runs against (None: no upstream for its format)
    body: dict[str, Any]
    outcome: str | None = None  # succeeded | errored | expired | cancelled
    status: int | None = None
    answer: Any = None
    started: float | None = None  # time.monotonic()
    ended: float | None = None


@dataclass
class Job:
    """One batch: its dialect's own fields (`meta`), its items, its clock (unix seconds)."""

    id: str
    dialect: str  # openai | anthropic | gemini
    items: list[Item]
    created: float
    expires: float
    meta: dict[str, Any] = field(default_factory=dict)
    cancel_requested: float | None = None
    ended: float | None = None
    expired: bool = False
    task: asyncio.Task[None] | None = None

    def cancel(self) -> None:
        """Cancel (once): items not started are cancelled, running ones finish."""
        if self.ended is None and self.cancel_requested is None:
            self.cancel_requested = time.time()

    def count(self, outcome: str) -> int:
        return sum(it.outcome == outcome for it in self.items)


def _error_body(dialect: str, status: int, message: str) -> Any:
    """A request error (4xx) or a server error (5xx) in `dialect`'s own body (`serve.wire`'s)."""
    if dialect == "anthropic":
        return anthropic_error("invalid_request_error" if status < 500 else "api_error", message)
    if dialect == "gemini":
        return google_error(status, "INVALID_ARGUMENT" if status < 500 else "INTERNAL", message)
    return openai_error(message, "invalid_request_error", None)


class BatchServer(Server):
    """`with BatchServer(upstream) as srv:` serves on `srv.url`; contenders use `srv.base_url_for(fmt)`."""

    base_path = "/v1"

    def __init__(self, upstream: str, *, anthropic_upstream: str | None = None, gemini_upstream: str | None = None,
                 concurrency: int = 8, completion_window_s: float = 24 * 3600.0, max_requests: int | None = None,
                 max_bytes: int | None = None, upstream_headers: Mapping[str, str] | None = None,
                 timeout_s: float = 600.0, host: str = "127.0.0.1", port: int = 0) -> None:
        if host not in LOOPBACK:
            raise ValueError("the batch endpoint only binds to the loopback interface")
        if concurrency < 1 or completion_window_s <= 0:
            raise ValueError("concurrency must be >= 1 and completion_window_s > 0")
        for url in (upstream, anthropic_upstream, gemini_upstream):
            if url is not None and not url.startswith(("http://", "https://")):
                raise ValueError(f"upstream {url!r} must start with http:// or https://")
        super().__init__(host, port)
        #: upstream base URLs: OpenAI's and Anthropic's end in /v1, Gemini's in /v1beta (None: no Gemini items)
        self.upstream = upstream.rstrip("/")
        self.anthropic_upstream = (anthropic_upstream or upstream).rstrip("/")
        self.gemini_upstream = gemini_upstream.rstrip("/") if gemini_upstream else None
        self.concurrency = concurrency
        self.completion_window_s = completion_window_s
        self.max_requests = max_requests
        self.max_bytes = max_bytes
        self.upstream_headers = dict(upstream_headers or {})
        self.timeout_s = timeout_s
        self.files: dict[str, dict[str, Any]] = {}
        self.contents: dict[str, bytes] = {}
        self.jobs: dict[str, Job] = {}
        self.created = 0  # batches accepted
        self.client = UpstreamClient(max(16, concurrency * 2), timeout_s)
        self._gate: asyncio.Semaphore | None = None

    def base_url_for(self, fmt: str) -> str:
        """The base URL a contender of wire format `fmt` (an api kind) uses for its batches here."""
        return base_url_for(self.url, fmt)

    def limits(self, dialect: str) -> tuple[int, int]:
        client = _CLIENTS[dialect]
        return self.max_requests or client.max_requests, self.max_bytes or client.max_bytes

    # ---- running items
    async def aclose(self) -> None:
        for job in self.jobs.values():
            if job.task is not None and not job.task.done():
                job.task.cancel()
        await self.client.aclose()

    def _start(self, job: Job) -> None:
        self.jobs[job.id] = job
        self.created += 1
        job.task = asyncio.get_running_loop().create_task(self._execute(job))

    async def _execute(self, job: Job) -> None:
        if self._gate is None:
            self._gate = asyncio.Semaphore(self.concurrency)
        gate = self._gate
        loop = asyncio.get_running_loop()
        expiry = loop.call_later(max(0.0, job.expires - time.time()), self._expire, job)

        async def run(item: Item) -> None:
            async with gate:
                if job.cancel_requested is not None:
                    item.outcome = "cancelled"
                    return
                if job.expired or time.time() >= job.expires:
                    job.expired = True
                    item.outcome = "expired"
                    return
                item.started = time.monotonic()
                await self._run_item(job, item)
                item.ended = time.monotonic()

        try:
            await asyncio.gather(*(run(it) for it in job.items))
        finally:
            expiry.cancel()
            job.ended = time.time()
            if job.dialect == "openai":
                self._openai_files(job)

    def _expire(self, job: Job) -> None:
        job.expired = True

    async def _run_item(self, job: Job, item: Item) -> None:
        if item.url is None:
            item.outcome, item.status = "errored", 501
            item.answer = _error_body(job.dialect, 501, f"no {job.dialect} upstream is configured on this batch "
                                      "endpoint")
            return
        try:
            r = await self.client().post(item.url, json=item.body, headers=self.upstream_headers)
        except httpx.HTTPError as exc:
            item.outcome, item.status = "errored", 502
            item.answer = _error_body(job.dialect, 502, f"upstream {item.url}: {exc!r}")
            return
        item.status = r.status_code
        try:
            item.answer = r.json()
        except (json.JSONDecodeError, UnicodeDecodeError):
            item.answer = _error_body(job.dialect, 502, f"upstream answered {r.status_code} with a body that is not "
                                      f"JSON: {r.text[:200]}")
            item.status = 502 if r.status_code < 400 else r.status_code
        item.outcome = "succeeded" if item.status < 400 else "errored"

    # ---- requests
    async def handle(self, req: Request, w: asyncio.StreamWriter) -> bool:
        p, m = req.path, req.method
        try:
            if p == "/v1/files" and m == "POST":
                self._upload(req, w)
            elif p.startswith("/v1/files/") and m == "GET":
                self._file(p.removeprefix("/v1/files/"), w)
            elif p == "/v1/batches" and m == "POST":
                self._openai_create(req, w)
            elif p.startswith("/v1/batches/"):
                self._openai_batch(p.removeprefix("/v1/batches/"), m, w)
            elif p == "/v1/messages/batches" and m == "POST":
                self._anthropic_create(req, w)
            elif p.startswith("/v1/messages/batches/"):
                self._anthropic_batch(p.removeprefix("/v1/messages/batches/"), m, w)
            elif p.startswith("/v1beta/models/") and p.endswith(":batchGenerateContent") and m == "POST":
                self._gemini_create(p.removeprefix("/v1beta/").removesuffix(":batchGenerateContent"), req, w)
            elif p.startswith("/v1beta/batches/"):
                self._gemini_batch(p.removeprefix("/v1beta/"), m, w)
            else:  # not a batch call: the synchronous API, forwarded to the upstream as it is
                return await forward(self.client(), self._upstream_root(p), req, w) is not False
        except (ValueError, KeyError, TypeError) as exc:
            dialect = "anthropic" if "/messages/" in p else "gemini" if p.startswith("/v1beta") else "openai"
            send_json(w, 400, _error_body(dialect, 400, f"invalid request: {exc}"))
        return True

    def _upstream_root(self, path: str) -> str:
        """The upstream a synchronous request on `path` goes to (its root: the path keeps /v1...)."""
        if path.startswith("/v1beta/") and self.gemini_upstream:
            return self.gemini_upstream.removesuffix("/v1beta")
        base = self.anthropic_upstream if path == "/v1/messages" else self.upstream
        return base.removesuffix("/v1")

    def _new_job(self, prefix: str, dialect: str, items: list[Item], **meta: Any) -> Job:
        now = time.time()
        return Job(f"{prefix}{secrets.token_hex(12)}", dialect, items, now, now + self.completion_window_s, dict(meta))

    def _over_limits(self, dialect: str, n: int, size: int, w: asyncio.StreamWriter) -> bool:
        max_n, max_b = self.limits(dialect)
        if n <= max_n and size <= max_b:
            return False
        send_json(w, 400, _error_body(dialect, 400, f"batch of {n} requests and {size} bytes exceeds the limit of "
                                       f"{max_n} requests and {max_b} bytes"))
        return True

    # ---- OpenAI: files and batches
    def _upload(self, req: Request, w: asyncio.StreamWriter) -> None:
        fields = _multipart(req.body, req.headers.get("content-type", ""))
        if "file" not in fields:
            raise ValueError("multipart field 'file' is required")
        filename, data = fields["file"]
        purpose = fields.get("purpose", (None, b"batch"))[1].decode()
        fid = f"file-{secrets.token_hex(12)}"
        self.contents[fid] = data
        self.files[fid] = {"id": fid, "object": "file", "bytes": len(data), "created_at": int(time.time()),
                           "filename": filename or "upload.jsonl", "purpose": purpose, "status": "processed",
                           "expires_at": None, "status_details": None}
        send_json(w, 200, self.files[fid])

    def _file(self, rest: str, w: asyncio.StreamWriter) -> None:
        fid, _, tail = rest.partition("/")
        if fid not in self.files:
            send_json(w, 404, _error_body("openai", 404, f"No such File object: {fid}"))
        elif tail == "content":
            data = self.contents[fid]
            w.write(head(200, {"content-type": "application/octet-stream"}, len(data)) + data)
        else:
            send_json(w, 200, self.files[fid])

    def _openai_create(self, req: Request, w: asyncio.StreamWriter) -> None:
        body = json.loads(req.body or b"{}")
        fid, endpoint = body.get("input_file_id"), body.get("endpoint")
        if fid not in self.contents:
            send_json(w, 404, _error_body("openai", 404, f"No such File object: {fid}"))
            return
        if endpoint not in _OPENAI_ENDPOINTS or body.get("completion_window") != "24h":
            raise ValueError(f"endpoint must be one of {', '.join(_OPENAI_ENDPOINTS)} and completion_window '24h'")
        data = self.contents[fid]
        lines = [json.loads(line) for line in data.decode().splitlines() if line.strip()]
        if self._over_limits("openai", len(lines), len(data), w):
            return
        errors = [{"code": "invalid_request", "line": i + 1, "message": "each line needs a custom_id, method POST and "
                   f"url {endpoint}", "param": None}
                  for i, o in enumerate(lines) if not o.get("custom_id") or o.get("method") != "POST"
                  or o.get("url") != endpoint or not isinstance(o.get("body"), dict)]
        if len({o.get("custom_id") for o in lines}) != len(lines):
            errors.append({"code": "duplicate_custom_id", "line": None, "message": "custom_id values must be unique",
                           "param": None})
        upstream = self.upstream + str(endpoint).removeprefix("/v1")
        items = [Item(str(o.get("custom_id")), upstream, o.get("body") or {}) for o in lines]
        job = self._new_job("batch_", "openai", [] if errors else items, endpoint=endpoint, input_file_id=fid,
                            metadata=body.get("metadata"), errors=errors or None, total=len(lines))
        if errors:  # validation failed: the batch exists, with status failed and why
            job.ended = job.created
            self.jobs[job.id] = job
            self.created += 1
        else:
            self._start(job)
        send_json(w, 200, self._openai_object(job))

    def _openai_status(self, job: Job) -> str:
        if job.meta.get("errors"):
            return "failed"
        if job.ended is None:
            return "cancelling" if job.cancel_requested is not None else "in_progress"
        if job.cancel_requested is not None:
            return "cancelled"
        return "expired" if job.count("expired") else "completed"

    def _openai_object(self, job: Job) -> dict[str, Any]:
        status = self._openai_status(job)
        done = job.count("succeeded")
        created, ended = int(job.created), int(job.ended) if job.ended is not None else None
        return {
            "id": job.id, "object": "batch", "endpoint": job.meta["endpoint"], "model": None,
            "errors": {"object": "list", "data": job.meta["errors"]} if job.meta.get("errors") else None,
            "input_file_id": job.meta["input_file_id"], "completion_window": "24h", "status": status,
            "output_file_id": job.meta.get("output_file_id"), "error_file_id": job.meta.get("error_file_id"),
            "created_at": created, "in_progress_at": created if status != "failed" else None,
            "expires_at": int(job.expires), "finalizing_at": ended if status in ("completed", "expired") else None,
            "completed_at": ended if status == "completed" else None,
            "failed_at": ended if status == "failed" else None,
            "expired_at": ended if status == "expired" else None,
            "cancelling_at": int(job.cancel_requested) if job.cancel_requested is not None else None,
            "cancelled_at": ended if status == "cancelled" else None,
            "request_counts": {"total": int(job.meta.get("total", len(job.items))), "completed": done,
                               "failed": job.count("errored")},
            "metadata": job.meta.get("metadata"),
        }

    def _openai_files(self, job: Job) -> None:
        """The output file (answers) and the error file (failed, expired, cancelled requests)."""
        ok: list[str] = []
        bad: list[str] = []
        for it in job.items:
            line: dict[str, Any] = {"id": f"batch_req_{secrets.token_hex(12)}", "custom_id": it.custom_id,
                                    "response": None, "error": None}
            if it.outcome in ("succeeded", "errored"):
                line["response"] = {"status_code": it.status, "request_id": secrets.token_hex(16), "body": it.answer}
            elif it.outcome == "expired":
                line["error"] = {"code": "batch_expired",
                                 "message": "This request could not be executed before the completion window expired."}
            else:
                line["error"] = {"code": "batch_cancelled",
                                 "message": "This request could not be executed before the batch was cancelled."}
            (ok if it.outcome == "succeeded" else bad).append(json.dumps(line))
        for key, lines in (("output_file_id", ok), ("error_file_id", bad)):
            if not lines:
                continue
            fid = f"file-{secrets.token_hex(12)}"
            data = ("\n".join(lines) + "\n").encode()
            self.contents[fid] = data
            self.files[fid] = {"id": fid, "object": "file", "bytes": len(data), "created_at": int(time.time()),
                               "filename": f"{job.id}_{key.split('_')[0]}.jsonl", "purpose": "batch_output",
                               "status": "processed", "expires_at": None, "status_details": None}
            job.meta[key] = fid

    def _job(self, bid: str, dialect: str, w: asyncio.StreamWriter, not_found: Any) -> Job | None:
        """The batch `bid` if it exists in this dialect; else the dialect's 404 body is sent and None returned."""
        job = self.jobs.get(bid)
        if job is None or job.dialect != dialect:
            send_json(w, 404, not_found)
            return None
        return job

    def _openai_batch(self, rest: str, method: str, w: asyncio.StreamWriter) -> None:
        bid, _, action = rest.partition("/")
        job = self._job(bid, "openai", w, _error_body("openai", 404, f"No such Batch object: {bid}"))
        if job is None:
            return
        if action == "cancel" and method == "POST":
            job.cancel()
        send_json(w, 200, self._openai_object(job))

    # ---- Anthropic: message batches
    def _anthropic_create(self, req: Request, w: asyncio.StreamWriter) -> None:
        body = json.loads(req.body or b"{}")
        requests = body.get("requests")
        if not isinstance(requests, list) or not requests:
            raise ValueError("requests: a non-empty list is required")
        if self._over_limits("anthropic", len(requests), len(req.body), w):
            return
        ids = [str(r.get("custom_id")) for r in requests]
        if len(set(ids)) != len(ids):
            raise ValueError("custom_id values must be unique within the batch")
        url = self.anthropic_upstream + "/messages"
        items = [Item(str(r["custom_id"]), url, dict(r["params"])) for r in requests]
        job = self._new_job("msgbatch_", "anthropic", items)
        self._start(job)
        send_json(w, 200, self._anthropic_object(job))

    def _anthropic_object(self, job: Job) -> dict[str, Any]:
        ended = job.ended is not None
        counts = {"processing": 0 if ended else len(job.items), "succeeded": job.count("succeeded") if ended else 0,
                  "errored": job.count("errored") if ended else 0, "canceled": job.count("cancelled") if ended else 0,
                  "expired": job.count("expired") if ended else 0}
        return {"id": job.id, "type": "message_batch",
                "processing_status": "ended" if ended else "canceling" if job.cancel_requested else "in_progress",
                "request_counts": counts, "ended_at": _rfc3339(job.ended), "created_at": _rfc3339(job.created),
                "expires_at": _rfc3339(job.expires), "cancel_initiated_at": _rfc3339(job.cancel_requested),
                "archived_at": None,
                "results_url": f"{self.url}/v1/messages/batches/{job.id}/results" if ended else None}

    def _anthropic_batch(self, rest: str, method: str, w: asyncio.StreamWriter) -> None:
        bid, _, action = rest.partition("/")
        job = self._job(bid, "anthropic", w, anthropic_error("not_found_error", f"No such message batch: {bid}"))
        if job is None:
            return
        if action == "cancel" and method == "POST":
            job.cancel()
        elif action == "results":
            if job.ended is None:
                send_json(w, 400, _error_body("anthropic", 400, f"message batch {bid} has not ended"))
                return
            data = "".join(json.dumps({"custom_id": it.custom_id, "result": self._anthropic_result(it)}) + "\n"
                           for it in job.items).encode()
            w.write(head(200, {"content-type": "application/binary"}, len(data)) + data)
            return
        send_json(w, 200, self._anthropic_object(job))

    @staticmethod
    def _anthropic_result(it: Item) -> dict[str, Any]:
        if it.outcome == "succeeded":
            return {"type": "succeeded", "message": it.answer}
        if it.outcome == "errored":
            err = it.answer if isinstance(it.answer, dict) and it.answer.get("type") == "error" else \
                _error_body("anthropic", it.status or 500, json.dumps(it.answer)[:500])
            return {"type": "errored", "error": err}
        return {"type": "expired" if it.outcome == "expired" else "canceled"}

    # ---- Gemini: batch mode
    def _gemini_create(self, model: str, req: Request, w: asyncio.StreamWriter) -> None:
        body = json.loads(req.body or b"{}")
        batch = body.get("batch") or {}
        inline = ((batch.get("inputConfig") or {}).get("requests") or {}).get("requests")
        if not isinstance(inline, list) or not inline:
            raise ValueError("batch.inputConfig.requests.requests: a non-empty list is required")
        if self._over_limits("gemini", len(inline), len(req.body), w):
            return
        base = self.gemini_upstream
        url = f"{base}/{model}:generateContent" if base else None
        items = [Item(str((r.get("metadata") or {}).get("key", i)), url, dict(r.get("request") or {}))
                 for i, r in enumerate(inline)]
        for it in items:
            it.body.pop("model", None)
        job = self._new_job("batches/", "gemini", items, model=model, display_name=batch.get("displayName"),
                            keys=[r.get("metadata") for r in inline])
        self._start(job)
        send_json(w, 200, self._gemini_object(job))

    def _gemini_state(self, job: Job) -> str:
        if job.ended is None:
            return "BATCH_STATE_RUNNING"
        if job.cancel_requested is not None:
            return "BATCH_STATE_CANCELLED"
        return "BATCH_STATE_EXPIRED" if job.count("expired") else "BATCH_STATE_SUCCEEDED"

    def _gemini_object(self, job: Job) -> dict[str, Any]:
        state = self._gemini_state(job)
        meta: dict[str, Any] = {
            "@type": _GEMINI_TYPE, "model": job.meta["model"], "displayName": job.meta.get("display_name"),
            "name": job.id, "state": state, "createTime": _rfc3339(job.created),
            "updateTime": _rfc3339(job.ended or time.time()), "endTime": _rfc3339(job.ended),
            "batchStats": {"requestCount": str(len(job.items)),
                           "successfulRequestCount": str(job.count("succeeded")),
                           "failedRequestCount": str(job.count("errored")),
                           "pendingRequestCount": str(sum(it.outcome is None for it in job.items))},
        }
        out: dict[str, Any] = {"name": job.id, "metadata": meta, "done": job.ended is not None}
        if job.ended is not None:
            answers = []
            for it, key in zip(job.items, job.meta["keys"], strict=True):
                if it.outcome == "succeeded":
                    answers.append({"response": it.answer, "metadata": key})
                elif it.outcome == "errored":
                    err = it.answer.get("error") if isinstance(it.answer, dict) and "error" in it.answer else \
                        _error_body("gemini", it.status or 500, json.dumps(it.answer)[:500])["error"]
                    answers.append({"error": err, "metadata": key})
            inlined = {"inlinedResponses": {"inlinedResponses": answers}}
            meta["output"] = inlined
            out["response"] = {"@type": _GEMINI_TYPE + "Output", **inlined}
        return out

    def _gemini_batch(self, rest: str, method: str, w: asyncio.StreamWriter) -> None:
        bid, _, action = rest.partition(":")
        job = self._job(bid, "gemini", w, _error_body("gemini", 404, f"Batch {bid} not found"))
        if job is None:
            return
        if action == "cancel" and method == "POST":
            job.cancel()
            send_json(w, 200, {})
            return
        send_json(w, 200, self._gemini_object(job))

    # ---- the command line
    def describe(self) -> str:
        return (f"(batches of OpenAI /v1/batches, Anthropic /v1/messages/batches, Gemini /v1beta; upstream "
                f"{self.upstream}, {self.concurrency} at a time)")

    def summary(self) -> str:
        items = [it for j in self.jobs.values() for it in j.items]
        counts: dict[str, int] = {}
        for it in items:
            counts[str(it.outcome)] = counts.get(str(it.outcome), 0) + 1
        return f"{self.created} batches, {len(items)} items: {dict(sorted(counts.items()))}"

    def argv(self) -> list[str]:
        args = ["batch-server", f"--upstream={self.upstream}", f"--concurrency={self.concurrency}",
                f"--completion-window={self.completion_window_s!r}"]
        if self.anthropic_upstream != self.upstream:
            args.append(f"--anthropic-upstream={self.anthropic_upstream}")
        if self.gemini_upstream:
            args.append(f"--gemini-upstream={self.gemini_upstream}")
        if self.max_requests:
            args.append(f"--max-requests={self.max_requests}")
        if self.max_bytes:
            args.append(f"--max-bytes={self.max_bytes}")
        args += [f"--upstream-header={k}: {v}" for k, v in self.upstream_headers.items()]
        return args


def add_arguments(p: argparse.ArgumentParser) -> None:
    """`workbench batch-server` options."""
    add_host_arguments(p)
    p.add_argument("--upstream", required=True, help="OpenAI-shaped base URL the items run against, e.g. an "
                   "embedded model's http://127.0.0.1:PORT/v1 (also Anthropic's unless --anthropic-upstream)")
    p.add_argument("--anthropic-upstream", help="base URL for Anthropic items (POST {url}/messages)")
    p.add_argument("--gemini-upstream", help="base URL for Gemini items (POST {url}/models/M:generateContent)")
    p.add_argument("--concurrency", type=int, default=8, help="items run at once, across all batches")
    p.add_argument("--completion-window", type=float, default=24 * 3600.0,
                   help="seconds after creation at which a batch expires (the providers': 24 h)")
    p.add_argument("--max-requests", type=int, help="requests per batch (default: each provider's limit)")
    p.add_argument("--max-bytes", type=int, help="bytes of input per batch (default: each provider's limit)")
    p.add_argument("--upstream-header", action="append", default=[], metavar="'NAME: VALUE'",
                   help="header sent with every upstream request (repeatable)")


def from_args(args: argparse.Namespace) -> BatchServer:
    headers = dict(h.split(":", 1) for h in args.upstream_header)
    return BatchServer(args.upstream, anthropic_upstream=args.anthropic_upstream,
                       gemini_upstream=args.gemini_upstream, concurrency=args.concurrency,
                       completion_window_s=args.completion_window, max_requests=args.max_requests,
                       max_bytes=args.max_bytes, upstream_headers={k.strip(): v.strip() for k, v in headers.items()},
                       host=args.host, port=args.port)
