"""The installed tool: a wheel carries the bundled example and notebooks, and works from any folder.

The package list in pyproject.toml is explicit (the bundled example is mapped in from the
checkout's experiments/ and notebooks/), so a test holds it to the package's folders.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import sysconfig
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_every_package_folder_is_listed_for_the_wheel() -> None:
    listed = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    folders = {".".join(p.parent.relative_to(ROOT).parts) for p in (ROOT / "workbench").rglob("__init__.py")}
    assert folders <= listed, f"add to [tool.setuptools] packages: {sorted(folders - listed)}"


def _run(cmd: list[str], cwd: Path, env: dict[str, str], timeout: float = 600) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, f"{cmd}: {proc.stdout[-2000:]}\n{proc.stderr[-4000:]}"
    return proc


@pytest.mark.slow
@pytest.mark.local_models
def test_the_wheel_installed_in_a_fresh_venv_runs_a_workspace_of_its_own(tmp_path: Path) -> None:
    """Build the wheel, install it (no dependencies: those come from this environment's
    site-packages through a .pth line, which loads no editable finder), then from a folder outside
    the checkout: init, validate, run the latency experiment on the embedded models."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "WORKBENCH_WORKSPACE")}
    dist = tmp_path / "dist"
    _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(dist), str(ROOT)],
         tmp_path, env)
    wheel = next(dist.glob("llm_workbench-*.whl"))
    venv = tmp_path / "venv"
    _run([sys.executable, "-m", "venv", "--without-pip", str(venv)], tmp_path, env)
    py = venv / "bin" / "python"
    site = Path(_run([str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], tmp_path,
                     env).stdout.strip())
    (site / "deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    _run([sys.executable, "-m", "pip", "--python", str(py), "install", "--no-deps", "-q", str(wheel)], tmp_path, env)
    installed = site / "workbench"
    before = sorted(str(p) for p in installed.rglob("*") if "__pycache__" not in p.parts)

    where = tmp_path / "elsewhere"
    where.mkdir()
    workbench = [str(py), "-m", "workbench.cli"]
    out = _run([*workbench, "init", "bank"], where, env).stdout
    assert "wrote" in out
    ws = where / "bank"
    assert "162 rows" in _run([*workbench, "validate"], ws, env).stdout
    origin = _run([str(py), "-c", "import workbench; print(workbench.__file__)"], ws, env).stdout
    assert origin.startswith(str(installed)), origin  # the wheel, not the checkout
    _run([*workbench, "run", "--experiments", "latency", "--param", "n_requests=3", "--param", "warmup=0"], ws, env)
    runs = list((ws / "results").iterdir())
    assert len(runs) == 1
    manifest = json.loads((runs[0] / "manifest.json").read_text())
    assert manifest["runner"]["workspace"] == str(ws.resolve())
    records = [json.loads(line) for line in (runs[0] / "latency.jsonl").read_text().splitlines()]
    assert {r["contender"] for r in records} == {"gemma-3-270m", "qwen2.5-coder-0.5b"}
    assert all(r["prompt_id"].startswith("route-") for r in records if r.get("phase") == "warm")
    after = sorted(str(p) for p in installed.rglob("*") if "__pycache__" not in p.parts)
    assert after == before  # nothing written into the installed package
