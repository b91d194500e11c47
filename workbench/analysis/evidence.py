"""Evidence: the raw units every number of the decision rests on, and one joint resampling of them.

Read from one run folder, or several to compare runs (contenders are then labelled
`name@run_id`). Units, and how contenders share them:

- **prompts** (`latency.jsonl`, warm requests): warm request i of every contender carries the
  same prompt, so the unit is i, shared by all contenders. Each gives E2E, TTFT, tokens and,
  on a labelled prompt set, whether the intent label was right (`route_correct`).
- **items** (`hallucination.jsonl`, the graded greedy answer): the unit is the item id, shared.
- **documents** (`coalescing_documents.csv`, first pass): the unit is the document id, shared;
  with the requests of each strategy (`coalescing.jsonl`) for cost and time per document.
- **levels** (`concurrency.jsonl`, the sweep): per contender and concurrency level, its own
  requests — a level is one run of one contender, nothing is shared.
- **facts** (`capabilities.json`): declared or probed integration facts — no sampling error.

`Draws` is one joint resampling: B replicates of index vectors, the same vector for every
contender over a shared family (so the pairing of contenders on the same prompt, item or
document is kept), independent vectors per level and per strategy, and row 0 the identity
(the point estimate). Every metric is computed on every row; a scenario's score is then
computed per row (`workbench.analysis.decision`), so all uncertainties travel into the score
together. Throughput k/window is resampled as Gamma(k, 1)/window (the Poisson rate's
posterior under a flat prior; completions of a closed loop are more regular than Poisson, so
this is conservative).

What is missing from a run is listed in `Evidence.missing`, never invented.

**Failed requests count** (`outcomes`): a request the contender was sent and did not answer
(timeout, 429, 5xx, a cut stream, cancelled in flight at a deadline) is a unit the contender
*lost*, not a unit that vanishes. Its time to an answer is +∞ (it never gave one), so a
percentile whose rank lands on failures is ∞ and so is every bound above it — the interval says
so instead of describing the survivors; it is wrong in every accuracy (`route_correct` 0, QA
grade `incorrect` — on an unanswerable item a failure is not a rejection of the premise, so a
contender cannot look safer by erroring). Its error class stays on the unit (`error_class`).
Only a request the workbench never sent (`cancelled` or `dropped` with no time: a budget refusal,
a full in-flight cap) says nothing about the contender: that unit is unmeasured (NaN).
"""

from __future__ import annotations

import contextlib
import json
import math
import warnings
import zlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import numpy as np
import numpy.typing as npt
import pandas as pd
from scipy import stats as sps

from workbench.analysis import stats
from workbench.analysis.cost import arm_records
from workbench.analysis.quantiles import quantile_ci
from workbench.results import CAPABILITIES_FILE, load_runs

__all__ = [
    "INTEGRATION_FACTS", "UNSENT_CLASSES", "Draws", "Evidence", "Metric", "distinct_groups", "gather_evidence",
    "order_stat_rows", "outcomes",
]

#: Facts that lower integration effort when true; unknown counts half (not established).
INTEGRATION_FACTS: tuple[str, ...] = (
    "streaming", "usage_in_stream", "json_mode", "tool_calling", "rate_limit_headers", "openai_compatible",
)

#: Error classes the workbench gives a request it never sent (a budget refusal, a full in-flight
#: cap): with no time on the record, such a request says nothing about the contender.
UNSENT_CLASSES: frozenset[str] = frozenset({"cancelled", "dropped"})

FloatArray = npt.NDArray[np.float64]
IndexArray = npt.NDArray[np.intp]


