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

The annotation prompt is the experiment's, not the contender's: each request goes out with a
validated copy of the contender (`Contender.override`) whose `prompt_template` (completion models) or
`system_prompt` (chat models), stop sequences and `max_tokens` are set here. The contenders file
is left alone and the manifest records the original contender.

Which numbers are statistics and which are point measurements:
  - accuracy: Wilson 95% interval over documents (first repeat); the change vs naive is a paired
    difference on the same documents (Newcombe method 10);
  - parse-failure rate of batch requests: Wilson;
  - busy time and cost per document: requests/document (an exact count) × the mean per-request
    e2e / cost, the mean with a bootstrap interval over requests;
  - requests sent and wall time: point measurements of one pass (temperature 0 makes the
    requests repeatable, and wall time is one number per pass); with `repeats` > 1 the wall
    time is the mean over passes and its min-max range is shown.
"""

from __future__ import annotations

import asyncio
import json
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pandas as pd
import yaml

from workbench import pricing
from workbench.aio import run_sync
from workbench.analysis import cost, stats
from workbench.analysis.scenarios import BatchScenario, PrototypingScenario, RealtimeScenario, ScenarioSet
from workbench.config import PROJECT_ROOT, Contender
from workbench.measure.coalesce import AnswerCache, build_batch_prompt, dedupe, parse_batch_answer, parse_single_label
from workbench.measure.probe import make_client, probe
from workbench.measure.target import Target
from workbench.results import update_manifest
from workbench.session import Session
from workbench.types import Prompt, Record

__all__ = [
    "ANNOTATION_DIR",
    "STRATEGIES",
    "DocOutcome",
    "Document",
    "annotation_contender",
    "before_after",
    "contender_prices",
    "format_before_after",
    "load_documents",
    "load_labels",
    "measured_throughput",
    "plot_levers",
    "project_scenarios",
    "run_coalescing",
    "select_documents",
    "strategy_summary",
]

ANNOTATION_DIR = PROJECT_ROOT / "experiments" / "annotation"
STRATEGIES: tuple[str, ...] = ("naive", "coalesced", "dedup", "cached")

# Few-shot examples for the base (completion) model: written for this prompt, not taken from
# the dataset, so no test document leaks into the prompt.
_EXAMPLES: tuple[tuple[str, str], ...] = (
    ("Why was my card charged twice for the same order?", "billing"),
    ("The parcel says delivered but it is not at my door.", "shipping"),
    ("The app freezes every time I open the settings page.", "technical"),
    ("I cannot log in since I changed my email address.", "account"),
    ("Do you have any open positions in your design team?", "other"),
)

_BATCH_SHOTS = (2, 0, 3)


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


def load_labels(path: str | Path | None = None) -> dict[str, str]:
    """Label name → one-line definition, in file order."""
    p = Path(path) if path else ANNOTATION_DIR / "labels.yaml"
    data = yaml.safe_load(p.read_text(encoding="utf-8"))
    return {str(k): str(v) for k, v in data["labels"].items()}


def load_documents(path: str | Path | None = None) -> list[Document]:
    """The annotation documents in stream order."""
    p = Path(path) if path else ANNOTATION_DIR / "documents.jsonl"
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
) -> Contender:
    """A copy of `contender` carrying the experiment's annotation prompt (see module docstring).

    Completion models (a `prompt_template`) get a few-shot template: label guide, worked
    examples (single: "Message/Label" pairs, stop at newline; batch: one worked numbered batch,
    stop at a blank line). Chat models get the label guide as system prompt and no stop.
    `batch_k` None = the single-document prompt.
    """
    names = list(labels)
    sampling = {**contender.sampling.model_dump(), "max_tokens": max_tokens}
    if contender.prompt_template is None:
        return contender.override("annotation prompt", system_prompt=_guide(labels), sampling={**sampling, "stop": []})
    if batch_k is None:
        shots = "\n".join(f"{_single_text(t, names)}\nLabel: {lab}\n" for t, lab in _EXAMPLES)
        template = f"{_guide(labels)}\n\n{shots}\n{{prompt}}\nLabel:"
        stop = ["\n"]
    else:
        # Three worked documents, labels out of list order: a base model tends to copy the
        # example's answer lines, and a copied 3-line answer to a k-document batch shows up as
        # missing documents (fallback) or wrong labels (accuracy) instead of looking right.
        shots3 = [_EXAMPLES[i] for i in _BATCH_SHOTS]
        ex = build_batch_prompt([(str(i), t) for i, (t, _) in enumerate(shots3)], names)
        answers = "\n".join(f"{n}: {lab}" for n, (_, lab) in enumerate(shots3, start=1))
        template = f"{_guide(labels)}\n\n{ex}\nAnswers:\n{answers}\n\n{{prompt}}\nAnswers:\n"
        stop = ["\n\n"]
    return contender.override("annotation prompt", prompt_template=template, sampling={**sampling, "stop": stop})


# --------------------------------------------------------------------------------------------
# running the strategies


ClientFactory = Callable[[Contender], httpx.AsyncClient]


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

    async def _send(self, c: Contender, prompt: Prompt, extra: dict[str, Any]) -> Record:
        self.seq += 1
        rid = f"{self.target.contender.name}:{extra['strategy']}:{extra['repeat']}:{self.seq}"
        async with self.gate:
            return await probe(self.client, self.target.replace(contender=c), prompt, request_id=rid, extra=extra)

    async def single_label(
        self, doc: Document, strategy: str, repeat: int, window: int, fallback: bool
    ) -> str | None:
        prompt = Prompt(id=doc.id, text=_single_text(doc.text, self.labels))
        extra: dict[str, Any] = {
            "strategy": strategy, "repeat": repeat, "window": window, "batch_size": 1,
            "doc_ids": [doc.id], "n_docs": 1, "fallback": fallback,
        }
        rec = await self._send(self.single, prompt, extra)
        label = parse_single_label(rec.output_text or "", self.labels) if rec.ok else None
        self._finish(rec, parse_ok=label is not None, labels={doc.id: label})
        return label

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

    for w, start in enumerate(range(0, len(docs), window)):
        chunk = list(docs[start:start + window])
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
) -> tuple[list[Record], list[DocOutcome]]:
    records: list[Record] = []
    outcomes: list[DocOutcome] = []
    writer = session.writer()

    def _keep(rec: Record) -> None:
        writer.write(rec)
        records.append(rec)

    # Batch sizes that can occur: k, and the remainders of windows after de-duplication.
    sizes = range(2, k + 1)
    try:
        for c in session.contenders:
            client = client_factory(c) if client_factory else make_client(concurrency * 2, c.timeout_s)
            ctx = _Ctx(
                target=session.target(c, stream=stream, keep_itl=False),
                single=annotation_contender(c, labels, batch_k=None, max_tokens=max_tokens),
                batch={n: annotation_contender(c, labels, batch_k=n,
                                               max_tokens=n * max_tokens_per_doc + 4) for n in sizes},
                labels=list(labels), client=client, gate=asyncio.Semaphore(concurrency),
                write=_keep,
            )
            try:
                for rep in range(repeats):
                    # Rotate the order each repeat so a drift of the machine does not always
                    # favour the strategy that runs first.
                    shift = rep % len(strategies)
                    order = [*strategies[shift:], *strategies[:shift]]
                    for s in order:
                        outcomes.extend(await _strategy(ctx, s, docs, k, window, rep))
            finally:
                await client.aclose()
    finally:
        writer.close()
    return records, outcomes


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
) -> pd.DataFrame:
    """Run every strategy for every contender; return the per-document outcomes.

    Request records are appended to `<run>/coalescing.jsonl` as each answer has been read,
    with the fields strategy, repeat, window, batch_size, doc_ids, n_docs, fallback, parse_ok,
    labels ({doc id: label or null}) and, for batches, parse_detail. The per-document outcomes
    (which need the fan-out and the cache, not visible in any one request) are written to
    `<run>/coalescing_documents.csv`.
    """
    if k < 2:
        raise ValueError("k must be >= 2 (k = 1 is the naive strategy)")
    if window < 1 or concurrency < 1 or repeats < 1:
        raise ValueError("window, concurrency and repeats must be >= 1")
    unknown = [s for s in strategies if s not in STRATEGIES]
    if unknown:
        raise ValueError(f"unknown strategy {unknown[0]!r}; valid: {', '.join(STRATEGIES)}")
    if not docs:
        raise ValueError("no documents")
    # The annotation prompts are the experiment's: keep them beside the contenders in the manifest.
    prompts: dict[str, Any] = {}
    for c in session.contenders:
        one = annotation_contender(c, labels, batch_k=None, max_tokens=max_tokens)
        many = annotation_contender(c, labels, batch_k=k, max_tokens=k * max_tokens_per_doc + 4)
        prompts[c.name] = {
            kind: {"prompt_template": x.prompt_template, "system_prompt": x.system_prompt,
                   "sampling": x.sampling.model_dump(mode="json")}
            for kind, x in (("single", one), (f"batch_k{k}", many))
        }
    update_manifest(session.run.path, coalescing_prompts=prompts)
    _records, outcomes = run_sync(_run(
        session, docs, labels, k=k, window=window, concurrency=concurrency, max_tokens=max_tokens,
        max_tokens_per_doc=max_tokens_per_doc, repeats=repeats, strategies=strategies,
        stream=stream, client_factory=client_factory,
    ))
    df = pd.DataFrame([asdict(o) for o in outcomes])
    df["correct"] = df["predicted"] == df["gold"]
    df.to_csv(session.run.path / f"{session.experiment}_documents.csv", index=False)
    return df


# --------------------------------------------------------------------------------------------
# analysis: prices from measured throughput, the per-strategy summary, before/after


def _ok(df: pd.DataFrame) -> pd.DataFrame:
    return df[df["status"] == "ok"]


def measured_throughput(records: pd.DataFrame) -> dict[str, dict[str, float]]:
    """Per contender, rates measured in this run over its successful requests (all strategies).

    `prefill_tps` = Σ input tokens / Σ TTFT and `decode_tps` = Σ (output tokens − 1) /
    Σ (E2E − TTFT): the split `pricing.price_from_throughput` wants so a request is charged the
    machine time it held. `e2e_output_tps` = Σ output tokens / Σ E2E. llama.cpp reuses the KV
    cache of a shared prompt prefix, so `prefill_tps` is an effective rate (cached prefix
    included), not the raw prefill speed. One request at a time per server, so the sums are
    machine-busy seconds.
    """
    out: dict[str, dict[str, float]] = {}
    for name, g in _ok(records).groupby("contender", sort=True):
        inp = pd.to_numeric(g["input_tokens"], errors="coerce")
        outp = pd.to_numeric(g["output_tokens"], errors="coerce")
        e2e = pd.to_numeric(g["e2e_s"], errors="coerce")
        ttft = pd.to_numeric(g["ttft_s"], errors="coerce") if "ttft_s" in g else e2e * np.nan
        timed = ttft.notna() & inp.notna() & (outp >= 2)
        prefill_s = float(ttft[timed].sum())
        decode_s = float((e2e - ttft)[timed].sum())
        out[str(name)] = {
            "prefill_tps": float(inp[timed].sum()) / prefill_s if prefill_s > 0 else math.nan,
            "decode_tps": float((outp[timed] - 1).sum()) / decode_s if decode_s > 0 else math.nan,
            "e2e_output_tps": float(outp.sum()) / float(e2e.sum()) if e2e.sum() > 0 else math.nan,
            "requests": float(len(g)),
        }
    return out


def contender_prices(
    contenders: Sequence[Contender], records: pd.DataFrame, machine_hour_usd: float
) -> dict[str, pricing.Price]:
    """Per-token price of each contender: local ones from `machine_hour_usd` and the throughput
    measured in THIS run (`price_from_throughput` with prefill and decode rates; output-only
    end-to-end rate when no TTFT was measured), hosted ones from `pricing.price_for`. Contenders
    without a price are left out (their cost shows as NaN, never as a guess)."""
    tps = measured_throughput(records)
    prices: dict[str, pricing.Price] = {}
    for c in contenders:
        t = tps.get(c.name)
        if c.is_local:
            if t is None:
                continue
            if t["prefill_tps"] > 0 and t["decode_tps"] > 0:
                prices[c.name] = pricing.price_from_throughput(
                    machine_hour_usd, t["decode_tps"], t["prefill_tps"]
                )
            elif t["e2e_output_tps"] > 0:
                prices[c.name] = pricing.price_from_throughput(machine_hour_usd, t["e2e_output_tps"])
            continue
        p = pricing.price_for(c)
        if p is not None and not p.per_token and t is not None and t["e2e_output_tps"] > 0:
            p = p.resolve(t["e2e_output_tps"])
        if p is not None and p.per_token:
            prices[c.name] = p
    return prices


def _pass_wall_s(g: pd.DataFrame) -> list[float]:
    """Wall time of each pass: first send → last completion over that pass's requests."""
    walls = []
    for _, r in g.groupby("repeat"):
        start = r["t_start_unix"].astype(float)
        end = start + r["e2e_s"].astype(float).fillna(0.0)
        walls.append(float(end.max() - start.min()))
    return walls


