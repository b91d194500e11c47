"""Workload scenarios: what "good" means for one use of a model, and the rules of each kind.

A scenario (`experiments/scenarios.yaml`) is a workload: weights over the decision's axes, hard
constraints, the workload's numbers (QPS, documents per night, monthly requests) and the
reference values its utilities are scaled by. The measured numbers come from runs, never from
this file. Each kind is a class that owns its rules — which metric stands for each axis, how
its cost and quality are computed from the evidence, what its projections and checklist say —
so nothing outside dispatches on the kind.

**Axes** and their utilities, each on a bounded absolute scale in [0, 1] that does not depend
on the other contenders (a ratio to the best contender would send everyone else to 0 when the
best is 0):
- quality (`accuracy`): how well the scenario's own task is done — routing accuracy (realtime),
  annotation accuracy (batch), the QA net score on answerable questions (prototyping: a wrong
  answer costs what a right one earns, so always abstaining scores ½ and always being wrong 0);
  utility = the value itself;
- `hallucination`: the hallucination score F × (1 − ½ × false-premise acceptance), itself in
  [0, 1] (see `workbench.analysis.hallucination`); a contender that always refuses has F = 0;
- `latency` (p95 E2E) and `cost` (the scenario's cost unit): utility = 1 / (1 + value /
  reference) — 1 at zero, ½ at the scenario's reference value, → 0 as it grows; the references
  (`latency_ref_s`, `cost_ref_usd`) are part of the scenario, shown in the report;
- `integration`: the share of integration facts established (a fact, not a sample).

Every kind makes its quality floor a hard constraint: latency and price cannot buy back a
contender that does not do the task. Every kind also bounds its own requests' `error_rate`
(`max_error_rate`, default `DEFAULT_MAX_ERROR_RATE`, judged on the Wilson interval like every
proportion): realtime on its warm requests and its load sweep on its prompt set, batch on the
annotation requests, prototyping on the QA and latency requests. A failed request also counts
inside every metric (`workbench.analysis.evidence.outcomes`), and the matrix says how many units
each contender lost to errors (`units_lost_to_errors`).

File format: a `scenarios:` mapping of name → scenario with a `kind` of realtime, batch or
prototyping. Unknown fields are errors, reported as ConfigError(file, field, reason).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, ClassVar, Literal, get_args

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from workbench import workspace
from workbench.analysis import axes, doc_lengths
from workbench.analysis.catalog import METRICS, format_value
from workbench.analysis.cost import (
    DEFAULT_HEADROOM,
    batch_api_hours,
    project_batch,
    project_prototyping,
    project_realtime,
)
from workbench.analysis.evidence import Draws, Evidence, Metric
from workbench.config import load_sections, validation_error
from workbench.errors import ConfigError, lookup
from workbench.images import MODALITIES, check_needs
from workbench.metrics import SLO
from workbench.tasks import SCENARIO_PREFIX, Task

if TYPE_CHECKING:
    from workbench.config import Contender
    from workbench.pricing import Price

__all__ = [
    "AXES",
    "DEFAULT_MAX_ERROR_RATE",
    "DEFAULT_SCENARIOS_FILE",
    "KINDS",
    "BatchScenario",
    "ChunkingSpec",
    "Constraint",
    "PrototypingScenario",
    "RealtimeScenario",
    "Scenario",
    "ScenarioSet",
    "load_scenarios",
]

#: The bundled example's scenarios (a run reads the workspace's: `workbench.workspace`).
DEFAULT_SCENARIOS_FILE = workspace.bundled().scenarios_file

#: The error-rate limit every scenario has unless it sets `max_error_rate` or lists `error_rate`
#: among its hard constraints: a contender that fails one request in twenty is not a choice
#: however good its answers, and 0/100 failures already has a Wilson upper bound under it (3.7%).
DEFAULT_MAX_ERROR_RATE = 0.05

#: The decision matrix's axes.
AXES: tuple[str, ...] = ("accuracy", "cost", "hallucination", "integration", "latency")

Weight = Annotated[float, Field(ge=0)]
#: The metrics behind the axes every kind measures the same way; a kind adds its cost and quality.
_SHARED_AXES = {"latency": "e2e_p95", "hallucination": "hallucination_score", "integration": "integration_score"}


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SloSpec(_Strict):
    """A latency objective as the scenarios file writes it (`workbench.metrics.SLO`)."""

    metric: Literal["ttft", "e2e"] = Field("e2e", description="ttft or e2e")
    percentile: Literal[50, 90, 95, 99] = Field(95, description="50, 90, 95 or 99")
    max_s: float = Field(gt=0, description="the bound, seconds")


class ChunkingSpec(_Strict):
    """How a batch scenario may split a document longer than a request should be
    (`workbench.analysis.doc_lengths`)."""

    max_tokens: int = Field(gt=0, description="the most tokens one request of a chunked document carries")


class Constraint(_Strict):
    """A limit on one measured metric, judged one-sided at 95%: `pass` when the metric's one-sided
    95% bound on the limit's side meets it (the upper bound for a `max`, the lower for a `min`),
    `fail` when the opposite one-sided bound misses it, `inconclusive` otherwise."""

    metric: str = Field(description="measured metric; one of workbench.analysis.catalog.METRICS")
    max: float | None = Field(None, description="the metric must be <= this")
    min: float | None = Field(None, description="the metric must be >= this")

    @field_validator("metric")
    @classmethod
    def _known(cls, v: str) -> str:
        if v not in METRICS:
            raise ValueError(f"unknown metric {v!r}; valid: {', '.join(METRICS)}")
        return v

    @model_validator(mode="after")
    def _one_bound(self) -> Constraint:
        if self.max is None and self.min is None:
            raise ValueError("give max or min")
        return self

    def passes(self, value: float) -> bool:
        return (self.max is None or value <= self.max) and (self.min is None or value >= self.min)

    @property
    def text(self) -> str:
        d = METRICS[self.metric]
        bound, op = (self.max, "≤") if self.max is not None else (self.min, "≥")
        assert bound is not None
        unit = d.unit if d.unit == "%" else f" {d.unit}"
        return f"{d.label} {op} {bound * d.scale:g}{unit}"

    def status(self, m: Metric | None) -> str:
        """`pass`, `fail` or `inconclusive` from the metric's interval; unmeasured is
        `inconclusive` (nothing is known either way: neither a pass nor a fail).

        A bound the sample cannot support (NaN) is unknown, so it can never make a pass; a fixed
        number (a declared or documented fact, one pass's measurement) is judged on its value."""
        if m is None or math.isnan(m.value):
            return "inconclusive"
        if m.method == "fixed" and math.isnan(m.low) and math.isnan(m.high):  # no sampling error at all
            lo = hi = m.value
        else:  # one-sided 95% bounds: a limit on one side is a one-sided test (`Metric.one_sided`)
            lo, hi = m.one_sided("lower"), m.one_sided("upper")
            lo = lo if not math.isnan(lo) else -math.inf
            hi = hi if not math.isnan(hi) else math.inf
        if self.max is not None:
            if hi <= self.max:
                return "pass"
            if lo > self.max:
                return "fail"
            return "inconclusive"
        assert self.min is not None
        if lo >= self.min:
            return "pass"
        if hi < self.min:
            return "fail"
        return "inconclusive"


def hyperbolic(values: Any, reference: float) -> Any:
    """Utility 1 / (1 + value / reference): 1 at 0, ½ at the reference, → 0 as value grows."""
    v = np.asarray(values, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(np.isfinite(v), 1.0 / (1.0 + np.maximum(v, 0.0) / reference), 0.0)


class _ScenarioBase(_Strict):
    kind: ClassVar[str]
    #: The metric that stands for each axis in this kind of workload.
    axis_metric: ClassVar[dict[str, str]]
    #: What each reference means, for the report.
    cost_unit: ClassVar[str]

    name: str = Field(description="the scenario's key in the file")
    description: str = Field(description="one line: who uses the model, for what")
    weights: dict[str, Weight] = Field(description=f"relative importance per axis; axes: {', '.join(AXES)}")
    hard_constraints: list[Constraint] = Field(
        default_factory=list, description="limits that disqualify a contender outright"
    )
    latency_ref_s: float = Field(1.0, gt=0, description="p95 E2E at which the latency utility is ½, seconds")
    cost_ref_usd: float = Field(gt=0, description="cost (in the kind's cost unit) at which the cost utility is ½")
    task: Task | None = Field(None, description="the workload's own data and task (workbench.tasks): "
                                                "{type: classify | qa | generate | long_doc, data: FILE, ...}")
    needs: list[str] = Field(
        default_factory=list, description=f"input modalities a contender must take (a hard constraint on its "
                                          f"integration facts); valid: {', '.join(MODALITIES)}")
    max_error_rate: float | None = Field(
        None, ge=0, le=1, description=f"most failed requests / sent this scenario accepts (a hard constraint "
                                      f"on error_rate); empty: an error_rate hard constraint if listed, else "
                                      f"{DEFAULT_MAX_ERROR_RATE:g}")

    #: The experiments whose requests this kind's `error_rate` counts, and the unit families
    #: whose failures the matrix reports as units lost.
    error_experiments: ClassVar[tuple[str, ...]] = ()
    unit_families: ClassVar[tuple[str, ...]] = ()
    #: Whether the workload can wait for its answers (a batch API's window counts): the lever a
    #: contender is projected with may then be an asynchronous one.
    asynchronous: ClassVar[bool] = False

    @model_validator(mode="before")
    @classmethod
    def _kind_chose_this_class(cls, data: Any) -> Any:
        """The file's `kind` chose this class (`KINDS`); it is not a field of it."""
        if isinstance(data, dict) and "kind" in data:
            if data["kind"] != cls.kind:
                raise ValueError(f"kind {data['kind']!r} given to a {cls.kind} scenario")
            data = {k: v for k, v in data.items() if k != "kind"}
        return data

    @model_validator(mode="after")
    def _error_rate_is_constraint(self) -> _ScenarioBase:
        listed = any(c.metric == "error_rate" for c in self.hard_constraints)
        if self.max_error_rate is not None or not listed:
            self._require("error_rate", max=self.max_error_rate if self.max_error_rate is not None
                          else DEFAULT_MAX_ERROR_RATE)
        return self

    @field_validator("needs")
    @classmethod
    def _needs_known(cls, v: list[str]) -> list[str]:
        return check_needs(v)

    @field_validator("weights")
    @classmethod
    def _weights_ok(cls, v: dict[str, float]) -> dict[str, float]:
        unknown = sorted(set(v) - set(AXES))
        if unknown:
            raise ValueError(f"unknown axis {unknown[0]!r}; valid: {', '.join(AXES)}")
        if sum(v.values()) <= 0:
            raise ValueError("weights must sum to > 0")
        return v

    @property
    def normalized_weights(self) -> dict[str, float]:
        """Weights scaled to sum to 1, every axis present (missing axes weigh 0)."""
        total = sum(self.weights.values())
        return {axis: self.weights.get(axis, 0.0) / total for axis in AXES}

    def _require(self, metric: str, *, max: float | None = None, min: float | None = None) -> None:
        """The scenario's own limit must appear among hard_constraints, with the same bound."""
        for c in self.hard_constraints:
            if c.metric == metric:
                if (max is not None and c.max != max) or (min is not None and c.min != min):
                    bound = f"max {max}" if max is not None else f"min {min}"
                    raise ValueError(f"hard constraint on {metric} disagrees with the scenario ({bound})")
                return
        self.hard_constraints.append(Constraint(metric=metric, max=max, min=min))

    # -- what the kind owns ----------------------------------------------------------------

    def utility(self, axis: str, values: Any) -> Any:
        """The axis utility in [0, 1] of the axis metric's values (see the module docstring)."""
        if axis == "latency":
            return hyperbolic(values, self.latency_ref_s)
        if axis == "cost":
            return hyperbolic(values, self.cost_ref_usd)
        v = np.asarray(values, dtype=float)
        return np.where(np.isfinite(v), np.clip(v, 0.0, 1.0), 0.0)

    def utility_text(self) -> dict[str, str]:
        """How each axis of this scenario is scored, in words (for the report and README)."""
        out = {}
        for axis in AXES:
            m = METRICS[self.axis_metric[axis]]
            if axis == "latency":
                out[axis] = f"1 / (1 + {m.label} / {self.latency_ref_s * 1000:g} ms)"
            elif axis == "cost":
                out[axis] = f"1 / (1 + {m.label} / {self.cost_ref_usd:g} {self.cost_unit})"
            else:
                out[axis] = m.label
        return out

    def metrics(self, ev: Evidence, draws: Draws, label: str, contender: Contender | None, *,
                machine_hour_usd: float) -> dict[str, Metric]:
        """Every metric this scenario's axes and constraints use, for one contender, on every row
        of the joint resampling: the shared ones, then the kind's own cost and quality."""
        out: dict[str, Metric] = dict(ev.fixed.get(label, {}))
        out.update(self._on_own_prompts(ev, label, axes.latency_metrics(ev, draws, label)))
        out.update(axes.qa_metrics(ev, draws, label))
        out.update(self.task_metrics(ev, draws, label, contender, out, machine_hour_usd))
        strategy = out.get("strategy")
        out.update(axes.error_metrics(ev, label, self.error_experiments, prompt_set=getattr(self, "prompt_set", None),
                                      families=self.unit_families,
                                      strategy=strategy.source if strategy is not None else None))
        return out

    def task_metrics(self, ev: Evidence, draws: Draws, label: str, contender: Contender | None,
                     shared: dict[str, Metric], machine_hour_usd: float) -> dict[str, Metric]:
        """The kind's own metrics (its cost, its task's quality), given the shared ones."""
        raise NotImplementedError

    def _on_own_prompts(self, ev: Evidence, label: str, latency: dict[str, Metric]) -> dict[str, Metric]:
        """The latency experiment's metrics if it ran on this scenario's prompt set (or the
        scenario names none, or the records predate naming theirs); else each one unmeasured, with
        what it was measured on — a bank's router is not scored on the demo's routing messages."""
        wanted = getattr(self, "prompt_set", None)
        measured = ev.prompt_sets.get(label, set())
        if not wanted or not measured or wanted in measured:
            return latency
        note = (f"not measured on this scenario's prompts ({wanted}): the latency experiment ran on "
                f"{', '.join(sorted(measured))}")
        return {name: Metric(math.nan, source=note) for name in latency}

    def checklist(self, pick: str, m: Mapping[str, Metric]) -> list[str]:
        """The kind's own items of the migration checklist."""
        return []

    def matrix_fields(self, m: Mapping[str, Metric]) -> dict[str, Any]:
        """Columns the kind adds to a contender's row of the decision matrix (e.g. the lever)."""
        return {}

    def projection_basis(self) -> str:
        """One line: the workload numbers every projection of this scenario rests on."""
        return ""

    def lever_projection(self, r: Mapping[str, Any], price: Price, is_local: bool, machine_hour_usd: float,
                         strategy: str) -> dict[str, Any] | None:
        """This scenario's time and cost from one annotation strategy's measured numbers
        (a row of `workbench.analysis.levers.strategy_summary`); None (the default): this kind
        projects no lever."""
        return None

    @property
    def latency_objective(self) -> SLO | None:
        """The latency objective a load sweep is judged by; None (the default): the kind has none."""
        return None

    def experiment_inputs(self) -> dict[str, dict[str, Any]]:
        """Per experiment, the parameters this scenario gives it (`experiments.workspace_inputs`:
        the first scenario to name an experiment wins). Any kind: a long_doc task's documents are
        the context experiment's."""
        if self.task is not None and self.task.type == "long_doc":
            return {"context": {"documents": f"{SCENARIO_PREFIX}{self.name}"}}
        return {}

    def annotation_task(self) -> Task | None:
        """The documents and labels this scenario annotates; None (the default): it annotates none."""
        return None

    def self_hosted_basis(self) -> str:
        """Which self-hosted monthly cost this scenario's matrix uses, in words (default: busy time)."""
        return "busy time"

    def card_detail(self, metrics: Mapping[str, Mapping[str, Metric]], pick: str | None) -> str:
        """A line the kind adds to its answer card, given every contender's metrics and the pick
        (None: no pick); "" (the default): none."""
        return ""


# The three kinds declare their workload fields in the same shape, side by side, so a reader
# compares them at a glance.
class RealtimeScenario(_ScenarioBase):
    """Online traffic with a latency SLO (e.g. intent routing in front of an assistant)."""

    kind: ClassVar[str] = "realtime"
    axis_metric: ClassVar[dict[str, str]] = {**_SHARED_AXES, "cost": "cost_per_1k_requests_usd",
                                             "accuracy": "route_accuracy"}
    cost_unit: ClassVar[str] = "USD per 1k requests"
    error_experiments: ClassVar[tuple[str, ...]] = ("latency", "concurrency")
    unit_families: ClassVar[tuple[str, ...]] = ("prompts",)

    prompt_set: str = Field("", description="prompt set that stands for the traffic (default with a task: "
                                             "scenario:<name>, the task's prompts)")
    target_qps: float = Field(gt=0, description="steady request rate to serve, requests/s")
    slo: SloSpec | None = Field(None, description="the latency objective: {metric: ttft | e2e, percentile: 50 | 90 | "
                                                  "95 | 99, max_s: seconds}")
    slo_p95_e2e_s: float | None = Field(None, gt=0, description="shorthand for slo: {metric: e2e, percentile: 95, "
                                                                "max_s: this}")
    accuracy_floor: float = Field(ge=0, le=1, description="minimum routing accuracy on the labelled prompts")
    headroom: float = Field(DEFAULT_HEADROOM, ge=0, lt=1, description="share of fleet capacity kept free for peaks")
    latency_ref_s: float = Field(0.0, ge=0, description="the SLO's latency at which the latency utility is ½; "
                                                        "0: the SLO's bound")

    @model_validator(mode="after")
    def _slo_is_constraint(self) -> RealtimeScenario:
        if not self.prompt_set:
            if self.task is None:
                raise ValueError("give prompt_set (a prompt set name) or task (the workload's own data)")
            object.__setattr__(self, "prompt_set", f"{SCENARIO_PREFIX}{self.name}")
        if (self.slo is None) == (self.slo_p95_e2e_s is None):
            raise ValueError("give slo ({metric, percentile, max_s}) or slo_p95_e2e_s, one of them")
        objective = self.objective
        self._require(objective.name, max=objective.max_s)
        self._require("route_accuracy", min=self.accuracy_floor)
        # the latency axis scores the scenario's own objective (E2E p95, or e.g. TTFT p95 for a chat)
        object.__setattr__(self, "axis_metric", {**type(self).axis_metric, "latency": objective.name})
        if self.latency_ref_s == 0:
            object.__setattr__(self, "latency_ref_s", objective.max_s)
        return self

    @property
    def objective(self) -> SLO:
        """The latency objective (`workbench.metrics.SLO`), from `slo` or the `slo_p95_e2e_s` shorthand."""
        if self.slo is not None:
            return SLO(self.slo.max_s, self.slo.metric, self.slo.percentile)
        assert self.slo_p95_e2e_s is not None
        return SLO(self.slo_p95_e2e_s)

    def task_metrics(self, ev: Evidence, draws: Draws, label: str, contender: Contender | None,
                     shared: dict[str, Metric], machine_hour_usd: float) -> dict[str, Metric]:
        out = axes.goodput_metrics(ev, draws, label, self.objective, self.prompt_set)
        out.update(axes.realtime_cost({**shared, **out}, contender, target_qps=self.target_qps,
                                      headroom=self.headroom, machine_hour_usd=machine_hour_usd))
        return out

    def checklist(self, pick: str, m: Mapping[str, Metric]) -> list[str]:
        return [f"Re-run the concurrency sweep up to the concurrency your {self.target_qps:g} QPS needs per "
                f"replica, and confirm {self.objective.text} under that load; then a short "
                "open-loop run at the per-replica rate the projection assumes."]

    def projection_basis(self) -> str:
        return (f"{self.target_qps:g} requests/s, SLO {self.objective.text}, "
                f"{self.headroom:.0%} headroom")

    @property
    def latency_objective(self) -> SLO:
        return self.objective

    def experiment_inputs(self) -> dict[str, dict[str, Any]]:
        """Its prompts (`scenario:<name>` when it has a task) are the latency and load prompts;
        its SLO, rate and headroom the sweep's."""
        return {**super().experiment_inputs(), "latency": {"prompt_set": self.prompt_set},
                "concurrency": {"prompt_set": self.prompt_set, "scenario": self.name}}

    def lever_projection(self, r: Mapping[str, Any], price: Price, is_local: bool, machine_hour_usd: float,
                         strategy: str) -> dict[str, Any]:
        goodput = float(r["docs_per_busy_s"])
        p95 = float(r["e2e_p95"])
        rt = project_realtime(self.target_qps, 0.0 if is_local else float(r["cost_per_doc_usd"]),
                              goodput if is_local else None, machine_hour_usd if is_local else None,
                              headroom=self.headroom)
        slo = self.objective
        if slo.name == "e2e_p95":
            met = "met" if p95 <= slo.max_s else "NOT met"
            extra = [f"SLO {slo.text} {met}: measured request p95 {p95:.3f} s "
                     f"[{r['e2e_p95_low']:.3f}, {r['e2e_p95_high']:.3f}] n={r['e2e_n']}"]
        else:  # the annotation requests' table has E2E p95 only: the SLO is not checked here
            extra = [f"SLO {slo.text}: not checked on the annotation requests (their table has E2E p95 only)"]
        if is_local:
            extra.append(f"one replica sustains the measured {goodput:.3g} documents/s (documents per busy "
                         "second, one request at a time): throughput, not goodput; the SLO is checked above")
        if strategy != "naive":
            extra.append("coalescing waits for k documents before sending: k / target QPS seconds of extra "
                         "latency at the target rate")
        time = f"{rt.replicas:,} replicas" if is_local else f"{self.target_qps * 60:,.0f} requests/min of quota"
        return {"time": time,
                "cost": f"${rt.cost_per_hour_usd:,.2f}/hour (${rt.cost_per_1k_requests_usd:.4g} per 1k)",
                "replicas": rt.replicas, "cost_per_hour_usd": rt.cost_per_hour_usd,
                "assumptions": rt.assumptions + extra}


class BatchScenario(_ScenarioBase):
    """Offline annotation of a nightly document drop within a time window."""

    kind: ClassVar[str] = "batch"
    axis_metric: ClassVar[dict[str, str]] = {**_SHARED_AXES, "cost": "cost_per_document_usd",
                                             "accuracy": "annotation_accuracy"}
    cost_unit: ClassVar[str] = "USD per document"
    error_experiments: ClassVar[tuple[str, ...]] = ("coalescing",)
    unit_families: ClassVar[tuple[str, ...]] = ("documents",)

    dataset: str = Field("annotation", description="the bundled example's workload folder (documents + labels); "
                                                   "a task replaces it")
    documents_per_night: int = Field(gt=0, description="documents to annotate each night")
    window_hours: float = Field(gt=0, le=24, description="hours the batch may take")
    accuracy_floor: float = Field(ge=0, le=1, description="minimum share of documents labelled correctly")
    concurrency_limit: int = Field(ge=1, description="requests in flight at most (quota or machine)")

    chunking: ChunkingSpec | None = Field(
        None, description="{max_tokens: N}: a document longer than N tokens is sent as ceil(length / N) requests "
                          "(more requests, more cost) and only a chunk must fit the window; empty: one request per "
                          "document, and the longest must fit the contender's window")

    asynchronous: ClassVar[bool] = True

    @model_validator(mode="after")
    def _floor_is_constraint(self) -> BatchScenario:
        if self.task is not None and self.task.type != "classify":
            raise ValueError("task: a batch scenario annotates documents: use type classify")
        self._require("annotation_accuracy", min=self.accuracy_floor)
        self._require("batch_wall_time_h", max=self.window_hours)
        self._require("longest_doc_window_share", max=1.0)
        return self

    def document_texts(self) -> dict[str, str]:
        """id → text of the documents the night annotates: the task's labelled texts, else the
        bundled workload folder's `documents.jsonl` (none there: empty)."""
        if self.task is not None:
            return {r.id: r.text for r in self.task.labelled()}
        path = workspace.current().root / self.dataset / "documents.jsonl"
        return doc_lengths.read_texts(path) if path.exists() else {}

    def task_metrics(self, ev: Evidence, draws: Draws, label: str, contender: Contender | None,
                     shared: dict[str, Metric], machine_hour_usd: float) -> dict[str, Metric]:
        out = axes.annotation_metrics(ev, draws, label, contender, machine_hour_usd=machine_hour_usd,
                                      floor=self.accuracy_floor, documents_per_night=self.documents_per_night,
                                      concurrency_limit=self.concurrency_limit, window_hours=self.window_hours)
        out.update(doc_lengths.document_metrics(
            ev, label, contender, self.document_texts(), documents_per_night=self.documents_per_night,
            chunk_tokens=self.chunking.max_tokens if self.chunking is not None else None))
        return out

    def document_window_text(self, m: Mapping[str, Metric]) -> str | None:
        """The document-length constraint's outcome for a contender, with its numbers (None: the
        scenario has no documents)."""
        share = m.get("longest_doc_window_share")
        if share is None:
            return None
        c = next(c for c in self.hard_constraints if c.metric == "longest_doc_window_share")
        shown = format_value(c.metric, share.value) if share.value == share.value else "n/a"
        text = f"{c.status(share)}: {shown} vs ≤ {c.max:.0%} ({share.source})"
        rpd = m.get("chunk_requests_per_doc")
        if rpd is not None:
            text += f"; chunking: {rpd.value:.3g} requests/document ({rpd.source})"
        return text

    def matrix_fields(self, m: Mapping[str, Metric]) -> dict[str, Any]:
        """The lever chosen for this contender, and the window constraint's outcome for it — and,
        when a batch API was measured, what it would do to the window."""
        strat, wall, api = m.get("strategy"), m.get("batch_wall_time_h"), m.get("batch_api_wall_time_h")
        window = next(c for c in self.hard_constraints if c.metric == "batch_wall_time_h")

        def outcome(x: Metric | None) -> str | None:
            if x is None:
                return None
            shown = format_value("batch_wall_time_h", x.value, x.low, x.high) if x.value == x.value else "n/a"
            return f"{window.status(x)}: {shown} vs ≤ {self.window_hours:g} h ({x.source})"

        lengths = {f"doc_tokens_{q}": m[f"doc_tokens_{q}"].value for q in ("p50", "p95", "max")
                   if f"doc_tokens_{q}" in m}
        night = m.get("night_cost_at_lengths_usd")
        rpd = m.get("chunk_requests_per_doc")
        return {"lever": strat.source if strat is not None else None, "window_constraint": outcome(wall),
                "batch_api_window": outcome(api), **lengths,
                "doc_tokens_source": m["doc_tokens_max"].source if "doc_tokens_max" in m else None,
                "document_window": self.document_window_text(m),
                "chunk_requests_per_doc": rpd.value if rpd is not None else None,
                "night_cost_at_lengths_usd": night.value if night is not None else None,
                "night_cost_at_lengths_source": night.source if night is not None else None}

    def card_detail(self, metrics: Mapping[str, Mapping[str, Metric]], pick: str | None) -> str:
        """The document-length constraint, and the pick's lengths and outcome under it — or,
        without a pick, each contender's outcome."""
        chunks = (f"; chunking allowed (at most {self.chunking.max_tokens:,} tokens a request)"
                  if self.chunking is not None else "")
        text = f"Document length: the longest document must fit the contender's context window{chunks}"
        m = metrics.get(pick) if pick is not None else None
        if m is not None and "doc_tokens_max" in m:
            p50, p95, top = (m[f"doc_tokens_{q}"].value for q in ("p50", "p95", "max"))
            return (f"{text}; the pick's documents: p50 {p50:,.0f} / p95 {p95:,.0f} / max {top:,.0f} tokens — "
                    f"{self.document_window_text(m)}.")
        c = next(c for c in self.hard_constraints if c.metric == "longest_doc_window_share")
        each = [f"{label} {c.status(share)} (longest {mm['doc_tokens_max'].value:,.0f} tokens"
                + (f", {format_value(c.metric, share.value)} of its window)" if share.value == share.value
                   else ", window unknown)")
                for label, mm in metrics.items() if (share := mm.get(c.metric)) is not None and "doc_tokens_max" in mm]
        return f"{text}: {'; '.join(each)}." if each else text + "."

    def checklist(self, pick: str, m: Mapping[str, Metric]) -> list[str]:
        strat = m.get("strategy")
        return [f"Re-run the annotation experiment on a sample of real documents with the chosen strategy "
                f"({strat.source if strat else 'naive'}) and check accuracy ≥ {self.accuracy_floor:.0%} on your "
                "labels."]

    def projection_basis(self) -> str:
        return (f"{self.documents_per_night:,} documents a night in {self.window_hours:g} h, "
                f"{self.concurrency_limit} requests in flight")

    def annotation_task(self) -> Task | None:
        return self.task

    def lever_projection(self, r: Mapping[str, Any], price: Price, is_local: bool, machine_hour_usd: float,
                         strategy: str) -> dict[str, Any]:
        cached = float(r.get("cached_tokens_per_doc", 0.0) or 0.0)
        is_batch = strategy in ("batch-api",)
        latency = float(r["mean_e2e_s"])  # a hosted batch item reports no busy time: its time is the window
        p = project_batch(self.documents_per_night, self.window_hours, r["input_tokens_per_doc"],
                          r["output_tokens_per_doc"], price, r["requests_per_doc"],
                          latency if latency == latency else 0.0, self.concurrency_limit, batch_api=is_batch,
                          per_doc_cached_input_tokens=cached if cached == cached else 0.0)
        extra = [f"duplicate and cache savings of this {r['n_docs']}-document sample hold at "
                 f"{self.documents_per_night} documents a night"]
        if r["accuracy_high"] < self.accuracy_floor:
            extra.append(f"accuracy floor {self.accuracy_floor:.0%} NOT met (upper 95% bound {r['accuracy_high']:.0%})")
        cost = {"cost": f"${p.total_cost_usd:,.2f} a night ({p.cost_per_document_usd * 1e6:.3g} µ$/doc)",
                "total_cost_usd": p.total_cost_usd}
        if is_batch:
            hours, why = batch_api_hours(
                self.documents_per_night, concurrency_limit=self.concurrency_limit,
                window_h=r.get("batch_window_h"), turnaround_s=r.get("turnaround_s"), n_measured=int(r["n_docs"]),
                endpoint_concurrency=r.get("batch_concurrency"))
            fits = "fits" if hours <= self.window_hours else "does NOT fit"
            extra.append(f"batch API turnaround: {why}")
            return {"time": f"{hours:,.1f} h ({fits} the {self.window_hours:g} h window)", **cost,
                    "wall_time_h": hours, "assumptions": p.assumptions[:3] + extra}
        fits = "fits" if p.fits_window else "does NOT fit"
        return {"time": f"{p.wall_time_s / 3600:,.1f} h at concurrency {p.concurrency_limit} ({fits} the "
                        f"{self.window_hours:g} h window; needs >= {p.min_concurrency_to_fit})",
                **cost, "wall_time_h": p.wall_time_s / 3600, "assumptions": p.assumptions + extra}


class PrototypingScenario(_ScenarioBase):
    """A team building on the model: low volume, capability and ease of integration first."""

    kind: ClassVar[str] = "prototyping"
    axis_metric: ClassVar[dict[str, str]] = {**_SHARED_AXES, "cost": "monthly_cost_usd", "accuracy": "qa_net_score"}
    cost_unit: ClassVar[str] = "USD per month"
    error_experiments: ClassVar[tuple[str, ...]] = ("hallucination", "latency")
    unit_families: ClassVar[tuple[str, ...]] = ("items", "prompts")

    prompt_set: str | None = Field(None, description="prompt set that stands for the prototype's use")
    monthly_requests: int = Field(gt=0, description="requests per month")
    quality_floor: float = Field(ge=0, le=1, description="minimum QA F-score on answerable questions")
    self_hosted: Literal["always_on", "busy_time"] = Field(
        "always_on", description="self-hosted cost: machines kept up all month (a prototype answers whenever "
                                 "asked), or only the busy machine time")

    @model_validator(mode="after")
    def _floor_is_constraint(self) -> PrototypingScenario:
        self._require("qa_f_score", min=self.quality_floor)
        return self

    def task_metrics(self, ev: Evidence, draws: Draws, label: str, contender: Contender | None,
                     shared: dict[str, Metric], machine_hour_usd: float) -> dict[str, Metric]:
        return axes.monthly_cost(ev, draws, shared, label, contender, monthly_requests=self.monthly_requests,
                                 machine_hour_usd=machine_hour_usd, self_hosted=self.self_hosted)

    def projection_basis(self) -> str:
        return f"{self.monthly_requests:,} requests a month"

    def self_hosted_basis(self) -> str:
        return "kept up all month" if self.self_hosted == "always_on" else "busy time"

    def experiment_inputs(self) -> dict[str, dict[str, Any]]:
        """Its qa task's questions are the hallucination experiment's."""
        if self.task is None or self.task.type != "qa":
            return super().experiment_inputs()
        return {"hallucination": {"datasets": f"{SCENARIO_PREFIX}{self.name}"}}

    def lever_projection(self, r: Mapping[str, Any], price: Price, is_local: bool, machine_hour_usd: float,
                         strategy: str) -> dict[str, Any]:
        pp = project_prototyping(self.monthly_requests, float(r["cost_per_doc_usd"]))
        busy_h = self.monthly_requests * float(r["busy_per_doc_s"]) / 3600
        extra = [f"machine busy {busy_h:.2f} h a month at the measured busy time per document"]
        if is_local:
            extra.append(f"only busy machine time is charged; an always-on machine costs "
                         f"${machine_hour_usd * 730:,.0f} a month regardless")
        return {"time": f"{busy_h:.2f} h busy/month", "cost": f"${pp.monthly_cost_usd:,.4g}/month",
                "monthly_cost_usd": pp.monthly_cost_usd, "assumptions": pp.assumptions + extra}


#: The kinds, registered once (a new kind is one class here): a scenarios file's `kind` names one.
Scenario = RealtimeScenario | BatchScenario | PrototypingScenario
KINDS: dict[str, type[Scenario]] = {cls.kind: cls for cls in get_args(Scenario)}


class ScenarioSet(Mapping[str, Scenario]):
    """Scenarios by name; an unknown name raises and lists the valid ones."""

    def __init__(self, scenarios: Mapping[str, Scenario], source: str = "<memory>") -> None:
        self.source = source
        self._by_name = dict(scenarios)

    def __getitem__(self, name: str) -> Scenario:
        return lookup("scenario", name, self._by_name)

    def __iter__(self) -> Iterator[str]:
        return iter(self._by_name)

    def __len__(self) -> int:
        return len(self._by_name)


def _fields_at(kind: str, loc: tuple[int | str, ...]) -> list[str]:
    if "hard_constraints" in loc:
        return list(Constraint.model_fields)
    if "task" in loc:
        return list(Task.model_fields)
    if "slo" in loc:
        return list(SloSpec.model_fields)
    if "chunking" in loc:
        return list(ChunkingSpec.model_fields)
    return [f for f in KINDS[kind].model_fields if f != "name"] + ["kind"]


def load_scenarios(path: str | Path | None = None) -> ScenarioSet:
    """Load and validate a scenarios file; any mistake raises ConfigError naming file and field."""
    p = Path(path) if path is not None else workspace.current().scenarios_file
    src = str(p)
    data = load_sections(p, ("scenarios",), "a 'scenarios' mapping")
    entries = data.get("scenarios")
    if not isinstance(entries, dict) or not entries:
        raise ConfigError(src, "scenarios", "must be a non-empty mapping of name → scenario")
    out: dict[str, Scenario] = {}
    for name, entry in entries.items():
        where = f"scenarios.{name}"
        if not isinstance(entry, dict):
            raise ConfigError(src, where, "each scenario must be a mapping")
        kind = entry.get("kind")
        cls = KINDS.get(kind) if isinstance(kind, str) else None
        if cls is None:
            raise ConfigError(src, f"{where}.kind", f"unknown kind {kind!r}; valid: {', '.join(KINDS)}")
        try:
            out[str(name)] = cls.model_validate({"name": str(name), **entry})
        except ValidationError as exc:
            raise validation_error(exc, src, where, functools.partial(_fields_at, str(kind))) from None
    return ScenarioSet(out, source=src)
