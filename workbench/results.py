"""Run folders, append-only record files, the run manifest, and loaders into pandas.

Layout of `results/<run-id>/` (the user-facing contract, see results/README.md):
  manifest.json          run id, UTC time, git commit, parameters, contenders (no secrets),
                         package and server versions, machine
  <experiment>.jsonl     one JSON object per request attempt, appended and flushed as it ends
  <experiment>.ipynb     the executed notebook
  capabilities.json      each contender's integration facts (`CAPABILITIES_FILE`; written by the
                         latency experiment, read into the decision matrix)
  logs/                  local model server logs
  decision_matrix.csv, report.html   written by the summary
"""

from __future__ import annotations

import datetime as dt
import json
import os
import platform
import secrets
import subprocess
import time
import warnings
from collections.abc import Iterable, Mapping
from importlib import metadata
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from workbench import keys, workspace
from workbench.types import RECORD_CORE_FIELDS, Record

if TYPE_CHECKING:
    import pandas as pd


__all__ = [
    "CAPABILITIES_FILE",
    "RESENT_ON_RESUME",
    "RecordWriter",
    "RunDir",
    "error_table",
    "load_records",
    "load_runs",
    "new_run_id",
    "read_jsonl_tolerant",
    "read_manifest",
    "reasoning_tokens",
    "results_root",
    "token_sources",
    "update_manifest",
]

#: The run folder's integration facts: contender -> fact -> {value, source, detail}.
CAPABILITIES_FILE = "capabilities.json"


def results_root() -> Path:
    """Where new run folders go: the workspace's `results/` (`workbench.workspace.current`)."""
    return workspace.current().results_dir


def new_run_id(now: dt.datetime | None = None) -> str:
    """Sortable, unique: UTC time plus 4 random hex digits."""
    now = now or dt.datetime.now(dt.UTC)
    return now.strftime("%Y%m%d-%H%M%S") + "-" + secrets.token_hex(2)