def strategy_summary(
    records: pd.DataFrame, outcomes: pd.DataFrame, prices: Mapping[str, pricing.Price], n_boot: int = 2000
) -> pd.DataFrame:
    """One row per (contender, strategy): counts, wall/busy time, tokens, cost and accuracy per
    document, each statistic with its 95% interval and n (see the module docstring for which)."""
    priced = cost.cost_frame(records, dict(prices)) if len(records) else records.assign(cost_usd=np.nan)
    # A failed request carries no token counts: it is billed nothing, but it still took time.
    priced.loc[priced["status"] != "ok", "cost_usd"] = 0.0
    if not prices:
        priced["cost_usd"] = np.nan
    else:
        priced.loc[~priced["contender"].isin(list(prices)), "cost_usd"] = np.nan
    rows: list[dict[str, Any]] = []
    first = outcomes[outcomes["repeat"] == 0]
    for (name, strategy), g in priced.groupby(["contender", "strategy"], sort=False):
        o = first[(first["contender"] == name) & (first["strategy"] == strategy)]
        all_o = outcomes[(outcomes["contender"] == name) & (outcomes["strategy"] == strategy)]
        n_pass = int(g["repeat"].nunique())
        n_docs = len(o)
        req = len(g) / n_pass
        per_doc = req / n_docs
        batches = g[g["batch_size"] > 1]
        walls = _pass_wall_s(g)
        e2e = stats.mean_ci(g["e2e_s"].astype(float), n_boot=n_boot)
        c = stats.mean_ci(g["cost_usd"].astype(float), n_boot=n_boot)
        acc = stats.wilson_interval(int(o["correct"].sum()), n_docs)
        pf = stats.wilson_interval(int((~batches["parse_ok"].astype(bool)).sum()), len(batches))
        naive = first[(first["contender"] == name) & (first["strategy"] == "naive")]
        if strategy != "naive" and len(naive):
            pair = o.merge(naive, on="doc_id", suffixes=("", "_naive"))
            diff = stats.paired_proportion_diff(
                pair["correct"].astype(float), pair["correct_naive"].astype(float)
            )
        else:
            diff = stats.Estimate(math.nan, math.nan, math.nan, 0)
        p95 = stats.percentile_ci(g["e2e_s"].astype(float), 95, n_boot=n_boot)
        est = g["tokens_estimated"].astype(bool)
        rows.append({
            "contender": name, "strategy": strategy, "n_docs": n_docs, "passes": n_pass,
            "requests": req, "requests_per_doc": per_doc,
            "batch_requests": len(batches) / n_pass,
            "fallback_requests": int(g["fallback"].astype(bool).sum()) / n_pass,
            "error_requests": int((g["status"] != "ok").sum()) / n_pass,
            "parse_fail_rate": pf.value, "parse_fail_low": pf.low, "parse_fail_high": pf.high,
            "parse_fail_n": pf.n,
            "cache_hits": int((all_o["source"] == "cache").sum()) / n_pass,
            "fanouts": int((all_o["source"] == "fanout").sum()) / n_pass,
            "wall_s": float(np.mean(walls)), "wall_min_s": min(walls), "wall_max_s": max(walls),
            "wall_per_doc_s": float(np.mean(walls)) / n_docs,
            "busy_per_doc_s": per_doc * e2e.value, "busy_per_doc_low": per_doc * e2e.low,
            "busy_per_doc_high": per_doc * e2e.high,
            "mean_e2e_s": e2e.value, "p95_e2e_s": p95.value, "p95_e2e_low": p95.low,
            "p95_e2e_high": p95.high, "e2e_n": e2e.n,
            "docs_per_busy_s": n_docs * n_pass / float(g["e2e_s"].astype(float).sum()),
            "input_tokens_per_doc": float(pd.to_numeric(g["input_tokens"]).sum()) / n_pass / n_docs,
            "output_tokens_per_doc": float(pd.to_numeric(g["output_tokens"]).sum()) / n_pass / n_docs,
            "tokens_estimated_share": float(est.mean()) if len(est) else math.nan,
            "cost_per_doc_usd": per_doc * c.value, "cost_per_doc_low": per_doc * c.low,
            "cost_per_doc_high": per_doc * c.high,
            "accuracy": acc.value, "accuracy_low": acc.low, "accuracy_high": acc.high,
            "accuracy_n": acc.n,
            "accuracy_diff": diff.value, "accuracy_diff_low": diff.low, "accuracy_diff_high": diff.high,
        })
    return pd.DataFrame(rows)


