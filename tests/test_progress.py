"""The progress of a headless run, read from the records as they are written."""

from __future__ import annotations

import json
import time
from pathlib import Path

from workbench.progress import Progress


def test_counts_records_as_they_land_and_says_so_once_a_minute(tmp_path: Path) -> None:
    jsonl = tmp_path / "latency.jsonl"
    jsonl.write_text(json.dumps({"status": "ok"}) + "\n")  # already there: a resumed run counts what is new
    lines: list[str] = []
    with (Progress("latency", jsonl, 4, False, lines.append, every_s=0.05, poll_s=0.01) as p,
          open(jsonl, "a") as fh):
        for rec in ({"status": "ok"}, {"status": "error", "error_class": "timeout"}, {"status": "ok"}):
            fh.write(json.dumps(rec) + "\n")
            fh.flush()
        fh.write('{"status": "o')  # a torn line waits for its end
        fh.flush()
        time.sleep(0.2)
    assert (p.done, p.ok, dict(p.errors)) == (3, 2, {"timeout": 1})
    assert lines and lines[-1].startswith("      [latency] 3/4 requests (ok 2; timeout 1)")
    assert "s elapsed" in lines[-1] and "left" in lines[-1]


def test_no_file_yet_is_no_progress(tmp_path: Path) -> None:
    lines: list[str] = []
    with Progress("summary", tmp_path / "summary.jsonl", None, False, lines.append, poll_s=0.01):
        time.sleep(0.05)
    assert lines == []
