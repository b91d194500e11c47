"""Coalescing experiment: strategy accounting through the real probe path, with only the wire
replaced (httpx.MockTransport speaking OpenAI chat SSE); cost arithmetic; projections."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path
from typing import Any

import httpx
import pandas as pd
import pytest

from workbench import pricing
from workbench.analysis import cost, levers
from workbench.analysis.scenarios import load_scenarios
from workbench.config import Contender, load_contenders
from workbench.experiments import EXPERIMENTS
from workbench.experiments import coalescing as co
from workbench.results import RunDir, load_records
from workbench.session import Session

LABELS = co.load_labels()
BASE = "http://mock.test/v1"

# window 0: d1 d2 d3 d4 (d4 near-duplicates d2); window 1: d5 d6 d7 d8 (d6 ~ d1, d8 == d3).
DOCS = [
    co.Document("d1", "I was charged twice.", "billing"),
    co.Document("d2", "My parcel is late", "shipping"),
    co.Document("d3", "The app crashes on start", "technical"),
    co.Document("d4", "my parcel is LATE!", "shipping", dup_of="d2"),
    co.Document("d5", "broken-answer: I cannot log in", "account"),
    co.Document("d6", "I was charged twice", "billing", dup_of="d1"),
    co.Document("d7", "Are you hiring designers?", "other"),
    co.Document("d8", "The app crashes on start", "technical", dup_of="d3"),
]
GOLD = {" ".join(d.text.split()): d.label for d in DOCS}
SINGLE_IN, BATCH_IN = 100, 150
SSE = {"content-type": "text/event-stream"}
JSON = {"content-type": "application/json"}


def _sse(text: str, prompt_tokens: int, completion_tokens: int) -> bytes:
    events = [
        {"choices": [{"index": 0, "delta": {"content": text}, "finish_reason": None}]},
        {"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]},
        {"choices": [], "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens}},
    ]
    body = "".join(f"data: {json.dumps(e)}\n\n" for e in events) + "data: [DONE]\n\n"
    return body.encode()


class FakeServer:
    """Answers like a perfect annotator, except: a batch leaves out documents starting with
    `broken-answer`, and any request holding `server-error` gets HTTP 500."""

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        self.requests.append(body)
        user = body["messages"][-1]["content"]
        if "server-error" in user:
            err = json.dumps({"error": {"message": "boom", "type": "server_error"}}).encode()
            return httpx.Response(500, stream=httpx.ByteStream(err), headers=JSON)
        if "Documents:" in user:
            lines = re.findall(r"^(\d+)\. (.*)$", user.split("Documents:")[1], flags=re.M)
            answer = "\n".join(f"{n}: {GOLD[t]}" for n, t in lines if not t.startswith("broken-answer"))
            out = _sse(answer, BATCH_IN, 2 * len(lines))
        else:
            text = user.split("Document: ", 1)[1]
            out = _sse(GOLD[text], SINGLE_IN, 1)
        # A stream (not `content=`), so the probe reads it chunk by chunk as from a socket.
        return httpx.Response(200, stream=httpx.ByteStream(out), headers=SSE)


@pytest.fixture
def mock_session(tmp_path: Path) -> Session:
    c = Contender(name="mock", api="openai-chat", model="m", base_url=BASE,
                  price={"input": 1.0, "output": 2.0, "source": "test"})
    run = RunDir.create(tmp_path, "run")
    return Session(run=run, experiment="coalescing", contenders=[c], skipped=[], base_urls={"mock": BASE})


STACK = ("naive", "coalesced", "dedup", "cached")  # the levers FakeServer answers (no batch API)


def _run(session: Session, server: FakeServer, docs: list[co.Document] = DOCS, **kw: Any) -> pd.DataFrame:
    factory = lambda c: httpx.AsyncClient(transport=httpx.MockTransport(server))  # noqa: E731
    return co.run_coalescing(session, docs, LABELS, k=2, window=4, client_factory=factory,
                             **{"strategies": STACK, **kw})


def test_strategy_accounting(mock_session: Session) -> None:
    server = FakeServer()
    outcomes = _run(mock_session, server)
    df = load_records(mock_session.run.path, "coalescing")
    n = df.groupby("strategy").size().to_dict()
    # naive: 8 singles. coalesced: 4 batches + 1 fallback (d5 left out).
    # dedup: w0 unique d1 d2 d3 -> [d1 d2] + [d3 alone]; w1 all unique -> 2 batches + 1 fallback.
    # cached: w0 as dedup (2); w1 d6, d8 are cache hits -> [d5 d7] + 1 fallback.
    assert n == {"naive": 8, "coalesced": 5, "dedup": 5, "cached": 4}
    assert len(server.requests) == 22
    fb = df[df["fallback"]]
    assert fb.groupby("strategy").size().to_dict() == {"coalesced": 1, "dedup": 1, "cached": 1}
    assert all(ids == ["d5"] for ids in fb["doc_ids"])
    broken = df[(df["batch_size"] > 1) & (~df["parse_ok"])]
    assert len(broken) == 3 and all("d5" in ids for ids in broken["doc_ids"])
    assert all(d["missing"] for d in broken["parse_detail"])
    for col in ("strategy", "batch_size", "doc_ids", "n_docs", "parse_ok", "fallback", "labels"):
        assert col in df
    # every document got its label, by the route the strategy implies
    assert outcomes["correct"].all() and len(outcomes) == 4 * len(DOCS)
    src = outcomes.groupby(["strategy", "source"]).size().to_dict()
    assert src[("dedup", "fanout")] == 1 and src[("cached", "fanout")] == 1
    assert src[("cached", "cache")] == 2
    assert src[("coalesced", "fallback")] == 1
    assert (mock_session.run.path / "coalescing_documents.csv").exists()


def test_summary_cost_and_counts(mock_session: Session) -> None:
    outcomes = _run(mock_session, FakeServer())
    df = load_records(mock_session.run.path, "coalescing")
    prices = levers.contender_prices(mock_session.contenders, df, machine_hour_usd=1.0)
    assert prices["mock"].input == 1.0 and prices["mock"].output == 2.0
    s = levers.strategy_summary(df, outcomes, prices, n_boot=200).set_index("strategy")
    naive = (SINGLE_IN * 1.0 + 1 * 2.0) / 1e6  # per request = per document
    assert s.loc["naive", "cost_per_doc_usd"] == pytest.approx(naive)
    batch = BATCH_IN * 1.0 + 4 * 2.0  # k=2: 2 docs → 4 output tokens
    coalesced = (4 * batch + 1 * (SINGLE_IN + 2.0)) / 1e6 / len(DOCS)
    assert s.loc["coalesced", "cost_per_doc_usd"] == pytest.approx(coalesced)
    assert s.loc["coalesced", "cost_per_doc_usd_low"] <= coalesced <= s.loc["coalesced", "cost_per_doc_usd_high"]
    assert s.loc["coalesced", "requests"] == 5 and s.loc["coalesced", "fallback_requests"] == 1
    assert s.loc["coalesced", "parse_fail_rate"] == pytest.approx(1 / 4)
    assert s.loc["cached", "cache_hits"] == 2
    assert s.loc["naive", "accuracy"] == 1.0 and s.loc["naive", "accuracy_n"] == len(DOCS)
    assert s.loc["naive", "tokens_estimated_share"] == 0.0
    ba = levers.before_after(s.reset_index()).set_index("strategy")
    assert ba.loc["cached", "requests_change_pct"] == pytest.approx((4 / 8 - 1) * 100)
    assert ba.loc["naive", "requests_change_pct"] == 0
    text = levers.format_before_after(s.reset_index())
    assert len(text) == 4 and "(-50%)" in text.iloc[3]["requests (Δ)"]


def test_failed_batch_falls_back_and_is_counted(mock_session: Session) -> None:
    docs = [co.Document("a", "server-error in the batch only", "other"), DOCS[0]]
    server = FakeServer()
    # The single retry of doc "a" holds the marker too: it fails, and the document stays unlabelled.
    outcomes = _run(mock_session, server, docs, strategies=("coalesced",))
    df = load_records(mock_session.run.path, "coalescing")
    assert len(df) == 3  # the failed batch + two fallbacks
    assert (df["status"] == "error").sum() == 2 and set(df["error_class"].dropna()) == {"server_error"}
    assert df["fallback"].sum() == 2
    by_doc = outcomes.set_index("doc_id")
    assert by_doc.loc["a", "source"] == "failed" and pd.isna(by_doc.loc["a", "predicted"])
    assert by_doc.loc["d1", "source"] == "fallback" and by_doc.loc["d1", "correct"]


def test_throughput_price_for_local_contender() -> None:
    recs = pd.DataFrame({
        "contender": ["loc"] * 2, "status": ["ok", "ok"], "input_tokens": [100, 300],
        "output_tokens": [11, 21], "e2e_s": [1.0, 2.0], "ttft_s": [0.5, 1.5],
    })
    t = cost.measured_throughput(recs)["loc"]
    assert t["prefill_tps"] == pytest.approx(400 / 2.0)
    assert t["decode_tps"] == pytest.approx(30 / 1.0)
    c = load_contenders().get("gemma-3-270m")
    p = levers.contender_prices([c.model_copy(update={"name": "loc"})], recs, machine_hour_usd=3.6)
    # $3.6/h = $0.001/s; 200 prefill tok/s → $5/1M input; 30 decode tok/s → $33.3/1M output
    assert p["loc"].input == pytest.approx(5.0) and p["loc"].output == pytest.approx(1000 / 30)


def test_select_documents_keeps_duplicates_with_originals() -> None:
    docs = co.load_documents()
    sub = co.select_documents(docs, 16)
    ids = {d.id for d in sub}
    assert len(sub) == 16 and [d.id for d in sub] == sorted(ids)
    dups = [d for d in sub if d.dup_of]
    assert len(dups) == round(16 * 42 / 142) and all(d.dup_of in ids for d in dups)
    assert co.select_documents(docs, 500) == docs


def test_annotation_prompt_is_the_experiments() -> None:
    cs = load_contenders()
    gemma, qwen = cs.get("gemma-3-270m"), cs.get("qwen2.5-coder-0.5b")
    single = co.annotation_contender(gemma, LABELS, batch_k=None, max_tokens=8)
    assert single.prompt_template is not None and "Label:" in single.prompt_template
    assert single.sampling.stop == ["\n"] and single.sampling.max_tokens == 8
    batch = co.annotation_contender(gemma, LABELS, batch_k=4, max_tokens=36)
    assert batch.sampling.stop == ["\n\n"] and (batch.prompt_template or "").endswith("{prompt}\nAnswers:\n")
    chat = co.annotation_contender(qwen, LABELS, batch_k=4, max_tokens=36)
    assert chat.system_prompt is not None and "billing:" in chat.system_prompt
    assert gemma.prompt_template is not None and "capital of France" in gemma.prompt_template  # untouched


def test_a_completion_model_is_never_shown_the_demos_labels_on_a_task_of_its_own(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """On a bank's labels the bundled worked examples (billing, shipping, …) would teach a base
    model answers never right there: without the task's own `examples` it gets none (and a
    warning); with them, those — checked against the task's labels and data."""
    from workbench import workspace
    from workbench.errors import ConfigError
    from workbench.workspace_files import init_workspace

    ws = tmp_path / "bank"
    init_workspace(ws, log=lambda _: None)
    monkeypatch.setenv(workspace.WORKSPACE_ENV, str(ws))
    (ws / "data" / "documents.csv").write_text("text,label\nmy card is gone,card_lost\ncharged twice,double-charge\n",
                                               encoding="utf-8")
    gemma = load_contenders(ws / "contenders.yaml").get("gemma-3-270m")
    bank = co.load_labels()
    assert list(bank) == ["card_lost", "double-charge"] and co.worked_examples(list(bank)) == ()
    for k in (None, 4):
        template = co.annotation_contender(gemma, bank, batch_k=k, max_tokens=8).prompt_template or ""
        assert "billing" not in template and "Label: " not in template and "card_lost" in template
    (ws / "data" / "examples.csv").write_text("text,label\nlost my wallet and card,card_lost\n"
                                              "two payments for one order,double-charge\n", encoding="utf-8")
    scenarios = (ws / "scenarios.yaml").read_text(encoding="utf-8")
    (ws / "scenarios.yaml").write_text(scenarios.replace("task: {type: classify, data: data/documents.csv}",
                                                         "task: {type: classify, data: data/documents.csv, "
                                                         "examples: data/examples.csv}"), encoding="utf-8")
    single = co.annotation_contender(gemma, bank, batch_k=None, max_tokens=8).prompt_template or ""
    assert "lost my wallet and card" in single and "Label: double-charge" in single and "billing" not in single
    (ws / "data" / "examples.csv").write_text("text,label\ncharged twice,double-charge\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="an example must not be measured"):
        co.worked_examples(list(bank))
    (ws / "data" / "examples.csv").write_text("text,label\nwhere is my parcel,shipping\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="'shipping' is not one of the task's labels"):
        co.worked_examples(list(bank))


def _summary_row(strategy: str, **kw: float) -> dict[str, Any]:
    row: dict[str, Any] = {
        "contender": "loc", "strategy": strategy, "n_docs": 16, "requests_per_doc": 1.0,
        "mean_e2e_s": 0.5, "input_tokens_per_doc": 100.0, "output_tokens_per_doc": 2.0,
        "accuracy": 0.9, "accuracy_low": 0.7, "accuracy_high": 0.97, "accuracy_diff_high": math.nan,
        "cost_per_doc_usd": 1e-5, "busy_per_doc_s": 0.5, "docs_per_busy_s": 2.0, "e2e_p95": 0.6,
        "e2e_p95_low": 0.5, "e2e_p95_high": 0.7, "e2e_n": 16,
    }
    row.update(kw)
    return row


def test_projections_follow_measured_numbers() -> None:
    summary = pd.DataFrame([
        _summary_row("naive"),
        _summary_row("coalesced", requests_per_doc=0.3, mean_e2e_s=1.0, input_tokens_per_doc=40.0,
                     cost_per_doc_usd=5e-6, busy_per_doc_s=0.3, docs_per_busy_s=3.3,
                     accuracy_diff_high=0.05),
        _summary_row("cached", cost_per_doc_usd=1e-6, accuracy_diff_high=-0.1),  # cheaper but worse
    ])
    assert levers.best_strategy(summary, "loc") == "coalesced"
    price = pricing.Price(input=1.0, output=2.0, source="test")
    proj = levers.project_scenarios(summary, {"loc": price}, load_scenarios(), local={"loc": True},
                                machine_hour_usd=1.0)
    assert set(proj["scenario"]) == {"routing", "batch_annotation", "prototyping"}
    b = proj[(proj["scenario"] == "batch_annotation")].set_index("role")
    n = 2_000_000
    assert b.loc["naive", "total_cost_usd"] == pytest.approx(n * (100 * 1.0 + 2 * 2.0) / 1e6)
    assert b.loc["best", "total_cost_usd"] == pytest.approx(n * (40 * 1.0 + 2 * 2.0) / 1e6)
    assert b.loc["naive", "wall_time_h"] == pytest.approx(n * 0.5 / 64 / 3600)
    assert b.loc["best", "wall_time_h"] == pytest.approx(math.ceil(n * 0.3) * 1.0 / 64 / 3600)
    r = proj[proj["scenario"] == "routing"].set_index("role")
    # 30% headroom: replicas = ceil(target / (docs per busy second × 0.7))
    assert r.loc["naive", "replicas"] == math.ceil(10000 / (2.0 * 0.7))
    assert r.loc["best", "replicas"] == math.ceil(10000 / (3.3 * 0.7))
    assert any("NOT met" in a for a in r.loc["naive", "assumptions"])
    p = proj[proj["scenario"] == "prototyping"].set_index("role")
    assert p.loc["best", "monthly_cost_usd"] == pytest.approx(50_000 * 5e-6)
    assert "one model server" in levers.format_projections(proj)


def test_registered_after_latency_with_run_params() -> None:
    names = list(EXPERIMENTS)
    assert names.index("coalescing") > names.index("latency")
    assert EXPERIMENTS["coalescing"].run_params["n_docs"] > 16


def test_runner_applies_run_params_unless_overridden(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import papermill as pm

    from workbench import runner

    seen: list[dict[str, Any]] = []
    monkeypatch.setattr(pm, "execute_notebook", lambda *a, **kw: seen.append(kw["parameters"]))
    exp = EXPERIMENTS["coalescing"]
    runner.run_experiments([exp], out_dir=tmp_path / "r1", log=lambda _: None)
    runner.run_experiments([exp], out_dir=tmp_path / "r2", params={"n_docs": 4}, log=lambda _: None)
    assert seen[0]["n_docs"] == exp.run_params["n_docs"] and seen[1]["n_docs"] == 4
    assert seen[1]["window"] == exp.run_params["window"]


def test_cached_prefix_and_batch_api_arms(tmp_path: Path) -> None:
    """The two arms through the real servers: the mock answers every request, the local batch
    endpoint in front of it is each contender's base URL (synchronous calls forwarded, batches run)."""
    from workbench.serve.batch import BatchServer
    from workbench.serve.mock import MockScript, MockServer

    with (MockServer(MockScript.timed(1, 1, 1, "billing")) as mock, BatchServer(mock.base_url, concurrency=4) as bs):
        oa = Contender(name="oa", api="openai-chat", model="m", base_url=bs.base_url_for("openai-chat"),
                       price={"input": 1.0, "output": 2.0, "cached_input": 0.5, "batch_discount": 0.5,
                              "source": "test"})
        cl = Contender(name="cl", api="anthropic", model="claude-test", base_url=bs.base_url_for("anthropic"),
                       system_prompt="x", price={"input": 1.0, "output": 2.0, "cached_input": 0.1,
                                                 "cache_write_input": 1.25, "batch_discount": 0.5, "source": "test"},
                       declared={"batch_turnaround_h": 6})
        session = Session(run=RunDir.create(tmp_path, "run"), experiment="coalescing", contenders=[oa, cl], skipped=[],
                          base_urls={"oa": oa.base_url or "", "cl": cl.base_url or ""})
        outcomes = co.run_coalescing(session, DOCS, LABELS, k=2, window=4, concurrency=4,
                                     strategies=("naive", "cached-prefix", "batch-api"), batch_poll_s=0.02,
                                     prefix_control_docs=3)
        anthropic_bodies = [r["json"] for r in mock.requests if r["path"] == "/v1/messages"]
    df = load_records(session.run.path, "coalescing")
    arm = cost.arm_records(df)
    # One record per document per arm; the control only where the cache can be switched off.
    assert arm.groupby(["contender", "strategy"]).size().eq(len(DOCS)).all() and len(arm) == 2 * 3 * len(DOCS)
    control = df[df["control"].eq(True)]
    # both switch it off: Anthropic without a breakpoint, OpenAI with prompt_cache_options mode explicit
    assert set(control["contender"]) == {"cl", "oa"} and len(control) == 6 and not control["prefix_cache"].any()
    breakpoints = [b for b in anthropic_bodies if isinstance(b.get("system"), list)]
    assert all(b["system"][0]["cache_control"] == {"type": "ephemeral"} for b in breakpoints)
    assert len(breakpoints) == len(DOCS)  # the lever's requests only: naive, control and batch items have none
    batch = df[df["strategy"] == "batch-api"]
    assert batch["batch_id"].notna().all() and batch["batch_api"].eq(True).all() and batch["ttft_s"].isna().all()
    assert set(batch["batch_window_h"].dropna()) == {24.0, 6.0}  # documented (OpenAI), declared (cl)
    assert (session.run.path / "batches" / "coalescing.jsonl").exists()  # hosted batches are journalled
    assert len(outcomes) == 2 * 3 * len(DOCS)
    prices = levers.contender_prices(session.contenders, df, machine_hour_usd=1.0)
    s = levers.strategy_summary(df, outcomes, prices, n_boot=200).set_index(["contender", "strategy"])
    # Same tokens, half the price through the batch API; its wall time is a turnaround.
    naive_cost = s.loc[("oa", "naive"), "cost_per_doc_usd"]
    assert s.loc[("oa", "batch-api"), "cost_per_doc_usd"] == pytest.approx(naive_cost / 2)
    assert s.loc[("oa", "batch-api"), "batch_api"] and s.loc[("oa", "batch-api"), "turnaround_s"] > 0
    table = levers.prefix_cache_table(df, prices, session.contenders).set_index("contender")
    assert table.loc["cl", "control"] and table.loc["cl", "pairs"] == 3
    assert table.loc["oa", "control"] and table.loc["oa", "pairs"] == 3
    # the annotation prompts are far shorter than any hosted API's caching minimum: said, not measured as a lever
    assert table.loc["oa", "min_prefix_tokens"] == 1024 and table.loc["cl", "min_prefix_tokens"] >= 1024
    words = levers.format_prefix_cache(table.reset_index()).set_index("contender")["long enough to cache"]
    assert words["oa"].startswith("no: prompts of") and "caches from 1,024" in words["oa"]
    proj = levers.project_scenarios(s.reset_index(), prices, load_scenarios(), local={"oa": False, "cl": False},
                                    machine_hour_usd=1.0)
    assert "batch-api" not in set(proj[proj["kind"] != "batch"]["strategy"])  # nobody waits hours for a route


def test_lever_arms_on_fewer_documents(tmp_path: Path) -> None:
    """`lever_docs`: the cached-prefix and batch-api arms label a subset of the same documents, one
    record each; changes vs naive are per document and paired on that subset; the turnaround table
    puts the batch beside naive."""
    from workbench.serve.batch import BatchServer
    from workbench.serve.mock import MockScript, MockServer

    with (MockServer(MockScript.timed(1, 1, 1, "billing")) as mock, BatchServer(mock.base_url, concurrency=2) as bs):
        oa = Contender(name="oa", api="openai-chat", model="m", base_url=bs.base_url_for("openai-chat"),
                       price={"input": 1.0, "output": 2.0, "batch_discount": 0.5, "source": "test"})
        session = Session(run=RunDir.create(tmp_path, "run"), experiment="coalescing", contenders=[oa], skipped=[],
                          base_urls={"oa": oa.base_url or ""})
        outcomes = co.run_coalescing(session, DOCS, LABELS, k=2, window=4, concurrency=2,
                                     strategies=co.parse_strategies("batch-api,naive,cached-prefix"),
                                     batch_poll_s=0.02, lever_docs=4)
    df = load_records(session.run.path, "coalescing")
    subset = {d.id for d in co.select_documents(DOCS, 4)}
    n = cost.arm_records(df).groupby("strategy")["prompt_id"].agg(lambda x: set(x))
    assert n["naive"] == {d.id for d in DOCS} and n["cached-prefix"] == subset and n["batch-api"] == subset
    # the cached-prefix arm's 4 and their 4 cache-off controls (OpenAI's switch)
    assert df.groupby("strategy").size().to_dict() == {"naive": 8, "cached-prefix": 8, "batch-api": 4}
    prices = levers.contender_prices(session.contenders, df, machine_hour_usd=1.0)
    s = levers.strategy_summary(df, outcomes, prices, n_boot=200)
    ba = levers.before_after(s).set_index("strategy")
    assert ba.loc["cached-prefix", "requests_change_pct"] == pytest.approx(0.0)  # one request per document
    row = s.set_index("strategy").loc["batch-api"]
    assert row["n_docs"] == 4 and row["accuracy_n"] == 4
    t = levers.batch_turnaround(df, s).iloc[0]
    assert t["documents"] == 4 and t["batches"] == 1 and t["items"] == "succeeded 4"
    assert t["turnaround s"] > 0 and t["naive wall s (docs)"].endswith("(8)")
    assert levers.batch_turnaround(df, s[s["strategy"] != "batch-api"]).empty


def test_strategies_parameter() -> None:
    assert co.parse_strategies("") == co.STRATEGIES
    assert co.parse_strategies(" batch-api , naive") == ("naive", "batch-api")
    with pytest.raises(ValueError, match="valid: naive, coalesced"):
        co.parse_strategies("naive,batch")


def test_the_batch_api_arm_on_a_plain_endpoint_is_skipped_with_a_note(tmp_path: Path,
                                                                       capsys: pytest.CaptureFixture[str]) -> None:
    """A self-hosted OpenAI-compatible server has no `/v1/files`: the arm says the endpoint has no
    batch API and is skipped — no batch-api record or outcome — instead of every document failing
    with "File Not Found"; the other arms run as usual."""
    from workbench.serve.mock import MockScript, MockServer

    with MockServer(MockScript.timed(1, 1, 1, "billing")) as mock:
        plain = Contender(name="plain", api="openai-chat", model="m", base_url=mock.base_url_for("openai-chat"))
        session = Session(run=RunDir.create(tmp_path, "run"), experiment="coalescing", contenders=[plain], skipped=[],
                          base_urls={"plain": plain.base_url or ""})
        outcomes = co.run_coalescing(session, DOCS, LABELS, k=2, window=4, concurrency=4, repeats=2,
                                     strategies=("naive", "batch-api"), batch_poll_s=0.02)
        files_calls = [r for r in mock.requests if r["path"].endswith("/files")]
    assert set(outcomes["strategy"]) == {"naive"} and len(outcomes) == 2 * len(DOCS)
    df = load_records(session.run.path, "coalescing")
    assert set(df["strategy"]) == {"naive"}
    out = capsys.readouterr().out
    assert "batch-api: plain:" in out and "has no batch API" in out and "the arm is skipped" in out
    assert len(files_calls) == 1  # found out once, not again on the second repeat
