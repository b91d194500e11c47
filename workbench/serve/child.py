"""Child processes for the workbench's own helper servers (mock server, rate-limit proxy).

Each is `python -m workbench.cli <subcommand> --port 0 ...` (`Server.in_child()` in serve/http.py
builds the arguments); the child binds a free port and
prints `listening on http://host:port` as its first line, which the parent reads — no race
on picking a port. The child dies with its parent (`workbench.children`: PR_SET_PDEATHSIG on Linux),
so a crashed test or notebook leaves no server behind.
"""

from __future__ import annotations

import contextlib
import os
import re
import select
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from typing import Self

from workbench.children import PREEXEC
from workbench.errors import ServerStartError

__all__ = ["ChildServer", "free_port", "start_child"]


def free_port() -> int:
    """A port free on 127.0.0.1 right now (for servers that cannot report the one they bound)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


_LISTEN = re.compile(r"listening on (http://\S+)")


def _drain(proc: subprocess.Popen[str]) -> None:
    with contextlib.suppress(ValueError, OSError):
        assert proc.stdout is not None
        for _ in proc.stdout:
            pass


def start_child(args: Sequence[str], timeout_s: float = 60.0) -> tuple[subprocess.Popen[str], str]:
    """Start `workbench <args>` and wait for its `listening on URL` line; returns (process, URL).

    The deadline is generous: the child imports the package (pandas, pydantic) before it
    listens, which takes seconds on a busy 2-core machine."""
    cmd = [sys.executable, "-m", "workbench.cli", *args]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env={**os.environ, "PYTHONUNBUFFERED": "1"},
                            preexec_fn=PREEXEC)
    assert proc.stdout is not None
    deadline = time.monotonic() + timeout_s
    seen: list[str] = []
    while time.monotonic() < deadline:
        ready, _, _ = select.select([proc.stdout], [], [], 0.1)
        if ready:
            line = proc.stdout.readline()
            if not line and proc.poll() is not None:
                break
            seen.append(line)
            m = _LISTEN.search(line)
            if m:
                # Keep reading the child's output so a chatty child never blocks on a full pipe.
                threading.Thread(target=_drain, args=(proc,), daemon=True).start()
                return proc, m.group(1)
        elif proc.poll() is not None:
            break
    proc.kill()
    raise ServerStartError(f"{' '.join(cmd)} did not start within {timeout_s:g} s:\n{''.join(seen[-20:])}")


class ChildServer:
    """A started child server; stops on `stop()`, at context exit, or with the parent."""

    def __init__(self, started: tuple[subprocess.Popen[str], str], base_path: str = "") -> None:
        self.process, self.root_url = started
        self.base_path = base_path

    @property
    def url(self) -> str:
        return self.root_url

    @property
    def base_url(self) -> str:
        """The root URL plus the server's base path (the mock's OpenAI base is /v1)."""
        return self.root_url + self.base_path

    def stop(self, timeout_s: float = 5.0) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout_s)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout_s)
        if self.process.stdout is not None:
            time.sleep(0.01)  # let the drain thread see EOF first
            with contextlib.suppress(OSError, ValueError):
                self.process.stdout.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
