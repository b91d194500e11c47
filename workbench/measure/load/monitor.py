"""The load generator watching itself: is the client, not the server, what limited a run?

A Python client that is short of CPU shows it in two places: the event loop wakes up late
(a 10 ms timer fires 20 ms later, and every response it reads is timestamped that much late),
and the loop's thread burns close to a whole core. `ClientMonitor` samples both during a run;
`ClientOverhead.limited_by_client()` turns them into a plain-language warning.

It also keeps the garbage collector out of the measured window. CPython's cyclic collector stops
the thread while it walks a generation, and in a load run the young generations are full of
in-flight requests (at 512 workers: tasks, coroutines, buffers, records), so even gen-0/1
collections took 10–20 ms and a full one ~120 ms, every response read in the meantime stamped
that much late (closed loop, c=512, streamed, bench/README.md: E2E error p99 98 ms with the
default collector, 15–23 ms with only full collections held off, 2.4–4.3 ms with none). The
request path makes no cyclic garbage (a full collection after 2,048 requests found 0 objects),
so while a monitor runs, automatic collection is off; it is restored, and one collection run,
when the monitor stops — outside the measured window. A safety valve collects anyway if the
tracked objects grow by `GC_MAX_GROWTH` (a very long run, or failures that keep tracebacks);
`ClientOverhead.gc_forced` counts those and `gc_pause_s` is the time they took.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import math
import time
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from typing import Any

from workbench.aio import loop_name

__all__ = ["CPU_SHARE_LIMIT", "GC_MAX_GROWTH", "LAG_P99_LIMIT_S", "ClientMonitor", "ClientOverhead"]

#: Loop lag p99 above this means response timestamps may be late by as much: the client limited.
LAG_P99_LIMIT_S = 0.005
#: The loop thread using more than this share of one core leaves no headroom for reading responses.
CPU_SHARE_LIMIT = 0.80
#: Net growth of GC-tracked objects (`gc.get_count()[0]` with collection off) that forces a
#: collection during a run: ~100–300 MB of small objects.
GC_MAX_GROWTH = 1_000_000

_gc_holders = 0  # monitors running now (runs may overlap in one loop)
_gc_was_enabled = True


def _hold_gc() -> None:
    global _gc_holders, _gc_was_enabled
    if _gc_holders == 0:
        _gc_was_enabled = gc.isenabled()
        gc.disable()
    _gc_holders += 1


def _release_gc() -> None:
    global _gc_holders
    _gc_holders -= 1
    if _gc_holders == 0 and _gc_was_enabled:
        gc.collect()
        gc.enable()


@dataclass(frozen=True)
class ClientOverhead:
    """What the client's own event loop went through during one run."""

    interval_s: float
    n_samples: int
    loop_lag_p50_s: float
    loop_lag_p99_s: float
    loop_lag_max_s: float
    cpu_s: float  # CPU time of the event loop's thread
    wall_s: float
    cpu_share: float  # cpu_s / wall_s: 1.0 = one core fully busy
    notes: list[str] = field(default_factory=list)
    gc_forced: int = 0  # collections the safety valve ran inside the run
    gc_pause_s: float = 0.0  # time those took (the loop was stopped for it)
    loop: str = ""  # the event loop that timed the run: uvloop or asyncio (workbench.aio)

    def limited_by_client(
        self, lag_p99_limit_s: float = LAG_P99_LIMIT_S, cpu_share_limit: float = CPU_SHARE_LIMIT
    ) -> list[str]:
        """Reasons to distrust a run's latencies (empty: the client kept up)."""
        reasons = []
        if self.loop_lag_p99_s > lag_p99_limit_s:
            reasons.append(
                f"event-loop lag p99 {self.loop_lag_p99_s * 1000:.1f} ms > {lag_p99_limit_s * 1000:g} ms"
            )
        if self.cpu_share > cpu_share_limit:
            reasons.append(f"client CPU {self.cpu_share:.0%} of a core > {cpu_share_limit:.0%}")
        if self.gc_forced:
            reasons.append(f"{self.gc_forced} garbage collection(s) inside the run stopped the client for "
                           f"{self.gc_pause_s * 1000:.0f} ms")
        return reasons

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def merge(cls, parts: list[ClientOverhead]) -> ClientOverhead:
        """The shards of one run as one client: the worst loop (lag, CPU share of its core — each
        shard has its own), the CPU and collections summed, the longest wall."""
        if not parts:
            return cls(0.0, 0, math.nan, math.nan, math.nan, 0.0, 0.0, math.nan, ["no shard finished its run"])
        if len(parts) == 1:
            return parts[0]
        return cls(
            interval_s=parts[0].interval_s, n_samples=sum(p.n_samples for p in parts),
            loop_lag_p50_s=_worst(p.loop_lag_p50_s for p in parts),
            loop_lag_p99_s=_worst(p.loop_lag_p99_s for p in parts),
            loop_lag_max_s=_worst(p.loop_lag_max_s for p in parts), cpu_s=sum(p.cpu_s for p in parts),
            wall_s=max(p.wall_s for p in parts), cpu_share=_worst(p.cpu_share for p in parts),
            notes=[f"shard {k}: {n}" for k, p in enumerate(parts) for n in p.notes],
            gc_forced=sum(p.gc_forced for p in parts), gc_pause_s=sum(p.gc_pause_s for p in parts),
            loop="+".join(sorted({p.loop for p in parts})),
        )


