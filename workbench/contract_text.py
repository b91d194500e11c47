"""Long contract-style documents written by code, with facts planted at known depths.

The context experiment needs documents of any length whose answers sit at a known position, and
that no model has seen: a published contract may be in a model's training data, and a real one
cannot be shipped. So the bundled example is generated, deterministically from a seed: the
generator ships, not megabytes of text.

A document is numbered sections of contract boilerplate (the *filler*), with one *fact*
sentence planted at each requested depth (0.1 = a tenth of the way in, by characters), and its
questions, each graded by the deterministic grader (`workbench.analysis.grading`):

- single-fact questions, one per depth ("Who is the escrow agent under the agreement?");
- one two-fact question whose answer needs two sentences far apart (`LINK_DEPTHS`): the first
  names the supplier's auditor, the second says where each of two audit firms keeps its
  records, so the city is found only by linking the two.

The filler is drawn from clauses that hold none of the facts' key phrases, names, cities or
amounts (`FACT_TERMS`; tests check every generated document), so an answer can only come from
its planted sentence. Lengths are in the caller's tokens: `generate` takes a token counter (the
contender's own tokenizer, or an estimate) and sizes the filler to the target.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence

from workbench.documents import DocQuestion, Document, chars_per_4

__all__ = ["FACT_TERMS", "LINK_DEPTHS", "generate"]

#: Where the two-fact question's sentences sit: far apart, neither at a single-fact depth.
LINK_DEPTHS = (0.2, 0.8)

_NAMES = ("Halvorsen", "Quenby", "Marrowfield", "Ostrander", "Vellacott", "Pembury", "Ashgrove", "Tolliver",
          "Branscombe", "Kettleby", "Dunmore", "Fairweather", "Ravensworth", "Colquhoun", "Abernethy", "Whitlock")
_CITIES = ("Drummore", "Tallowick", "Brisendale", "Carrowmore", "Eastleigh Vale", "Fenwick Cross", "Glenharrow",
           "Holloway Bay", "Inverlass", "Juniper Falls", "Kestrel Point", "Lowther", "Merriton", "Northavon")
_FIRST = ("Imogen", "Tobias", "Priya", "Anselm", "Marguerite", "Declan", "Solveig", "Ezra")
_CODE_WORDS = ("KESTREL", "LANTERN", "OBSIDIAN", "JUNIPER", "TAMARIND", "VERMILION", "HALCYON", "SAFFRON")


# (kind, planted sentence, question, answers) — `{v}` is the planted value.
_SINGLE: tuple[tuple[str, str, str, Callable[[str], tuple[str, ...]], Callable[[random.Random], str]], ...] = (
    ("escrow", "The escrow agent under this Agreement shall be {v} Trust.",
     "Who is the escrow agent under the agreement?", lambda v: (f"{v} Trust", v),
     lambda r: r.choice(_NAMES)),
    ("damages", "The liquidated damages cap is fixed at ${v}.",
     "What is the liquidated damages cap?", lambda v: (v,),
     lambda r: f"{r.randint(11, 97)},{r.randint(1, 9)}50"),
    ("arbitration", "All arbitration hearings shall be held in {v}.",
     "In which city are arbitration hearings held?", lambda v: (v,),
     lambda r: r.choice(_CITIES)),
    ("code", "The project code assigned to this engagement is {v}.",
     "What is the project code assigned to the engagement?", lambda v: (v,),
     lambda r: r.choice(_CODE_WORDS)),
    ("officer", "The designated compliance officer is {v}.",
     "Who is the designated compliance officer?", lambda v: (v, v.split()[-1]),
     lambda r: f"{r.choice(_FIRST)} {r.choice(_NAMES)}"),
)

#: Phrases only planted sentences may hold: a filler with one of these could hold an answer.
FACT_TERMS: tuple[str, ...] = ("escrow", "liquidated", "arbitration", "project code", "compliance officer",
                               "auditor", "audit", "$", *_NAMES, *_CITIES, *_FIRST, *_CODE_WORDS)

_PARTIES = ("the Supplier", "the Customer", "each Party", "the receiving Party", "the disclosing Party")
_VERBS = ("shall maintain", "shall promptly notify the other Party of", "may not assign",
          "shall use reasonable efforts to preserve", "shall keep accurate records of",
          "shall not unreasonably withhold consent to", "remains responsible for", "shall review")
_OBJECTS = ("the Deliverables", "any Confidential Information", "the Services", "its obligations hereunder",
            "all applicable permits", "the agreed service levels", "any change in control",
            "the insurance policies described herein", "the acceptance criteria", "any subcontractor")
_CONDITIONS = ("unless otherwise agreed in writing", "during the Term", "to the extent permitted by law",
               "without undue delay", "in accordance with Good Industry Practice", "at its own cost",
               "save as expressly provided in this Agreement", "following a written request")
_HEADINGS = ("Definitions", "Services", "Term and Renewal", "Fees and Payment", "Confidentiality",
             "Intellectual Property", "Warranties", "Limitation of Liability", "Insurance", "Data Protection",
             "Subcontracting", "Change Control", "Force Majeure", "Termination", "Notices", "General")
_TAILS = ("Any notice under this clause shall be given in writing.",
          "Nothing in this clause limits the rights of either Party under the general law.",
          "The Parties shall act in good faith in all matters arising under this clause.",
          "Where this clause conflicts with a Schedule, this clause prevails.",
          "A waiver of any right under this clause is effective only if given in writing.")


def _clause(r: random.Random) -> str:
    return f"{r.choice(_PARTIES).capitalize()} {r.choice(_VERBS)} {r.choice(_OBJECTS)} {r.choice(_CONDITIONS)}."


def _section(r: random.Random, n: int) -> str:
    body = " ".join(_clause(r) for _ in range(r.randint(1, 3)))
    return f"Section {n}. {r.choice(_HEADINGS)}.\n{body} {r.choice(_TAILS)}"


def _filler(r: random.Random, n_sections: int) -> list[str]:
    return [_section(r, k + 1) for k in range(n_sections)]


def _plant(sections: list[str], plants: Sequence[tuple[float, str]]) -> tuple[str, list[float]]:
    """The document with each sentence as its own paragraph at the section boundary nearest its
    depth (by characters), and the depths as planted (characters before it / document length)."""
    total = sum(len(x) + 2 for x in sections)
    bounds = [sum(len(x) + 2 for x in sections[:k]) / total for k in range(1, len(sections))]
    at: dict[int, list[str]] = {}
    for depth, sentence in plants:
        k = min(range(len(bounds)), key=lambda i: abs(bounds[i] - depth)) + 1 if bounds else 1
        at.setdefault(k, []).append(sentence)
    out: list[str] = []
    for k, section in enumerate(sections):
        out.extend(at.get(k, []))
        out.append(section)
    out.extend(at.get(len(sections), []))
    text = "\n\n".join(out)
    return text, [text.index(s) / len(text) for _, s in plants]


def generate(
    doc_id: str, target_tokens: int, *, depths: Sequence[float] = (0.1, 0.5, 0.9), seed: int = 0,
    count: Callable[[str], int] = chars_per_4, token_source: str = "chars/4",
) -> Document:
    """A contract of about `target_tokens` tokens (as `count` counts them) with one fact planted
    at each of `depths` and the two-fact pair at `LINK_DEPTHS`, and its questions.

    Deterministic in (`doc_id`, `target_tokens`, `depths`, `seed`, `count`): each fact's value
    comes from the seeded generator, so two documents of one run ask about different values."""
    if target_tokens < 64:
        raise ValueError(f"target_tokens must be >= 64, got {target_tokens}")
    if not depths or any(not 0.0 < d < 1.0 for d in depths):
        raise ValueError(f"depths must be fractions strictly between 0 and 1, got {list(depths)}")
    if len(depths) > len(_SINGLE):
        raise ValueError(f"at most {len(_SINGLE)} depths per document, got {len(depths)}")
    r = random.Random(f"{seed}:{doc_id}:{target_tokens}")
    kinds = r.sample(range(len(_SINGLE)), len(depths))
    plants: list[tuple[float, str]] = []
    questions: list[DocQuestion] = []
    for i, (depth, k) in enumerate(zip(depths, kinds, strict=True)):
        kind, sentence, question, answers, value = _SINGLE[k]
        v = value(r)
        plants.append((depth, sentence.format(v=v)))
        questions.append(DocQuestion(f"{doc_id}:q{i}:{kind}", question, answers(v), depth, "single",
                                     target_depth=depth))
    firm, decoy = r.sample(_NAMES, 2)
    city, other = r.sample(_CITIES, 2)
    plants.append((LINK_DEPTHS[0], f"The Supplier appoints {firm} Auditors as its independent auditor."))
    plants.append((LINK_DEPTHS[1], f"{decoy} Auditors keeps its audit records in {other}, while {firm} Auditors "
                                   f"keeps its audit records in {city}."))
    questions.append(DocQuestion(f"{doc_id}:q{len(depths)}:two_fact",
                                 "In which city does the Supplier's independent auditor keep its audit records?",
                                 (city,), None, "two_fact"))
    title = f"MASTER SERVICES AGREEMENT No. {doc_id}\n\n"
    # Size the filler in two passes: from the counter's rate on a sample, then corrected once.
    sample = "\n\n".join(_filler(random.Random(f"{seed}:sample"), 8))
    per_section = count(sample) / 8
    n = max(2, round(target_tokens / per_section))
    for _ in range(3):
        text, planted = _plant(_filler(random.Random(f"{seed}:{doc_id}:{target_tokens}:filler"), n), plants)
        tokens = count(title + text)
        if abs(tokens - target_tokens) <= per_section:
            break
        n = max(2, n + round((target_tokens - tokens) / per_section))
    by_sentence = dict(zip((s for _, s in plants), planted, strict=True))
    fixed = [DocQuestion(q.id, q.question, q.answers, round(by_sentence[plants[i][1]], 3), q.kind,
                         target_depth=q.target_depth) for i, q in enumerate(questions[:-1])]
    link = questions[-1]
    fixed.append(DocQuestion(link.id, link.question, link.answers, None, link.kind,
                             tuple(round(by_sentence[s], 3) for _, s in plants[-2:])))
    return Document(doc_id, title + text, tuple(fixed), tokens, token_source,
                    {"seed": seed, "target_tokens": target_tokens})
