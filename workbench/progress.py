"""Progress you can watch while a notebook runs headless: read from the records as they are written.

The runner executes a notebook in a kernel it cannot see into; what it can see is the
experiment's JSONL, appended and flushed one record at a time. `Progress` tails that file in a
thread and shows requests done / planned, ok and errors by class so far, the rate, the time
elapsed and an estimate of the time left: a live `tqdm` line on a terminal, and one plain line
a minute otherwise (CI logs, `make run | cat`). The planned count is the experiment's own
estimate (`Experiment.planned`); without one only what is done is shown.

An experiment of several parts plans each on its own (`{"sweep": 310, "rehearsal": 48}`): a
record counts against the part named by its `phase`, or against the first part when its phase
is not one of them (the sweep's warm-up and confirmation). What is counted is logical requests
(a record's `logical_request_id`, else its `request_id`), so a retried request's attempts count
once: the rate-limit rehearsal's 429 attempts once pushed a concurrency run to "682/658". `ok`
and the error classes count records, every attempt included.
"""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["Progress"]


@dataclass
class Progress:
    """Tails `jsonl` until `close()`; use as a context manager around one experiment."""

    name: str
    jsonl: Path
    planned: int | Mapping[str, int] | None
    tty: bool
    log: Callable[[str], None] = print
    every_s: float = 60.0
    poll_s: float = 0.5
    done: int = 0
    ok: int = 0
    errors: Counter[str] = field(default_factory=Counter)

    def __post_init__(self) -> None:
        plan = self.planned
        self._plan: dict[str, int] = dict(plan) if isinstance(plan, Mapping) else {"": plan} if plan else {}
        self.parts: Counter[str] = Counter()  # logical requests done, by part
        self._seen: dict[str, set[str]] = {}
        self._offset = self.jsonl.stat().st_size if self.jsonl.exists() else 0  # a resumed run counts what is new
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"progress-{self.name}", daemon=True)
        self._t0 = time.monotonic()
        self._bar: Any = None

    def __enter__(self) -> Progress:
        if self.tty:
            from tqdm import tqdm

            self._bar = tqdm(total=self.total, desc=self.name, unit="req", leave=True, dynamic_ncols=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self._read()
        if self._bar is not None:
            self._update_bar()
            self._bar.close()
        elif self.done:
            self.log(self.line())

    @property
    def total(self) -> int | None:
        """Every part's plan together (None: no plan)."""
        return sum(self._plan.values()) or None

    def line(self) -> str:
        """`[latency] 120/338 requests (ok 118; timeout 2) 2.1 req/s, 57 s elapsed, ~104 s left`; with
        parts, each against its own plan: `[concurrency] sweep 310/310, rehearsal 20/48 requests ...`."""
        elapsed = time.monotonic() - self._t0
        rate = self.done / elapsed if elapsed > 0 else 0.0
        if len(self._plan) > 1:
            counted = ", ".join(f"{part} {self.parts[part]}/{n}" for part, n in self._plan.items())
        else:
            counted = f"{self.done}/{self.total}" if self.total else f"{self.done}"
        errors = "; ".join(f"{k} {v}" for k, v in sorted(self.errors.items()))
        remaining = sum(max(0, n - self.parts[part]) for part, n in self._plan.items())
        left = f", ~{remaining / rate:.0f} s left" if remaining and rate > 0 else ""
        return (f"      [{self.name}] {counted} requests (ok {self.ok}{'; ' + errors if errors else ''}) "
                f"{rate:.1f} req/s, {elapsed:.0f} s elapsed{left}")

    def _count(self, rec: dict[str, Any]) -> None:
        """One record: its logical request against its part's plan (once), its outcome as a record."""
        phase = str(rec.get("phase") or "")
        part = phase if phase in self._plan else next(iter(self._plan), "")
        key = rec.get("logical_request_id") or rec.get("request_id")
        seen = self._seen.setdefault(part, set())
        if key is None or str(key) not in seen:
            if key is not None:
                seen.add(str(key))
            self.parts[part] += 1
            self.done += 1
        if rec.get("status") == "ok":
            self.ok += 1
        else:
            self.errors[str(rec.get("error_class") or "error")] += 1

    def _run(self) -> None:
        last = time.monotonic()
        while not self._stop.wait(self.poll_s):
            self._read()
            if self._bar is not None:
                self._update_bar()
            elif time.monotonic() - last >= self.every_s:
                self.log(self.line())
                last = time.monotonic()

    def _update_bar(self) -> None:
        self._bar.n = self.done
        errors = ", ".join(f"{k} {v}" for k, v in sorted(self.errors.items()))
        self._bar.set_postfix_str(f"ok {self.ok}" + (f", {errors}" if errors else ""), refresh=False)
        self._bar.refresh()

    def _read(self) -> None:
        """Count the complete lines appended since the last read (a torn last line waits)."""
        try:
            with open(self.jsonl, "rb") as fh:
                fh.seek(self._offset)
                chunk = fh.read()
        except FileNotFoundError:
            return
        end = chunk.rfind(b"\n")
        if end < 0:
            return
        self._offset += end + 1
        for raw in chunk[: end + 1].splitlines():
            try:
                rec = json.loads(raw)
            except json.JSONDecodeError:
                continue
            if isinstance(rec, dict):
                self._count(rec)
