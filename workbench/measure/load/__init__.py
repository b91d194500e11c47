"""Load generation on top of `workbench.measure.probe`: closed-loop workers and open-loop arrivals.

One file per profile (`closed_loop.py`, `open_loop.py`); what they share — bounded runs,
cancelled-at-deadline records, schedule fields, retries — is in `common.py`, and the client's
self-monitoring in `monitor.py`. Every run is bounded in count and in wall time, and every
request sent (or arrival dropped) ends as exactly one record, handed to `on_record` as it
completes so the caller can append it to the run's JSONL immediately. A run takes a
`workbench.measure.target.Target` (build it with `keep_itl=False` for big runs: per-chunk gaps
make records large) and the prompts it cycles through in order.

`run_load(...)` is the synchronous entry point for notebooks (it works inside Jupyter's loop).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from workbench.aio import run_sync
from workbench.measure.load.closed_loop import MAX_WORKERS, closed_loop
from workbench.measure.load.common import LoadResult, OnRecord
from workbench.measure.load.monitor import CPU_SHARE_LIMIT, LAG_P99_LIMIT_S, ClientMonitor, ClientOverhead
from workbench.measure.load.open_loop import ARRIVALS, arrival_offsets, open_loop
from workbench.measure.target import Target
from workbench.types import Prompt

__all__ = [
    "ARRIVALS",
    "CPU_SHARE_LIMIT",
    "LAG_P99_LIMIT_S",
    "MAX_WORKERS",
    "ClientMonitor",
    "ClientOverhead",
    "LoadResult",
    "OnRecord",
    "arrival_offsets",
    "closed_loop",
    "open_loop",
    "run_closed",
    "run_open",
]


def run_closed(target: Target, prompts: Sequence[Prompt], **kwargs: Any) -> LoadResult:
    """`closed_loop(...)` from synchronous code (scripts, notebooks)."""
    return run_sync(closed_loop(target, prompts, **kwargs))


def run_open(target: Target, prompts: Sequence[Prompt], **kwargs: Any) -> LoadResult:
    """`open_loop(...)` from synchronous code (scripts, notebooks)."""
    return run_sync(open_loop(target, prompts, **kwargs))
