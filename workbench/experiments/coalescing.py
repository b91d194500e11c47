"""Architecture levers on the annotation workload: what coalescing, de-duplication and an answer
cache change in requests, wall time, cost per document and accuracy, per contender.

Documents stream in, in stream order, in windows of `window` documents (what is in flight
together). Every strategy sees the same documents and the same windows; each adds one lever to
the one before it, so the before/after table reads as a stack:

  - `naive`: one request per document; the answer is read with `coalesce.parse_single_label`.
  - `coalesced`: k documents per request, numbered answers (`coalesce.build_batch_prompt` /
    `parse_batch_answer`). Every document the answer leaves missing or invalid, and every
    document of a failed batch request, is retried alone with the naive prompt: those fallback
    requests are records too (`fallback=true`) and are counted, never dropped.
  - `dedup`: coalesced, but inside each window documents with the same `coalesce.normalize_doc`
    key are sent once and the answer is fanned out to the others ("in flight": duplicates in
    different windows are sent again).
  - `cached`: dedup plus a `coalesce.AnswerCache` that starts EMPTY at the start of the
    strategy and is filled as answers come back, so a document seen in an earlier window is
    answered from the cache without a request. A cache kept warm across nights would do
    better; this one measures what a single run's stream gives.

Two levers beside the stack, each on the naive prompt (one request per document), so each is
compared with naive alone, paired on the same documents. They may run on fewer documents than
the stack (`lever_docs`: a `select_documents` subset of the same documents): their effects (a
prefix's TTFT, a batch's price and turnaround) show on a few documents, and `make run` has no
minutes to spare; their per-document numbers and changes vs naive are per document, so a
smaller subset changes their intervals, not their meaning.

  - `cached-prefix`: the shared prefix of the prompt (instructions, label guide, few-shot
    examples) cached the documented way for the contender's API (`providers.caching`:
    Anthropic `cache_control`, OpenAI/Gemini implicit, llama.cpp `cache_prompt`). To measure
    what the cache changes, the arm has a **control**: the same request with the cache
    switched off (llama.cpp `cache_prompt: false`; Anthropic without a breakpoint; OpenAI chat and
    Responses `prompt_cache_options: {"mode": "explicit"}` with no breakpoint) for the first
    `prefix_control_docs` documents, sent in a pass of their own right after the lever's (same
    windows, same requests in flight; after, so the lever finds the shared prefix cached, never
    its own document), recorded with `control=true` (`prefix_cache=false`) and
    left out of every per-strategy number; APIs that cache implicitly with no switch (Gemini,
    OpenAI completions) get no control (their records show what was cached). On llama.cpp the naive arm already
    has the slot cache on (llama-server's default), so there the lever's effect is the paired
    cached-vs-uncached table (`levers.prefix_cache_table`), not its row against naive.
  - `batch-api`: every document of the pass as one item of the provider's batch API
    (`workbench.measure.batch`; several batches when the documented limits say so), polled until
    done or `batch_max_wait_s`; the embedded models through the local batch endpoint
    (`workbench.serve.batch`) in front of their llama-server, `concurrency` items at a time.
    A record's `e2e_s` is the document's turnaround (submission → results fetched), and
    `batch_api=true` prices it at the provider's batch rate. An endpoint with no batch API (a
    self-hosted OpenAI-compatible server has no `/v1/files`) is found out at the first submission
    (`NoBatchAPI`): one line says so and the arm is skipped for that contender, no record written.
    Hosted batches are journalled (`<run>/batches/coalescing.jsonl`) so a resumed run (`workbench
    run --resume`) polls the submitted batch instead of sending it again.

The annotation prompt is the experiment's, not the contender's: each request goes out with a
validated copy of the contender (`Contender.override`) whose `prompt_template` (completion models) or
`system_prompt` (chat models), stop sequences and `max_tokens` are set here. The contenders file
is left alone and the manifest records the original contender.

What the records then say (per-strategy summary, before/after, projections, and which numbers
are statistics) is `workbench.analysis.levers`.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import httpx
import pandas as pd
import yaml

from workbench import workspace
from workbench.aio import run_sync
from workbench.coalesced_prompts import (
    AnswerCache,
    build_batch_prompt,
    dedupe,
    normalize_doc,
    parse_batch_answer,
    parse_single_label,
)
from workbench.config import Contender
from workbench.measure.batch import BatchDialect, BatchJournal, NoBatchAPI, dialect_for, run_batch
from workbench.measure.probe import make_client, probe
from workbench.measure.target import Target
from workbench.providers.caching import how_cached, min_prefix_tokens, prefix_cached
from workbench.results import update_manifest
from workbench.serve.batch import BatchServer
from workbench.serve.llama import REQUEST_HEADERS
from workbench.session import Session
from workbench.tasks import Task
from workbench.types import Prompt, Record

__all__ = [
    "STRATEGIES",
    "DocOutcome",
    "Document",
    "annotation_contender",
    "load_documents",
    "load_labels",
    "parse_strategies",
    "run_coalescing",
    "select_documents",
    "worked_examples",
]

STRATEGIES: tuple[str, ...] = ("naive", "coalesced", "dedup", "cached", "cached-prefix", "batch-api")

# Few-shot examples for the base (completion) model on the bundled example's labels: written for
# this prompt, not taken from the dataset, so no test document leaks into the prompt. A task on
# other labels brings its own (`task.examples`) or goes without (`worked_examples`).
_EXAMPLES: tuple[tuple[str, str], ...] = (
    ("Why was my card charged twice for the same order?", "billing"),
    ("The parcel says delivered but it is not at my door.", "shipping"),
    ("The app freezes every time I open the settings page.", "technical"),
    ("I cannot log in since I changed my email address.", "account"),
    ("Do you have any open positions in your design team?", "other"),
)

_BATCH_SHOTS = (2, 0, 3)
#: The two levers beside the stack: they run on `lever_docs` documents (see the module docstring).
_LEVER_ARMS = frozenset({"cached-prefix", "batch-api"})


@dataclass(frozen=True, slots=True)
class Document:
    """One document of the annotation workload with its gold label."""

    id: str
    text: str
    label: str
    dup_of: str | None = None


@dataclass(slots=True)
class DocOutcome:
    """How one document got (or did not get) its label under one strategy.

    `source`: `request` (its own request, naive or batch), `fallback` (a naive retry after a
    batch answer left it out), `fanout` (copied from its in-window duplicate), `cache` (answered
    by the cache, no request), `failed` (no label: request failed or answer unreadable)."""

    contender: str
    strategy: str
    repeat: int
    doc_id: str
    gold: str
    predicted: str | None
    source: str
    dup_of: str | None

    @property
    def correct(self) -> bool:
        return self.predicted == self.gold


def parse_strategies(text: str) -> tuple[str, ...]:
    """`"naive,batch-api"` → the strategies in run order (`STRATEGIES`' order); empty: all of them.
    An unknown name is an error listing the valid ones (the notebook's `strategies` parameter)."""
    wanted = [t.strip() for t in text.split(",") if t.strip()]
    unknown = [t for t in wanted if t not in STRATEGIES]
    if unknown:
        raise ValueError(f"unknown strategy {unknown[0]!r}; valid: {', '.join(STRATEGIES)}")
    return tuple(s for s in STRATEGIES if s in wanted) if wanted else STRATEGIES


def _annotation_dir() -> Path:
    """The bundled example's annotation workload, in the workspace in force."""
    return workspace.current().root / "annotation"


def batch_task() -> Task | None:
    """The workspace's annotation task: the first batch scenario's `task` (None: the bundled
    example's documents and labels)."""
    from workbench.analysis.scenarios import load_scenarios

    ws = workspace.current()
    if not ws.scenarios_file.exists():
        return None
    return next((task for sc in load_scenarios(ws.scenarios_file).values()
                 if (task := sc.annotation_task()) is not None), None)


def load_labels(path: str | Path | None = None) -> dict[str, str]:
    """Label name → one-line definition, in file order (a task's labels define themselves)."""
    task = batch_task() if not path else None
    if task is not None:
        return {lab: lab for lab in task.label_names(task.labelled())}
    p = workspace.current().resolve(path) if path else _annotation_dir() / "labels.yaml"
    data = yaml.safe_load(p.read_text(encoding="utf-8"))
    return {str(k): str(v) for k, v in data["labels"].items()}


def worked_examples(labels: Sequence[str]) -> tuple[tuple[str, str], ...]:
    """(text, label) pairs a completion model's annotation prompt shows: the workspace's batch
    task's `examples`; else the bundled ones when the labels are theirs; else none — the demo's
    labels would teach a base model answers that are never right on the user's."""
    task = batch_task()
    if task is not None and task.examples:
        return tuple((r.text, r.label) for r in task.example_rows())
    return _EXAMPLES if {lab for _, lab in _EXAMPLES} <= set(labels) else ()


def load_documents(path: str | Path | None = None) -> list[Document]:
    """The annotation documents in stream order: the workspace's batch task (a repeat of an earlier
    text, up to case, spacing and punctuation, is marked `dup_of` it), else the bundled example's."""
    task = batch_task() if not path else None
    if task is not None:
        first: dict[str, str] = {}
        docs = []
        for r in task.labelled():
            key = normalize_doc(r.text)
            docs.append(Document(r.id, r.text, r.label, first.get(key)))
            first.setdefault(key, r.id)
        return docs
    p = workspace.current().resolve(path) if path else _annotation_dir() / "documents.jsonl"
    out = []
    for line in p.read_text(encoding="utf-8").splitlines():
        if line.strip():
            o = json.loads(line)
            out.append(Document(o["id"], o["text"], o["label"], o.get("dup_of")))
    return out


def select_documents(docs: Sequence[Document], n: int) -> list[Document]:
    """A subset of `n` documents, in stream order, that keeps the stream's share of duplicates.

    A plain prefix of the stream would hold almost no duplicates (the first 24 hold none), and
    the levers would have nothing to act on. So duplicates are taken in stream order together
    with their originals until the subset has the full set's duplicate share, then filled with
    documents that have no duplicate in the subset. Deterministic; n >= len(docs) gives all.
    """
    if n <= 0:
        raise ValueError("n must be >= 1")
    if n >= len(docs):
        return list(docs)
    order = {d.id: i for i, d in enumerate(docs)}
    by_id = {d.id: d for d in docs}
    share = sum(d.dup_of is not None for d in docs) / len(docs)
    target = round(n * share)
    chosen: set[str] = set()
    n_dups = 0
    for d in docs:
        if n_dups >= target:
            break
        if d.dup_of is None:
            continue
        need = {d.id, d.dup_of} - chosen
        if len(chosen) + len(need) > n:
            continue
        chosen |= need
        n_dups += 1
    originals = {d.dup_of for d in docs if d.dup_of is not None}
    for d in docs:
        if len(chosen) >= n:
            break
        if d.dup_of is None and d.id not in originals:
            chosen.add(d.id)
    return sorted((by_id[i] for i in chosen), key=lambda d: order[d.id])


# --------------------------------------------------------------------------------------------
# prompts: the experiment's, applied to a copy of the contender


def _guide(labels: Mapping[str, str]) -> str:
    lines = "\n".join(f"- {name}: {desc}" for name, desc in labels.items())
    return f"You label short customer messages for a support team. The labels:\n{lines}"


def _single_text(text: str, labels: Sequence[str]) -> str:
    return (
        f"Classify the document with exactly one label from: {', '.join(labels)}. "
        f"Answer with the label only.\n\nDocument: {' '.join(text.split())}"
    )


def annotation_contender(
    contender: Contender,
    labels: Mapping[str, str],
    *,
    batch_k: int | None,
    max_tokens: int,
    examples: Sequence[tuple[str, str]] | None = None,
) -> Contender:
    """A copy of `contender` carrying the experiment's annotation prompt (see module docstring).

    Completion models (a `prompt_template`) get a few-shot template: label guide, worked
    `examples` (default `worked_examples(labels)`; single: "Message/Label" pairs, stop at
    newline; batch: one worked numbered batch of three, stop at a blank line; without examples
    the guide alone). Chat models get the label guide as system prompt and no stop.
    `batch_k` None = the single-document prompt.
    """
    names = list(labels)
    sampling = {**contender.sampling.model_dump(), "max_tokens": max_tokens}
    if contender.prompt_template is None:
        return contender.override("annotation prompt", system_prompt=_guide(labels), sampling={**sampling, "stop": []})
    shown = list(worked_examples(names) if examples is None else examples)
    if batch_k is None:
        shots = "".join(f"{_single_text(t, names)}\nLabel: {lab}\n\n" for t, lab in shown)
        template = f"{_guide(labels)}\n\n{shots}{{prompt}}\nLabel:"
        stop = ["\n"]
    else:
        # Three worked documents, labels out of list order: a base model tends to copy the
        # example's answer lines, and a copied 3-line answer to a k-document batch shows up as
        # missing documents (fallback) or wrong labels (accuracy) instead of looking right.
        shots3 = [shown[i] for i in _BATCH_SHOTS] if len(shown) > max(_BATCH_SHOTS) else shown[:3]
        worked = ""
        if shots3:
            ex = build_batch_prompt([(str(i), t) for i, (t, _) in enumerate(shots3)], names)
            answers = "\n".join(f"{n}: {lab}" for n, (_, lab) in enumerate(shots3, start=1))
            worked = f"{ex}\nAnswers:\n{answers}\n\n"
        template = f"{_guide(labels)}\n\n{worked}{{prompt}}\nAnswers:\n"
        stop = ["\n\n"]
    return contender.override("annotation prompt", prompt_template=template, sampling={**sampling, "stop": stop})


# --------------------------------------------------------------------------------------------
# running the strategies


ClientFactory = Callable[[Contender], httpx.AsyncClient]


@dataclass
class BatchArm:
    """Where one contender's batch-api arm sends its batches and how long it waits."""

    target: Target  # the provider's batch API, or the local batch endpoint of an embedded model
    dialect: BatchDialect
    journal: BatchJournal | None  # hosted batches only: a local endpoint does not outlive the run
    max_wait_s: float
    poll_s: float
    poll_max_s: float
    concurrency: int | None  # items the local endpoint runs at once (None: the provider's own)
    done: dict[str, dict[str, Any]]  # request id → its record, written before a resume
    #: hosted: the turnaround to plan with — the provider's documented completion window, or what the
    #: contender declares (`declared.batch_turnaround_h`); None for the local endpoint (measured)
    window_h: float | None = None
    window_source: str | None = None


@dataclass
class _Ctx:
    """Per-contender state of one run: prompts, client, concurrency gate, where records go."""

    target: Target  # the contender as configured; each request goes out with its annotation copy
    single: Contender
    batch: dict[int, Contender]
    labels: list[str]
    client: httpx.AsyncClient
    gate: asyncio.Semaphore
    write: Callable[[Record], None]
    seq: int = 0
    #: the naive prompt with the prefix cache on / off (the control; None: cannot be switched off)
    prefix_on: Contender | None = None
    prefix_off: Contender | None = None
    control_docs: int = 0
    batch_arm: BatchArm | None = None

    async def _send(self, c: Contender, prompt: Prompt, extra: dict[str, Any]) -> Record:
        self.seq += 1
        rid = f"{self.target.contender.name}:{extra['strategy']}:{extra['repeat']}:{self.seq}"
        async with self.gate:
            return await probe(self.client, self.target.replace(contender=c), prompt, request_id=rid, extra=extra)

    async def single_label(
        self, doc: Document, strategy: str, repeat: int, window: int, fallback: bool,
        contender: Contender | None = None, **fields: Any,
    ) -> str | None:
        prompt = Prompt(id=doc.id, text=_single_text(doc.text, self.labels))
        extra: dict[str, Any] = {
            "strategy": strategy, "repeat": repeat, "window": window, "batch_size": 1,
            "doc_ids": [doc.id], "n_docs": 1, "fallback": fallback, **fields,
        }
        rec = await self._send(contender or self.single, prompt, extra)
        label = parse_single_label(rec.output_text or "", self.labels) if rec.ok else None
        self._finish(rec, parse_ok=label is not None, labels={doc.id: label})
        return label

    async def prefix_control(self, docs: Sequence[Document], repeat: int, window: int) -> None:
        """The cached-prefix arm's control: its first `control_docs` documents with the cache off,
        in windows as the lever goes, in a pass of its own right after the lever's. After, not
        before: a control just before would leave its whole prompt, document included, in the
        slot's cache, and the lever would measure a cached document instead of a cached prefix.
        Its own pass: the lever's wall time is its own, and each side runs as many requests at
        once as the other."""
        if self.prefix_off is None:
            return
        todo = list(docs[: self.control_docs])
        for w, start in enumerate(range(0, len(todo), window)):
            await asyncio.gather(*(self.single_label(d, "cached-prefix", repeat, w, False, self.prefix_off,
                                                     prefix_cache=False, control=True)
                                   for d in todo[start:start + window]))

    async def batch_api(self, docs: Sequence[Document], repeat: int) -> dict[str, str | None] | None:
        """Every document as one item of the batch API; doc id → label. None when the endpoint
        turns out to have no batch API (`NoBatchAPI`): said on one line, and the arm is dropped
        for this contender — no record, since no document was sent."""
        arm = self.batch_arm
        assert arm is not None
        name = self.target.contender.name
        rids = [f"{name}:batch-api:{repeat}:{d.id}" for d in docs]
        got: dict[str, str | None] = {d.id: None for d in docs}
        for rid, d in zip(rids, docs, strict=True):
            old = arm.done.get(rid)
            if old is not None:  # recorded before a resume: its label, not a second request
                got[d.id] = (old.get("labels") or {}).get(d.id)

        def keep(rec: Record) -> None:
            label = parse_single_label(rec.output_text or "", self.labels) if rec.ok else None
            got[str(rec.prompt_id)] = label
            self._finish(rec, parse_ok=label is not None, labels={rec.prompt_id: label})

        extras = [{"strategy": "batch-api", "repeat": repeat, "window": 0, "batch_size": 1, "doc_ids": [d.id],
                   "n_docs": 1, "fallback": False, "batch_concurrency": arm.concurrency,
                   "batch_window_h": arm.window_h, "batch_window_source": arm.window_source} for d in docs]
        try:
            await run_batch(self.client, arm.target.replace(contender=self.single), arm.dialect,
                            [Prompt(id=d.id, text=_single_text(d.text, self.labels)) for d in docs], rids,
                            write=keep, extras=extras, journal=arm.journal, done_ids=arm.done,
                            max_wait_s=arm.max_wait_s, poll_s=arm.poll_s, poll_max_s=max(arm.poll_s, arm.poll_max_s))
        except NoBatchAPI as exc:
            print(f"batch-api: {name}: {exc}; the arm is skipped for it")
            self.batch_arm = None
            return None
        return got

    async def batch_labels(
        self, docs: Sequence[Document], strategy: str, repeat: int, window: int
    ) -> dict[str, tuple[str | None, bool]]:
        """doc id → (label, came from a fallback request)."""
        if len(docs) == 1:
            label = await self.single_label(docs[0], strategy, repeat, window, fallback=False)
            return {docs[0].id: (label, False)}
        k = len(docs)
        c = self.batch[k]
        prompt = Prompt(id=f"batch:{docs[0].id}+{k - 1}",
                        text=build_batch_prompt([(d.id, d.text) for d in docs], self.labels))
        extra: dict[str, Any] = {
            "strategy": strategy, "repeat": repeat, "window": window, "batch_size": k,
            "doc_ids": [d.id for d in docs], "n_docs": k, "fallback": False,
        }
        rec = await self._send(c, prompt, extra)
        got: dict[str, str | None] = {d.id: None for d in docs}
        if rec.ok:
            parsed = parse_batch_answer(rec.output_text or "", k, self.labels)
            for n, lab in parsed.labels.items():
                got[docs[n - 1].id] = lab
            parse_ok = parsed.complete
            detail = {"missing": parsed.missing, "invalid": parsed.invalid,
                      "extra_lines": len(parsed.extra)}
        else:
            parse_ok = False
            detail = {"missing": list(range(1, k + 1)), "invalid": {}, "extra_lines": 0}
        self._finish(rec, parse_ok=parse_ok, labels=got, parse_detail=detail)
        out: dict[str, tuple[str | None, bool]] = {i: (lab, False) for i, lab in got.items()}
        retry = [d for d in docs if got[d.id] is None]
        labels = await asyncio.gather(
            *(self.single_label(d, strategy, repeat, window, fallback=True) for d in retry)
        )
        for d, retried in zip(retry, labels, strict=True):
            out[d.id] = (retried, True)
        return out

    def _finish(self, rec: Record, **fields: Any) -> None:
        """Add the parse outcome and append the record (right after its answer was read)."""
        rec.extra.update(fields)
        self.write(rec)


async def _coalesce_all(
    ctx: _Ctx, docs: Sequence[Document], k: int, strategy: str, repeat: int, window: int
) -> dict[str, tuple[str | None, bool]]:
    groups = [list(docs[i:i + k]) for i in range(0, len(docs), k)]
    parts = await asyncio.gather(*(ctx.batch_labels(g, strategy, repeat, window) for g in groups))
    out: dict[str, tuple[str | None, bool]] = {}
    for p in parts:
        out.update(p)
    return out


async def _strategy(
    ctx: _Ctx, strategy: str, docs: Sequence[Document], k: int, window: int, repeat: int
) -> list[DocOutcome]:
    outcomes: list[DocOutcome] = []
    cache = AnswerCache()
    name = ctx.target.contender.name

    def outcome(d: Document, label: str | None, source: str) -> None:
        outcomes.append(DocOutcome(name, strategy, repeat, d.id, d.label, label,
                                   source if label is not None else "failed", d.dup_of))

    if strategy == "batch-api":  # the night's documents in one go: batches are not windowed
        if ctx.batch_arm is None:
            return outcomes
        got_batch = await ctx.batch_api(docs, repeat)
        if got_batch is None:
            return outcomes
        for d in docs:
            outcome(d, got_batch[d.id], "request")
        return outcomes
    for w, start in enumerate(range(0, len(docs), window)):
        chunk = list(docs[start:start + window])
        if strategy == "cached-prefix":
            assert ctx.prefix_on is not None
            labels = await asyncio.gather(*(ctx.single_label(d, strategy, repeat, w, False, ctx.prefix_on,
                                                             prefix_cache=True, control=False) for d in chunk))
            for d, lab in zip(chunk, labels, strict=True):
                outcome(d, lab, "request")
            if start + window >= len(docs):
                await ctx.prefix_control(docs, repeat, window)
            continue
        if strategy == "naive":
            labels = await asyncio.gather(
                *(ctx.single_label(d, strategy, repeat, w, fallback=False) for d in chunk)
            )
            for d, lab in zip(chunk, labels, strict=True):
                outcome(d, lab, "request")
            continue
        if strategy == "coalesced":
            got = await _coalesce_all(ctx, chunk, k, strategy, repeat, w)
            for d in chunk:
                lab, fb = got[d.id]
                outcome(d, lab, "fallback" if fb else "request")
            continue
        todo = chunk
        if strategy == "cached":
            todo = []
            for d in chunk:
                hit = cache.get(d.text)
                if hit is not None:
                    outcome(d, hit, "cache")
                else:
                    todo.append(d)
        unique, canon = dedupe([(d.id, d.text) for d in todo])
        by_id = {d.id: d for d in todo}
        got = await _coalesce_all(ctx, [by_id[i] for i, _ in unique], k, strategy, repeat, w)
        for d in todo:
            lab, fb = got[canon[d.id]]
            src = "fanout" if canon[d.id] != d.id else ("fallback" if fb else "request")
            outcome(d, lab, src)
            if strategy == "cached" and lab is not None and canon[d.id] == d.id:
                cache.put(d.text, lab)
    return outcomes


async def _run(
    session: Session,
    docs: Sequence[Document],
    labels: Mapping[str, str],
    *,
    k: int,
    window: int,
    concurrency: int,
    max_tokens: int,
    max_tokens_per_doc: int,
    repeats: int,
    strategies: Sequence[str],
    stream: bool,
    client_factory: ClientFactory | None,
    batch_max_wait_s: float = 24 * 3600.0,
    batch_poll_s: float = 1.0,
    prefix_control_docs: int | None = None,
    lever_docs: int | None = None,
) -> tuple[list[Record], list[DocOutcome]]:
    records: list[Record] = []
    outcomes: list[DocOutcome] = []
    writer = session.writer()

    def _keep(rec: Record) -> None:
        writer.write(rec)
        records.append(rec)

    # Batch sizes that can occur: k, and the remainders of windows after de-duplication.
    sizes = range(2, k + 1)
    lever_set = select_documents(docs, lever_docs) if lever_docs else list(docs)
    endpoints: list[BatchServer] = []
    try:
        for c in session.contenders:
            client = client_factory(c) if client_factory else make_client(concurrency * 2, c.timeout_s)
            single = annotation_contender(c, labels, batch_k=None, max_tokens=max_tokens)
            ctx = _Ctx(
                target=session.target(c, stream=stream, keep_itl=False),
                single=single,
                batch={n: annotation_contender(c, labels, batch_k=n,
                                               max_tokens=n * max_tokens_per_doc + 4) for n in sizes},
                labels=list(labels), client=client, gate=asyncio.Semaphore(concurrency),
                write=_keep,
                prefix_on=prefix_cached(single, True), prefix_off=prefix_cached(single, False),
                control_docs=len(lever_set) if prefix_control_docs is None else prefix_control_docs,
            )
            if "batch-api" in strategies:
                ctx.batch_arm = _batch_arm(session, c, concurrency, endpoints, max_wait_s=batch_max_wait_s,
                                           poll_s=batch_poll_s)
            try:
                for rep in range(repeats):
                    # Rotate the order each repeat so a drift of the machine does not always
                    # favour the strategy that runs first.
                    shift = rep % len(strategies)
                    order = [*strategies[shift:], *strategies[:shift]]
                    for s in order:
                        arm_docs = lever_set if s in _LEVER_ARMS else docs
                        outcomes.extend(await _strategy(ctx, s, arm_docs, k, window, rep))
            finally:
                await client.aclose()
    finally:
        for srv in endpoints:
            srv.stop()
        writer.close()
    return records, outcomes


def _batch_arm(session: Session, c: Contender, concurrency: int, endpoints: list[BatchServer], *,
               max_wait_s: float, poll_s: float) -> BatchArm | None:
    """The batch-api arm of one contender: the local batch endpoint (started now, in front of the
    embedded model's server, `concurrency` items at a time) or the provider's batch API; None
    when the wire format has none (said on one line)."""
    dialect = dialect_for(c)
    if dialect is None:
        print(f"batch-api: {c.name} ({c.api}) has no batch API; the arm is skipped for it")
        return None
    done = {rid: r for rid, r in session.completed_records().items()
            if r.get("strategy") == "batch-api" and r.get("contender") == c.name} if session.resume else {}
    if c.is_local:
        srv = BatchServer(session.base_url(c), concurrency=concurrency, upstream_headers=REQUEST_HEADERS).start()
        endpoints.append(srv)
        target = session.target(c, base_url=srv.base_url_for(c.api), stream=False)
        return BatchArm(target, dialect, None, max_wait_s, poll_s, poll_s * 4, concurrency, done)
    journal = BatchJournal(session.run.path / "batches" / f"{session.experiment}.jsonl")
    declared = c.declared.get("batch_turnaround_h")
    window, source = (float(declared), f"declared in the contenders file (contenders[{c.name}].declared."
                      "batch_turnaround_h)") if declared is not None else (dialect.completion_window_h,
                                                                           dialect.window_source)
    return BatchArm(session.target(c, stream=False), dialect, journal, max_wait_s, poll_s, 60.0, None, done, window,
                    source)


def run_coalescing(
    session: Session,
    docs: Sequence[Document],
    labels: Mapping[str, str],
    *,
    k: int = 4,
    window: int = 8,
    concurrency: int = 1,
    max_tokens: int = 8,
    max_tokens_per_doc: int = 8,
    repeats: int = 1,
    strategies: Sequence[str] = STRATEGIES,
    stream: bool = True,
    client_factory: ClientFactory | None = None,
    batch_max_wait_s: float = 24 * 3600.0,
    batch_poll_s: float = 1.0,
    prefix_control_docs: int | None = None,
    lever_docs: int | None = None,
) -> pd.DataFrame:
    """Run every strategy for every contender; return the per-document outcomes.

    Request records are appended to `<run>/coalescing.jsonl` as each answer has been read,
    with the fields strategy, repeat, window, batch_size, doc_ids, n_docs, fallback, parse_ok,
    labels ({doc id: label or null}) and, for batches, parse_detail; the cached-prefix arm adds
    `prefix_cache` and `control`, the batch-api arm the batch fields of `workbench.measure.batch`.
    The per-document outcomes (which need the fan-out and the cache, not visible in any one
    request) are written to `<run>/coalescing_documents.csv`.

    `batch_max_wait_s`: how long a batch may take before it is cancelled (its unfinished documents
    are `cancelled` records); `batch_poll_s`: the first poll interval (then 1.5× longer each
    time, up to 60 s for a provider, 4 × the first for the local endpoint); `lever_docs`: documents
    the cached-prefix and batch-api arms label (a `select_documents` subset of `docs`; None or 0:
    all); `prefix_control_docs`: how many of those also get the cache-off control (None: all).
    """
    _check_arguments(docs, k=k, window=window, concurrency=concurrency, repeats=repeats, strategies=strategies,
                     lever_docs=lever_docs, prefix_control_docs=prefix_control_docs)
    _warn_without_examples(session, labels)
    update_manifest(session.run.path,
                    coalescing_prompts=_annotation_prompts(session, labels, k=k, max_tokens=max_tokens,
                                                           max_tokens_per_doc=max_tokens_per_doc),
                    coalescing_levers=_levers_available(session, concurrency=concurrency,
                                                        batch_max_wait_s=batch_max_wait_s))
    _records, outcomes = run_sync(_run(
        session, docs, labels, k=k, window=window, concurrency=concurrency, max_tokens=max_tokens,
        max_tokens_per_doc=max_tokens_per_doc, repeats=repeats, strategies=strategies,
        stream=stream, client_factory=client_factory, batch_max_wait_s=batch_max_wait_s,
        batch_poll_s=batch_poll_s, prefix_control_docs=prefix_control_docs, lever_docs=lever_docs,
    ))
    df = pd.DataFrame([asdict(o) for o in outcomes])
    df["correct"] = df["predicted"] == df["gold"]
    df.to_csv(session.run.path / f"{session.experiment}_documents.csv", index=False)
    return df


def _check_arguments(docs: Sequence[Document], *, k: int, window: int, concurrency: int, repeats: int,
                     strategies: Sequence[str], lever_docs: int | None, prefix_control_docs: int | None) -> None:
    """Refuse arguments `run_coalescing` cannot run with, naming the argument and the valid values."""
    if k < 2:
        raise ValueError("k must be >= 2 (k = 1 is the naive strategy)")
    if window < 1 or concurrency < 1 or repeats < 1:
        raise ValueError("window, concurrency and repeats must be >= 1")
    unknown = [s for s in strategies if s not in STRATEGIES]
    if unknown:
        raise ValueError(f"unknown strategy {unknown[0]!r}; valid: {', '.join(STRATEGIES)}")
    if not docs:
        raise ValueError("no documents")
    if min(lever_docs or 0, prefix_control_docs or 0) < 0:
        raise ValueError("lever_docs and prefix_control_docs must be >= 0")


def _warn_without_examples(session: Session, labels: Mapping[str, str]) -> None:
    """Say when a completion contender's annotation prompt will show no worked example."""
    if worked_examples(list(labels)):
        return
    for c in session.contenders:
        if c.prompt_template is not None:
            print(f"warning: {c.name} is a completion model and the task's labels have no worked examples: its "
                  "annotation prompt shows none, and a base model may not answer with a label — give the batch "
                  "scenario's task `examples:` (a labelled-texts file, a few per label, none of them measured)")


def _annotation_prompts(session: Session, labels: Mapping[str, str], *, k: int, max_tokens: int,
                        max_tokens_per_doc: int) -> dict[str, Any]:
    """Each contender's annotation prompts (one document, and k at once), for the manifest: the
    prompts are the experiment's, kept beside the contenders."""
    prompts: dict[str, Any] = {}
    for c in session.contenders:
        one = annotation_contender(c, labels, batch_k=None, max_tokens=max_tokens)
        many = annotation_contender(c, labels, batch_k=k, max_tokens=k * max_tokens_per_doc + 4)
        prompts[c.name] = {
            kind: {"prompt_template": x.prompt_template, "system_prompt": x.system_prompt,
                   "sampling": x.sampling.model_dump(mode="json")}
            for kind, x in (("single", one), (f"batch_k{k}", many))
        }
    return prompts


def _levers_available(session: Session, *, concurrency: int, batch_max_wait_s: float) -> dict[str, Any]:
    """Per contender, for the manifest: how its prefix cache works, whether a cache-off control
    exists, and which batch API (if any) the batch-api arm uses."""
    levers: dict[str, Any] = {}
    for c in session.contenders:
        dialect = dialect_for(c)
        n_min, where = min_prefix_tokens(c)
        levers[c.name] = {
            "prefix_cache": how_cached(c), "prefix_cache_min_tokens": n_min, "prefix_cache_min_source": where,
            "prefix_control": prefix_cached(c, False) is not None,
            "batch_api": None if dialect is None else (
                f"local batch endpoint ({dialect.name} dialect) over the embedded server, {concurrency} at a time"
                if c.is_local else f"{dialect.name}: {dialect.window_source}"),
            "batch_max_wait_s": batch_max_wait_s,
        }
    return levers