def _rel(x: float, base: float) -> float:
    return (x / base - 1.0) * 100.0 if base and not math.isnan(base) else math.nan


def before_after(summary: pd.DataFrame) -> pd.DataFrame:
    """Relative change vs naive per contender: requests, wall time, cost per document (%), and
    accuracy (percentage points, with its paired 95% interval)."""
    rows = []
    for name, g in summary.groupby("contender", sort=False):
        base = g[g["strategy"] == "naive"]
        if base.empty:
            continue
        b = base.iloc[0]
        for _, r in g.iterrows():
            rows.append({
                "contender": name, "strategy": r["strategy"],
                "requests": r["requests"], "requests_change_pct": _rel(r["requests"], b["requests"]),
                "wall_s": r["wall_s"], "wall_change_pct": _rel(r["wall_s"], b["wall_s"]),
                "cost_per_doc_usd": r["cost_per_doc_usd"],
                "cost_change_pct": _rel(r["cost_per_doc_usd"], b["cost_per_doc_usd"]),
                "accuracy": r["accuracy"], "accuracy_change_pp": r["accuracy_diff"] * 100.0,
                "accuracy_change_low_pp": r["accuracy_diff_low"] * 100.0,
                "accuracy_change_high_pp": r["accuracy_diff_high"] * 100.0,
            })
    return pd.DataFrame(rows)


