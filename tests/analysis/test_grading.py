"""The grader against hand labels, plus the dataset loader, sampler, F1 and summary maths."""

from __future__ import annotations

import json
import math
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from workbench.analysis.grading import (
    DEFAULT_DATASETS_DIR,
    GRADES,
    JUDGE_PROMPT,
    QAItem,
    grade_answer,
    grade_response,
    is_abstention,
    load_dataset,
    normalize,
    parse_judge_verdict,
    rejects_premise,
    stratified_sample,
    token_f1,
)
from workbench.analysis.hallucination import consistency_rate, summarize_grades
from workbench.errors import ConfigError

FIXTURE = Path(__file__).parent.parent / "fixtures" / "grader_hand_labels.jsonl"
# Hedges and false premise rejections (issue 25), written before the grader was run on them.
HEDGE_FIXTURE = Path(__file__).parent.parent / "fixtures" / "grader_hedge_cases.jsonl"


def _hand_labels(path: Path = FIXTURE) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


# --- hand labels ----------------------------------------------------------------------------


def test_hand_label_fixture_is_well_formed() -> None:
    rows = _hand_labels()
    assert len(rows) >= 60
    for row in rows:
        assert set(row) == {"response", "answers", "answerable", "expected", "note"}
        assert row["expected"] in GRADES


def test_grader_agrees_with_every_hand_label() -> None:
    rows = _hand_labels()
    disagreements = []
    for row in rows:
        got = grade_answer(row["response"], row["answers"], row["answerable"])
        if got != row["expected"]:
            disagreements.append(
                f"{row['response']!r}: expected {row['expected']}, got {got} ({row['note']})"
            )
    agreement = len(rows) - len(disagreements)
    print(f"grader agreement on hand labels: {agreement}/{len(rows)}")
    assert not disagreements, "\n".join(disagreements)


# --- hedges and false rejections (held-out cases) ---------------------------------------------


def test_hedge_fixture_is_well_formed() -> None:
    rows = _hand_labels(HEDGE_FIXTURE)
    assert len(rows) >= 40
    required = {"response", "answers", "answerable", "expected", "note"}
    for row in rows:
        assert required <= set(row) <= required | {"question", "doubtful"}, row
        assert row["expected"] in GRADES
    # Both halves of the issue are covered: hedges that must fail, single answers that must not.
    answerable = [r for r in rows if r["answerable"]]
    assert sum(r["expected"] == "incorrect" for r in answerable) >= 15
    assert sum(r["expected"] == "correct" for r in answerable) >= 15
    unanswerable = [r for r in rows if not r["answerable"]]
    assert {r["expected"] for r in unanswerable} == {"correct", "incorrect"}


def test_grader_agrees_with_every_hedge_case() -> None:
    rows = _hand_labels(HEDGE_FIXTURE)
    disagreements = []
    for row in rows:
        got = grade_response(row["response"], row["answers"], row["answerable"], row.get("question"))
        doubt_ok = "doubtful" not in row or bool(got.doubt) == row["doubtful"]
        if got.grade != row["expected"] or not doubt_ok:
            disagreements.append(f"{row['response']!r}: expected {row['expected']}"
                                 f"{' (doubtful)' if row.get('doubtful') else ''}, got {got} ({row['note']})")
    print(f"grader agreement on hedge cases: {len(rows) - len(disagreements)}/{len(rows)}")
    assert not disagreements, "\n".join(disagreements)


@pytest.mark.parametrize(
    ("response", "answers"),
    [
        ("Paris, Lyon, or Marseille", ["Paris"]),
        ("Paris/Lyon", ["Paris"]),
        ("Paris and Lyon", ["Paris"]),
        ("Shakespeare, Marlowe, Bacon", ["Shakespeare"]),
        ("Paris is not correct; it is Lyon", ["Paris"]),
        ("Nitrogen and oxygen.", ["nitrogen"]),  # the dataset writes it lower case: so is its kind
    ],
)
def test_issue_hedge_forms_are_incorrect(response: str, answers: list[str]) -> None:
    assert grade_answer(response, answers) == "incorrect"


