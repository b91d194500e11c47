"""Failed requests count, and missing is unmeasured, never 0 — through the real `decide()` on
synthetic run folders whose right answers are known.

A failed request is +∞ in a latency percentile and wrong in every accuracy; each scenario bounds
its own error rate; a metric a scenario needs that a contender lacks makes it inconclusive with
the reason, and the load sweep that prices an embedded contender's routing must run on the
routing prompts."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from tests.synthetic_runs import contenders, write_concurrency, write_run
from workbench.analysis.checklist import migration_checklist
from workbench.analysis.decision import decide
from workbench.analysis.evidence import gather_evidence
from workbench.analysis.scenarios import load_scenarios
from workbench.config import Contender

SC = load_scenarios()


def _decide(run: Path, scenario: str, cs: dict[str, Contender], n_boot: int = 200):  # type: ignore[no-untyped-def]
    ev = gather_evidence(run)
    return ev, decide(ev, scenario, SC[scenario], cs, machine_hour_usd=0.1, n_boot=n_boot)


def _local(name: str) -> Contender:
    return contenders(name)[name].override("test", base_url=None, local="gemma-3-270m", api="openai-chat")


def test_a_contender_that_times_out_on_its_slowest_requests_does_not_win_routing(tmp_path: Path) -> None:
    # flaky answers faster, but its slowest 25% time out; over its survivors its p95 would be
    # ~55 ms against steady's ~65 ms, and it would be picked
    run = write_run(tmp_path, {"flaky": {"e2e": 0.05, "halluc": 0.1, "timeout_slowest": 0.25},
                               "steady": {"e2e": 0.06, "halluc": 0.1}})
    ev, res = _decide(run, "routing", contenders("flaky", "steady"))
    t = res.table.set_index("contender")
    p95 = res.metrics["flaky"]["e2e_p95"]
    assert p95.value == math.inf and p95.n == 100  # the p95 rank lands on the failures: never answered
    assert res.metrics["flaky"]["route_accuracy"].n == 100  # a timed-out request is a wrong route, not a gap
    assert ev.prompts["flaky"]["error_class"].eq("timeout").sum() == 25  # typed on the unit
    assert t.loc["flaky", "constraint_status"] == "fail"
    assert "E2E p95 ≤ 100 ms: ∞ ms [" in t.loc["flaky", "failed_constraint"]  # the bound says so
    assert "error rate ≤ 5%: 25.0%" in t.loc["flaky", "failed_constraint"]
    assert t.loc["flaky", "units_lost_to_errors"] == 25 and "prompts 25/100 (timeout 25)" in t.loc[
        "flaky", "units_lost_detail"]
    assert t.loc["steady", "units_lost_to_errors"] == 0
    assert res.pick == "steady"


def test_a_contender_that_errors_instead_of_being_wrong_does_not_win_prototyping(tmp_path: Path) -> None:
    # flaky errors on every item it would get wrong and on every unanswerable one: counted over
    # its survivors only, it would have F = 1 and no false premise accepted
    run = write_run(tmp_path, {"flaky": {"e2e": 0.5, "halluc": 0.5, "fp": 1.0, "error_if_wrong": True},
                               "good": {"e2e": 0.5, "halluc": 0.3, "fp": 0.3}})
    _, res = _decide(run, "prototyping", contenders("flaky", "good"))
    t = res.table.set_index("contender")
    h_flaky, h_good = res.metrics["flaky"]["hallucination_score"], res.metrics["good"]["hallucination_score"]
    assert h_flaky.n == h_good.n == 80  # n does not shrink when requests fail
    assert h_flaky.value < h_good.value
    # an error on an unanswerable item is not a rejection of its premise
    assert res.metrics["flaky"]["false_premise_acceptance"].value == 1.0
    assert t.loc["flaky", "constraint_status"] == "fail" and "error rate ≤ 5%" in t.loc["flaky", "failed_constraint"]
    assert "items 50/80 (timeout 50)" in t.loc["flaky", "units_lost_detail"]
    assert res.pick == "good"


@pytest.mark.parametrize("cls", ["refused", "blocked"])
def test_a_refusal_or_safety_block_is_a_failure_not_an_abstention(tmp_path: Path, cls: str) -> None:
    """A refused or blocked item is neither "not attempted" nor correct: it is a failed request —
    in failed_n beside the graded n, in the scenario's error rate and lost units, and in the
    error table every notebook shows."""
    from workbench.analysis.hallucination import split_summary
    from workbench.results import error_table, load_runs

    run = write_run(tmp_path, {"policy": {"e2e": 0.5, "halluc": 0.5, "fp": 1.0, "error_if_wrong": True,
                                          "error_class": cls},
                               "good": {"e2e": 0.5, "halluc": 0.3, "fp": 0.3}})
    df = load_runs([run], "hallucination")
    table = split_summary(df, n_boot=50).set_index("contender")
    assert (table.loc["policy", "not_attempted"], table.loc["policy", "failed_n"]) == (0, 50)
    assert table.loc["policy", "correct"] == 30  # only the answers it gave
    errors = error_table(df).reset_index()
    assert errors.loc[errors["contender"] == "policy", ["error_class", "requests"]].values.tolist() == [[cls, 50]]
    _, res = _decide(run, "prototyping", contenders("policy", "good"))
    t = res.table.set_index("contender")
    assert f"items 50/80 ({cls} 50)" in t.loc["policy", "units_lost_detail"]
    assert t.loc["policy", "constraint_status"] == "fail" and "error rate" in t.loc["policy", "failed_constraint"]
    assert res.metrics["policy"]["false_premise_acceptance"].value == 1.0  # a block is no premise rejected


def test_the_embedded_routing_cost_comes_from_a_sweep_on_the_routing_prompts(tmp_path: Path) -> None:
    run = write_run(tmp_path, {"api": {"e2e": 0.05, "halluc": 0.1}, "emb": {"e2e": 0.04, "halluc": 0.1}})
    write_concurrency(run, "emb", {1: 0.04, 2: 0.06, 4: 0.2}, prompt_set="routing")
    cs = {**contenders("api"), "emb": _local("emb")}
    _, res = _decide(run, "routing", cs)
    t = res.table.set_index("contender")
    cost = res.metrics["emb"]["cost_per_1k_requests_usd"]
    assert math.isfinite(cost.value) and cost.reps is not None and "goodput" in cost.source
    assert t.loc["emb", "cost_utility"] > 0
    assert t.loc["emb", "constraint_status"] == "pass" and t.loc["api", "constraint_status"] == "pass"
    assert set(res.table["contender"][res.table["eligible"]]) == {"api", "emb"}


def test_a_sweep_on_other_prompts_leaves_the_embedded_routing_cost_unmeasured_not_zero(tmp_path: Path) -> None:
    run = write_run(tmp_path, {"api": {"e2e": 0.05, "halluc": 0.1}, "emb": {"e2e": 0.04, "halluc": 0.1}})
    write_concurrency(run, "emb", {1: 0.04, 2: 0.06, 4: 0.2}, prompt_set="generation")
    cs = {**contenders("api"), "emb": _local("emb")}
    ev, res = _decide(run, "routing", cs)
    t = res.table.set_index("contender")
    assert math.isnan(res.metrics["emb"]["cost_per_1k_requests_usd"].value)
    assert t.loc["emb", "constraint_status"] == "inconclusive"
    why = t.loc["emb", "failed_constraint"]
    assert "cost per 1k requests: not measured" in why and "not measured on this scenario's prompts (routing)" in why
    assert "the load sweep ran on generation" in why
    assert math.isnan(t.loc["emb", "score"]) and math.isnan(t.loc["emb", "cost_utility"])  # not scored 0
    # the hosted one is the only eligible contender, and the unmeasured one keeps it from being decisive
    assert res.pick == "api" and not res.decisive and res.tied_with == ["emb"]
    assert res.verdict.startswith("api, the only eligible contender, but not decisive: emb (")
    assert "best in" not in res.verdict
    assert t.loc["emb", "gives_up"] == "unknown: cost per 1k requests not measured"
    assert "Measure more" in migration_checklist(res, ev)[0]


def test_unmeasured_is_inconclusive_with_the_reason_and_no_pick_is_not_called_a_failure(tmp_path: Path) -> None:
    run = write_run(tmp_path, {"a": {"e2e": 0.5, "halluc": 0.3}, "b": {"e2e": 0.5, "halluc": 0.3}})
    ev = gather_evidence(run)
    ev.items.pop("b")  # b's QA answers were never recorded
    res = decide(ev, "prototyping", SC["prototyping"], contenders("a", "b"), machine_hour_usd=0.1, n_boot=200)
    t = res.table.set_index("contender")
    assert t.loc["b", "constraint_status"] == "inconclusive"
    assert "QA F-score ≥ 30%: not measured — inconclusive" in t.loc["b", "failed_constraint"]
    assert "hallucination score: not measured — inconclusive" in t.loc["b", "failed_constraint"]
    assert res.pick == "a" and not res.decisive

    ev.items.pop("a")  # now nobody's: the QA axes are dropped, the floor is unmeasured for both
    res = decide(ev, "prototyping", SC["prototyping"], contenders("a", "b"), machine_hour_usd=0.1, n_boot=200)
    assert res.pick is None and set(res.table["constraint_status"]) == {"inconclusive"}
    assert {"hallucination", "accuracy"} <= set(res.dropped_axes)
    assert res.verdict.startswith("No contender qualifies yet: 2 inconclusive, none failed outright.")
    assert "No contender is eligible yet" in migration_checklist(res, ev)[0]


def test_no_unanswerable_item_leaves_the_hallucination_score_unmeasured_not_perfect(tmp_path: Path) -> None:
    run = write_run(tmp_path, {"a": {"e2e": 0.5, "halluc": 0.3, "no_unanswerable": True},
                               "b": {"e2e": 0.5, "halluc": 0.3}})
    _, res = _decide(run, "prototyping", contenders("a", "b"))
    assert math.isnan(res.metrics["a"]["false_premise_acceptance"].value)
    assert math.isnan(res.metrics["a"]["hallucination_score"].value)  # not F × (1 − 0)
    assert res.metrics["b"]["hallucination_score"].value == pytest.approx(0.7 * (1 - 0.5 * 0.2), rel=0.05)
    t = res.table.set_index("contender")
    assert t.loc["a", "constraint_status"] == "inconclusive"
    assert "hallucination score: not measured" in t.loc["a", "failed_constraint"]


def test_one_eligible_contender_is_called_that_not_best_in_100_percent(tmp_path: Path) -> None:
    run = write_run(tmp_path, {"fast": {"e2e": 0.05, "halluc": 0.1}, "slow": {"e2e": 0.3, "halluc": 0.1}})
    _, res = _decide(run, "routing", contenders("fast", "slow"))
    assert res.pick == "fast" and res.decisive
    assert res.verdict == "fast, the only eligible contender (every other contender fails a hard constraint)."


def test_the_error_rate_limit_is_a_default_hard_constraint_and_overridable() -> None:
    from workbench.analysis.scenarios import DEFAULT_MAX_ERROR_RATE, RealtimeScenario

    base = {"name": "r", "kind": "realtime", "description": "d", "weights": {"latency": 1}, "prompt_set": "routing",
            "target_qps": 1, "slo_p95_e2e_s": 0.1, "accuracy_floor": 0.5, "cost_ref_usd": 1}
    limit = {c.metric: c.max for c in RealtimeScenario.model_validate(base).hard_constraints}
    assert limit["error_rate"] == DEFAULT_MAX_ERROR_RATE
    own = RealtimeScenario.model_validate({**base, "max_error_rate": 0.01})
    assert {c.metric: c.max for c in own.hard_constraints}["error_rate"] == 0.01
    listed = RealtimeScenario.model_validate({**base, "hard_constraints": [{"metric": "error_rate", "max": 0.2}]})
    assert [c.max for c in listed.hard_constraints if c.metric == "error_rate"] == [0.2]


def test_the_report_card_says_inconclusive_where_that_is_true(tmp_path: Path) -> None:
    import pandas as pd

    from workbench.report.columns import matrix_frame
    from workbench.report.summary import Summary

    run = write_run(tmp_path, {"a": {"e2e": 0.5, "halluc": 0.3}, "b": {"e2e": 0.5, "halluc": 0.3}})
    ev = gather_evidence(run)
    ev.items.clear()  # nobody's QA answers: the prototyping floor is unmeasured for both
    res = decide(ev, "prototyping", SC["prototyping"], contenders("a", "b"), machine_hour_usd=0.1, n_boot=100)
    cards = Summary(ev, [res], matrix_frame([res]), pd.DataFrame()).cards_html()
    assert "Inconclusive: no pick yet" in cards and "could still qualify" in cards
    assert "fails a hard constraint" not in cards

    res = decide(gather_evidence(write_run(tmp_path / "2", {"fast": {"e2e": 0.05, "halluc": 0.1},
                                                            "slow": {"e2e": 0.3, "halluc": 0.1}})),
                 "routing", SC["routing"], contenders("fast", "slow"), machine_hour_usd=0.1, n_boot=100)
    cards = Summary(ev, [res], matrix_frame([res]), pd.DataFrame()).cards_html()
    assert "The only eligible contender" in cards and "best in" not in cards


def test_the_hallucination_table_says_how_many_items_failed(tmp_path: Path) -> None:
    from workbench.analysis.hallucination import format_summary, split_summary
    from workbench.results import load_runs

    run = write_run(tmp_path, {"flaky": {"e2e": 0.5, "halluc": 0.5, "fp": 1.0, "error_if_wrong": True}})
    table = split_summary(load_runs([run], "hallucination"), n_boot=50).set_index("contender")
    assert table.loc["flaky", "answerable_n"] == 30 and table.loc["flaky", "failed_n"] == 50  # not silently 30
    assert "failed_n" in format_summary(split_summary(load_runs([run], "hallucination"), n_boot=50))


def test_the_batch_scenario_counts_the_documents_its_lever_lost(tmp_path: Path) -> None:
    import pandas as pd

    from tests.synthetic_runs import write_annotation

    run = write_run(tmp_path, {"a": {"e2e": 0.05, "halluc": 0.1}})
    write_annotation(run, "a", {"naive": (0.95, 1.0)})
    docs = pd.read_csv(run / "coalescing_documents.csv")
    lost = docs["doc_id"].isin(["d97", "d98", "d99"])  # their requests failed: no label, so wrong
    docs.loc[lost, ["source", "predicted", "correct"]] = ["failed", None, False]
    docs.to_csv(run / "coalescing_documents.csv", index=False)
    _, res = _decide(run, "batch_annotation", contenders("a"))
    row = res.table.set_index("contender").loc["a"]
    assert row["units_lost_to_errors"] == 3 and row["units_lost_detail"] == "documents 3/100 (naive)"
    assert res.metrics["a"]["annotation_accuracy"].n == 100


def test_real_failed_records_count_through_the_experiments(tmp_path: Path) -> None:
    """The experiments' own records of provider errors (the mock server sends OpenAI's 500 body):
    each failed warm request is +∞ and a wrong route, each failed QA item an incorrect answer, all
    typed, and the scenario's error rate counts them."""
    import yaml

    from workbench.experiments import hallucination, latency
    from workbench.prompts import load_prompts
    from workbench.serve.faults import error_fault
    from workbench.serve.mock import MockScript, MockServer
    from workbench.session import open_session

    with MockServer(MockScript(answer=lambda req: "billing", input_tokens=60, output_tokens=3)) as srv:
        cfile = tmp_path / "contenders.yaml"
        cfile.write_text(yaml.safe_dump({"contenders": [
            {"name": "a", "api": "openai-chat", "model": "a", "base_url": srv.base_url,
             "price": {"input": 0.1, "output": 0.4}, "timeout_s": 10}]}))
        common = {"out_dir": tmp_path / "run", "contenders": "a", "contenders_file": cfile}
        with open_session("latency", **common) as s:
            srv.fail(*[error_fault("openai-chat", "server_error")] * 4)  # the cold request, then warm 0..2
            latency.run_latency(s, load_prompts("routing"), n_requests=20, warmup=0)
        with open_session("hallucination", **common) as s:
            srv.fail(*[error_fault("openai-chat", "server_error")] * 5)
            hallucination.run_hallucination(s, hallucination.load_items(sample_size=20))
    ev = gather_evidence(tmp_path / "run")
    warm = ev.prompts["a"]
    assert (warm["error_class"] == "server_error").sum() == 3
    assert (warm.loc[warm["error_class"].notna(), "e2e_s"] == math.inf).all()
    assert (warm.loc[warm["error_class"].notna(), "route_correct"] == 0.0).all()
    items = ev.items["a"]
    assert len(items) == 20 and (items["error_class"] == "server_error").sum() == 5
    assert (items.loc[items["error_class"].notna(), "grade"] == "incorrect").all()
    _, res = _decide(tmp_path / "run", "prototyping", contenders("a"), n_boot=50)
    err = res.metrics["a"]["error_rate"]
    assert (round(err.value * err.n), err.n) == (9, 41)  # 4 of 21 latency + 5 of 20 QA requests
    assert res.table.loc[0, "units_lost_detail"] == "prompts 3/20 (server_error 3); items 5/20 (server_error 5)"


