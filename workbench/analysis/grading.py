"""Deterministic grading of short answers: correct, incorrect or not attempted, without an LLM.

Hallucination spot-checks need a grader that is cheap, repeatable and explainable, so the default
one is rule-based (SQuAD-style normalisation plus a few SimpleQA-style judgements):

- answerable item: the response is *correct* when it states an accepted answer (as whole tokens
  after normalisation, numbers compared by value) and names no second candidate of the answer's
  kind beside it: another number ("1968 or 1969", "1968-1969", "1914 and 1915", "1914/1915") or
  another name in a list ("Paris, Lyon, or Marseille", "Paris/Lyon", "Paris and Lyon",
  "Shakespeare, Marlowe, Bacon", "Oslo, possibly Bergen"). Commas, slashes and "and" inside an
  accepted answer are part of it ("Romeo and Juliet", "AC/DC", "Washington, D.C."). An answer
  taken back ("Paris is not correct; it is Lyon", "Nile. Wait, no: Amazon.") does not count; a
  candidate the response rejects before landing on the accepted one is not a hedge ("Paris is
  not correct; it is Lyon" is correct when the answer is Lyon, as "not Sydney but Canberra" is):
  the response commits to one answer. It is *not attempted* when it abstains ("I don't know",
  "not mentioned in the passage"); anything else is *incorrect*.
- unanswerable item (false premise, answer not in the passage): abstaining or rejecting the
  premise is *correct* (SimpleQA convention: a right refusal scores) only when no answer is
  asserted beside it: a number or a bare name stated before the rejection ("1935. He did not win
  another afterwards.", "He won it in 1921 but never again") or a guess anywhere ("probably
  Jacques Cousteau") makes the response *incorrect*, as does asserting an answer with no
  rejection at all. Names and numbers the question itself holds are not asserted (pass
  `question`).

Some cases the rules cannot settle: "Canberra, Australia" (a qualifier, or a two-item list?), a
rejection followed by names or numbers ("...never won an Oscar. He won the Nobel Prize in 1921":
context, or an answer?), a name before a rejection (the premise's subject, or an answer?).
`grade_response` returns the rules' best reading with a `doubt` saying so; those are the
answers to hand to a model judge.

Partial names only count when the dataset lists them as aliases ("Einstein" for "Albert
Einstein"): the grader never guesses which part of a name is enough; the dataset decides.

A model-graded mode is prepared here too (`JUDGE_PROMPT`, `parse_judge_verdict`) for free-form
answers the rules cannot judge; calling the judge model is the caller's business.

Datasets are JSONL files of `QAItem`s (see `experiments/datasets/README.md`); `load_dataset`
validates every line so a typo fails loudly with file, line and field.
"""

from __future__ import annotations

import itertools
import math
import random
import re
import textwrap
import unicodedata
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

from workbench import workspace
from workbench.datafiles import KINDS, jsonl_records, read_rows
from workbench.errors import ConfigError
from workbench.images import resolve_images
from workbench.types import ImageInput

__all__ = [
    "CATEGORIES",
    "DATASET_FIELDS",
    "DEFAULT_DATASETS_DIR",
    "GRADES",
    "JUDGE_PROMPT",
    "Grade",
    "QAItem",
    "grade_answer",
    "grade_response",
    "is_abstention",
    "load_dataset",
    "normalize",
    "parse_judge_verdict",
    "rejects_premise",
    "stratified_sample",
    "token_f1",
]

#: The bundled example's QA datasets (a run reads the workspace's: `workbench.workspace`).
DEFAULT_DATASETS_DIR = workspace.bundled().root / "datasets"

GRADES: tuple[str, str, str] = ("correct", "incorrect", "not_attempted")

# The categories the shipped datasets use. Users may add their own (any lowercase slug); these
# are listed so notebooks can order and label them.
CATEGORIES: tuple[str, ...] = (
    "people",
    "places",
    "dates",
    "numbers",
    "science",
    "units",
    "false_premise",
    "unanswerable",
    "grounded",
    "grounded_unanswerable",
    # the generated image spot-check (workbench.imageset)
    "image_count",
    "image_colour",
    "image_chart",
    "image_text",
    "image_table",
    "image_unanswerable",
)

# ---------------------------------------------------------------------------------------------
# Normalisation
# ---------------------------------------------------------------------------------------------

_ARTICLES = frozenset({"a", "an", "the"})
_UNITS_WORDS: dict[str, int] = {
    "zero": 0, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7,
    "eight": 8, "nine": 9, "ten": 10, "eleven": 11, "twelve": 12, "thirteen": 13, "fourteen": 14,
    "fifteen": 15, "sixteen": 16, "seventeen": 17, "eighteen": 18, "nineteen": 19,
}  # fmt: skip
_TENS_WORDS: dict[str, int] = {
    "twenty": 20, "thirty": 30, "forty": 40, "fifty": 50, "sixty": 60, "seventy": 70, "eighty": 80,
    "ninety": 90,
}  # fmt: skip
_SCALE_WORDS: dict[str, int] = {
    "hundred": 100, "thousand": 1_000, "million": 1_000_000, "billion": 1_000_000_000,
    "trillion": 1_000_000_000_000,
}  # fmt: skip
_ORDINAL_WORDS: dict[str, int] = {
    "first": 1, "second": 2, "third": 3, "fourth": 4, "fifth": 5, "sixth": 6, "seventh": 7,
    "eighth": 8, "ninth": 9, "tenth": 10, "eleventh": 11, "twelfth": 12, "thirteenth": 13,
    "fourteenth": 14, "fifteenth": 15, "sixteenth": 16, "seventeenth": 17, "eighteenth": 18,
    "nineteenth": 19, "twentieth": 20, "thirtieth": 30, "fortieth": 40, "fiftieth": 50,
    "sixtieth": 60, "seventieth": 70, "eightieth": 80, "ninetieth": 90, "hundredth": 100,
    "thousandth": 1000, "millionth": 1_000_000,
}  # fmt: skip
_NUMBER = re.compile(r"^\d+(?:\.\d+)?$")
_DIGIT_ORDINAL = re.compile(r"^(\d+)(?:st|nd|rd|th)$")
_PUNCT_TO_SPACE = re.compile(r"[^\w\s.'\x00]|_")  # "." and "'" are handled separately


def _ordinal(n: int) -> str:
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


def _format_number(value: Decimal) -> str:
    if value == value.to_integral_value():
        return str(int(value))
    return format(value.normalize(), "f")