def _iv(v: float, lo: float, hi: float, fmt: str) -> str:
    if v != v:
        return "n/a"
    if lo != lo or hi != hi:
        return format(v, fmt)
    return f"{format(v, fmt)} [{format(lo, fmt)}, {format(hi, fmt)}]"


def _pct(v: float) -> str:
    return "—" if v != v else f"{v:+.0f}%"


def format_before_after(summary: pd.DataFrame) -> pd.DataFrame:
    """The before/after table as text: each value, its change vs naive, intervals where they exist.

    Requests and wall time are point measurements of a pass; busy time and cost per document
    carry bootstrap intervals over requests; accuracy a Wilson interval, its change a paired one.
    """
    ba = before_after(summary).set_index(["contender", "strategy"])
    out = []
    for _, r in summary.iterrows():
        d = ba.loc[(r["contender"], r["strategy"])]
        out.append({
            "contender": r["contender"], "strategy": r["strategy"], "docs": r["n_docs"],
            "requests (Δ)": f"{r['requests']:.0f} ({_pct(d['requests_change_pct'])})",
            "fallbacks": f"{r['fallback_requests']:.0f}",
            "batch parse failures [95% CI]": "—" if r["parse_fail_n"] == 0 else
            f"{_iv(r['parse_fail_rate'], r['parse_fail_low'], r['parse_fail_high'], '.0%')} "
            f"n={r['parse_fail_n']}",
            "wall s (Δ)": f"{r['wall_s']:.1f} ({_pct(d['wall_change_pct'])})",
            "busy ms/doc [95% CI]": _iv(r["busy_per_doc_s"] * 1e3, r["busy_per_doc_low"] * 1e3,
                                         r["busy_per_doc_high"] * 1e3, ".0f"),
            "tokens/doc in+out": f"{r['input_tokens_per_doc']:.0f}+{r['output_tokens_per_doc']:.1f}"
            + (" (est.)" if r["tokens_estimated_share"] > 0 else ""),
            "µ$/doc [95% CI] (Δ)": _iv(r["cost_per_doc_usd"] * 1e6, r["cost_per_doc_low"] * 1e6,
                                        r["cost_per_doc_high"] * 1e6, ".3g")
            + f" ({_pct(d['cost_change_pct'])})",
            "accuracy [95% CI]": _iv(r["accuracy"], r["accuracy_low"], r["accuracy_high"], ".0%")
            + f" n={r['accuracy_n']}",
            "Δ accuracy pp [95% CI]": "—" if r["strategy"] == "naive" else
            _iv(d["accuracy_change_pp"], d["accuracy_change_low_pp"], d["accuracy_change_high_pp"], "+.0f"),
        })
    return pd.DataFrame(out)


