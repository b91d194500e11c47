"""Scenarios file: the shipped one loads, and every mistake names file, field and reason."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from workbench.analysis.scenarios import AXES, DEFAULT_SCENARIOS_FILE, BatchScenario, RealtimeScenario, load_scenarios
from workbench.errors import ConfigError, UnknownNameError


def test_shipped_file_loads() -> None:
    s = load_scenarios()
    assert set(s) == {"routing", "batch_annotation", "prototyping"}
    routing = s["routing"]
    assert isinstance(routing, RealtimeScenario)
    assert routing.slo_p95_e2e_s == 0.100 and routing.target_qps == 10000 and routing.prompt_set == "routing"
    assert any(c.metric == "e2e_p95" and c.max == 0.100 for c in routing.hard_constraints)
    assert any(c.metric == "route_accuracy" and c.min == routing.accuracy_floor for c in routing.hard_constraints)
    assert routing.latency_ref_s == routing.slo_p95_e2e_s  # 0 in the file: the SLO
    batch = s["batch_annotation"]
    assert isinstance(batch, BatchScenario)
    assert batch.documents_per_night == 2_000_000 and batch.window_hours == 8
    assert any(c.metric == "annotation_accuracy" and c.min == batch.accuracy_floor for c in batch.hard_constraints)
    w = batch.normalized_weights
    assert w["cost"] + w["accuracy"] > 0.5
    proto = s["prototyping"].normalized_weights
    assert proto["hallucination"] + proto["accuracy"] > 0.5
    assert any(c.metric == "qa_f_score" for c in s["prototyping"].hard_constraints)
    for sc in s.values():
        assert set(sc.normalized_weights) == set(AXES)
        assert sum(sc.normalized_weights.values()) == pytest.approx(1.0)
    with pytest.raises(UnknownNameError, match="valid: batch_annotation"):
        s["nope"]


def _write(tmp_path: Path, mutate: object) -> Path:
    data = yaml.safe_load(DEFAULT_SCENARIOS_FILE.read_text())
    mutate(data)  # type: ignore[operator]
    p = tmp_path / "scenarios.yaml"
    p.write_text(yaml.safe_dump(data))
    return p


def _set(path: str, value: object, delete: bool = False) -> object:
    def mutate(data: dict[str, object]) -> None:
        node: object = data
        keys = path.split(".")
        for k in keys[:-1]:
            node = node[int(k)] if isinstance(node, list) else node[k]  # type: ignore[index]
        if delete:
            del node[keys[-1]]  # type: ignore[attr-defined]
        else:
            node[keys[-1]] = value  # type: ignore[index]

    return mutate


@pytest.mark.parametrize(
    ("path", "value", "delete", "field", "reason"),
    [
        (
            "scenarios.routing.weights.speed",
            1.0,
            False,
            "scenarios.routing.weights",
            "unknown axis 'speed'; valid:",
        ),
        (
            "scenarios.routing.weights",
            {"latency": 0, "cost": 0},
            False,
            "scenarios.routing.weights",
            "sum to > 0",
        ),
        (
            "scenarios.routing.weights.cost",
            -1,
            False,
            "scenarios.routing.weights.cost",
            "greater than or equal",
        ),
        ("scenarios.routing.target_qps", 0, False, "scenarios.routing.target_qps", "greater than 0"),
        ("scenarios.routing.slo_p95_e2e_s", None, True, "scenarios.routing",
         "give slo ({metric, percentile, max_s}) or slo_p95_e2e_s, one of them"),
        ("scenarios.routing.slo", {"metric": "ttft", "percentile": 97, "max_s": 0.3}, False,
         "scenarios.routing.slo.percentile", "Input should be 50, 90, 95 or 99"),
        ("scenarios.routing.qps", 5, False, "scenarios.routing.qps", "unknown field; valid:"),
        ("scenarios.routing.slo_p95_e2e_s", 0.2, False, "scenarios.routing", "disagrees"),
        ("scenarios.routing.kind", "streaming", False, "scenarios.routing.kind", "valid: realtime, batch"),
        (
            "scenarios.batch_annotation.accuracy_floor",
            1.5,
            False,
            "scenarios.batch_annotation.accuracy_floor",
            "less than or equal",
        ),
        (
            "scenarios.batch_annotation.hard_constraints.0.metric",
            "acc",
            False,
            "scenarios.batch_annotation.hard_constraints.0.metric",
            "unknown metric 'acc'",
        ),
        (
            "scenarios.batch_annotation.hard_constraints.0.maxx",
            1,
            False,
            "scenarios.batch_annotation.hard_constraints.0.maxx",
            "unknown field; valid: metric, max, min",
        ),
        (
            "scenarios.prototyping.monthly_requests",
            "lots",
            False,
            "scenarios.prototyping.monthly_requests",
            "valid integer",
        ),
        ("extra", 1, False, "extra", "unknown top-level field"),
    ],
)
def test_invalid_cases_name_file_field_reason(
    tmp_path: Path, path: str, value: object, delete: bool, field: str, reason: str
) -> None:
    p = _write(tmp_path, _set(path, value, delete))
    with pytest.raises(ConfigError) as ei:
        load_scenarios(p)
    err = ei.value
    assert err.path == str(p)
    assert err.field == field
    assert reason in err.reason


def test_yaml_syntax_error_and_missing_file(tmp_path: Path) -> None:
    bad = tmp_path / "s.yaml"
    bad.write_text("scenarios: [unclosed\n")
    with pytest.raises(ConfigError, match="invalid YAML"):
        load_scenarios(bad)
    with pytest.raises(ConfigError, match="cannot read"):
        load_scenarios(tmp_path / "missing.yaml")


def test_constraint_has_three_outcomes_on_the_interval() -> None:
    from workbench.analysis.evidence import Metric
    from workbench.analysis.scenarios import Constraint

    slo = Constraint(metric="e2e_p95", max=0.1)
    assert slo.status(Metric(0.08, 0.07, 0.09)) == "pass"
    assert slo.status(Metric(0.12, 0.11, 0.13)) == "fail"
    assert slo.status(Metric(0.09, 0.07, 0.11)) == "inconclusive"
    assert slo.status(Metric(0.09, 0.07, float("nan"))) == "inconclusive"  # no upper bound: cannot pass
    # unmeasured is neither a pass nor a fail: nothing is known either way
    assert slo.status(None) == "inconclusive" and slo.text == "E2E p95 ≤ 100 ms"
    assert slo.status(Metric(float("nan"))) == "inconclusive"
    floor = Constraint(metric="route_accuracy", min=0.8)
    assert floor.status(Metric(0.8125, 0.70, 0.89)) == "inconclusive"  # 52/64 passes only as a point
    assert floor.text == "routing accuracy ≥ 80%"


def test_utilities_are_absolute_and_bounded() -> None:
    routing = load_scenarios()["routing"]
    assert routing.utility("latency", [0.0, 0.1, 0.3])[1] == pytest.approx(0.5)  # ½ at the reference (the SLO)
    assert list(routing.utility("accuracy", [0.0, 0.5, float("nan")])) == [0.0, 0.5, 0.0]
    assert routing.utility("cost", [float("inf")])[0] == 0.0


def test_a_kind_owns_only_what_it_needs_the_rest_is_defaulted() -> None:
    """The optional behaviour of a kind has defaults: a prototyping scenario projects no lever
    through a realtime SLO, and a realtime one annotates nothing; the registry is the classes."""
    from workbench.analysis.scenarios import KINDS, PrototypingScenario

    assert set(KINDS) == {"realtime", "batch", "prototyping"}
    sc = load_scenarios(DEFAULT_SCENARIOS_FILE)
    kinds = {s.kind: s for s in sc.values()}
    assert kinds["prototyping"].latency_objective is None and kinds["realtime"].latency_objective is not None
    assert kinds["realtime"].annotation_task() is None and not kinds["realtime"].asynchronous
    assert kinds["batch"].asynchronous and kinds["batch"].experiment_inputs() == {}
    assert "latency" in kinds["realtime"].experiment_inputs()
    base = PrototypingScenario.__mro__[1]
    assert base.lever_projection(kinds["prototyping"], {}, None, False, 0.1, "naive") is None  # type: ignore[arg-type]


def test_a_batch_task_that_is_not_classify_is_refused_at_load(tmp_path: Path) -> None:
    bad = tmp_path / "scenarios.yaml"
    bad.write_text(yaml.safe_dump({"scenarios": {"night": {
        "kind": "batch", "description": "d", "weights": {"cost": 1}, "cost_ref_usd": 1, "documents_per_night": 10,
        "window_hours": 8, "accuracy_floor": 0.5, "concurrency_limit": 2,
        "task": {"type": "qa", "data": "x.jsonl"}}}}))
    with pytest.raises(ConfigError, match="use type classify"):
        load_scenarios(bad)
