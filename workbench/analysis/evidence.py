"""Evidence: every measured number the decision matrix rests on, per contender, with its interval.

Read from a run folder (or several, to compare runs): `latency.jsonl`, `concurrency.jsonl`,
`hallucination.jsonl`, `coalescing.jsonl` and `capabilities.json`. Whatever is missing is
listed in `Evidence.missing`, never invented. Each metric keeps bootstrap replicates where it
is a statistic, so a scenario score can carry an interval (see `workbench.analysis.decision`).

Metric names match `workbench.analysis.scenarios.METRICS` where a hard constraint may test them.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from workbench.analysis import stats
from workbench.results import load_runs

__all__ = ["INTEGRATION_FACTS", "Evidence", "Metric", "concurrency_levels", "gather_evidence"]

#: Facts that lower integration effort when true; unknown counts half (not established).
INTEGRATION_FACTS: tuple[str, ...] = (
    "streaming", "usage_in_stream", "json_mode", "tool_calling", "rate_limit_headers", "openai_compatible",
)


@dataclass
class Metric:
    """One measured number: point value, 95% interval, sample size, and bootstrap replicates."""

    value: float
    low: float = math.nan
    high: float = math.nan
    n: int = 0
    reps: np.ndarray | None = None
    source: str = ""

    def fmt(self, scale: float = 1.0, digits: int = 3, unit: str = "") -> str:
        """`value unit [low, high] n=N`, in plain notation with about `digits` significant digits."""
        if not math.isfinite(self.value):
            return "n/a" if math.isnan(self.value) else "∞"
        v = f"{_num(self.value * scale, digits)}{unit}"
        if math.isfinite(self.low) and math.isfinite(self.high):
            v += f" [{_num(self.low * scale, digits)}, {_num(self.high * scale, digits)}]"
        return v + (f" n={self.n}" if self.n else "")


def _num(x: float, digits: int) -> str:
    if x == 0 or not math.isfinite(x):
        return f"{x:g}"
    decimals = max(0, digits - 1 - math.floor(math.log10(abs(x))))
    return f"{x:,.{decimals}f}"


@dataclass
class Evidence:
    """Per contender label: metrics by name, integration facts, and raw frames for tests."""

    metrics: dict[str, dict[str, Metric]] = field(default_factory=dict)
    facts: dict[str, dict[str, Any]] = field(default_factory=dict)
    frames: dict[str, pd.DataFrame] = field(default_factory=dict)
    missing: list[str] = field(default_factory=list)
    runs: list[str] = field(default_factory=list)

    @property
    def contenders(self) -> list[str]:
        names = set(self.metrics) | set(self.facts)
        return sorted(names)

    def get(self, contender: str, metric: str) -> Metric | None:
        return self.metrics.get(contender, {}).get(metric)

    def put(self, contender: str, metric: str, m: Metric) -> None:
        self.metrics.setdefault(contender, {})[metric] = m


def _label(df: pd.DataFrame, multi: bool) -> pd.Series:
    if multi:
        return df["contender"].astype(str) + "@" + df["run_id"].astype(str)
    return df["contender"].astype(str)


def _boot_percentile(values: np.ndarray, q: float, n_boot: int, rng: np.random.Generator) -> np.ndarray:
    if len(values) == 0:
        return np.full(n_boot, np.nan)
    idx = rng.integers(0, len(values), size=(n_boot, len(values)))
    return np.asarray(np.percentile(values[idx], q, axis=1), dtype=float)


def _boot_mean(values: np.ndarray, n_boot: int, rng: np.random.Generator) -> np.ndarray:
    if len(values) == 0:
        return np.full(n_boot, np.nan)
    idx = rng.integers(0, len(values), size=(n_boot, len(values)))
    return np.asarray(values[idx].mean(axis=1), dtype=float)


def _pct_metric(values: np.ndarray, q: float, n_boot: int, rng: np.random.Generator, source: str) -> Metric:
    est = stats.percentile_ci(values, q, n_boot=n_boot)
    return Metric(est.value, est.low, est.high, est.n, _boot_percentile(values, q, n_boot, rng), source)


def _prop_metric(k: int, n: int, n_boot: int, rng: np.random.Generator, source: str) -> Metric:
    est = stats.wilson_interval(k, n)
    reps = rng.binomial(n, k / n, size=n_boot) / n if n else np.full(n_boot, np.nan)
    return Metric(est.value, est.low, est.high, n, np.asarray(reps, dtype=float), source)


def concurrency_levels(df: pd.DataFrame, slo_p95_e2e_s: float) -> pd.DataFrame:
    """Per contender label and concurrency level of the sweep: throughput, p95 E2E and goodput
    under `slo_p95_e2e_s` — computed by the concurrency experiment's own `level_summary`, so the
    summary and the concurrency notebook cannot disagree."""
    from workbench.analysis.capacity import level_summary

    if df.empty or "level" not in df or "phase" not in df:
        return pd.DataFrame()
    d = df.assign(contender=df["label"]) if "label" in df else df
    table = level_summary(d, slo_p95_e2e_s, n_boot=200)
    if table.empty:
        return pd.DataFrame()
    return pd.DataFrame({
        "label": table["contender"], "concurrency": table["level"], "n": table["sent"], "ok": table["ok"],
        "throughput_rps": table["throughput_rps"], "output_tps": table["output_tok_s"],
        "p95_e2e_s": table["e2e_p95"], "goodput_rps": table["goodput_rps"], "error_rate": table["error_rate"],
    })


def gather_evidence(
    run_dirs: str | Path | Sequence[str | Path],
    *,
    n_boot: int = 1000,
    seed: int = 0,
) -> Evidence:
    """Load one or more runs and compute every per-contender metric the matrix uses.

    With several runs, contenders are labelled `name@run_id` so runs can be compared."""
    dirs = [Path(run_dirs)] if isinstance(run_dirs, (str, Path)) else [Path(d) for d in run_dirs]
    multi = len(dirs) > 1
    rng = np.random.default_rng(seed)
    ev = Evidence(runs=[d.name for d in dirs])
    for experiment in ("latency", "concurrency", "hallucination", "coalescing"):
        df = load_runs(dirs, experiment)
        if df.empty:
            ev.missing.append(experiment)
            continue
        df = df.assign(label=_label(df, multi))
        ev.frames[experiment] = df
    _latency(ev, rng, n_boot)
    _errors(ev)
    _hallucination(ev, rng, n_boot)
    _coalescing(ev, dirs, multi)
    _throughput(ev, rng, n_boot)
    _capabilities(ev, dirs, multi)
    return ev


def _latency(ev: Evidence, rng: np.random.Generator, n_boot: int) -> None:
    df = ev.frames.get("latency")
    if df is None:
        return
    warm = df[(df["phase"] == "warm") & (df["status"] == "ok")]
    for label, g in warm.groupby("label"):
        e2e = g["e2e_s"].dropna().to_numpy(float)
        ttft = g["ttft_s"].dropna().to_numpy(float)
        src = "latency.jsonl, warm requests"
        ev.put(label, "p50_e2e_s", _pct_metric(e2e, 50, n_boot, rng, src))
        ev.put(label, "p95_e2e_s", _pct_metric(e2e, 95, n_boot, rng, src))
        ev.put(label, "p99_e2e_s", _pct_metric(e2e, 99, n_boot, rng, src))
        ev.put(label, "p50_ttft_s", _pct_metric(ttft, 50, n_boot, rng, src))
        ev.put(label, "p95_ttft_s", _pct_metric(ttft, 95, n_boot, rng, src))
        toks_in = g["input_tokens"].fillna(0).to_numpy(float)
        toks_out = g["output_tokens"].fillna(0).to_numpy(float)
        ev.put(label, "input_tokens_per_request", Metric(float(toks_in.mean()), n=len(g),
                                                         reps=_boot_mean(toks_in, n_boot, rng), source=src))
        ev.put(label, "output_tokens_per_request", Metric(float(toks_out.mean()), n=len(g),
                                                          reps=_boot_mean(toks_out, n_boot, rng), source=src))
        total_e2e = float(g["e2e_s"].sum())
        if total_e2e > 0:
            ev.put(label, "single_stream_output_tps", Metric(float(toks_out.sum()) / total_e2e, n=len(g),
                                                             source="latency: output tokens / E2E, one at a time"))
    for label, g in df[df["phase"] == "cold"].groupby("label"):
        ev.put(label, "cold_e2e_s", Metric(float(g["e2e_s"].iloc[0]), n=1, source="latency.jsonl, cold request"))


def _errors(ev: Evidence) -> None:
    frames = [ev.frames[e] for e in ("latency", "concurrency", "hallucination") if e in ev.frames]
    if not frames:
        return
    df = pd.concat(frames, ignore_index=True)
    if "mitigation" in df:  # rate-limit rehearsal provokes errors on purpose
        df = df[df["mitigation"].isna()]
    for label, g in df.groupby("label"):
        k = int((g["status"] != "ok").sum())
        est = stats.wilson_interval(k, len(g))
        ev.put(label, "error_rate", Metric(est.value, est.low, est.high, len(g), source="all records"))


def _hallucination(ev: Evidence, rng: np.random.Generator, n_boot: int) -> None:
    df = ev.frames.get("hallucination")
    if df is None or "grade" not in df:
        return
    graded = df[df["grade"].notna()]
    if "sample_index" in graded:
        graded = graded[graded["sample_index"].fillna(0) == 0]
    for label, g in graded.groupby("label"):
        n = len(g)
        src = "hallucination.jsonl, deterministic grader"
        ev.put(label, "hallucination_rate", _prop_metric(int((g["grade"] == "incorrect").sum()), n, n_boot, rng, src))
        ev.put(label, "abstention_rate", _prop_metric(int((g["grade"] == "not_attempted").sum()), n, n_boot, rng, src))
        ev.put(label, "qa_accuracy", _prop_metric(int((g["grade"] == "correct").sum()), n, n_boot, rng, src))


def _coalescing(ev: Evidence, dirs: Sequence[Path], multi: bool) -> None:
    """Annotation accuracy vs gold labels, tokens, requests and latency per document, per
    strategy, from each run's `coalescing_summary.csv` (written by the coalescing notebook from
    its records; accuracy with a Wilson interval over documents)."""
    found = False
    for d in dirs:
        p = d / "coalescing_summary.csv"
        if not p.exists():
            continue
        found = True
        table = pd.read_csv(p)
        for row in table.itertuples(index=False):
            label = f"{row.contender}@{d.name}" if multi else str(row.contender)
            s = str(row.strategy)
            n = int(row.accuracy_n) if pd.notna(row.accuracy_n) else 0
            src = f"coalescing_summary.csv ({d.name})"
            if n:
                k = round(float(row.accuracy) * n)
                est = stats.wilson_interval(k, n)
                ev.put(label, f"accuracy[{s}]", Metric(est.value, est.low, est.high, n, source=src))
            ev.put(label, f"input_tokens_per_document[{s}]", Metric(float(row.input_tokens_per_doc), n=n, source=src))
            ev.put(label, f"output_tokens_per_document[{s}]", Metric(float(row.output_tokens_per_doc), n=n,
                                                                     source=src))
            ev.put(label, f"requests_per_document[{s}]", Metric(float(row.requests_per_doc), n=n, source=src))
            cost = getattr(row, "cost_per_doc_usd", float("nan"))
            if pd.notna(cost):
                ev.put(label, f"cost_per_document_usd[{s}]", Metric(
                    float(cost), float(getattr(row, "cost_per_doc_low", math.nan)),
                    float(getattr(row, "cost_per_doc_high", math.nan)), n, source=src + ", priced by the notebook"))
            ev.put(label, f"latency_per_request_s[{s}]", Metric(float(row.mean_e2e_s), n=int(row.e2e_n), source=src))
    if found and "coalescing" in ev.missing:
        ev.missing.remove("coalescing")  # the summary file is what the matrix reads
    elif not found and "coalescing" not in ev.missing:
        ev.missing.append("coalescing")


def _throughput(ev: Evidence, rng: np.random.Generator, n_boot: int) -> None:
    df = ev.frames.get("concurrency")
    if df is None:
        return
    levels = concurrency_levels(df, math.inf)
    for label, g in levels.groupby("label"):
        best = g.loc[g["throughput_rps"].idxmax()]
        ev.put(label, "max_throughput_rps", Metric(float(best["throughput_rps"]), n=int(best["n"]),
                                                   source=f"concurrency.jsonl, level {int(best['concurrency'])}"))
        ev.put(label, "max_output_tps", Metric(float(g["output_tps"].max()), n=int(best["n"]),
                                               source="concurrency.jsonl"))


def _capabilities(ev: Evidence, dirs: Iterable[Path], multi: bool) -> None:
    found = False
    for d in dirs:
        p = d / "capabilities.json"
        if not p.exists():
            continue
        found = True
        for contender, facts in json.loads(p.read_text()).items():
            label = f"{contender}@{d.name}" if multi else contender
            ev.facts[label] = facts
            score = 0.0
            for f in INTEGRATION_FACTS:
                v = facts.get(f, {}).get("value")
                score += 1.0 if v is True else 0.0 if v is False else 0.5
            ev.put(label, "integration_score",
                   Metric(score / len(INTEGRATION_FACTS), n=len(INTEGRATION_FACTS),
                          source="capabilities.json (true=1, unknown=0.5, false=0)"))
    if not found:
        ev.missing.append("capabilities")
