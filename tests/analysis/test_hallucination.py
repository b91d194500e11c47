"""Tests for workbench.analysis.hallucination (tables and paired statistics) and
workbench.experiments.hallucination (prompts, records), with only the wire replaced.

No model is needed: requests go through the real probe and provider code to an
`httpx.MockTransport` that answers like an OpenAI-compatible server.
"""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path
from typing import Any

import httpx
import pandas as pd
import pytest

from workbench.analysis import hallucination as hal
from workbench.analysis import stats
from workbench.analysis.grading import JUDGE_PROMPT, QAItem
from workbench.config import Contender
from workbench.errors import ConfigError
from workbench.experiments import EXPERIMENTS, hallucination
from workbench.experiments import hallucination as exp
from workbench.results import RunDir, load_records
from workbench.runner import resolve_parameters
from workbench.session import Session
from workbench.types import RECORD_CORE_FIELDS

FACT = QAItem("f1", "people", "Who wrote Hamlet?", ("William Shakespeare", "Shakespeare"), True)
PREMISE = QAItem("p1", "false_premise", "Who was the first person to walk on Mars?", (), False)
GROUNDED = QAItem("g1", "grounded", "When was the bridge completed?", ("1842",), True,
                  passage="The stone bridge was completed in 1842.")

CHAT = Contender(name="chat", api="openai-chat", model="m-chat", base_url="http://chat.test/v1",
                 system_prompt="You are a pirate.")
COMPLETION = Contender(name="comp", api="openai-completions", model="m-comp", base_url="http://comp.test/v1",
                       prompt_template="Q: What is 2+2?\nA: 4\nQ: {prompt}\nA:")


# --------------------------------------------------------------------------- tables and stats


def _rows(contender: str, grades: list[str], categories: list[str] | None = None) -> list[dict[str, Any]]:
    cats = categories or ["people"] * len(grades)
    return [
        {"contender": contender, "item_id": f"i{i}", "category": c, "answerable": c != "false_premise",
         "question": f"q{i}", "response": f"r{i}", "grade": g, "f1": 1.0 if g == "correct" else 0.0,
         "sample_index": 0, "status": "ok"}
        for i, (g, c) in enumerate(zip(grades, cats, strict=True))
    ]


def test_summary_table_uses_wilson_and_counts_each_item_once() -> None:
    grades = ["correct"] * 6 + ["incorrect"] * 3 + ["not_attempted"] * 1
    rows = _rows("a", grades)
    # A consistency sample and a failed request must not count in the headline numbers.
    rows.append({**rows[0], "sample_index": 1, "grade": "incorrect"})
    rows.append({**rows[0], "item_id": "i99", "status": "error", "grade": None})
    s = hal.summary_table(pd.DataFrame(rows)).iloc[0]
    assert s["n"] == 10 and s["incorrect"] == 3
    w = stats.wilson_interval(3, 10)
    assert (s["hallucination_rate"], s["hallucination_rate_low"], s["hallucination_rate_high"]) == (
        pytest.approx(w.value), pytest.approx(w.low), pytest.approx(w.high))
    aga = stats.wilson_interval(6, 9)
    assert s["accuracy_given_attempted_low"] == pytest.approx(aga.low)
    assert s["f_score_low"] <= s["f_score"] <= s["f_score_high"]
    assert s["token_f1"] == pytest.approx(0.6) and s["token_f1_n"] == 10
    text = hal.format_summary(hal.summary_table(pd.DataFrame(rows)))
    assert text.loc[0, "hallucination_rate"].startswith("0.300 [")
    assert text.loc[0, "attempted"] == 9


def test_summary_per_category() -> None:
    df = pd.DataFrame(_rows("a", ["correct", "incorrect", "correct", "incorrect"],
                            ["people", "people", "false_premise", "false_premise"]))
    t = hal.summary_table(df, by=("contender", "category"), f_score_ci=False)
    assert list(t["category"]) == ["false_premise", "people"]
    assert list(t["n"]) == [2, 2] and list(t["hallucination_rate"]) == [0.5, 0.5]
    # Token F1 is only over answerable items: the false-premise group has none.
    assert math.isnan(t.loc[0, "token_f1"]) and t.loc[0, "token_f1_n"] == 0