@pytest.mark.parametrize(
    ("response", "answers"),
    [
        ("Romeo and Juliet", ["Romeo and Juliet"]),
        ("AC/DC", ["AC/DC"]),
        ("Washington, D.C.", ["Washington, D.C."]),
        ("Lewis and Clark", ["Lewis and Clark"]),
        ("1,000", ["1000"]),
        ("July 4, 1776", ["1776"]),
        ("Red, green and blue", ["red, green and blue"]),
        ("Paris is not correct; it is Lyon", ["Lyon"]),  # the kept answer is the gold one
        ("Leonardo da Vinci, I believe.", ["Leonardo da Vinci", "da Vinci", "Leonardo"]),
    ],
)
def test_one_answer_with_commas_slashes_and_is_correct(response: str, answers: list[str]) -> None:
    assert grade_answer(response, answers) == "correct"


def test_false_premise_rejection_needs_no_asserted_answer() -> None:
    accepted = grade_response("1935. He did not win another afterwards.", [], answerable=False)
    assert accepted.grade == "incorrect" and "1935" in accepted.reason
    for rejection in ("There is no such prize", "He never won it"):
        assert grade_answer(rejection, [], answerable=False) == "correct", rejection


def _kind(answer: str) -> str:
    if answer[:1].isupper():
        return "name"
    if any(ch.isdigit() for ch in answer):
        return "number" if len(normalize(answer).split()) == 1 else "phrase with a number"
    return "word"


def test_shipped_answers_in_sentences_stay_correct_and_their_hedges_do_not() -> None:
    """Every shipped answerable item, answered plainly in a few phrasings, grades correct; listed
    beside other shipped answers of its kind (so "Paris" meets "Lyon", "1969" meets "1842"), it
    grades incorrect. Number slashes ("8/12": a fraction or a date?) are doubted, not hedges."""
    items = [i for i in load_dataset(DEFAULT_DATASETS_DIR) if i.answerable]
    plain = ("The answer is {a}.", "{a}, I believe.", "It's {a} (as far as I know).", "I think it is {a}.")
    hedges = ("{a}, {b}, or {c}", "{b} and {a}", "{a}, {b}, {c}", "{a} is not correct; it is {b}",
              "{a}, possibly {b}.")
    wrong = []
    for n, item in enumerate(items):
        a = item.answers[0]
        gold = [normalize(x) for x in item.answers]
        others = [o.answers[0] for o in items[n + 1 :] + items[:n] if _kind(o.answers[0]) == _kind(a)
                  and not any(normalize(o.answers[0]) in g or g in normalize(o.answers[0]) for g in gold)]
        for template in plain:
            if grade_answer(template.format(a=a), list(item.answers)) != "correct":
                wrong.append(("correct", template.format(a=a)))
        if len(others) < 2:
            continue  # nothing of its kind to hedge with ("every 83 years")
        b, c = others[:2]
        for template in hedges:
            if grade_answer(template.format(a=a, b=b, c=c), list(item.answers)) != "incorrect":
                wrong.append(("incorrect", template.format(a=a, b=b, c=c)))
    assert not wrong, wrong


def test_rejections_repeating_the_question_stay_rejections() -> None:
    question = "What is the title of the fourth novel by Orlena Vasquez-Thorne?"
    said = "Orlena Vasquez-Thorne is real, but the premise is false."
    assert grade_response(said, [], False, question) == grade_response("The premise is false.", [], False)
    assert grade_response(said, [], False).doubt  # without the question the name may be an answer


def test_an_alias_inside_a_retracted_answer_goes_with_it() -> None:
    answers = ["Vatican City", "Vatican"]
    assert grade_answer("Vatican City is not correct; it is Monaco.", answers) == "incorrect"
    assert grade_answer("Widow's hitch, rye loaf, waggle dance", ["rye loaf"]) == "incorrect"


