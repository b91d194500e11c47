"""The batch scenario picks a lever per contender and says whether its night fits the window:
the coalescing experiment's naive and batch-api arms through the mock server behind the local
batch endpoint (a right answer for every document), then the summary's decision matrix.

A hosted batch API is planned at the provider's completion window, not at what a sample batch
took: "up to 24 h" fails an 8 h window however fast the mock answered, unless the contenders
file declares a turnaround (`declared.batch_turnaround_h`)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from workbench.experiments import coalescing
from workbench.report.summary import build_summary
from workbench.serve.batch import BatchServer
from workbench.serve.mock import MockScript, MockServer
from workbench.session import open_session

# 40 documents: the two arms' 80 requests without an error put the error rate's Wilson upper bound
# (4.5%) under the scenario's default 5% limit; at 20 (40 requests, 8.8%) it would be inconclusive
DOCS = coalescing.select_documents(coalescing.load_documents(), 40)
GOLD = {" ".join(d.text.split()): d.label for d in DOCS}
PRICE = {"input": 1.0, "output": 2.0, "batch_discount": 0.5, "source": "test"}


def _annotator(req: dict[str, Any]) -> str:
    text = json.dumps(req, ensure_ascii=False)
    return next((label for doc, label in GOLD.items() if doc in text), "other")


def test_the_batch_scenario_names_the_lever_and_the_window_outcome(tmp_path: Path) -> None:
    with MockServer(MockScript(answer=_annotator, input_tokens=100, output_tokens=2)) as mock, \
            BatchServer(mock.base_url, concurrency=4) as bs:
        cfile = tmp_path / "contenders.yaml"
        cfile.write_text(yaml.safe_dump({"contenders": [
            # the provider's documented window: 24 h, which an 8 h night does not allow
            {"name": "oa", "api": "openai-chat", "model": "m", "base_url": bs.base_url_for("openai-chat"),
             "price": PRICE, "timeout_s": 10},
            # the user declares the batch turnaround they observe: 6 h fits
            {"name": "cl", "api": "anthropic", "model": "claude-test", "base_url": bs.base_url_for("anthropic"),
             "price": PRICE, "timeout_s": 10, "declared": {"batch_turnaround_h": 6, "context_window": 200_000}},
        ]}))
        out = tmp_path / "run"
        with open_session("coalescing", out_dir=out, contenders="oa,cl", contenders_file=cfile) as s:
            coalescing.run_coalescing(s, DOCS, coalescing.load_labels(), strategies=("naive", "batch-api"),
                                      concurrency=4, batch_poll_s=0.02)
    summary = build_summary([out], contenders_file=cfile, n_boot=200)
    m = summary.matrix[summary.matrix["scenario"] == "batch_annotation"].set_index("contender")
    assert {"lever", "window_constraint", "batch_api_window"} <= set(m.columns)
    # oa: the batch API is half price but its 24 h window fails the night: the lever is naive
    assert m.loc["oa", "lever"] == "naive" and m.loc["oa", "window_constraint"].startswith("pass")
    assert m.loc["oa", "batch_api_window"].startswith("fail: 24.0 h vs ≤ 8 h")
    assert "completion_window '24h'" in m.loc["oa", "batch_api_window"]
    # cl: declared 6 h, so the half-price batch API is the lever, and the night fits
    assert m.loc["cl", "lever"] == "batch-api" and m.loc["cl", "window_constraint"].startswith("pass: 6.0")
    assert "declared in the contenders file" in m.loc["cl", "window_constraint"]
    assert m.loc["cl", "constraint_status"] == "pass", m.loc["cl", "failed_constraint"]
    # the document-length constraint: the declared window holds the longest; oa's window is unknown
    assert m.loc["cl", "document_window"].startswith("pass: ")
    assert "declared in the contenders file" in m.loc["cl", "document_window"]
    assert m.loc["oa", "document_window"].startswith("inconclusive: n/a") and "window unknown" in \
        m.loc["oa", "document_window"]
    cost = {c: summary.results[1].metrics[c]["cost_per_document_usd"].value for c in ("oa", "cl")}
    assert cost["cl"] < cost["oa"]  # the batch rate
    assert not pd.isna(m.loc["oa", "score"])
    # the report's matrix says it in words
    shown = summary.display_matrix().set_index(["scenario", "contender"])["lever: night vs window"]
    assert shown[("batch_annotation", "cl")].startswith("batch-api; its night pass: 6.0")
    assert "the batch API's fail: 24.0 h" in shown[("batch_annotation", "oa")]
    assert shown[("routing", "oa")] == "no lever: not a batch scenario"  # an empty cell says why
