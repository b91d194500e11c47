"""A batch scenario's documents by length: how long they are for a contender, whether the longest
fits its context window (or what chunking it costs), and the night priced document by document.

Definitions (README "The batch scenario's documents"):

- **document length** (tokens) of a document for a contender: the input tokens of the request
  that carries that document alone, as the run measured it — the context experiment's count of
  the document (`doc_tokens`: the contender's tokenizer or the server's usage, as its record
  says), else the server's usage of the coalescing experiment's one-document (`naive`) request
  (the instruction included: that is what the window must hold). A document the run did not
  send is estimated as characters / 4 plus the contender's measured instruction overhead (median
  usage − characters / 4 over the documents it sent), or characters / 4 alone when it sent none
  — flagged as estimated wherever the numbers are shown;
- **p50 / p95 / max** of those lengths over the scenario's documents (numpy's linear percentile);
- **window** of a contender: its probed or declared `context_window` (capabilities.json), the
  contenders file's `declared.context_window`, the context experiment's recorded window or,
  failing those, the smallest length it refused (`context_length_exceeded`); then an embedded
  model's slot (`workbench.embedded`) or the model catalogue's (genai-prices model data); unknown
  otherwise;
- **longest document / window** (`longest_doc_window_share`): the hard constraint ≤ 100% — a
  fact, judged on its value; unknown window: inconclusive, saying why. With `chunking: {max_tokens:
  N}` a document longer than N is sent as ceil(length / N) requests of at most N tokens each, so
  the constraint reads the longest request (min(longest, N)) and the matrix shows the extra
  requests and cost per night;
- **night at the documents' lengths** (hosted): documents per night × the mean over the
  scenario's documents of each one's request(s) priced at its own size
  (`pricing.sized_request_cost`: long-context tiers apply), with the measured output tokens per
  document; self-hosted contenders are priced by machine time (the cost axis), not per token.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from workbench.analysis.evidence import Evidence, Metric
from workbench.errors import ConfigError

if TYPE_CHECKING:
    from workbench.config import Contender

__all__ = ["DocLengths", "chunk_sizes", "contender_window", "document_metrics", "measured_lengths", "read_texts"]


@dataclass(frozen=True)
class DocLengths:
    """Per document of the scenario, its length in tokens for one contender, and how counted."""

    tokens: dict[str, int]
    source: str
    estimated: int  # how many of them are estimates (characters / 4), not counts

    def percentile(self, q: float) -> float:
        values = np.fromiter(self.tokens.values(), dtype=float)
        return float(np.percentile(values, q)) if len(values) else math.nan

    @property
    def longest(self) -> int:
        return max(self.tokens.values()) if self.tokens else 0


def _context_counts(ev: Evidence, label: str, ids: set[str]) -> tuple[dict[str, int], str]:
    df = ev.frames.get("context")
    if df is None or "doc_id" not in df or "doc_tokens" not in df:
        return {}, ""
    g = df[(df["label"] == label) & df["doc_id"].astype(str).isin(ids) & df["doc_tokens"].notna()]
    if not len(g):
        return {}, ""
    how = sorted({str(x) for x in g["doc_token_source"].dropna()}) if "doc_token_source" in g else []
    counts = g.groupby(g["doc_id"].astype(str))["doc_tokens"].median()
    return {k: round(float(v)) for k, v in counts.items()}, f"context experiment ({', '.join(how) or 'counted'})"


def _usage_counts(ev: Evidence, label: str, ids: set[str]) -> dict[str, int]:
    g = ev.doc_requests.get(label, {}).get("naive")
    if g is None or "doc_ids" not in g or "input_tokens" not in g:
        return {}
    ok = g[(g["status"] == "ok") & g["input_tokens"].notna()]
    pairs = [(str(d[0]), float(t)) for d, t in zip(ok["doc_ids"], ok["input_tokens"], strict=True)
             if isinstance(d, list | tuple) and len(d) == 1 and str(d[0]) in ids]
    if not pairs:
        return {}
    s = pd.DataFrame(pairs, columns=["doc", "tokens"]).groupby("doc")["tokens"].median()
    return {k: round(float(v)) for k, v in s.items()}


def measured_lengths(ev: Evidence, label: str, texts: Mapping[str, str]) -> DocLengths:
    """The scenario's documents (`texts`: id → text) in tokens for contender `label` (see the
    module docstring for the order of sources)."""
    ids = set(texts)
    counts, source = _context_counts(ev, label, ids)
    if not counts:
        counts = _usage_counts(ev, label, ids)
        source = "server usage of one-document requests (instruction included)" if counts else ""
    overhead = float(np.median([counts[k] - len(texts[k]) / 4 for k in counts])) if counts else 0.0
    tokens = dict(counts)
    for k, text in texts.items():
        if k not in tokens:
            tokens[k] = max(1, math.ceil(len(text) / 4 + max(overhead, 0.0)))
    estimated = len(texts) - len(counts)
    if estimated:
        how = ("characters / 4 + the measured instruction overhead" if counts else
               "characters / 4 (no measured count)")
        source = f"{source}; {estimated} of {len(texts)} estimated as {how}" if source else \
            f"estimated: {how}"
    return DocLengths(tokens, source, estimated)


def contender_window(ev: Evidence, label: str, contender: Contender | None) -> tuple[int | None, str]:
    """(tokens, where the number comes from) of the contender's context window, in the module
    docstring's order; (None, why) when nothing says."""
    fact = ev.facts.get(label, {}).get("context_window", {})
    if isinstance(fact, dict) and isinstance(fact.get("value"), int | float) and fact["value"] > 0:
        return int(fact["value"]), f"capabilities.json ({fact.get('source') or 'probed'})"
    declared = contender.declared.get("context_window") if contender is not None else None
    if isinstance(declared, int) and declared > 0:
        return declared, "declared in the contenders file"
    ctx = ev.frames.get("context")
    if ctx is not None and "window_tokens" in ctx:
        g = ctx[ctx["label"] == label]
        window = pd.to_numeric(g["window_tokens"], errors="coerce").dropna()
        if len(window):
            return int(window.iloc[0]), "the context experiment's record"
        refused = g[g["error_class"] == "context_length_exceeded"] if "error_class" in g else g.iloc[0:0]
        if len(refused) and "doc_tokens" in refused and refused["doc_tokens"].notna().any():
            return int(refused["doc_tokens"].min()), "the context experiment: the smallest length it refused"
    if contender is not None and contender.local is not None:
        from workbench.embedded import LOCAL_MODELS

        return LOCAL_MODELS[contender.local].n_ctx, "the embedded model's slot (workbench.embedded)"
    if contender is not None and not contender.is_local:
        from workbench.hosted_models import catalog_window

        window = catalog_window(contender)
        if window is not None:
            return window, "genai-prices model data"
    return None, "unknown: declare context_window in the contenders file, or run the context experiment"


