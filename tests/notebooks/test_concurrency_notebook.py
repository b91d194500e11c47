"""The concurrency notebook end to end on both embedded models, with tiny parameters."""

from __future__ import annotations

import json
from pathlib import Path

import nbformat
import pytest

from workbench.experiments import get_experiment
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
