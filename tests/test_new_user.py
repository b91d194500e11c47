"""A new user's path, end to end, through the installed tool: the wheel in a fresh venv, a
workspace of their own (a bank's intents, documents and questions), their own OpenAI-compatible
server priced by the machine-hour, a TTFT SLO, every experiment and the report — and nothing of
the demo in the answer. Then the workspace's own notebooks under nbval, as CI would run them.

The "own server" is the embedded llama.cpp server addressed as any self-hosted endpoint would be
(a base URL, `hosting: self-hosted`), not as an embedded model."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from tests.installed import Installed
from workbench import workspace
from workbench.results import load_records

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


PARAMS = {"n_requests": 12, "warmup": 0, "levels": "1,2", "requests_per_level": 4, "confirm_requests": 0,
          "rehearse_rate_limit": False, "sample_size": 0, "n_docs": 10, "strategies": "naive,coalesced",
          "n_boot": 100}


@pytest.fixture
def bank(installed_tool: Installed, local_endpoints: dict[str, str], tmp_path: Path) -> Path:
    """`workbench init` by the installed tool, then the bank's own files written over the example."""
    installed_tool.run([*installed_tool.workbench, "init", "bank"], tmp_path)
    ws = tmp_path / "bank"
    _write(ws, local_endpoints["qwen2.5-coder-0.5b-instruct"])
    return ws


def test_a_workspace_of_ones_own_runs_every_experiment_into_its_own_report(
        installed_tool: Installed, bank: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    tool, ws = installed_tool, bank
    before = tool.files()
    read = tool.run([*tool.workbench, "validate"], ws).stdout
    assert "messages.csv: 12 rows" in read, read
    params = [x for k, v in PARAMS.items() for x in ("--param", f"{k}={json.dumps(v) if isinstance(v, bool) else v}")]
    tool.run([*tool.workbench, "run", *params], ws)  # from inside the workspace
    [run_path] = list((ws / "results").iterdir())  # results only under the workspace

    latency = load_records(run_path, "latency")
    warm = latency[latency["phase"] == "warm"]
    assert set(warm["prompt_id"]) == {f"row-{i}" for i in range(1, 13)}
    assert set(warm["expected"]) == {"card_lost", "double-charge", "other"}
    assert set(warm["prompt_set"]) == {"scenario:card_router"}
    sweep = load_records(run_path, "concurrency")
    assert set(sweep.loc[sweep["phase"] == "sweep", "prompt_set"]) == {"scenario:card_router"}

    matrix = pd.read_csv(run_path / "decision_matrix.csv").set_index("scenario")
    assert set(matrix.index) == {"card_router", "statements", "assistant"}  # exactly the workspace's
    router = matrix.loc["card_router"]
    assert "TTFT p95" in str(router["constraint_power"])  # the SLO's own metric is the constraint
    assert str(router["cost_source"]).startswith("self-hosted: $2/machine-hour")
    report = (run_path / "report.html").read_text(encoding="utf-8")
    assert "card_router" in report and "TTFT p95" in report and "self-hosted" in report

    from workbench.analysis.evidence import gather_evidence
    from workbench.analysis.scenarios import load_scenarios
    from workbench.report.summary import build_summary

    monkeypatch.setenv(workspace.WORKSPACE_ENV, str(ws))
    summary = build_summary([run_path], n_boot=100)
    by = {r.name: r for r in summary.results}
    assert by["card_router"].metrics["bank-model"]["route_accuracy"].n == len(MESSAGES)
    assert by["statements"].metrics["bank-model"]["annotation_accuracy"].n == len(DOCUMENTS)
    assert by["assistant"].metrics["bank-model"]["hallucination_score"].n == len(QA)
    assert set(load_scenarios()) == set(matrix.index) and gather_evidence(run_path).labels == ["bank-model"]
    assert tool.files() == before  # nothing written into the installed package


def test_the_workspaces_own_notebooks_pass_nbval(installed_tool: Installed, bank: Path) -> None:
    """Each notebook as committed into the workspace, on its own small defaults, finds the
    workspace's inputs (no demo prompt set named) and the self-hosted contender."""
    out = installed_tool.run([str(installed_tool.python), "-m", "pytest", "-q", "-p", "no:cacheprovider",
                              "--nbval-lax", "--nbval-current-env", "notebooks"], bank).stdout
    assert " passed" in out and "failed" not in out, out[-2000:]
    runs = sorted((bank / "results").iterdir())
    assert len(runs) >= 4  # each experiment notebook wrote a run of its own, in the workspace