@dataclass(frozen=True)
class Metric(stats.Estimate):
    """One measured number: an `Estimate` (point value, 95% interval, sample size, `method`: how
    the bounds were made — "order statistics" for percentiles, "Wilson" for proportions,
    "bootstrap" for derived numbers, 2.5–97.5% of the replicates, "fixed" for a declared or probed
    fact, a price) with its joint replicates and where it comes from. `reps` holds the B
    replicates of the joint resampling (None for a fixed number).

    `low1` / `high1` are the one-sided 95% bounds made the same way (order statistics at 5% per
    tail, the one-sided Wilson bound, the 5% / 95% replicate quantile): a hard constraint is
    one-sided ("p95 ≤ 100 ms"), so it is judged on one of them, not on the two-sided interval
    (which would make it a 97.5% test). None when they were not computed (a fixed number, an
    old caller); NaN when the sample cannot support them."""

    reps: FloatArray | None = field(default=None, compare=False)
    source: str = ""
    low1: float | None = None
    high1: float | None = None

    def one_sided(self, side: str) -> float:
        """The bound a one-sided constraint reads: `upper` (for a max) or `lower` (for a min) —
        the one-sided 95% bound when known, else the two-sided interval's bound; NaN: unsupported."""
        if side == "upper":
            return self.high1 if self.high1 is not None else self.high
        return self.low1 if self.low1 is not None else self.low

    def at(self, rows: FloatArray | None = None) -> FloatArray:
        """Value then replicates, as one array (a fixed metric repeats its value)."""
        if self.reps is None:
            return np.full(1 if rows is None else len(rows), self.value)
        return np.concatenate([[self.value], self.reps])


def from_rows(rows: FloatArray, source: str, n: int = 0, method: str = "bootstrap") -> Metric:
    """A metric from its rows (0 = point, 1.. = replicates), bounds from the replicates."""
    value = float(rows[0])
    reps = np.asarray(rows[1:], dtype=float)
    finite = reps[np.isfinite(reps)]
    if len(reps) == 0 or len(finite) < 0.95 * len(reps):
        low = high = low1 = high1 = math.nan  # too many replicates without a value: no honest interval
    else:
        low, low1, high1, high = (float(x) for x in np.percentile(finite, [2.5, 5.0, 95.0, 97.5]))
    return Metric(value, low, high, n, method, reps=reps, source=source, low1=low1, high1=high1)


@dataclass
class Evidence:
    """Per contender label: the unit tables (aligned on shared units), facts, raw frames."""

    labels: list[str] = field(default_factory=list)
    prompt_units: list[int] = field(default_factory=list)
    prompts: dict[str, pd.DataFrame] = field(default_factory=dict)  # label → rows aligned on prompt_units
    #: label → the prompt sets its latency requests named (empty: records from before they did)
    prompt_sets: dict[str, set[str]] = field(default_factory=dict)
    item_units: list[str] = field(default_factory=list)
    items: dict[str, pd.DataFrame] = field(default_factory=dict)  # label → answerable, grade
    doc_units: list[str] = field(default_factory=list)
    docs: dict[str, dict[str, FloatArray]] = field(default_factory=dict)  # label → strategy → correct (NaN)
    doc_requests: dict[str, dict[str, pd.DataFrame]] = field(default_factory=dict)  # label → strategy → requests
    doc_lost: dict[str, dict[str, int]] = field(default_factory=dict)  # label → strategy → documents failed
    levels: dict[str, dict[int, pd.DataFrame]] = field(default_factory=dict)  # label → level → sweep records
    facts: dict[str, dict[str, Any]] = field(default_factory=dict)
    fixed: dict[str, dict[str, Metric]] = field(default_factory=dict)  # label → metrics without resampling
    frames: dict[str, pd.DataFrame] = field(default_factory=dict)
    missing: list[str] = field(default_factory=list)
    runs: list[str] = field(default_factory=list)
    #: the resampling unit of each prompt / document unit (aligned with prompt_units / doc_units):
    #: the prompt id (a prompt reused by several warm requests is one unit) and the duplicate group
    #: (a document and its duplicates are one unit); empty: every unit its own group
    prompt_groups: list[str] = field(default_factory=list)
    doc_groups: list[str] = field(default_factory=list)

    @property
    def contenders(self) -> list[str]:
        return list(self.labels)

    def get(self, label: str, metric: str) -> Metric | None:
        return self.fixed.get(label, {}).get(metric)


