"""Workload scenarios: what "good" means for one use of a model, as weights and hard limits.

The decision matrix ranks contenders per scenario: hard constraints knock a contender out,
weights over the measured axes rank the rest. A scenario also carries the workload numbers
its cost projection needs (QPS, documents per night, monthly requests); the measured numbers
(latency, throughput, token counts) come from runs, never from this file.

File format: `experiments/scenarios.yaml`, a `scenarios:` mapping of name → scenario with a
`kind` of realtime, batch or prototyping. Unknown fields are errors, reported as
ConfigError(file, field, reason).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from workbench.config import PROJECT_ROOT, load_yaml
from workbench.errors import ConfigError, UnknownNameError

__all__ = [
    "AXES",
    "DEFAULT_SCENARIOS_FILE",
    "METRICS",
    "BatchScenario",
    "Constraint",
    "PrototypingScenario",
    "RealtimeScenario",
    "Scenario",
    "ScenarioSet",
    "load_scenarios",
]

DEFAULT_SCENARIOS_FILE = PROJECT_ROOT / "experiments" / "scenarios.yaml"

#: The decision matrix's axes. "accuracy" is task correctness against gold labels;
#: "hallucination" is the hallucination-risk / capability axis.
AXES: tuple[str, ...] = ("accuracy", "cost", "hallucination", "integration", "latency")

#: Metrics a hard constraint may test, as the analysis notebooks name them.
METRICS: tuple[str, ...] = (
    "accuracy",
    "error_rate",
    "hallucination_rate",
    "p50_e2e_s",
    "p95_e2e_s",
    "p99_e2e_s",
    "p95_ttft_s",
    "cost_per_1k_requests_usd",
    "cost_per_document_usd",
    "batch_wall_time_h",
)

Weight = Annotated[float, Field(ge=0)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Constraint(_Strict):
    """A pass/fail limit on one measured metric: a contender outside it is not ranked."""

    metric: str = Field(description=f"measured metric; one of {', '.join(METRICS)}")
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


class _ScenarioBase(_Strict):
    name: str = Field(description="the scenario's key in the file")
    description: str = Field(description="one line: who uses the model, for what")
    weights: dict[str, Weight] = Field(description=f"relative importance per axis; axes: {', '.join(AXES)}")
    hard_constraints: list[Constraint] = Field(
        default_factory=list, description="limits that disqualify a contender outright"
    )

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


class RealtimeScenario(_ScenarioBase):
    """Online traffic with a latency SLO (e.g. intent routing in front of an assistant)."""

    kind: Literal["realtime"] = "realtime"
    prompt_set: str = Field(description="prompt set under experiments/prompts/ that stands for the traffic")
    target_qps: float = Field(gt=0, description="steady request rate to serve, requests/s")
    slo_p95_e2e_s: float = Field(gt=0, description="p95 end-to-end latency limit, seconds")

    @model_validator(mode="after")
    def _slo_is_constraint(self) -> RealtimeScenario:
        self._require("p95_e2e_s", max=self.slo_p95_e2e_s)
        return self


class BatchScenario(_ScenarioBase):
    """Offline annotation of a nightly document drop within a time window."""

    kind: Literal["batch"] = "batch"
    dataset: str = Field(description="workload folder under experiments/ (documents + labels)")
    documents_per_night: int = Field(gt=0, description="documents to annotate each night")
    window_hours: float = Field(gt=0, le=24, description="hours the batch may take")
    accuracy_floor: float = Field(ge=0, le=1, description="minimum share of documents labelled correctly")
    concurrency_limit: int = Field(ge=1, description="requests in flight at most (quota or machine)")

    @model_validator(mode="after")
    def _floor_is_constraint(self) -> BatchScenario:
        self._require("accuracy", min=self.accuracy_floor)
        return self


class PrototypingScenario(_ScenarioBase):
    """A team building on the model: low volume, capability and ease of integration first."""

    kind: Literal["prototyping"] = "prototyping"
    prompt_set: str | None = Field(None, description="prompt set that stands for the prototype's use")
    monthly_requests: int = Field(gt=0, description="requests per month")


Scenario = RealtimeScenario | BatchScenario | PrototypingScenario
_KINDS: dict[str, type[RealtimeScenario] | type[BatchScenario] | type[PrototypingScenario]] = {
    "realtime": RealtimeScenario,
    "batch": BatchScenario,
    "prototyping": PrototypingScenario,
}


class ScenarioSet(Mapping[str, Scenario]):
    """Scenarios by name; an unknown name raises and lists the valid ones."""

    def __init__(self, scenarios: Mapping[str, Scenario], source: str = "<memory>") -> None:
        self.source = source
        self._by_name = dict(scenarios)

    def __getitem__(self, name: str) -> Scenario:
        try:
            return self._by_name[name]
        except KeyError:
            raise UnknownNameError("scenario", name, self._by_name) from None

    def __iter__(self) -> Iterator[str]:
        return iter(self._by_name)

    def __len__(self) -> int:
        return len(self._by_name)


def _loc(loc: tuple[int | str, ...]) -> str:
    return ".".join(str(p) for p in loc)


def load_scenarios(path: str | Path | None = None) -> ScenarioSet:
    """Load and validate a scenarios file; any mistake raises ConfigError naming file and field."""
    p = Path(path) if path is not None else DEFAULT_SCENARIOS_FILE
    src = str(p)
    data = load_yaml(p)
    if not isinstance(data, dict):
        raise ConfigError(src, None, "expected a mapping with a 'scenarios' mapping")
    unknown = sorted(set(data) - {"scenarios"})
    if unknown:
        raise ConfigError(src, unknown[0], "unknown top-level field; valid: scenarios")
    entries = data.get("scenarios")
    if not isinstance(entries, dict) or not entries:
        raise ConfigError(src, "scenarios", "must be a non-empty mapping of name → scenario")
    out: dict[str, Scenario] = {}
    for name, entry in entries.items():
        where = f"scenarios.{name}"
        if not isinstance(entry, dict):
            raise ConfigError(src, where, "each scenario must be a mapping")
        kind = entry.get("kind")
        model = _KINDS.get(kind) if isinstance(kind, str) else None
        if model is None:
            raise ConfigError(src, f"{where}.kind", f"unknown kind {kind!r}; valid: {', '.join(_KINDS)}")
        fields: dict[str, Any] = {"name": str(name), **entry}
        try:
            out[str(name)] = model.model_validate(fields)
        except ValidationError as exc:
            err = exc.errors()[0]
            loc = _loc(tuple(err["loc"]))
            reason = err["msg"].removeprefix("Value error, ")
            if err["type"] == "extra_forbidden":
                parent: type[BaseModel] = Constraint if "hard_constraints" in err["loc"] else model
                valid = ", ".join(f for f in parent.model_fields if f != "name")
                reason = f"unknown field; valid: {valid}"
            raise ConfigError(src, f"{where}.{loc}" if loc else where, reason) from None
    return ScenarioSet(out, source=src)
