"""The decision matrix's columns, listed once: `decision_matrix.csv`, the report's matrix and the
README's column table are all made from `MATRIX`.

Each `Column` is a CSV column (its `name`, in file order) with what it means (the README's
text). A column with a `label` is also shown in the report's matrix, its cell made by `show` from
the CSV row (a shown cell may read the column's family too: `score` shows `score_low` and
`score_high`); an empty cell says why it is empty. The axes table's rows (`AXES_TABLE`) are
catalogue metrics, labelled and formatted by the catalogue. Adding a matrix column is one entry
here (and the value in the row the decision computes: `matrix_frame` refuses a column not listed).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pandas as pd

from workbench.analysis.decision import ScenarioResult
from workbench.analysis.scenarios import AXES

__all__ = ["AXES_TABLE", "MATRIX", "Column", "display_matrix", "matrix_frame", "readme_table"]

Row = Mapping[str, Any]


@dataclass(frozen=True)
class Column:
    """One CSV column of the matrix; `label` empty: in the CSV only (or shown inside another
    column's cell)."""

    name: str
    meaning: str
    label: str = ""
    show: Callable[[Row], str] | None = None


def _text(row: Row, name: str) -> str | None:
    value = row.get(name)
    return value if isinstance(value, str) and value else None


def _finite(row: Row, name: str) -> bool:
    value = row.get(name)
    return isinstance(value, int | float) and not math.isnan(value)


def _score(row: Row) -> str:
    if not _finite(row, "score"):
        return "not measured"
    return f"{row['score']:.2f} [{row['score_low']:.2f}, {row['score_high']:.2f}]"


def _p_best(row: Row) -> str:
    return f"{row['p_best']:.0%}" if _finite(row, "rank") else "not ranked"


def _rank(row: Row) -> str:
    return f"{row['rank']:.0f} [{row['rank_low']:.0f}, {row['rank_high']:.0f}]" if _finite(row, "rank") else "—"


def _failed(row: Row) -> str:
    return _text(row, "failed_constraint") or ("none: eligible" if row.get("constraint_status") == "pass"
                                               else "not recorded")


def _lost(row: Row) -> str:
    return _text(row, "units_lost_detail") or "not measured (no records of its units in this run)"


def _lever(row: Row) -> str:
    """The batch scenario's lever and whether its night (and the batch API's) fits the window."""
    parts = [f"{label}{text}" for label, col in (("", "lever"), ("its night ", "window_constraint"),
                                                 ("the batch API's ", "batch_api_window"))
             if (text := _text(row, col)) is not None]
    return "; ".join(parts) or "no lever: not a batch scenario"


def _documents(row: Row) -> str:
    """The batch scenario's document lengths, the window constraint on the longest, and the night
    priced at each document's own length."""
    if not _finite(row, "doc_tokens_max"):
        return _text(row, "document_window") or "no documents: not a batch scenario"
    parts = [f"p50 {row['doc_tokens_p50']:,.0f} / p95 {row['doc_tokens_p95']:,.0f} / max "
             f"{row['doc_tokens_max']:,.0f} tokens ({_text(row, 'doc_tokens_source') or 'source not recorded'})"]
    if (window := _text(row, "document_window")) is not None:
        parts.append(f"window {window}")
    night = (f"${row['night_cost_at_lengths_usd']:,.2f} a night, each document priced at its own length"
             if _finite(row, "night_cost_at_lengths_usd") else _text(row, "night_cost_at_lengths_source"))
    if night:
        parts.append(night)
    return "; ".join(parts)


def _plain(name: str, empty: str = "") -> Callable[[Row], str]:
    return lambda row: _text(row, name) or empty


def _axis_columns() -> tuple[Column, ...]:
    return tuple(col for axis in AXES for col in (
        Column(f"{axis}_metric", f"the value of the scenario's {axis} metric (its `axis_metric`), in the "
                                 "catalogue's stored unit; empty: not measured"),
        Column(f"{axis}_utility", f"its {axis} utility in [0, 1] (see *Score*); empty: not scored")))


#: Every column of `decision_matrix.csv`, in file order.
MATRIX: tuple[Column, ...] = (
    Column("scenario", "the workload scenario (scenarios file)", "scenario", _plain("scenario")),
    Column("contender", "the contender (`name@run` when runs are compared)", "contender", _plain("contender")),
    Column("eligible", "passes every hard constraint"),
    Column("constraint_status", "pass, fail or inconclusive (one-sided 95%; see *Constraints*)", "constraints",
           _plain("constraint_status")),
    Column("failed_constraint", "the hard constraints that did not pass, with the measured value",
           "why not eligible", _failed),
    Column("score", "Σ weight × utility over the scenario's axes (point estimate)", "score [95% interval]",
           _score),
    Column("score_low", "the score's 95% bootstrap interval, low end"),
    Column("score_high", "the score's 95% bootstrap interval, high end"),
    Column("p_best", "share of joint bootstrap replicates in which it has the top score among the eligible",
           "chance of being best", _p_best),
    Column("rank", "median rank over the replicates (eligible ones only)", "rank [95% interval]", _rank),
    Column("rank_low", "95% rank interval, low end"),
    Column("rank_high", "95% rank interval, high end"),
    Column("p_pick_beats", "share of replicates in which the scenario's pick scores above this contender"),
    Column("gives_up", "what picking it gives up against the best rival on each axis", "what it gives up",
           _plain("gives_up", "not recorded")),
    Column("n_to_resolve", "the sample size that would decide its first inconclusive constraint"),
    Column("constraint_power", "per hard constraint, P(pass) at the measured value with this n",
           "P(pass) per constraint at this n", _plain("constraint_power", "no hard constraint")),
    *_axis_columns(),
    Column("cost_source", "where the cost axis' value comes from (list price, machine-hours), or not measured"),
    Column("units_lost_to_errors", "units of the scenario's prompts, items or chosen strategy's documents whose "
                                   "request failed"),
    Column("units_lost_detail", "the same per family, by error class", "lost to errors", _lost),
    Column("lever", "batch scenario: the chosen strategy (the lever)", "lever: night vs window", _lever),
    Column("window_constraint", "batch scenario: whether a night of documents fits the window, measured"),
    Column("batch_api_window", "batch scenario: the same through the provider's batch API, when measured"),
    Column("doc_tokens_p50", "batch scenario: the median length of its documents, tokens (the contender's count: "
                             "README *The batch scenario's documents*)"),
    Column("doc_tokens_p95", "batch scenario: the 95th percentile of its documents' lengths, tokens"),
    Column("doc_tokens_max", "batch scenario: its longest document, tokens"),
    Column("doc_tokens_source", "how the lengths were counted: the context experiment (tokenizer or usage), the "
                                "server's usage of one-document requests, or estimated as characters / 4 (flagged)"),
    Column("document_window", "batch scenario: the longest document (with chunking: chunk) against the contender's "
                              "context window — pass, fail or inconclusive, the numbers and where the window comes "
                              "from; with chunking, the requests per document and the extra requests a night",
           "documents: length vs window", _documents),
    Column("chunk_requests_per_doc", "batch scenario with chunking: mean requests per document after splitting"),
    Column("night_cost_at_lengths_usd", "batch scenario, hosted: USD a night with each document priced at its own "
                                        "length (long-context tiers included); empty: self-hosted or no price"),
    Column("night_cost_at_lengths_source", "what that night's cost rests on, or why it is empty"),
)

#: The axes table's rows: per contender, the shared metrics of every scenario (catalogue names).
AXES_TABLE: tuple[str, ...] = (
    "ttft_p50", "ttft_p95", "e2e_p50", "e2e_p95", "e2e_p99", "cold_e2e_s", "route_accuracy", "max_throughput_rps",
    "goodput_rps", "error_rate", "qa_accuracy", "qa_accuracy_given_attempted", "qa_f_score", "qa_abstention_rate",
    "false_premise_acceptance", "hallucination_score", "annotation_accuracy", "integration_score",
)


def matrix_frame(results: Sequence[ScenarioResult]) -> pd.DataFrame:
    """The scenarios' rows as `decision_matrix.csv`: `MATRIX`'s columns in its order (a column
    no row has is empty). A row with a column `MATRIX` does not list is a mistake: it says which."""
    names = [c.name for c in MATRIX]
    frames = [r.table for r in results]
    if not frames:
        return pd.DataFrame(columns=names)
    df = pd.concat(frames, ignore_index=True)
    unlisted = [c for c in df.columns if c not in names]
    if unlisted:
        raise ValueError(f"decision matrix columns not in workbench.report.columns.MATRIX: {', '.join(unlisted)}")
    return df.reindex(columns=names)


def display_matrix(matrix: pd.DataFrame, columns: Iterable[Column] = MATRIX) -> pd.DataFrame:
    """The matrix in words: the labelled columns, each cell made by its column's `show`."""
    shown = [c for c in columns if c.label and c.show is not None]
    rows = [{c.label: c.show(row) for c in shown if c.show is not None} for row in matrix.to_dict("records")]
    return pd.DataFrame(rows, columns=[c.label for c in shown])


def readme_table(columns: Iterable[Column] = MATRIX) -> str:
    """The README's column table (a test keeps README's copy equal to this)."""
    lines = ["| column | meaning |", "|---|---|"]
    lines += [f"| `{c.name}` | {c.meaning} |" for c in columns]
    return "\n".join(lines)
