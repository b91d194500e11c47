"""The installed tool: a wheel carries the bundled example and notebooks, and works from any folder.

The package list in pyproject.toml is explicit (the bundled example is mapped in from the
checkout's experiments/ and notebooks/), so a test holds it to the package's folders.
"""

from __future__ import annotations

import json
import tomllib
from pathlib import Path

import pytest

from tests.installed import Installed

ROOT = Path(__file__).resolve().parents[1]


def test_every_package_folder_is_listed_for_the_wheel() -> None:
    listed = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    folders = {".".join(p.parent.relative_to(ROOT).parts) for p in (ROOT / "workbench").rglob("__init__.py")}
    assert folders <= listed, f"add to [tool.setuptools] packages: {sorted(folders - listed)}"


@pytest.mark.slow
@pytest.mark.local_models
def test_the_wheel_installed_in_a_fresh_venv_runs_a_workspace_of_its_own(installed_tool: Installed,
                                                                        tmp_path: Path) -> None:
    """From a folder outside the checkout: init, validate, run the latency experiment on the
    embedded models (which the installed tool starts itself)."""
    tool = installed_tool
    before = tool.files()
    where = tmp_path / "elsewhere"
    where.mkdir()
    out = tool.run([*tool.workbench, "init", "shop"], where).stdout
    assert "wrote" in out
    ws = where / "shop"
    assert "162 rows" in tool.run([*tool.workbench, "validate"], ws).stdout
    origin = tool.run([str(tool.python), "-c", "import workbench; print(workbench.__file__)"], ws).stdout
    assert origin.startswith(str(tool.package)), origin  # the wheel, not the checkout
    tool.run([*tool.workbench, "run", "--experiments", "latency", "--param", "n_requests=3", "--param", "warmup=0"],
             ws)
    runs = list((ws / "results").iterdir())
    assert len(runs) == 1
    manifest = json.loads((runs[0] / "manifest.json").read_text())
    assert manifest["runner"]["workspace"] == str(ws.resolve())
    records = [json.loads(line) for line in (runs[0] / "latency.jsonl").read_text().splitlines()]
    assert {r["contender"] for r in records} == {"gemma-3-270m", "qwen2.5-coder-0.5b"}
    assert all(r["prompt_id"].startswith("route-") for r in records if r.get("phase") == "warm")
    assert tool.files() == before  # nothing written into the installed package