def plot_levers(summary: pd.DataFrame, path: str | Path | None = None) -> Any:
    """Left: change vs naive in requests, wall time and cost per document; right: accuracy with
    Wilson intervals. One group of bars per contender and strategy."""
    import matplotlib.pyplot as plt

    from workbench.analysis.plots import save

    ba = before_after(summary)
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(12, 4))
    labels = [f"{c}\n{s}" for c, s in zip(ba["contender"], ba["strategy"], strict=True)]
    x = np.arange(len(ba))
    for i, (col, name) in enumerate((("requests_change_pct", "requests"), ("wall_change_pct", "wall time"),
                                      ("cost_change_pct", "cost/doc"))):
        ax1.bar(x + (i - 1) * 0.27, ba[col].fillna(0.0), width=0.27, label=name)
    ax1.axhline(0, color="black", lw=0.6)
    ax1.set_xticks(x, labels, fontsize=7)
    ax1.set_ylabel("change vs naive, %")
    ax1.set_title("What each lever saves (point measurements of one pass)", fontsize=9)
    ax1.legend(fontsize=8)
    acc = summary["accuracy"].to_numpy(dtype=float)
    err = np.vstack([acc - summary["accuracy_low"].to_numpy(dtype=float),
                     summary["accuracy_high"].to_numpy(dtype=float) - acc])
    ax2.bar(x, acc, yerr=err, capsize=3, color="tab:gray")
    ax2.set_xticks(x, labels, fontsize=7)
    ax2.set_ylim(0, 1)
    ax2.set_ylabel("accuracy vs gold")
    n = int(summary["accuracy_n"].max())
    ax2.set_title(f"Accuracy with 95% Wilson intervals (n = {n} documents)", fontsize=9)
    fig.tight_layout()
    save(fig, path)
    return fig