def _is_number_word(tok: str) -> bool:
    return tok in _UNITS_WORDS or tok in _TENS_WORDS or tok in _SCALE_WORDS or tok in _ORDINAL_WORDS


def _words_to_number(run: list[str]) -> tuple[list[str], bool]:
    """Turn a run of number words into canonical digit tokens; True if it ended in an ordinal.

    Spoken years ("nineteen sixty nine") are two two-digit groups with no scale word; a run of
    small numbers otherwise ("one two three") stays a list of separate numbers.
    """
    ordinal = run[-1] in _ORDINAL_WORDS
    groups: list[int] = []  # small groups (0..99) and scale markers (negative = scale value)
    pending: int | None = None
    for tok in run:
        if tok == "and":
            continue
        value = _ORDINAL_WORDS.get(tok) if tok in _ORDINAL_WORDS else None
        if tok in _SCALE_WORDS or (value is not None and value >= 100):
            scale = _SCALE_WORDS.get(tok) or (value if value is not None else 1)
            if pending is not None:
                groups.append(pending)
                pending = None
            groups.append(-scale)
            continue
        small = value if value is not None else _UNITS_WORDS.get(tok, _TENS_WORDS.get(tok, 0))
        if pending is not None and pending % 10 == 0 and pending >= 20 and small < 10:
            pending += small  # "sixty nine"
        else:
            if pending is not None:
                groups.append(pending)
            pending = small
    if pending is not None:
        groups.append(pending)
    if not any(g < 0 for g in groups):
        if len(groups) == 2 and groups[0] >= 10 and groups[1] >= 10 and not ordinal:
            return [str(groups[0] * 100 + groups[1])], False
        if len(groups) > 1:
            out = [str(g) for g in groups]
            if ordinal:
                out[-1] = _ordinal(groups[-1])
            return out, False
    total = current = 0
    for g in groups:
        if g >= 0:
            current += g
        elif -g == 100:
            current = (current or 1) * 100
        else:
            total += (current or 1) * -g
            current = 0
    n = total + current
    return [_ordinal(n) if ordinal else str(n)], ordinal


def _canonical_numbers(tokens: list[str]) -> list[str]:
    """Rewrite numbers to one form: "1,000" / "one thousand" / "1000.0" -> "1000", "first" -> "1st"."""
    out: list[str] = []
    i = 0
    while i < len(tokens):
        tok = tokens[i]
        if _NUMBER.match(tok):
            value = Decimal(tok)
            if i + 1 < len(tokens) and tokens[i + 1] in _SCALE_WORDS:
                value *= _SCALE_WORDS[tokens[i + 1]]
                i += 1
            out.append(_format_number(value))
            i += 1
            continue
        m = _DIGIT_ORDINAL.match(tok)
        if m:
            out.append(_ordinal(int(m.group(1))))
            i += 1
            continue
        if _is_number_word(tok):
            run = [tok]
            j = i + 1
            while j < len(tokens) and run[-1] not in _ORDINAL_WORDS:
                nxt = tokens[j]
                if _is_number_word(nxt) or (
                    nxt == "and"
                    and j + 1 < len(tokens)
                    and _is_number_word(tokens[j + 1])
                    and run[-1] in _SCALE_WORDS
                ):
                    run.append(nxt)
                    j += 1
                else:
                    break
            converted, _ = _words_to_number(run)
            out.extend(converted)
            i = j
            continue
        out.append(tok)
        i += 1
    return out


def _tokens(text: str) -> list[str]:
    s = unicodedata.normalize("NFKC", text).lower()
    s = s.replace("\u2019", "'").replace("\u2018", "'").replace("°", " degrees ").replace("%", " percent ")
    s = re.sub(r"(?<=\d),(?=\d{3}(?!\d))", "", s)  # thousands separators
    s = re.sub(r"(?<=\d)\.(?=\d)", "\x00", s)  # protect decimal points
    s = s.replace(".", "").replace("'", "")  # "U.S." -> "us", "don't" -> "dont"
    s = _PUNCT_TO_SPACE.sub(" ", s).replace("\x00", ".")
    toks = [t for t in s.split() if t not in _ARTICLES]
    return _canonical_numbers(toks)


def normalize(text: str) -> str:
    """SQuAD-style normal form plus one spelling per number.

    Lowercase, punctuation and the articles a/an/the removed, whitespace collapsed; then numbers
    rewritten so that equal values compare equal as text: "1,000", "one thousand" and "1000.0"
    all become "1000", "3.50" becomes "3.5", "first" and "1st" both become "1st", "nineteen
    sixty-nine" becomes "1969". Hyphens and slashes split words ("twenty-one" -> "21").
    """
    return " ".join(_tokens(text))


# ---------------------------------------------------------------------------------------------
# Abstention and premise rejection
# ---------------------------------------------------------------------------------------------

# Phrases are matched on lowercased text with apostrophes removed ("don't" -> "dont").
_ABSTAIN_PHRASES = (
    "i dont know", "i do not know", "dont know", "do not know", "not sure", "unsure", "no idea",
    "cannot determine", "cant determine", "unable to determine", "cannot be determined",
    "cant be determined", "impossible to determine", "no information", "not enough information",
    "insufficient information", "not mentioned", "isnt mentioned", "not provided", "not given",
    "not stated", "not specified", "does not say", "doesnt say", "does not mention",
    "doesnt mention", "does not specify", "doesnt specify", "does not state", "doesnt state",
    "unknown", "not known", "unclear", "i cannot answer", "i cant answer", "cannot answer",
    "cant answer", "unable to answer", "cannot be answered", "there is no", "not aware",
    "cannot recall", "cant recall", "do not recall", "dont recall", "dont have", "do not have",
    "cannot say", "cant say", "cannot provide", "cant provide", "unable to provide",
    "cannot verify", "cant verify", "unable to verify", "cannot confirm", "unable to find",
    "cannot find", "cant find", "not able to", "no reliable", "no answer", "could not find",
    "couldnt find", "not familiar with",
)  # fmt: skip
_PREMISE_PHRASES = (
    "there is no", "there was no", "there are no", "there were no", "there has been no",
    "there have been no", "there has never", "there have never", "never happened",
    "never occurred", "never took place", "did not happen", "didnt happen", "did not occur",
    "no one has", "no one ever", "no one had", "nobody has", "nobody ever", "no person has",
    "no human has", "no humans have", "did not", "didnt", "does not exist", "doesnt exist",
    "do not exist", "dont exist", "not exist", "never existed", "is not mentioned",
    "not mentioned", "false premise", "premise is false", "incorrect premise",
    "mistaken premise", "premise is incorrect", "premise is mistaken", "not stated", "hasnt",
    "has not", "have not", "havent", "has never", "have never", "had never", "was never",
    "were never", "never been", "no such", "no record", "no evidence", "not a real", "isnt a real",
    "not real", "fictional", "fictitious", "made up", "no known", "does not appear",
    "doesnt appear", "not true", "not aware of any", "has no", "have no", "had no",
    "does not have", "doesnt have", "do not have", "dont have", "never", "no one", "nobody",
)  # fmt: skip
# An abstention followed by a guess ("I'm not sure, but I think it was 1968") is an answer.
_GUESS_PHRASES = (
    "i think", "i believe", "my guess", "my best guess", "i guess", "probably", "likely",
    "might be", "may be", "could be", "might have been", "may have been", "perhaps", "possibly",
    "maybe", "i would say", "id say", "i suspect",
)  # fmt: skip


