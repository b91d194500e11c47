"""Every repository path a doc names exists: the README, the bench notes, the Makefile and every
module's docstrings and comments. A path that moved (a module into `measure/`, a test into a
folder) keeps pointing a reader at nothing unless a test notices.

Not checked: `results/...` (what a run writes) and `workbench/example` (the wheel's name for the
checkout's experiments/, mapped in pyproject.toml)."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PATH = re.compile(r"(?<![\w./-])((?:tests|workbench|notebooks|bench|experiments)/[\w./-]*\w)")
NOT_FILES = ("workbench/example",)


def _named_paths(text: str) -> list[tuple[int, str]]:
    out = []
    for m in PATH.finditer(text):
        path = m.group(1)
        if not path.startswith(NOT_FILES):
            out.append((text.count("\n", 0, m.start()) + 1, path))
    return out


def test_every_path_a_doc_names_exists() -> None:
    docs = [ROOT / "README.md", ROOT / "bench" / "README.md", ROOT / "Makefile",
            *sorted((ROOT / "workbench").rglob("*.py")), *sorted((ROOT / "bench").glob("*.py"))]
    missing = [f"{doc.relative_to(ROOT)}:{line}: {path}" for doc in docs
               for line, path in _named_paths(doc.read_text(encoding="utf-8")) if not (ROOT / path).exists()]
    assert not missing, "paths that do not exist:\n" + "\n".join(missing)


def test_the_check_sees_a_path_that_moved() -> None:
    assert _named_paths("see tests/test_http11.py and `workbench/example/`") == [(1, "tests/test_http11.py")]
    assert not (ROOT / "tests" / "test_http11.py").exists()