# --------------------------------------------------------------------------------------------
# projections of the scenarios from the measured numbers


def best_strategy(summary: pd.DataFrame, contender: str) -> str:
    """Cheapest strategy per document whose accuracy is not significantly below naive's (the
    upper end of the paired 95% interval of the change is >= 0); naive if none is.

    Cheapest by cost per document when priced, else by busy time per document."""
    g = summary[summary["contender"] == contender]
    ok = g[(g["strategy"] == "naive") | (g["accuracy_diff_high"] >= 0)]
    key = "cost_per_doc_usd" if ok["cost_per_doc_usd"].notna().all() else "busy_per_doc_s"
    return str(ok.sort_values(key).iloc[0]["strategy"]) if len(ok) else "naive"


def _measured_note(r: pd.Series, strategy: str) -> str:
    return (
        f"measured on {r['n_docs']} documents, strategy {strategy}: {r['requests_per_doc']:.3f} "
        f"requests/doc (fallbacks included), mean request {r['mean_e2e_s']:.3f} s, "
        f"{r['input_tokens_per_doc']:.1f} input + {r['output_tokens_per_doc']:.1f} output tokens/doc, "
        f"accuracy {r['accuracy']:.0%} [{r['accuracy_low']:.0%}, {r['accuracy_high']:.0%}]"
    )