def _phrase_re(phrases: Iterable[str]) -> re.Pattern[str]:
    alts = sorted(set(phrases), key=len, reverse=True)
    return re.compile(r"\b(?:" + "|".join(re.escape(p) for p in alts) + r")\b")


_ABSTAIN_RE = _phrase_re(_ABSTAIN_PHRASES)
_PREMISE_RE = _phrase_re(_PREMISE_PHRASES)
_GUESS_RE = _phrase_re(_GUESS_PHRASES)


def _phrase_text(text: str) -> str:
    s = unicodedata.normalize("NFKC", text).lower().replace("\u2019", "'").replace("'", "")
    return " ".join(re.sub(r"[^\w\s]|_", " ", s).split())


def is_abstention(text: str) -> bool:
    """True when the response declines to answer ("I don't know", "not mentioned in the passage").

    A decline that goes on to guess ("not sure, but probably 1968") is not an abstention: the
    guess is an answer and is graded as one.
    """
    s = _phrase_text(text)
    return bool(_ABSTAIN_RE.search(s)) and not _GUESS_RE.search(s)


# "No Nobel Prize in Mathematics exists", "no such thing has ever": a denial around a name.
_NO_EXISTS_RE = re.compile(r"\bno\s+(?:\w+\s+){0,6}?(?:exists?|existed|ever)\b")


def rejects_premise(text: str) -> bool:
    """True when the response says the question's premise is false ("no one has", "never happened")."""
    s = _phrase_text(text)
    return bool(_PREMISE_RE.search(s) or _NO_EXISTS_RE.search(s))


# ---------------------------------------------------------------------------------------------
# Grading
# ---------------------------------------------------------------------------------------------

_NEGATIONS = frozenset({"not", "never", "isnt", "wasnt", "arent", "werent", "nor", "neither"})
_NEGATION_FILLERS = frozenset({"in", "on", "at", "by", "from", "for", "called", "named", "exactly"})
# After an accepted answer: "Paris is not correct", "Paris is wrong" retract it.
_RETRACTIONS = (
    ("is", "not", "correct"), ("is", "not", "right"), ("is", "not", "true"), ("is", "not", "it"),
    ("is", "not", "answer"), ("was", "not", "correct"), ("was", "not", "right"), ("was", "not", "it"),
    ("isnt", "correct"), ("isnt", "right"), ("isnt", "it"), ("wasnt", "correct"), ("wasnt", "it"),
    ("is", "wrong"), ("is", "incorrect"), ("was", "wrong"), ("was", "incorrect"),
)  # fmt: skip
_HEDGE_SKIP = frozenset({"maybe", "possibly", "perhaps", "probably", "even"})
_NUMBER_CONNECTORS = frozenset(
    {"or", "to", "maybe", "perhaps", "possibly", "probably", "nor", "versus", "vs", "till", "until"}
)
_UNIT_WORDS = frozenset(
    """
    degrees degree c f k celsius centigrade fahrenheit kelvin m metre metres meter meters km
    kilometre kilometres kilometer kilometers cm mm centimetres centimeters millimetres
    millimeters mile miles ft foot feet inch inches yard yards kg kilogram kilograms g gram grams
    lb lbs pound pounds ounce ounces oz tonne tonnes ton tons l litre litres liter liters ml
    millilitres milliliters gallon gallons pint pints s sec second seconds min minute minutes h
    hr hour hours day days week weeks month months year years mph kph kmh percent per cent
    j joule joules cal calorie calories kcal w watt watts kw v volt volts pa kpa atm bar hz
    """.split()  # noqa: SIM905 -- a word list reads better as text
)


def _find_spans(tokens: list[str], target: list[str]) -> list[tuple[int, int]]:
    n = len(target)
    if n == 0:
        return []
    return [(i, i + n) for i in range(len(tokens) - n + 1) if tokens[i : i + n] == target]


def _negated(tokens: list[str], start: int) -> bool:
    j = start - 1
    if j >= 0 and tokens[j] in _NEGATION_FILLERS:
        j -= 1
    return j >= 0 and tokens[j] in _NEGATIONS


def _retracted(tokens: list[str], end: int) -> bool:
    """Is the answer taken back right after it is stated ("Paris is not correct; it is Lyon")?"""
    return any(tuple(tokens[end : end + len(r)]) == r for r in _RETRACTIONS)


def _unit_after(tokens: list[str], end: int) -> tuple[str, ...]:
    unit: list[str] = []
    while end < len(tokens) and tokens[end] in _UNIT_WORDS and len(unit) < 3:
        unit.append(tokens[end])
        end += 1
    return tuple(unit)


def _is_conversion(tokens: list[str], end_a: int, num_b: int) -> bool:
    """Two numbers with different units after them ("100 degrees c or 212 degrees f")."""
    ua, ub = _unit_after(tokens, end_a), _unit_after(tokens, num_b + 1)
    return bool(ua) and bool(ub) and ua != ub


def _int_digits(tok: str) -> int:
    return len(tok.split(".")[0])


