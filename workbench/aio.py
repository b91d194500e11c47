"""Running the workbench's async code from anywhere, including a Jupyter cell, on one chosen loop.

The workbench's event loop is asyncio's own unless `WORKBENCH_LOOP=uvloop` and uvloop is installed
(`pip install 'llm-workbench[bench]'`). Why not uvloop by default, although it is the usual fast
choice: measured side by side (bench/README.md, 8 runs on 2 cores) it was not faster for this
client — ahead in 3 runs, behind in the quiet one (5,064 vs 5,473 req/s per core) — and libuv's
timers have millisecond granularity where asyncio's have the monotonic clock's, which a load
generator's schedule and a mock server's timing feel. Everything the workbench does on a loop
(protocols, transports, `start_tls`, timers) runs on both; a load run says which one timed it
(`ClientOverhead.loop`).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import os
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

__all__ = ["LOOP_ENV", "loop_factory", "loop_name", "run", "run_sync"]

T = TypeVar("T")

#: `uvloop` runs the workbench on uvloop (when installed); anything else: asyncio's own loop.
LOOP_ENV = "WORKBENCH_LOOP"


def loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop's loop factory when asked for (`WORKBENCH_LOOP=uvloop`) and installed; None: asyncio's loop."""
    if os.environ.get(LOOP_ENV, "").strip().lower() != "uvloop":
        return None
    try:
        import uvloop
    except ImportError:
        return None
    return uvloop.new_event_loop


def loop_name(loop: asyncio.AbstractEventLoop | None = None) -> str:
    """`uvloop` or `asyncio`: which loop runs (the running one by default)."""
    loop = loop or asyncio.get_running_loop()
    return "uvloop" if type(loop).__module__.startswith("uvloop") else "asyncio"


def run(coro: Coroutine[Any, Any, T]) -> T:
    """`asyncio.run(coro)` on the workbench's loop (`loop_factory`), from code with no running loop."""
    with asyncio.Runner(loop_factory=loop_factory()) as runner:
        return runner.run(coro)


def run_sync(coro: Coroutine[Any, Any, T]) -> T:
    """`run(coro)`; inside a running loop (Jupyter) it runs in a worker thread with a loop of its
    own, so notebooks call experiments like plain functions."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return run(coro)
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(run, coro).result()