def outcomes(df: pd.DataFrame) -> pd.Series:
    """Per record: `ok`, `failed` (sent, no answer: the contender lost the unit) or `unsent` (never
    sent by the workbench: unmeasured). See the module docstring."""
    ok = df["status"] == "ok" if "status" in df else pd.Series(True, index=df.index)
    cls = df["error_class"].astype(str) if "error_class" in df else pd.Series("", index=df.index)
    timed = pd.to_numeric(df["e2e_s"], errors="coerce").notna() if "e2e_s" in df else pd.Series(
        False, index=df.index)
    unsent = ~ok & cls.isin(UNSENT_CLASSES) & ~timed
    return pd.Series(np.select([ok, unsent], ["ok", "unsent"], "failed"), index=df.index)


def _error_class(df: pd.DataFrame) -> pd.Series:
    """The record's error class ("error" where a failed record names none), as objects."""
    cls = df["error_class"] if "error_class" in df else pd.Series(None, index=df.index, dtype=object)
    return cls.astype(object).where(cls.notna(), "error")


def _label(df: pd.DataFrame, multi: bool) -> pd.Series:
    if multi:
        return df["contender"].astype(str) + "@" + df["run_id"].astype(str)
    return df["contender"].astype(str)


def gather_evidence(run_dirs: str | Path | Sequence[str | Path]) -> Evidence:
    """Load one or more runs into unit tables (see the module docstring)."""
    dirs = [Path(run_dirs)] if isinstance(run_dirs, (str, Path)) else [Path(d) for d in run_dirs]
    multi = len(dirs) > 1
    ev = Evidence(runs=[d.name for d in dirs])
    for experiment in ("latency", "concurrency", "hallucination", "coalescing"):
        df = load_runs(dirs, experiment)
        if df.empty:
            ev.missing.append(experiment)
            continue
        ev.frames[experiment] = df.assign(label=_label(df, multi))
    # the context experiment's records, when a run has them: a batch scenario's document lengths
    # and windows read them (`analysis.doc_lengths`); not an experiment every run needs
    context = load_runs(dirs, "context")
    if not context.empty:
        ev.frames["context"] = context.assign(label=_label(context, multi))
    labels: set[str] = set()
    labels |= _prompts(ev)
    labels |= _items(ev)
    labels |= _documents(ev, dirs, multi)
    labels |= _levels(ev)
    labels |= _capabilities(ev, dirs, multi)
    _prompt_groups(ev)
    _errors(ev)
    ev.labels = sorted(labels)
    return ev


def _prompts(ev: Evidence) -> set[str]:
    """Warm requests by prompt unit. A failed request is +∞ in E2E and TTFT, 0 in `route_correct`
    (on a labelled prompt) and keeps its `error_class`; an unsent one is NaN throughout."""
    df = ev.frames.get("latency")
    if df is None:
        return set()
    warm = df[df["phase"] == "warm"].copy()
    warm["unit"] = warm["request_id"].astype(str).str.rsplit(":", n=1).str[-1].astype(int)
    ev.prompt_units = sorted(set(warm["unit"]))
    cols = ["e2e_s", "ttft_s", "input_tokens", "output_tokens", "route_correct"]
    for label, g in warm.groupby("label"):
        g = g.drop_duplicates("unit", keep="last").set_index("unit")
        outcome = outcomes(g)
        ok, failed = outcome == "ok", outcome == "failed"
        table = pd.DataFrame(index=ev.prompt_units)
        for col in cols:
            values = pd.to_numeric(g[col], errors="coerce") if col in g else pd.Series(np.nan, index=g.index)
            table[col] = values.where(ok).astype(float)
        for col in ("e2e_s", "ttft_s"):
            table[col] = table[col].where(~failed.reindex(table.index, fill_value=False), math.inf)
        labelled = g["expected"].notna() if "expected" in g else pd.Series(False, index=g.index)
        table["route_correct"] = table["route_correct"].where(
            ~(failed & labelled).reindex(table.index, fill_value=False), 0.0)
        table["error_class"] = _error_class(g).where(failed).reindex(table.index)
        ev.prompts[str(label)] = table
        if "prompt_set" in g:
            ev.prompt_sets[str(label)] = {str(x) for x in g["prompt_set"].dropna()}
    for label, g in df[df["phase"] == "cold"].groupby("label"):
        ev.fixed.setdefault(str(label), {})["cold_e2e_s"] = Metric(
            float(g["e2e_s"].iloc[0]), n=1, source="latency.jsonl, cold request")
    return {str(x) for x in warm["label"].unique()}