def _contradicted(tokens: list[str], span: tuple[int, int], covered: set[int]) -> bool:
    """Does the response hedge between this accepted-answer occurrence and another candidate?"""
    start, end = span
    # "X or Y" / "Y or X" where Y is not itself an accepted answer.
    after = end
    if after < len(tokens) and tokens[after] == "or":
        k = after + 1
        while k < len(tokens) and tokens[k] in _HEDGE_SKIP:
            k += 1
        if (
            k < len(tokens)
            and tokens[k] != "so"
            and k not in covered
            and not (_NUMBER.match(tokens[k]) and _is_conversion(tokens, end, k))
        ):
            return True
    before = start - 1
    while before >= 0 and tokens[before] in _HEDGE_SKIP:
        before -= 1
    if before >= 1 and tokens[before] == "or" and (before - 1) not in covered:
        prev = before - 1
        # Walk back over a unit phrase to the number it belongs to ("212 f or 100 c").
        while prev >= 0 and tokens[prev] in _UNIT_WORDS:
            prev -= 1
        if not (prev >= 0 and _NUMBER.match(tokens[prev]) and _is_conversion(tokens, end, prev)):
            return True
    # A different number stated alongside a numeric answer: "1968-1969", "1968 to 1969",
    # "between 1968 and 1969", "maybe 1968, maybe 1969".
    nums = [i for i in range(start, end) if _NUMBER.match(tokens[i]) or _DIGIT_ORDINAL.match(tokens[i])]
    if not nums:
        return False
    answer_vals = {tokens[i] for i in nums}
    first, last = nums[0], nums[-1]
    for j, tok in enumerate(tokens):
        if start <= j < end or j in covered or tok in answer_vals:
            continue
        if not (_NUMBER.match(tok) or _DIGIT_ORDINAL.match(tok)):
            continue
        lo, hi = (j, first) if j < first else (last, j)
        gap = tokens[lo + 1 : hi]
        if len(gap) > 3:
            continue
        if _is_conversion(tokens, j + 1, first) if j < first else _is_conversion(tokens, end, j):
            continue
        if not gap:
            if _int_digits(tok) == _int_digits(tokens[first]):
                return True
            continue
        if _NUMBER_CONNECTORS.intersection(gap) or gap == ["and"]:  # "1914 and 1915", "8 and 11"
            return True
        if "and" in gap and "between" in tokens[max(0, lo - 2) : lo]:
            return True
    return False


# --- named candidates (answers that are not numbers) ------------------------------------------
#
# Normalisation drops case and punctuation, and both matter for telling "Paris, Lyon, or
# Marseille" (three candidates) from "Romeo and Juliet" or "Washington, D.C." (one answer), so
# these checks read the raw response: words with their offsets, the gold occurrences found by
# normalising windows of them (so "AC/DC" or "Washington, D.C." in the dataset covers its own
# slash and comma), and the text between words.

_WORD_RE = re.compile(r"\w+(?:['\u2019.\-]\w+)*")
# Words that may sit between two candidates of a list without ending it.
_LIST_WORDS = frozenset({"or", "and", "nor", "either", "vs", "versus", "maybe", "perhaps", "possibly",
                         "probably", "even", "also", "else"})
# "Paris, or rather Lyon", "Paris... no, wait, Lyon": the answer after the marker is the one kept.
_CORRECTION_WORDS = frozenset({"no", "wait", "sorry", "rather", "actually", "correction", "scratch"})
_STRONG_WORDS = frozenset({"or", "nor", "either", "vs", "versus", "maybe", "perhaps", "possibly",
                           "probably", "else"})
# Capitalised words that are not names ("It is Paris", "I think"), and the small words a name
# may hold inside it ("Leonardo da Vinci", "University of Paris").
_NOT_NAMES = frozenset(
    """
    i im ive id ill it its this that these those there here he she they we you his her their our
    your my the a an and or but so yes no not maybe perhaps possibly probably either neither both
    in on at of for from to by with as if when while which who whom whose what where why how
    is was are were be been also however although though because since then thus therefore
    according answer correct sure well okay ok note some many most all one
    """.split()  # noqa: SIM905 -- a word list reads better as text
)
_NAME_PARTICLES = frozenset({"of", "de", "da", "di", "du", "del", "della", "der", "den", "van", "von",
                             "la", "le", "y", "al", "bin", "ibn", "the"})
# Phrases that put a further candidate on the table anywhere in the answer ("..., but it might
# be Sydney").
_POSSIBILITY_RE = re.compile(
    r"\b(?:might|may|could)(?:\s+also)?\s+(?:have\s+)?be(?:en)?\s+|\b(?:or\s+)?(?:possibly|perhaps|maybe|"
    r"alternatively)\s+",
    re.IGNORECASE,
)


@dataclass(frozen=True, slots=True)
class _Word:
    start: int
    end: int
    text: str

    @property
    def low(self) -> str:
        return self.text.lower().replace("'", "").replace("\u2019", "")

    @property
    def capitalised(self) -> bool:
        return self.text[:1].isupper()


def _words(text: str) -> list[_Word]:
    return [_Word(m.start(), m.end(), m.group(0)) for m in _WORD_RE.finditer(text)]


def _gold_windows(text: str, words: list[_Word], targets: list[list[str]]) -> list[tuple[int, int]]:
    """Word ranges [i, j) of the raw response whose normal form is an accepted answer."""
    wanted = {" ".join(t) for t in targets}
    firsts = {t[0] for t in targets}
    longest = max(len(t) for t in targets) + 2  # "D.C." and "AC/DC" split into more raw words
    found: list[tuple[int, int]] = []
    for i in range(len(words)):
        head = normalize(words[i].text).split()
        if head and head[0] not in firsts:
            continue  # cheap test first: a long response has few words an answer can start with
        for j in range(i + 1, min(len(words), i + longest) + 1):
            if normalize(text[words[i].start : words[j - 1].end]) in wanted:
                found.append((i, j))
    return found


def _gap(text: str, words: list[_Word], a: int, b: int) -> str:
    """The characters between word a and word b (a < b)."""
    return text[words[a].end : words[b].start]


def _breaks_list(gap: str) -> bool:
    """Does this stretch between two words end the list? Sentence ends, brackets, colons do."""
    g = gap.replace("...", ",").replace("\u2026", ",")
    return bool(re.search(r"[.!?:()\[\]\"]", g))


