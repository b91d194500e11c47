"""Context experiment: documents with planted facts, the window as a typed error on every wire
format, the TTFT(length) fit against a mock server with a known per-token prefill, and the tables."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from tests.conftest import contender_for, run
from workbench.analysis import context_length as cl
from workbench.analysis.grading import normalize
from workbench.contract_text import FACT_TERMS, generate
from workbench.documents import load_documents
from workbench.errors import ConfigError
from workbench.experiments import context as cx
from workbench.measure.probe import make_client, probe
from workbench.measure.target import Target
from workbench.providers.errors import classify
from workbench.results import RunDir
from workbench.serve.mock import MockScript, MockServer
from workbench.serve.wire import FORMATS
from workbench.session import Session
from workbench.types import ErrorClass, Prompt


# ---- documents written for the project
@pytest.mark.parametrize("target", [256, 1024, 4096])
def test_each_answer_is_only_in_its_planted_sentence(target: int) -> None:
    doc = generate(f"L{target}", target, seed=3)
    planted = [p for p in doc.text.split("\n\n") if not p.startswith(("Section ", "MASTER"))]
    filler = "\n\n".join(p for p in doc.text.split("\n\n") if p.startswith(("Section ", "MASTER")))
    assert len(planted) == 5  # three depths and the two-fact pair
    for term in FACT_TERMS:  # the filler holds no key phrase, name, city or amount of any fact
        assert term.casefold() not in filler.casefold(), term
    for q in doc.questions:
        assert any(normalize(a) in normalize(doc.text) for a in q.answers)
        assert not any(normalize(a) in normalize(filler) for a in q.answers)
    assert abs(doc.tokens - target) / target < 0.25 if doc.tokens else False


def test_generation_is_deterministic_and_depths_are_where_asked() -> None:
    a, b = generate("L4096", 4096, seed=1), generate("L4096", 4096, seed=1)
    assert a == b and a != generate("L4096", 4096, seed=2)
    single = [q for q in a.questions if q.kind == "single"]
    assert [q.target_depth for q in single] == [0.1, 0.5, 0.9]
    assert all(abs((q.depth or 0) - (q.target_depth or 0)) < 0.05 for q in single)
    (link,) = [q for q in a.questions if q.kind == "two_fact"]
    assert link.depths[1] - link.depths[0] > 0.5  # the two facts sit far apart


def test_the_two_fact_question_needs_both_sentences() -> None:
    doc = generate("L1024", 1024)
    (link,) = [q for q in doc.questions if q.kind == "two_fact"]
    records = next(p for p in doc.text.split("\n\n") if "keeps its audit records" in p)
    cities = re.findall(r"records in ([A-Z][\w ]+?)[,.]", records)
    assert len(cities) == 2 and link.answers[0] in cities  # the city alone does not say which firm


def test_users_documents_are_checked_with_file_row_and_field(tmp_path: Path) -> None:
    docs, qs = tmp_path / "docs.jsonl", tmp_path / "qs.jsonl"
    (tmp_path / "lease.txt").write_text("The rent is 900 euros. The landlord is Ada Byron.", encoding="utf-8")
    docs.write_text(json.dumps({"id": "lease", "file": "lease.txt"}) + "\n", encoding="utf-8")
    qs.write_text(json.dumps({"document": "lease", "question": "Who is the landlord?", "answers": ["Ada Byron"]})
                  + "\n", encoding="utf-8")
    (doc,) = load_documents(docs, qs)
    assert doc.questions[0].depth == pytest.approx(doc.text.index("Ada") / len(doc.text), abs=0.001)
    cases = [({"document": "lease2", "question": "Q?", "answers": ["x"]}, "document: 'lease2' is not a document id"),
             ({"document": "lease", "question": "Q?", "answers": ["Grace"]}, "answers: none of ['Grace'] appears"),
             ({"document": "lease", "question": "Q?", "answers": ["Ada"], "depth": "2"}, "depth: 2.0 is outside 0-1")]
    for row, message in cases:
        qs.write_text(json.dumps(row) + "\n", encoding="utf-8")
        with pytest.raises(ConfigError, match=re.escape(message)) as err:
            load_documents(docs, qs)
        assert str(qs) in str(err.value) and "line 1" in str(err.value)


# ---- the window: a typed error, never a crash
@pytest.mark.parametrize("message", [
    "prompt is too long: 208310 tokens > 200000 maximum",
    "The input token count (1200293) exceeds the maximum number of tokens allowed (1048576).",
    "request (10024 tokens) exceeds the available context size (9216 tokens), try increasing it",
])
def test_each_providers_context_message_is_its_own_class(message: str) -> None:
    assert classify(400, None, message).error_class is ErrorClass.CONTEXT_LENGTH_EXCEEDED
    assert classify(400, "context_length_exceeded", "x").error_class is ErrorClass.CONTEXT_LENGTH_EXCEEDED
    assert classify(400, None, "bad parameter: temperature").error_class is ErrorClass.BAD_REQUEST


@pytest.mark.parametrize("fmt", sorted(FORMATS))
def test_a_request_longer_than_the_window_is_context_length_exceeded(wire: MockServer, fmt: str) -> None:
    wire.reset(script=MockScript(context_window=200))
    c = contender_for(fmt, wire)

    async def go(text: str) -> str | None:
        async with make_client(2, 5.0) as client:
            rec = await probe(client, Target(c, base_url=c.base_url or ""), Prompt(id="p", text=text))
            return rec.error_class

    assert run(go("short question")) is None
    assert run(go("word " * 400)) == ErrorClass.CONTEXT_LENGTH_EXCEEDED


# ---- the experiment on the mock server: a known prefill slope
def _session(tmp_path: Path, srv: MockServer, **kw: object) -> Session:
    c = contender_for("openai-chat", srv, **kw)
    return Session(run=RunDir.create(tmp_path, "run"), experiment="context", contenders=[c], skipped=[],
                   base_urls={c.name: c.base_url or ""})


def test_the_fit_recovers_a_known_prefill_slope(wire: MockServer, tmp_path: Path) -> None:
    slope = 0.0004  # seconds per prompt token: 0.4 s per 1k
    wire.reset(script=MockScript(ttft_s=0.01, prefill_s_per_token=slope, context_window=3000))
    session = _session(tmp_path, wire, declared={"context_window": 3000})
    records = cx.run_context(session, lengths="128,256,512,1024,2048", depths="0.5", max_probe_tokens=4000)
    df = cl.load(session.run.path)
    assert len(records) == len(df) == 5 * 2 + 1
    fit = cl.fit_ttft(df).iloc[0]
    assert fit["n"] == 5
    assert fit["slope_low"] <= slope * 1000 <= fit["slope_high"]
    assert fit["slope_s_per_1k"] == pytest.approx(slope * 1000, rel=0.1)
    assert fit["superlinear"] is not True
    window = cl.window_table(df).iloc[0]
    assert window["probe"] == "context_length_exceeded" and window["window_tokens"] == 3000
    assert window["longest_answered_tokens"] < 3000 < window["shortest_refused_tokens"]
    lengths = cl.length_table(df)
    assert list(lengths["length"]) == [128, 256, 512, 1024, 2048]
    assert (lengths["ttft_n"] == 1).all()
    acc = cl.accuracy_by_depth(df)
    assert set(acc["depth"]) == {"50%", "two facts"} and (acc["n"] == 1).all()
    cache = cl.cache_table(df)
    assert list(cache["length"])[-1] == "all" and cache.iloc[-1]["pairs"] == 5
    assert cx.parse_lengths("8192, 512,2048") == [512, 2048, 8192]
    with pytest.raises(ValueError, match="lengths='5k'"):
        cx.parse_lengths("5k")


def test_lengths_past_a_declared_window_are_not_sent(wire: MockServer, tmp_path: Path,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    wire.reset(script=MockScript(context_window=600))
    session = _session(tmp_path, wire, declared={"context_window": 600})
    cx.run_context(session, lengths="128,1024", depths="0.5", probe_window=False)
    df = cl.load(session.run.path)
    assert set(df["doc_target_tokens"]) == {128}
    assert "1024 tokens is past its window (600" in capsys.readouterr().out


def test_a_long_doc_task_reads_the_bundled_example_and_needs_its_questions() -> None:
    from pydantic import ValidationError

    from workbench import workspace
    from workbench.tasks import Task

    ws = workspace.bundled()
    task = Task(type="long_doc", data="documents/contracts.jsonl", questions="documents/questions.jsonl")
    docs = task.documents(ws)
    assert [d.id for d in docs] == ["msa-1024", "msa-4096"] and all(len(d.questions) == 4 for d in docs)
    assert task.check(ws) == 2
    with pytest.raises(ValidationError, match="questions is required for type long_doc"):
        Task(type="long_doc", data="documents/contracts.jsonl")


def test_a_long_document_pays_its_long_context_tier() -> None:
    from workbench.config import Contender
    from workbench.pricing import sized_request_cost

    pro = Contender.model_validate({"name": "pro", "api": "gemini", "model": "gemini-2.5-pro",
                                    "base_url": "https://generativelanguage.googleapis.com/v1beta",
                                    "api_key_env": "WB_TEST_KEY"})
    short, src = sized_request_cost(pro, 100_000, 0)
    long, _ = sized_request_cost(pro, 300_000, 0)
    assert short is not None and long is not None and "genai-prices" in src
    assert long / 300_000 > 1.5 * short / 100_000  # the rate per token past 200k is higher
    local = Contender.model_validate({"name": "g", "api": "openai-completions", "local": "gemma-3-270m",
                                      "model": "gemma-3-270m", "prompt_template": "{prompt}"})
    assert sized_request_cost(local, 1000, 10)[0] is None


def test_the_tables_come_back_together_for_the_report(wire: MockServer, tmp_path: Path) -> None:
    wire.reset(script=MockScript(prefill_s_per_token=0.0001))
    session = _session(tmp_path, wire)
    cx.run_context(session, lengths="128,256", depths="0.5", probe_window=False)
    tables = cl.tables(session.run.path, {c.name: c for c in session.contenders})
    assert set(tables) == {"lengths", "fit", "accuracy", "cache", "window", "cost"}
    assert len(tables["lengths"]) == 2 and tables["window"]["probe"].eq("not probed").all()


def test_the_document_is_the_cached_prefix_on_a_chat_api(wire: MockServer, tmp_path: Path) -> None:
    c = contender_for("anthropic", wire)
    session = Session(run=RunDir.create(tmp_path, "run"), experiment="context", contenders=[c], skipped=[],
                      base_urls={c.name: c.base_url or ""})
    cx.run_context(session, lengths="128", depths="0.5", probe_window=False)
    bodies = [r["json"] for r in wire.requests if r["json"]]
    assert len(bodies) == 2  # one document, two questions
    systems = [b["system"] for b in bodies]
    assert systems[0] == systems[1]  # the same prefix for every question of the document
    assert systems[0][-1]["cache_control"] == {"type": "ephemeral"} and "MASTER SERVICES" in systems[0][-1]["text"]
    questions = [b["messages"][-1]["content"] for b in bodies]
    assert questions[0] != questions[1]