def chunk_sizes(length: int, max_tokens: int | None) -> list[int]:
    """The requests a document of `length` tokens is sent as: itself, or with chunking pieces of
    at most `max_tokens` (the last one the remainder)."""
    if max_tokens is None or length <= max_tokens:
        return [length]
    k = math.ceil(length / max_tokens)
    return [max_tokens] * (k - 1) + [length - max_tokens * (k - 1)]


def _output_per_doc(ev: Evidence, label: str) -> int:
    g = ev.doc_requests.get(label, {}).get("naive")
    if g is None or "output_tokens" not in g:
        return 0
    out = pd.to_numeric(g.loc[g["status"] == "ok", "output_tokens"], errors="coerce").dropna()
    return round(float(out.mean())) if len(out) else 0


def _night_cost(ev: Evidence, label: str, contender: Contender | None, pieces: Sequence[Sequence[int]],
                documents_per_night: int) -> tuple[float, str]:
    if contender is None:
        return math.nan, "not in the contenders file"
    if contender.machine_priced:
        return math.nan, "self-hosted: priced by machine time (the cost axis), not per token"
    from workbench.pricing import sized_request_cost

    out_tokens = _output_per_doc(ev, label)
    per_doc, source = [], ""
    for sizes in pieces:
        total = 0.0
        for size in sizes:
            usd, source = sized_request_cost(contender, size, out_tokens)
            if usd is None:
                return math.nan, source
            total += usd
        per_doc.append(total)
    return documents_per_night * float(np.mean(per_doc)), source


def document_metrics(ev: Evidence, label: str, contender: Contender | None, texts: Mapping[str, str], *,
                     documents_per_night: int, chunk_tokens: int | None) -> dict[str, Metric]:
    """The batch scenario's document-length metrics for one contender: `doc_tokens_p50`,
    `_p95`, `_max` (n = documents), `longest_doc_window_share` (the hard constraint's metric, a
    fact), and with chunking `chunk_requests_per_doc`; `night_cost_at_lengths_usd` (hosted).
    Empty when the scenario has no documents."""
    if not texts:
        return {}
    lengths = measured_lengths(ev, label, texts)
    n = len(lengths.tokens)
    out = {f"doc_tokens_{name}": Metric(value, n=n, method="fixed", source=lengths.source)
           for name, value in (("p50", lengths.percentile(50)), ("p95", lengths.percentile(95)),
                               ("max", float(lengths.longest)))}
    window, window_source = contender_window(ev, label, contender)
    pieces = [chunk_sizes(t, chunk_tokens) for t in lengths.tokens.values()]
    longest_request = max(max(p) for p in pieces)
    what = (f"longest request {longest_request:,} tokens (chunks of at most {chunk_tokens:,})"
            if chunk_tokens is not None and longest_request < lengths.longest
            else f"longest document {lengths.longest:,} tokens ({lengths.source})")
    out["longest_doc_window_share"] = (
        Metric(longest_request / window, n=n, method="fixed", source=f"{what} / window {window:,} ({window_source})")
        if window is not None else Metric(math.nan, source=f"{what}; window {window_source}"))
    if chunk_tokens is not None:
        rpd = float(np.mean([len(p) for p in pieces]))
        out["chunk_requests_per_doc"] = Metric(rpd, n=n, method="fixed", source=(
            f"documents longer than {chunk_tokens:,} tokens sent as ceil(length / {chunk_tokens:,}) requests: "
            f"{documents_per_night * (rpd - 1):,.0f} extra requests a night"))
    usd, source = _night_cost(ev, label, contender, pieces, documents_per_night)
    out["night_cost_at_lengths_usd"] = Metric(usd, n=n, method="fixed", source=(
        f"{documents_per_night:,} documents × each priced at its own length ({source})" if usd == usd else source))
    return out



def read_texts(path: Path) -> dict[str, str]:
    """id → text of a documents JSONL file (`id`, `text`, other fields ignored), as the bundled
    annotation workload's `documents.jsonl`; a bad line is a ConfigError naming file, line and field."""
    out: dict[str, str] = {}
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            raise ConfigError(str(path), f"line {n}", f"not JSON: {exc.msg}") from None
        if not isinstance(obj, dict) or not isinstance(obj.get("text"), str):
            raise ConfigError(str(path), f"line {n}: text", "each document needs a text (a string)")
        out[str(obj.get("id", f"line-{n}"))] = obj["text"]
    return out
