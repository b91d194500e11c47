"""The batch runner every dialect shares: split, submit, journal, poll with backoff, fetch, one
record per document.

A document goes out as one item of a provider batch — the same JSON body its synchronous request
would carry (the provider's `build_request(stream=False)`), so the prompt, sampling and model are
the contender's exactly. What happens to it:

1. **Split.** Items are cut, in order, into batches within the dialect's documented limits
   (requests and bytes per batch; `limits=` overrides them for a rehearsal). An item larger than
   the byte limit on its own is never sent: it is an error record (`bad_request`).
2. **Submit**, and journal the submission at once (`BatchJournal`: one flushed JSON line with the
   batch id, its documents and the submission time) — before any polling, so a run killed after
   submitting can be resumed.
3. **Poll** the batch's status, first after `poll_s`, then 1.5× longer each time up to
   `poll_max_s`. A status call that fails with a retryable error (rate limit, 5xx, connection) is
   polled again; a non-retryable one (auth, not found) ends the batch as that error.
4. **Bounded**: `max_wait_s` after the submission the batch is cancelled; what it finished is
   fetched, and every document it did not is a `cancelled` record saying so. The cancel gets
   `cancel_grace_s` to end the batch; a provider still cancelling then leaves its documents
   `cancelled` too (their answers, if any, are not waited for).
5. **Fetch** the results and write one record per document through `write` (the session's record
   writer): the answer, tokens (`workbench.measure.probe.finish_record`, as for any request), the
   batch id, submitted/ended times, the item's outcome (succeeded, errored, expired, cancelled).

**Resumable.** Batches are cut the same way on every run (same documents, same order, same
limits), and each is journalled under a key made from its contender and documents. A resumed run
finds the key in the journal and polls that batch id instead of submitting again; documents that
already have a record (`done_ids`, e.g. `Session.completed_ids()`) are not written twice, and a
batch whose documents are all recorded is not even polled.

Times on a batch record (wall clock, `time.time()`, because a resumed run is another process):
`t_start_unix` = the batch's submission, `e2e_s` = submission → its results fetched (the
document's **turnaround**: what it waited for its answer, polling granularity included, at most
the poll interval). No TTFT: batch answers are not streamed. Extra fields: `batch_api` (true),
`batch_dialect`, `batch_id`, `batch_items` (documents in that batch), `batch_submitted_unix`,
`batch_ended_unix` (when the client saw it end), `batch_turnaround_s`, `batch_state` (the
provider's final word), `batch_outcome`, `batch_resumed`.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import re
import time
from collections.abc import Callable, Container, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import httpx

from workbench.measure.probe import fail_record, finish_record
from workbench.measure.transport_errors import decode_body, error_from_exception
from workbench.providers import provider_for
from workbench.providers.base import ResponseError
from workbench.results import RecordWriter, read_jsonl_tolerant
from workbench.types import ErrorClass, ErrorInfo, Prompt, Record

if TYPE_CHECKING:
    from workbench.measure.target import Target

__all__ = [
    "BatchAPIError",
    "BatchDialect",
    "BatchItem",
    "BatchJournal",
    "BatchStatus",
    "ItemResult",
    "NoBatchAPI",
    "build_items",
    "call",
    "custom_id",
    "headers",
    "run_batch",
    "split_items",
]

#: Room kept under a byte limit for the envelope around the items (JSON brackets, file headers).
_ENVELOPE_BYTES = 4096
_CUSTOM_ID = re.compile(r"[^A-Za-z0-9_-]")


class BatchAPIError(Exception):
    """A batch call (submit, status, cancel, results) failed; `info` is the typed error."""

    def __init__(self, info: ErrorInfo) -> None:
        super().__init__(info.message)
        self.info = info


#: HTTP statuses of a submission whose route the endpoint does not have (not found, method not
#: allowed, not implemented): a plain OpenAI-compatible server (llama.cpp, vLLM, TGI, Ollama)
#: answers `POST /v1/files` with 404 "File Not Found".
_NO_ROUTE = frozenset({404, 405, 501})


class NoBatchAPI(BatchAPIError):
    """The endpoint has no batch API: the first submission's route is not there (`_NO_ROUTE`,
    and not the provider saying the model is unknown). `run_batch` raises it before writing any
    record — the documents were never sent, so there is nothing to count as failed; the caller
    skips its batch arm and says why (`message`)."""

    def __init__(self, info: ErrorInfo, endpoint: str, dialect: str) -> None:
        super().__init__(info)
        self.endpoint = endpoint
        self.message = (f"{endpoint} has no batch API (its {dialect} batch route answered HTTP {info.http_status}: "
                        f"{info.message})")

    def __str__(self) -> str:
        return self.message

    @staticmethod
    def matches(info: ErrorInfo) -> bool:
        """Whether a failed submission says the route is missing rather than anything else."""
        return info.http_status in _NO_ROUTE and info.error_class is not ErrorClass.MODEL_NOT_FOUND


def headers(target: Target, api_key: str | None) -> dict[str, str]:
    """A batch call's headers: the provider's own (`Provider.headers`: its version, the
    contender's extra headers, the key), then the target's transport headers, as the probe sends them."""
    return {**provider_for(target.contender).headers(target.contender, api_key), **target.headers}


async def call(client: httpx.AsyncClient, target: Target, api_key: str | None, method: str, url: str, what: str,
               **kwargs: Any) -> httpx.Response:
    """One batch API call of `target`'s provider, with its `headers`. A transport failure or an
    HTTP error status is a `BatchAPIError`: the former typed as the probe types it
    (`workbench.measure.transport_errors`; a timeout, a lost connection or a broken response is
    retryable: the poller tries again), the latter by the provider's own error rules
    (`Provider.classify_error`)."""
    try:
        r = await client.request(method, url, headers=headers(target, api_key), **kwargs)
    except httpx.HTTPError as exc:
        info = error_from_exception(exc, url, client.timeout.read)
        info.message = f"{what}: {info.message}"
        raise BatchAPIError(info) from None
    if r.status_code >= 400:
        info = provider_for(target.contender).classify_error(r.status_code, decode_body(r.content), r.headers)
        info.message = f"{what}: {info.message}"
        info.http_status = r.status_code
        raise BatchAPIError(info)
    return r


def custom_id(index: int, request_id: str) -> str:
    """A wire id every dialect accepts (Anthropic: `[A-Za-z0-9_-]{1,64}`), unique by its index."""
    tail = _CUSTOM_ID.sub("_", request_id)[-48:]
    return f"d{index:06d}-{tail}"


@dataclass(frozen=True, slots=True)
class BatchItem:
    """One document as a batch item."""

    custom_id: str
    request_id: str
    prompt: Prompt
    body: dict[str, Any]  # the synchronous request's JSON body, not streamed
    url: str  # the synchronous request's URL (the OpenAI dialect names the endpoint from it)
    wire: dict[str, Any]  # the item as the dialect's batch input carries it
    size: int  # bytes of `wire` in the batch input
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(slots=True)
class ItemResult:
    """What a batch said about one item: its response body, or a typed error."""

    custom_id: str
    body: Any = None
    error: ErrorInfo | None = None
    outcome: str = "succeeded"  # succeeded | errored | expired | cancelled


@dataclass(slots=True)
class BatchStatus:
    """A batch as last polled: the provider's state word, whether processing ended, its counts."""

    batch_id: str
    state: str
    ended: bool
    counts: dict[str, int] = field(default_factory=dict)
    raw: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_object(cls, batch_id: str, obj: dict[str, Any], state_key: str, ended: Container[str]) -> BatchStatus:
        """A polled batch object that carries `request_counts` (OpenAI's and Anthropic's)."""
        state = str(obj.get(state_key))
        counts = {k: int(v) for k, v in (obj.get("request_counts") or {}).items() if isinstance(v, int)}
        return cls(batch_id, state, state in ended, counts, obj)


class BatchDialect(Protocol):
    """One provider's batch API. Calls raise `BatchAPIError` with the typed error when they fail."""

    name: str
    #: Documented limits per batch (requests, bytes of input).
    max_requests: int
    max_bytes: int
    #: The completion window the provider promises, hours, and where that is written.
    completion_window_h: float
    window_source: str

    def wire_item(self, cid: str, body: dict[str, Any], url: str, base_url: str) -> dict[str, Any]: ...

    async def submit(self, client: httpx.AsyncClient, target: Target, items: Sequence[BatchItem],
                     api_key: str | None) -> str: ...

    async def status(self, client: httpx.AsyncClient, target: Target, batch_id: str,
                     api_key: str | None) -> BatchStatus: ...

    async def cancel(self, client: httpx.AsyncClient, target: Target, batch_id: str, api_key: str | None) -> None: ...

    async def results(self, client: httpx.AsyncClient, target: Target, status: BatchStatus,
                      items: Sequence[BatchItem], api_key: str | None) -> list[ItemResult]: ...


def json_size(obj: Any) -> int:
    """Bytes of `obj` as compact JSON (what a JSONL line or an array element costs)."""
    return len(json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode()) + 1


def build_items(dialect: BatchDialect, target: Target, prompts: Sequence[Prompt], request_ids: Sequence[str],
                extras: Sequence[Mapping[str, Any]] | None = None) -> list[BatchItem]:
    """Each prompt's synchronous request body, wrapped as the dialect's batch item."""
    if len(prompts) != len(request_ids):
        raise ValueError("one request id per prompt")
    provider = provider_for(target.contender)
    out = []
    for i, (prompt, rid) in enumerate(zip(prompts, request_ids, strict=True)):
        req = provider.build_request(target.contender, prompt, stream=False, api_key=None, base_url=target.base_url)
        cid = custom_id(i, rid)
        wire = dialect.wire_item(cid, req.json, req.url, target.base_url)
        out.append(BatchItem(cid, rid, prompt, req.json, req.url, wire, json_size(wire),
                             dict(extras[i]) if extras is not None else {}))
    return out


def split_items(items: Sequence[BatchItem], max_requests: int, max_bytes: int
                ) -> tuple[list[list[BatchItem]], list[BatchItem]]:
    """(batches, items too large to send): in order, each batch within both limits."""
    if max_requests < 1 or max_bytes < 1:
        raise ValueError("limits must be >= 1")
    room = max(1, max_bytes - _ENVELOPE_BYTES) if max_bytes > 2 * _ENVELOPE_BYTES else max_bytes
    batches: list[list[BatchItem]] = []
    too_big: list[BatchItem] = []
    cur: list[BatchItem] = []
    size = 0
    for item in items:
        if item.size > room:
            too_big.append(item)
            continue
        if cur and (len(cur) >= max_requests or size + item.size > room):
            batches.append(cur)
            cur, size = [], 0
        cur.append(item)
        size += item.size
    if cur:
        batches.append(cur)
    return batches, too_big


class BatchJournal:
    """Submitted batches of one experiment, one flushed JSON line each: what a resume reads.

    One file per experiment (the coalescing experiment's: `<run>/batches/coalescing.jsonl`):
    `{"event": "submitted", "key", "batch_id", "dialect", "contender", "request_ids",
    "t_submit_unix"}` as soon as a batch is accepted, `{"event": "ended", "key", "batch_id",
    "state", "t_end_unix"}` once its records are written."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    def submitted(self) -> dict[str, dict[str, Any]]:
        """Batch key → its submission line (the latest, if a key was submitted twice)."""
        if not self.path.exists():
            return {}
        return {str(o["key"]): o for o in read_jsonl_tolerant(self.path) if o.get("event") == "submitted"}

    def append(self, entry: Mapping[str, Any]) -> None:
        w = RecordWriter(self.path)
        try:
            w.write(entry)
        finally:
            w.close()


def batch_key(contender: str, items: Iterable[BatchItem]) -> str:
    h = hashlib.sha256(contender.encode())
    for it in items:
        h.update(b"\0" + it.request_id.encode())
    return h.hexdigest()[:24]


@dataclass
class _Run:
    """One batch's life in this process."""

    key: str
    items: list[BatchItem]
    batch_id: str | None = None
    t_submit: float = 0.0
    resumed: bool = False
    status: BatchStatus | None = None
    t_end: float | None = None
    error: ErrorInfo | None = None
    cancelled_at_deadline: bool = False
    note: str = ""


def _base_record(target: Target, item: BatchItem, dialect: BatchDialect) -> Record:
    return target.record(item.request_id, item.prompt, {**item.extra, "batch_api": True,
                                                        "batch_dialect": dialect.name}, stream=False)


def _to_record(target: Target, dialect: BatchDialect, run: _Run, item: BatchItem, res: ItemResult | None,
               t_fetched: float, api_key: str | None) -> Record:
    rec = _base_record(target, item, dialect)
    rec.t_start_unix = run.t_submit
    rec.e2e_s = max(0.0, t_fetched - run.t_submit)
    rec.extra.update({
        "batch_id": run.batch_id, "batch_items": len(run.items), "batch_submitted_unix": run.t_submit,
        "batch_ended_unix": run.t_end, "batch_turnaround_s": rec.e2e_s,
        "batch_state": run.status.state if run.status is not None else None, "batch_resumed": run.resumed,
    })
    if run.error is not None and res is None:
        rec.extra["batch_outcome"] = "errored"
        fail_record(rec, run.error)
        return rec
    if res is None:
        why = run.note or "the batch ended without a result for this document"
        res = ItemResult(item.custom_id, error=ErrorInfo(ErrorClass.CANCELLED, why), outcome="cancelled")
    rec.extra["batch_outcome"] = res.outcome
    provider = provider_for(target.contender)
    err, text, usage, finish, timings, refusal = res.error, "", None, None, None, None
    if err is None:
        try:
            completion = provider.parse_response(res.body)
        except ResponseError as exc:  # a result body that reports its own failure: typed by its code
            err = exc.info
            rec.extra["batch_outcome"] = "errored"
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            err = ErrorInfo(ErrorClass.PROTOCOL, f"unreadable batch result: {exc}")
            rec.extra["batch_outcome"] = "errored"
        else:
            text, usage, finish, timings = completion.text, completion.usage, completion.finish_reason, \
                completion.timings
            refusal = completion.refusal
    kept = text[: max(0, target.max_output_chars)]
    return finish_record(rec, target.contender, item.prompt, text=kept, full_chars=len(text), finish=finish,
                         usage=usage, timings=timings, err=err, api_key=api_key, refusal=refusal)


async def _poll(client: httpx.AsyncClient, target: Target, dialect: BatchDialect, run: _Run, api_key: str | None, *,
                max_wait_s: float, poll_s: float, poll_max_s: float, cancel_grace_s: float) -> None:
    assert run.batch_id is not None
    deadline = run.t_submit + max_wait_s
    interval = poll_s
    cancel_by: float | None = None
    while True:
        try:
            run.status = await dialect.status(client, target, run.batch_id, api_key)
        except BatchAPIError as exc:
            if not exc.info.retryable:
                run.error = exc.info
                return
        if run.status is not None and run.status.ended:
            return
        now = time.time()
        if cancel_by is None and now >= deadline:
            run.cancelled_at_deadline = True
            run.note = (f"not finished within max_wait_s={max_wait_s:g} s: the workbench cancelled batch "
                        f"{run.batch_id}")
            try:
                await dialect.cancel(client, target, run.batch_id, api_key)
            except BatchAPIError as exc:
                run.note += f" (cancel failed: {exc.info.message})"
                return
            cancel_by = now + cancel_grace_s
            interval = poll_s
            continue
        if cancel_by is not None and now >= cancel_by:
            run.note += f"; still cancelling after {cancel_grace_s:g} s, its answers not waited for"
            return
        until = cancel_by if cancel_by is not None else deadline
        await asyncio.sleep(max(0.0, min(interval, until - now)) or min(interval, 0.01))
        interval = min(interval * 1.5, poll_max_s)


async def run_batch(
    client: httpx.AsyncClient,
    target: Target,
    dialect: BatchDialect,
    prompts: Sequence[Prompt],
    request_ids: Sequence[str],
    *,
    write: Callable[[Record], None],
    extras: Sequence[Mapping[str, Any]] | None = None,
    journal: BatchJournal | None = None,
    done_ids: Iterable[str] = (),
    max_wait_s: float = 24 * 3600.0,
    poll_s: float = 5.0,
    poll_max_s: float = 60.0,
    cancel_grace_s: float = 60.0,
    limits: tuple[int, int] | None = None,
) -> list[Record]:
    """Send `prompts` through the batch API of `dialect` at `target`; one record per document
    (written through `write` as each batch's results are read, and returned). See the module
    docstring for splitting, polling, `max_wait_s` and resuming. Never raises for a failed batch
    call: those are typed records — except `NoBatchAPI`, when the endpoint has no batch route at
    all (nothing was sent, nothing is recorded)."""
    if max_wait_s <= 0 or poll_s <= 0 or poll_max_s < poll_s:
        raise ValueError("max_wait_s and poll_s must be > 0, poll_max_s >= poll_s")
    items = build_items(dialect, target, prompts, request_ids, extras)
    done = set(done_ids)
    api_key = target.contender.api_key()
    out: list[Record] = []

    def emit(rec: Record) -> None:
        if rec.request_id in done:
            return
        done.add(rec.request_id)
        write(rec)
        out.append(rec)

    if target.budget is not None:
        items, write = _admit_within_budget(target, dialect, items, done, emit, write)
    max_requests, max_bytes = limits or (dialect.max_requests, dialect.max_bytes)
    batches, too_big = split_items(items, max_requests, max_bytes)
    for item in too_big:
        emit(_too_big_record(target, dialect, item, max_bytes))
    known = journal.submitted() if journal is not None else {}
    runs = [_Run(batch_key(target.contender.name, b), b) for b in batches]
    runs = [r for r in runs if any(it.request_id not in done for it in r.items)]

    async def one(run: _Run) -> None:
        if run.batch_id is None and run.error is None:
            await _submit(client, target, dialect, run, api_key, known, journal)
        await _poll_and_record(client, target, dialect, run, api_key, journal, emit, max_wait_s=max_wait_s,
                               poll_s=poll_s, poll_max_s=poll_max_s, cancel_grace_s=cancel_grace_s)

    # The first new submission goes alone: an endpoint without a batch API says so there, before
    # any document is recorded or any other batch tried.
    first = next((r for r in runs if r.key not in known), None)
    if first is not None:
        await _submit(client, target, dialect, first, api_key, known, journal)
        if first.error is not None and NoBatchAPI.matches(first.error):
            raise NoBatchAPI(first.error, target.base_url, dialect.name)
    await asyncio.gather(*(one(r) for r in runs))
    return out


def _admit_within_budget(
    target: Target, dialect: BatchDialect, items: list[BatchItem], done: Container[str],
    emit: Callable[[Record], None], write: Callable[[Record], None],
) -> tuple[list[BatchItem], Callable[[Record], None]]:
    """The items the run's spend budget admits, and `write` wrapped to settle each one's hold.

    Every admitted item's worst case is held until its result is in; an item the budget refuses
    is a cancelled record (through `emit`), never submitted. A result is charged at the list
    price: above the batch rate, so a bound."""
    from workbench.measure.budget import estimate_input_tokens

    budget = target.budget
    assert budget is not None
    c = target.contender
    admitted: list[BatchItem] = []
    held: dict[str, float] = {}
    for item in items:
        if item.request_id in done:
            admitted.append(item)
            continue
        hold = budget.reserve(c.name, estimate_input_tokens(c, item.prompt), c.wire_max_tokens)
        if hold is not None:
            admitted.append(item)
            held[item.request_id] = hold
            continue
        rec = _base_record(target, item, dialect)
        rec.status, rec.error_class, rec.error_message = "error", ErrorClass.CANCELLED.value, budget.message()
        emit(rec)

    def charged_write(rec: Record) -> None:
        budget.release(held.pop(rec.request_id, 0.0))
        budget.charge(rec)
        write(rec)

    return admitted, charged_write


def _too_big_record(target: Target, dialect: BatchDialect, item: BatchItem, max_bytes: int) -> Record:
    """The record of an item larger than a whole batch may be: refused here, never sent."""
    rec = _base_record(target, item, dialect)
    rec.extra["batch_outcome"] = "errored"
    fail_record(rec, ErrorInfo(ErrorClass.BAD_REQUEST, f"item of {item.size} bytes exceeds the {dialect.name} "
                               f"batch limit of {max_bytes} bytes: not sent"))
    return rec


async def _submit(client: httpx.AsyncClient, target: Target, dialect: BatchDialect, run: _Run,
                  api_key: str | None, known: Mapping[str, Mapping[str, Any]],
                  journal: BatchJournal | None) -> None:
    """Submit `run` (or take its batch id from the journal of an earlier process), journalling the
    submission; a failure is left on `run.error`."""
    entry = known.get(run.key)
    if entry is not None:
        run.batch_id, run.t_submit, run.resumed = str(entry["batch_id"]), float(entry["t_submit_unix"]), True
        return
    run.t_submit = time.time()
    try:
        run.batch_id = await dialect.submit(client, target, run.items, api_key)
    except BatchAPIError as exc:
        run.error = exc.info
    except (KeyError, TypeError, ValueError) as exc:  # a 2xx answer that is not a batch
        run.error = ErrorInfo(ErrorClass.PROTOCOL, f"the answer to the {dialect.name} batch submission at "
                              f"{target.base_url} names no batch ({type(exc).__name__}: {exc})")
    else:
        if journal is not None:
            journal.append({"event": "submitted", "key": run.key, "batch_id": run.batch_id,
                            "dialect": dialect.name, "contender": target.contender.name,
                            "request_ids": [it.request_id for it in run.items],
                            "t_submit_unix": run.t_submit})


async def _poll_and_record(
    client: httpx.AsyncClient, target: Target, dialect: BatchDialect, run: _Run, api_key: str | None,
    journal: BatchJournal | None, emit: Callable[[Record], None], *,
    max_wait_s: float, poll_s: float, poll_max_s: float, cancel_grace_s: float,
) -> None:
    """Wait for a submitted batch to end, read its results and emit one record per document (a
    typed error for each one the batch did not answer); journal its end."""
    results: dict[str, ItemResult] = {}
    if run.error is None:
        await _poll(client, target, dialect, run, api_key, max_wait_s=max_wait_s, poll_s=poll_s,
                    poll_max_s=poll_max_s, cancel_grace_s=cancel_grace_s)
        run.t_end = time.time()
        if run.error is None and run.status is not None and run.status.ended:
            try:
                got = await dialect.results(client, target, run.status, run.items, api_key)
            except BatchAPIError as exc:
                run.error = exc.info
            else:
                results = {r.custom_id: r for r in got}
    t_fetched = time.time()
    for item in run.items:
        res = results.get(item.custom_id)
        if res is not None and res.outcome == "cancelled" and run.cancelled_at_deadline:
            res.error = ErrorInfo(ErrorClass.CANCELLED, run.note)
        emit(_to_record(target, dialect, run, item, res, t_fetched, api_key))
    if journal is not None and run.batch_id is not None:
        journal.append({"event": "ended", "key": run.key, "batch_id": run.batch_id,
                        "state": run.status.state if run.status else None, "t_end_unix": t_fetched})
