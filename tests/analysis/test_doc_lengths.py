"""The batch scenario's documents by length: counted from the run (estimates flagged), the longest
against the window (pass / fail / inconclusive), chunking's extra requests, the night priced at
each document's own length (long-context tiers), and the card and matrix that say so."""

from __future__ import annotations

import json
import math
from pathlib import Path

import matplotlib
import pandas as pd
import pytest
import yaml

from tests.synthetic_runs import HOSTED, contenders, write_annotation, write_run
from workbench.analysis import doc_lengths
from workbench.analysis.evidence import gather_evidence
from workbench.analysis.scenarios import load_scenarios
from workbench.config import Contender
from workbench.errors import ConfigError
from workbench.pricing import sized_request_cost
from workbench.report.summary import build_summary
from workbench.results import RecordWriter
from workbench.types import Record

TEXTS = {"d0": "x" * 400, "d1": "y" * 800, "d2": "z" * 4000}  # 100, 200, 1,000 tokens by chars / 4


def _naive_requests(run: Path, name: str, usage: dict[str, int]) -> None:
    """One-document (naive) coalescing requests with the server's usage count, and their outcomes."""
    with RecordWriter(run / "coalescing.jsonl") as w:
        for i, (doc, tokens) in enumerate(usage.items()):
            w.write(Record(run_id=run.name, experiment="coalescing", contender=name, model=name,
                           request_id=f"{name}:naive:0:{i}", t_start_unix=float(i), ttft_s=0.1, e2e_s=0.5,
                           input_tokens=tokens, output_tokens=3,
                           extra={"strategy": "naive", "repeat": 0, "batch_size": 1, "doc_ids": [doc], "n_docs": 1,
                                  "fallback": False, "parse_ok": True}))
    pd.DataFrame([{"contender": name, "strategy": "naive", "repeat": 0, "doc_id": d, "gold": "a", "predicted": "a",
                   "source": "request", "dup_of": None, "correct": True} for d in usage]).to_csv(
        run / "coalescing_documents.csv", index=False)


def test_lengths_come_from_the_servers_usage_and_the_rest_are_estimated_and_flagged(tmp_path: Path) -> None:
    run = write_run(tmp_path, {"a": {"e2e": 0.05, "halluc": 0.1}})
    _naive_requests(run, "a", {"d0": 150, "d1": 250})  # 50 tokens of instruction over chars / 4
    lengths = doc_lengths.measured_lengths(gather_evidence(run), "a", TEXTS)
    assert lengths.tokens == {"d0": 150, "d1": 250, "d2": 1050} and lengths.estimated == 1
    assert "server usage" in lengths.source and "1 of 3 estimated as characters / 4 + the measured" in lengths.source
    assert lengths.longest == 1050 and lengths.percentile(50) == 250
    bare = doc_lengths.measured_lengths(gather_evidence(run), "nobody", TEXTS)
    assert bare.tokens["d2"] == 1000 and bare.source == "estimated: characters / 4 (no measured count)"


def test_the_longest_document_against_the_window_and_chunking(tmp_path: Path) -> None:
    run = write_run(tmp_path, {"a": {"e2e": 0.05, "halluc": 0.1}})
    _naive_requests(run, "a", {"d0": 150, "d1": 250, "d2": 1050})
    ev = gather_evidence(run)
    c = contenders("a")["a"]
    small = c.override("test", declared={"context_window": 800})
    m = doc_lengths.document_metrics(ev, "a", small, TEXTS, documents_per_night=1000, chunk_tokens=None)
    assert m["longest_doc_window_share"].value == pytest.approx(1050 / 800)
    assert "longest document 1,050 tokens" in m["longest_doc_window_share"].source
    assert "declared in the contenders file" in m["longest_doc_window_share"].source
    assert [m[f"doc_tokens_{q}"].value for q in ("p50", "max")] == [250, 1050] and m["doc_tokens_max"].n == 3
    chunked = doc_lengths.document_metrics(ev, "a", small, TEXTS, documents_per_night=1000, chunk_tokens=500)
    assert chunked["longest_doc_window_share"].value == pytest.approx(500 / 800)  # a chunk fits
    assert chunked["chunk_requests_per_doc"].value == pytest.approx((1 + 1 + 3) / 3)
    assert "667 extra requests a night" in chunked["chunk_requests_per_doc"].source
    assert doc_lengths.chunk_sizes(1050, 500) == [500, 500, 50] and doc_lengths.chunk_sizes(10, None) == [10]
    unknown = doc_lengths.document_metrics(ev, "a", c, TEXTS, documents_per_night=1000, chunk_tokens=None)
    assert math.isnan(unknown["longest_doc_window_share"].value)
    assert "window unknown" in unknown["longest_doc_window_share"].source
    local = c.override("test", base_url=None, local="gemma-3-270m", api="openai-chat")
    window, source = doc_lengths.contender_window(ev, "a", local)
    assert window is not None and window >= 2048 and "embedded model's slot" in source

    sc = load_scenarios()["batch_annotation"]
    rule = next(x for x in sc.hard_constraints if x.metric == "longest_doc_window_share")
    assert rule.status(m["longest_doc_window_share"]) == "fail"
    assert rule.status(chunked["longest_doc_window_share"]) == "pass"
    assert rule.status(unknown["longest_doc_window_share"]) == "inconclusive"
    assert rule.text == "longest document / context window ≤ 100%"


