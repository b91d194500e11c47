"""Child processes that die with the workbench: what every `subprocess.Popen` of the workbench
passes as `preexec_fn` (its servers, llama-server and its build, the load pool's shards), so a
crashed test or a killed notebook kernel leaves nothing running.

On Linux the child asks the kernel for SIGTERM when its parent ends (`prctl(PR_SET_PDEATHSIG)`);
the kernel's "parent" is the thread that started the child, so a child started from a worker
thread gets it when that thread ends. Elsewhere there is no such call, and `PREEXEC` is None.
"""

from __future__ import annotations

import contextlib
import ctypes
import signal
import sys
from collections.abc import Callable

__all__ = ["PREEXEC", "die_with_parent"]


def die_with_parent() -> None:  # runs in the child between fork and exec
    with contextlib.suppress(Exception):
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


#: Popen's `preexec_fn` for a child that dies with this process: `die_with_parent` on Linux, else None.
PREEXEC: Callable[[], None] | None = die_with_parent if sys.platform.startswith("linux") else None
