"""The workspace: the folder of the user's own files that a run reads, and where its results go.

A workspace holds `contenders.yaml`, `scenarios.yaml`, `data/` (the user's messages, documents,
questions and prompts, as JSONL or CSV: `workbench.datafiles`), optionally `notebooks/` (edited
copies of the experiment notebooks; a notebook not there comes from the package) and `results/`
(one folder per run). `workbench init DIR` writes one from the bundled example.

Which workspace, first match wins — the one precedence chain:
1. `--workspace DIR` on the command line (the CLI exports it as `$WORKBENCH_WORKSPACE`, so the
   notebook kernels a run starts see the same one);
2. `$WORKBENCH_WORKSPACE`;
3. the nearest folder at or above the current directory that holds both `contenders.yaml` and
   `scenarios.yaml` (a notebook opened in `DIR/notebooks/` finds `DIR`);
4. the bundled example: in a source checkout its `experiments/` folder (results in the checkout's
   `results/`: what `make run` runs), in an installed package the copy shipped inside it — whose
   runs go to `./results` of the current directory, never into the installed package.

Relative paths in a workspace's files resolve against its root, never against the directory a
notebook kernel happens to run in.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from workbench.errors import ConfigError

__all__ = [
    "CONTENDERS_FILE",
    "SCENARIOS_FILE",
    "WORKSPACE_ENV",
    "Workspace",
    "bundled",
    "current",
    "find",
    "in_force",
]

WORKSPACE_ENV = "WORKBENCH_WORKSPACE"
CONTENDERS_FILE = "contenders.yaml"
SCENARIOS_FILE = "scenarios.yaml"

_PACKAGE = Path(__file__).resolve().parent
#: A source checkout: the package's parent holds the bundled example and the notebooks.
_CHECKOUT = _PACKAGE.parent


@dataclass(frozen=True)
class Workspace:
    """Where a run's inputs are and where its results go."""

    root: Path
    results_dir: Path
    #: The notebooks that run when the workspace has none of its own (the package's).
    packaged_notebooks: Path
    kind: Literal["workspace", "example"] = "workspace"

    @property
    def contenders_file(self) -> Path:
        return self.root / CONTENDERS_FILE

    @property
    def scenarios_file(self) -> Path:
        return self.root / SCENARIOS_FILE

    @property
    def data_dir(self) -> Path:
        return self.root / "data"

    @property
    def notebooks_dir(self) -> Path:
        """The workspace's own notebooks folder (it may not exist: then the packaged ones run)."""
        return self.root / "notebooks" if self.kind == "workspace" else self.packaged_notebooks

    def notebook(self, name: str) -> Path:
        """The workspace's copy of a notebook if it has one, else the packaged one."""
        own = self.notebooks_dir / name
        return own if own.exists() else self.packaged_notebooks / name

    def resolve(self, path: str | Path) -> Path:
        """A path named in one of the workspace's files or parameters: relative ones against the root."""
        p = Path(path).expanduser()
        return p if p.is_absolute() else self.root / p

    def describe(self) -> str:
        return f"{self.root} ({'bundled example' if self.kind == 'example' else 'workspace'})"


def _is_workspace(d: Path) -> bool:
    return (d / CONTENDERS_FILE).is_file() and (d / SCENARIOS_FILE).is_file()


def bundled() -> Workspace:
    """The bundled example: the checkout's `experiments/`, else the copy inside the installed package."""
    if (_CHECKOUT / "experiments" / CONTENDERS_FILE).is_file() and (_CHECKOUT / "notebooks").is_dir():
        return Workspace(_CHECKOUT / "experiments", _CHECKOUT / "results", _CHECKOUT / "notebooks", "example")
    shipped = _PACKAGE / "example"
    return Workspace(shipped, Path.cwd() / "results", shipped / "notebooks", "example")


def find(path: str | Path) -> Workspace:
    """The workspace at `path` (a folder with contenders.yaml and scenarios.yaml); else a ConfigError."""
    root = Path(path).expanduser().resolve()
    if not root.is_dir():
        raise ConfigError(str(root), None, "no such folder (create one with `workbench init DIR`)")
    if not _is_workspace(root):
        missing = [f for f in (CONTENDERS_FILE, SCENARIOS_FILE) if not (root / f).is_file()]
        raise ConfigError(str(root), None, f"not a workspace: no {' or '.join(missing)} "
                                           "(create one with `workbench init DIR`)")
    ex = bundled()
    if root == ex.root:
        return ex
    return Workspace(root, root / "results", ex.packaged_notebooks)


@contextlib.contextmanager
def in_force(root: str | Path | None) -> Iterator[None]:
    """The workspace at `root` in force while the block runs (`$WORKBENCH_WORKSPACE`, which the
    notebook kernels a run starts inherit), the environment restored after; None changes nothing."""
    before = os.environ.get(WORKSPACE_ENV)
    if root is not None:
        os.environ[WORKSPACE_ENV] = str(find(root).root)
    try:
        yield
    finally:
        if before is None:
            os.environ.pop(WORKSPACE_ENV, None)
        else:
            os.environ[WORKSPACE_ENV] = before


def current(start: str | Path | None = None) -> Workspace:
    """The workspace in force (see the module docstring for the order)."""
    env = os.environ.get(WORKSPACE_ENV)
    if env:
        return find(env)
    here = Path(start or Path.cwd()).resolve()
    for d in (here, *here.parents):
        if _is_workspace(d):
            return find(d)
    return bundled()
