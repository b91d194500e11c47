"""Intent routing: which label an answer gives, and whether it is right.

A routing prompt (`experiments/prompts/routing.jsonl`) carries `meta.expected` and, for an
ambiguous message, `meta.acceptable` (every label a reasonable annotator would accept). The
label read from an answer is the one intent it names, as a whole word after lower-casing
("Billing.", "**shipping**", "Intent: account"); an answer that names none, or more than one
("billing or shipping"), has no label and counts as wrong — a router that hedges has not routed.
Correct = the label is `expected`, or one of `acceptable`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

__all__ = ["grade_route", "labels_of", "read_label"]

_WORD = re.compile(r"[a-z]+")


def labels_of(metas: Iterable[Mapping[str, Any]]) -> list[str]:
    """Every label a prompt set uses (`expected` and `acceptable`), sorted."""
    found: set[str] = set()
    for meta in metas:
        if meta.get("expected"):
            found.add(str(meta["expected"]))
        found.update(str(x) for x in meta.get("acceptable") or ())
    return sorted(found)


def read_label(answer: str, labels: Sequence[str]) -> str | None:
    """The one label `answer` names, or None when it names none or several."""
    words = set(_WORD.findall(answer.lower()))
    named = [lab for lab in labels if lab.lower() in words]
    return named[0] if len(named) == 1 else None


def grade_route(answer: str | None, meta: Mapping[str, Any], labels: Sequence[str]) -> tuple[str | None, bool | None]:
    """(label read, correct) for one answer; (None, None) when the prompt has no expected label."""
    expected = meta.get("expected")
    if not expected:
        return None, None
    label = read_label(answer or "", labels)
    accepted = {str(expected), *(str(x) for x in meta.get("acceptable") or ())}
    return label, label is not None and label in accepted