def test_grade_response_explains_and_doubts() -> None:
    sure = grade_response("Canberra", ["Canberra"])
    assert (sure.grade, sure.doubt) == ("correct", None) and sure.reason
    pair = grade_response("Canberra, Australia", ["Canberra"])
    assert pair.grade == "correct" and pair.doubt and "Australia" in pair.doubt
    # The question's own names do not count as asserted; new ones after a rejection are doubted.
    q = "Which Academy Award did Einstein win?"
    assert grade_response("Einstein never won an Oscar.", [], False, q).doubt is None
    later = grade_response("Einstein never won an Oscar. He won the Nobel Prize in 1921.", [], False, q)
    assert later.grade == "correct" and later.doubt and "1921" in later.doubt
    assert grade_answer("Canberra", ["Canberra"]) == sure.grade


# --- normalisation and phrases ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("The Eiffel Tower!", "eiffel tower"),
        ("1,000", "1000"),
        ("one thousand", "1000"),
        ("3.0", "3"),
        ("3.50", "3.5"),
        ("first", "1st"),
        ("twenty-first", "21st"),
        ("nineteen sixty-nine", "1969"),
        ("two thousand and twenty-four", "2024"),
        ("1.5 million", "1500000"),
        ("U.S.", "us"),
        ("  a   lot \n of  space ", "lot of space"),
    ],
)
def test_normalize(text: str, expected: str) -> None:
    assert normalize(text) == expected


def test_abstention_and_premise_phrases() -> None:
    assert is_abstention("I don't know")
    assert is_abstention("Not mentioned in the passage.")
    assert not is_abstention("Paris")
    assert not is_abstention("I'm not sure, but probably Paris")  # a guess is an answer
    assert rejects_premise("No one has ever walked on Mars.")
    assert rejects_premise("That prize does not exist.")
    assert not rejects_premise("Neil Armstrong")


def test_answerable_item_needs_answers() -> None:
    with pytest.raises(ValueError):
        grade_answer("Paris", [], answerable=True)


# --- token F1 --------------------------------------------------------------------------------


def test_token_f1() -> None:
    assert token_f1("Albert Einstein", ["Albert Einstein"]) == 1.0
    assert token_f1("The answer is Einstein", ["Albert Einstein"]) == pytest.approx(0.4)  # P 1/3, R 1/2
    assert token_f1("Newton", ["Albert Einstein"]) == 0.0
    assert token_f1("Einstein", ["Albert Einstein", "Einstein"]) == 1.0  # max over answers
    assert token_f1("one thousand", ["1,000"]) == 1.0  # numbers normalised first
    assert token_f1("", []) == 1.0 and token_f1("anything", []) == 0.0  # SQuAD v2 convention


# --- judge template and parser -----------------------------------------------------------------


def test_judge_prompt_formats() -> None:
    text = JUDGE_PROMPT.format(question="Q?", target="T", response="R")
    assert "Q?" in text and "Reference answer: T" in text and "R" in text


@pytest.mark.parametrize(
    ("reply", "grade"),
    [
        ("A", "correct"),
        ("B.", "incorrect"),
        ("(C)", "not_attempted"),
        ("Grade: B", "incorrect"),
        ("The answer is correct.", "correct"),
        ("INCORRECT", "incorrect"),
        ("not attempted", "not_attempted"),
        ("NOT_ATTEMPTED", "not_attempted"),
        ("", None),
        ("banana", None),
    ],
)
def test_parse_judge_verdict(reply: str, grade: str | None) -> None:
    assert parse_judge_verdict(reply) == grade


# --- dataset loading -------------------------------------------------------------------------

GOOD = {"id": "x-1", "category": "people", "question": "Who?", "answers": ["Ada"], "answerable": True}


def _write(tmp_path: Path, *lines: str, name: str = "d.jsonl") -> Path:
    p = tmp_path / name
    p.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return p


def _line(**changes: object) -> str:
    obj = {**GOOD, **changes}
    return json.dumps({k: v for k, v in obj.items() if v is not ...})


def test_load_dataset_ok(tmp_path: Path) -> None:
    p = _write(tmp_path, _line(), "", _line(id="x-2", answers=[], answerable=False))
    items = load_dataset(p)
    assert items[0] == QAItem("x-1", "people", "Who?", ("Ada",), True, None)
    assert [i.id for i in items] == ["x-1", "x-2"]


