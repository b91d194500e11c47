"""Coalesced prompts for document annotation: k documents in one prompt, the answer parsed back
into one label per document, and the keys that merge repeated documents. Pure functions (no
request is sent here; `workbench.experiments.coalescing` sends them).

Three levers cut what a batch of documents costs, independent of which model answers:
  - coalescing: k documents in one request, answered one line each ("<n>: <label>"),
    so the instructions and label list are paid for once per k documents;
  - de-duplication: documents that differ only in case, whitespace or punctuation are
    sent once, and their answer is copied to the rest;
  - an answer cache: a document seen before (same normalized key) is not sent again.
Coalescing trades cost for risk: the model may skip, reorder, repeat or invent lines. The
parser therefore reports everything it did not turn into a label, so a run can count the
failures instead of losing them.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass, field

__all__ = [
    "AnswerCache",
    "BatchParse",
    "build_batch_prompt",
    "dedupe",
    "normalize_doc",
    "parse_batch_answer",
    "parse_single_label",
]

# "1: x", "1. x", "1) x", "#1 - x", "[1] x", "Document 1: x", "doc #1 = x", "1 x"
_LINE = re.compile(
    r"""^(?:(?:document|doc|item|text)\s*)?   # optional word
        \[?\#?\s*(\d+)\s*\]?                  # the number, maybe [1] or #1
        (?:\s*[:.)\-–—=>]+\s*|\s+)            # separator, or just a space
        (.+?)\s*$""",
    re.IGNORECASE | re.VERBOSE,
)
_BULLET = re.compile(r"^\s*(?:[-*+•]\s+)+")
# Markdown emphasis and code marks around a word (`**billing**`, `_shipping_`), not the `_` inside
# a label such as `card_lost`.
_DECOR = re.compile(r"(?<![^\W_])[*_`]{1,3}|[*_`]{1,3}(?![^\W_])")
_PUNCT_EDGES = " \t\"'“”‘’.,;:!?()[]<>"


def _clean_label(raw: str) -> str:
    s = _DECOR.sub("", raw).strip(_PUNCT_EDGES)
    s = re.sub(r"^(?:label|category|class)\s*[:=-]\s*", "", s, flags=re.IGNORECASE)
    return s.strip(_PUNCT_EDGES)


def build_batch_prompt(docs: Sequence[tuple[str, str]], labels: Sequence[str]) -> str:
    """One request for k documents, numbered 1..k; the ids stay on our side.

    Line breaks inside a document are flattened so a document cannot look like two entries.
    """
    if not docs:
        raise ValueError("no documents")
    if not labels:
        raise ValueError("no labels")
    k = len(docs)
    body = "\n".join(f"{n}. {' '.join(text.split())}" for n, (_id, text) in enumerate(docs, start=1))
    # The answer's shape, shown: small instruction-tuned models follow a shown format more
    # reliably than a described one (without it, one answered "billing: refund"). Placeholders,
    # not real labels: a model copies example labels in order instead of classifying.
    example = "\n".join(f"{n}: <one label for document {n}>" for n in range(1, min(k, 3) + 1))
    return (
        f"Classify each of the {k} documents below with exactly one label from: {', '.join(labels)}.\n"
        f'Answer with exactly {k} lines, one per document, in the form "<n>: <label>" '
        f"for n = 1 to {k}, and nothing else. The label is one word from the list.\n"
        f"Answer format:\n{example}\n\n"
        f"Documents:\n{body}\n"
    )


@dataclass
class BatchParse:
    """What a coalesced answer said, and everything it failed to say.

    `labels` and `invalid` are keyed by 1-based document number; `duplicates` holds the later
    values given for a number already answered (the first one wins); `extra` holds lines that
    were not a numbered answer, or named a number outside 1..k.
    """

    k: int
    labels: dict[int, str] = field(default_factory=dict)
    missing: list[int] = field(default_factory=list)
    invalid: dict[int, str] = field(default_factory=dict)
    extra: list[str] = field(default_factory=list)
    duplicates: dict[int, list[str]] = field(default_factory=dict)

    @property
    def complete(self) -> bool:
        """Every document got a valid label (duplicates and extra lines may still be present)."""
        return len(self.labels) == self.k


def parse_batch_answer(text: str, k: int, labels: Sequence[str]) -> BatchParse:
    """Read "<n>: <label>" lines in any order, in the usual list forms; report the rest."""
    if k < 1:
        raise ValueError("k must be >= 1")
    canonical = {lab.casefold(): lab for lab in labels}
    out = BatchParse(k=k)
    seen: set[int] = set()
    for raw_line in text.splitlines():
        line = raw_line.strip()
        if not line or line.startswith("```"):
            continue
        m = _LINE.match(_DECOR.sub("", _BULLET.sub("", line)).strip())
        if m is None:
            out.extra.append(line)
            continue
        n = int(m.group(1))
        value = _clean_label(m.group(2))
        if not 1 <= n <= k:
            out.extra.append(line)
            continue
        if n in seen:
            out.duplicates.setdefault(n, []).append(value)
            continue
        seen.add(n)
        label = canonical.get(value.casefold())
        if label is None:
            out.invalid[n] = value
        else:
            out.labels[n] = label
    out.missing = [n for n in range(1, k + 1) if n not in seen]
    return out


def parse_single_label(text: str, labels: Sequence[str]) -> str | None:
    """The label of a one-document answer: the whole answer, or the one label word in it.

    None when no label, or more than one different label, appears: an ambiguous answer is
    wrong, not guessed.
    """
    canonical = {lab.casefold(): lab for lab in labels}
    whole = _clean_label(text.strip().splitlines()[0] if text.strip() else "")
    if whole.casefold() in canonical:
        return canonical[whole.casefold()]
    words = {w.casefold() for w in re.findall(r"[\w-]+", text)}
    found = {canonical[w] for w in words if w in canonical}
    return found.pop() if len(found) == 1 else None


def normalize_doc(text: str) -> str:
    """Key for near-duplicate detection: case, whitespace and punctuation do not count.

    Punctuation becomes a space (so "e-mail" and "email" stay different: that is a wording
    change, and folding it would start merging documents that differ in content).
    """
    s = unicodedata.normalize("NFKC", text).casefold()
    s = "".join(ch if ch.isalnum() or ch.isspace() else " " for ch in s)
    return " ".join(s.split())


def dedupe(docs: Sequence[tuple[str, str]]) -> tuple[list[tuple[str, str]], dict[str, str]]:
    """First occurrence of each normalized text, and every doc id → its canonical doc id."""
    first: dict[str, str] = {}
    unique: list[tuple[str, str]] = []
    mapping: dict[str, str] = {}
    for doc_id, text in docs:
        if doc_id in mapping:
            raise ValueError(f"duplicate document id {doc_id!r}")
        key = normalize_doc(text)
        if key not in first:
            first[key] = doc_id
            unique.append((doc_id, text))
        mapping[doc_id] = first[key]
    return unique, mapping


class AnswerCache:
    """Labels by normalized document key, counting hits and misses of `get`."""

    def __init__(self) -> None:
        self._answers: dict[str, str] = {}
        self.hits = 0
        self.misses = 0

    def get(self, text: str) -> str | None:
        label = self._answers.get(normalize_doc(text))
        if label is None:
            self.misses += 1
        else:
            self.hits += 1
        return label

    def put(self, text: str, label: str) -> None:
        self._answers[normalize_doc(text)] = label

    def __len__(self) -> int:
        return len(self._answers)

    def __contains__(self, text: object) -> bool:
        return isinstance(text, str) and normalize_doc(text) in self._answers
