"""The package's shape: imports point down or sideways, never up, and never in a cycle.

Layers, lowest first (README "Layout"). A module may import its own layer and the ones below.
Imports under `if TYPE_CHECKING:` are annotations only and are not counted for the layers; every
other import is, at module level or inside a function. Cycles are counted with every import,
type-only ones included.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "workbench"

#: (layer, module prefixes). A module belongs to the first entry whose prefix matches it.
LAYERS: tuple[tuple[int, tuple[str, ...]], ...] = (
    (0, ("workbench.types", "workbench.errors", "workbench.aio", "workbench.metrics", "workbench.children")),
    (1, ("workbench.keys", "workbench.embedded", "workbench.providers", "workbench.datafiles",
         "workbench.workspace", "workbench.images", "workbench.image_tokens", "workbench.imageset",
         "workbench.documents", "workbench.contract_text")),
    (2, ("workbench.config", "workbench.tasks", "workbench.prompts", "workbench.coalesced_prompts",
         "workbench.results", "workbench.pricing", "workbench.hosted_models")),
    (3, ("workbench.measure",)),
    (4, ("workbench.serve", "workbench.analysis")),
    (5, ("workbench.session", "workbench.report")),
    (6, ("workbench.experiments",)),
    (7, ("workbench.runner", "workbench.workspace_files", "workbench.progress",
         "workbench.cli")),
)
#: The package's own `__init__` sits on top. Matched by its exact name, never as a prefix: as a
#: prefix it would put every module in the top layer, a module nobody placed included.
TOP = ("workbench", 7)


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def layer(module: str) -> int:
    if module == TOP[0]:
        return TOP[1]
    for rank, prefixes in LAYERS:
        if any(module == p or module.startswith(p + ".") for p in prefixes):
            return rank
    raise AssertionError(f"{module} is in no layer: add it to LAYERS and to README's Layout")


def _type_checking_lines(tree: ast.Module) -> set[int]:
    lines: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            for child in node.body:
                lines.update(range(child.lineno, (child.end_lineno or child.lineno) + 1))
    return lines


def runtime_imports(path: Path, me: str | None = None, *, type_only_too: bool = False) -> set[str]:
    """The workbench modules `path` (module `me`) imports at run time (with `type_only_too`, also
    under `if TYPE_CHECKING:`), resolved to modules."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    skip = set() if type_only_too else _type_checking_lines(tree)
    me = me or module_name(path)
    package = me if path.name == "__init__.py" else me.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(tree):
        if getattr(node, "lineno", None) in skip:
            continue
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith("workbench"))
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join([*anchor, *([node.module] if node.module else [])])
            if not base.startswith("workbench"):
                continue
            for alias in node.names:
                sub = f"{base}.{alias.name}"
                is_module = (PACKAGE.parent / (sub.replace(".", "/") + ".py")).exists() or (
                    PACKAGE.parent / sub.replace(".", "/")).is_dir()
                found.add(sub if is_module else base)
    found.discard(me)
    return found


def import_graph(type_only_too: bool = False) -> dict[str, set[str]]:
    return {module_name(p): runtime_imports(p, type_only_too=type_only_too) for p in sorted(PACKAGE.rglob("*.py"))}


def test_every_module_has_a_layer() -> None:
    for module in import_graph():
        layer(module)


def test_a_module_nobody_placed_has_no_layer() -> None:
    """The check above can fail: a new module outside every listed prefix is in no layer."""
    assert layer("workbench") == 7 and layer("workbench.cli") == 7 and layer("workbench.serve.mock") == 4
    with pytest.raises(AssertionError, match="workbench.brand_new_module is in no layer"):
        layer("workbench.brand_new_module")


def upward(graph: dict[str, set[str]]) -> list[str]:
    return [f"{m} (layer {layer(m)}) imports {d} (layer {layer(d)})"
            for m, deps in graph.items() for d in sorted(deps)
            if layer(d) > layer(m) and not m.startswith(d + ".")]  # a package's own __init__ is fine


def test_imports_point_down_or_sideways() -> None:
    found = upward(import_graph())
    assert not found, "upward imports:\n" + "\n".join(found)


def test_no_import_cycles() -> None:
    """Type-only imports included: a circle of annotations is still two modules that cannot be
    read, moved or tested one without the other."""
    graph = import_graph(type_only_too=True)
    # A package __init__ that re-exports its children is an edge like any other (importing the
    # package runs them); only a child's import of its own package is left out, as that package
    # is where the child lives, not a module it uses.
    edges = {m: {d for d in deps if not m.startswith(d + ".")} for m, deps in graph.items()}
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(m: str) -> None:
        state[m] = 1
        stack.append(m)
        for d in sorted(edges.get(m, ())):
            if state.get(d) == 1:
                cycle = [*stack[stack.index(d):], d]
                pytest.fail("import cycle: " + " -> ".join(cycle))
            if d not in state:
                visit(d)
        stack.pop()
        state[m] = 2

    for m in sorted(edges):
        if m not in state:
            visit(m)


def test_the_check_sees_an_upward_import_but_not_a_type_only_one(tmp_path: Path) -> None:
    src = tmp_path / "fake.py"
    src.write_text("from typing import TYPE_CHECKING\n"
                   "if TYPE_CHECKING:\n    from workbench.session import Session\n"
                   "def f():\n    from workbench.experiments import latency\n    from . import stats\n")
    deps = runtime_imports(src, "workbench.analysis.fake")
    assert deps == {"workbench.experiments.latency", "workbench.analysis.stats"}
    assert upward({"workbench.analysis.fake": deps}) == [
        "workbench.analysis.fake (layer 4) imports workbench.experiments.latency (layer 6)"]