def _error(tmp_path: Path, *lines: str) -> ConfigError:
    p = _write(tmp_path, *lines)
    with pytest.raises(ConfigError) as info:
        load_dataset(p)
    assert info.value.path == str(p)
    return info.value


def test_load_dataset_unreadable_line(tmp_path: Path) -> None:
    err = _error(tmp_path, _line(), "{not json")
    assert err.field == "line 2" and "not valid JSON" in err.reason


def test_load_dataset_missing_field(tmp_path: Path) -> None:
    err = _error(tmp_path, _line(question=...))
    assert err.field == "line 1: question" and "missing" in err.reason


def test_load_dataset_wrong_type(tmp_path: Path) -> None:
    err = _error(tmp_path, _line(answerable="yes"))
    assert err.field == "line 1: answerable" and "true or false" in err.reason
    err = _error(tmp_path, _line(answers="Ada"))
    assert err.field == "line 1: answers"


def test_load_dataset_duplicate_id(tmp_path: Path) -> None:
    err = _error(tmp_path, _line(), _line())
    assert err.field == "line 2: id" and "duplicate" in err.reason and "x-1" in err.reason


def test_load_dataset_duplicate_id_across_files(tmp_path: Path) -> None:
    a = _write(tmp_path, _line(), name="a.jsonl")
    b = _write(tmp_path, _line(), name="b.jsonl")
    with pytest.raises(ConfigError) as info:
        load_dataset([a, b])
    assert info.value.path == str(b) and "duplicate" in info.value.reason


def test_load_dataset_unknown_field(tmp_path: Path) -> None:
    err = _error(tmp_path, _line(answer="Ada"))
    assert err.field == "line 1: answer" and "unknown field" in err.reason


def test_load_dataset_inconsistent_items(tmp_path: Path) -> None:
    err = _error(tmp_path, _line(answers=[]))
    assert err.field == "line 1: answers"
    err = _error(tmp_path, _line(answerable=False))
    assert err.field == "line 1: answers" and "answers: []" in err.reason
    err = _error(tmp_path, _line(category="grounded"))
    assert err.field == "line 1: passage"


def test_load_dataset_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load_dataset(tmp_path / "nope.jsonl")
    assert "cannot read" in info.value.reason


def test_error_message_names_file_line_field(tmp_path: Path) -> None:
    err = _error(tmp_path, _line(question=""))
    assert str(err).startswith(f"{tmp_path / 'd.jsonl'}: line 1: question: ")


# --- shipped datasets ------------------------------------------------------------------------


def test_shipped_datasets_load() -> None:
    names = {p.name for p in DEFAULT_DATASETS_DIR.glob("*.jsonl")}
    assert {"facts.jsonl", "false_premise.jsonl", "grounded.jsonl"} <= names
    items = load_dataset(DEFAULT_DATASETS_DIR)
    assert len(items) >= 150
    assert len({i.id for i in items}) == len(items)
    for item in items:
        assert not item.answerable or item.answers, item.id
    by_file = {name: load_dataset(DEFAULT_DATASETS_DIR / name) for name in names}
    assert len(by_file["facts.jsonl"]) >= 90
    assert len(by_file["false_premise.jsonl"]) >= 30
    grounded = by_file["grounded.jsonl"]
    assert len(grounded) >= 30
    assert sum(not i.answerable for i in grounded) >= 10
    assert all(i.passage for i in grounded)


def test_shipped_grounded_answers_come_from_the_passage() -> None:
    for item in load_dataset(DEFAULT_DATASETS_DIR / "grounded.jsonl"):
        if item.answerable:
            assert item.passage is not None
            assert any(normalize(a) in normalize(item.passage) for a in item.answers), item.id


def test_shipped_answers_grade_as_correct() -> None:
    """Each accepted answer, given verbatim, must grade correct against its own item."""
    for item in load_dataset(DEFAULT_DATASETS_DIR):
        for answer in item.answers:
            assert grade_answer(answer, list(item.answers)) == "correct", (item.id, answer)


# --- stratified sample -----------------------------------------------------------------------


