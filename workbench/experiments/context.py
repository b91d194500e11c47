"""Context experiment: latency, accuracy, cost and window as the input document grows.

Per contender, one document per input length (`lengths`, in the contender's own tokens; or the
user's documents, at their own lengths), each asked its questions one after another, the
question appended after the document:

- the first question of a document pays the whole prefill (`cache_state = "cold"`): its TTFT
  against the prompt's length is the length axis, fitted as TTFT = a + b·L with a bootstrap
  interval (`workbench.analysis.context_length`);
- the following questions share the document as a prefix (`"warm"`): the embedded server
  reuses its slot's KV cache (`server_cache_n`), the hosted APIs their prompt cache (Anthropic
  with the documented breakpoint on the document, `workbench.providers.caching`); cold vs warm
  on the same document is the cached-vs-uncached comparison, paired by document;
- every answer is graded by the deterministic grader against the planted fact
  (`workbench.contract_text`), at its depth;
- finally, where the contender's window is known and small enough (`max_probe_tokens`), one
  document past it (`phase = "window_probe"`): the answer must be a typed
  `context_length_exceeded` record, never a crash.

Why one document per length and not repeats: on 2 cores prefill is the dearest thing this
workbench does, so each prefill paid buys a point of the TTFT(length) fit, and the questions
after the first cost only their own few tokens (the cache): accuracy by depth and the cache
comparison come almost free. Lengths grow geometrically to the longest, where the fit's slope
is decided; the short ones add points at little cost. A user raises `docs_per_length` for
repeats (intervals per length) and `lengths` for a longer sweep.

What it costs (measured 2026-12-08 on 2 idle cores, two server threads): `make run`'s sweep (512,
1k, 2k, 4k tokens) 77 s for both embedded models, Qwen2.5 0.5B's 4k document 28.5 s of it; at 8k
Gemma 3 270M prefilled 8,344 tokens in 19.6 s (427 tokens/s) and Qwen 8,239 in 91.2 s (90
tokens/s, down from 235 at 512: attention grows with the length) — with 8k, `make run` took
10:53, over its 10 minutes, so its sweep stops at 4k and 8k is a parameter.

The embedded servers run with one slot of `slot_ctx` tokens while this experiment runs (the
other experiments keep their many short slots); the manifest records it with the server.
Token counts: the embedded models' own tokenizer (`/tokenize` of the server), the hosted ones'
chars/4 estimate to size the document (flagged `doc_token_source`); every record carries the
server's usage count as `input_tokens`, which the fit uses.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import httpx

from workbench.aio import run_sync
from workbench.analysis.grading import grade_response
from workbench.config import Contender
from workbench.contract_text import generate
from workbench.documents import DocQuestion, Document, chars_per_4
from workbench.embedded import LOCAL_MODELS
from workbench.measure.budget import Budget, BudgetExhausted
from workbench.measure.probe import make_client, probe
from workbench.measure.target import Target
from workbench.providers.base import provider_for
from workbench.providers.caching import prefix_cached
from workbench.results import RecordWriter
from workbench.session import Session
from workbench.types import Prompt, Record

__all__ = ["DOCUMENT_INSTRUCTION", "SLOT_CTX", "context_window", "document_prompt", "parse_depths",
           "parse_lengths", "plan_documents", "run_context", "slot_tokens", "task_documents", "token_counter"]

#: The slot the embedded servers get while this experiment runs: the longest default document
#: (8,192 tokens), the question and the answer, with room to spare. Both embedded models were
#: trained on 32k.
SLOT_CTX = 9216
#: Said before the document, so a model knows what the text is for.
DOCUMENT_INSTRUCTION = "Answer the question from the contract below, in a few words."


def parse_lengths(text: str) -> list[int]:
    """`"512,2048,8192"` → sorted distinct lengths (tokens, each >= 64); ValueError naming it."""
    try:
        out = sorted({int(x) for x in str(text).split(",") if x.strip()})
    except ValueError:
        raise ValueError(f"lengths={text!r}: give whole numbers of tokens, e.g. 512,2048,8192") from None
    if not out or out[0] < 64:
        raise ValueError(f"lengths={text!r}: give at least one length, each >= 64 tokens")
    return out


def parse_depths(text: str) -> list[float]:
    """`"0.1,0.5,0.9"` → the depths (fractions strictly between 0 and 1); ValueError naming it."""
    try:
        out = [float(x) for x in str(text).split(",") if x.strip()]
    except ValueError:
        raise ValueError(f"depths={text!r}: give fractions, e.g. 0.1,0.5,0.9") from None
    if not out or any(not 0.0 < d < 1.0 for d in out) or len(out) > 5:
        raise ValueError(f"depths={text!r}: give 1 to 5 fractions strictly between 0 and 1")
    return out


def slot_tokens(lengths: str, given: int = 0) -> int:
    """The embedded servers' slot for this sweep: `given` when set, else `SLOT_CTX` or, for a
    longer sweep, the longest length plus 1,024 tokens (instruction, question, answer), rounded
    up to 1,024."""
    if given:
        return given
    longest = parse_lengths(lengths)[-1] + 1024
    return max(SLOT_CTX, -(-longest // 1024) * 1024)


def task_documents(spec: str) -> list[Document] | None:
    """The user's documents named by `spec` (`scenario:<name>`: that scenario's long_doc task);
    None for an empty spec (the generated sweep)."""
    from workbench.tasks import SCENARIO_PREFIX, scenario_task

    if not spec:
        return None
    if not spec.startswith(SCENARIO_PREFIX):
        raise ValueError(f"documents={spec!r}: give scenario:<name> (a scenario whose task is long_doc), or "
                         "leave it empty for the generated contracts")
    return scenario_task(spec.removeprefix(SCENARIO_PREFIX)).documents()


def token_counter(session: Session, contender: Contender, client: httpx.Client
                  ) -> tuple[Callable[[str], int], str]:
    """(count, source): the embedded model's own tokenizer (its server's `/tokenize`, asked
    through `client`), else the chars/4 estimate (a hosted API has no free tokenizer endpoint in
    every dialect)."""
    if not contender.is_local:
        return chars_per_4, "chars/4"
    root = session.base_urls[contender.name].removesuffix("/v1")

    def count(text: str) -> int:
        resp = client.post(f"{root}/tokenize", json={"content": text})
        resp.raise_for_status()
        return len(resp.json()["tokens"])

    return count, "tokenizer"


def context_window(session: Session, contender: Contender) -> tuple[int | None, str]:
    """(tokens, where that comes from): the served slot of an embedded model, a window declared
    in the contenders file (`declared.context_window`), else the hosted model's from the SDK's
    model catalogue (`workbench.hosted_models`); None when nothing says."""
    server = session.server_for(contender)
    if server is not None:
        return server.n_ctx or server.model.n_ctx, f"served: one slot of {server.n_ctx or server.model.n_ctx} tokens"
    declared = contender.declared.get("context_window")
    if isinstance(declared, int) and declared > 0:
        return declared, "declared in the contenders file"
    if contender.local is not None:
        return LOCAL_MODELS[contender.local].n_ctx, "the model's default slot (a reused server)"
    from workbench.hosted_models import catalog_window

    window = catalog_window(contender)
    if window is not None:
        return window, "genai-prices model data"
    return None, "unknown (declare context_window in the contenders file)"


def document_prompt(contender: Contender, doc: Document, question: DocQuestion) -> Prompt:
    """The request for one question: the document first, the question after it, so every question
    of a document shares the document as its prefix. A chat API gets the document in the system
    message (after the contender's own system prompt: where Anthropic's cache breakpoint goes); a
    completion model's template gets both in its one prompt."""
    meta = {"document": doc.id, "question": question.id}
    if provider_for(contender).needs_prompt_template:
        return Prompt(id=question.id, text=f"{DOCUMENT_INSTRUCTION}\n\n{doc.text}\n\n{question.question}", meta=meta)
    system = "\n\n".join(x for x in (contender.system_prompt, DOCUMENT_INSTRUCTION, doc.text) if x)
    return Prompt(id=question.id, text=question.question, system=system, meta=meta)


