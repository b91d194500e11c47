"""Was the machine busy? Other processes' CPU use while a measurement ran.

Latency and throughput of the embedded servers are a measurement of the machine as much as of
the model: on 2 cores a neighbour compiling or running tests takes time slices the servers
needed. `CpuMeter` says how many cores *other* processes kept busy over an interval: the
machine's busy CPU time (`/proc/stat`: user, nice, system, irq, softirq, steal) minus the CPU
time of our own process tree (`/proc/<pid>/stat`: utime, stime, and cutime/cstime for children
that ended and were reaped meanwhile) — this process, its descendants (the embedded servers, the
shard processes, a notebook kernel's children) and any `own_pids` given (servers started by
another process and reused, found by the port they listen on: `listening_pid`). Not ours by this
rule, so counted as other work: Ray workers of a local cluster (they are the raylet's children),
and whatever else the user runs beside — which is the point.

Why not the load average: `os.getloadavg()` counts our own servers and load generator too, so
a sweep at concurrency 8 reads as "busy" on a quiet machine; it is a decaying average (1 minute)
that lags a level of a few seconds; and it counts runnable threads, not CPU taken. It is kept in
the result only as context. Why not the server's own tokens/s against a quiet rate measured at
startup: that rate moves with batch size, prompt length and cache hits, so a slowdown there does
not say whether a neighbour or the workload caused it.

`BUSY_FOREIGN_CORES` is the line: averaged over the interval, other processes used at least a
quarter of a core. Where `/proc` is missing (not Linux) the figures are None and nothing is
called busy or quiet: unknown is said as unknown.
"""

from __future__ import annotations

import contextlib
import math
import os
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["BUSY_FOREIGN_CORES", "CpuMeter", "CpuUse", "busy_warning", "listening_pid"]

#: Other processes' average CPU use (cores) from which an interval counts as busy.
BUSY_FOREIGN_CORES = 0.25
_PROC = Path("/proc")


def _ticks_per_s() -> int:
    try:
        return int(os.sysconf("SC_CLK_TCK"))
    except (ValueError, OSError, AttributeError):
        return 100


def machine_busy_ticks(proc: Path = _PROC) -> int | None:
    """Busy CPU time of every core since boot, in clock ticks (None without /proc)."""
    try:
        first = (proc / "stat").read_text().splitlines()[0].split()
    except (OSError, IndexError):
        return None
    v = [int(x) for x in first[1:]]
    # user nice system idle iowait irq softirq steal [guest guest_nice: already inside user/nice]
    return v[0] + v[1] + v[2] + sum(v[5:8])


def _stat(pid_dir: Path) -> tuple[int, int] | None:
    """(parent pid, utime + stime + cutime + cstime) of one process, or None if it is gone."""
    try:
        text = (pid_dir / "stat").read_text()
    except OSError:
        return None
    rest = text[text.rfind(")") + 2:].split()  # the name may hold spaces and parentheses
    return int(rest[1]), sum(int(x) for x in rest[11:15])


def tree_ticks(roots: Iterable[int], proc: Path = _PROC) -> int:
    """CPU ticks of the processes `roots` and all their descendants (each counted once)."""
    parent: dict[int, int] = {}
    ticks: dict[int, int] = {}
    for d in proc.iterdir():
        if d.name.isdigit() and (st := _stat(d)) is not None:
            parent[int(d.name)], ticks[int(d.name)] = st
    children: dict[int, list[int]] = {}
    for pid, ppid in parent.items():
        children.setdefault(ppid, []).append(pid)
    seen: set[int] = set()
    stack = [p for p in roots if p in ticks]
    while stack:
        pid = stack.pop()
        if pid not in seen:
            seen.add(pid)
            stack.extend(children.get(pid, ()))
    return sum(ticks[p] for p in seen)