def test_the_night_is_priced_at_each_documents_own_length_with_its_tier(tmp_path: Path) -> None:
    run = write_run(tmp_path, {"pro": {"e2e": 0.05, "halluc": 0.1}})
    usage = {"short": 100_000, "long": 300_000}  # one either side of the 200k tier
    _naive_requests(run, "pro", usage)
    pro = Contender.model_validate({"name": "pro", "api": "gemini", "model": "gemini-2.5-pro",
                                    "base_url": "https://generativelanguage.googleapis.com/v1beta",
                                    "api_key_env": "WB_TEST_KEY", "declared": {"context_window": 1_048_576}})
    m = doc_lengths.document_metrics(gather_evidence(run), "pro", pro, {"short": "s", "long": "l"},
                                     documents_per_night=10, chunk_tokens=None)
    each = [sized_request_cost(pro, n, 3)[0] for n in usage.values()]
    assert all(x is not None for x in each)
    assert m["night_cost_at_lengths_usd"].value == pytest.approx(10 * sum(x or 0.0 for x in each) / 2)
    mean_length, _ = sized_request_cost(pro, 200_000, 3)  # one mean length sits at the tier's edge
    assert mean_length is not None and m["night_cost_at_lengths_usd"].value > 10 * mean_length * 1.05
    assert "priced at its own length (genai-prices" in m["night_cost_at_lengths_usd"].source
    local = pro.override("test", base_url=None, local="gemma-3-270m", api="openai-chat")
    self_hosted = doc_lengths.document_metrics(gather_evidence(run), "pro", local, {"short": "s"},
                                               documents_per_night=10, chunk_tokens=None)
    assert math.isnan(self_hosted["night_cost_at_lengths_usd"].value)
    assert "machine time" in self_hosted["night_cost_at_lengths_usd"].source


def test_the_matrix_and_the_batch_card_name_the_document_length_constraint(tmp_path: Path) -> None:
    matplotlib.use("Agg")
    run = write_run(tmp_path, {"a": {"e2e": 0.05, "halluc": 0.1}, "b": {"e2e": 0.05, "halluc": 0.1}})
    write_annotation(run, "a", {"naive": (0.95, 1.0)})
    write_annotation(run, "b", {"naive": (0.95, 1.0)}, window=10)  # a window no document fits
    cfile = tmp_path / "contenders.yaml"
    cfile.write_text(yaml.safe_dump({"contenders": [{"name": n, "model": n, **HOSTED} for n in ("a", "b")]}))
    summary = build_summary([run], contenders_file=cfile, n_boot=50)
    m = summary.matrix[summary.matrix["scenario"] == "batch_annotation"].set_index("contender")
    assert m.loc["a", "document_window"].startswith("pass: ") and m.loc["b", "document_window"].startswith("fail: ")
    assert "longest document / context window ≤ 100%" in m.loc["b", "failed_constraint"]
    assert m.loc["a", "doc_tokens_max"] >= m.loc["a", "doc_tokens_p95"] >= m.loc["a", "doc_tokens_p50"] > 0
    assert "characters / 4" in m.loc["a", "doc_tokens_source"]  # these records name no document: flagged
    assert m.loc["a", "night_cost_at_lengths_usd"] > 0
    shown = summary.display_matrix().set_index("contender")
    batch_shown = shown[shown["scenario"] == "batch_annotation"]
    assert batch_shown.loc["a", "documents: length vs window"].startswith("p50 ")
    assert "a night, each document priced at its own length" in batch_shown.loc["a", "documents: length vs window"]
    cards = summary.cards_html()
    assert "Document length: the longest document must fit the contender&#39;s context window" in cards
    assert "the pick&#39;s documents: p50" in cards
    sc = summary.results[1].scenario
    assert sc.kind == "batch"
    no_pick = sc.card_detail(summary.results[1].metrics, None)
    assert "a pass (longest " in no_pick and "b fail (longest " in no_pick and "of its window)" in no_pick


def test_a_bad_chunking_field_names_file_and_field(tmp_path: Path) -> None:
    bundled = yaml.safe_load(Path("experiments/scenarios.yaml").read_text())
    bundled["scenarios"]["batch_annotation"]["chunking"] = {"max_tokens": 0}
    path = tmp_path / "scenarios.yaml"
    path.write_text(json.dumps(bundled))
    with pytest.raises(ConfigError, match=r"scenarios.batch_annotation.chunking.max_tokens"):
        load_scenarios(path)
    bundled["scenarios"]["batch_annotation"]["chunking"] = {"max_tokens": 4096}
    path.write_text(json.dumps(bundled))
    assert load_scenarios(path)["batch_annotation"].chunking is not None