def _batch_row(r: pd.Series, scn: BatchScenario, price: pricing.Price) -> dict[str, Any]:
    p = cost.project_batch(
        scn.documents_per_night, scn.window_hours, r["input_tokens_per_doc"], r["output_tokens_per_doc"],
        price, r["requests_per_doc"], r["mean_e2e_s"], scn.concurrency_limit,
    )
    extra = [f"duplicate and cache savings of this {r['n_docs']}-document sample hold at "
             f"{scn.documents_per_night} documents a night"]
    if r["accuracy_high"] < scn.accuracy_floor:
        extra.append(f"accuracy floor {scn.accuracy_floor:.0%} NOT met "
                     f"(upper 95% bound {r['accuracy_high']:.0%})")
    fits = "fits" if p.fits_window else "does NOT fit"
    return {
        "time": f"{p.wall_time_s / 3600:,.1f} h at concurrency {p.concurrency_limit} ({fits} the "
                f"{scn.window_hours:g} h window; needs >= {p.min_concurrency_to_fit})",
        "cost": f"${p.total_cost_usd:,.2f} a night ({p.cost_per_document_usd * 1e6:.3g} µ$/doc)",
        "wall_time_h": p.wall_time_s / 3600, "total_cost_usd": p.total_cost_usd,
        "assumptions": p.assumptions + extra,
    }


def _realtime_row(
    r: pd.Series, scn: RealtimeScenario, is_local: bool, machine_hour_usd: float, strategy: str
) -> dict[str, Any]:
    goodput = float(r["docs_per_busy_s"])
    p95 = float(r["p95_e2e_s"])
    rt = cost.project_realtime(
        scn.target_qps, 0.0 if is_local else float(r["cost_per_doc_usd"]), goodput,
        machine_hour_usd if is_local else None,
    )
    met = "met" if p95 <= scn.slo_p95_e2e_s else "NOT met"
    extra = [
        f"SLO p95 <= {scn.slo_p95_e2e_s:g} s {met}: measured request p95 {p95:.3f} s "
        f"[{r['p95_e2e_low']:.3f}, {r['p95_e2e_high']:.3f}]",
        f"one replica sustains the measured {goodput:.3g} documents/s (documents per busy second, one "
        "request at a time): throughput, not goodput; the SLO is checked separately above",
    ]
    if strategy != "naive":
        extra.append("coalescing waits for k documents before sending: k / target QPS seconds of extra "
                     "latency at the target rate")
    return {
        "time": f"{rt.replicas:,} replicas",
        "cost": f"${rt.cost_per_hour_usd:,.2f}/hour (${rt.cost_per_1k_requests_usd:.4g} per 1k)",
        "replicas": rt.replicas, "cost_per_hour_usd": rt.cost_per_hour_usd,
        "assumptions": rt.assumptions + extra,
    }