def test_paired_comparison_constructed() -> None:
    # 20 items. a: correct on 0-14, incorrect on 15-19. b: correct on 0-9 and 15-16,
    # incorrect on 10-14, not attempted on 17-19.
    ga = ["correct"] * 15 + ["incorrect"] * 5
    gb = ["correct"] * 10 + ["incorrect"] * 5 + ["correct"] * 2 + ["not_attempted"] * 3
    gc = ["incorrect"] * 20
    df = pd.DataFrame(_rows("a", ga) + _rows("b", gb) + _rows("c", gc))
    p = hal.paired_comparison(df)
    assert list(zip(p["a"], p["b"], strict=True)) == [("a", "b"), ("a", "c"), ("b", "c")]
    ab = p.iloc[0]
    assert ab["n_items"] == 20 and (ab["only_a_correct"], ab["only_b_correct"]) == (5, 2)
    assert ab["mcnemar_p"] == pytest.approx(stats.mcnemar_exact(5, 2))
    ha = [g == "incorrect" for g in ga]
    hb = [g == "incorrect" for g in gb]
    d = stats.paired_proportion_diff(ha, hb)
    assert (ab["halluc_diff"], ab["halluc_diff_low"], ab["halluc_diff_high"]) == (
        pytest.approx(0.0), pytest.approx(d.low), pytest.approx(d.high))
    assert list(p["mcnemar_p_holm"]) == pytest.approx(stats.holm(list(p["mcnemar_p"])))
    # a vs c: 15 discordant pairs all one way -> tiny p that survives Holm.
    assert p.iloc[1]["mcnemar_p_holm"] < 0.001
    # Items only one side answered are not paired.
    df2 = pd.DataFrame(_rows("a", ga) + _rows("b", gb[:12]))
    assert hal.paired_comparison(df2).iloc[0]["n_items"] == 12


def test_paired_comparison_two_contenders_holm_is_raw() -> None:
    df = pd.DataFrame(_rows("a", ["correct", "incorrect"] * 5) + _rows("b", ["incorrect"] * 10))
    p = hal.paired_comparison(df)
    assert len(p) == 1 and p.iloc[0]["mcnemar_p_holm"] == p.iloc[0]["mcnemar_p"]


def test_consistency_and_worst() -> None:
    rows = _rows("a", ["correct", "incorrect"], ["people", "false_premise"])
    for i, answers in enumerate((["Paris", "paris."], ["Lyon", "Nice"])):
        for k, text in enumerate(answers, start=1):
            rows.append({**rows[i], "sample_index": k, "response": text})
    df = pd.DataFrame(rows)
    c = hal.consistency_table(df).iloc[0]
    assert (c["n_items"], c["samples_per_item"], c["consistency_rate"]) == (2, 2, 0.5)
    assert c["consistency_rate_low"] == pytest.approx(stats.wilson_interval(1, 2).low)
    assert hal.consistency_table(pd.DataFrame(_rows("a", ["correct"]))).empty
    worst = hal.worst_hallucinations(pd.DataFrame(
        _rows("a", ["incorrect", "incorrect", "correct"], ["people", "false_premise", "people"])))
    assert list(worst["category"]) == ["false_premise", "people"]  # unanswerable first
    assert list(worst.columns) == ["contender", "item_id", "category", "answerable", "question", "response"]


# --------------------------------------------------------------------------- prompts


def test_judge_agreement_per_contender_and_on_doubtful_answers() -> None:
    a = _rows("a", ["correct"] * 4)
    for r, judge in zip(a, ["correct", "correct", "correct", "incorrect"], strict=True):
        r.update(judge_grade=judge, grade_doubt=None)
    a[3]["grade_doubt"] = "'Canberra' followed by 'Australia': a qualifier or a second candidate"
    b = _rows("b", ["incorrect"] * 2)
    for r in b:
        r.update(judge_grade="incorrect", grade_doubt=None)
    df = pd.DataFrame(a + b)
    table = hal.judge_agreement_table(df).set_index("contender")
    assert (table.loc["a", "agree_n"], table.loc["a", "agree"]) == (4, 0.75)
    assert (table.loc["a", "doubtful_agree_n"], table.loc["a", "doubtful_agree"]) == (1, 0.0)
    assert table.loc["a", "doubtful_judge_incorrect"] == 1 and table.loc["a", "doubtful_judge_correct"] == 0
    assert table.loc["b", "agree"] == 1.0 and table.loc["b", "doubtful_agree_n"] == 0
    assert math.isnan(table.loc["b", "doubtful_agree"])
    low, high = stats.wilson_interval(3, 4).low, stats.wilson_interval(3, 4).high
    assert (table.loc["a", "agree_low"], table.loc["a", "agree_high"]) == (low, high)
    assert "per contender" in hal.judge_agreement(df)


def test_prompt_chat_gets_the_shared_system_instruction() -> None:
    p = exp.build_prompt(FACT, CHAT)
    assert p.text == FACT.question and p.id == "f1"
    assert p.system == exp.CHAT_SYSTEM_PROMPT  # replaces the contender's own system prompt
    assert "I don't know" in p.system and "false premise" in p.system