class ClientMonitor:
    """Samples event-loop lag every `interval_s` and the loop thread's CPU time, and holds
    automatic garbage collection off from `start()` to `stop()` (see the module docstring).

    Start and stop it from inside the loop being measured. Lag = how late a sleep of
    `interval_s` woke up; CPU is `time.thread_time()` of the loop's thread, which is where
    httpx, the SSE parser and the record writer all run.
    """

    def __init__(self, interval_s: float = 0.010) -> None:
        self.interval_s = interval_s
        self._lags: list[float] = []
        self._task: asyncio.Task[None] | None = None
        self._cpu0 = 0.0
        self._wall0 = 0.0
        self._holding = False
        self._gc_forced = 0
        self._gc_pause_s = 0.0

    async def _sample(self) -> None:
        while True:
            t = time.perf_counter()
            await asyncio.sleep(self.interval_s)
            self._lags.append(max(0.0, time.perf_counter() - t - self.interval_s))
            if gc.get_count()[0] > GC_MAX_GROWTH:
                t = time.perf_counter()
                gc.collect()
                self._gc_forced += 1
                self._gc_pause_s += time.perf_counter() - t

    def start(self) -> None:
        if not self._holding:
            self._holding = True
            _hold_gc()
        self._cpu0 = time.thread_time()
        self._wall0 = time.perf_counter()
        self._task = asyncio.get_running_loop().create_task(self._sample())

    def cancel(self) -> None:
        """Stop sampling and give the collector back, for a run that ended in an exception."""
        if self._task is not None:
            self._task.cancel()
        if self._holding:
            self._holding = False
            _release_gc()

    async def stop(self) -> ClientOverhead:
        cpu = time.thread_time() - self._cpu0
        wall = time.perf_counter() - self._wall0
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._holding:
            self._holding = False
            _release_gc()
        lags = sorted(self._lags)
        notes = [] if lags else ["run shorter than one sampling interval: no lag samples"]
        return ClientOverhead(
            interval_s=self.interval_s,
            n_samples=len(lags),
            loop_lag_p50_s=_quantile(lags, 0.50),
            loop_lag_p99_s=_quantile(lags, 0.99),
            loop_lag_max_s=lags[-1] if lags else math.nan,
            cpu_s=cpu,
            wall_s=wall,
            cpu_share=cpu / wall if wall > 0 else math.nan,
            notes=notes,
            gc_forced=self._gc_forced,
            gc_pause_s=self._gc_pause_s,
            loop=loop_name(),
        )


def _worst(values: Iterable[float]) -> float:
    """The largest value that is a number (NaN: none is)."""
    return max((v for v in values if not math.isnan(v)), default=math.nan)


def _quantile(sorted_values: list[float], q: float) -> float:
    """Nearest-rank quantile (no interpolation): a monitoring figure, not a reported statistic."""
    if not sorted_values:
        return math.nan
    k = min(len(sorted_values) - 1, max(0, math.ceil(q * len(sorted_values)) - 1))
    return sorted_values[k]