def test_the_comparison_table_says_how_many_units_each_side_lost(tmp_path: Path) -> None:
    import pandas as pd

    from workbench.analysis.comparisons import pairwise_tests
    from workbench.report.summary import Summary

    run = write_run(tmp_path, {"flaky": {"e2e": 0.05, "halluc": 0.1, "timeout_slowest": 0.25},
                               "steady": {"e2e": 0.06, "halluc": 0.1}})
    ev = gather_evidence(run)
    table = Summary(ev, [], pd.DataFrame(), pairwise_tests(ev, n_boot=100)).comparisons_display()
    lost = table.set_index("what is tested")["lost to errors (a / b)"]
    assert set(lost[lost.index.str.startswith("E2E p95")]) == {"25 / 0"}
    assert set(lost[lost.index.str.startswith("incorrect-answer")]) == {"0 / 0"}


def test_latency_measured_on_other_prompts_is_unmeasured_for_the_scenario(tmp_path: Path) -> None:
    """A scenario's router is scored on its own prompt set's latency and accuracy, never on
    another set's (a bank's router on the demo's routing messages): those metrics are missing
    with the reason, the contender inconclusive; on its own set it is scored as before."""
    run = write_run(tmp_path / "other", {"a": {"e2e": 0.05, "halluc": 0.1, "prompt_set": "generation"},
                                         "b": {"e2e": 0.06, "halluc": 0.1, "prompt_set": "generation"}})
    _, res = _decide(run, "routing", contenders("a", "b"))
    t = res.table.set_index("contender")
    for name in ("a", "b"):
        acc = res.metrics[name]["route_accuracy"]
        assert math.isnan(acc.value) and "ran on generation" in acc.source
        assert t.loc[name, "constraint_status"] == "inconclusive"
        assert "not measured on this scenario's prompts (routing)" in t.loc[name, "failed_constraint"]
    run = write_run(tmp_path / "own", {"a": {"e2e": 0.05, "halluc": 0.1, "prompt_set": "routing"},
                                       "b": {"e2e": 0.06, "halluc": 0.1, "prompt_set": "routing"}})
    _, res = _decide(run, "routing", contenders("a", "b"))
    assert res.metrics["a"]["route_accuracy"].n == 100 and res.pick == "a"


def test_an_empty_cell_of_the_axes_table_says_why(tmp_path: Path) -> None:
    """No concurrency sweep in the run: its rows say which experiment is missing, not "—"."""
    from workbench.report.summary import build_summary

    run = write_run(tmp_path, {"a": {"e2e": 0.05, "halluc": 0.1}, "b": {"e2e": 0.06, "halluc": 0.1}})
    table = build_summary([run], n_boot=50).axes_table()
    assert table.loc["max throughput", "a"] == "not measured (no concurrency records for it in this run)"
    assert table.loc["goodput", "b"].startswith("not measured")
    assert not (table == "—").any().any()
