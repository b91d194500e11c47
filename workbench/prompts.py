"""Prompt sets: JSONL files in the workspace's `prompts/` (the bundled example's
`experiments/prompts/`) or `data/`, one `{"id", "text"[, "system", "meta", "images"]}` object per
line (`images`: files relative to the prompt set, or URLs; `workbench.images`).
Prompts live in files, not notebooks, so every experiment and every contender sees exactly the
same inputs.

The user's own data comes in too (`workbench.tasks`): `scenario:<name>` is that scenario's task
(classification prompts from labelled texts, or a prompts file), and a `.csv` file or a JSONL file
of labelled texts (`text`, `label`) becomes classification prompts with the default instruction."""

from __future__ import annotations

import json
from pathlib import Path

from workbench import tasks, workspace
from workbench.datafiles import jsonl_records, load_labelled_texts
from workbench.errors import ConfigError
from workbench.images import resolve_images
from workbench.types import Prompt

__all__ = ["load_prompts", "prompt_dirs", "resolve_prompt_set"]

_FIELDS = {"id", "text", "system", "meta", "images"}


def prompt_dirs() -> list[Path]:
    """Where prompt-set names are looked up: the workspace's `prompts/`, then its `data/`."""
    ws = workspace.current()
    return [ws.root / "prompts", ws.data_dir]


def resolve_prompt_set(name_or_path: str | Path) -> Path:
    """A prompt-set name (`latency` → <workspace>/prompts/latency.jsonl) or a path; a relative path
    is the workspace's (not the notebook kernel's working directory)."""
    p = Path(name_or_path)
    if p.suffix in (".jsonl", ".csv"):
        return workspace.current().resolve(p)
    for d in prompt_dirs():
        candidate = d / f"{name_or_path}.jsonl"
        if candidate.exists():
            return candidate
    valid = sorted({f.stem for d in prompt_dirs() for f in d.glob("*.jsonl")})
    raise ConfigError(str(name_or_path), None, f"no such prompt set; valid names: {', '.join(valid)}")


def load_prompts(name_or_path: str | Path) -> list[Prompt]:
    """Load and validate a prompt set; a bad line names file, line, field and reason."""
    if str(name_or_path).startswith(tasks.SCENARIO_PREFIX):
        return tasks.scenario_task(str(name_or_path).removeprefix(tasks.SCENARIO_PREFIX)).prompts()
    path = resolve_prompt_set(name_or_path)
    if _is_labelled(path):
        rows = load_labelled_texts(path)
        return tasks.classify_prompts(rows, tasks.Task(type="classify", data=str(path)).label_names(rows))
    if path.suffix == ".csv":
        return tasks.load_prompt_rows(path)
    src = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(src, None, f"cannot read: {exc.strerror or exc}") from None
    prompts: list[Prompt] = []
    seen: set[str] = set()
    for obj, where in jsonl_records(text, src):
        unknown = set(obj) - _FIELDS
        if unknown:
            raise ConfigError(src, f"{where}: {sorted(unknown)[0]}",
                              f"unknown field; valid: {', '.join(sorted(_FIELDS))}")
        for field in ("id", "text"):
            if not isinstance(obj.get(field), str) or not obj[field].strip():
                raise ConfigError(src, f"{where}: {field}", "required, a non-empty string")
        if obj["id"] in seen:
            raise ConfigError(src, f"{where}: id", f"duplicate id {obj['id']!r}")
        seen.add(obj["id"])
        system = obj.get("system")
        if system is not None and not isinstance(system, str):
            raise ConfigError(src, f"{where}: system", "must be a string")
        meta = obj.get("meta", {})
        if not isinstance(meta, dict):
            raise ConfigError(src, f"{where}: meta", "must be an object")
        names = obj.get("images", [])
        if not isinstance(names, list) or not all(isinstance(x, str) and x.strip() for x in names):
            raise ConfigError(src, f"{where}: images", "must be a list of image file paths or URLs")
        prompts.append(Prompt(id=obj["id"], text=obj["text"], system=system, meta=meta,
                              images=resolve_images(names, path, f"{where}: images")))
    if not prompts:
        raise ConfigError(src, None, "the prompt set is empty")
    return prompts


def _is_labelled(path: Path) -> bool:
    """A data file of labelled texts (a `label` column or field) rather than a prompt set."""
    try:
        with path.open(encoding="utf-8") as f:
            first = next((line for line in f if line.strip()), "")
    except (OSError, UnicodeDecodeError):
        return False  # the loader says what is wrong with it
    if path.suffix == ".csv":
        return "label" in [c.strip() for c in first.strip().split(",")]
    try:
        obj = json.loads(first)
    except json.JSONDecodeError:
        return False
    return isinstance(obj, dict) and "label" in obj
