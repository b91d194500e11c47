"""Prompt sets: JSONL files in `experiments/prompts/`, one `{"id", "text"[, "system", "meta"]}`
object per line. Prompts live in files, not notebooks, so every experiment and every contender
sees exactly the same inputs."""

from __future__ import annotations

import json
from pathlib import Path

from workbench.config import PROJECT_ROOT
from workbench.errors import ConfigError
from workbench.types import Prompt

__all__ = ["PROMPTS_DIR", "load_prompts", "resolve_prompt_set"]

PROMPTS_DIR = PROJECT_ROOT / "experiments" / "prompts"
_FIELDS = {"id", "text", "system", "meta"}


def resolve_prompt_set(name_or_path: str | Path) -> Path:
    """A prompt-set name (`latency` → experiments/prompts/latency.jsonl) or a path."""
    p = Path(name_or_path)
    if p.suffix == ".jsonl" or p.exists():
        return p
    candidate = PROMPTS_DIR / f"{name_or_path}.jsonl"
    if candidate.exists():
        return candidate
    valid = sorted(f.stem for f in PROMPTS_DIR.glob("*.jsonl"))
    raise ConfigError(str(name_or_path), None, f"no such prompt set; valid names: {', '.join(valid)}")


def load_prompts(name_or_path: str | Path) -> list[Prompt]:
    """Load and validate a prompt set; a bad line names file, line, field and reason."""
    path = resolve_prompt_set(name_or_path)
    src = str(path)
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise ConfigError(src, None, f"cannot read: {exc.strerror or exc}") from None
    prompts: list[Prompt] = []
    seen: set[str] = set()
    for n, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        where = f"line {n}"
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            raise ConfigError(src, where, f"not valid JSON ({exc.msg})") from None
        if not isinstance(obj, dict):
            raise ConfigError(src, where, "each line must be a JSON object")
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
        prompts.append(Prompt(id=obj["id"], text=obj["text"], system=system, meta=meta))
    if not prompts:
        raise ConfigError(src, None, "the prompt set is empty")
    return prompts