def _items(ev: Evidence) -> set[str]:
    """The graded greedy answer per item. A failed request is graded `incorrect` (wrong on an
    answerable item; on an unanswerable one, not a rejection) and keeps its `error_class`; an
    unsent one, or an answer without a grade, leaves the item unmeasured (NaN)."""
    df = ev.frames.get("hallucination")
    if df is None or "grade" not in df or "item_id" not in df:
        return set()
    if "sample_index" in df:
        df = df[df["sample_index"].fillna(0) == 0]
    outcome = outcomes(df)
    failed = outcome == "failed"
    graded = df[((outcome == "ok") & df["grade"].notna()) | failed].copy()
    graded["grade"] = graded["grade"].where(~failed.loc[graded.index], "incorrect")
    graded["error_class"] = _error_class(graded).where(failed.loc[graded.index])
    ev.item_units = sorted(set(graded["item_id"].astype(str)))
    for label, g in graded.groupby("label"):
        g = g.drop_duplicates("item_id", keep="last")
        g.index = pd.Index(g["item_id"].astype(str))
        answerable = g["answerable"].astype(bool) if "answerable" in g else pd.Series(True, index=g.index)
        table = pd.DataFrame(index=ev.item_units)
        table["answerable"] = answerable.reindex(ev.item_units)
        table["grade"] = g["grade"].reindex(ev.item_units)
        table["error_class"] = g["error_class"].reindex(ev.item_units)
        ev.items[str(label)] = table
    return {str(x) for x in graded["label"].unique()}


def _documents(ev: Evidence, dirs: Sequence[Path], multi: bool) -> set[str]:
    """Per-document correctness per strategy (first pass) and each strategy's priced requests."""
    outcomes = []
    for d in dirs:
        p = d / "coalescing_documents.csv"
        if p.exists():
            o = pd.read_csv(p)
            o["label"] = (o["contender"].astype(str) + "@" + d.name) if multi else o["contender"].astype(str)
            outcomes.append(o)
    records = ev.frames.get("coalescing")
    if not outcomes or records is None:
        if "coalescing" not in ev.missing:
            ev.missing.append("coalescing")
        return set()
    o = pd.concat(outcomes, ignore_index=True)
    o = o[o["repeat"] == 0]
    ev.doc_units = sorted(set(o["doc_id"].astype(str)))
    ev.doc_groups = _doc_groups(o, ev.doc_units)
    for (label, strategy), g in o.groupby(["label", "strategy"]):
        g = g.drop_duplicates("doc_id")
        correct = pd.Series(g["correct"].to_numpy(), index=g["doc_id"].astype(str))
        by_unit = correct.astype(float).reindex(ev.doc_units)
        ev.docs.setdefault(str(label), {})[str(strategy)] = np.asarray(by_unit, dtype=np.float64)
        # a document whose request failed has no label: already wrong in `correct`, counted here
        lost = int((g["source"] == "failed").sum()) if "source" in g else 0
        ev.doc_lost.setdefault(str(label), {})[str(strategy)] = lost
    # the cached-prefix arm's cache-off controls measure the lever, not a way to run it
    for (label, strategy), g in arm_records(records).groupby(["label", "strategy"]):
        ev.doc_requests.setdefault(str(label), {})[str(strategy)] = g
    return set(ev.docs)


def _prompt_groups(ev: Evidence) -> None:
    """The prompt id of each warm unit (warm request i carries the same prompt for every
    contender): once requests outnumber the prompt set, prompts repeat, and at temperature 0 a
    repeat is the same observation again — one resampling unit, not two."""
    df = ev.frames.get("latency")
    if df is None or "prompt_id" not in df or not ev.prompt_units:
        return
    warm = df[df["phase"] == "warm"]
    unit = warm["request_id"].astype(str).str.rsplit(":", n=1).str[-1].astype(int)
    ids = pd.Series(warm["prompt_id"].to_numpy(), index=unit.to_numpy()).dropna()
    ids = ids[~ids.index.duplicated()]
    ev.prompt_groups = [str(ids.get(u, f"unit:{u}")) for u in ev.prompt_units]