def _name_run(text: str, words: list[_Word], k: int, step: int, proper: bool, gold: set[int]) -> int:
    """Length of the candidate name starting at word k and reading in direction `step` (0 = none).

    A proper name is a run of capitalised words (small particles allowed inside); when the
    accepted answer itself is written in lower case, a run of up to three content words is.
    """
    n = 0
    i = k
    while 0 <= i < len(words) and i not in gold and n < 6:
        w = words[i]
        if n and (_breaks_list(_gap(text, words, min(i, i - step), max(i, i - step)))
                  or re.search(r"[,;/&]", _gap(text, words, min(i, i - step), max(i, i - step)))):
            break
        if proper:
            particle = w.low in _NAME_PARTICLES and n and 0 <= i + step < len(words) and words[i + step].capitalised
            if not ((w.capitalised and w.low not in _NOT_NAMES) or particle):
                break
            n += 1
        else:
            starts = i == 0 or bool(re.search(r"[.!?]", _gap(text, words, i - 1, i)))  # "Widow's hitch, ..."
            if w.low.isalpha() and (w.text.islower() or starts) and w.low not in _NOT_NAMES and n < 3:
                n += 1
            else:
                break
        i += step
    # A run must end on a name word, not on a particle ("Paris or the").
    while n and words[k + (n - 1) * step].low in _NAME_PARTICLES:
        n -= 1
    if proper and n and not any(words[k + m * step].capitalised for m in range(n)):
        return 0
    return n


def _ends_item(text: str, words: list[_Word], last: int) -> bool:
    """Does a list item end after word `last` (end of text, punctuation, or another connector)?"""
    if last + 1 >= len(words):
        return True
    gap = _gap(text, words, last, last + 1)
    return _breaks_list(gap) or bool(re.search(r"[,;/&]", gap)) or words[last + 1].low in _LIST_WORDS


# Two-word correction markers: "Paris, I mean Lyon", "Paris, make that Lyon".
_CORRECTION_PAIRS = frozenset({("i", "mean"), ("make", "that")})


def _connecting(words: list[_Word], k: int) -> bool:
    """Can word k sit between two list items (a list word, or part of a correction marker)?"""
    low = words[k].low
    if low in _LIST_WORDS or low in _CORRECTION_WORDS:
        return True
    before = (words[k - 1].low, low) if k > 0 else None
    after = (low, words[k + 1].low) if k + 1 < len(words) else None
    return before in _CORRECTION_PAIRS or after in _CORRECTION_PAIRS


def _skip(words: list[_Word], k: int, step: int, gold: set[int]) -> int:
    """The first word from k in direction `step` that is not a connector (nor gold)."""
    while 0 <= k < len(words) and k not in gold and _connecting(words, k):
        k += step
    return k


def _connector(text: str, words: list[_Word], a: int, b: int) -> set[str] | None:
    """The kinds of connector between word a and word b (a < b): ',', '/', 'and', 'or',
    'correction'; None when what lies between is not a list connector at all."""
    kinds: set[str] = set()
    broken = False  # a sentence end is crossed only by a correction ("Nile. Wait, no: Amazon.")
    for m in range(a + 1, b + 1):
        gap = _gap(text, words, m - 1, m)
        broken = broken or _breaks_list(gap)
        if "/" in gap:
            kinds.add("/")
        if "," in gap or ";" in gap:
            kinds.add(",")
        if "&" in gap:
            kinds.add("and")
        if m < b:
            low = words[m].low
            if low in _STRONG_WORDS:
                kinds.add("or")
            elif low == "and":
                kinds.add("and")
            elif _connecting(words, m) and low not in _LIST_WORDS:
                kinds.add("correction")
            elif low not in _LIST_WORDS:
                return None
    if broken and "correction" not in kinds:
        return None
    return kinds or None


def _named_hedge(text: str, answers: Sequence[str]) -> tuple[bool, str | None]:
    """(hedged, doubt): does the response list another named candidate beside the accepted
    answer? `doubt` explains a case the rules cannot settle ("Paris, France": a qualifier or a
    two-item list).

    A candidate is of the answer's kind when it is written like it: a capitalised name beside
    an answer the dataset writes capitalised ("Paris"), a lower-case word beside a lower-case
    answer ("oxygen"), so "Paris, the capital" and "oxygen, which plants release" are not lists.
    """
    capital = {normalize(a): any(w[:1].isupper() for w in a.split()) for a in answers}
    targets = [t.split() for t in capital if t]
    words = _words(text)
    windows = _gold_windows(text, words, targets)
    gold = {i for s, e in windows for i in range(s, e)}
    doubt: str | None = None
    for s, e in windows:
        proper = capital.get(normalize(text[words[s].start : words[e - 1].end]), words[s].capitalised)
        said = text[words[s].start : words[e - 1].end]
        pairs = 0  # comma neighbours: one is a qualifier or a pair, one on each side is a list
        # Rightwards: gold, connector, candidate (and maybe more items).
        k = _skip(words, e, 1, gold)
        run = _name_run(text, words, k, 1, proper, gold) if k < len(words) else 0
        kinds = _connector(text, words, e - 1, k) if run else None
        if kinds is not None:
            last = k + run - 1
            if kinds & {"/", "or", "correction"}:
                return True, None
            if "and" in kinds and _ends_item(text, words, last):
                return True, None
            if kinds == {","}:
                # A third item ("Shakespeare, Marlowe, Bacon") makes it a list; two are unclear.
                m = _skip(words, last + 1, 1, gold)
                more = _name_run(text, words, m, 1, proper, gold) if m < len(words) else 0
                if more and _connector(text, words, last, m) is not None:
                    return True, None
                pairs += 1
                if _ends_item(text, words, last):
                    cand = text[words[k].start : words[last].end]
                    doubt = doubt or f"{said!r} followed by {cand!r}: a qualifier or a second candidate"
        # Leftwards: candidate, connector, gold.
        k = _skip(words, s - 1, -1, gold)
        run = _name_run(text, words, k, -1, proper, gold) if k >= 0 else 0
        kinds = _connector(text, words, k, s) if run else None
        if kinds is not None:
            if "correction" in kinds:
                continue  # "Lyon, no, Paris": the answer kept is the last one
            if kinds & {"/", "or"}:
                return True, None
            if kinds & {"and", ","} and _ends_item(text, words, e - 1):
                first = k - run + 1
                m = _skip(words, first - 1, -1, gold)
                more = _name_run(text, words, m, -1, proper, gold) if m >= 0 else 0
                if "and" in kinds or pairs or (more and _connector(text, words, m, first) is not None):
                    return True, None
                cand = text[words[first].start : words[k].end]
                doubt = doubt or f"{cand!r} before {said!r}: a qualifier or a second candidate"
    # "Canberra, but it might be Sydney": a possibility raised anywhere.
    for raised in _POSSIBILITY_RE.finditer(text):
        at = next((i for i, w in enumerate(words) if w.start >= raised.end()), None)
        if at is None or not windows:
            continue
        if words[at].low == "the" and at + 1 < len(words):
            at += 1
        proper = any(capital.get(normalize(text[words[s].start : words[e - 1].end]), True) for s, e in windows)
        if at not in gold and _name_run(text, words, at, 1, proper, gold):
            return True, None
    return False, doubt