class RunDir:
    """A run folder. Creating one writes its manifest skeleton."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    @classmethod
    def create(cls, root: str | Path | None = None, run_id: str | None = None) -> RunDir:
        """A new run folder under `root` (default: the workspace's results/)."""
        run_id = run_id or new_run_id()
        path = Path(root or results_root()) / run_id
        path.mkdir(parents=True, exist_ok=False)
        return cls._init(path)

    @classmethod
    def open_or_create(cls, path: str | Path | None) -> RunDir:
        """An existing run folder (e.g. the runner's), else a new one at `path` or under results/."""
        if not path:
            return cls.create()
        p = Path(path)
        if (p / "manifest.json").exists():
            return cls(p)
        p.mkdir(parents=True, exist_ok=True)
        return cls._init(p)

    @classmethod
    def _init(cls, path: Path) -> RunDir:
        update_manifest(
            path,
            run_id=path.name,
            created_utc=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            git=_git_info(),
            machine=_machine_info(),
            packages=_package_versions(),
        )
        return cls(path)

    @property
    def run_id(self) -> str:
        return str(read_manifest(self.path).get("run_id", self.path.name))

    @property
    def logs(self) -> Path:
        p = self.path / "logs"
        p.mkdir(exist_ok=True)
        return p

    def jsonl(self, experiment: str) -> Path:
        return self.path / f"{experiment}.jsonl"

    def writer(self, experiment: str) -> RecordWriter:
        return RecordWriter(self.jsonl(experiment))

    def __repr__(self) -> str:
        return f"RunDir({str(self.path)!r})"


class RecordWriter:
    """Appends one JSON line per record and flushes it to the OS before returning.

    A crash (even kill -9) loses only requests still in flight; a torn last line is skipped by
    the loaders. `fsync` runs on close, and after a write when `fsync_interval_s` has passed
    since the last one, for power loss: at most that much is lost to a power cut, whatever the
    rate (a count of records would be minutes at 1 record/s, and an fsync per 256 records was
    11% of a 2-shard coordinator's CPU at 8,000 records/s).
    """

    def __init__(self, path: str | Path, fsync_interval_s: float = 1.0) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        _drop_torn_tail(self.path)
        self._fh: IO[str] | None = open(self.path, "a", encoding="utf-8")  # noqa: SIM115
        self._fsync_interval_s = fsync_interval_s
        self._synced_at = time.monotonic()
        self.count = 0

    def write(self, record: Record | Mapping[str, Any]) -> None:
        if self._fh is None:
            raise ValueError(f"writer for {self.path} is closed")
        obj = record.to_dict() if isinstance(record, Record) else dict(record)
        line = json.dumps(obj, ensure_ascii=False, separators=(",", ":"), default=str)
        keys.guard(line, where=str(self.path))
        self._fh.write(line + "\n")
        self._fh.flush()
        self.count += 1
        now = time.monotonic()
        if now - self._synced_at >= self._fsync_interval_s:
            os.fsync(self._fh.fileno())
            self._synced_at = now

    def close(self) -> None:
        if self._fh is not None:
            self._fh.flush()
            os.fsync(self._fh.fileno())
            self._fh.close()
            self._fh = None

    def __enter__(self) -> RecordWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _drop_torn_tail(path: Path) -> None:
    """Cut a torn last line (a writer killed mid-line) before appending after it: otherwise the
    next record would be glued to the fragment and both would be lost to the loaders."""
    try:
        with open(path, "rb+") as fh:
            size = fh.seek(0, os.SEEK_END)
            if size == 0:
                return
            fh.seek(size - 1)
            if fh.read(1) == b"\n":
                return
            pos = size
            keep = 0
            while pos > 0:  # scan back, 64 KiB at a time, for the last complete line
                step = min(pos, 1 << 16)
                pos -= step
                fh.seek(pos)
                cut = fh.read(step).rfind(b"\n")
                if cut >= 0:
                    keep = pos + cut + 1
                    break
            fh.truncate(keep)
    except FileNotFoundError:
        return


def read_jsonl_tolerant(path: str | Path) -> list[dict[str, Any]]:
    """Rows of one JSONL results file, skipping a torn last line without a warning."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return _read_jsonl(Path(path))


def read_manifest(run_dir: str | Path) -> dict[str, Any]:
    p = Path(run_dir) / "manifest.json"
    if not p.exists():
        return {}
    return dict(json.loads(p.read_text(encoding="utf-8")))


def update_manifest(run_dir: str | Path, **sections: Any) -> dict[str, Any]:
    """Merge sections into manifest.json atomically (write temp, then rename).

    Mappings are merged recursively (the runner records an experiment's parameters, its
    session adds the contenders and servers beside them); any other value replaces the old."""
    run_dir = Path(run_dir)
    manifest = _merged(read_manifest(run_dir), sections)
    text = json.dumps(manifest, indent=2, sort_keys=False, default=str)
    keys.guard(text, where=str(run_dir / "manifest.json"))
    tmp = run_dir / f".manifest.{os.getpid()}.tmp"
    tmp.write_text(text + "\n", encoding="utf-8")
    os.replace(tmp, run_dir / "manifest.json")
    return manifest


def _merged(old: Mapping[str, Any], new: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(old)
    for key, value in new.items():
        before = out.get(key)
        out[key] = _merged(before, value) if isinstance(value, Mapping) and isinstance(before, Mapping) else value
    return out


def _read_jsonl(path: Path) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    with open(path, encoding="utf-8") as fh:
        lines = fh.readlines()
    for i, line in enumerate(lines):
        if not line.strip():
            continue
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            if i == len(lines) - 1 and not line.endswith("\n"):
                warnings.warn(f"{path}: skipped a torn last line (a run was interrupted)", stacklevel=3)
            else:
                raise ValueError(f"{path}:{i + 1}: not valid JSON") from None
    return rows


#: Records a resumed run sends again under the same request id (never answered: refused by a
#: budget, stopped by the workbench, a batch item whose batch ended first); see `load_records`.
RESENT_ON_RESUME = ("cancelled", "expired")


def load_records(run_dir: str | Path, experiment: str | None = None) -> pd.DataFrame:
    """Records of one run as a DataFrame (all experiments, or one). Empty frame if none.

    A `cancelled` or `expired` record whose request id was recorded again later in the same
    experiment is left out: a resumed run sent that request again (`Session.completed_ids`), and
    the later record is its outcome — counting both would count one request twice."""
    import pandas as pd

    run_dir = Path(run_dir)
    files = [run_dir / f"{experiment}.jsonl"] if experiment else sorted(run_dir.glob("*.jsonl"))
    rows: list[dict[str, Any]] = []
    for f in files:
        if f.exists():
            rows.extend(_read_jsonl(f))
    df = pd.DataFrame(rows)
    if df.empty:
        return pd.DataFrame(columns=list(RECORD_CORE_FIELDS))
    if "request_id" in df and "error_class" in df:
        keys = [k for k in ("experiment", "request_id") if k in df]
        superseded = df.duplicated(subset=keys, keep="last") & df["error_class"].isin(RESENT_ON_RESUME)
        if superseded.any():
            df = df[~superseded].reset_index(drop=True)
    return df


def load_runs(run_dirs: Iterable[str | Path], experiment: str | None = None) -> pd.DataFrame:
    """Records of several runs in one DataFrame; `run_id` tells them apart."""
    import pandas as pd

    frames = [load_records(d, experiment) for d in run_dirs]
    frames = [f for f in frames if not f.empty]
    if not frames:
        return pd.DataFrame(columns=list(RECORD_CORE_FIELDS))
    return pd.concat(frames, ignore_index=True)


def _git_info() -> dict[str, Any]:
    root = Path(__file__).resolve().parent.parent
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True,
                                text=True, timeout=5).stdout.strip()
        dirty = bool(subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"],
                                    cwd=root, capture_output=True, text=True, timeout=5).stdout.strip())
    except (OSError, subprocess.SubprocessError):
        return {"commit": None, "dirty": None}
    return {"commit": commit or None, "dirty": dirty}


def _machine_info() -> dict[str, Any]:
    info: dict[str, Any] = {
        "platform": platform.platform(),
        "python": platform.python_version(),
        "cpu_count": os.cpu_count(),
        "machine": platform.machine(),
        # Latency and throughput on a shared machine depend on what else runs: the 1/5/15-minute
        # load averages when the run started say whether its numbers came from a quiet machine.
        "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
    }
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                info["cpu_model"] = line.split(":", 1)[1].strip()
                break
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                info["mem_total_kib"] = int(line.split()[1])
                break
    except OSError:
        pass
    return info


def _package_versions() -> dict[str, str | None]:
    out: dict[str, str | None] = {}
    for name in ("llm-workbench", "httpx", "httptools", "uvloop", "papermill", "pandas", "numpy",
                 "scipy", "matplotlib", "seaborn", "nbconvert"):
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


def error_table(df: pd.DataFrame, by: Iterable[str] = ("contender",)) -> pd.DataFrame:
    """Failed requests counted by `by` and error class — the one error table every notebook
    shows; a single row saying "none" when nothing failed."""
    import pandas as pd

    keys = [k for k in by if k in df]
    failed = df[df["status"] != "ok"] if "status" in df else df.iloc[0:0]
    if failed.empty:
        return pd.DataFrame({"failed requests": ["none"]})
    return failed.groupby([*keys, "error_class"], dropna=False).size().rename("requests").to_frame()


def reasoning_tokens(df: pd.DataFrame, by: Iterable[str] = ("contender",)) -> pd.DataFrame:
    """How each contender's output tokens split into thinking and answer.

    A reasoning model bills its thinking as output tokens the caller never sees (generated before
    the first visible token, so inside TTFT); per `by`: answered requests, mean output tokens,
    mean reasoning tokens ("not reported" where the API gives no count), the share of output
    spent reasoning, mean visible tokens, how many reasoning counts were estimated, and how
    many requests ran out of tokens before any visible answer (`truncated`)."""
    import pandas as pd

    keys = [k for k in by if k in df]
    rows = []
    for key, g in df.groupby(keys, dropna=False, sort=False) if keys else [((), df)]:
        ok = g[g["status"] == "ok"] if "status" in g else g
        out = _numeric_column(ok, "output_tokens")
        thought = _numeric_column(ok, "reasoning_tokens")
        visible = _numeric_column(ok, "visible_output_tokens")
        reported = thought.notna().sum() if thought is not None else 0
        row = dict(zip(keys, key if isinstance(key, tuple) else (key,), strict=True))
        row.update({
            "answered": len(ok),
            "output tokens (mean)": round(float(out.mean()), 1) if out is not None and out.notna().any() else None,
            "reasoning tokens (mean)": round(float(thought.mean()), 1) if thought is not None and reported
            else "not reported",
            "share of output spent reasoning": (f"{100 * thought.sum() / out[thought.notna()].sum():.0f}%"
                                                if thought is not None and out is not None and reported
                                                and out[thought.notna()].sum() > 0 else "—"),
            "visible tokens (mean)": round(float(visible.mean()), 1) if visible is not None and visible.notna().any()
            else None,
            "reasoning estimated": int(ok["token_source"].astype(str).str.contains("reasoning chars/4").sum())
            if "token_source" in ok else 0,
            "no visible answer (truncated)": int((g["error_class"] == "truncated").sum()) if "error_class" in g else 0,
        })
        rows.append(row)
    return pd.DataFrame(rows)


def _numeric_column(frame: pd.DataFrame, name: str) -> pd.Series | None:
    """A column as numbers (an unreadable value is NaN); None when the frame has no such column
    (`pd.to_numeric` of the None that `frame.get` gives would be a NaN scalar, not a column)."""
    import pandas as pd

    return pd.to_numeric(frame[name], errors="coerce") if name in frame else None


def token_sources(df: pd.DataFrame, by: Iterable[str] = ("contender",)) -> pd.DataFrame:
    """Where each record's token counts came from (`usage` = the server; `tokenizer` = the
    model's own tokenizer; `chunks` / `chars/4` = estimates), counted by `by`."""
    keys = [k for k in by if k in df]
    return df.groupby([*keys, "token_source", "tokens_estimated"], dropna=False).size().rename("requests").to_frame()
