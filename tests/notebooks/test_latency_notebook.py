"""latency.ipynb really executes on the embedded default, through the same runner as `make run`."""

from __future__ import annotations

import json
from pathlib import Path

import nbformat
import pytest

from workbench.experiments import select_experiments
from workbench.results import load_records, read_manifest
from workbench.runner import run_experiments

pytestmark = [pytest.mark.notebook, pytest.mark.local_models, pytest.mark.slow]


def test_latency_notebook_runs_and_writes_its_results(local_endpoints: dict[str, str], tmp_path: Path) -> None:
    out = tmp_path / "run"
    run = run_experiments(select_experiments("latency"), out_dir=out,
                          params={"n_requests": 3, "warmup": 1, "max_tokens": 8}, log=lambda _: None)
    df = load_records(run.path, "latency")
    assert set(df["contender"]) == {"gemma-3-270m", "qwen2.5-coder-0.5b"}
    assert len(df) == 2 * (1 + 1 + 3)
    assert (df["status"] == "ok").all()
    ok = df[df["phase"] == "warm"]
    assert (ok["ttft_s"] < ok["e2e_s"]).all() and (ok["output_tokens"] > 0).all()
    nb = nbformat.read(run.path / "latency.ipynb", as_version=4)
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])]
    assert not [o for o in outputs if o.get("output_type") == "error"]
    assert any("image/png" in o.get("data", {}) for o in outputs), "the ECDF plot is missing"
    assert (run.path / "latency_summary.csv").exists() and (run.path / "latency_ecdf.png").exists()
    manifest = read_manifest(run.path)
    assert manifest["experiments"]["latency"]["parameters"]["n_requests"] == 3
    assert json.dumps(manifest).count("sk-") == 0


def test_failing_cell_names_the_executed_notebook(tmp_path: Path) -> None:
    from workbench.runner import ExperimentFailed

    # (a typo in a prompt set fails before any notebook runs: tests/test_parameters.py)
    with pytest.raises(ExperimentFailed, match=r"(?s)ConfigError.*max_tokens.*executed notebook: .*latency.ipynb"):
        run_experiments(select_experiments("latency"), out_dir=tmp_path / "bad",
                        params={"max_tokens": 0}, log=lambda _: None)