def _number_list(text: str, values: set[str]) -> tuple[bool, str | None]:
    """(hedged, doubt) for numbers written as a list around a numeric answer: three or more
    joined by commas, "or", "and" ("206, 11, 4") are candidates; a slash between numbers of
    different length ("8/12", "24/7") may be a fraction or a date, so it is only doubted. (The
    normalised checks already catch "1968/1969", "1968, 1969", "1968 or 1969".)"""
    nums = list(re.finditer(r"\d+(?:,\d{3})*(?:\.\d+)?", text))
    chain: list[re.Match[str]] = []
    chains: list[list[re.Match[str]]] = []
    for m in nums:
        if chain and re.fullmatch(r"\s*(?:,|,?\s*(?:or|and|&))\s*", text[chain[-1].end() : m.start()]):
            chain.append(m)
        else:
            chain = [m]
            chains.append(chain)
    for c in chains:
        if len(c) >= 3 and any(normalize(m.group(0)) in values for m in c):
            return True, None
    for a, b in itertools.pairwise(nums):
        if text[a.end() : b.start()].strip() == "/" and (normalize(a.group(0)) in values
                                                           or normalize(b.group(0)) in values):
            return False, f"{a.group(0)}/{b.group(0)}: a fraction, a date or two candidates"
    return False, None


# --- unanswerable items -------------------------------------------------------------------------
#
# A premise rejection only counts when the response does not also give an answer: "1935. He did
# not win another afterwards." asserts a year, then denies something else. The response is cut
# into clauses; what a clause holding a rejection phrase names is the rejection's own subject
# ("Einstein did not win an Academy Award"), what other clauses name is asserted.

_CLAUSE_RE = re.compile(
    r"(?<=[.!?])\s+|[;:\u2014]\s*|,?\s+\b(?:but|however|although|though|instead)\b\s*", re.IGNORECASE
)
# A clause pointing the user elsewhere is not an answer ("perhaps you mean Niels Bohr").
_REDIRECT_RE = _phrase_re((
    "you mean", "you might mean", "you may mean", "did you mean", "thinking of", "referring to",
    "confusing", "confused with", "mixing up",
))  # fmt: skip
_DIGITS_RE = re.compile(r"\d+(?:[.,]\d+)*")
_FRAGMENT_FILLERS = frozenset({"in", "on", "at", "by", "of", "the", "a", "an", "around", "about",
                               "circa", "year", "it", "was", "is"})


def _asserted(clause: str, question_words: set[str]) -> list[str]:
    """Numbers and names the clause states that the question did not already contain."""
    found = [d for d in _DIGITS_RE.findall(clause) if normalize(d) not in question_words]
    words = _words(clause)
    name: list[str] = []
    for i, w in enumerate([*words, _Word(len(clause), len(clause), "")]):
        if (w.capitalised and w.low not in _NOT_NAMES and not set(normalize(w.text).split()) <= question_words
                and (i or (len(words) > 1 and words[1].capitalised))):
            # (A sentence's first word is capitalised anyway; two in a row make a name.)
            name.append(w.text)
        elif name:
            found.append(" ".join(name))
            name = []
    return found


def _is_fragment(clause: str) -> bool:
    """A clause that is nothing but a candidate: "1935.", "Neil Armstrong.", "In 1935."."""
    words = _words(clause)
    return bool(words) and all(
        w.capitalised or _DIGITS_RE.fullmatch(w.text) or w.low in _FRAGMENT_FILLERS for w in words
    ) and len(words) <= 5


def _grade_unanswerable(response: str, question: str | None) -> tuple[str, str, str | None]:
    """(grade, reason, doubt) for an item whose right answer is to reject or decline."""
    qwords = set(normalize(question).split()) if question else set()
    clauses = [c for c in _CLAUSE_RE.split(response) if c and c.strip()]
    first_reject: int | None = None
    for idx, clause in enumerate(clauses):
        s = _phrase_text(clause)
        rejects = rejects_premise(clause) or bool(_ABSTAIN_RE.search(s))
        named = _asserted(clause, qwords)
        if _GUESS_RE.search(s) and named and not _REDIRECT_RE.search(s):
            return "incorrect", f"guesses an answer: {', '.join(named)}", None
        if rejects:
            if first_reject is None:
                first_reject = idx
            continue
        if (first_reject is None and named and not _REDIRECT_RE.search(s)
                and (_DIGITS_RE.search(clause) or _is_fragment(clause))):
            return "incorrect", f"answers first: {textwrap.shorten(clause, 80)!r}", None
    if first_reject is None:
        return "incorrect", "neither rejects the premise nor declines", None
    after = [n for c in clauses[first_reject + 1 :] if not _REDIRECT_RE.search(_phrase_text(c))
             for n in _asserted(c, qwords)]
    before = [n for c in clauses[:first_reject] for n in _asserted(c, qwords)]
    if before:
        return ("incorrect", "names something before rejecting the premise",
                f"names {', '.join(before)} before rejecting the premise: the premise's subject or an answer")
    if after:
        return ("correct", "rejects the premise",
                f"rejects the premise, then names {', '.join(after)}: context or an answer")
    return "correct", "rejects the premise or declines", None


@dataclass(frozen=True, slots=True)
class Grade:
    """A grade with the rule that gave it, and why the rules may be wrong about it.

    `doubt` is None when the rules settle the case; otherwise it says what they could not tell
    apart ("'Paris, France': a qualifier or a second candidate", "rejects the premise, then
    names 1921: context or an answer"). `grade` is then the rules' best reading, and a model
    judge, where one is run, is the one to ask."""

    grade: str
    reason: str
    doubt: str | None = None


