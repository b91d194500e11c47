"""Other processes' CPU use: /proc arithmetic on a fake /proc, and our own tree on the real one."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from workbench.experiments import concurrency
from workbench.measure import machine
from workbench.measure.machine import BUSY_FOREIGN_CORES, CpuMeter, CpuUse, busy_warning

linux_only = pytest.mark.skipif(not Path("/proc/stat").exists(), reason="needs /proc")


def _write_proc(root: Path, busy: int, procs: dict[int, tuple[str, int, int]]) -> None:
    """A /proc with a machine line (`busy` ticks spread over user/system/irq/softirq/steal, plus
    idle and iowait that must not count) and processes pid -> (name, ppid, ticks)."""
    root.mkdir(exist_ok=True)
    u = busy - 40
    (root / "stat").write_text(f"cpu  {u} 0 10 99999 777 10 10 10 5 5\ncpu0 1 2 3\n")
    for pid, (name, ppid, ticks) in procs.items():
        d = root / str(pid)
        d.mkdir(exist_ok=True)
        # fields after "(name) ": state ppid pgrp session tty tpgid flags minflt cminflt majflt cmajflt
        # utime stime cutime cstime ...
        rest = ["S", str(ppid)] + ["0"] * 9 + [str(ticks - 3), "1", "1", "1"] + ["0"] * 5
        (d / "stat").write_text(f"{pid} ({name}) {' '.join(rest)}\n")


def test_tree_ticks_counts_the_root_and_every_descendant_once(tmp_path: Path) -> None:
    _write_proc(tmp_path, 0, {
        100: ("kernel", 1, 10),
        101: ("llama server (x)", 100, 200),  # spaces and a parenthesis in the name
        102: ("grandchild", 101, 30),
        200: ("neighbour", 1, 5000),
        201: ("its child", 200, 7),
    })
    assert machine.tree_ticks([100], tmp_path) == 240
    assert machine.tree_ticks([100, 101], tmp_path) == 240  # a listed descendant is not counted twice
    assert machine.tree_ticks([100, 201], tmp_path) == 247
    assert machine.tree_ticks([999], tmp_path) == 0  # gone


def test_machine_ticks_leave_out_idle_and_iowait(tmp_path: Path) -> None:
    _write_proc(tmp_path, 1234, {})
    assert machine.machine_busy_ticks(tmp_path) == 1234
    assert machine.machine_busy_ticks(tmp_path / "missing") is None


def _meter(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, own0: int, own1: int, busy0: int, busy1: int,
           wall_s: float) -> CpuUse:
    clock = iter([50.0, 50.0 + wall_s])
    monkeypatch.setattr(machine, "_ticks_per_s", lambda: 100)
    me = os.getpid()
    _write_proc(tmp_path, busy0, {me: ("python", 1, own0)})
    meter = CpuMeter(proc=tmp_path, clock=lambda: next(clock))
    _write_proc(tmp_path, busy1, {me: ("python", 1, own1)})
    return meter.stop()


def test_foreign_cores_are_the_machine_minus_our_tree(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # 2 s: the machine did 300 ticks (1.5 cores), we did 100 (0.5): others kept 1.0 core busy
    use = _meter(tmp_path, monkeypatch, own0=1000, own1=1100, busy0=5000, busy1=5300, wall_s=2.0)
    assert use.own_cores == pytest.approx(0.5)
    assert use.foreign_cores == pytest.approx(1.0)
    assert use.busy is True
    d = use.to_dict()
    assert d["busy"] is True and d["foreign_cpu_cores"] == 1.0 and d["busy_threshold_cores"] == BUSY_FOREIGN_CORES
    text = busy_warning("gemma @ concurrency 4", d)
    assert text is not None and text.startswith("gemma @ concurrency 4: the machine was busy")
    assert "1.00 of" in text


def test_our_own_load_alone_is_not_busy(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # the servers and the client burn both cores; others only 0.1 core
    use = _meter(tmp_path, monkeypatch, own0=0, own1=400, busy0=0, busy1=420, wall_s=2.0)
    assert use.own_cores == pytest.approx(2.0) and use.foreign_cores == pytest.approx(0.1)
    assert use.busy is False and busy_warning("x", use) is None


def test_without_proc_nothing_is_called_quiet(tmp_path: Path) -> None:
    use = CpuMeter(proc=tmp_path / "no-proc").stop()
    assert use.foreign_cores is None and use.busy is None
    assert use.to_dict()["busy"] is None
    assert busy_warning("x", use) is None and busy_warning("x", None) is None


def test_concurrency_warns_per_busy_level_and_says_when_unknown() -> None:
    quiet = CpuUse(10.0, 0.05, 1.9, 2).to_dict()
    busy = CpuUse(10.0, 1.2, 1.0, 2).to_dict()
    rows = [{"contender": "a", "level": 1, "machine": quiet}, {"contender": "a", "level": 2, "machine": busy},
            {"contender": "b", "level": 1}]  # a row without the field (an older run): no warning
    warnings = concurrency.busy_warnings(rows)
    assert len(warnings) == 1 and warnings[0].startswith("a @ concurrency 2: the machine was busy")
    report = concurrency.SweepReport(levels=None, levels_text=None, knee=None, fits={}, projections=[], loadgen=None,
                                     client_warnings=[], busy_warnings=warnings)
    assert report.machine_lines() == warnings
    report.busy_warnings = []
    assert report.machine_lines()[0].startswith("OK: the machine was quiet")
    report.machine_measured = False
    assert "unknown" in report.machine_lines()[0]


@linux_only
def test_a_child_that_ran_and_ended_is_ours_not_foreign() -> None:
    """On the real /proc: 0.4 s of CPU burnt by a child process (reaped before the meter stops,
    so it is found in our cutime) counts as our own."""
    meter = CpuMeter()
    burn = "import time\nt = time.process_time()\nwhile time.process_time() - t < 0.4: pass"
    subprocess.run([sys.executable, "-c", burn], check=True, timeout=60)
    use = meter.stop()
    assert use.own_cores is not None
    assert use.own_cores * use.wall_s >= 0.3  # CPU seconds, whatever the wall time was


@linux_only
def test_listening_pid_finds_the_process_behind_a_port() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        assert machine.listening_pid(port) == os.getpid()
    with socket.socket() as s:  # bound, not listening: nobody serves there
        s.bind(("127.0.0.1", 0))
        assert machine.listening_pid(s.getsockname()[1]) is None