def test_prompt_completion_keeps_template_untouched() -> None:
    p = exp.build_prompt(FACT, COMPLETION)
    assert p.system is None and p.text == FACT.question
    from workbench.providers import get_provider

    req = get_provider("openai-completions").build_request(
        COMPLETION, p, stream=True, api_key=None, base_url="http://comp.test/v1")
    assert req.json is not None and req.json["prompt"] == "Q: What is 2+2?\nA: 4\nQ: Who wrote Hamlet?\nA:"


def test_prompt_grounded_has_passage_and_instruction() -> None:
    for c in (CHAT, COMPLETION):
        p = exp.build_prompt(GROUNDED, c)
        assert p.text == (f"Passage: {GROUNDED.passage}\nQuestion: {GROUNDED.question}\n"
                          f"{exp.GROUNDED_INSTRUCTION}")
        assert "not stated" in p.text


def test_load_items_and_datasets() -> None:
    everything = exp.load_items("")
    assert len(everything) == len(exp.load_items("all")) == 173
    sample = exp.load_items("facts,false_premise", sample_size=16, seed=1)
    assert len(sample) == 16 and {i.category for i in sample} >= {"false_premise", "people"}
    assert sample == exp.load_items("facts,false_premise", sample_size=16, seed=1)
    with pytest.raises(ConfigError, match="valid names: facts, false_premise, grounded"):
        exp.resolve_datasets("fatcs")
    with pytest.raises(ValueError):
        exp.load_items("", sample_size=-1)


# --------------------------------------------------------------------------- records (wire mocked)


