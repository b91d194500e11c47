"""Intent routing: which label an answer gives, and whether it is right.

A routing prompt (`experiments/prompts/routing.jsonl`) carries `meta.expected` and, for an
ambiguous message, `meta.acceptable` (every label a reasonable annotator would accept). The
label read from an answer is the one intent it names, as a whole token after lower-casing
("Billing.", "**shipping**", "Intent: account", "card_lost", "card-lost", "2fa_reset"); an
answer that names none, or more than one ("billing or shipping"), has no label and counts as
wrong — a router that hedges has not routed. Correct = the label is `expected`, or one of
`acceptable`.

How a label is found:
- A label is a token of letters, digits, `_` and `-`; it matches only where neither side
  continues such a token, so `card` is not read inside `card_lost`. The separators of a
  multi-part label are interchangeable (`card_lost` matches `card lost` and `card-lost`: models
  rewrite them), and where one label's match lies inside a longer label's (`account` inside
  `account access` for `account_access`) only the longer counts.
- An echoed input does not name a label. A model that repeats the message ("my account is
  locked") would otherwise be read as answering the label its words happen to contain, and score
  by accident. So, before reading, every verbatim copy of the prompt — the whole prompt, and each
  quoted passage in it (the message of the bundled routing prompts) — is cut out of the answer
  (case and runs of whitespace ignored). A paraphrased echo is not recognised: the reader cannot
  tell one from an answer; the guard is for the degenerate model that copies its input.

`unread_note` says when a contender's answers name no label at all: then its 0% is a reading
failure (the labels are spelled differently, or the answers are not labels), not routing.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

__all__ = ["grade_route", "labels_of", "read_label", "strip_echo", "unread_note"]

_TOKEN = "a-z0-9_-"
_SEPARATORS = re.compile(r"[_\-\s]+")
_QUOTED = re.compile(r"\"([^\"]{8,})\"|“([^”]{8,})”")
_SPACES = re.compile(r"\s+")


def labels_of(metas: Iterable[Mapping[str, Any]]) -> list[str]:
    """Every label a prompt set uses (`expected` and `acceptable`), sorted."""
    found: set[str] = set()
    for meta in metas:
        if meta.get("expected"):
            found.add(str(meta["expected"]))
        found.update(str(x) for x in meta.get("acceptable") or ())
    return sorted(found)


def _label_pattern(label: str) -> re.Pattern[str]:
    parts = [re.escape(p) for p in _SEPARATORS.split(label.lower().strip()) if p]
    return re.compile(rf"(?<![{_TOKEN}])" + r"[_\-\s]+".join(parts) + rf"(?![{_TOKEN}])")


def strip_echo(answer: str, prompt: str | None) -> str:
    """`answer` lower-cased with whitespace runs made one space, and every verbatim copy of
    `prompt`, or of a quoted passage in it, cut out (see the module docstring)."""
    text = _SPACES.sub(" ", answer.lower())
    if not prompt:
        return text
    norm = _SPACES.sub(" ", prompt.lower()).strip()
    echoes = [norm] + [_SPACES.sub(" ", a or b).strip() for a, b in _QUOTED.findall(norm)]
    for echo in sorted({e for e in echoes if len(e) >= 8}, key=len, reverse=True):
        text = text.replace(echo, " | ")
    return text


def read_label(answer: str, labels: Sequence[str], prompt: str | None = None) -> str | None:
    """The one label `answer` names, or None when it names none or several; with `prompt`, copies
    of it in the answer are not read (`strip_echo`)."""
    text = strip_echo(answer, prompt)
    spans: list[tuple[int, int, str]] = []
    for lab in labels:
        if lab.strip():
            spans += [(m.start(), m.end(), lab) for m in _label_pattern(lab).finditer(text)]
    named = {lab for s, e, lab in spans
             if not any(s2 <= s and e <= e2 and (e2 - s2) > (e - s) for s2, e2, _ in spans)}
    return named.pop() if len(named) == 1 else None


def grade_route(answer: str | None, meta: Mapping[str, Any], labels: Sequence[str],
                prompt: str | None = None) -> tuple[str | None, bool | None]:
    """(label read, correct) for one answer; (None, None) when the prompt has no expected label.
    `prompt`: the text the model was sent, whose echoes are not read as a label."""
    expected = meta.get("expected")
    if not expected:
        return None, None
    label = read_label(answer or "", labels, prompt)
    accepted = {str(expected), *(str(x) for x in meta.get("acceptable") or ())}
    return label, label is not None and label in accepted


def unread_note(contender: str, n_graded: int, n_read: int, labels: Sequence[str]) -> str | None:
    """A warning when none of a contender's `n_graded` answers named a label (`n_read` == 0), else
    None: its accuracy of 0% then says the answers were not read, not that it routed wrong."""
    if n_graded == 0 or n_read > 0:
        return None
    return (f"{contender}: none of its {n_graded} graded answers names one of the labels "
            f"({', '.join(labels)}); its routing accuracy of 0% means the answers could not be read "
            "as labels (spelled differently, or not a label at all), not that it routed them wrong")