def _items(counts: dict[str, int]) -> list[QAItem]:
    return [QAItem(f"{cat}-{i}", cat, "q", ("a",), True) for cat, k in counts.items() for i in range(k)]


def test_stratified_sample_proportional_and_deterministic() -> None:
    items = _items({"a": 50, "b": 30, "c": 20})
    sample = stratified_sample(items, 10, seed=3)
    assert len(sample) == 10
    assert Counter(i.category for i in sample) == {"a": 5, "b": 3, "c": 2}
    assert sample == stratified_sample(items, 10, seed=3)
    assert sample != stratified_sample(items, 10, seed=4)
    assert [items.index(i) for i in sample] == sorted(items.index(i) for i in sample)


def test_stratified_sample_keeps_small_categories() -> None:
    items = _items({"big": 97, "tiny1": 1, "tiny2": 2})
    counts = Counter(i.category for i in stratified_sample(items, 5))
    assert counts == {"big": 3, "tiny1": 1, "tiny2": 1}


def test_stratified_sample_edges() -> None:
    items = _items({"a": 3, "b": 3})
    assert stratified_sample(items, 0) == []
    assert stratified_sample(items, 100) == items
    assert len(stratified_sample(items, 1)) == 1
    with pytest.raises(ValueError):
        stratified_sample(items, -1)


def test_stratified_sample_on_shipped_data() -> None:
    items = load_dataset(DEFAULT_DATASETS_DIR)
    cats = {i.category for i in items}
    sample = stratified_sample(items, 30)
    assert len(sample) == 30 and {i.category for i in sample} == cats


# --- summary ---------------------------------------------------------------------------------


def test_summarize_grades() -> None:
    grades = ["correct"] * 6 + ["incorrect"] * 2 + ["not_attempted"] * 2
    s = summarize_grades(grades)
    assert (s["n"], s["correct"], s["incorrect"], s["not_attempted"]) == (10, 6, 2, 2)
    assert s["hallucination_rate"] == pytest.approx(0.2)
    assert s["abstention_rate"] == pytest.approx(0.2)
    assert s["accuracy"] == pytest.approx(0.6)
    assert s["accuracy_given_attempted"] == pytest.approx(0.75)
    assert s["f_score"] == pytest.approx(2 * 0.6 * 0.75 / (0.6 + 0.75))
    for name in ("accuracy", "hallucination_rate", "abstention_rate", "accuracy_given_attempted"):
        assert s[f"{name}_low"] <= s[name] <= s[f"{name}_high"]
    # Known Wilson value: 2 of 10 -> (0.0567, 0.5098).
    assert s["hallucination_rate_low"] == pytest.approx(0.0567, abs=1e-4)
    assert s["hallucination_rate_high"] == pytest.approx(0.5098, abs=1e-4)


def test_summarize_grades_edges() -> None:
    empty = summarize_grades([])
    assert empty["n"] == 0 and math.isnan(empty["hallucination_rate"]) and math.isnan(empty["f_score"])
    assert (empty["hallucination_rate_low"], empty["hallucination_rate_high"]) == (0.0, 1.0)
    abstain = summarize_grades(["not_attempted"] * 3)
    assert math.isnan(abstain["accuracy_given_attempted"]) and abstain["f_score"] == 0.0
    with pytest.raises(ValueError):
        summarize_grades(["right"])


def test_summary_wilson_bounds() -> None:
    # The summary's intervals come from workbench.analysis.stats.wilson_interval (same numbers as before).
    s = summarize_grades(["correct"] * 20)
    assert s["hallucination_rate_low"] == 0.0
    assert s["hallucination_rate_high"] == pytest.approx(0.1611, abs=1e-4)
    assert s["accuracy_high"] == 1.0 and s["accuracy_low"] == pytest.approx(0.8389, abs=1e-4)


def test_consistency_rate() -> None:
    samples = [["Paris", "paris.", "The Paris"], ["1969", "nineteen sixty-nine"], ["Lyon", "Paris"]]
    assert consistency_rate(samples) == pytest.approx(2 / 3)
    assert math.isnan(consistency_rate([]))
    with pytest.raises(ValueError):
        consistency_rate([["only one"]])