def _prototyping_row(
    r: pd.Series, scn: PrototypingScenario, is_local: bool, machine_hour_usd: float
) -> dict[str, Any]:
    pp = cost.project_prototyping(scn.monthly_requests, float(r["cost_per_doc_usd"]))
    busy_h = scn.monthly_requests * float(r["busy_per_doc_s"]) / 3600
    extra = [f"machine busy {busy_h:.2f} h a month at the measured busy time per document"]
    if is_local:
        extra.append(f"only busy machine time is charged; an always-on machine costs "
                     f"${machine_hour_usd * 730:,.0f} a month regardless")
    return {
        "time": f"{busy_h:.2f} h busy/month", "cost": f"${pp.monthly_cost_usd:,.4g}/month",
        "monthly_cost_usd": pp.monthly_cost_usd, "assumptions": pp.assumptions + extra,
    }


def project_scenarios(
    summary: pd.DataFrame,
    prices: Mapping[str, pricing.Price],
    scenarios: ScenarioSet,
    *,
    local: Mapping[str, bool],
    machine_hour_usd: float,
) -> pd.DataFrame:
    """Every scenario × contender × {naive, best strategy}, from this run's measured numbers.

    One row each with the headline time and cost and the list of assumptions it rests on.
    A "request" of a realtime or prototyping scenario is one document of this workload (the
    annotation documents stand in for the scenario's own prompts)."""
    rows: list[dict[str, Any]] = []
    local_note = (
        "a replica / in-flight slot = one llama.cpp server on this machine (it serves one request "
        f"at a time) at ${machine_hour_usd:g}/hour; the per-token price is that machine time at the "
        "throughput measured in this run"
    )
    for name in summary["contender"].unique():
        best = best_strategy(summary, str(name))
        price = prices.get(str(name))
        is_local = bool(local.get(str(name), False))
        for role, strategy in (("naive", "naive"), ("best", best)):
            sel = summary[(summary["contender"] == name) & (summary["strategy"] == strategy)]
            if sel.empty:
                continue
            r = sel.iloc[0]
            notes = [_measured_note(r, strategy)] + ([local_note] if is_local else [])
            for sname in scenarios:
                scn = scenarios[sname]
                row: dict[str, Any] = {"scenario": sname, "kind": scn.kind, "contender": name,
                                       "role": role, "strategy": strategy}
                if price is None:
                    part: dict[str, Any] = {"time": "n/a", "cost": "no price",
                                            "assumptions": ["no price: not projected"]}
                elif isinstance(scn, BatchScenario):
                    part = _batch_row(r, scn, price)
                elif isinstance(scn, RealtimeScenario):
                    part = _realtime_row(r, scn, is_local, machine_hour_usd, strategy)
                else:
                    part = _prototyping_row(r, scn, is_local, machine_hour_usd)
                row.update(part)
                row["assumptions"] = notes + part["assumptions"]
                rows.append(row)
    return pd.DataFrame(rows)


def format_projections(proj: pd.DataFrame) -> str:
    """The projections as text: one block per scenario and contender, assumptions listed."""
    lines: list[str] = []
    for (sname, name), g in proj.groupby(["scenario", "contender"], sort=False):
        lines.append(f"== {sname} · {name}")
        for _, r in g.iterrows():
            lines.append(f"  [{r['role']}: {r['strategy']}] time: {r['time']}; cost: {r['cost']}")
            lines.extend(f"      - {a}" for a in r["assumptions"])
    return "\n".join(lines)
