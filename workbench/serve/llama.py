"""The embedded default served: one llama.cpp server process per model, on 127.0.0.1.

Each model gets its own `python -m llama_cpp.server` process on 127.0.0.1 and a free port,
started with its log in the run folder, polled on `GET /v1/models` until ready, and stopped on
exit, on Ctrl-C, on failure — and, on Linux, when the parent process dies (PR_SET_PDEATHSIG),
so a killed notebook kernel leaves no server behind. llama-cpp-python's server runs one
request at a time: queueing under concurrency is real and visible in the measurements.
The models themselves (catalogue, verified weights) are `workbench.embedded`.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import IO, Any

import httpx

from workbench.embedded import LocalModel, assemble_model, get_model
from workbench.errors import ServerStartError
from workbench.serve.child import die_with_parent, free_port

__all__ = ["LocalServer", "serve", "start_server"]


@dataclass
class LocalServer:
    """A running llama.cpp server for one model."""

    model: LocalModel
    process: subprocess.Popen[bytes]
    port: int
    log_path: Path
    startup_s: float  # spawn → first successful GET /v1/models (includes loading the weights)
    started_unix: float
    _log_fh: IO[bytes] | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def info(self) -> dict[str, Any]:
        return {
            "model": self.model.name,
            "base_url": self.base_url,
            "pid": self.process.pid,
            "startup_s": round(self.startup_s, 3),
            "started_unix": self.started_unix,
            "log": str(self.log_path),
            "server": f"llama-cpp-python {_version('llama_cpp_python')}",
        }

    def stop(self, timeout: float = 10.0) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
        if self._log_fh is not None:
            self._log_fh.close()
            self._log_fh = None


def _version(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def _log_tail(path: Path, lines: int = 25) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return "(no log)"
    return "\n".join(text.splitlines()[-lines:])


def start_server(
    name: str,
    log_dir: Path,
    *,
    n_threads: int | None = None,
    ready_timeout_s: float = 120.0,
    port: int | None = None,
) -> LocalServer:
    """Start one model's server and wait until it answers; raise ServerStartError with the
    log's tail if it exits or does not answer in time."""
    model = get_model(name)
    path = assemble_model(name)
    log_dir.mkdir(parents=True, exist_ok=True)
    log_path = log_dir / f"{name}.log"
    port = port or free_port()
    threads = n_threads or int(os.environ.get("WORKBENCH_THREADS", "0")) or (os.cpu_count() or 2)
    cmd = [
        sys.executable, "-m", "llama_cpp.server",
        "--model", str(path),
        "--model_alias", name,
        "--host", "127.0.0.1",
        "--port", str(port),
        "--n_ctx", str(model.n_ctx),
        "--n_threads", str(threads),
        "--n_threads_batch", str(threads),
        # By default llama-cpp-python ends a running stream early (with [DONE]) as soon as
        # another request waits: answers would be silently truncated under concurrency.
        "--interrupt_requests", "False",
        *model.server_args,
    ]
    log_fh = open(log_path, "ab")  # noqa: SIM115 - closed in LocalServer.stop
    log_fh.write(f"$ {' '.join(cmd)}\n".encode())
    log_fh.flush()
    t0 = time.perf_counter()
    started_unix = time.time()
    proc = subprocess.Popen(
        cmd, stdout=log_fh, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
        preexec_fn=die_with_parent if sys.platform.startswith("linux") else None,
    )
    server = LocalServer(model, proc, port, log_path, 0.0, started_unix, log_fh)
    url = f"http://127.0.0.1:{port}/v1/models"
    deadline = t0 + ready_timeout_s
    try:
        with httpx.Client(timeout=2.0, trust_env=False) as client:
            while True:
                if proc.poll() is not None:
                    raise ServerStartError(
                        f"{name}: server exited with code {proc.returncode} before it was ready "
                        f"(log {log_path}):\n{_log_tail(log_path)}"
                    )
                try:
                    if client.get(url).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                if time.perf_counter() > deadline:
                    raise ServerStartError(
                        f"{name}: no answer on {url} within {ready_timeout_s:g}s "
                        f"(log {log_path}):\n{_log_tail(log_path)}"
                    )
                time.sleep(0.05)
    except BaseException:
        server.stop()
        raise
    server.startup_s = time.perf_counter() - t0
    return server


@contextlib.contextmanager
def serve(names: Iterable[str], log_dir: Path, **kwargs: Any) -> Iterator[dict[str, LocalServer]]:
    """Start servers for `names` (one process each) and stop them all on exit, error or Ctrl-C."""
    servers: dict[str, LocalServer] = {}
    previous = signal.getsignal(signal.SIGTERM)

    def _on_term(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    in_main = _is_main_thread()
    if in_main:
        signal.signal(signal.SIGTERM, _on_term)
    try:
        for name in dict.fromkeys(names):
            servers[name] = start_server(name, log_dir, **kwargs)
        yield servers
    finally:
        for s in servers.values():
            s.stop()
        if in_main:
            signal.signal(signal.SIGTERM, previous)


def _is_main_thread() -> bool:
    import threading

    return threading.current_thread() is threading.main_thread()
