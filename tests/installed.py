"""The tool as a user installs it: the project's wheel in a fresh venv, with no checkout on the path.

The venv gets the wheel only (`--no-deps`); its dependencies come from this environment's
site-packages through a .pth line, which loads no editable finder — so `import workbench` there
is the wheel's, and a file missing from the wheel fails the tests that use it — and nbconvert's
templates are linked where an install of it would put them.
"""

from __future__ import annotations

import os
import subprocess
import sys
import sysconfig
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Installed:
    python: Path
    package: Path  # the installed workbench/ folder
    env: dict[str, str]  # this environment without PYTHONPATH or a workspace

    @property
    def workbench(self) -> list[str]:
        return [str(self.python), "-m", "workbench.cli"]

    def files(self) -> list[str]:
        return sorted(str(p) for p in self.package.rglob("*") if "__pycache__" not in p.parts)

    def run(self, cmd: list[str], cwd: Path, timeout: float = 900) -> subprocess.CompletedProcess[str]:
        return run(cmd, cwd, self.env, timeout)


def run(cmd: list[str], cwd: Path, env: dict[str, str], timeout: float = 900) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, f"{cmd}: {proc.stdout[-3000:]}\n{proc.stderr[-4000:]}"
    return proc


def install(tmp: Path) -> Installed:
    """Build the wheel and install it into a fresh venv under `tmp`."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "WORKBENCH_WORKSPACE")}
    dist = tmp / "dist"
    run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(dist), str(ROOT)],
        tmp, env)
    wheel = next(dist.glob("llm_workbench-*.whl"))
    venv = tmp / "venv"
    run([sys.executable, "-m", "venv", "--without-pip", str(venv)], tmp, env)
    py = venv / "bin" / "python"
    site = Path(run([str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], tmp,
                    env).stdout.strip())
    (site / "deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    run([sys.executable, "-m", "pip", "--python", str(py), "install", "--no-deps", "-q", str(wheel)], tmp, env)
    # nbconvert's templates are data files its install puts under <prefix>/share/jupyter, which a
    # .pth line does not bring: link them as an install of nbconvert into this venv would place
    # them (only them: the venv's kernel stays its own python, not a kernelspec of this one)
    shared = venv / "share" / "jupyter"
    shared.mkdir(parents=True)
    (shared / "nbconvert").symlink_to(Path(sys.prefix) / "share" / "jupyter" / "nbconvert")
    return Installed(py, site / "workbench", env)