def grade_response(
    response: str, answers: Sequence[str], answerable: bool = True, question: str | None = None
) -> Grade:
    """Grade one response with its reason and any doubt (see the module docstring and `Grade`).

    `question`, when given, lets an unanswerable item's rejection repeat the question's own names
    and numbers without them counting as an asserted answer.
    """
    if not response or not response.strip():
        return Grade("not_attempted", "empty response")
    if not answerable:
        grade, reason, doubt = _grade_unanswerable(response, question)
        return Grade(grade, reason, doubt)
    targets = [t for t in (normalize(a).split() for a in answers) if t]
    if not targets:
        raise ValueError("an answerable item needs at least one non-empty accepted answer")
    tokens = normalize(response).split()
    found = {s for target in targets for s in _find_spans(tokens, target)}
    dropped = [s for s in found if _negated(tokens, s[0]) or _retracted(tokens, s[1])]
    # An alias inside a negated or retracted answer goes with it ("Vatican" in "Vatican City is
    # not correct").
    spans = [s for s in found if not any(d[0] <= s[0] and s[1] <= d[1] for d in dropped)]
    if spans:
        covered = {i for s, e in spans for i in range(s, e)}
        either = "either" in tokens and "or" in tokens
        if either or any(_contradicted(tokens, s, covered) for s in spans):
            return Grade("incorrect", "hedges between the answer and another candidate")
        numeric = [t for t in targets if any(_NUMBER.match(x) or _DIGIT_ORDINAL.match(x) for x in t)]
        named = [a for a, t in zip(answers, (normalize(a).split() for a in answers), strict=True)
                 if t and t not in numeric]
        hedged, doubt = _number_list(response, {" ".join(t) for t in numeric}) if numeric else (False, None)
        if named and not hedged:
            hedged, named_doubt = _named_hedge(response, named)
            doubt = doubt or named_doubt
        if hedged:
            return Grade("incorrect", "lists another candidate beside the answer")
        return Grade("correct", "states an accepted answer", doubt)
    if is_abstention(response):
        return Grade("not_attempted", "declines to answer")
    return Grade("incorrect", "does not state an accepted answer")


def grade_answer(response: str, answers: list[str], answerable: bool = True, question: str | None = None) -> str:
    """Grade one response: "correct", "incorrect" or "not_attempted" (see the module docstring).

    `answers` are the accepted answers (aliases, other spellings); they are normalised the same
    way as the response, so "1,000" in the dataset matches "one thousand" in a response.
    `grade_response` gives the same grade with its reason and any doubt.
    """
    return grade_response(response, answers, answerable, question).grade


def token_f1(response: str, answers: list[str]) -> float:
    """SQuAD token F1 between the response and the best-matching accepted answer.

    With no accepted answers (an unanswerable item) it follows SQuAD v2: 1.0 for an empty
    response, else 0.0 -- use `grade_answer` for those items, F1 cannot see a refusal.
    """
    pred = normalize(response).split()
    if not answers:
        return float(not pred)
    best = 0.0
    for answer in answers:
        gold = normalize(answer).split()
        if not gold or not pred:
            best = max(best, float(gold == pred))
            continue
        common = Counter(pred) & Counter(gold)
        same = sum(common.values())
        if same == 0:
            continue
        precision, recall = same / len(pred), same / len(gold)
        best = max(best, 2 * precision * recall / (precision + recall))
    return best


# ---------------------------------------------------------------------------------------------
# Model-graded mode (template and parser only)
# ---------------------------------------------------------------------------------------------

JUDGE_PROMPT = """\
You are checking one answer to a factual question. Decide whether the answer agrees with the \
reference answer. Do not use your own opinion of what the true answer is: the reference is \
authoritative.

Choose one letter:
A) CORRECT - the answer states the reference answer (or an equivalent form of it: another \
spelling, an alias, the same number written differently) and says nothing that contradicts it. \
Extra detail that does not conflict is fine. A hedge such as "I think it is X" still counts when \
X is the reference.
B) INCORRECT - the answer states something that conflicts with the reference, gives several \
candidates where the reference is one ("X or Y", "X, Y or Z", "X/Y", "X and Y", "X, possibly Y"), \
takes the reference back ("X is not correct; it is Y"), or, when the reference says the question \
has no answer, asserts an answer anyway, even beside a rejection ("1935. He did not win another \
afterwards.").
C) NOT_ATTEMPTED - the answer neither confirms nor contradicts the reference: it declines, says \
it does not know, or says the information is missing. When the reference says the question has \
no answer (false premise, not in the passage), declining or pointing out the false premise is A.

Question: {question}
Reference answer: {target}
Answer to check: {response}

Reply with the single letter A, B or C and nothing else."""

_LETTER_GRADES = {"A": "correct", "B": "incorrect", "C": "not_attempted"}


def parse_judge_verdict(text: str) -> str | None:
    """Map a judge model's reply to a grade, or None when it is not recognisable.

    Accepts a bare letter ("A", "B.", "(C)"), "Grade: A", or the words correct / incorrect /
    not attempted. The first recognisable verdict wins.
    """
    if not text or not text.strip():
        return None
    s = text.strip()
    m = re.match(r"^[\s(\[*\"']*([ABC])(?:[)\].:*\"'\s]|$)", s)
    if m:
        return _LETTER_GRADES[m.group(1)]
    m = re.search(r"\b(?:grade|verdict|answer)\s*(?:is)?\s*[:=]?\s*\(?([ABC])\b", s, re.IGNORECASE)
    if m:
        return _LETTER_GRADES[m.group(1).upper()]
    low = s.lower()
    m = re.search(r"not[\s_-]*attempted|incorrect|correct", low)
    if m:
        word = m.group(0)
        if word.startswith("not"):
            return "not_attempted"
        return "incorrect" if word == "incorrect" else "correct"
    return None


# ---------------------------------------------------------------------------------------------
# Datasets
# ---------------------------------------------------------------------------------------------

DATASET_FIELDS: tuple[str, ...] = ("id", "category", "question", "answers", "answerable", "passage", "images")
_CATEGORY_RE = re.compile(r"^[a-z][a-z0-9_]*$")


@dataclass(frozen=True, slots=True)
class QAItem:
    """One question of a hallucination dataset (one JSONL line)."""

    id: str
    category: str
    question: str
    answers: tuple[str, ...]
    answerable: bool
    passage: str | None = None
    images: tuple[ImageInput, ...] = ()  # shown with the question (workbench.images)


