"""The embedded default served: llama.cpp's own `llama-server`, one process per model, on 127.0.0.1.

The server batches concurrent requests continuously (`--parallel` slots, each with its own
context window), reports what it did — `usage` in the stream, per-request `timings` (prompt and
generation milliseconds and tokens), Prometheus `/metrics` (busy slots, the deferred-request
queue), `/tokenize`, `/apply-template` — and is what people deploy, unlike a one-request-at-a-time
Python server. The binary is built once per machine from the pinned llama.cpp source
(`workbench.serve.llama_build`, run by `make setup`), the models are `workbench.embedded`.

Each model gets its own process on a free port, its log (stderr: llama-server logs nothing to
stdout) in the run folder, `GET /health` polled until 200 (503 "Loading model" before), and is
stopped on exit, on Ctrl-C, on failure — and, on Linux, when the parent process dies
(PR_SET_PDEATHSIG), so a killed notebook kernel leaves no server behind. `LLAMA_ARG_*`
variables are removed from its environment (each would silently set a flag).

Slots: `WORKBENCH_SLOTS` (default 8) parallel slots of `LocalModel.n_ctx` tokens each; threads
and polling: `ThreadSettings` (`WORKBENCH_THREADS`, default `auto`: every core on a quiet machine,
fewer beside other work; `WORKBENCH_POLL`, default `DEFAULT_POLL`, no spinning).
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import httpx

from workbench.children import PREEXEC
from workbench.embedded import LocalModel, assemble_model, get_model
from workbench.errors import ServerStartError
from workbench.measure.machine import BUSY_FOREIGN_CORES, CpuMeter
from workbench.serve import llama_build
from workbench.serve.child import free_port

__all__ = ["DEFAULT_POLL", "DEFAULT_SLOTS", "REQUEST_HEADERS", "LocalServer", "ThreadSettings", "serve",
           "start_server"]

#: Parallel slots per server on this 2-core machine's default; `WORKBENCH_SLOTS` overrides.
DEFAULT_SLOTS = 8
#: Sent with every request to an embedded server. llama-server closes a kept-alive connection
#: after a streamed answer, and a client that reuses it at once gets "server disconnected" (7 of
#: 120 back-to-back streams here); a connection per request avoids the race. Its loopback
#: connect counts in TTFT like any connect the request opened.
REQUEST_HEADERS = {"Connection": "close"}
#: llama.cpp's `--poll` level (0-100): how long its idle threads spin before they sleep. Its
#: default, 50, spins, taking time slices a neighbour (or our own load generator) needed; 0 waits
#: on the OS. See `ThreadSettings` for what was measured.
DEFAULT_POLL = 0
#: Why the default is what it is, in the manifest beside the settings a server ran with.
THREADS_MEASURED = ("auto: every core when other processes use less than a quarter of a core, else the cores "
                    "they leave minus one for the load generator (at least one). Qwen 0.5B decode tokens/s on 2 "
                    "cores, idle / beside one spinning process per core: -t 2 --poll 0 42.1 / 7.8, -t 1 --poll 0 "
                    "28.6 / 16.9 (bench/llama_threads.py --settings 2/2/50,1/1/0,2/2/0, 2026-12-07)")
#: How long `ThreadSettings.default()` watches the machine before choosing (seconds).
AUTO_PROBE_S = 0.5


@dataclass(frozen=True)
class ThreadSettings:
    """How many threads an embedded server decodes (`threads`) and prefills (`threads_batch`)
    with, how its idle threads wait (`poll`), and why (`chosen_by`); the manifest records them
    beside the flags.

    llama.cpp's threads meet at a barrier after every operation of every token, so when one of
    them loses its core to another process all of them wait. Measured on 2 cores (Qwen 0.5B,
    decode tokens/s, idle / beside one spinning process per core): two threads 42.1 / 7.8 —
    the fastest alone, a collapse beside a neighbour; one thread 28.6 / 16.9 — slower alone,
    slowed only in proportion beside one. Neither is right on every machine, so the default
    looks first: `auto` watches other processes' CPU (`measure.machine.CpuMeter`, not ours) for
    `AUTO_PROBE_S`; on a quiet machine the server gets every core, on a busy one the cores the
    others leave, minus one for the load generator (whose timestamps need a core as much as the
    server does), at least one. It is chosen when a server starts — each experiment starts its
    own — so a neighbour that arrives later is not seen here: the experiment's `machine` entry in
    the manifest and the concurrency notebook's per-level warning say when that happened.
    No spinning in either case (`--poll 0`: llama.cpp's default, 50, spins idle threads and took
    time slices from the neighbour and from our own client).
    """

    threads: int
    threads_batch: int
    poll: int = DEFAULT_POLL
    chosen_by: str = "given"

    def __post_init__(self) -> None:
        if self.threads < 1 or self.threads_batch < 1:
            raise ValueError(f"threads must be >= 1, got {self.threads}/{self.threads_batch}")
        if not 0 <= self.poll <= 100:
            raise ValueError(f"poll must be in 0..100, got {self.poll}")

    @classmethod
    def default(cls, env: Mapping[str, str] | None = None,
                foreign_cores: Callable[[], float | None] | None = None) -> ThreadSettings:
        """`WORKBENCH_THREADS` (a number, or `auto`, the default) and `WORKBENCH_POLL` (default
        `DEFAULT_POLL`). `foreign_cores` measures other processes' CPU use (default: a
        `CpuMeter` over `AUTO_PROBE_S`); None from it (no /proc) is taken as quiet."""
        env = os.environ if env is None else env
        poll = _poll_setting(env)
        given = env.get("WORKBENCH_THREADS", "").strip().lower()
        if given not in ("", "auto"):
            try:
                n = int(given)
            except ValueError:
                raise ValueError(f"WORKBENCH_THREADS: {given!r} is neither a number nor 'auto'") from None
            return cls(n, n, poll, "WORKBENCH_THREADS")
        cores = os.cpu_count() or 1
        foreign = (foreign_cores or _foreign_cores_now)()
        if foreign is None or foreign < BUSY_FOREIGN_CORES:
            how = "auto: quiet machine" if foreign is not None else "auto: load not measurable here"
            return cls(cores, cores, poll, f"{how}, every core" + (f" (others used {foreign:.2f} cores)"
                                                                   if foreign is not None else ""))
        n = max(1, cores - math.ceil(foreign - 0.5) - 1)  # the cores others take (rounded), one for us
        return cls(n, n, poll, f"auto: busy machine (others used {foreign:.2f} of {cores} cores), "
                               f"{n} thread{'s' if n > 1 else ''}")

    def args(self) -> list[str]:
        return ["--threads", str(self.threads), "--threads-batch", str(self.threads_batch),
                "--poll", str(self.poll)]

    def to_dict(self) -> dict[str, Any]:
        return {"threads": self.threads, "threads_batch": self.threads_batch, "poll": self.poll,
                "chosen_by": self.chosen_by}


def _poll_setting(env: Mapping[str, str]) -> int:
    text = env.get("WORKBENCH_POLL", "").strip()
    return int(text) if text else DEFAULT_POLL  # "0" is a setting, not unset


def _foreign_cores_now() -> float | None:
    meter = CpuMeter()
    time.sleep(AUTO_PROBE_S)
    return meter.stop().foreign_cores


@dataclass
class LocalServer:
    """A running llama-server for one model."""

    model: LocalModel
    process: subprocess.Popen[bytes]
    port: int
    log_path: Path
    startup_s: float  # spawn → first GET /health 200 (includes loading the weights)
    started_unix: float
    command: list[str] = field(default_factory=list)
    slots: int = DEFAULT_SLOTS
    threads: ThreadSettings | None = None
    _log_fh: IO[bytes] | None = None
    n_ctx: int = 0  # tokens per slot (0: the model's default, `LocalModel.n_ctx`)

    @property
    def root_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def base_url(self) -> str:
        return f"{self.root_url}/v1"

    def info(self) -> dict[str, Any]:
        build = _build_info()
        return {
            "model": self.model.name,
            "base_url": self.base_url,
            "pid": self.process.pid,
            "startup_s": round(self.startup_s, 3),
            "started_unix": self.started_unix,
            "log": str(self.log_path),
            "server": f"llama.cpp llama-server build {build.get('llama_cpp_build_number')} "
                      f"(commit {str(build.get('llama_cpp_commit', ''))[:8]})",
            "server_build": {k: build.get(k) for k in ("llama_cpp_commit", "llama_cpp_build_number",
                                                       "binary_version", "cmake_flags", "native", "key")},
            "server_flags": self.command[1:],
            "slots": self.slots,
            "n_ctx_per_slot": self.n_ctx or self.model.n_ctx,
            "threads": self.threads.to_dict() if self.threads else None,
            "threads_measured": THREADS_MEASURED,
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


def _build_info() -> dict[str, Any]:
    binary = llama_build.cached_server()
    if binary is None:
        return {}
    try:
        return dict(json.loads((binary.parent / "build.json").read_text(encoding="utf-8")))
    except (OSError, json.JSONDecodeError):
        return {}


def _log_tail(path: Path, lines: int = 25) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return "(no log)"
    return "\n".join(text.splitlines()[-lines:])


def _binary() -> Path:
    """The cached llama-server, built now (minutes, said on stderr) if this machine has none."""
    found = llama_build.cached_server()
    if found is not None:
        return found
    print("llama-server is not built on this machine yet: building it once from the pinned llama.cpp "
          "source (several minutes; `make setup` does this ahead of time)", file=sys.stderr)
    try:
        return llama_build.build_server(log=sys.stderr)
    except llama_build.LlamaBuildError as exc:
        raise ServerStartError(f"cannot build llama-server: {exc}") from None


def start_server(
    name: str,
    log_dir: Path,
    *,
    n_threads: int | None = None,
    slots: int | None = None,
    threads: ThreadSettings | None = None,
    ready_timeout_s: float = 120.0,
    port: int | None = None,
    n_ctx: int | None = None,
) -> LocalServer:
    """Start one model's server and wait until it answers; raise ServerStartError with the
    log's tail if it exits or does not answer in time. `threads` (default
    `ThreadSettings.default()`) wins over `n_threads`, which sets both thread counts. `n_ctx`
    (default `LocalModel.n_ctx`) is each slot's context in tokens: the context experiment serves
    long documents from one large slot."""
    model = get_model(name)
    path = assemble_model(name)
    binary = _binary()
    log_dir.mkdir(parents=True, exist_ok=True)
    log_path = log_dir / f"{name}.log"
    port = port or free_port()
    if threads is None and n_threads:
        threads = ThreadSettings(n_threads, n_threads, _poll_setting(os.environ), "n_threads")
    elif threads is None:
        threads = ThreadSettings.default()
    n_slots = slots or int(os.environ.get("WORKBENCH_SLOTS", "0")) or DEFAULT_SLOTS
    slot_ctx = n_ctx or model.n_ctx
    cmd = [
        str(binary),
        "--model", str(path),
        "--alias", name,
        "--host", "127.0.0.1",
        "--port", str(port),
        "--parallel", str(n_slots),
        "--ctx-size", str(slot_ctx * n_slots),  # split evenly: slot_ctx tokens per slot
        *threads.args(),
        "--cont-batching",
        "--metrics",
        *model.server_args,
    ]
    log_fh = open(log_path, "ab")  # noqa: SIM115 - closed in LocalServer.stop
    log_fh.write(f"$ {' '.join(cmd)}\n".encode())
    log_fh.flush()
    t0 = time.perf_counter()
    started_unix = time.time()
    env = {k: v for k, v in os.environ.items() if not k.startswith("LLAMA_ARG_")}
    proc = subprocess.Popen(
        cmd, stdout=log_fh, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env,
        preexec_fn=PREEXEC,
    )
    server = LocalServer(model, proc, port, log_path, 0.0, started_unix, cmd, n_slots, threads, log_fh, slot_ctx)
    url = f"http://127.0.0.1:{port}/health"
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