def listening_pid(port: int, proc: Path = _PROC) -> int | None:
    """The process listening on 127.0.0.1/any `port` (TCP, IPv4 or IPv6), if this user can see it."""
    inodes: set[str] = set()
    for table in ("net/tcp", "net/tcp6"):
        with contextlib.suppress(OSError):
            for line in (proc / table).read_text().splitlines()[1:]:
                cols = line.split()
                if len(cols) > 9 and cols[3] == "0A" and int(cols[1].rsplit(":", 1)[1], 16) == port:
                    inodes.add(cols[9])  # state 0A = LISTEN
    if not inodes:
        return None
    wanted = {f"socket:[{i}]" for i in inodes}
    for d in proc.iterdir():
        if not d.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            for fd in (d / "fd").iterdir():
                with contextlib.suppress(OSError):
                    if os.readlink(fd) in wanted:
                        return int(d.name)
    return None


@dataclass(frozen=True)
class CpuUse:
    """CPU use over one interval, in cores (1.0 = one core busy the whole time)."""

    wall_s: float
    foreign_cores: float | None  # other processes; None: not measurable here
    own_cores: float | None  # this process tree and own_pids
    cpu_count: int
    load_average_before: tuple[float, float, float] | None = None
    load_average_after: tuple[float, float, float] | None = None
    threshold_cores: float = BUSY_FOREIGN_CORES

    @property
    def busy(self) -> bool | None:
        """Other processes used at least `threshold_cores` on average (None: unknown)."""
        if self.foreign_cores is None or math.isnan(self.foreign_cores):
            return None
        return self.foreign_cores >= self.threshold_cores

    def to_dict(self) -> dict[str, Any]:
        return {"busy": self.busy, "foreign_cpu_cores": _round(self.foreign_cores),
                "own_cpu_cores": _round(self.own_cores),
                "busy_threshold_cores": self.threshold_cores, "cpu_count": self.cpu_count,
                "wall_s": round(self.wall_s, 3), "load_average_before": self.load_average_before,
                "load_average_after": self.load_average_after}


def _round(x: float | None) -> float | None:
    return None if x is None else round(x, 3)


def _loadavg() -> tuple[float, float, float] | None:
    try:
        a, b, c = os.getloadavg()
    except OSError:
        return None
    return round(a, 2), round(b, 2), round(c, 2)


@dataclass
class CpuMeter:
    """Started on creation; `stop()` returns the interval's `CpuUse`. Reads /proc twice (a few
    milliseconds each), nothing in between."""

    own_pids: Iterable[int] = ()
    proc: Path = _PROC
    clock: Callable[[], float] = time.monotonic
    _roots: list[int] = field(init=False)
    _t0: float = field(init=False)
    _machine0: int | None = field(init=False)
    _own0: int = field(init=False)
    _load0: tuple[float, float, float] | None = field(init=False)

    def __post_init__(self) -> None:
        self._roots = list(dict.fromkeys([os.getpid(), *self.own_pids]))
        self._load0 = _loadavg()
        self._t0 = self.clock()
        self._machine0 = machine_busy_ticks(self.proc)
        self._own0 = tree_ticks(self._roots, self.proc) if self._machine0 is not None else 0

    def stop(self) -> CpuUse:
        machine1 = machine_busy_ticks(self.proc)
        own1 = tree_ticks(self._roots, self.proc) if machine1 is not None else 0
        wall = self.clock() - self._t0
        n = os.cpu_count() or 1
        if self._machine0 is None or machine1 is None or wall <= 0:
            return CpuUse(wall, None, None, n, self._load0, _loadavg())
        hz = _ticks_per_s()
        own = max(0, own1 - self._own0) / hz / wall
        # Accounting granularity (a tick) can make the difference a hair negative: that is zero.
        foreign = max(0.0, (machine1 - self._machine0) / hz / wall - own)
        return CpuUse(wall, foreign, own, n, self._load0, _loadavg())


def busy_warning(what: str, use: Mapping[str, Any] | CpuUse | None) -> str | None:
    """One line if other processes kept the machine busy during `what`, else None. Accepts a
    `CpuUse` or its `to_dict()` (as stored in JSON files)."""
    if use is None:
        return None
    d = use.to_dict() if isinstance(use, CpuUse) else use
    if not d.get("busy"):
        return None
    return (f"{what}: the machine was busy — other processes used {d['foreign_cpu_cores']:.2f} of "
            f"{d['cpu_count']} cores on average (≥ {d['busy_threshold_cores']:g}), so its latency and "
            "throughput measure the neighbour as much as the server")
