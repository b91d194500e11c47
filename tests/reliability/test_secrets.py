"""Secrets: a key set for a contender never reaches the run folder or the console; keys passed
as parameters are refused before anything is written."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import CANARY, KEY_ENV
from workbench.cli import main
from workbench.errors import WorkbenchError
from workbench.experiments import get_experiment
from workbench.runner import run_experiments
from workbench.serve.mock import FaultPlan, MockServer


@pytest.mark.slow
@pytest.mark.notebook
def test_canary_key_is_nowhere_after_a_full_run(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    with MockServer(plan=FaultPlan(sequence=["rate_limit", "http500"])) as srv:
        cfile = tmp_path / "contenders.yaml"
        cfile.write_text(
            "contenders:\n"
            "  - name: canary-contender\n"
            "    api: openai-chat\n"
            "    model: fault-model\n"
            f"    base_url: {srv.base_url}\n"
            f"    api_key_env: {KEY_ENV}\n"
            "    timeout_s: 10\n"
        )
        env = {**os.environ, KEY_ENV: CANARY}
        done = subprocess.run(
            [sys.executable, "-m", "workbench.cli", "run", "--experiments", "latency", "--contenders-file",
             str(cfile), "--out", str(run_dir), "--param=n_requests=3", "--param=warmup=1"],
            capture_output=True, text=True, timeout=600, env=env,
        )
        served = sum(srv.counts.values())
    assert done.returncode == 0, done.stderr[-3000:]
    assert served >= 5  # cold + warmup + 3 warm (+ capability probes): the key was really used
    files = [p for p in run_dir.rglob("*") if p.is_file()]
    assert {"manifest.json", "latency.jsonl", "latency.ipynb"} <= {p.name for p in files}
    leaks = [str(p) for p in files if CANARY.encode() in p.read_bytes()]
    assert not leaks
    assert CANARY not in done.stdout and CANARY not in done.stderr


def test_key_as_parameter_is_refused_by_the_runner_before_any_folder(tmp_path: Path) -> None:
    out = tmp_path / "r"
    with pytest.raises(WorkbenchError, match="looks like a secret") as info:
        run_experiments([get_experiment("latency")], out_dir=out, params={"api_key": CANARY})
    assert CANARY not in str(info.value) and not out.exists()
    with pytest.raises(WorkbenchError, match="holds what looks like an API key"):
        run_experiments([get_experiment("latency")], out_dir=out, params={"note": "sk-" + "a" * 30})
    assert not out.exists()


@pytest.mark.parametrize("param", [f"openai_api_key={CANARY}", "contenders=sk-proj-abcdefghijklmnop"])
def test_key_as_parameter_is_refused_by_the_cli(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                param: str) -> None:
    out = tmp_path / "r"
    assert main(["run", "--experiments", "latency", "--out", str(out), "--param", param]) == 2
    captured = capsys.readouterr()
    assert captured.err.startswith("error: parameter ") and "keys are never parameters" in captured.err
    assert CANARY not in captured.err + captured.out and "sk-proj" not in captured.err
    assert not out.exists()