def plan_documents(lengths: Sequence[int], depths: Sequence[float], docs_per_length: int, seed: int,
                   count: Callable[[str], int], source: str) -> list[Document]:
    """The generated documents of a sweep: `docs_per_length` per length, in length order."""
    return [generate(f"L{n}-{k}", n, depths=depths, seed=seed, count=count, token_source=source)
            for n in lengths for k in range(docs_per_length)]


async def _run(session: Session, lengths: Sequence[int], depths: Sequence[float], docs_per_length: int,
               seed: int, user_docs: Sequence[Document] | None, probe_window: bool, max_probe_tokens: int,
               stream: bool, timeout_s: float) -> list[Record]:
    records: list[Record] = []
    done = session.completed_ids() if session.resume else set()
    budget = session.budget
    with session.writer() as writer, httpx.Client(timeout=120.0, trust_env=False) as tokenizer:
        for c in session.contenders:
            window, window_source = context_window(session, c)
            count, source = token_counter(session, c, tokenizer)
            # A long prefill on a CPU takes minutes: the deadline is the contender's or `timeout_s`,
            # whichever is longer (a cut-off cold request loses the point, and the server finishes
            # it anyway, delaying the next question).
            patient = c.model_copy(update={"timeout_s": max(c.timeout_s, timeout_s)})
            cached = prefix_cached(patient, True) or patient
            target = session.target(cached, stream=stream)
            client = make_client(2, patient.timeout_s)
            common = {"window_tokens": window, "window_source": window_source}
            try:
                if user_docs is not None:
                    docs = [Document(d.id, d.text, d.questions, count(d.text), source, d.meta) for d in user_docs]
                else:
                    fits = [n for n in lengths if window is None or n < window]
                    docs = plan_documents(fits, depths, docs_per_length, seed, count, source)
                    for n in lengths:
                        if n not in fits:
                            print(f"{c.name}: {n} tokens is past its window ({window}, {window_source}): not sent")
                for k, doc in enumerate(docs):
                    if not doc.questions:
                        continue
                    shift = k % len(doc.questions)  # the cold question rotates over the depths
                    for i, q in enumerate([*doc.questions[shift:], *doc.questions[:shift]]):
                        rid = f"{c.name}:{q.id}" if q.id.startswith(f"{doc.id}:") else f"{c.name}:{doc.id}:{q.id}"
                        if rid in done:
                            continue
                        fields = {**common, "phase": "document", "doc_id": doc.id, "doc_tokens": doc.tokens,
                                  "doc_token_source": doc.token_source,
                                  "doc_target_tokens": doc.meta.get("target_tokens"),
                                  "question_id": q.id, "question_kind": q.kind, "depth": q.depth,
                                  "target_depth": q.target_depth, "depths": list(q.depths) or None,
                                  "cache_state": "cold" if i == 0 else "warm", "question_order": i}
                        rec = await _ask(client, target, document_prompt(c, doc, q), rid, fields, budget, writer)
                        if rec.ok:
                            g = grade_response(rec.output_text or "", q.answers, question=q.question)
                            rec.extra.update(grade=g.grade, correct=g.grade == "correct", answers=list(q.answers))
                        writer.write(rec)
                        records.append(rec)
                if probe_window and window is not None and window + 256 <= max_probe_tokens:
                    rid = f"{c.name}:window_probe"
                    if rid not in done:
                        doc = generate("window-probe", window + 256, depths=depths, seed=seed, count=count,
                                       token_source=source)
                        q = doc.questions[0]
                        fields = {**common, "phase": "window_probe", "doc_id": doc.id, "doc_tokens": doc.tokens,
                                  "doc_token_source": doc.token_source, "question_id": q.id,
                                  "cache_state": "cold"}
                        rec = await _ask(client, target, document_prompt(c, doc, q), rid, fields, budget, writer)
                        writer.write(rec)
                        records.append(rec)
            except BudgetExhausted as exc:
                print(f"stopped: {exc}")
                break
            finally:
                await client.aclose()
    return records


