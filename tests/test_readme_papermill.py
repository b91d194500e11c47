"""The README's plain-papermill example runs on a clean clone: the shell block is run as written,
with papermill replaced by a stand-in that, like papermill, fails when the output notebook's
folder does not exist (a clean clone has no `results/manual`)."""

from __future__ import annotations

import re
import stat
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

_STAND_IN = """#!/bin/sh
# papermill INPUT OUTPUT ...: papermill cannot write OUTPUT into a folder that does not exist
[ -f "$1" ] || { echo "no input $1" >&2; exit 2; }
[ -d "$(dirname "$2")" ] || { echo "No such file or directory: $2" >&2; exit 1; }
cp "$1" "$2"
"""


def test_the_readme_papermill_example_runs_on_a_clean_clone(tmp_path: Path) -> None:
    blocks = re.findall(r"```bash\n(.*?)```", (ROOT / "README.md").read_text(encoding="utf-8"), re.S)
    [block] = [b for b in blocks if "bin/papermill" in b]
    (tmp_path / "notebooks").mkdir()
    (tmp_path / "notebooks" / "latency.ipynb").write_text("{}", encoding="utf-8")
    papermill = tmp_path / ".venv" / "bin" / "papermill"
    papermill.parent.mkdir(parents=True)
    papermill.write_text(_STAND_IN, encoding="utf-8")
    papermill.chmod(papermill.stat().st_mode | stat.S_IEXEC)
    done = subprocess.run(["bash", "-ec", block], cwd=tmp_path, capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "results" / "manual" / "latency.ipynb").exists()
