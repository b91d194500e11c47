"""A new user's path, end to end: a workspace of their own (a bank's intents, documents and
questions), their own OpenAI-compatible server priced by the machine-hour, a TTFT SLO, every
experiment and the report — and nothing of the demo in the answer.

The "own server" is the embedded llama.cpp server addressed as any self-hosted endpoint would be
(a base URL, `hosting: self-hosted`), not as an embedded model."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from workbench import workspace
from workbench.experiments import select_experiments
from workbench.results import load_records
from workbench.runner import run_experiments
from workbench.workspace_files import init_workspace, validate_workspace

pytestmark = [pytest.mark.local_models, pytest.mark.notebook, pytest.mark.slow]

MESSAGES = [
    ("I lost my debit card on the bus", "card_lost"), ("my card was stolen last night", "card_lost"),
    ("can't find my credit card anywhere", "card_lost"), ("wallet gone, card inside, block it", "card_lost"),
    ("you charged me twice for one coffee", "double-charge"), ("two identical payments of 40 euros", "double-charge"),
    ("the same purchase appears twice on my statement", "double-charge"),
    ("duplicate transaction at the supermarket", "double-charge"),
    ("what are your opening hours on Saturday", "other"), ("do you have a branch in Leeds", "other"),
    ("I want to open a savings account", "other"), ("thanks for the quick help yesterday", "other"),
]
DOCUMENTS = MESSAGES[:5] + MESSAGES[6:11]
QA = [
    {"question": "In the passage, what is the overdraft fee?", "answers": ["25 euros", "25"],
     "passage": "Northbank charges an overdraft fee of 25 euros per month."},
    {"question": "How many days does Northbank take to replace a lost card?", "answers": ["5", "five"],
     "passage": "A lost card is replaced within 5 working days."},
    {"question": "What is the capital of France?", "answers": ["Paris"]},
    {"question": "How many legs does a spider have?", "answers": ["8", "eight"]},
    {"question": "In what year did Northbank open its branch on the Moon?", "answers": []},
    {"question": "Who was the first person to walk on Mars?", "answers": []},
]


def _write(ws: Path, endpoint: str) -> None:
    data = ws / "data"
    pd.DataFrame(MESSAGES, columns=["text", "label"]).to_csv(data / "messages.csv", index=False)
    pd.DataFrame(DOCUMENTS, columns=["text", "label"]).to_csv(data / "documents.csv", index=False)
    (data / "qa.jsonl").write_text("".join(json.dumps(q) + "\n" for q in QA), encoding="utf-8")
    (ws / "contenders.yaml").write_text(f"""\
defaults:
  sampling: {{temperature: 0.0, max_tokens: 16}}
  timeout_s: 120
contenders:
  - name: bank-model
    api: openai-chat
    base_url: {endpoint}
    model: qwen2.5-coder-0.5b-instruct
    hosting: self-hosted
    price: {{machine_hour_usd: 2.0}}
    system_prompt: You are a concise assistant. Answer in a few words.
""", encoding="utf-8")
    (ws / "scenarios.yaml").write_text("""\
scenarios:
  card_router:
    kind: realtime
    description: Routes a bank's chat messages before an agent answers.
    task: {type: classify, data: data/messages.csv, labels: [card_lost, double-charge, other]}
    target_qps: 5
    slo: {metric: ttft, percentile: 95, max_s: 2.0}
    accuracy_floor: 0.3
    cost_ref_usd: 0.05
    weights: {latency: 0.4, cost: 0.3, accuracy: 0.3}
  statements:
    kind: batch
    description: Nightly tagging of statement disputes.
    task: {type: classify, data: data/documents.csv}
    documents_per_night: 10000
    window_hours: 8
    accuracy_floor: 0.3
    concurrency_limit: 4
    cost_ref_usd: 0.001
    weights: {cost: 0.5, accuracy: 0.5}
  assistant:
    kind: prototyping
    description: A policy-questions assistant prototype.
    task: {type: qa, data: data/qa.jsonl}
    monthly_requests: 1000
    quality_floor: 0.1
    cost_ref_usd: 50
    weights: {hallucination: 0.5, accuracy: 0.5}
""", encoding="utf-8")


def test_a_workspace_of_ones_own_runs_every_experiment_into_its_own_report(
        local_endpoints: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    ws = tmp_path / "bank"
    init_workspace(ws, log=lambda _: None)
    _write(ws, local_endpoints["qwen2.5-coder-0.5b-instruct"])
    monkeypatch.setenv(workspace.WORKSPACE_ENV, str(ws))
    monkeypatch.chdir(tmp_path)  # not the workspace, not the checkout: the environment decides
    read, problems = validate_workspace(workspace.current())
    assert problems == [] and any("messages.csv: 12 rows" in line for line in read), (read, problems)

    run = run_experiments(select_experiments(None), log=lambda _: None, params={
        "n_requests": 12, "warmup": 0, "levels": "1,2", "requests_per_level": 4, "confirm_requests": 0,
        "rehearse_rate_limit": False, "sample_size": 0, "n_docs": 10, "strategies": "naive,coalesced",
        "n_boot": 100})
    assert run.path.parent == ws / "results"  # results only under the workspace

    latency = load_records(run.path, "latency")
    warm = latency[latency["phase"] == "warm"]
    assert set(warm["prompt_id"]) == {f"row-{i}" for i in range(1, 13)}
    assert set(warm["expected"]) == {"card_lost", "double-charge", "other"}
    sweep = load_records(run.path, "concurrency")
    assert set(sweep.loc[sweep["phase"] == "sweep", "prompt_set"]) == {"scenario:card_router"}

    matrix = pd.read_csv(run.path / "decision_matrix.csv").set_index("scenario")
    assert set(matrix.index) == {"card_router", "statements", "assistant"}  # exactly the workspace's
    router = matrix.loc["card_router"]
    assert "TTFT p95" in str(router["constraint_power"])  # the SLO's own metric is the constraint
    assert str(router["cost_source"]).startswith("self-hosted: $2/machine-hour")
    report = (run.path / "report.html").read_text(encoding="utf-8")
    assert "card_router" in report and "TTFT p95" in report and "self-hosted" in report
    assert "routing" not in set(matrix.index) and "batch_annotation" not in set(matrix.index)

    from workbench.analysis.evidence import gather_evidence
    from workbench.analysis.scenarios import load_scenarios
    from workbench.experiments.summary import build_summary

    summary = build_summary([run.path], n_boot=100)
    by = {r.name: r for r in summary.results}
    assert by["card_router"].metrics["bank-model"]["route_accuracy"].n == len(MESSAGES)
    assert by["statements"].metrics["bank-model"]["annotation_accuracy"].n == len(DOCUMENTS)
    assert by["assistant"].metrics["bank-model"]["hallucination_score"].n == len(QA)
    assert set(load_scenarios()) == set(matrix.index) and gather_evidence(run.path).labels == ["bank-model"]