def _with_defaults(obj: Any, n: int) -> Any:
    """A user's QA row (`question`, `answers`, optional `passage`, `id`, `category`) completed the
    way the bundled datasets spell everything out: empty answers = unanswerable, the id `row-N`,
    the category by kind (grounded or not, answerable or not)."""
    if not isinstance(obj, dict) or "question" not in obj or "answers" not in obj:
        return obj
    out = dict(obj)
    answers = out["answers"]
    out.setdefault("answerable", bool(answers) if isinstance(answers, list) else True)
    out.setdefault("id", f"row-{n}")
    grounded = out.get("passage") is not None
    default = ("grounded" if grounded else "questions") if out["answerable"] else (
        "grounded_unanswerable" if grounded else "false_premise")
    out.setdefault("category", default)
    return out


def _item_from(obj: Any, src: str, where: str) -> QAItem:
    def fail(field: str, reason: str) -> ConfigError:
        return ConfigError(src, f"{where}: {field}", reason)

    if not isinstance(obj, dict):
        raise fail("(entry)", "each line must be a JSON object")
    unknown = sorted(set(obj) - set(DATASET_FIELDS))
    if unknown:
        raise fail(unknown[0], f"unknown field; valid: {', '.join(DATASET_FIELDS)}")
    for name in ("id", "category", "question", "answers", "answerable"):
        if name not in obj:
            raise fail(name, "missing required field")
    for name in ("id", "category", "question"):
        if not isinstance(obj[name], str) or not obj[name].strip():
            raise fail(name, f"must be a non-empty string, got {obj[name]!r}")
    if not _CATEGORY_RE.match(obj["category"]):
        raise fail("category", "use a lowercase slug (letters, digits, '_'), e.g. 'people'")
    if not isinstance(obj["answerable"], bool):
        raise fail("answerable", f"must be true or false, got {obj['answerable']!r}")
    answers = obj["answers"]
    if not isinstance(answers, list) or not all(isinstance(a, str) and a.strip() for a in answers):
        raise fail("answers", "must be a list of non-empty strings")
    if obj["answerable"] and not any(normalize(a) for a in answers):
        raise fail("answers", "an answerable item needs at least one accepted answer")
    if not obj["answerable"] and answers:
        raise fail("answers", "an unanswerable item takes answers: []")
    passage = obj.get("passage")
    if passage is not None and (not isinstance(passage, str) or not passage.strip()):
        raise fail("passage", "must be a non-empty string or absent")
    if obj["category"].startswith("grounded") and passage is None:
        raise fail("passage", f"required for category {obj['category']!r}")
    names = obj.get("images", [])
    if not isinstance(names, list) or not all(isinstance(n, str) and n.strip() for n in names):
        raise fail("images", "must be a list of image file paths or URLs")
    return QAItem(
        id=obj["id"],
        category=obj["category"],
        question=obj["question"],
        answers=tuple(answers),
        answerable=obj["answerable"],
        passage=passage,
        images=resolve_images(names, src, f"{where}: images"),
    )


def _dataset_files(path_or_paths: str | Path | Iterable[str | Path]) -> list[Path]:
    raw = [path_or_paths] if isinstance(path_or_paths, str | Path) else list(path_or_paths)
    files: list[Path] = []
    for p in map(Path, raw):
        files.extend(sorted(p.glob("*.jsonl")) if p.is_dir() else [p])
    return files


def _records(path: Path) -> Iterable[tuple[Any, str, int]]:
    """(object, where, record number) of each item of a JSONL or CSV dataset file."""
    src = str(path)
    if path.suffix.lower() == ".csv":
        for row in read_rows(path, KINDS["qa"]):
            yield row.values, row.where, row.number
        return
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise ConfigError(src, None, f"cannot read: {reason}") from None
    for count, (obj, where) in enumerate(jsonl_records(text, src), start=1):
        yield obj, where, count


def load_dataset(path_or_paths: str | Path | Iterable[str | Path] = DEFAULT_DATASETS_DIR) -> list[QAItem]:
    """Load and validate dataset files, JSONL or CSV (a directory means every `*.jsonl` in it).

    Each item as the bundled datasets write it (`id, category, question, answers, answerable[,
    passage]`) or as a user's QA file does (`question`, `answers` — empty: unanswerable —, optional
    `passage`, `id`, `category`; `workbench.datafiles`). Any mistake raises ConfigError naming the
    file, the line and the field: unreadable JSON, a missing field, a wrong type, or an id already
    used (in any of the files given). Blank lines are skipped.
    """
    items: list[QAItem] = []
    seen: dict[str, str] = {}
    files = _dataset_files(path_or_paths)
    if not files:
        raise ConfigError(str(path_or_paths), None, "no dataset files (*.jsonl) found")
    for path in files:
        src = str(path)
        count = 0
        for obj, where, n in _records(path):
            item = _item_from(_with_defaults(obj, n), src, where)
            if item.id in seen:
                raise ConfigError(
                    src, f"{where}: id", f"duplicate id {item.id!r} (first at {seen[item.id]})"
                )
            seen[item.id] = f"{src}:{where.removeprefix('line ')}"
            items.append(item)
            count += 1
        if count == 0:
            raise ConfigError(src, None, "no items (the file is empty)")
    return items


def stratified_sample(items: Sequence[QAItem], n: int, seed: int = 0) -> list[QAItem]:
    """A deterministic sample of `n` items with every category in proportion.

    Each category gets its share of `n` (largest remainders round), and at least one item when
    `n` is at least the number of categories, so a small smoke run still touches every kind of
    question. Items come back in their original order; the same seed gives the same sample.
    """
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    if n >= len(items):
        return list(items)
    by_cat: dict[str, list[int]] = {}
    for idx, item in enumerate(items):
        by_cat.setdefault(item.category, []).append(idx)
    cats = sorted(by_cat)
    total = len(items)
    quota = {c: n * len(by_cat[c]) / total for c in cats}
    floor_min = 1 if n >= len(cats) else 0
    take = {c: min(len(by_cat[c]), max(floor_min, math.floor(quota[c]))) for c in cats}
    while sum(take.values()) < n:
        grow = [c for c in cats if take[c] < len(by_cat[c])]
        best = max(grow, key=lambda c: (quota[c] - take[c], -cats.index(c)))
        take[best] += 1
    while sum(take.values()) > n:
        shrink = [c for c in cats if take[c] > floor_min]
        worst = min(shrink, key=lambda c: (quota[c] - take[c], cats.index(c)))
        take[worst] -= 1
    chosen: list[int] = []
    for c in cats:
        rng = random.Random(f"{seed}:{c}")
        chosen.extend(rng.sample(by_cat[c], take[c]))
    return [items[i] for i in sorted(chosen)]