async def _ask(client: httpx.AsyncClient, target: Target, prompt: Prompt, rid: str, fields: dict[str, object],
               budget: Budget | None, writer: RecordWriter) -> Record:
    """One request; a request the budget refused is written (a `cancelled` record) and stops the run."""
    refused = budget.refused if budget is not None else 0
    rec = await probe(client, target, prompt, request_id=rid, extra=fields)
    if budget is not None and budget.refused > refused:
        writer.write(rec)
        raise BudgetExhausted(budget.spent_usd, budget.max_usd)
    return rec


def run_context(
    session: Session, *, lengths: str = "512,2048,8192", depths: str = "0.1,0.5,0.9", docs_per_length: int = 1,
    seed: int = 0, documents: Sequence[Document] | None = None, probe_window: bool = True,
    max_probe_tokens: int = 40_000, stream: bool = True, timeout_s: float = 600.0,
) -> list[Record]:
    """Run the experiment (see the module docstring); records go to `<run>/context.jsonl` as they
    complete. `documents`: the user's own (`Task.documents`), instead of the generated sweep.
    `timeout_s`: the per-request deadline, when longer than the contender's own."""
    if docs_per_length < 1:
        raise ValueError("docs_per_length must be >= 1")
    if max_probe_tokens < 0 or not math.isfinite(max_probe_tokens):
        raise ValueError("max_probe_tokens must be >= 0")
    return run_sync(_run(session, parse_lengths(lengths), parse_depths(depths), docs_per_length, seed,
                         documents, probe_window, max_probe_tokens, stream, timeout_s))