def _sse(text: str) -> bytes:
    chunks = [{"choices": [{"index": 0, "delta": {"content": text}, "finish_reason": None}]},
              {"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}]
    return b"".join(b"data: " + json.dumps(c).encode() + b"\n\n" for c in chunks) + b"data: [DONE]\n\n"


def _stream_response(text: str) -> httpx.Response:
    # A stream (not `content=`): the probe reads the body with aiter_raw, as from a socket.
    return httpx.Response(200, stream=httpx.ByteStream(_sse(text)),
                          headers={"content-type": "text/event-stream"})


class _Server:
    """Answers chat requests from a question -> answer table; counts what it was sent."""

    def __init__(self, answers: dict[str, str], fail: set[str] = frozenset()) -> None:  # type: ignore[assignment]
        self.answers = answers
        self.fail = fail
        self.bodies: list[dict[str, Any]] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        self.bodies.append(body)
        user = body["messages"][-1]["content"]
        if "Reply with the single letter" in user:
            return _stream_response("A")
        for q, a in self.answers.items():
            if q in user:
                if q in self.fail:
                    return httpx.Response(500, stream=httpx.ByteStream(b'{"error": {"message": "boom"}}'))
                return _stream_response(a)
        return _stream_response("I don't know")


@pytest.fixture
def mocked(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> tuple[Session, _Server]:
    server = _Server({FACT.question: "Shakespeare", PREMISE.question: "Neil Armstrong",
                      GROUNDED.question: "1842"}, fail={GROUNDED.question})

    def client(max_connections: int = 1, timeout_s: float = 60.0) -> httpx.AsyncClient:
        return httpx.AsyncClient(transport=httpx.MockTransport(server))

    monkeypatch.setattr(exp, "make_client", client)
    run = RunDir.create(tmp_path, "run-1")
    session = Session(run=run, experiment="hallucination", contenders=[CHAT], skipped=[],
                      base_urls={"chat": "http://chat.test/v1"})
    return session, server


def test_records_carry_item_fields_and_grades(mocked: tuple[Session, _Server]) -> None:
    session, server = mocked
    records = hallucination.run_hallucination(session, [FACT, PREMISE, GROUNDED])
    assert len(records) == 3 and len(server.bodies) == 3
    assert server.bodies[0]["messages"][0] == {"role": "system", "content": exp.CHAT_SYSTEM_PROMPT}
    df = load_records(session.run.path, "hallucination")
    assert list(df.columns[: len(RECORD_CORE_FIELDS)]) == list(RECORD_CORE_FIELDS)
    for field in ("item_id", "category", "answerable", "question", "response", "grade", "grade_reason",
                  "grade_doubt", "f1", "sample_index"):
        assert field in df.columns
    by_item = df.set_index("item_id")
    assert by_item.loc["f1", "grade"] == "correct" and by_item.loc["f1", "f1"] == 1.0
    assert by_item.loc["f1", "grade_reason"] == "states an accepted answer"
    assert pd.isna(by_item.loc["f1", "grade_doubt"])
    assert by_item.loc["f1", "response"] == "Shakespeare" and by_item.loc["f1", "ttft_s"] > 0
    assert by_item.loc["p1", "grade"] == "incorrect" and by_item.loc["p1", "answerable"] == False  # noqa: E712
    # A failed request is a record with a typed error and no grade -- never a crash.
    g = by_item.loc["g1"]
    assert g["status"] == "error" and g["error_class"] == "server_error" and pd.isna(g["grade"])
    assert hal.summary_table(df).iloc[0]["n"] == 2


def test_grades_see_the_question_and_say_why(mocked: tuple[Session, _Server]) -> None:
    session, server = mocked
    made_up = QAItem("p2", "false_premise", "What did the physicist Halvard Quennick discover?", (), False)
    server.answers[made_up.question] = "Halvard Quennick? No such physicist exists."
    server.answers[FACT.question] = "Shakespeare, Marlowe, Bacon"
    by_item = {r.extra["item_id"]: r.extra for r in hallucination.run_hallucination(session, [FACT, made_up])}
    # The question's own name, repeated before the rejection, is not an asserted answer.
    assert (by_item["p2"]["grade"], by_item["p2"]["grade_doubt"]) == ("correct", None)
    assert by_item["f1"]["grade"] == "incorrect"
    assert by_item["f1"]["grade_reason"] == "lists another candidate beside the answer"


def test_a_resumed_session_asks_only_what_is_not_recorded(mocked: tuple[Session, _Server]) -> None:
    session, server = mocked
    hallucination.run_hallucination(session, [FACT, PREMISE])
    resumed = dataclasses.replace(session, resume=True)
    again = hallucination.run_hallucination(resumed, [FACT, PREMISE, GROUNDED])
    assert [r.extra["item_id"] for r in again] == ["g1"] and len(server.bodies) == 3  # f1 and p1 not sent twice
    df = load_records(session.run.path, "hallucination")
    assert sorted(df["request_id"]) == ["chat:f1:0", "chat:g1:0", "chat:p1:0"]


def test_consistency_samples_and_judge(mocked: tuple[Session, _Server]) -> None:
    session, server = mocked
    records = hallucination.run_hallucination(session, [FACT], k_samples=3, temperature=0.7, seed=5,
                                              judge_contender="chat")
    # 1 graded answer + 3 samples, and one judge request for the graded answer.
    assert [r.extra["sample_index"] for r in records] == [0, 1, 2, 3]
    assert len(server.bodies) == 5
    sampled = [b for b in server.bodies if b.get("temperature") == 0.7]
    assert [b["seed"] for b in sampled] == [6, 7, 8]
    judge_body = next(b for b in server.bodies
                      if "Reply with the single letter" in b["messages"][-1]["content"])
    assert judge_body["temperature"] == 0.0 and judge_body["max_tokens"] == exp.JUDGE_MAX_TOKENS
    assert JUDGE_PROMPT.split("{question}")[0] in judge_body["messages"][-1]["content"]
    assert records[0].extra["judge_grade"] == "correct" and "judge_grade" not in records[1].extra
    cons = hal.consistency_table(load_records(session.run.path, "hallucination"))
    assert cons.iloc[0]["consistency_rate"] == 1.0


def test_run_rejects_bad_settings(mocked: tuple[Session, _Server]) -> None:
    session, _ = mocked
    with pytest.raises(ValueError, match="temperature > 0"):
        hallucination.run_hallucination(session, [FACT], k_samples=2, temperature=0.0)
    with pytest.raises(ConfigError, match="valid: chat"):
        hallucination.run_hallucination(session, [FACT], judge_contender="nope")
    with pytest.raises(ValueError):
        hallucination.run_hallucination(session, [])


# --------------------------------------------------------------------------- registry / runner


def test_registry_runs_full_dataset_by_default() -> None:
    names = list(EXPERIMENTS)
    assert names.index("hallucination") > names.index("latency")
    e = EXPERIMENTS["hallucination"]
    assert e.path.exists() and e.run_params["sample_size"] == 0  # 0 = the whole dataset
    declared = {"sample_size": 24, "seed": 0, "contenders": "enabled"}
    assert resolve_parameters(e, declared, {}) == {"sample_size": 0}
    # The user's override wins; parameters the notebook does not declare are not passed.
    assert resolve_parameters(e, declared, {"sample_size": 10, "n_requests": 3}) == {"sample_size": 10}
    assert resolve_parameters(EXPERIMENTS["latency"], {"n_requests": 12}, {"sample_size": 0}) == {"n_requests": 100}


def test_a_run_in_which_every_request_failed_gives_empty_tables_not_a_crash() -> None:
    """A misconfigured endpoint fails every question: the notebook's tables are empty, with their columns."""
    import pandas as pd

    from workbench.analysis import hallucination as hal

    df = pd.DataFrame({"contender": ["a", "a"], "category": ["x", "y"], "status": ["error", "error"],
                       "grade": [None, None], "sample_index": [0, 0]})
    table = hal.format_summary(hal.summary_table(df, by=("contender", "category"), f_score_ci=False))
    assert table[["contender", "category", "n", "hallucination_rate", "abstention_rate", "accuracy"]].empty
