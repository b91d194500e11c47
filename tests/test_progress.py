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


def test_each_part_counts_against_its_own_plan_and_retries_count_once(tmp_path: Path) -> None:
    """The concurrency run's sweep and rate-limit rehearsal: the rehearsal's 429 attempts once
    counted against the sweep's plan ("682/658 requests")."""
    jsonl = tmp_path / "concurrency.jsonl"
    sweep = [{"request_id": f"c:warmup:{i}", "phase": "warmup", "status": "ok"} for i in range(1)]
    sweep += [{"request_id": f"c:{i}", "phase": "sweep", "status": "ok"} for i in range(2)]
    rehearsal = [  # one logical request retried twice after 429s, one answered at once
        {"request_id": f"c:rl-backoff:0#{a}", "logical_request_id": "c:rl-backoff:0", "phase": "rehearsal",
         "status": "ok" if a == 3 else "error", "error_class": None if a == 3 else "rate_limited"} for a in (1, 2, 3)]
    rehearsal.append({"request_id": "c:rl-none:0", "phase": "rehearsal", "status": "ok"})
    lines: list[str] = []
    with Progress("concurrency", jsonl, {"sweep": 3, "rehearsal": 4}, False, lines.append, poll_s=0.01) as p:
        jsonl.write_text("".join(json.dumps(r) + "\n" for r in sweep + rehearsal))
    assert dict(p.parts) == {"sweep": 3, "rehearsal": 2} and p.done == 5 and p.total == 7
    assert (p.ok, dict(p.errors)) == (5, {"rate_limited": 2})  # outcomes are per record: every attempt
    assert lines[-1].startswith("      [concurrency] sweep 3/3, rehearsal 2/4 requests (ok 5; rate_limited 2)")
    assert "~" in lines[-1]  # two rehearsal requests left, none of the sweep's


def test_the_concurrency_plan_has_the_rehearsal_apart() -> None:
    from workbench.experiments import EXPERIMENTS

    planned = EXPERIMENTS["concurrency"].planned
    assert planned is not None
    params = {"levels": "1,4", "requests_per_level": 8, "shards": 1, "confirm_requests": 2,
              "rehearse_rate_limit": True, "rehearse_requests": 12}
    assert planned(params, 2) == {"sweep": 2 * (1 + 8 + 8 + 2), "rehearsal": 4 * 12}
    assert planned({**params, "rehearse_rate_limit": False}, 2) == 2 * (1 + 8 + 8 + 2)
