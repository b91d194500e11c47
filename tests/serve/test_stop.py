"""Every server the workbench starts stops within a second of SIGINT or SIGTERM, with stalled
streams open, on a busy machine, whatever signal state its parent left it.

The acceptance of issue 27: inside the full suite the mock server of the fault mix outlived
SIGINT by more than 10 s. A child inherits its parent's ignored signals and signal mask, and
Python leaves an inherited SIG_IGN for SIGINT alone, so a server started by a process that
ignores Ctrl-C ignored it too — and a suite launched as a background job of a non-interactive
shell (`sh -c 'make test &'`) runs with SIGINT ignored from the start (reproduced: the fault mix
fails so before the fix, passes after); and even a server that did stop spent half a second more in the
interpreter's teardown (seconds on a busy machine). Here each server runs in its own process as
the workbench runs it (`python -m workbench.cli <argv>`), 50 connections are held stalled
mid-stream (the mock's `stall` fault: one chunk, then silence), every core is busy with a CPU
hog, and the time from the signal to the process's exit is measured on the monotonic clock —
startup and the connections' setup are not in it.
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
import subprocess
import sys
import time
import urllib.parse
from collections.abc import Callable, Iterator

import pytest

from workbench.children import PREEXEC, die_with_parent
from workbench.serve.batch import BatchServer
from workbench.serve.child import ChildServer
from workbench.serve.faults import FaultPlan
from workbench.serve.http import Server
from workbench.serve.mock import MockServer
from workbench.serve.ratelimit import RateLimitProxy

pytestmark = pytest.mark.slow  # 7 servers started beside a CPU hog: ~40 s on 2 cores

N_STALLED = 50
#: The acceptance: from the signal to the process's exit.
STOP_WITHIN_S = 1.0
#: Setting up the stalled streams on a busy machine (a hang here fails, not waits forever).
SETUP_S = 60.0
#: How long a hog spins at most: it outlives no test even if teardown never runs.
HOG_S = 120


@pytest.fixture(scope="module")
def cpu_hog() -> Iterator[None]:
    """One busy process per core at the test's own priority (a neighbour, not a niced one),
    each bounded in time, killed at teardown."""
    code = f"import time\nend = time.monotonic() + {HOG_S}\nwhile time.monotonic() < end:\n    pass\n"
    hogs = [subprocess.Popen([sys.executable, "-c", code]) for _ in range(os.cpu_count() or 1)]
    try:
        yield
    finally:
        for h in hogs:
            h.kill()
        for h in hogs:
            h.wait()


@pytest.fixture(scope="module")
def stalling_upstream() -> Iterator[ChildServer]:
    """Every answer stalls after its first chunk, for longer than any test here."""
    with MockServer(plan=FaultPlan(probabilities={"stall": 1.0}, stall_s=300.0)).in_child() as s:
        yield s


def _ignore_and_block_stop_signals() -> None:  # runs in the child between fork and exec
    die_with_parent()
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM})


def _start(server: Server, preexec: Callable[[], None] | None) -> tuple[subprocess.Popen[bytes], str]:
    """`server` in its own process and session (so nothing else gets its signal); (process, base URL)."""
    argv = [sys.executable, "-m", "workbench.cli", *server.argv(), "--port", "0"]
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True,
                            preexec_fn=preexec or PREEXEC)
    assert proc.stdout is not None
    first = proc.stdout.readline().decode()  # a busy machine: imports take seconds; no deadline is needed
    m = re.search(r"listening on (http://\S+)", first)
    if m is None:
        proc.kill()
        raise AssertionError(f"no listening line: {first!r}")
    return proc, m.group(1) + server.base_path


async def _stalled_stream(host: str, port: int, path: str) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """A streamed chat request whose answer has begun (its head is read) and then stalls."""
    reader, writer = await asyncio.open_connection(host, port)
    body = b'{"model":"m","stream":true,"messages":[{"role":"user","content":"hold"}]}'
    writer.write(b"POST %s HTTP/1.1\r\nhost: %s\r\ncontent-type: application/json\r\ncontent-length: %d\r\n\r\n%s"
                 % (path.encode(), host.encode(), len(body), body))
    await writer.drain()
    status = await reader.readuntil(b"\r\n\r\n")
    assert status.startswith(b"HTTP/1.1 200"), status
    return reader, writer


async def _closed(reader: asyncio.StreamReader) -> bool:
    """Whether the server closed this connection (EOF or reset) rather than leaving it open."""
    try:
        while await reader.read(65536):
            pass
    except ConnectionError:
        pass
    return True


def _stop_time(proc: subprocess.Popen[bytes], url: str, sig: signal.Signals) -> tuple[float, int | None, bool]:
    """Open `N_STALLED` stalled streams on the server at `url`, send `sig`; (seconds from the
    signal to the exit, exit code, whether every stalled connection was closed by then)."""
    parts = urllib.parse.urlsplit(url)
    host, port, path = parts.hostname or "", parts.port or 80, parts.path + "/chat/completions"

    async def go() -> tuple[float, int | None, bool]:
        conns = await asyncio.wait_for(
            asyncio.gather(*(_stalled_stream(host, port, path) for _ in range(N_STALLED))), SETUP_S)
        loop = asyncio.get_running_loop()
        t0 = time.monotonic()
        os.kill(proc.pid, sig)
        # Reaped in a thread: the timestamp is taken as soon as the kernel reports the exit.
        exited = loop.run_in_executor(None, lambda: (proc.wait(30), time.monotonic())[1])
        closed = await asyncio.wait_for(asyncio.gather(*(_closed(r) for r, _ in conns)), 30)
        t_exit = await exited
        for _, w in conns:
            w.close()
        return t_exit - t0, proc.returncode, all(closed)

    try:
        return asyncio.run(go())
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        assert proc.stdout is not None
        proc.stdout.close()


SERVERS: dict[str, Callable[[str], Server]] = {
    "mock": lambda upstream: MockServer(plan=FaultPlan(probabilities={"stall": 1.0}, stall_s=300.0)),
    "ratelimit-proxy": lambda upstream: RateLimitProxy(upstream, max_in_flight=N_STALLED + 10),
    "batch-server": lambda upstream: BatchServer(upstream, concurrency=N_STALLED + 10),
}


@pytest.mark.usefixtures("cpu_hog")
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
@pytest.mark.parametrize("kind", list(SERVERS))
def test_each_server_stops_within_a_second_with_stalled_streams_on_a_busy_machine(
        kind: str, sig: signal.Signals, stalling_upstream: ChildServer) -> None:
    proc, url = _start(SERVERS[kind](stalling_upstream.base_url), None)
    took, code, closed = _stop_time(proc, url, sig)
    print(f"{kind} stopped {took:.3f} s after {sig.name}")
    assert took < STOP_WITHIN_S, f"{kind} took {took:.2f} s to stop after {sig.name}"
    assert code == 0 and closed


@pytest.mark.usefixtures("cpu_hog")
def test_the_mock_stops_on_sigint_although_its_parent_ignored_and_blocked_it() -> None:
    """The failure inside the full suite: a parent that ignores SIGINT (and blocks both signals)
    passes that on to the server it starts; the server still stops on SIGINT."""
    proc, url = _start(SERVERS["mock"](""), _ignore_and_block_stop_signals)
    took, code, closed = _stop_time(proc, url, signal.SIGINT)
    print(f"mock (SIGINT ignored and blocked by its parent) stopped {took:.3f} s after SIGINT")
    assert took < STOP_WITHIN_S and code == 0 and closed
