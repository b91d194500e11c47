"""Evidence → decision matrix, on synthetic run folders whose right answers are known."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.synthetic_runs import contenders, write_run
from workbench.analysis.checklist import migration_checklist
from workbench.analysis.comparisons import pairwise_tests
from workbench.analysis.decision import decide, decision_matrix
from workbench.analysis.evidence import gather_evidence
from workbench.analysis.scenarios import load_scenarios


def test_routing_slo_is_a_hard_constraint_and_the_pick_meets_it(tmp_path: Path) -> None:
    run = write_run(tmp_path, {"fast": {"e2e": 0.05, "halluc": 0.3}, "slow": {"e2e": 0.3, "halluc": 0.05}})
    ev = gather_evidence(run, n_boot=200)
    assert "concurrency" in ev.missing and "latency" not in ev.missing
    sc = load_scenarios()["routing"]
    res = decide(ev, "routing", sc, contenders("fast", "slow"), machine_hour_usd=0.1, n_boot=200)
    t = res.table.set_index("contender")
    assert bool(t.loc["fast", "eligible"]) and not bool(t.loc["slow", "eligible"])
    assert "p95_e2e_s" in str(t.loc["slow", "failed_constraint"]) and "0.1" in str(t.loc["slow", "failed_constraint"])
    assert res.pick == "fast" and t.loc["fast", "rank"] == 1
    assert "cost" in res.dropped_axes  # no concurrency sweep: no cost at the target rate


def test_none_eligible_is_said_plainly(tmp_path: Path) -> None:
    run = write_run(tmp_path, {"a": {"e2e": 0.4, "halluc": 0.2}, "b": {"e2e": 0.5, "halluc": 0.2}})
    ev = gather_evidence(run, n_boot=100)
    res = decide(ev, "routing", load_scenarios()["routing"], contenders("a", "b"), machine_hour_usd=0.1, n_boot=100)
    assert res.pick is None
    assert set(res.table["gives_up"]) == {"no contender meets every hard constraint"}
    assert "No contender meets" in migration_checklist(res, ev)[0]


def test_overlapping_scores_tie_and_clear_gaps_rank(tmp_path: Path) -> None:
    run = write_run(tmp_path, {"a": {"e2e": 0.05, "halluc": 0.10}, "b": {"e2e": 0.05, "halluc": 0.11},
                               "c": {"e2e": 0.05, "halluc": 0.60}})
    ev = gather_evidence(run, n_boot=300)
    res = decide(ev, "prototyping", load_scenarios()["prototyping"], contenders("a", "b", "c"),
                 machine_hour_usd=0.1, n_boot=300)
    ranks = res.table.set_index("contender")["rank"]
    assert ranks["a"] == ranks["b"] == 1  # 10% vs 11% of 60 items: not distinguishable
    assert ranks["c"] > 1
    row_c = res.table.set_index("contender").loc["c"]
    assert row_c["gives_up"].startswith("hallucination:")
    assert row_c["score_low"] <= row_c["score"] <= row_c["score_high"]


def test_matrix_has_the_contract_columns(tmp_path: Path) -> None:
    run = write_run(tmp_path, {"a": {"e2e": 0.05, "halluc": 0.1}, "b": {"e2e": 0.08, "halluc": 0.2}})
    ev = gather_evidence(run, n_boot=100)
    cs = contenders("a", "b")
    m = decision_matrix([decide(ev, n, s, cs, machine_hour_usd=0.1, n_boot=100) for n, s in load_scenarios().items()])
    assert list(m.columns[:9]) == ["scenario", "contender", "eligible", "failed_constraint", "score", "score_low",
                                   "score_high", "rank", "gives_up"]
    assert set(m["scenario"]) == {"routing", "batch_annotation", "prototyping"}
    batch = m[m["scenario"] == "batch_annotation"]
    assert (~batch["eligible"]).all() and batch["failed_constraint"].str.contains("accuracy not measured").all()


def test_pairwise_tests_find_real_differences_and_apply_holm(tmp_path: Path) -> None:
    run = write_run(tmp_path, {"a": {"e2e": 0.05, "halluc": 0.1}, "b": {"e2e": 0.20, "halluc": 0.5},
                               "c": {"e2e": 0.051, "halluc": 0.1}})
    sig = pairwise_tests(gather_evidence(run, n_boot=100))
    lat = sig[sig["axis"] == "latency"].set_index(["a", "b"])
    assert bool(lat.loc[("a", "b"), "significant"]) and lat.loc[("a", "b"), "effect"] < 0
    hal = sig[sig["axis"] == "hallucination"].set_index(["a", "b"])
    assert bool(hal.loc[("a", "b"), "significant"])
    assert not bool(hal.loc[("a", "c"), "significant"])  # identical grades
    assert (sig["p_holm"] >= sig["p"]).all()


def test_checklist_follows_from_the_facts(tmp_path: Path) -> None:
    run = write_run(tmp_path, {"a": {"e2e": 0.05, "halluc": 0.1, "caps": {"streaming": True, "usage_in_stream": False}},
                               "b": {"e2e": 0.06, "halluc": 0.3}})
    ev = gather_evidence(run, n_boot=100)
    res = decide(ev, "prototyping", load_scenarios()["prototyping"], contenders("a", "b"), machine_hour_usd=0.1,
                 n_boot=100)
    items = "\n".join(migration_checklist(res, ev))
    assert "usage_in_stream is false" in items and "streaming is" not in items
    assert "Error budget" in items and "Hallucination rate measured" in items


def test_several_runs_are_compared_as_separate_contenders(tmp_path: Path) -> None:
    r1 = write_run(tmp_path, {"a": {"e2e": 0.05, "halluc": 0.1}}, run_id="before")
    r2 = write_run(tmp_path, {"a": {"e2e": 0.03, "halluc": 0.1}}, run_id="after", seed=1)
    ev = gather_evidence([r1, r2], n_boot=100)
    assert ev.contenders == ["a@after", "a@before"]
    sig = pairwise_tests(ev)
    assert bool(sig[sig["axis"] == "latency"]["significant"].iloc[0])


@pytest.mark.parametrize("missing", ["latency", "hallucination"])
def test_missing_experiments_are_named_not_invented(tmp_path: Path, missing: str) -> None:
    run = write_run(tmp_path, {"a": {"e2e": 0.05, "halluc": 0.1}})
    (run / f"{missing}.jsonl").unlink()
    ev = gather_evidence(run, n_boot=50)
    assert missing in ev.missing


def test_batch_takes_the_cheapest_strategy_that_meets_the_accuracy_floor(tmp_path: Path) -> None:
    import pandas as pd

    run = write_run(tmp_path, {"a": {"e2e": 0.05, "halluc": 0.1}})
    rows = [  # coalesced is cheapest but below the floor; dedup is cheaper than naive and meets it
        {"strategy": "naive", "accuracy": 0.90, "requests_per_doc": 1.0, "mean_e2e_s": 0.5},
        {"strategy": "coalesced", "accuracy": 0.50, "requests_per_doc": 0.25, "mean_e2e_s": 0.8},
        {"strategy": "dedup", "accuracy": 0.85, "requests_per_doc": 0.6, "mean_e2e_s": 0.5},
    ]
    pd.DataFrame([{"contender": "a", "accuracy_n": 100, "input_tokens_per_doc": 300 * r["requests_per_doc"],
                   "output_tokens_per_doc": 2 * r["requests_per_doc"], "e2e_n": 50, **r} for r in rows]
                 ).to_csv(run / "coalescing_summary.csv", index=False)
    ev = gather_evidence(run, n_boot=50)
    assert ev.get("a", "accuracy[dedup]") is not None and "coalescing" not in ev.missing
    res = decide(ev, "batch_annotation", load_scenarios()["batch_annotation"], contenders("a"),
                 machine_hour_usd=0.1, n_boot=50)
    m = res.metrics["a"]
    assert m["strategy"].source == "dedup"
    assert m["accuracy"].value == pytest.approx(0.85)
    # hosted, list price 1/2 USD per 1M tokens: 180 input + 1.2 output tokens per document
    assert m["cost_per_document_usd"].value == pytest.approx((180 * 1.0 + 1.2 * 2.0) / 1e6)


def test_routing_cost_and_replicas_come_from_goodput_under_the_slo(tmp_path: Path) -> None:
    from tests.synthetic_runs import write_concurrency

    run = write_run(tmp_path, {"a": {"e2e": 0.05, "halluc": 0.1}})
    write_concurrency(run, "a", {1: 0.05, 2: 0.08, 4: 0.2})  # level 4 breaks the 100 ms SLO
    ev = gather_evidence(run, n_boot=50)
    res = decide(ev, "routing", load_scenarios()["routing"], contenders("a"), machine_hour_usd=0.1, n_boot=50)
    m = res.metrics["a"]
    # best level within the SLO is 2 workers x 1/0.08 s = 25 req/s (window from first send to last end)
    assert m["goodput_rps"].value == pytest.approx(25.0, rel=0.1)
    assert m["replicas"].value == pytest.approx(10000 / m["goodput_rps"].value, abs=1.0)
    assert "cost" not in res.dropped_axes and m["cost_per_1k_requests_usd"].value > 0
