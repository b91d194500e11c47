"""The concurrency notebook end to end on both embedded models, with tiny parameters."""

from __future__ import annotations

import json
from pathlib import Path

import nbformat
import pytest

from workbench.experiments import get_experiment
from workbench.results import read_manifest
from workbench.runner import run_experiments


@pytest.mark.notebook
@pytest.mark.local_models
@pytest.mark.slow
def test_concurrency_notebook(local_endpoints: dict[str, str], tmp_path: Path) -> None:
    params = {"levels": "1,2,3", "requests_per_level": 3, "max_tokens": 4, "rehearse_limit": 1,
              "rehearse_concurrency": 3, "rehearse_requests": 4, "max_duration_per_level_s": 60.0,
              "ramp_s": 0.2, "confirm_requests": 4}
    run = run_experiments([get_experiment("concurrency")], out_dir=tmp_path / "run", params=params,
                          log=lambda _: None)
    rows = [json.loads(line) for line in (run.path / "concurrency.jsonl").read_text().splitlines()]
    sweep = [r for r in rows if r["phase"] == "sweep"]
    assert len(sweep) == 2 * (3 + 3 + 3)  # two contenders, max(3, N) requests at N = 1, 2, 3
    assert {r["concurrency"] for r in sweep} == {1, 2, 3}
    assert all(r["load_profile"] == "closed" and "scheduled_s" in r for r in sweep)
    assert {r["ramp_s"] for r in sweep if r["concurrency"] > 1} == {0.2}  # worker starts spread
    # the client's own pre-wire time is on every record and summarised per level
    assert all(r["send_delay_s"] is not None and r["send_delay_s"] >= 0 for r in sweep if r["status"] == "ok")
    levels = (run.path / "concurrency_levels.csv").read_text().splitlines()
    assert "send_delay_p99" in levels[0].split(",")
    reh = [r for r in rows if r["phase"] == "rehearsal"]
    assert {r["mitigation"] for r in reh} == {"none", "client_limit", "backoff", "queue"}
    assert any(r["error_class"] == "rate_limited" for r in reh if r["mitigation"] == "none")
    nb = nbformat.read(run.path / "concurrency.ipynb", as_version=4)
    text = "\n".join(str(o.get("text", "")) + str(o.get("data", {}).get("text/plain", ""))
                     for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", []))
    assert "knee at concurrency" in text
    assert "residual degrees of freedom" in text
    assert (run.path / "concurrency_sweep.png").exists()
    assert (run.path / "concurrency_rehearsal.csv").exists()
    # the server's own view: busy slots and its queue, sampled from /metrics, beside the client's
    flight = (run.path / "concurrency_in_flight.csv").read_text().splitlines()[0].split(",")
    assert {"client_in_flight_mean", "server_requests_processing_mean", "server_requests_deferred_mean"} <= set(flight)
    assert (run.path / "concurrency_confirm.csv").exists()  # the per-replica rate, checked open-loop
    assert {r["phase"] for r in rows} >= {"warmup", "sweep", "rehearsal"}
    # whether other processes kept the machine busy: per level, per experiment in the manifest, in words
    loadgen = json.loads((run.path / "concurrency_loadgen.json").read_text())
    assert all(r["machine"]["busy"] in (True, False) and r["machine"]["foreign_cpu_cores"] >= 0 for r in loadgen)
    assert read_manifest(run.path)["experiments"]["concurrency"]["machine"]["busy"] in (True, False)
    assert "the machine was" in text  # "quiet in every level" or "busy" per level


def _outputs(nb: nbformat.NotebookNode) -> list[tuple[str, ...]]:
    """Per code cell, the kinds of output it showed (text, a table, an image) — not the numbers."""
    return [tuple(sorted({o.get("output_type", "") + ":" + ",".join(sorted(o.get("data", {}))) for o in c.outputs}))
            for c in nb.cells if c.cell_type == "code"]


@pytest.mark.notebook
@pytest.mark.local_models
@pytest.mark.slow
def test_concurrency_notebook_two_shards_same_tables_and_plots(local_endpoints: dict[str, str],
                                                               tmp_path: Path) -> None:
    """shards=2, backend=processes against an embedded model: the tables (columns, levels, n per
    level), the plots and the notebook's outputs are those of one shard at the same parameters."""
    small = {"contenders": "gemma-3-270m", "levels": "1,2", "requests_per_level": 2, "max_tokens": 4,
             "confirm_requests": 2, "rehearse_rate_limit": False, "max_duration_per_level_s": 60.0}
    runs = {}
    for shards, backend in ((1, "auto"), (2, "processes")):
        runs[shards] = run_experiments([get_experiment("concurrency")], out_dir=tmp_path / f"s{shards}",
                                       params={**small, "shards": shards, "backend": backend}, log=lambda _: None)
    one, two = runs[1].path, runs[2].path
    rows = {k: [json.loads(line) for line in (p / "concurrency.jsonl").read_text().splitlines()]
            for k, p in ((1, one), (2, two))}
    sweep = {k: sorted(r["request_id"] for r in rs if r["phase"] == "sweep") for k, rs in rows.items()}
    assert sweep[1] == sweep[2] and len(sweep[2]) == len(set(sweep[2])) == 4  # same ids, each once
    assert {r["shard"] for r in rows[2] if r["phase"] == "sweep"} == {0, 1}
    assert all(r["status"] == "ok" for r in rows[2] if r["phase"] in ("sweep", "confirm"))
    for name in ("concurrency_levels.csv", "concurrency_knee_usl.csv", "concurrency_in_flight.csv"):
        a, b = ((p / name).read_text().splitlines() for p in (one, two))
        assert a[0] == b[0] and len(a) == len(b), name  # same columns, same rows
    lv = {k: (p / "concurrency_levels.csv").read_text().splitlines() for k, p in ((1, one), (2, two))}
    assert [r.split(",")[:3] for r in lv[1][1:]] == [r.split(",")[:3] for r in lv[2][1:]]  # contender, level, n
    for name in ("concurrency_sweep.png", "concurrency_confirm.csv"):
        assert (one / name).exists() and (two / name).exists(), name
    nbs = [nbformat.read(p / "concurrency.ipynb", as_version=4) for p in (one, two)]
    assert _outputs(nbs[0]) == _outputs(nbs[1])