def _doc_groups(o: pd.DataFrame, units: list[str]) -> list[str]:
    """Each document's duplicate group: the original it duplicates (`dup_of`), else itself."""
    if "dup_of" not in o:
        return list(units)
    first = o.drop_duplicates("doc_id").set_index(o.drop_duplicates("doc_id")["doc_id"].astype(str))["dup_of"]
    return [str(first.get(u)) if isinstance(first.get(u), str) and first.get(u) else u for u in units]


def _levels(ev: Evidence) -> set[str]:
    df = ev.frames.get("concurrency")
    if df is None or "level" not in df or "phase" not in df:
        return set()
    sweep = df[df["phase"] == "sweep"]
    for (label, level), g in sweep.groupby(["label", "level"]):
        ev.levels.setdefault(str(label), {})[int(cast("int", level))] = g
    return set(ev.levels)


def _capabilities(ev: Evidence, dirs: Sequence[Path], multi: bool) -> set[str]:
    found: set[str] = set()
    for d in dirs:
        p = d / CAPABILITIES_FILE
        if not p.exists():
            continue
        for contender, facts in json.loads(p.read_text()).items():
            label = f"{contender}@{d.name}" if multi else contender
            found.add(label)
            ev.facts[label] = facts
            score = 0.0
            for f in INTEGRATION_FACTS:
                v = facts.get(f, {}).get("value")
                score += 1.0 if v is True else 0.0 if v is False else 0.5
            ev.fixed.setdefault(label, {})["integration_score"] = Metric(
                score / len(INTEGRATION_FACTS), n=len(INTEGRATION_FACTS),
                source="capabilities.json (true=1, unknown=0.5, false=0): a fact, not a sample")
    if not found:
        ev.missing.append("capabilities")
    return found


def _errors(ev: Evidence) -> None:
    frames = [ev.frames[e] for e in ("latency", "concurrency", "hallucination") if e in ev.frames]
    if not frames:
        return
    df = pd.concat(frames, ignore_index=True)
    if "mitigation" in df:  # the rate-limit rehearsal provokes errors on purpose
        df = df[df["mitigation"].isna()]
    sent = df[outcomes(df) != "unsent"]
    for label, g in sent.groupby("label"):
        k = int((g["status"] != "ok").sum())
        est = stats.wilson_interval(k, len(g))
        ev.fixed.setdefault(str(label), {})["error_rate"] = Metric(
            est.value, est.low, est.high, len(g), source="all records sent but the rehearsal", method="Wilson")


# --------------------------------------------------------------------------------------------
# the joint resampling


class Draws:
    """B replicates of index vectors over every unit family; row 0 is the identity (point)."""

    def __init__(self, ev: Evidence, n_boot: int = 1000, seed: int = 0) -> None:
        if n_boot < 1:
            raise ValueError("n_boot must be >= 1")
        self.n_boot = n_boot
        self.seed = seed
        self.prompts = self._matrix("prompts", len(ev.prompt_units), ev.prompt_groups)
        self.items = self._matrix("items", len(ev.item_units))
        self.docs = self._matrix("documents", len(ev.doc_units), ev.doc_groups)

    @property
    def rows(self) -> int:
        return self.n_boot + 1

    def _rng(self, key: str) -> np.random.Generator:
        return np.random.default_rng([self.seed, zlib.crc32(key.encode())])

    def _matrix(self, key: str, n: int, groups: Sequence[str] = ()) -> IndexArray:
        idx = np.empty((self.rows, n), dtype=np.intp)
        idx[0] = np.arange(n)
        if n and len(groups) == n and len(set(groups)) < n:
            idx[1:] = _cluster_indices(self._rng(key), groups, self.n_boot)
        elif n:
            idx[1:] = self._rng(key).integers(0, n, size=(self.n_boot, n))
        return idx

    def own(self, key: str, n: int) -> IndexArray:
        """An independent index matrix for units of one contender only (a level, a strategy)."""
        return self._matrix(f"own:{key}", n)

    def uniform(self, key: str) -> FloatArray:
        """One uniform per replicate row (1..B) under `key`: the tie-breaker of `order_stat_rows`."""
        return self._rng(f"uniform:{key}").random(self.n_boot)

    def rate(self, key: str, k: int, window_s: float) -> FloatArray:
        """k events in window_s: k/window, then Gamma(k, 1)/window replicates."""
        out = np.empty(self.rows)
        out[0] = k / window_s if window_s > 0 else math.nan
        draws = self._rng(f"rate:{key}").gamma(max(k, 1e-9), 1.0, size=self.n_boot) if k > 0 else np.zeros(self.n_boot)
        out[1:] = draws / window_s if window_s > 0 else math.nan
        return out


