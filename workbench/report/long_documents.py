"""The report's long-document section: the context experiment's tables and plots, in words.

What a reader needs to judge a contender on long inputs, from `analysis.context_length`: TTFT
against input length (each length's median with its 95% interval, and the fitted line: intercept,
slope per 1k tokens with its interval, the super-linear check), accuracy by length × depth (Wilson
intervals, n per cell), where each contender's window stops, what a cached document saves
(`cache_n`, the paired TTFT difference with its interval) and the cost per document by length.
A run without context records gets one line saying so, not an error.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from workbench.analysis import context_length
from workbench.analysis.catalog import format_interval, format_number
from workbench.report.html import Part, figure_parts

__all__ = ["NO_CONTEXT_TEXT", "long_document_parts"]

#: The section's one line when the run has no context records.
NO_CONTEXT_TEXT = ("No context records in this run: run the context experiment (`workbench run --experiments context`, "
                   "or notebooks/context.ipynb) for latency, accuracy and cost as documents grow.")

_INTRO = ("## Long documents: latency, accuracy and cost as input grows\nFrom the context experiment "
          "(`context.jsonl`): documents written for the project with facts planted at known depths. TTFT is of "
          "cold (uncached) requests; intervals are 95% (order statistics for medians, bootstrap for the fit and "
          "the cached difference, Wilson for accuracy); n = sample size.")


def _num(x: Any, digits: int = 3) -> str:
    return format_number(float(x), digits) if x is not None and x == x else "—"


def _lengths(t: pd.DataFrame) -> pd.DataFrame:
    return pd.DataFrame({
        "contender": t["contender"], "length (target tokens)": t["length"],
        "input tokens (median)": [_num(x) for x in t["input_tokens"]],
        "TTFT p50": [format_interval(r.ttft_p50, r.ttft_p50_low, r.ttft_p50_high, int(r.ttft_n), scale=1000,
                                     unit="ms") for r in t.itertuples()],
        "E2E p50": [format_interval(r.e2e_p50, r.e2e_p50_low, r.e2e_p50_high, int(r.e2e_n), scale=1000, unit="ms")
                    for r in t.itertuples()],
        "server prompt time (ms)": [_num(x) for x in t["server_prompt_ms"]],
        "prefill rate (tokens/s)": [_num(x) for x in t["prefill_tokens_per_s"]],
    })


def _superlinear(flag: Any) -> str:
    if flag is None or flag != flag:
        return "cannot tell (too few lengths or points)"
    return "yes: the quadratic term's interval lies above 0" if flag else "no"


def _fit(t: pd.DataFrame) -> pd.DataFrame:
    return pd.DataFrame({
        "contender": t["contender"], "cold requests": t["n"],
        "intercept": [format_interval(x, unit="s") for x in t["intercept_s"]],
        "slope per 1k input tokens [95% interval]": [format_interval(r.slope_s_per_1k, r.slope_low, r.slope_high,
                                                                     unit="s") for r in t.itertuples()],
        "quadratic term per (1k)² [95% interval]": [format_interval(r.quad_s_per_1k2, r.quad_low, r.quad_high,
                                                                    unit="s") for r in t.itertuples()],
        "super-linear growth": [_superlinear(x) for x in t["superlinear"]],
    })


def _accuracy(t: pd.DataFrame) -> pd.DataFrame:
    return pd.DataFrame({
        "contender": t["contender"], "length (target tokens)": t["length"], "depth": t["depth"],
        "accuracy [Wilson 95%] n": [format_interval(r.accuracy, r.low, r.high, int(r.n), scale=100, unit="%")
                                    for r in t.itertuples()],
    })


def _window(t: pd.DataFrame) -> pd.DataFrame:
    def count(x: Any) -> str:
        return f"{int(x):,}" if x is not None and x == x else "—"

    return pd.DataFrame({
        "contender": t["contender"], "window (tokens)": [count(x) for x in t["window_tokens"]],
        "where the window comes from": t["window_source"].fillna("unknown"),
        "longest answered (tokens)": [count(x) for x in t["longest_answered_tokens"]],
        "shortest refused (tokens)": [count(x) for x in t["shortest_refused_tokens"]],
        "window probe": t["probe"],
    })


def _cache(t: pd.DataFrame) -> pd.DataFrame:
    return pd.DataFrame({
        "contender": t["contender"], "length (target tokens)": t["length"],
        "cache read (cache_n / cached tokens, median)": [_num(x) for x in t["cache_read_tokens"]],
        "TTFT uncached (mean)": [format_interval(x, scale=1000, unit="ms") for x in t["cold_ttft_s"]],
        "TTFT cached (mean)": [format_interval(x, scale=1000, unit="ms") for x in t["warm_ttft_s"]],
        "uncached − cached [95% interval] pairs": [format_interval(r.diff_s, r.diff_low, r.diff_high, int(r.pairs),
                                                                   scale=1000, unit="ms") for r in t.itertuples()],
    })


def _usd(x: Any) -> str:
    return f"${format_number(float(x), 3)}" if x is not None and x == x and math.isfinite(float(x)) else "no list price"


def _cost(t: pd.DataFrame) -> pd.DataFrame:
    return pd.DataFrame({
        "contender": t["contender"], "length (target tokens)": t["length"],
        "USD per document (uncached)": [_usd(x) for x in t["cold_usd"]],
        "USD per question on a cached document": [_usd(x) for x in t.get("warm_usd", pd.Series(math.nan,
                                                                                             index=t.index))],
        "where the rate comes from": t["price_source"].replace("", "—"),
    })


def _table(title: str, frame: pd.DataFrame, empty: str) -> list[Part]:
    return [Part("markdown", title), Part("table", frame) if len(frame) else Part("text", empty)]


def long_document_parts(run_dir: str | Path, contenders: Mapping[str, Any] | None = None,
                        machine_hour_usd: float | None = None) -> list[Part]:
    """The section's parts for the run in `run_dir` (its plots saved there as PNGs);
    `contenders`: name → Contender, to price the documents (none: the cost table says so), the
    self-hosted ones by machine time at `machine_hour_usd` (their own declared rate first)."""
    run_dir = Path(run_dir)
    df = context_length.load(run_dir)
    if not len(df):
        return [Part("markdown", _INTRO.split("\n", 1)[0]), Part("text", NO_CONTEXT_TEXT)]
    t = context_length.tables(run_dir, contenders, machine_hour_usd)
    parts = [Part("markdown", _INTRO)]
    parts += figure_parts(run_dir, "summary_context_ttft.png", lambda p: context_length.ttft_vs_length_plot(
        df, t["fit"], path=p, lengths=t["lengths"]))
    parts += _table("### TTFT, E2E and prefill by length\nPrefill rate = server prompt tokens / server prompt time "
                    "(llama.cpp `timings`), cold requests.", _lengths(t["lengths"]) if len(t["lengths"])
                    else pd.DataFrame(), "no cold request was answered")
    parts += _table("### The TTFT(length) fit\nTTFT = intercept + slope × input tokens / 1000, least squares over "
                    "cold requests; super-linear when the quadratic term's bootstrap interval lies above 0.",
                    _fit(t["fit"]) if len(t["fit"]) else pd.DataFrame(), "no fit: no cold request was answered")
    if len(t["accuracy"]):
        parts += figure_parts(run_dir, "summary_context_accuracy.png",
                              lambda p: context_length.accuracy_heatmap(t["accuracy"], path=p))
    parts += _table("### Accuracy by length × depth\nDepth: where in the document the asked fact sits; "
                    "\"two facts\": a question needing two facts far apart.",
                    _accuracy(t["accuracy"]) if len(t["accuracy"]) else pd.DataFrame(), "no graded answer")
    parts += _table("### Where each contender's window stops\nA request past the window is a "
                    "`context_length_exceeded` record, never a crash.", _window(t["window"]), "no window recorded")
    parts += _table("### A cached document vs an uncached one\nPer document, its cold request beside each warm "
                    "one (same document as the prefix, another question).",
                    _cache(t["cache"]) if len(t["cache"]) else pd.DataFrame(), "no document was asked twice")
    parts += _table("### Cost per document by length\nEach request priced at its own size (long-context tiers "
                    "included); a self-hosted contender by its busy time: E2E × USD per machine-hour.",
                    _cost(t["cost"]) if len(t["cost"]) else pd.DataFrame(),
                    "not priced: no contender of this run is in the contenders file")
    return parts
