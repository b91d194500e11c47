"""Spend budget: refuses the next request before the projection would pass the cap, and says so."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import CANARY, KEY_ENV
from tests.reliability.conftest import fault_contender
from workbench.config import Contender
from workbench.experiments.latency import run_latency
from workbench.measure.budget import Budget, BudgetExhausted, budget_for
from workbench.pricing import Price
from workbench.results import RunDir, load_records
from workbench.serve.mock import MockScript, MockServer
from workbench.session import Session
from workbench.types import Prompt, Record

# $1 per 1M input and $10 per 1M output tokens: 100 in + 100 out = $0.0011.
PRICE = Price(input=1.0, output=10.0, source="test")


def rec(contender: str, n_in: int | None, n_out: int | None) -> Record:
    return Record(run_id="r", experiment="e", contender=contender, model="m", request_id="x",
                  t_start_unix=0.0, input_tokens=n_in, output_tokens=n_out)


def test_allow_projects_the_worst_case_and_charge_adds_real_usage() -> None:
    b = Budget(0.003, {"a": PRICE})
    assert b.estimate("a", 100, 100) == pytest.approx(0.0011)
    assert b.allow("a", 100, 100)
    assert b.charge(rec("a", 100, 100)) == pytest.approx(0.0011)
    assert b.allow("a", 100, 100)  # 0.0022 <= 0.003
    b.charge(rec("a", 100, 100))
    assert not b.allow("a", 100, 100)  # 0.0033 > 0.003: refused before sending
    assert b.refused == 1 and b.charged == 2
    assert b.message() == "budget exhausted: spent $0.0022 of $0.003"


def test_failed_requests_without_usage_cost_nothing_and_unpriced_contenders_are_listed() -> None:
    b = Budget(1.0, {"a": PRICE, "local": None, "hourly": Price(machine_hour_usd=2.0)})
    assert b.charge(rec("a", None, None)) == 0.0
    assert b.unpriced == {"local", "hourly"}
    assert b.estimate("local", 10**9, 10**9) == 0.0


def test_no_budget_means_none() -> None:
    c = Contender.model_validate({"name": "x", "api": "openai-chat", "model": "m", "base_url": "http://h"})
    assert budget_for(None, [c]) is None and budget_for(0.0, [c]) is None
    with pytest.raises(ValueError, match="max_usd must be > 0"):
        Budget(-1.0, {})


def test_latency_stops_at_the_budget_with_a_cancelled_record(tmp_path: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(KEY_ENV, CANARY)
    with MockServer() as srv:
        c = fault_contender(srv, 5.0).with_sampling(max_tokens=100)
        # Worst case per request ~$0.001 (100 output tokens at $10/M); the real usage (12 in, 4
        # out) costs ~$0.00005, so a $0.00105 cap lets a few through, then refuses one.
        budget = Budget(0.00105, {c.name: PRICE})
        run = RunDir.create(tmp_path)
        session = Session(run=run, experiment="latency", contenders=[c], skipped=[],
                          base_urls={c.name: srv.base_url}, budget=budget)
        recs = run_latency(session, [Prompt(id="p", text="hi")], n_requests=20, warmup=0)
        sent = sum(srv.counts.values())
    df = load_records(run.path, "latency")
    cancelled = df[df["error_class"] == "cancelled"]
    assert len(cancelled) == 1 and len(recs) == sent == len(df) - 1
    msg = cancelled.iloc[0]["error_message"]
    assert msg.startswith("budget exhausted: spent $") and msg.endswith(" of $0.00105")
    assert budget.spent_usd <= budget.max_usd
    assert sent < 21  # stopped early


def test_budget_exhausted_is_a_workbench_error() -> None:
    assert "budget exhausted: spent $1 of $1.5" in str(BudgetExhausted(1.0, 1.5))


def test_reservations_hold_the_worst_case_of_requests_in_flight() -> None:
    b = Budget(0.003, {"a": PRICE})
    held = [b.reserve("a", 100, 100), b.reserve("a", 100, 100)]
    assert held == [pytest.approx(0.0011)] * 2
    assert b.reserve("a", 100, 100) is None  # 2 in flight at worst + this one > the cap
    b.release(held[0])
    b.charge(rec("a", 10, 10))  # it really cost $0.00011
    assert b.reserve("a", 100, 100) is not None


@pytest.mark.parametrize("profile", ["closed", "open"])
def test_a_load_run_stops_at_the_budget(profile: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """8 workers in flight never take the spend past the cap: each request's worst case is held
    while it runs; the refused one is a cancelled record and nothing starts after it."""
    import asyncio

    from workbench.measure.load import closed_loop, open_loop
    from workbench.measure.target import Target

    monkeypatch.setenv(KEY_ENV, CANARY)
    with MockServer(MockScript(ttft_s=0.02)) as srv:
        c = fault_contender(srv, 5.0).with_sampling(max_tokens=100)
        # worst case ~$0.001 a request, real ~$0.00005: a few dozen fit under the cap
        budget = Budget(0.0035, {c.name: PRICE})
        target, prompts = Target(c, srv.base_url, budget=budget), [Prompt(id="p", text="hi")]
        if profile == "closed":
            res = asyncio.run(closed_loop(target, prompts, concurrency=2, n_requests=200, max_duration_s=20))
        else:
            res = asyncio.run(open_loop(target, prompts, rate=40, n_requests=200, max_duration_s=20,
                                        arrival="constant"))
        sent = sum(srv.counts.values())
    assert res.budget_stopped and any("stopped by the spend budget" in n for n in res.notes)
    refused = [r for r in res.records if r.error_class == "cancelled"]
    assert len(refused) >= 1 and all(r.extra["sent"] is False for r in refused)
    assert all((r.error_message or "").startswith("budget exhausted") for r in refused)
    assert len(res.records) == res.sent + res.dropped + res.unsent_cancelled
    assert res.sent == sent and 5 < sent < 200
    assert budget.spent_usd <= budget.max_usd and budget.reserved_usd == 0


def test_a_request_cut_off_at_the_deadline_counts_its_worst_case(monkeypatch: pytest.MonkeyPatch) -> None:
    """The provider may bill an answer the workbench stopped reading: the cap must still hold."""
    import asyncio

    from workbench.measure.load import closed_loop
    from workbench.measure.target import Target

    monkeypatch.setenv(KEY_ENV, CANARY)
    with MockServer(MockScript(ttft_s=2.0)) as srv:
        c = fault_contender(srv, 5.0).with_sampling(max_tokens=100)
        budget = Budget(1.0, {c.name: PRICE})
        target = Target(c, srv.base_url, budget=budget)
        res = asyncio.run(closed_loop(target, [Prompt(id="p", text="hi")], concurrency=2, n_requests=2,
                                      max_duration_s=0.3))
    assert [r.error_class for r in res.records] == ["cancelled", "cancelled"]
    assert budget.spent_usd == pytest.approx(2 * budget.estimate(c.name, 1, 100)) and budget.reserved_usd == 0


def test_a_sharded_budget_is_split_by_each_shards_part_of_the_work() -> None:
    """A closed loop of 1 worker on 2 shards is all shard 0's work: it gets the whole room, the
    idle shard none (an even split stopped the run at half the cap)."""
    from workbench.measure.load.pool import _work_weights

    budget = Budget(1.0, {"m": Price(input=1.0, output=2.0, source="test")}, spent_usd=0.2)
    assert _work_weights("closed", {"concurrency": 1, "n_requests": 40}, 2) == [1, 0]
    assert _work_weights("closed", {"concurrency": 3, "n_requests": 40}, 2) == [2, 1]
    assert _work_weights("open", {"n_requests": 5}, 2) == [3, 2]
    shares = budget.split([2, 1])
    assert [round(s.max_usd, 6) for s in shares] == [0.666667, 0.333333]
    assert [round(s.spent_usd, 6) for s in shares] == [0.133333, 0.066667]
    idle = budget.split([1, 0])[1]
    assert idle.max_usd == 0 and not idle.allow("m", 10, 10)
    with pytest.raises(ValueError):
        budget.split([0, 0])


def _priced(c: Contender) -> Contender:
    return c.override(price={"input": 1.0, "output": 10.0, "source": "test"})


def test_the_budget_is_the_runs_what_earlier_experiments_spent_counts(tmp_path: Path) -> None:
    c = Contender.model_validate({"name": "a", "api": "openai-chat", "model": "m", "base_url": "http://h",
                                  "price": {"input": 1.0, "output": 10.0, "source": "test"}})
    run = RunDir.create(tmp_path)
    (run.path / "latency.jsonl").write_text(
        '{"contender": "a", "input_tokens": 100, "output_tokens": 100}\n'
        '{"contender": "a", "input_tokens": 100, "output_tokens": 100}\n{"contender": "a", "input_t', encoding="utf-8")
    budget = budget_for(0.003, [c], run.path)
    assert budget is not None and budget.spent_usd == pytest.approx(0.0022)  # the cut-off line is not counted
    assert budget.allow("a", 0, 50) and not budget.allow("a", 100, 100)


def test_hallucination_stops_at_the_budget(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from workbench.analysis.grading import QAItem
    from workbench.experiments.hallucination import run_hallucination

    monkeypatch.setenv(KEY_ENV, CANARY)
    items = [QAItem(id=f"q{i}", category="people", question=f"Who is {i}?", answers=("x",), answerable=True)
             for i in range(20)]
    with MockServer() as srv:
        c = _priced(fault_contender(srv, 5.0)).with_sampling(max_tokens=100)
        budget = Budget(0.00105, {c.name: PRICE})
        session = Session(run=RunDir.create(tmp_path), experiment="hallucination", contenders=[c], skipped=[],
                          base_urls={c.name: srv.base_url}, budget=budget)
        run_hallucination(session, items)
        sent = sum(srv.counts.values())
    df = load_records(session.run.path, "hallucination")
    refused = df[df["error_class"] == "cancelled"]
    assert len(refused) >= 1 and refused["error_message"].str.startswith("budget exhausted").all()
    assert sent == len(df) - len(refused) < 20 and budget.spent_usd <= budget.max_usd


def test_coalescing_and_its_batch_api_items_stop_at_the_budget(tmp_path: Path, monkeypatch: pytest.MonkeyPatch
                                                               ) -> None:
    from workbench.experiments import coalescing as co
    from workbench.serve.batch import BatchServer
    from workbench.serve.mock import MockScript

    docs = [co.Document(f"d{i}", f"My parcel number {i} never arrived", "shipping") for i in range(12)]
    labels = {"billing": "money", "shipping": "parcels"}
    for strategy in ("naive", "batch-api"):
        with (MockServer(MockScript.timed(1, 1, 1, "shipping")) as mock,
              BatchServer(mock.base_url, concurrency=4) as bs):
            c = Contender(name="oa", api="openai-chat", model="m", base_url=bs.base_url_for("openai-chat"),
                          price={"input": 1.0, "output": 10.0, "batch_discount": 0.5, "source": "test"})
            # the mock bills ~$0.00002 a document, each held at its worst case while in flight: a few
            # fit under the cap, not twelve
            budget = Budget(0.00025, {c.name: PRICE})
            session = Session(run=RunDir.create(tmp_path / strategy), experiment="coalescing", contenders=[c],
                              skipped=[], base_urls={"oa": c.base_url or ""}, budget=budget)
            co.run_coalescing(session, docs, labels, strategies=(strategy,), batch_poll_s=0.02)
        df = load_records(session.run.path, "coalescing")
        refused = df[df["error_class"] == "cancelled"]
        assert len(refused) >= 1, strategy
        assert refused["error_message"].str.startswith("budget exhausted").all(), strategy
        assert len(df) - len(refused) < len(docs) and budget.spent_usd <= budget.max_usd, strategy