def _cluster_indices(rng: np.random.Generator, groups: Sequence[str], n_boot: int) -> IndexArray:
    """A cluster bootstrap that keeps the shape (n_boot, n): every group is replaced by a group
    drawn with replacement, and a unit by the unit at the same position (cyclically) in the drawn
    group. With groups of one it is the ordinary bootstrap; with equal-sized groups (a prompt set
    cycled) it is exactly the cluster bootstrap — the units of one group travel together, so a
    prompt repeated k times counts once, not k times."""
    codes, members_of = np.unique(np.asarray(groups, dtype=str), return_inverse=True)
    g = len(codes)
    sizes = np.bincount(members_of, minlength=g)
    members = np.full((g, int(sizes.max())), -1, dtype=np.intp)
    position = np.empty(len(groups), dtype=np.intp)
    fill = np.zeros(g, dtype=np.intp)
    for unit, grp in enumerate(members_of):
        members[grp, fill[grp]] = unit
        position[unit] = fill[grp]
        fill[grp] += 1
    drawn = rng.integers(0, g, size=(n_boot, g))[:, members_of]  # (n_boot, n): the group replacing each unit's
    return np.asarray(members[drawn, position[None, :] % sizes[drawn]], dtype=np.intp)


def resampled(values: FloatArray, idx: IndexArray) -> FloatArray:
    """(rows, n) matrix of `values` under each row of `idx`."""
    return np.asarray(values, dtype=float)[idx] if len(values) else np.full((idx.shape[0], 0), np.nan)


def percentile_rows(values: FloatArray, idx: IndexArray, q: float) -> FloatArray:
    """The q-th percentile (order statistic X_(ceil(nq)), NaN ignored) of every row."""
    m = resampled(values, idx)
    with np.errstate(all="ignore"), _quiet():
        return np.asarray(np.nanpercentile(m, q, axis=1, method="inverted_cdf"), dtype=float)


