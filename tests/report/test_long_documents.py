"""The report's long-document section: the context experiment's plot, fit, heat map, window,
cache and cost tables in report.html; one line (no error) when a run has no context records."""

from __future__ import annotations

from pathlib import Path

import matplotlib
import pytest
import yaml

from tests.conftest import contender_for
from tests.synthetic_runs import HOSTED, write_run
from workbench.experiments import context as cx
from workbench.report.check import check_report, find_browser
from workbench.report.long_documents import NO_CONTEXT_TEXT, long_document_parts
from workbench.report.summary import run_summary
from workbench.results import RunDir
from workbench.serve.mock import MockScript, MockServer
from workbench.session import Session


def _run_with_context(tmp_path: Path, wire: MockServer) -> tuple[Path, Path]:
    """A synthetic run with the context experiment's records of one contender on the mock
    server (a known per-token prefill, a window the probe meets), and a contenders file naming it."""
    run = write_run(tmp_path, {"fast": {"e2e": 0.05, "halluc": 0.3}, "slow": {"e2e": 0.3, "halluc": 0.05}})
    wire.reset(script=MockScript(ttft_s=0.01, prefill_s_per_token=0.0002, context_window=1500))
    c = contender_for("openai-chat", wire, declared={"context_window": 1500})
    session = Session(run=RunDir(run), experiment="context", contenders=[c], skipped=[],
                      base_urls={c.name: c.base_url or ""})
    cx.run_context(session, lengths="128,256,512", depths="0.1,0.9", max_probe_tokens=2000)
    cfile = tmp_path / "contenders.yaml"
    entries = [{"name": n, "model": n, **HOSTED} for n in ("fast", "slow")]
    entries.append(c.model_dump(exclude_none=True, exclude_defaults=True) | {"name": c.name, "api": c.api,
                                                                              "model": c.model})
    cfile.write_text(yaml.safe_dump({"contenders": entries}))
    return run, cfile


def test_the_report_shows_the_context_experiment(wire: MockServer, tmp_path: Path) -> None:
    matplotlib.use("Agg")
    run, cfile = _run_with_context(tmp_path, wire)
    summary = run_summary(str(run), contenders_file=str(cfile), n_boot=50)
    assert summary.contenders  # the section prices documents with the contenders file
    text = (run / "report.html").read_text(encoding="utf-8")
    for heading in ("Long documents: latency, accuracy and cost as input grows", "The TTFT(length) fit",
                    "Accuracy by length × depth", "Where each contender", "A cached document vs an uncached one",
                    "Cost per document by length"):
        assert heading in text, heading
    assert (run / "summary_context_ttft.png").exists() and (run / "summary_context_accuracy.png").exists()
    assert "slope per 1k input tokens" in text and "super-linear growth" in text
    assert "context_length_exceeded" in text  # the window probe met the window
    assert "[Wilson 95%] n" in text and "pairs" in text
    assert NO_CONTEXT_TEXT not in text
    assert "wb-plot-overlap" not in text  # neither plot's text boxes overlap


def test_a_self_hosted_documents_cost_is_its_busy_time(wire: MockServer, tmp_path: Path) -> None:
    from workbench.analysis import context_length as cl

    run, _ = _run_with_context(tmp_path, wire)
    df = cl.load(run)
    c = contender_for("openai-chat", wire)
    own = c.override("test", hosting="self-hosted", price={"machine_hour_usd": 3.6})  # 0.001 USD a busy second
    assert own.machine_priced
    cost = cl.cost_by_length(df, {c.name: own}, machine_hour_usd=0.10)
    cold = df[(df["phase"] == "document") & (df["cache_state"] == "cold") & (df["status"] == "ok")]
    first = cost.iloc[0]
    expected = cold[cold["doc_target_tokens"] == first["length"]]["e2e_s"].mean() * 0.001
    assert first["cold_usd"] == pytest.approx(expected)
    assert first["price_source"] == "machine time: E2E × $3.6/machine-hour (one request at a time)"


def test_a_run_without_context_records_says_so_in_one_line(tmp_path: Path) -> None:
    run = write_run(tmp_path, {"fast": {"e2e": 0.05, "halluc": 0.3}})
    parts = long_document_parts(run)
    assert [p.kind for p in parts] == ["markdown", "text"] and parts[1].content == NO_CONTEXT_TEXT


@pytest.mark.slow
@pytest.mark.notebook
@pytest.mark.skipif(find_browser() is None, reason="no Chromium: apt-get install chromium")
def test_the_browser_check_passes_on_the_context_section(wire: MockServer, tmp_path: Path) -> None:
    matplotlib.use("Agg")
    run, cfile = _run_with_context(tmp_path, wire)
    run_summary(str(run), contenders_file=str(cfile), n_boot=50)
    seen = check_report(run / "report.html")
    assert seen.skipped is None and seen.problems == []
    assert seen.images >= 5  # the summary's three plots (no concurrency here) and the section's two