def mean_rows(values: FloatArray, idx: IndexArray) -> FloatArray:
    m = resampled(values, idx)
    with _quiet():
        return np.asarray(np.nanmean(m, axis=1), dtype=float)


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """Silence numpy's all-NaN-slice warnings: an empty row is a NaN value, said elsewhere."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        yield


def order_stat_rows(values: FloatArray, idx: IndexArray, q: float, u: FloatArray | None = None) -> FloatArray:
    """The q-th percentile on every row, its replicates drawn from the order-statistic (binomial
    rank) distribution instead of the percentile bootstrap.

    Why: the bootstrap of a tail percentile only ever returns values inside the sample, and the
    ranks it reaches are too narrow (p95 at n=100: 2.5–97.5% of the replicates cover the true
    p95 about 88% of the time), while the interval shown beside the score is the order-statistic
    one (≥ 95%). Here a replicate is X_(R) with R = K + D, K ~ Binomial(n, q/100) the number of
    values at or below the true percentile and D a fair 0/1 (the mid-rank of X_(K) and
    X_(K+1)): its 2.5–97.5% reach the ranks of `quantile_ci` (covers 0.95 at n=100 for p95,
    see tests/analysis/test_quantiles.py). R = n+1 is +inf (the sample cannot bound the
    percentile there); R = 0 is read as X_(1).

    The pairing of contenders on shared prompts is kept by coupling, not by construction: row
    b's bootstrap rank J_b of the ordinary resample (`idx`, shared by every contender) is turned
    into a uniform (randomised PIT of J's known law P(J ≤ j) = P(Binomial(n, j/n) ≥ k), `u` the
    row's tie-breaking uniform, the contender's own: a shared one would tie the contenders' ranks
    closer than their data do) and R is the binomial-rank quantile of that uniform — so a row
    whose resample drew the slow prompts draws high ranks for every contender they are slow for.
    Row 0 is the point value X_(ceil(nq/100)); NaN values are dropped (n is the count kept)."""
    boot = percentile_rows(values, idx, q)
    x = np.sort(np.asarray(values, dtype=float)[~np.isnan(np.asarray(values, dtype=float))])
    n = len(x)
    out = np.full(idx.shape[0], np.nan)
    if n == 0:
        return out
    p = q / 100.0
    k = min(n, max(1, math.ceil(n * p - 1e-9)))
    out[0] = x[k - 1]
    reps = boot[1:]
    if u is None:
        u = np.random.default_rng(0).random(len(reps))
    # J: the sample rank of the resample's percentile (its largest rank among ties)
    j = np.searchsorted(x, np.nan_to_num(reps, nan=np.inf), side="right")
    ranks = np.arange(n + 1)
    law = np.asarray(sps.binom.sf(k - 1, n, ranks / n), dtype=float)  # P(J <= j), j = 0..n
    lo = law[np.clip(j - 1, 0, n)]
    hi = law[np.clip(j, 0, n)]
    pit = np.clip(lo + u * (hi - lo), 0.0, 1.0)
    # target: R = K + D; P(R <= r) = (P(K <= r) + P(K <= r - 1)) / 2, r = 0..n+1
    r = np.arange(n + 2)
    target = (sps.binom.cdf(r, n, p) + sps.binom.cdf(r - 1, n, p)) / 2.0
    rank = np.minimum(np.searchsorted(target, pit, side="left"), n + 1)
    padded = np.concatenate([[x[0]], x, [np.inf]])
    out[1:] = padded[rank]
    return out


def quantile_metric(values: FloatArray, idx: IndexArray, q: float, source: str,
                    u: FloatArray | None = None) -> Metric:
    """A percentile: order-statistic interval on the sample (two-sided, and one-sided at 5% a
    tail), replicates from the order-statistic distribution (`order_stat_rows`) for the score."""
    rows = order_stat_rows(values, idx, q, u)
    est = quantile_ci(values, q)
    one = quantile_ci(values, q, ci=0.90)
    return Metric(est.value, est.low, est.high, est.n, "order statistics", reps=rows[1:], source=source, low1=one.low,
                  high1=one.high)


def distinct_groups(groups: Sequence[str], mask: npt.NDArray[np.bool_]) -> int | None:
    """How many resampling units (prompt ids, duplicate groups) the units in `mask` make; None when
    there are no groups (every unit its own)."""
    if len(groups) != len(mask):
        return None
    return len({g for g, keep in zip(groups, mask, strict=True) if keep})


def proportion_metric(k_rows: FloatArray, n_rows: FloatArray, source: str, units: int | None = None) -> Metric:
    """k/n per row; Wilson interval on the point's counts. `units`: the independent units behind
    the n counts (distinct prompts, duplicate groups) when fewer — the interval is then the Wilson
    interval of the same share over `units` (a repeat at temperature 0 is the same observation
    again; its n is capped at the pool, not the request count)."""
    with np.errstate(all="ignore"):
        rows = np.where(n_rows > 0, k_rows / np.where(n_rows > 0, n_rows, 1), np.nan)
    k, n = round(k_rows[0]), round(n_rows[0])
    if n == 0:
        return Metric(math.nan, source=source, method="Wilson", reps=rows[1:])
    value = k / n
    if units is not None and 0 < units < n:
        k, n = round(k * units / n), units
        source += f" (n = {units} distinct units)"
    est = stats.wilson_interval(k, n)
    one = stats.wilson_interval(k, n, ci=0.90)  # its bounds are the one-sided 95% Wilson bounds
    return Metric(value, est.low, est.high, n, "Wilson", reps=rows[1:], source=source, low1=one.low, high1=one.high)
